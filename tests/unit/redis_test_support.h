// Shared by the Redis store's unit tests: a redis-server child process on a free loopback port
// (or a unix socket), a blocking client for checks, a uv loop driven until a condition holds, and
// blocking wrappers around the store's calls.
#pragma once

#include "proxy_core/store/redis_store.h"

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
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "proxy_core/gateway_state.h"
#include "proxy_core/ops/metrics.h"
#include "proxy_core/session/session_attributes.h"
#include "proxy_core/session/token.h"
#include "proxy_core/store/redis_codec.h"

namespace sg::redis_test {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

inline bool have_redis_server() {
  return std::system("command -v redis-server >/dev/null 2>&1") == 0;
}

inline int free_port() {
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

inline fs::path temp_dir() {
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

// One command on a blocking client, its arguments binary-safe: the reply as text ("(nil)",
// integers in decimal, an array's first string), "(null)" when there was none.
inline std::string command_text(redisContext* c, const std::vector<std::string>& a) {
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
}

// One command on a new blocking client (AUTH and SELECT first when given); command_text's reply.
inline std::string sync_command(const RedisServer& server, std::vector<std::string> args,
                                const std::string& password = {}, int db = 0) {
  redisContext* c = server.connect();
  REQUIRE(c != nullptr);
  REQUIRE(c->err == 0);
  auto run = [&](const std::vector<std::string>& a) { return command_text(c, a); };
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

inline RedisStoreConfig config_for(const std::string& address, Millis timeout = Millis{100}) {
  RedisStoreConfig cfg;
  cfg.address = address;
  cfg.key_prefix = "sgtest:";
  cfg.timeout = timeout;
  // The store's own commands: every lookup asks Redis (the local cache's tests turn it on).
  cfg.local_cache = Millis{0};
  return cfg;
}

inline SessionRecord new_record(uint8_t tag, SessionAttributes attrs = {}) {
  SessionRecord r;
  r.handle.fill(tag);
  r.created_ms = r.last_seen_ms = unix_now_ms();
  r.attributes = std::move(attrs);
  return r;
}

inline TokenHash key(const std::string& name) {
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
  StoreStatus modify(const TokenHash& k, const SessionChange& c, int64_t now_ms = 0) {
    return wait([&](auto done) {
      store.modify(k, c, now_ms != 0 ? now_ms : unix_now_ms(), std::move(done));
    });
  }
  StoreStatus rotate(const TokenHash& a, const TokenHash& b, const SessionChange& c,
                     int64_t grace_ms, int64_t now_ms = 0) {
    return wait([&](auto done) {
      store.rotate(a, b, c, grace_ms, now_ms != 0 ? now_ms : unix_now_ms(), std::move(done));
    });
  }
  StoreStatus destroy(const TokenHash& k) {
    return wait([&](auto done) { store.destroy(k, std::move(done)); });
  }
  bool connect(int timeout_ms = 3000) {
    return loop.run_until([&] { return store.usable(); }, timeout_ms);
  }
};

// A store connected to its own fresh redis-server; closed, and the loop proven empty, at the end.
struct Fixture {
  RedisServer server;
  Loop loop;
  WorkerMetrics metrics;
  std::unique_ptr<RedisStore> store;
  std::unique_ptr<Harness> h;

  explicit Fixture(Millis idle = kIdle, Millis absolute = kAbsolute, uint32_t max_attributes = 0,
                   uint32_t max_attribute_bytes = 0) {
    REQUIRE_MESSAGE(have_redis_server(), "redis-server is not installed (deploy/install-deps.sh)");
    REQUIRE(server.start());
    store = std::make_unique<RedisStore>(loop.get(), config_for(server.address()), idle, absolute,
                                         &metrics, max_attributes, max_attribute_bytes);
    h = std::make_unique<Harness>(Harness{loop, *store});
    store->start();
    REQUIRE(h->connect());
  }
  ~Fixture() {
    h.reset();
    store.reset();
    loop.finish();
  }
  std::string cmd(std::vector<std::string> args) const {
    return sync_command(server, std::move(args));
  }
  static std::string rkey(const std::string& name) {
    return redis_session_key("sgtest:", key(name));
  }
};

// redis-server is a build dependency (deploy/install-deps.sh): without it these tests fail, so
// that a CI image missing it is noticed instead of passing with nothing tested.
#define REQUIRE_REDIS_SERVER() \
  REQUIRE_MESSAGE(have_redis_server(), "redis-server is not installed (deploy/install-deps.sh)")

}  // namespace sg::redis_test
