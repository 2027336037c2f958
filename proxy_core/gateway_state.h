// Process-wide state shared by every worker thread. Everything here is thread-safe (atomics, or
// objects that are internally synchronized); nothing here is on a lock on the request path.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "proxy_core/base/clock.h"  // unix_now_ms, for the runtime files using this header
#include "proxy_core/config/config.h"
#include "proxy_core/ops/access_log.h"
#include "proxy_core/ops/audit_log.h"
#include "proxy_core/ops/metrics.h"

namespace sg {

class SessionStore;
class MemoryStore;
class SessionEndBus;

struct GatewayState {
  std::atomic<bool> draining{false};
  // Unix ms of the last sign of life from the upstream (a response head or a passing probe).
  std::atomic<int64_t> upstream_ok_ms{0};
  AccessLog access_log;
  AuditLog audit_log;  // also reachable as process_audit_log() (sessions, stores)
  ProcessMetrics process_metrics;
  SessionStore* store = nullptr;  // the shared store (memory), or null with per-worker ones
  std::vector<SessionStore*> worker_stores;  // Redis: one per worker; fixed before workers start
  MemoryStore* memory_store = nullptr;       // the embedded store, when it is the one in use
  SessionEndBus* session_end_bus = nullptr;  // session ends to every worker (session_follower.h)
};

// Why the gateway is not ready (a one-line reason for /readyz), or nullptr when it is: draining,
// no sign of life from the upstream within two probe intervals, or the store unusable.
const char* readiness_problem(const GatewayState& state, const Config& config);

}  // namespace sg
