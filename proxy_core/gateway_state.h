// Process-wide state shared by every worker thread. Everything here is thread-safe (atomics, or
// objects that are internally synchronized); nothing here is on a lock on the request path.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "proxy_core/access_log.h"

namespace sg {

class SessionStore;
class MemoryStore;

struct GatewayState {
  std::atomic<bool> draining{false};
  // Unix ms of the last sign of life from the upstream (a response head or a passing probe).
  std::atomic<int64_t> upstream_ok_ms{0};
  AccessLog access_log;
  SessionStore* store = nullptr;        // what the request path uses
  MemoryStore* memory_store = nullptr;  // the embedded store, when it is the one in use
};

int64_t unix_now_ms();

}  // namespace sg
