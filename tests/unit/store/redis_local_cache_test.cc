// RedisLocalCache alone (no loop, no Redis): what find answers after insert, max age, capacity,
// invalidation, and the read tickets that keep a reply raced by an invalidation or a clear() out
// of the cache. The store's use of it against a real Redis is in
// tests/integration/test_redis_cache.py.
#include "proxy_core/store/redis_local_cache.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace sg {
namespace {

constexpr int64_t kT0 = 1'700'000'000'000;  // a unix time in ms; any value would do
constexpr int64_t kMaxAge = 100;

TokenHash key(uint8_t n) {
  TokenHash k{};
  for (size_t i = 0; i < k.size(); ++i)
    k[i] = static_cast<uint8_t>(n * 37 + i);
  return k;
}

// A record told apart from the others by its handle's first byte and its user attribute.
SessionRecord record(uint8_t n, const std::string& user = "alice") {
  SessionRecord r;
  r.handle[0] = n;
  r.created_ms = kT0 - 5000;
  r.last_seen_ms = kT0 - 10;
  r.attributes = {{"user", user}};
  r.client_address = "192.0.2.7";
  r.user_agent = "Test/1";
  return r;
}

// The handle byte of what find answers, or -1 when it finds nothing.
int found(RedisLocalCache& cache, const TokenHash& k, int64_t now_ms) {
  const SessionRecord* r = cache.find(k, now_ms);
  return r == nullptr ? -1 : r->handle[0];
}

TEST_CASE("redis local cache: a record inserted is found whole, under its key only") {
  RedisLocalCache cache(kMaxAge);
  CHECK(cache.find(key(1), kT0) == nullptr);
  cache.insert(key(1), record(7, "bob"), kT0);
  const SessionRecord* r = cache.find(key(1), kT0);
  REQUIRE(r != nullptr);
  CHECK(r->handle == record(7).handle);
  CHECK(r->created_ms == kT0 - 5000);
  CHECK(r->last_seen_ms == kT0 - 10);
  CHECK(r->attributes == std::vector<std::pair<std::string, std::string>>{{"user", "bob"}});
  CHECK(r->client_address == "192.0.2.7");
  CHECK(r->user_agent == "Test/1");
  CHECK(cache.find(key(2), kT0) == nullptr);
  CHECK(cache.size() == 1);
  CHECK(cache.max_age_ms() == kMaxAge);
}

TEST_CASE("redis local cache: keys that share their first bytes are still told apart") {
  // The hasher reads the digest's first 8 bytes only; equality must still compare all 32.
  RedisLocalCache cache(kMaxAge);
  TokenHash a = key(1), b = key(1);
  b[31] ^= 0xff;
  cache.insert(a, record(1), kT0);
  CHECK(found(cache, b, kT0) == -1);
  cache.insert(b, record(2), kT0);
  CHECK(found(cache, a, kT0) == 1);
  CHECK(found(cache, b, kT0) == 2);
  cache.invalidate(b);
  CHECK(found(cache, a, kT0) == 1);
  CHECK(found(cache, b, kT0) == -1);
}

TEST_CASE("redis local cache: an entry is found until max_age after its read, not at max_age") {
  RedisLocalCache cache(kMaxAge);
  cache.insert(key(1), record(1), kT0);
  CHECK(found(cache, key(1), kT0 + kMaxAge - 1) == 1);
  CHECK(found(cache, key(1), kT0 + kMaxAge) == -1);
  CHECK(cache.size() == 0);  // an expired entry is dropped, not kept for a clock going back
  CHECK(found(cache, key(1), kT0) == -1);
}

TEST_CASE("redis local cache: a clock stepped back makes an entry's age unknown: not found") {
  RedisLocalCache cache(kMaxAge);
  cache.insert(key(1), record(1), kT0);
  cache.insert(key(2), record(2), kT0);
  CHECK(found(cache, key(1), kT0 - 1) == -1);
  CHECK(found(cache, key(1), kT0) == -1);  // and it stays gone
  CHECK(found(cache, key(2), kT0) == 2);   // the other entry was not asked at the earlier time
}

TEST_CASE("redis local cache: max_age counts from the newest read of a re-inserted key") {
  RedisLocalCache cache(kMaxAge);
  cache.insert(key(1), record(1), kT0);
  cache.insert(key(1), record(2), kT0 + 60);
  CHECK(found(cache, key(1), kT0 + kMaxAge) == 2);
  CHECK(found(cache, key(1), kT0 + 60 + kMaxAge - 1) == 2);
  CHECK(found(cache, key(1), kT0 + 60 + kMaxAge) == -1);
}

TEST_CASE("redis local cache: a full cache forgets its oldest entry first") {
  RedisLocalCache cache(kMaxAge, 3);
  for (uint8_t n = 1; n <= 3; ++n)
    cache.insert(key(n), record(n), kT0 + n);
  CHECK(cache.size() == 3);
  cache.insert(key(4), record(4), kT0 + 4);
  CHECK(cache.size() == 3);
  CHECK(found(cache, key(1), kT0 + 5) == -1);
  CHECK(found(cache, key(2), kT0 + 5) == 2);
  CHECK(found(cache, key(3), kT0 + 5) == 3);
  CHECK(found(cache, key(4), kT0 + 5) == 4);
  cache.insert(key(5), record(5), kT0 + 5);
  CHECK(found(cache, key(2), kT0 + 6) == -1);
  CHECK(found(cache, key(5), kT0 + 6) == 5);
  // Many more keys than places: never more than the capacity.
  for (uint8_t n = 10; n < 60; ++n) {
    cache.insert(key(n), record(n), kT0 + n);
    CHECK(cache.size() <= 3);
  }
  CHECK(found(cache, key(59), kT0 + 60) == 59);
  CHECK(found(cache, key(58), kT0 + 60) == 58);
  CHECK(found(cache, key(57), kT0 + 60) == 57);
}

TEST_CASE("redis local cache: a re-inserted key keeps its newest copy and counts as newest") {
  RedisLocalCache cache(kMaxAge, 2);
  cache.insert(key(1), record(1, "old"), kT0);
  cache.insert(key(2), record(2), kT0 + 1);
  cache.insert(key(1), record(1, "new"), kT0 + 2);
  const SessionRecord* r = cache.find(key(1), kT0 + 3);
  REQUIRE(r != nullptr);
  CHECK(r->attributes.at(0).second == "new");
  // Key 2 is now the oldest: the next new key replaces it, not key 1's newest copy (its first,
  // older place in the order must not evict the copy that replaced it).
  cache.insert(key(3), record(3), kT0 + 3);
  CHECK(found(cache, key(2), kT0 + 4) == -1);
  r = cache.find(key(1), kT0 + 4);
  REQUIRE(r != nullptr);
  CHECK(r->attributes.at(0).second == "new");
  CHECK(found(cache, key(3), kT0 + 4) == 3);
  CHECK(cache.size() == 2);
}

TEST_CASE("redis local cache: the older place of a re-inserted key never evicts its newest copy") {
  RedisLocalCache cache(kMaxAge, 3);
  cache.insert(key(1), record(1, "old"), kT0);
  cache.insert(key(1), record(1, "new"), kT0 + 1);  // key 1's first place in the order is stale
  cache.insert(key(2), record(2), kT0 + 2);
  cache.insert(key(3), record(3), kT0 + 3);  // three entries fit: the stale place goes, not key 1
  CHECK(cache.size() == 3);
  const SessionRecord* r = cache.find(key(1), kT0 + 4);
  REQUIRE(r != nullptr);
  CHECK(r->attributes.at(0).second == "new");
  CHECK(found(cache, key(2), kT0 + 4) == 2);
  CHECK(found(cache, key(3), kT0 + 4) == 3);
}

TEST_CASE("redis local cache: a key re-inserted many times is one entry, still found") {
  RedisLocalCache cache(kMaxAge, 2);
  for (int i = 0; i < 10; ++i)
    cache.insert(key(1), record(1, "v" + std::to_string(i)), kT0 + i);
  CHECK(cache.size() == 1);
  const SessionRecord* r = cache.find(key(1), kT0 + 10);
  REQUIRE(r != nullptr);
  CHECK(r->attributes.at(0).second == "v9");
}

TEST_CASE("redis local cache: invalidate removes that key only and an absent key is harmless") {
  RedisLocalCache cache(kMaxAge);
  cache.insert(key(1), record(1), kT0);
  cache.insert(key(2), record(2), kT0);
  cache.invalidate(key(1));
  CHECK(found(cache, key(1), kT0) == -1);
  CHECK(found(cache, key(2), kT0) == 2);
  CHECK(cache.size() == 1);
  cache.invalidate(key(3));
  cache.invalidate(key(1));
  CHECK(found(cache, key(2), kT0) == 2);
  // A new read after the invalidation may be kept again.
  cache.insert(key(1), record(11), kT0 + 1);
  CHECK(found(cache, key(1), kT0 + 1) == 11);
}

TEST_CASE("redis local cache: a read whose key is invalidated while in flight may not be kept") {
  RedisLocalCache cache(kMaxAge);
  const auto spoiled = cache.begin_read(key(1));
  const auto other = cache.begin_read(key(2));  // another key, in flight at the same time
  cache.invalidate(key(1));
  const auto after = cache.begin_read(key(1));  // begun after the invalidation: reads the change
  CHECK_FALSE(cache.finish_read(spoiled, key(1)));
  CHECK(cache.finish_read(other, key(2)));
  CHECK(cache.finish_read(after, key(1)));
}

TEST_CASE("redis local cache: an invalidation with no read in flight spoils no later read") {
  RedisLocalCache cache(kMaxAge);
  const auto first = cache.begin_read(key(1));
  CHECK(cache.finish_read(first, key(1)));
  cache.invalidate(key(1));
  const auto next = cache.begin_read(key(1));
  CHECK(cache.finish_read(next, key(1)));
}

TEST_CASE("redis local cache: clear() forgets every entry and spoils every read in flight") {
  RedisLocalCache cache(kMaxAge);
  cache.insert(key(1), record(1), kT0);
  cache.insert(key(2), record(2), kT0);
  const auto a = cache.begin_read(key(3));
  const auto b = cache.begin_read(key(4));
  const auto a2 = cache.begin_read(key(3));
  cache.clear();
  CHECK(cache.size() == 0);
  CHECK(found(cache, key(1), kT0) == -1);
  CHECK(found(cache, key(2), kT0) == -1);
  const auto fresh = cache.begin_read(key(3));  // begun after the clear: may be kept
  CHECK_FALSE(cache.finish_read(a, key(3)));
  CHECK_FALSE(cache.finish_read(b, key(4)));
  CHECK(cache.finish_read(fresh, key(3)));
  CHECK_FALSE(cache.finish_read(a2, key(3)));
  // The cache works as before after a clear.
  cache.insert(key(1), record(21), kT0 + 1);
  CHECK(found(cache, key(1), kT0 + 1) == 21);
  CHECK(cache.size() == 1);
}

TEST_CASE(
    "redis local cache: the reads of one key in flight are counted exactly when interleaved") {
  RedisLocalCache cache(kMaxAge);
  // Two reads of one key; the first one's finish must not forget the second one is in flight.
  const auto r1 = cache.begin_read(key(1));
  const auto r2 = cache.begin_read(key(1));
  CHECK(cache.finish_read(r1, key(1)));
  cache.invalidate(key(1));
  const auto r3 = cache.begin_read(key(1));
  CHECK_FALSE(cache.finish_read(r2, key(1)));  // in flight at the invalidation
  const auto r4 = cache.begin_read(key(1));
  CHECK(cache.finish_read(r3, key(1)));
  cache.invalidate(key(1));
  cache.invalidate(key(1));  // twice: still one mark
  CHECK_FALSE(cache.finish_read(r4, key(1)));
  // Every read finished: the next one starts clean (no leftover mark from the invalidations).
  const auto r5 = cache.begin_read(key(1));
  CHECK(cache.finish_read(r5, key(1)));

  // A clear between two reads of a key, then an invalidation of it: each read keeps its own fate.
  const auto c1 = cache.begin_read(key(2));
  cache.clear();
  const auto c2 = cache.begin_read(key(2));
  const auto c3 = cache.begin_read(key(2));
  CHECK_FALSE(cache.finish_read(c1, key(2)));
  CHECK(cache.finish_read(c2, key(2)));
  cache.invalidate(key(2));
  const auto c4 = cache.begin_read(key(2));
  CHECK_FALSE(cache.finish_read(c3, key(2)));
  CHECK(cache.finish_read(c4, key(2)));
}

TEST_CASE("redis local cache: a reply with no begin_read is never trusted") {
  RedisLocalCache cache(kMaxAge);
  CHECK_FALSE(cache.finish_read(RedisLocalCache::ReadTicket{}, key(1)));
  const auto t = cache.begin_read(key(1));
  CHECK(cache.finish_read(t, key(1)));
}

}  // namespace
}  // namespace sg
