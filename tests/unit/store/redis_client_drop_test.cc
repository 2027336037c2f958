// RedisClient under the faults found in review: a reply that arrives after its command's deadline
// (it must be dropped, never handed to the next command's handler), a connection that dies while
// a whole loop turn's commands sit unwritten in hiredis's buffer and others wait for replies
// (every handler exactly once, a read resent once, no write), and NOSCRIPT from a server that
// restarted with an empty script cache. Against a real redis-server (redis_test_support.h).
#include <doctest/doctest.h>
#include <hiredis/hiredis.h>
#include <openssl/evp.h>

#include <optional>

#include "proxy_core/store/redis_client.h"
#include "tests/unit/redis_test_support.h"

namespace sg {
namespace {

using namespace redis_test;

struct Answer {
  int calls = 0;
  bool null = true;
  std::string text;
};

RedisClient::ReplyHandler record(Answer& a) {
  return [&a](const redisReply* r) {
    ++a.calls;
    a.null = r == nullptr;
    if (r != nullptr && r->str != nullptr) a.text.assign(r->str, r->len);
  };
}

RedisClientOptions options_for(int port, Millis timeout) {
  RedisClientOptions o;
  o.address = "127.0.0.1:" + std::to_string(port);
  o.timeout = timeout;
  return o;
}

TEST_CASE("redis client: a reply that comes after its deadline never reaches another handler") {
  REQUIRE_REDIS_SERVER();
  RedisServer server;
  REQUIRE(server.start());
  Loop loop;
  WorkerMetrics metrics;
  {
    RedisClient client(loop.get(), options_for(server.port(), Millis{100}), &metrics, {});
    client.start();
    REQUIRE(loop.run_until([&] { return client.usable(); }, 5000));
    server.signal(SIGSTOP);
    Answer late;
    client.send({"ECHO", "first"}, record(late));
    REQUIRE(loop.run_until([&] { return late.calls == 1; }, 5000));
    CHECK(late.null);  // its deadline passed
    // The server wakes up and answers "first" now: that reply belongs to the expired command.
    server.signal(SIGCONT);
    Answer next;
    client.send({"ECHO", "second"}, record(next));
    REQUIRE(loop.run_until([&] { return next.calls == 1; }, 5000));
    // Either on this connection, after "first" was dropped, or on a new one after patience.
    if (!next.null) CHECK(next.text == "second");
    loop.run_for(50);
    CHECK(late.calls == 1);
    CHECK(next.calls == 1);
    client.close();
  }
  loop.finish();
}

TEST_CASE(
    "redis client: a connection lost with a loop turn of commands unwritten fails each once") {
  REQUIRE_REDIS_SERVER();
  auto server = std::make_unique<RedisServer>();
  REQUIRE(server->start());
  const int port = server->port();
  Loop loop;
  WorkerMetrics metrics;
  {
    RedisClient client(loop.get(), options_for(port, Millis{20'000}), &metrics, {});
    client.start();
    REQUIRE(loop.run_until([&] { return client.usable(); }, 5000));
    // Some commands in flight: written, never answered.
    server->signal(SIGSTOP);
    std::vector<Answer> in_flight(50), queued(50);
    std::vector<Answer> reads(10);
    for (size_t i = 0; i < in_flight.size(); ++i)
      client.send({"SET", "k" + std::to_string(i), "v"}, record(in_flight[i]));
    loop.run_for(20);
    // The server dies; in the same loop turn, before the client can know, more are queued: they
    // sit in hiredis's buffer until this turn's flush writes them to a dead socket.
    server->signal(SIGKILL);
    server.reset();
    for (size_t i = 0; i < queued.size(); ++i)
      client.send({"SET", "q" + std::to_string(i), "v"}, record(queued[i]));
    for (Answer& r : reads)
      client.send({"PING"}, record(r), RedisClient::OnDrop::kRetryOnce);
    auto all_writes_done = [&] {
      for (const auto* v : {&in_flight, &queued})
        for (const Answer& a : *v)
          if (a.calls == 0) return false;
      return true;
    };
    REQUIRE(loop.run_until(all_writes_done, 5000));
    for (const auto* v : {&in_flight, &queued})
      for (const Answer& a : *v) {
        CHECK(a.calls == 1);
        CHECK(a.null);
      }
    // The reads wait for the next connection, and are answered there.
    for (const Answer& r : reads)
      CHECK(r.calls == 0);
    server = std::make_unique<RedisServer>();
    REQUIRE(server->start(port));
    auto reads_done = [&] {
      for (const Answer& r : reads)
        if (r.calls == 0) return false;
      return true;
    };
    REQUIRE(loop.run_until(reads_done, 15'000));
    for (const Answer& r : reads) {
      CHECK(r.calls == 1);
      CHECK(r.text == "PONG");
    }
    // No write was sent twice: none of them exists on the new server.
    CHECK(sync_command(*server, {"EXISTS", "q0"}) == "0");
    CHECK(sync_command(*server, {"EXISTS", "k0"}) == "0");
    client.close();
  }
  loop.finish();
}

TEST_CASE("redis client: closing with commands unwritten and in flight runs each handler once") {
  REQUIRE_REDIS_SERVER();
  RedisServer server;
  REQUIRE(server.start());
  Loop loop;
  WorkerMetrics metrics;
  std::vector<Answer> answers(40);
  {
    RedisClient client(loop.get(), options_for(server.port(), Millis{5000}), &metrics, {});
    client.start();
    REQUIRE(loop.run_until([&] { return client.usable(); }, 5000));
    server.signal(SIGSTOP);
    for (size_t i = 0; i < 20; ++i)
      client.send({"PING"}, record(answers[i]), RedisClient::OnDrop::kRetryOnce);
    loop.run_for(20);  // written
    for (size_t i = 20; i < answers.size(); ++i)
      client.send({"PING"}, record(answers[i]));  // still in hiredis's buffer
    // A handler that sends again while the client closes must be refused at once, not queued.
    int resends = 0;
    client.send({"PING"}, [&](const redisReply*) {
      client.send({"PING"}, [&](const redisReply* r) {
        CHECK(r == nullptr);
        ++resends;
      });
    });
    client.close();
    CHECK(resends == 1);
    for (const Answer& a : answers) {
      CHECK(a.calls == 1);
      CHECK(a.null);
    }
  }  // destroyed: the handles' close callbacks still to run must not touch it
  server.signal(SIGCONT);
  loop.finish();
  for (const Answer& a : answers)
    CHECK(a.calls == 1);
}

}  // namespace
}  // namespace sg
