// HealthProbe: the active readiness probe of the upstream. Every upstream.health_interval it
// connects to each server; with upstream.health_path set it also sends a GET and wants a 2xx or
// 3xx status. A pass refreshes GatewayState::upstream_ok_ms, which /readyz reads.
//
// Runs on one worker's loop (worker 0). Each probe owns its handles and frees itself in its
// close callback.
#pragma once

#include <uv.h>

#include <memory>

#include "proxy_core/config/config.h"
#include "proxy_core/gateway_state.h"

namespace sg {

class HealthProbe {
 public:
  HealthProbe(uv_loop_t* loop, GatewayState* state);
  void start(std::shared_ptr<const Config> config);
  void set_config(std::shared_ptr<const Config> config) { config_ = std::move(config); }
  void stop();  // closes the timer; probes in flight finish on their own

 private:
  static void on_tick(uv_timer_t* t);
  void probe_all();

  uv_loop_t* loop_;
  GatewayState* state_;
  std::shared_ptr<const Config> config_;
  uv_timer_t timer_;
  bool started_ = false;
};

}  // namespace sg
