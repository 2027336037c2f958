// AdminServer: the [admin] listener. Serves /metrics (Prometheus text), /healthz, /readyz and
// /config (the effective configuration) on its own address, never through the main listener.
//
// Runs on the main thread's loop, apart from the workers, so a scrape never delays a proxied
// request. One request per connection (Connection: close): scrapers and probes need no more.
#pragma once

#include <uv.h>

#include <functional>
#include <string>

#include "proxy_core/http/http_date.h"

namespace sg {

class Server;

class AdminServer {
 public:
  AdminServer(uv_loop_t* loop, Server* server);
  // Binds `address` ("127.0.0.1:9901"). False with `error` set on failure.
  bool start(const std::string& address, std::string& error);
  void stop();

 private:
  static void on_connection(uv_stream_t* s, int status);
  uv_loop_t* loop_;
  Server* server_;
  uv_tcp_t tcp_;
  bool listening_ = false;
  HttpDateCache date_;  // Date of every admin response (this loop only)
};

}  // namespace sg
