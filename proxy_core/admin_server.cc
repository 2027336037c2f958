#include "proxy_core/admin_server.h"

#include <llhttp.h>

#include <memory>

#include "proxy_core/admin_sessions.h"
#include "proxy_core/config/config_loader.h"
#include "proxy_core/gateway_state.h"
#include "proxy_core/http/header_rewrite.h"
#include "proxy_core/http/http_parser.h"
#include "proxy_core/http/request_validation.h"
#include "proxy_core/net/handle_closer.h"
#include "proxy_core/net/socket_address.h"
#include "proxy_core/net/stream_io.h"
#include "proxy_core/ops/log.h"
#include "proxy_core/server.h"
#include "proxy_core/session/session_attributes.h"
#include "proxy_core/store/memory_store.h"
#include "proxy_core/store/redis_store.h"

namespace sg {

namespace {

// Small bounds: the admin port answers four GETs and nothing else.
constexpr HttpParser::Limits kAdminLimits{8 * 1024, 64, 256};
constexpr uint64_t kAdminTimeoutMs = 10000;

struct AdminConnection {
  uv_tcp_t tcp;
  uv_timer_t timer;
  HttpParser parser{HttpParser::Kind::kRequest, kAdminLimits};
  Server* server;
  SessionStore* sessions;  // the /sessions API's store (null: 503)
  // A Redis store answers later: its answer finds the connection only while this lives.
  std::shared_ptr<int> life = std::make_shared<int>(0);
  HttpDateCache* date;
  char buf[4096];
  int open_handles = 2;
  bool answered = false;

  void close() {
    if (uv_is_closing(reinterpret_cast<uv_handle_t*>(&tcp))) return;
    HandleCloser<AdminConnection, &AdminConnection::open_handles,
                 &AdminConnection::on_closed>::close({reinterpret_cast<uv_handle_t*>(&tcp),
                                                      reinterpret_cast<uv_handle_t*>(&timer)});
  }
  static void on_closed(AdminConnection* c) { delete c; }
  static void on_alloc(uv_handle_t* h, size_t, uv_buf_t* b) {
    auto* c = static_cast<AdminConnection*>(h->data);
    *b = uv_buf_init(c->buf, sizeof c->buf);
  }
  static void on_written(uv_stream_t* s, int) { static_cast<AdminConnection*>(s->data)->close(); }
  static void on_shutdown(uv_shutdown_t* req, int) {
    auto* c = static_cast<AdminConnection*>(req->data);
    delete req;
    c->close();
  }
  void respond(int status, std::string_view content_type, std::string_view body, bool head) {
    answered = true;
    std::string out = "HTTP/1.1 " + std::to_string(status) + " ";
    out.append(status_reason(status));
    out.append("\r\nDate: ");
    out.append(date->get(uv_now(tcp.loop)));
    out.append("\r\nContent-Type: ");
    out.append(content_type);
    out.append("\r\nCache-Control: no-store\r\nContent-Length: " + std::to_string(body.size()) +
               "\r\nConnection: close\r\n\r\n");
    if (!head) out.append(body);
    uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp));
    if (stream_write(reinterpret_cast<uv_stream_t*>(&tcp), out, nullptr) != 0) {
      close();
      return;
    }
    auto* req = new uv_shutdown_t;
    req->data = this;
    if (uv_shutdown(req, reinterpret_cast<uv_stream_t*>(&tcp), on_shutdown) != 0) {
      delete req;
      close();
    }
  }
  void handle_request() {
    const MessageHead& req = parser.head();
    bool head = req.method_id == HTTP_HEAD;
    if (is_sessions_path(target_path(req.target))) {
      // The memory store answers inside the call, Redis later (within store.redis.timeout): by
      // then the timer or the client may have closed the connection.
      std::weak_ptr<int> alive = life;
      handle_sessions_request(
          req, server->config()->admin.token_file, sessions, unix_now_ms(),
          [this, alive](AdminReply r) {
            if (alive.expired() || uv_is_closing(reinterpret_cast<uv_handle_t*>(&tcp))) return;
            respond(r.status, r.json ? "application/json" : "text/plain; charset=utf-8", r.body,
                    false);
          });
      return;
    }
    if (req.method_id != HTTP_GET && !head) {
      respond(405, "text/plain; charset=utf-8", "method not allowed\n", head);
      return;
    }
    std::string_view path = target_path(req.target);
    const Config& config = *server->config();
    if (path == "/metrics") {
      respond(200, "text/plain; version=0.0.4; charset=utf-8", server->render_metrics(), head);
    } else if (path == "/healthz") {
      respond(200, "text/plain; charset=utf-8", "ok\n", head);
    } else if (path == "/readyz") {
      const char* why = readiness_problem(server->state(), config);
      respond(why ? 503 : 200, "text/plain; charset=utf-8",
              why ? std::string(why) + "\n" : std::string("ready\n"), head);
    } else if (path == "/config") {
      respond(200, "application/toml; charset=utf-8", render_effective_config(config), head);
    } else {
      respond(404, "text/plain; charset=utf-8", "not found\n", head);
    }
  }
  static void on_read(uv_stream_t* s, ssize_t n, const uv_buf_t* b) {
    auto* c = static_cast<AdminConnection*>(s->data);
    if (c->answered) return;
    if (n < 0) {
      c->close();
      return;
    }
    size_t used = 0;
    switch (c->parser.execute(b->base, static_cast<size_t>(n), used)) {
      case HttpParser::Event::kNeedMore:
        return;
      case HttpParser::Event::kError:
        c->respond(c->parser.error_status(), "text/plain; charset=utf-8", "bad request\n", false);
        return;
      default:
        c->handle_request();
    }
  }
  static void on_timeout(uv_timer_t* t) { static_cast<AdminConnection*>(t->data)->close(); }
};

}  // namespace

