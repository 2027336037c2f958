// SessionFollower: one worker's side of "live connections follow the session" (issue 14). It
// owns the worker's SessionWatch (session/session_watch.h: the tunnels open per session, and the
// exchanges whose response runs long) and ends a watched session's connections when
// - the process learns the session ended: the SessionEndBus (session/session_end_bus.h) queued
//   its handle in this worker's inbox and woke this loop (uv_async). The memory store publishes
//   every removal; with Redis, the instance's subscriber publishes what other workers and
//   instances destroyed (redis_session_events.h);
// - the periodic check finds it gone: every kCheckIntervalMs the follower looks up at most
//   kCheckBatch watched sessions (round robin) in the store. This is what closes a tunnel whose
//   session expired with the memory store (it expires lazily; with Redis the expiry sweep
//   publishes expiries: store/redis_expiry_sweep.h), and what catches an end whose message was
//   lost (a Redis reconnect, a full inbox). A lookup never writes (session_store.h), so the check
//   never extends a session.
//
// The same 1 s timer first sweeps the pending exchanges (SessionWatch::promote_due): those whose
// request went upstream kResponseGraceMs ago or more are watched from then on (exchange.h,
// exchange_session_follow.cc says why a sweep). The sweep walks the worker's running exchanges
// of stored sessions: a few pointer hops each, once a second.
//
// Cost: one lookup per watched session per max(kCheckIntervalMs, watched / kCheckBatch seconds),
// nothing while no tunnel is open. With Redis a lookup is one EVALSHA: a worker with W watched
// sessions sends min(W, kCheckBatch) commands per second. A check starts only when the previous
// one has answered, so a slow store never piles lookups up.
//
// Threading: the worker's loop only; the bus's wake-up is the one cross-thread entry.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "proxy_core/ops/metrics.h"
#include "proxy_core/session/session_end_bus.h"
#include "proxy_core/session/session_watch.h"

namespace sg {

class SessionFollower {
 public:
  static constexpr uint64_t kCheckIntervalMs = 1000;
  static constexpr size_t kCheckBatch = 128;
  // A response (or a request waiting for it) is watched once it has run this long.
  static constexpr int64_t kResponseGraceMs = 1000;

  // `bus` may be null (nothing published to this process); `inbox` is this worker's index.
  SessionFollower(uv_loop_t* loop, SessionEndBus* bus, size_t inbox, WorkerMetrics* metrics);
  SessionFollower(const SessionFollower&) = delete;
  SessionFollower& operator=(const SessionFollower&) = delete;

  // Loop thread, when the loop starts: attaches the inbox and starts the check timer. `store`
  // gives the store to look sessions up in (it may change: Worker::store()).
  void start(std::function<SessionStore*()> store);
  // Loop thread, when the worker closes: no wake-up after this, the handles close with the loop.
  void close();
  // Before start() only, when the loop never ran: closes the handles made by the constructor.
  void close_unstarted();

  SessionWatch& watch() { return watch_; }

  // Ends every watched connection of `handle` now (bus delivery, a check that found it gone).
  void end(const SessionHandle& handle) { watch_.end(handle); }
  // Runs one check of up to `n` watched sessions (the timer's, or all after an overflow).
  void check(size_t n);

 private:
  static void on_async(uv_async_t* a);
  static void on_timer(uv_timer_t* t);
  void on_checked(const SessionHandle& handle, const TokenHash& key, const LookupResult& r);

  uv_loop_t* loop_;
  SessionEndBus* bus_;
  size_t inbox_;
  WorkerMetrics* metrics_;
  uv_async_t async_;
  uv_timer_t timer_;
  std::function<SessionStore*()> store_;
  SessionWatch watch_;
  std::vector<SessionEnd> ended_;             // scratch for the bus's take()
  std::vector<SessionWatch::Watched> batch_;  // scratch for check()
  size_t in_flight_ = 0;                      // lookups of the current check not answered yet
  bool closed_ = false;
};

}  // namespace sg
