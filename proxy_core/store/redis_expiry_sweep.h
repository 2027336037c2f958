// RedisExpirySweep: this instance's share of the Redis expiry schedule (issue 14: expiry and
// eviction are audited with Redis too). Once a second it asks the store to sweep the schedule
// (RedisStore::sweep_expiries, one EVALSHA of redis_sweep_script: redis_scripts.h, "The expiry
// schedule") and writes one audit line per session that the sweep ended: "expired" with reason
// idle or absolute, or "evicted" (Redis removed the key before its deadline). The script itself
// PUBLISHes each end, so the tunnels of that session close on every instance.
//
// Every instance sweeps, whether or not its audit log is on: the sweep is what keeps the schedule
// bounded and ends dead sessions' index entries and tunnels; each due member is taken by exactly
// one instance, which writes its line. So the audit trail of a deployment is the union of its
// instances' audit logs (as for every other event), and an instance with `[log] audit = "off"`
// drops the lines of the ends it swept: set the audit log alike on every instance.
//
// A sweep that took a full batch (kRedisSweepBatch) runs again as soon as it is answered, so a
// backlog (many sessions created at once, a Redis that was away) drains within a few seconds; one
// sweep at a time, never piled up behind a slow Redis.
//
// Threading and lifetime: one per process, on worker 0's loop, using that worker's RedisStore
// (which must outlive close()); that worker's once-a-second timer calls sweep() (Worker::
// set_own_store's tick), so the sweep holds no handle of its own. Held by shared_ptr: a sweep's
// callback keeps it alive until the store answers or closes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "proxy_core/ops/metrics.h"
#include "proxy_core/store/redis_store.h"

namespace sg {

class RedisExpirySweep : public std::enable_shared_from_this<RedisExpirySweep> {
 public:
  // `store` must stay open until close() (Server: closed in the worker's close function first).
  // `metrics` (worker 0's, may be null) counts the ends: redis_swept_* (metrics.h).
  RedisExpirySweep(RedisStore* store, WorkerMetrics* metrics) : store_(store), metrics_(metrics) {}
  RedisExpirySweep(const RedisExpirySweep&) = delete;
  RedisExpirySweep& operator=(const RedisExpirySweep&) = delete;

  // One sweep at now_ms, unless one is in flight or the store is not connected (the next tick
  // tries again). Loop thread.
  void sweep(int64_t now_ms);
  // No sweep after this; one in flight still writes its audit lines (those ends happened).
  void close() { closed_ = true; }

  // Sweeps answered so far and sessions they ended (tests).
  size_t sweeps() const { return sweeps_; }
  size_t ended() const { return ended_; }

 private:
  void on_swept(bool ok, size_t taken, std::vector<RedisStore::SweptEnd> ends);

  RedisStore* store_;
  WorkerMetrics* metrics_;
  bool in_flight_ = false;
  bool closed_ = false;
  size_t sweeps_ = 0;
  size_t ended_ = 0;
};

}  // namespace sg
