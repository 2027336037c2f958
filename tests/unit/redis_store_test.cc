// RedisStore against a real redis-server started by each test on a free loopback port (or a unix
// socket), killed at the end. Skipped, with a message, when redis-server is not installed.
#include "proxy_core/redis_store.h"

#include <doctest/doctest.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "proxy_core/gateway_state.h"
#include "proxy_core/redis_codec.h"
#include "proxy_core/session_attributes.h"
#include "proxy_core/token.h"

namespace sg {
namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

bool have_redis_server() {
  return std::system("command -v redis-server >/dev/null 2>&1") == 0;
}

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

fs::path temp_dir() {
  std::string tmpl = (fs::temp_directory_path() / "sg-redis-XXXXXX").string();
  REQUIRE(mkdtemp(tmpl.data()) != nullptr);
  return tmpl;
}

// A redis-server child process. TCP on 127.0.0.1:port, or only `unix_path` when that is set.
class RedisServer {
 public:
  explicit RedisServer(std::vector<std::string> extra = {}, std::string unix_path = {})
      : extra_(std::move(extra)), unix_path_(std::move(unix_path)), dir_(temp_dir()) {}
  ~RedisServer() {
    stop();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // Starts on `port`, or on a free one (retrying if another process takes it first).
  bool start(int port = 0) {
    for (int attempt = 0; attempt < 5; ++attempt) {
      port_ = port != 0 ? port : free_port();
      if (spawn() && wait_ready()) return true;
      stop();
      if (port != 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGCONT);
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  void signal(int sig) { ::kill(pid_, sig); }
  int port() const { return port_; }
  std::string address() const {
    return unix_path_.empty() ? "127.0.0.1:" + std::to_string(port_) : unix_path_;
  }
  const fs::path& dir() const { return dir_; }

  // A blocking client for checks; nullptr-safe replies are freed by the caller via Reply.
  redisContext* connect() const {
    timeval tv{1, 0};
    return unix_path_.empty() ? redisConnectWithTimeout("127.0.0.1", port_, tv)
                              : redisConnectUnixWithTimeout(unix_path_.c_str(), tv);
  }

 private:
  bool spawn() {
    std::vector<std::string> args = {"redis-server"};
    if (!first_arg_.empty()) args.push_back(first_arg_);
    if (unix_path_.empty()) {
      args.insert(args.end(), {"--port", std::to_string(port_), "--bind", "127.0.0.1"});
    } else {
      args.insert(args.end(), {"--port", "0", "--unixsocket", unix_path_});
    }
    args.insert(args.end(), {"--save", "", "--appendonly", "no", "--daemonize", "no", "--dir",
                             dir_.string(), "--loglevel", "warning"});
    args.insert(args.end(), extra_.begin(), extra_.end());
    pid_ = ::fork();
    if (pid_ < 0) return false;
    if (pid_ == 0) {
      std::vector<char*> argv;
      for (std::string& a : args)
        argv.push_back(a.data());
      argv.push_back(nullptr);
      FILE* devnull = std::fopen("/dev/null", "w");
      if (devnull != nullptr) {
        ::dup2(fileno(devnull), STDOUT_FILENO);
        ::dup2(fileno(devnull), STDERR_FILENO);
      }
      ::execvp("redis-server", argv.data());
      ::_exit(127);
    }
    return true;
  }
  bool wait_ready() {
    const auto deadline = Clock::now() + std::chrono::seconds(5);
    while (Clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;  // exited (port taken?)
        return false;
      }
      if (redisContext* c = connect(); c != nullptr) {
        bool ok = c->err == 0;
        if (ok) {
          auto* r = static_cast<redisReply*>(redisCommand(c, "PING"));
          // A password-protected server answering NOAUTH is up, too.
          ok = r != nullptr;
          if (r != nullptr) freeReplyObject(r);
        }
        redisFree(c);
        if (ok) return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

 public:
  std::string first_arg_;  // e.g. a sentinel configuration file

 private:
  std::vector<std::string> extra_;
  std::string unix_path_;
  fs::path dir_;
  pid_t pid_ = -1;
  int port_ = 0;
};

// One command on a blocking client; the reply as text ("(nil)", integers in decimal).
std::string sync_command(const RedisServer& server, std::vector<std::string> args,
                         const std::string& password = {}, int db = 0) {
  redisContext* c = server.connect();
  REQUIRE(c != nullptr);
  REQUIRE(c->err == 0);
  auto run = [&](std::vector<std::string> a) {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const std::string& s : a) {
      argv.push_back(s.data());
      lens.push_back(s.size());
    }
    auto* r = static_cast<redisReply*>(
        redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data()));
    std::string out = "(null)";
    if (r != nullptr) {
      if (r->type == REDIS_REPLY_INTEGER) {
        out = std::to_string(r->integer);
      } else if (r->type == REDIS_REPLY_NIL) {
        out = "(nil)";
      } else if (r->str != nullptr) {
        out.assign(r->str, r->len);
      } else if (r->type == REDIS_REPLY_ARRAY && r->elements > 0 && r->element[0]->str) {
        out.assign(r->element[0]->str, r->element[0]->len);
      }
      freeReplyObject(r);
    }
    return out;
  };
  if (!password.empty()) run({"AUTH", password});
  if (db != 0) run({"SELECT", std::to_string(db)});
  std::string out = run(std::move(args));
  redisFree(c);
  return out;
}

// A uv loop driven until a condition holds; finish() proves no handle was left open.
class Loop {
 public:
  Loop() { uv_loop_init(&loop_); }
  ~Loop() {
    if (!finished_) finish();
  }
  uv_loop_t* get() { return &loop_; }

  bool run_until(const std::function<bool()>& done, int timeout_ms) {
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    auto* tick = new uv_timer_t;
    uv_timer_init(&loop_, tick);
    uv_timer_start(
        tick, [](uv_timer_t*) {}, 1, 1);  // wake at least every millisecond
    bool ok = false;
    while (!(ok = done()) && Clock::now() < deadline)
      uv_run(&loop_, UV_RUN_ONCE);
    uv_close(reinterpret_cast<uv_handle_t*>(tick),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    uv_run(&loop_, UV_RUN_NOWAIT);
    return ok;
  }
  void run_for(int ms) {
    run_until([] { return false; }, ms);
  }
  // The loop must finish on its own and close: every handle was closed.
  void finish() {
    finished_ = true;
    CHECK(uv_run(&loop_, UV_RUN_DEFAULT) == 0);
    CHECK(uv_loop_close(&loop_) == 0);
  }

 private:
  uv_loop_t loop_;
  bool finished_ = false;
};

constexpr Millis kIdle{60'000};
constexpr Millis kAbsolute{3'600'000};

RedisStoreConfig config_for(const std::string& address, Millis timeout = Millis{100}) {
  RedisStoreConfig cfg;
  cfg.address = address;
  cfg.key_prefix = "sgtest:";
  cfg.timeout = timeout;
  return cfg;
}

SessionRecord new_record(uint8_t tag, SessionAttributes attrs = {}) {
  SessionRecord r;
  r.handle.fill(tag);
  r.created_ms = r.last_seen_ms = unix_now_ms();
  r.attributes = std::move(attrs);
  return r;
}

TokenHash key(const std::string& name) {
  return hash_token(name);
}

// Blocking wrappers: issue, run the loop until the callback ran (it must run exactly once).
struct Harness {
  Loop& loop;
  RedisStore& store;

  LookupResult lookup(const TokenHash& k, int64_t now_ms = 0) {
    std::optional<LookupResult> out;
    int calls = 0;
    store.lookup(k, now_ms != 0 ? now_ms : unix_now_ms(), [&](LookupResult r) {
      ++calls;
      out = std::move(r);
    });
    CHECK(calls == 0);  // never synchronously
    REQUIRE(loop.run_until([&] { return out.has_value(); }, 3000));
    return *out;
  }
  StoreStatus wait(const std::function<void(SessionStore::DoneCallback)>& op) {
    std::optional<StoreStatus> out;
    op([&](StoreStatus s) { out = s; });
    CHECK_FALSE(out.has_value());
    REQUIRE(loop.run_until([&] { return out.has_value(); }, 3000));
    return *out;
  }
  StoreStatus create(const TokenHash& k, const SessionRecord& r) {
    return wait([&](auto done) { store.create(k, r, std::move(done)); });
  }
  StoreStatus update(const TokenHash& k, const SessionRecord& r) {
    return wait([&](auto done) { store.update(k, r, std::move(done)); });
  }
  StoreStatus rotate(const TokenHash& a, const TokenHash& b, const SessionRecord& r) {
    return wait([&](auto done) { store.rotate(a, b, r, std::move(done)); });
  }
  StoreStatus destroy(const TokenHash& k) {
    return wait([&](auto done) { store.destroy(k, std::move(done)); });
  }
  bool connect(int timeout_ms = 3000) {
    return loop.run_until([&] { return store.usable(); }, timeout_ms);
  }
};

#define SKIP_WITHOUT_REDIS()                                            \
  if (!have_redis_server()) {                                           \
    MESSAGE("redis-server is not installed: Redis store test skipped"); \
    return;                                                             \
  }

TEST_CASE("redis store: a session round-trips with handle, times, attributes and a TTL") {
  SKIP_WITHOUT_REDIS();
  RedisServer server;
  REQUIRE(server.start());
  Loop loop;
  WorkerMetrics metrics;
  {
    RedisStore store(loop.get(), config_for(server.address()), kIdle, kAbsolute, &metrics);
    Harness h{loop, store};
    CHECK_FALSE(store.usable());
    store.start();
    REQUIRE(h.connect());

    const SessionRecord rec = new_record(7, {{"role", "admin"}, {"user", "alice"}});
    CHECK(h.create(key("a"), rec) == StoreStatus::kOk);
    LookupResult r = h.lookup(key("a"));
    REQUIRE(r.status == StoreStatus::kOk);
    REQUIRE(r.record);
    CHECK(r.record->handle == rec.handle);
    CHECK(r.record->created_ms == rec.created_ms);
    CHECK(r.record->last_seen_ms == rec.last_seen_ms);
    CHECK(r.record->attributes == rec.attributes);

    // One key, prefix + hex(sha256), with TTL = the smaller remaining timeout (idle here).
    const std::string k = redis_session_key("sgtest:", key("a"));
    const long pttl = std::stol(sync_command(server, {"PTTL", k}));
    CHECK(pttl > kIdle.count() - 5000);
    CHECK(pttl <= kIdle.count());
    CHECK(sync_command(server, {"DBSIZE"}) == "1");

    // A second create under the same key replaces nothing.
    CHECK(h.create(key("a"), new_record(8)) == StoreStatus::kUnavailable);
    CHECK(h.lookup(key("a")).record->handle == rec.handle);
    CHECK(h.lookup(key("unknown")).status == StoreStatus::kNotFound);

    CHECK(metrics.redis_commands.get() >= 6);
    CHECK(metrics.redis_command_duration.count.get() >= 5);
    CHECK(metrics.redis_connected.load() == 1);
    store.close();
    CHECK_FALSE(store.usable());
  }
  loop.finish();
}

TEST_CASE("redis store: update rewrites last-seen and attributes and resets the TTL") {
  SKIP_WITHOUT_REDIS();
  RedisServer server;
  REQUIRE(server.start());
  Loop loop;
  {
    RedisStore store(loop.get(), config_for(server.address()), Millis{10'000}, kAbsolute, nullptr);
    Harness h{loop, store};
    store.start();
    REQUIRE(h.connect());
    SessionRecord rec = new_record(1);
    rec.last_seen_ms -= 5'000;  // half the idle time used: TTL about 5 s
    CHECK(h.create(key("u"), rec) == StoreStatus::kOk);
    const std::string k = redis_session_key("sgtest:", key("u"));
    CHECK(std::stol(sync_command(server, {"PTTL", k})) <= 5'000);

    rec.last_seen_ms = unix_now_ms();
    rec.attributes = {{"cart", "3"}};
    CHECK(h.update(key("u"), rec) == StoreStatus::kOk);
    CHECK(std::stol(sync_command(server, {"PTTL", k})) > 9'000);
    LookupResult r = h.lookup(key("u"));
    REQUIRE(r.record);
    CHECK(r.record->last_seen_ms == rec.last_seen_ms);
    CHECK(r.record->attributes == rec.attributes);

    CHECK(h.update(key("nobody"), rec) == StoreStatus::kNotFound);
    CHECK(sync_command(server, {"EXISTS", redis_session_key("sgtest:", key("nobody"))}) == "0");
  }
  loop.finish();
}

TEST_CASE("redis store: rotate moves the session atomically and keeps its handle") {
  SKIP_WITHOUT_REDIS();
  RedisServer server;
  REQUIRE(server.start());
  Loop loop;
  {
    RedisStore store(loop.get(), config_for(server.address()), kIdle, kAbsolute, nullptr);
    Harness h{loop, store};
    store.start();
    REQUIRE(h.connect());
    const SessionRecord rec = new_record(3, {{"user", "bob"}});
    CHECK(h.create(key("old"), rec) == StoreStatus::kOk);

    SessionRecord moved = rec;
    moved.handle.fill(0xee);  // a stale or forged handle in the caller's record is not adopted
    moved.last_seen_ms = unix_now_ms();
    moved.attributes = {{"user", "bob"}, {"level", "2"}};
    CHECK(h.rotate(key("old"), key("new"), moved) == StoreStatus::kOk);
    CHECK(h.lookup(key("old")).status == StoreStatus::kNotFound);
    LookupResult r = h.lookup(key("new"));
    REQUIRE(r.record);
    CHECK(r.record->handle == rec.handle);
    CHECK(r.record->created_ms == rec.created_ms);
    CHECK(r.record->attributes == moved.attributes);
    CHECK(std::stol(sync_command(server, {"PTTL", redis_session_key("sgtest:", key("new"))})) > 0);

    // The old token is gone for every instance: a second rotate of it finds nothing.
    CHECK(h.rotate(key("old"), key("newer"), moved) == StoreStatus::kNotFound);
    // A taken target changes nothing.
    CHECK(h.create(key("taken"), new_record(4)) == StoreStatus::kOk);
    CHECK(h.rotate(key("new"), key("taken"), moved) == StoreStatus::kUnavailable);
    CHECK(h.lookup(key("new")).status == StoreStatus::kOk);
    CHECK(h.lookup(key("taken")).record->handle == new_record(4).handle);
  }
  loop.finish();
}

TEST_CASE("redis store: destroy deletes the key") {
  SKIP_WITHOUT_REDIS();
  RedisServer server;
  REQUIRE(server.start());
  Loop loop;
  {
    RedisStore store(loop.get(), config_for(server.address()), kIdle, kAbsolute, nullptr);
    Harness h{loop, store};
    store.start();
    REQUIRE(h.connect());
    CHECK(h.create(key("d"), new_record(5)) == StoreStatus::kOk);
    CHECK(h.destroy(key("d")) == StoreStatus::kOk);
    CHECK(h.lookup(key("d")).status == StoreStatus::kNotFound);
    CHECK(h.destroy(key("d")) == StoreStatus::kNotFound);
    CHECK(sync_command(server, {"DBSIZE"}) == "0");
  }
  loop.finish();
}

TEST_CASE("redis store: idle and absolute expiry, by the client clock and by Redis's TTL") {
  SKIP_WITHOUT_REDIS();
  RedisServer server;
  REQUIRE(server.start());
  Loop loop;
  {
    const Millis idle{1000}, absolute{2000};
    RedisStore store(loop.get(), config_for(server.address()), idle, absolute, nullptr);
    Harness h{loop, store};
    store.start();
    REQUIRE(h.connect());
    const SessionRecord rec = new_record(6);
    CHECK(h.create(key("e"), rec) == StoreStatus::kOk);

    // The caller's clock decides, whatever Redis still holds.
    CHECK(h.lookup(key("e"), rec.last_seen_ms + 1000).status == StoreStatus::kOk);
    LookupResult r = h.lookup(key("e"), rec.last_seen_ms + 1001);
    CHECK(r.status == StoreStatus::kNotFound);
    CHECK(r.expired == ExpiryKind::kIdle);
    CHECK_FALSE(r.record);
    r = h.lookup(key("e"), rec.created_ms + 2001);
    CHECK(r.status == StoreStatus::kNotFound);
    CHECK(r.expired == ExpiryKind::kAbsolute);

    // Absolute: created 1.7 s ago and just seen, so only 300 ms remain: the TTL says so.
    SessionRecord old = new_record(9);
    old.created_ms -= 1700;
    CHECK(h.create(key("abs"), old) == StoreStatus::kOk);
    CHECK(std::stol(sync_command(server, {"PTTL", redis_session_key("sgtest:", key("abs"))})) <=
          300);

    // Real time: after the idle timeout Redis has dropped both keys.
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    CHECK(h.lookup(key("e")).status == StoreStatus::kNotFound);
    CHECK(h.lookup(key("abs")).status == StoreStatus::kNotFound);
    CHECK(sync_command(server, {"DBSIZE"}) == "0");
  }
  loop.finish();
}

TEST_CASE("redis store: connection refused fails fast with kUnavailable and is not usable") {
  SKIP_WITHOUT_REDIS();
  Loop loop;
  WorkerMetrics metrics;
  {
    const int port = free_port();  // nothing listens there
    RedisStore store(loop.get(), config_for("127.0.0.1:" + std::to_string(port), Millis{50}), kIdle,
                     kAbsolute, &metrics);
    Harness h{loop, store};
    store.start();
    loop.run_for(20);
    CHECK_FALSE(store.usable());
    const auto t0 = Clock::now();
    CHECK(h.lookup(key("x")).status == StoreStatus::kUnavailable);
    CHECK(h.create(key("x"), new_record(1)) == StoreStatus::kUnavailable);
    const auto elapsed = Clock::now() - t0;
    CHECK(elapsed < std::chrono::milliseconds(50));
    CHECK(metrics.redis_rejected.get() == 2);  // refused, not queued
    loop.run_for(300);                         // a few backoff rounds
    CHECK_FALSE(store.usable());
  }
  loop.finish();
}

TEST_CASE("redis store: Redis killed mid-run fails within the timeout; restarted, it recovers") {
  SKIP_WITHOUT_REDIS();
  auto server = std::make_unique<RedisServer>();
  REQUIRE(server->start());
  const int port = server->port();
  Loop loop;
  WorkerMetrics metrics;
  {
    const Millis timeout{100};
    RedisStore store(loop.get(), config_for(server->address(), timeout), kIdle, kAbsolute,
                     &metrics);
    Harness h{loop, store};
    store.start();
    REQUIRE(h.connect());
    CHECK(h.create(key("k"), new_record(2)) == StoreStatus::kOk);

    server->stop();  // SIGKILL
    const auto t0 = Clock::now();
    CHECK(h.lookup(key("k")).status == StoreStatus::kUnavailable);
    const auto elapsed = Clock::now() - t0;
    MESSAGE("kUnavailable after Redis was killed: "
            << std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count() << " us");
    CHECK(elapsed <= timeout + std::chrono::milliseconds(50));
    CHECK(loop.run_until([&] { return !store.usable(); }, static_cast<int>(timeout.count())));
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
  SKIP_WITHOUT_REDIS();
  RedisServer server;
  REQUIRE(server.start());
  Loop loop;
  WorkerMetrics metrics;
  {
    const Millis timeout{100};
    RedisStore store(loop.get(), config_for(server.address(), timeout), kIdle, kAbsolute, &metrics);
    Harness h{loop, store};
    store.start();
    REQUIRE(h.connect());
    server.signal(SIGSTOP);
    const auto t0 = Clock::now();
    CHECK(h.lookup(key("s")).status == StoreStatus::kUnavailable);
    const auto elapsed = Clock::now() - t0;
    CHECK(elapsed >= timeout - std::chrono::milliseconds(5));
    CHECK(elapsed <= timeout + std::chrono::milliseconds(50));
    CHECK_FALSE(store.usable());  // readiness follows at once
    CHECK(metrics.redis_timeouts.get() == 1);
    loop.run_for(600);  // past patience: the connection is dropped and retried
    CHECK_FALSE(store.usable());
    server.signal(SIGCONT);
    REQUIRE(h.connect(5000));
    CHECK(h.create(key("s"), new_record(1)) == StoreStatus::kOk);
  }
  loop.finish();
}

TEST_CASE("redis store: password_file and database are applied; a wrong password never connects") {
  SKIP_WITHOUT_REDIS();
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
    RedisStore store(loop.get(), cfg, kIdle, kAbsolute, nullptr);
    Harness h{loop, store};
    store.start();
    REQUIRE(h.connect());
    CHECK(h.create(key("p"), new_record(1)) == StoreStatus::kOk);
    const std::string k = redis_session_key("sgtest:", key("p"));
    CHECK(sync_command(server, {"EXISTS", k}, "s3cret", 3) == "1");
    CHECK(sync_command(server, {"EXISTS", k}, "s3cret", 0) == "0");

    cfg.password_file = bad.string();
    RedisStore wrong(loop.get(), cfg, kIdle, kAbsolute, nullptr);
    Harness w{loop, wrong};
    wrong.start();
    CHECK_FALSE(w.connect(300));
    CHECK(w.lookup(key("p")).status == StoreStatus::kUnavailable);
    wrong.close();
  }
  loop.finish();
}

TEST_CASE("redis store: a unix socket path connects over the socket") {
  SKIP_WITHOUT_REDIS();
  const fs::path dir = temp_dir();
  const std::string path = (dir / "redis.sock").string();
  {
    RedisServer server({}, path);
    REQUIRE(server.start());
    Loop loop;
    {
      RedisStore store(loop.get(), config_for(path), kIdle, kAbsolute, nullptr);
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
  SKIP_WITHOUT_REDIS();
  RedisServer server;
  REQUIRE(server.start());
  Loop loop;
  int unavailable = 0;
  {
    RedisStore store(loop.get(), config_for(server.address()), kIdle, kAbsolute, nullptr);
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
  SKIP_WITHOUT_REDIS();
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
    RedisStore store(loop.get(), cfg, kIdle, kAbsolute, nullptr);
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
