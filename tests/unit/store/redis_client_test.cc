// RedisClient on its own (no sessions) against a real redis-server started by each test on a free
// loopback port (redis_test_support.h), killed at the end: pipelined replies in order, deadlines,
// reconnects and the one resend of a read, scripts and the NOSCRIPT fallback, error replies, the
// Sentinel answer's parsing. The tests fail when redis-server is not installed.
#include "proxy_core/store/redis_client.h"

#include <doctest/doctest.h>
#include <hiredis/hiredis.h>
#include <openssl/evp.h>

#include <cstdlib>
#include <cstring>
#include <optional>

#include "proxy_core/store/redis_dial.h"
#include "tests/unit/redis_test_support.h"

namespace sg {
namespace {

using namespace redis_test;

// What a handler saw; the reply itself lives only during the handler.
struct Seen {
  bool null = true;
  int type = 0;
  std::string text;
};

Seen seen_of(const redisReply* r) {
  Seen s;
  if (r == nullptr) return s;
  s.null = false;
  s.type = r->type;
  if (r->str != nullptr) s.text.assign(r->str, r->len);
  return s;
}

RedisClientOptions options_for(const std::string& address, Millis timeout) {
  RedisClientOptions o;
  o.address = address;
  o.timeout = timeout;
  return o;
}

// Sends one command and runs the loop until its handler ran (exactly once, never inside send).
Seen send_and_wait(Loop& loop, RedisClient& client, std::vector<std::string> args) {
  std::optional<Seen> out;
  int calls = 0;
  client.send(std::move(args), [&](const redisReply* r) {
    ++calls;
    out = seen_of(r);
  });
  CHECK(calls == 0);
  REQUIRE(loop.run_until([&] { return out.has_value(); }, 5000));
  CHECK(calls == 1);
  return *out;
}

// A client connected to `server` (started here unless the caller passes one that runs).
struct Connected {
  Loop loop;
  WorkerMetrics metrics;
  std::unique_ptr<RedisClient> client;

