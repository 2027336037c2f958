// RedisStore figures against a running Redis: per-command latency one at a time (what a request
// waits for) and throughput with many commands pipelined on the one connection (what a busy
// worker gets). Prints figures; never a test.
//
//   redis_store_bench [host:port | /socket/path] [operations]   (default 127.0.0.1:6379, 20000)
#include <uv.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "proxy_core/gateway_state.h"
#include "proxy_core/session/token.h"
#include "proxy_core/store/redis_store.h"

using namespace sg;
using Clock = std::chrono::steady_clock;

namespace {

uv_loop_t loop;

void run_until(const std::function<bool()>& done) {
  while (!done())
    uv_run(&loop, UV_RUN_ONCE);
}

TokenHash key_of(int i) {
  return hash_token("bench-token-" + std::to_string(i));
}

SessionRecord record_of(int i) {
  SessionRecord r;
  r.handle.fill(static_cast<uint8_t>(i));
  r.created_ms = r.last_seen_ms = unix_now_ms();
  r.attributes = {{"user", "user-" + std::to_string(i)}, {"role", "member"}};
  return r;
}

// Runs `op(i, done)` n times, `depth` at a time; returns microseconds per operation.
double measure(int n, int depth, const std::function<void(int, std::function<void()>)>& op) {
  int issued = 0, completed = 0;
  std::function<void()> next = [&] {
    if (issued >= n) return;
    const int i = issued++;
    op(i, [&] {
      ++completed;
      next();
    });
  };
  const auto t0 = Clock::now();
  for (int k = 0; k < depth; ++k)
    next();
  run_until([&] { return completed == n; });
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / n;
}

}  // namespace

int main(int argc, char** argv) {
  RedisStoreConfig cfg;
  cfg.address = argc > 1 ? argv[1] : "127.0.0.1:6379";
  cfg.key_prefix = "sgbench:";
  cfg.timeout = Millis{1000};
  const int n = argc > 2 ? std::atoi(argv[2]) : 20000;
  uv_loop_init(&loop);
  WorkerMetrics metrics;
  int rc = 0;
  {
    RedisStore store(&loop, cfg, Millis{3600000}, Millis{43200000}, &metrics, 32, 4096);
    store.start();
    const auto deadline = Clock::now() + std::chrono::seconds(3);
    run_until([&] { return store.usable() || Clock::now() > deadline; });
    if (!store.usable()) {
      std::fprintf(stderr, "cannot connect to Redis at %s\n", cfg.address.c_str());
      rc = 1;
    } else {
      std::printf("redis store on %s, %d operations each\n", cfg.address.c_str(), n);
      int base = 0;  // fresh keys per round: rotate leaves markers under the old ones
      for (int depth : {1, 64}) {
        auto k = [&](int i) { return key_of(base + i); };
        // Commands sent per operation (the store's own count: scripts count once, as EVALSHA).
        std::vector<std::pair<const char*, double>> per_op;
        uint64_t sent = metrics.redis_commands.get();
        auto count = [&](const char* what) {
          const uint64_t now_sent = metrics.redis_commands.get();
          per_op.emplace_back(what, static_cast<double>(now_sent - sent) / n);
          sent = now_sent;
        };
        const double create = measure(n, depth, [&](int i, std::function<void()> done) {
          store.create(k(i), record_of(i), [done](StoreStatus) { done(); });
        });
        count("create");
        const double lookup = measure(n, depth, [&](int i, std::function<void()> done) {
          store.lookup(k(i), unix_now_ms(), [done](LookupResult) { done(); });
        });
        count("lookup");
        const double modify = measure(n, depth, [&](int i, std::function<void()> done) {
          SessionChange c;
          c.last_seen_ms = unix_now_ms();
          c.set = {{"role", "admin"}};
          c.max_attributes = 32;
          c.max_attribute_bytes = 4096;
          store.modify(k(i), c, unix_now_ms(), [done](StoreStatus) { done(); });
        });
        count("modify");
        const double rotate = measure(n, depth, [&](int i, std::function<void()> done) {
          SessionChange c;
          c.last_seen_ms = unix_now_ms();
          store.rotate(k(i), k(i + n), c, 10'000, unix_now_ms(), [done](StoreStatus) { done(); });
        });
        count("rotate");
        const double in_grace = measure(n, depth, [&](int i, std::function<void()> done) {
          store.lookup(k(i), unix_now_ms(), [done](LookupResult) { done(); });
        });
        count("lookup in grace");
        const double destroy = measure(n, depth, [&](int i, std::function<void()> done) {
          store.destroy(k(i + n), [done](StoreStatus) { done(); });
        });
        count("destroy");
        base += 2 * n;
        std::printf(
            "%s: create %.1f us, lookup %.1f us, modify %.1f us, rotate %.1f us, lookup of a "
            "rotated key in grace %.1f us, destroy %.1f us per operation (%.0f lookups/s)\n",
            depth == 1 ? "one at a time (latency)" : "64 in flight (throughput)", create, lookup,
            modify, rotate, in_grace, destroy, 1e6 / lookup);
        std::printf("  commands per operation:");
        for (const auto& [what, per] : per_op)
          std::printf(" %s %.2f;", what, per);
        std::printf("\n");
      }
      std::printf("errors %llu, timeouts %llu\n",
                  static_cast<unsigned long long>(metrics.redis_errors.get()),
                  static_cast<unsigned long long>(metrics.redis_timeouts.get()));
    }
    store.close();
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return rc;
}
