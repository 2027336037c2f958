// RedisReplyArena: hiredis's reader building its replies in the arena gives the same replies as
// hiredis's own reader, whatever the split of the bytes into reads, for every reply type, nested
// arrays and replies bigger than a chunk; a protocol error and freeing the reader mid-reply rewind
// it (no leak, no use after free: run under ASan).
#include "proxy_core/store/redis_reply_arena.h"

#include <doctest/doctest.h>
#include <hiredis/hiredis.h>
#include <hiredis/read.h>

#include <string>

namespace sg {
namespace {

// A reply as text, so that two readers' replies compare with ==.
std::string dump(const redisReply* r) {
  if (r == nullptr) return "(none)";
  std::string out = std::to_string(r->type) + ":";
  switch (r->type) {
    case REDIS_REPLY_INTEGER:
      return out + std::to_string(r->integer);
    case REDIS_REPLY_NIL:
      return out + "nil";
    case REDIS_REPLY_ARRAY:
      out += "[";
      for (size_t i = 0; i < r->elements; ++i)
        out += dump(r->element[i]) + ",";
      return out + "]";
    default:
      // NUL-terminated as hiredis makes them, and the length covers the bytes.
      CHECK(r->str[r->len] == '\0');
      return out + std::string(r->str, r->len);
  }
}

// Every reply in `bytes`, fed in pieces of `step` bytes, read by `reader`, dumped and freed.
std::vector<std::string> read_all(redisReader* reader, const std::string& bytes, size_t step) {
  std::vector<std::string> out;
  for (size_t at = 0; at < bytes.size(); at += step) {
    REQUIRE(redisReaderFeed(reader, bytes.data() + at, std::min(step, bytes.size() - at)) ==
            REDIS_OK);
    for (;;) {
      void* reply = nullptr;
      REQUIRE(redisReaderGetReply(reader, &reply) == REDIS_OK);
      if (reply == nullptr) break;
      out.push_back(dump(static_cast<redisReply*>(reply)));
      reader->fn->freeObject(reply);
    }
  }
  return out;
}

std::string bulk(const std::string& s) {
  return "$" + std::to_string(s.size()) + "\r\n" + s + "\r\n";
}

// An HGETALL-like reply, a status, an error, an integer, nils, an empty and a nested array.
std::string mixed_replies() {
  std::string hash = "*8\r\n" + bulk("h") + bulk(std::string(32, 'a')) + bulk("c") +
                     bulk("1700000000000") + bulk("a:user") + bulk(std::string("al\0ce", 5)) +
                     bulk("ua") + bulk("Mozilla/5.0");
  return hash + "+OK\r\n-NOSCRIPT No matching script\r\n:-42\r\n$-1\r\n*-1\r\n*0\r\n" +
         "*3\r\n:1\r\n*2\r\n" + bulk("x") + "$-1\r\n" + bulk("") + "$0\r\n\r\n";
}

TEST_CASE("reply arena: the same replies as hiredis's reader, split at every byte") {
  const std::string bytes = mixed_replies();
  redisReader* plain = redisReaderCreate();
  const std::vector<std::string> expected = read_all(plain, bytes, bytes.size());
  redisReaderFree(plain);
  REQUIRE(expected.size() == 9);
  for (size_t step = 1; step <= bytes.size(); ++step) {
    CAPTURE(step);
    RedisReplyArena arena;
    redisReader* reader = redisReaderCreate();
    arena.attach(reader);
    CHECK(read_all(reader, bytes, step) == expected);
    redisReaderFree(reader);
  }
}

TEST_CASE("reply arena: a reply bigger than a chunk, many times over, then small ones again") {
  std::string big = "*3000\r\n";
  for (int i = 0; i < 3000; ++i)
    big += bulk("member-" + std::to_string(i));
  const std::string bytes = big + ":7\r\n" + big;
  redisReader* plain = redisReaderCreate();
  const std::vector<std::string> expected = read_all(plain, bytes, bytes.size());
  redisReaderFree(plain);
  RedisReplyArena arena;
  redisReader* reader = redisReaderCreate();
  arena.attach(reader);
  for (size_t step : {bytes.size(), size_t{1000}, size_t{7}})
    CHECK(read_all(reader, bytes, step) == expected);
  redisReaderFree(reader);
}

TEST_CASE("reply arena: a protocol error or a reader freed mid-reply frees the partial reply") {
  RedisReplyArena arena;
  redisReader* reader = redisReaderCreate();
  arena.attach(reader);
  const std::string partial = "*4\r\n" + bulk("one") + bulk(std::string(5000, 'z'));
  REQUIRE(redisReaderFeed(reader, partial.data(), partial.size()) == REDIS_OK);
  void* reply = nullptr;
  REQUIRE(redisReaderGetReply(reader, &reply) == REDIS_OK);
  CHECK(reply == nullptr);
  const std::string bad = "?not a type\r\n";
  REQUIRE(redisReaderFeed(reader, bad.data(), bad.size()) == REDIS_OK);
  CHECK(redisReaderGetReply(reader, &reply) == REDIS_ERR);
  redisReaderFree(reader);

  reader = redisReaderCreate();
  arena.attach(reader);
  REQUIRE(redisReaderFeed(reader, partial.data(), partial.size()) == REDIS_OK);
  REQUIRE(redisReaderGetReply(reader, &reply) == REDIS_OK);
  CHECK(reply == nullptr);
  redisReaderFree(reader);  // frees the partial reply: the arena rewinds, ASan sees no leak
}

}  // namespace
}  // namespace sg
