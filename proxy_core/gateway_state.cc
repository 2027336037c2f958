#include "proxy_core/gateway_state.h"

#include "proxy_core/session/session_store.h"

namespace sg {

const char* readiness_problem(const GatewayState& st, const Config& config) {
  if (st.draining.load()) return "not ready: draining";
  int64_t fresh_ms = 2 * config.upstream.health_interval.count() + 1000;
  if (unix_now_ms() - st.upstream_ok_ms.load(std::memory_order_relaxed) > fresh_ms)
    return "not ready: upstream unreachable";
  // With fail_open the operator chose availability over sessions: a Redis outage must not take
  // every instance out of the load balancer, so readiness ignores the store then.
  if (config.session.store == StoreKind::kRedis &&
      config.redis_store.on_unavailable == OnUnavailable::kFailOpen)
    return nullptr;
  if (st.store != nullptr && !st.store->usable()) return "not ready: session store unavailable";
  // Every worker serves its share of clients: one without its store is one too many.
  for (const SessionStore* s : st.worker_stores)
    if (!s->usable()) return "not ready: session store unavailable";
  return nullptr;
}

}  // namespace sg
