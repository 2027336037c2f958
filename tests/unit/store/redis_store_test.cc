// RedisStore's connection behaviour against a real redis-server started by each test on a free
// loopback port (or a unix socket), killed at the end: connect, failures, timeouts, reconnects,
// password and database, Sentinel. The session operations are in redis_session_test.cc. The
// tests fail when redis-server is not installed.
#include <doctest/doctest.h>

#include "tests/unit/redis_test_support.h"

namespace sg {
namespace {

using namespace redis_test;

TEST_CASE("redis store: connection refused fails fast with kUnavailable and is not usable") {
  REQUIRE_REDIS_SERVER();
  Loop loop;
  WorkerMetrics metrics;
  {
    const int port = free_port();  // nothing listens there
    // A command timeout far beyond the harness's wait: an answer within that wait proves the
    // calls failed at once instead of queueing for the timeout.
    RedisStore store(loop.get(), config_for("127.0.0.1:" + std::to_string(port), Millis{60'000}),
                     kIdle, kAbsolute, &metrics, 0, 0);
    Harness h{loop, store};
    store.start();
    loop.run_for(20);
    CHECK_FALSE(store.usable());
    CHECK(h.lookup(key("x")).status == StoreStatus::kUnavailable);
    CHECK(h.create(key("x"), new_record(1)) == StoreStatus::kUnavailable);
    CHECK(metrics.redis_rejected.get() == 2);  // refused, not queued
    CHECK(metrics.redis_timeouts.get() == 0);
    loop.run_for(300);  // a few backoff rounds
    CHECK_FALSE(store.usable());
  }
  loop.finish();
}

TEST_CASE(
    "redis store: Redis killed mid-run fails commands with kUnavailable and recovers after a "
    "restart") {
  REQUIRE_REDIS_SERVER();
  auto server = std::make_unique<RedisServer>();
  REQUIRE(server->start());
  const int port = server->port();
  Loop loop;
  WorkerMetrics metrics;
  {
    const Millis timeout{100};
    RedisStore store(loop.get(), config_for(server->address(), timeout), kIdle, kAbsolute, &metrics,
                     0, 0);
    Harness h{loop, store};
    store.start();
    REQUIRE(h.connect());
    CHECK(h.create(key("k"), new_record(2)) == StoreStatus::kOk);

    server->stop();  // SIGKILL
    const auto t0 = Clock::now();
    CHECK(h.lookup(key("k")).status == StoreStatus::kUnavailable);
    const auto elapsed = Clock::now() - t0;
    // A figure, not a check: the reply's arrival within the harness's wait is what is asserted.
    MESSAGE("kUnavailable after Redis was killed: "
            << std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count() << " us");
    CHECK(loop.run_until([&] { return !store.usable(); }, 5000));
    CHECK(h.lookup(key("k")).status == StoreStatus::kUnavailable);

    // The same store object reconnects by itself (the data is gone: no persistence here).
    server = std::make_unique<RedisServer>();
    REQUIRE(server->start(port));
    REQUIRE(h.connect(5000));
    CHECK(h.create(key("k2"), new_record(3)) == StoreStatus::kOk);
    CHECK(h.lookup(key("k2")).status == StoreStatus::kOk);
    CHECK(metrics.redis_reconnects.get() == 1);
    CHECK(metrics.redis_errors.get() + metrics.redis_rejected.get() >= 2);
  }
  loop.finish();
}

TEST_CASE("redis store: a stalled Redis fails commands at the timeout, then is dropped") {
  REQUIRE_REDIS_SERVER();
  RedisServer server;
  REQUIRE(server.start());
  Loop loop;
  WorkerMetrics metrics;
  {
    const Millis timeout{100};
    RedisStore store(loop.get(), config_for(server.address(), timeout), kIdle, kAbsolute, &metrics,
                     0, 0);
    Harness h{loop, store};
    store.start();
    REQUIRE(h.connect());
    server.signal(SIGSTOP);
    const auto t0 = Clock::now();
    CHECK(h.lookup(key("s")).status == StoreStatus::kUnavailable);
    const auto elapsed = Clock::now() - t0;
    // Never before the timeout (a lower bound holds on any machine); the upper bound is the
    // harness's wait, generous for a loaded CI runner.
    CHECK(elapsed >= timeout - std::chrono::milliseconds(5));
    CHECK(metrics.redis_timeouts.get() == 1);  // failed by the timeout, not by a lost connection
    CHECK_FALSE(store.usable());               // readiness follows at once
    // Past patience the connection is dropped and retried (the retries time out meanwhile).
    CHECK(loop.run_until([&] { return metrics.redis_connected.load() == 0; }, 10'000));
    CHECK_FALSE(store.usable());
    server.signal(SIGCONT);
    REQUIRE(h.connect(5000));
    CHECK(h.create(key("s"), new_record(1)) == StoreStatus::kOk);
  }
  loop.finish();
}

TEST_CASE(
    "redis store: password_file and database are applied and a wrong password never connects") {
  REQUIRE_REDIS_SERVER();
  RedisServer server({"--requirepass", "s3cret"});
  REQUIRE(server.start());
  const fs::path good = server.dir() / "password";
  const fs::path bad = server.dir() / "wrong";
  std::ofstream(good) << "  s3cret\n";
  std::ofstream(bad) << "nope\n";
  Loop loop;
  {
    RedisStoreConfig cfg = config_for(server.address());
    cfg.password_file = good.string();
    cfg.database = 3;
    RedisStore store(loop.get(), cfg, kIdle, kAbsolute, nullptr, 0, 0);
    Harness h{loop, store};
    store.start();
    REQUIRE(h.connect());
    CHECK(h.create(key("p"), new_record(1)) == StoreStatus::kOk);
    const std::string k = redis_session_key("sgtest:", key("p"));
    CHECK(sync_command(server, {"EXISTS", k}, "s3cret", 3) == "1");
    CHECK(sync_command(server, {"EXISTS", k}, "s3cret", 0) == "0");

    cfg.password_file = bad.string();
    RedisStore wrong(loop.get(), cfg, kIdle, kAbsolute, nullptr, 0, 0);
    Harness w{loop, wrong};
    wrong.start();
    CHECK_FALSE(w.connect(300));
    CHECK(w.lookup(key("p")).status == StoreStatus::kUnavailable);
    wrong.close();
  }
  loop.finish();
}

TEST_CASE("redis store: a unix socket path connects over the socket") {
  REQUIRE_REDIS_SERVER();
  const fs::path dir = temp_dir();
  const std::string path = (dir / "redis.sock").string();
  {
    RedisServer server({}, path);
    REQUIRE(server.start());
    Loop loop;
    {
      RedisStore store(loop.get(), config_for(path), kIdle, kAbsolute, nullptr, 0, 0);
      Harness h{loop, store};
      store.start();
      REQUIRE(h.connect());
      CHECK(store.server() == path);
      CHECK(h.create(key("u"), new_record(1)) == StoreStatus::kOk);
      CHECK(h.lookup(key("u")).status == StoreStatus::kOk);
    }
    loop.finish();
  }
  fs::remove_all(dir);
}

TEST_CASE("redis store: commands in flight fail with kUnavailable on close, and nothing leaks") {
  REQUIRE_REDIS_SERVER();
  RedisServer server;
  REQUIRE(server.start());
  Loop loop;
  int unavailable = 0;
  {
    RedisStore store(loop.get(), config_for(server.address()), kIdle, kAbsolute, nullptr, 0, 0);
    Harness h{loop, store};
    store.start();
    REQUIRE(h.connect());
    for (int i = 0; i < 100; ++i) {
      store.lookup(key(std::to_string(i)), unix_now_ms(), [&](LookupResult r) {
        if (r.status == StoreStatus::kUnavailable) ++unavailable;
      });
    }
    store.close();  // before any reply was read
    CHECK(unavailable == 100);
    // After close, calls complete at once.
    store.destroy(key("z"), [&](StoreStatus s) { unavailable += s == StoreStatus::kUnavailable; });
    CHECK(unavailable == 101);
  }
  loop.finish();
}

// Sentinel: one master, one replica, one sentinel watching them. The store asks the sentinel
// (after a dead one) for the master, and follows a failover to the replica.
TEST_CASE("redis store: sentinel discovery and failover") {
  REQUIRE_REDIS_SERVER();
  RedisServer master({"--repl-diskless-sync-delay", "0"});
  REQUIRE(master.start());
  RedisServer replica({"--replicaof", "127.0.0.1", std::to_string(master.port())});
  REQUIRE(replica.start());
  // The sentinel learns replicas from the master's INFO (at once, then every 10 s): start it
  // only once the replica is attached and in sync.
  Loop loop;
  REQUIRE(loop.run_until(
      [&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        return sync_command(master, {"INFO", "replication"}).find("state=online") !=
               std::string::npos;
      },
      10000));
  RedisServer sentinel({"--sentinel"});
  const int sentinel_port = free_port();
  const fs::path conf = sentinel.dir() / "sentinel.conf";
  std::ofstream(conf) << "sentinel monitor mymaster 127.0.0.1 " << master.port() << " 1\n"
                      << "sentinel down-after-milliseconds mymaster 1000\n"
                      << "sentinel failover-timeout mymaster 5000\n";
  sentinel.first_arg_ = conf.string();  // redis-server <conf> --port N ... --sentinel
  REQUIRE(sentinel.start(sentinel_port));
  {
    RedisStoreConfig cfg = config_for("unused:1", Millis{200});
    cfg.sentinels = {"127.0.0.1:" + std::to_string(free_port()),  // dead: skipped
                     "127.0.0.1:" + std::to_string(sentinel_port)};
    cfg.master_name = "mymaster";
    RedisStore store(loop.get(), cfg, kIdle, kAbsolute, nullptr, 0, 0);
    Harness h{loop, store};
    store.start();
    REQUIRE(h.connect(5000));
    CHECK(store.server() == master.address());
    CHECK(h.create(key("f"), new_record(4)) == StoreStatus::kOk);
    // Replicated before the failover (the contract covers replicated sessions only).
    const std::string fk = redis_session_key("sgtest:", key("f"));
    REQUIRE(loop.run_until([&] { return sync_command(replica, {"EXISTS", fk}) == "1"; }, 5000));

    // The sentinel refuses (NOGOODSLAVE) until it has discovered the replica: retry.
    REQUIRE(loop.run_until(
        [&] {
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
          return sync_command(sentinel, {"SENTINEL", "failover", "mymaster"}) == "OK";
        },
        15000));
    REQUIRE(loop.run_until([&] { return store.usable() && store.server() == replica.address(); },
                           20000));
    LookupResult r = h.lookup(key("f"));
    CHECK(r.status == StoreStatus::kOk);
    CHECK(h.create(key("after"), new_record(5)) == StoreStatus::kOk);
  }
  loop.finish();
}

}  // namespace
}  // namespace sg
