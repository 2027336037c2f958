// RedisStore's local cache against a real redis-server: the cases an adversarial review found
// (the cache alone is in redis_local_cache_test.cc, the everyday behaviour end to end in
// tests/integration/test_redis_cache.py).
#include <doctest/doctest.h>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "tests/unit/redis_test_support.h"

namespace sg {
namespace {

using namespace redis_test;

// A blocking connection of the test's own (the "other instance" or a hostile client).
struct RawClient {
  redisContext* c;
  explicit RawClient(const RedisServer& server) : c(server.connect()) { REQUIRE(c != nullptr); }
  ~RawClient() { redisFree(c); }
  std::string run(const std::vector<std::string>& a) { return command_text(c, a); }
};

// A TCP front of two Redis servers on one address (a DNS name or a balancer whose target moves, a
// failover behind a load balancer): the store's invalidation connection goes to `second`, its
// command connection (and anything else) to `first`.
class SplitFront {
 public:
  SplitFront(int first, int second) : first_(first), second_(second) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int on = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    REQUIRE(::listen(listen_fd_, 16) == 0);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~SplitFront() {
    stop_ = true;
    acceptor_.join();
    ::close(listen_fd_);
    for (std::thread& t : pumps_)
      t.join();
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  static int dial(int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(fd);
      return -1;
    }
    return fd;
  }
  void accept_loop() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 10) != 1) continue;
      const int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd >= 0) pumps_.emplace_back([this, fd] { pump(fd); });
    }
  }
  void pump(int client) {
    char buf[65536];
    pollfd first{client, POLLIN, 0};
    while (!stop_ && ::poll(&first, 1, 10) != 1) {
    }
    ssize_t n = ::recv(client, buf, sizeof buf, 0);
    const std::string_view head(buf, n > 0 ? static_cast<size_t>(n) : 0);
    // The command connection loads its scripts at once; the listener loads none.
    const bool listener = head.find("SCRIPT") == std::string_view::npos;
    const int server = n > 0 ? dial(listener ? second_ : first_) : -1;
    if (server >= 0 && ::send(server, buf, static_cast<size_t>(n), MSG_NOSIGNAL) == n) {
      pollfd fds[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
      bool open = true;
      while (!stop_ && open) {
        if (::poll(fds, 2, 10) <= 0) continue;
        for (int i = 0; i < 2 && open; ++i) {
          if (fds[i].revents == 0) continue;
          n = ::recv(fds[i].fd, buf, sizeof buf, 0);
          open = n > 0 && ::send(fds[1 - i].fd, buf, static_cast<size_t>(n), MSG_NOSIGNAL) == n;
        }
      }
    }
    if (server >= 0) ::close(server);
    ::close(client);
  }

  int first_;
  int second_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  std::vector<std::thread> pumps_;  // the acceptor's own: joined after it
};

TEST_CASE(
    "redis cache: the two connections on different servers behind one address keep the cache off "
    "(a client of the listener's id on the command's server gets no invalidations meant for it)") {
  REQUIRE_REDIS_SERVER();
  RedisServer data;       // the command connection's server: the sessions
  RedisServer elsewhere;  // where the listener lands
  REQUIRE(data.start());
  REQUIRE(elsewhere.start());
  // Subscribers on the data server under every id the listener may get elsewhere (ids are
  // numbered per server, from 1): whichever it gets, REDIRECT to it succeeds on the data server.
  std::vector<std::unique_ptr<RawClient>> decoys;
  RawClient probe(elsewhere);
  const long long next_elsewhere = std::stoll(probe.run({"CLIENT", "ID"})) + 1;
  for (;;) {
    decoys.push_back(std::make_unique<RawClient>(data));
    const long long id = std::stoll(decoys.back()->run({"CLIENT", "ID"}));
    decoys.back()->run({"SUBSCRIBE", "decoy"});
    if (id > next_elsewhere + 20) break;
    REQUIRE(decoys.size() < 200);
  }
  SplitFront front(data.port(), elsewhere.port());
  Loop loop;
  WorkerMetrics metrics;
  {
    RedisStoreConfig cfg = config_for(front.address());
    cfg.local_cache = Millis{60'000};
    RedisStore store(loop.get(), cfg, kIdle, kAbsolute, &metrics, 0, 0);
    Harness h{loop, store};
    store.start();
    REQUIRE(h.connect());
    const TokenHash k = key("victim");
    REQUIRE(h.create(k, new_record(7)) == StoreStatus::kOk);
    LookupResult out;
    // Whatever the handshake concluded, give it time to conclude (then look up again).
    loop.run_for(200);
    CHECK(h.lookup(k).status == StoreStatus::kOk);
    // A logout on another instance: Redis tells the decoy, not this worker.
    CHECK(sync_command(data, {"DEL", Fixture::rkey("victim")}) == "1");
    loop.run_for(50);
    CHECK_FALSE(store.lookup_now(k, unix_now_ms(), out));
    CHECK(h.lookup(k).status == StoreStatus::kNotFound);
    store.close();
  }
  loop.finish();
}

// The tracking table entry Redis keeps per key read (~185 B, until the key is written: never, for
// a key that does not exist; not even when the connection closes) must not be one per unknown
// token: random session-shaped cookies would grow Redis's memory by 185 B per request up to
// tracking-table-max-keys (1,000,000 by default), counted in used_memory (maxmemory: evictions of
// real sessions, or OOM refusals of logins), and once full Redis drops random tracked keys,
// invalidating live copies. Found by the review of the local cache (the cache tracked every read);
// fixed with CLIENT TRACKING ... OPTIN and CLIENT CACHING yes only before the re-read of a key a
// lookup found live (cache_refill).
TEST_CASE("redis cache: lookups of unknown tokens leave nothing in Redis's tracking table") {
  REQUIRE_REDIS_SERVER();
  Fixture f;  // its store does not cache; a second one on the same server does
  Loop& loop = f.loop;
  RedisStoreConfig cfg = config_for(f.server.address());
  cfg.local_cache = Millis{60'000};
  RedisStore store(loop.get(), cfg, kIdle, kAbsolute, nullptr, 0, 0);
  Harness h{loop, store};
  store.start();
  REQUIRE(h.connect());
  const TokenHash live = key("live");
  REQUIRE(h.create(live, new_record(3)) == StoreStatus::kOk);
  LookupResult out;
  REQUIRE(loop.run_until(
      [&] {
        h.lookup(live);
        return store.lookup_now(live, unix_now_ms(), out);
      },
      3000));
  for (int i = 0; i < 100; ++i)
    CHECK(h.lookup(key("unknown " + std::to_string(i))).status == StoreStatus::kNotFound);
  const std::string stats = f.cmd({"INFO", "stats"});
  const size_t at = stats.find("tracking_total_keys:");
  REQUIRE(at != std::string::npos);
  const long long tracked = std::stoll(stats.substr(at + 20));
  MESSAGE("keys in Redis's tracking table after 100 unknown tokens: " << tracked);
  CHECK(tracked <= 10);  // the live session (and what the scripts touch), not the unknown ones
  store.close();
}

}  // namespace
}  // namespace sg
