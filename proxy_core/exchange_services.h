// ExchangeServices: what an exchange needs of its worker, and nothing else (no loop, no
// sockets), so that a test can run an Exchange without a Worker (tests/unit/exchange_test.cc).
// Worker implements it; the exchange holds a pointer for its whole life.
//
// Threading: the worker's loop thread only. The references returned stay valid while the worker
// lives; config() and policy_keys() are replaced by a reload (the exchange takes them at each
// request head, so a reload applies to new requests).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "proxy_core/config/config.h"
#include "proxy_core/gateway_state.h"
#include "proxy_core/ops/metrics.h"
#include "proxy_core/policy_keys.h"
#include "proxy_core/session/session_store.h"
#include "proxy_core/session/session_watch.h"
#include "proxy_core/upstream_channel.h"

namespace sg {

class ExchangeServices {
 public:
  virtual const std::shared_ptr<const Config>& config() const = 0;
  // The keys of config()'s request policy (may be null): replaced together with it.
  virtual const std::shared_ptr<const PolicyKeys>& policy_keys() const = 0;
  virtual SessionStore* store() const = 0;
  virtual WorkerMetrics& metrics() = 0;
  // Process-wide (access log, upstream liveness, readiness), thread-safe by itself.
  virtual GatewayState& gateway_state() = 0;
  virtual UpstreamSource& upstreams() = 0;
  // A fresh request id (32 hex digits) into `out`.
  virtual void next_request_id(std::string& out) = 0;
  // The Date value for a response the gateway writes itself; valid until the next call.
  virtual std::string_view http_date() = 0;
  // The loop's clock in milliseconds (uv_now: cached at each loop turn, monotonic), the clock of
  // the follower's sweep (SessionWatch::promote_due).
  virtual int64_t now_ms() = 0;
  // Issue 14: the worker's tunnels and long responses that end with their session
  // (session_follower.h); null where nothing follows sessions. The same pointer for the services'
  // whole life (an exchange takes it once, when it is built).
  virtual SessionWatch* session_watch() = 0;

 protected:
  ~ExchangeServices() = default;
};

}  // namespace sg
