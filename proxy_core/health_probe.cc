#include "proxy_core/health_probe.h"

#include <cstring>
#include <string>

#include "proxy_core/net/handle_closer.h"
#include "proxy_core/net/socket_address.h"
#include "proxy_core/net/upstream_socket.h"

namespace sg {

namespace {

// One probe of one server: connect, maybe GET, read the status line, close.
struct Probe {
  UpstreamSocket socket;
  uv_timer_t timeout;
  uv_connect_t connect;
  uv_write_t write;
  std::string request;
  char buf[256];
  size_t got = 0;
  int open_handles = 2;
  bool done = false;
  GatewayState* state;
  bool http;

  void finish(bool ok) {
    if (done) return;
    done = true;
    if (ok) state->upstream_ok_ms.store(unix_now_ms(), std::memory_order_relaxed);
    HandleCloser<Probe, &Probe::open_handles, &Probe::on_closed>::close(
        {socket.handle(), reinterpret_cast<uv_handle_t*>(&timeout)});
  }
  static void on_closed(Probe* p) { delete p; }
  static void on_timeout(uv_timer_t* t) { static_cast<Probe*>(t->data)->finish(false); }
  static void on_alloc(uv_handle_t* h, size_t, uv_buf_t* b) {
    auto* p = static_cast<Probe*>(h->data);
    *b = uv_buf_init(p->buf + p->got, static_cast<unsigned>(sizeof p->buf - 1 - p->got));
  }
  static void on_read(uv_stream_t* s, ssize_t n, const uv_buf_t*) {
    auto* p = static_cast<Probe*>(s->data);
    if (p->done) return;
    if (n < 0) {
      p->finish(false);
      return;
    }
    p->got += static_cast<size_t>(n);
    if (p->got >= 12 || p->got == sizeof p->buf - 1) {
      // "HTTP/1.1 200": 2xx and 3xx pass.
      bool ok = std::strncmp(p->buf, "HTTP/1.", 7) == 0 && (p->buf[9] == '2' || p->buf[9] == '3');
      p->finish(ok);
    }
  }
  static void on_write(uv_write_t* w, int status) {
    auto* p = static_cast<Probe*>(w->data);
    if (status < 0) p->finish(false);
  }
  static void on_connect(uv_connect_t* c, int status) {
    auto* p = static_cast<Probe*>(c->data);
    if (p->done) return;
    if (status < 0) {
      p->finish(false);
      return;
    }
    if (!p->http) {
      p->finish(true);
      return;
    }
    uv_buf_t b = uv_buf_init(p->request.data(), static_cast<unsigned>(p->request.size()));
    p->write.data = p;
    if (uv_write(&p->write, p->socket.stream(), &b, 1, on_write) != 0 ||
        uv_read_start(p->socket.stream(), on_alloc, on_read) != 0)
      p->finish(false);
  }
};

}  // namespace

HealthProbe::HealthProbe(uv_loop_t* loop, GatewayState* state) : loop_(loop), state_(state) {}

void HealthProbe::start(std::shared_ptr<const Config> config) {
  config_ = std::move(config);
  uv_timer_init(loop_, &timer_);
  timer_.data = this;
  started_ = true;
  uv_timer_start(&timer_, &HealthProbe::on_tick, 0,
                 static_cast<uint64_t>(config_->upstream.health_interval.count()));
}

void HealthProbe::stop() {
  if (!started_) return;
  started_ = false;
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), nullptr);
}

void HealthProbe::on_tick(uv_timer_t* t) {
  static_cast<HealthProbe*>(t->data)->probe_all();
}

void HealthProbe::probe_all() {
  const UpstreamConfig& u = config_->upstream;
  for (const std::string& server : u.servers) {
    auto addr = resolve_upstream_server(server);
    if (!addr) continue;
    const bool unix_socket = is_unix_server(server);
    auto* p = new Probe;
    p->state = state_;
    p->http = !u.health_path.empty();
    // A socket path is no host name (RFC 9110 §7.2): a Unix-socket server is asked as localhost.
    if (p->http)
      p->request = "GET " + u.health_path +
                   " HTTP/1.1\r\nHost: " + (unix_socket ? std::string("localhost") : server) +
                   "\r\nUser-Agent: sessiongate-probe\r\nConnection: close\r\n\r\n";
    p->socket.init(loop_, unix_socket, p);
    uv_timer_init(loop_, &p->timeout);
    p->timeout.data = p->connect.data = p;
    uv_timer_start(&p->timeout, &Probe::on_timeout,
                   static_cast<uint64_t>(u.connect_timeout.count()), 0);
    if (p->socket.connect(&p->connect, *addr, &Probe::on_connect) != 0) p->finish(false);
  }
}

}  // namespace sg