  Connected(const RedisServer& server, Millis timeout, std::vector<const RedisScript*> scripts = {})
      : client(std::make_unique<RedisClient>(loop.get(), options_for(server.address(), timeout),
                                             &metrics, std::move(scripts))) {
    client->start();
    REQUIRE(connect());
  }
  ~Connected() {
    client.reset();
    loop.finish();  // every handle closed
  }
  bool connect(int timeout_ms = 5000) {
    return loop.run_until([&] { return client->usable(); }, timeout_ms);
  }
  Seen roundtrip(std::vector<std::string> args) {
    return send_and_wait(loop, *client, std::move(args));
  }
};

std::unique_ptr<RedisServer> running_server() {
  REQUIRE_REDIS_SERVER();
  auto server = std::make_unique<RedisServer>();
  REQUIRE(server->start());
  return server;
}

TEST_CASE("redis client: pipelined commands get their replies in send order") {
  auto server = running_server();
  Connected c(*server, Millis{1000});
  const uint64_t before = c.metrics.redis_commands.get();
  std::vector<std::string> replies;
  const size_t n = 200;
  for (size_t i = 0; i < n; ++i) {
    c.client->send({"ECHO", std::to_string(i)},
                   [&](const redisReply* r) { replies.push_back(seen_of(r).text); });
  }
  CHECK(replies.empty());  // never inside send
  REQUIRE(c.loop.run_until([&] { return replies.size() == n; }, 5000));
  for (size_t i = 0; i < n; ++i)
    CHECK(replies[i] == std::to_string(i));
  CHECK(c.metrics.redis_commands.get() - before == n);
  CHECK(c.metrics.redis_errors.get() == 0);
}

TEST_CASE("redis client: arguments are sent byte for byte, CR, LF and NUL included") {
  auto server = running_server();
  Connected c(*server, Millis{1000});
  const std::string value("a\r\n$3\r\n\0*z", 10);
  const std::string empty;
  CHECK(c.roundtrip({"SET", "bin", value}).text == "OK");
  CHECK(c.roundtrip({"GET", "bin"}).text == value);
  CHECK(c.roundtrip({"SET", "empty", empty}).text == "OK");
  CHECK(c.roundtrip({"STRLEN", "empty"}).type == REDIS_REPLY_INTEGER);
  CHECK(sync_command(*server, {"STRLEN", "bin"}) == "10");
}

// Commands leave in the loop turn that queued them (redis_dial.h): from a timer callback (before
// the poll) and from a reply handler (after it). Without that flush a command would wait for the
// next wake-up of the loop, here its own deadline, and fail; no other handle wakes this loop.
TEST_CASE("redis client: commands queued by a timer or a reply handler leave in that loop turn") {
  auto server = running_server();
  Connected c(*server, Millis{5'000});
  std::optional<Seen> first, second;
  uv_timer_t timer;
  uv_timer_init(c.loop.get(), &timer);
  struct Ctx {
    Connected* c;
    std::optional<Seen>* first;
    std::optional<Seen>* second;
  } ctx{&c, &first, &second};
  timer.data = &ctx;
  uv_timer_start(
      &timer,
      [](uv_timer_t* t) {
        auto* x = static_cast<Ctx*>(t->data);
        x->c->client->send({"ECHO", "from a timer"}, [x](const redisReply* r) {
          *x->first = seen_of(r);
          x->c->client->send({"ECHO", "from a handler"},
                             [x](const redisReply* r2) { *x->second = seen_of(r2); });
        });
      },
      1, 0);
  // UV_RUN_ONCE without the harness's 1 ms tick: the loop sleeps until Redis answers or a
  // command's deadline passes.
  while (!second.has_value())
    uv_run(c.loop.get(), UV_RUN_ONCE);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer), nullptr);
  REQUIRE(first.has_value());
  CHECK(first->text == "from a timer");
  CHECK(second->text == "from a handler");
  CHECK(c.metrics.redis_timeouts.get() == 0);
}

TEST_CASE("redis client: a command with no reply fails at its deadline and the client is stalled") {
  auto server = running_server();
  const Millis timeout{100};
  Connected c(*server, timeout);
  server->signal(SIGSTOP);
  const auto t0 = Clock::now();
  CHECK(c.roundtrip({"PING"}).null);
  // Never before the deadline (a lower bound holds on any machine).
  CHECK(Clock::now() - t0 >= timeout - std::chrono::milliseconds(5));
  CHECK(c.metrics.redis_timeouts.get() == 1);
  CHECK(c.metrics.redis_errors.get() == 0);  // a timeout, not a lost connection
  CHECK_FALSE(c.client->usable());
  // Past patience the connection is dropped; once Redis answers again, a new one serves.
  CHECK(c.loop.run_until([&] { return c.metrics.redis_connected.load() == 0; }, 10'000));
  server->signal(SIGCONT);
  REQUIRE(c.connect());
  const Seen pong = c.roundtrip({"PING"});
  CHECK(pong.type == REDIS_REPLY_STATUS);
  CHECK(pong.text == "PONG");
  CHECK(c.metrics.redis_reconnects.get() == 1);
}

TEST_CASE(
    "redis client: a read in flight when the connection drops is sent once more after the "
    "reconnect, a write is not") {
  auto server = running_server();
  const int port = server->port();
  // A deadline far beyond a restart: the read must outlive the outage.
  Connected c(*server, Millis{20'000});
  server->signal(SIGSTOP);  // both commands reach a server that never answers them
  std::optional<Seen> read, write;
  c.client->send(
      {"PING"}, [&](const redisReply* r) { read = seen_of(r); }, RedisClient::OnDrop::kRetryOnce);
  c.client->send({"SET", "w", "1"}, [&](const redisReply* r) { write = seen_of(r); });
  c.loop.run_for(20);  // written to the socket
  server->signal(SIGKILL);
  server.reset();  // reaped: the connection drops
  REQUIRE(c.loop.run_until([&] { return write.has_value(); }, 5000));
  CHECK(write->null);             // a write is never sent twice
  CHECK_FALSE(read.has_value());  // the read waits for the next connection
  server = std::make_unique<RedisServer>();
  REQUIRE(server->start(port));
  REQUIRE(c.loop.run_until([&] { return read.has_value(); }, 15'000));
  CHECK_FALSE(read->null);
  CHECK(read->text == "PONG");
  CHECK(c.metrics.redis_reconnects.get() == 1);
  CHECK(c.metrics.redis_errors.get() == 2);  // the two lost attempts
  CHECK(c.metrics.redis_timeouts.get() == 0);
  CHECK(sync_command(*server, {"EXISTS", "w"}) == "0");
}

TEST_CASE("redis client: commands fail on the next loop turn while not connected") {
  REQUIRE_REDIS_SERVER();
  Loop loop;
  WorkerMetrics metrics;
  // Nothing listens on that port, and the deadline is far beyond the wait below: a reply within
  // it proves the command failed at once instead of queueing.
  auto client = std::make_unique<RedisClient>(
      loop.get(), options_for("127.0.0.1:" + std::to_string(free_port()), Millis{60'000}), &metrics,
      std::vector<const RedisScript*>{});
  client->start();
  CHECK(send_and_wait(loop, *client, {"PING"}).null);
  CHECK_FALSE(client->usable());
  CHECK(metrics.redis_rejected.get() == 1);
  CHECK(metrics.redis_timeouts.get() == 0);
  client->close();
  int failed = 0;
  client->send({"PING"}, [&](const redisReply* r) { failed += r == nullptr; });
  CHECK(failed == 1);  // after close: at once, inside send
  client.reset();
  loop.finish();
}

TEST_CASE("redis client: an error reply is a failure, WRONGTYPE reaches the caller") {
  auto server = running_server();
  Connected c(*server, Millis{1000});
  CHECK(c.roundtrip({"SET", "k", "v"}).text == "OK");
  const Seen wrong = c.roundtrip({"HGETALL", "k"});
  CHECK(wrong.type == REDIS_REPLY_ERROR);
  CHECK(wrong.text.rfind("WRONGTYPE", 0) == 0);
  CHECK(c.metrics.redis_errors.get() == 0);
  CHECK(c.roundtrip({"NO-SUCH-COMMAND"}).null);
  CHECK(c.metrics.redis_errors.get() == 1);
  CHECK(c.client->usable());  // an unknown command says nothing about the connection
}

std::string sha1_hex(const std::string& text) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(text.data(), text.size(), md, &n, EVP_sha1(), nullptr);
  std::string out;
  for (unsigned int i = 0; i < n; ++i) {
    out.push_back("0123456789abcdef"[md[i] >> 4]);
    out.push_back("0123456789abcdef"[md[i] & 0xf]);
  }
  return out;
}

TEST_CASE("redis client: scripts are loaded at connect and NOSCRIPT falls back to EVAL") {
  auto server = running_server();
  const RedisScript script{"echo", "return ARGV[1]", sha1_hex("return ARGV[1]")};
  Connected c(*server, Millis{1000}, {&script});
  // Loaded at connect: another client finds it by its digest.
  CHECK(sync_command(*server, {"EVALSHA", script.sha1, "0", "x"}) == "x");
  auto eval = [&](const std::string& arg) {
    std::optional<Seen> out;
    c.client->eval(script, {"0", arg}, [&](const redisReply* r) { out = seen_of(r); });
    REQUIRE(c.loop.run_until([&] { return out.has_value(); }, 3000));
    return *out;
  };
  CHECK(eval("a").text == "a");
  CHECK(sync_command(*server, {"SCRIPT", "FLUSH"}) == "OK");
  CHECK(eval("b").text == "b");  // NOSCRIPT, then EVAL with the body
  CHECK(sync_command(*server, {"EVALSHA", script.sha1, "0", "y"}) == "y");  // cached again
}

redisReply* string_reply(const char* s) {
  auto* r = static_cast<redisReply*>(calloc(1, sizeof(redisReply)));
  r->type = REDIS_REPLY_STRING;
  r->len = strlen(s);
  r->str = strdup(s);
  return r;
}

TEST_CASE("redis client: the sentinel's answer becomes host:port, IPv6 in brackets") {
  auto answer = [](const char* host, const char* port) {
    auto* r = static_cast<redisReply*>(calloc(1, sizeof(redisReply)));
    r->type = REDIS_REPLY_ARRAY;
    r->elements = 2;
    r->element = static_cast<redisReply**>(calloc(2, sizeof(redisReply*)));
    r->element[0] = string_reply(host);
    r->element[1] = string_reply(port);
    std::string out = master_address_of(r);
    freeReplyObject(r);
    return out;
  };
  CHECK(answer("10.0.0.5", "6380") == "10.0.0.5:6380");
  CHECK(answer("::1", "6379") == "[::1]:6379");
  CHECK(master_address_of(nullptr).empty());
  redisReply nil{};
  nil.type = REDIS_REPLY_NIL;  // an unknown master
  CHECK(master_address_of(&nil).empty());
  std::string host;
  int port = 0;
  CHECK(redis_host_port("[::1]:7000", host, port));
  CHECK(host == "::1");
  CHECK(port == 7000);
  CHECK_FALSE(redis_host_port("localhost", host, port));
  CHECK_FALSE(redis_host_port("h:0", host, port));
}

}  // namespace
}  // namespace sg
