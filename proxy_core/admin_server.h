// AdminServer: the [admin] listener. Serves /metrics (Prometheus text), /healthz, /readyz and
// /config (the effective configuration) on its own address, never through the main listener,
// and the /sessions API (admin_sessions.h) on the memory store or, with store = "redis", on a
// RedisStore of its own on this loop (one more Redis connection per instance).
//
// Runs on the main thread's loop, apart from the workers, so a scrape never delays a proxied
// request. One request per connection (Connection: close): scrapers and probes need no more.
#pragma once

#include <uv.h>

#include <functional>
#include <memory>
#include <string>

#include "proxy_core/http/http_date.h"

namespace sg {

class Server;
class RedisStore;
class SessionStore;

class AdminServer {
 public:
  AdminServer(uv_loop_t* loop, Server* server);
  ~AdminServer();
  // Binds `address` ("127.0.0.1:9901"). False with `error` set on failure.
  bool start(const std::string& address, std::string& error);
  // Stops listening and closes the /sessions API's Redis connection. Call before the loop ends.
  void stop();

 private:
  static void on_connection(uv_stream_t* s, int status);
  SessionStore* sessions_store();
  uv_loop_t* loop_;
  Server* server_;
  uv_tcp_t tcp_;
  bool listening_ = false;
  HttpDateCache date_;  // Date of every admin response (this loop only)
  // store = "redis": the /sessions API's store on this loop (the memory store is shared).
  std::unique_ptr<RedisStore> redis_;
};

}  // namespace sg