AdminServer::AdminServer(uv_loop_t* loop, Server* server)
    : loop_(loop), server_(server), date_(&unix_now_ms) {}

AdminServer::~AdminServer() {
  if (redis_) redis_->close();
}

SessionStore* AdminServer::sessions_store() {
  if (SessionStore* memory = server_->admin_store()) return memory;
  return redis_.get();
}

bool AdminServer::start(const std::string& address, std::string& error) {
  auto addr = resolve_host_port(address);
  if (!addr) {
    error = "admin.listen: cannot resolve \"" + address + "\"";
    return false;
  }
  uv_tcp_init(loop_, &tcp_);
  tcp_.data = this;
  int r = uv_tcp_bind(&tcp_, addr->get(), 0);
  if (r == 0) r = uv_listen(reinterpret_cast<uv_stream_t*>(&tcp_), 64, on_connection);
  if (r != 0) {
    error = "admin.listen: cannot listen on " + address + ": " + uv_strerror(r);
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), nullptr);
    return false;
  }
  listening_ = true;
  const Config& config = *server_->config();
  if (config.session.store == StoreKind::kRedis) {
    // The /sessions API's own connection, on this loop (the workers' stores live on theirs).
    const SessionConfig& sc = config.session;
    // It looks up no tokens: no cache of its own (no second connection), but its revocations
    // wait for the reports the workers' caches need (redis_store.h, own_cache).
    redis_ = std::make_unique<RedisStore>(
        loop_, config.redis_store, sc.idle_timeout, sc.absolute_timeout, nullptr, sc.max_attributes,
        sc.max_attribute_bytes, fold_attribute_name(sc.user_attribute),
        /*own_cache=*/false);
    redis_->start();
  }
  return true;
}

void AdminServer::stop() {
  if (redis_) redis_->close();  // answers what waits (503), closes its handles
  if (!listening_) return;
  listening_ = false;
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), nullptr);
}

void AdminServer::on_connection(uv_stream_t* s, int status) {
  if (status < 0) return;
  auto* self = static_cast<AdminServer*>(s->data);
  auto* c = new AdminConnection;
  c->server = self->server_;
  c->sessions = self->sessions_store();
  c->date = &self->date_;
  uv_tcp_init(self->loop_, &c->tcp);
  uv_timer_init(self->loop_, &c->timer);
  c->tcp.data = c->timer.data = c;
  if (uv_accept(s, reinterpret_cast<uv_stream_t*>(&c->tcp)) != 0) {
    c->close();
    return;
  }
  uv_timer_start(&c->timer, AdminConnection::on_timeout, kAdminTimeoutMs, 0);
  uv_read_start(reinterpret_cast<uv_stream_t*>(&c->tcp), AdminConnection::on_alloc,
                AdminConnection::on_read);
}

}  // namespace sg
