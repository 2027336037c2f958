// ClientConnection, the transport's output: writes corked into one writev per upstream read,
// encrypted with TLS, and the write backpressure the exchange hears of. See client_connection.h.
#include "proxy_core/client_connection.h"

#include <unistd.h>

#include <algorithm>

#include "proxy_core/exchange.h"
#include "proxy_core/net/stream_io.h"
#include "proxy_core/tls/tls_pump.h"
#include "proxy_core/worker.h"

namespace sg {

// ---- output -------------------------------------------------------------------------------

bool ClientConnection::write_client(std::string_view data) {
  uv_buf_t buf = uv_buf_init(const_cast<char*>(data.data()), static_cast<unsigned>(data.size()));
  return write_client(&buf, 1);
}

int ClientConnection::write_raw(std::string_view bytes) {
  int r =
      stream_write(reinterpret_cast<uv_stream_t*>(&tcp_), bytes, &ClientConnection::on_write_done);
  if (r != 0) close_now();
  return r;
}

bool ClientConnection::write_client(const uv_buf_t* bufs, unsigned count, bool stable) {
  if (closing_) return false;
  // Corks come from an HTTP/1.1 exchange, which holds h1_ (finish() flushes before giving it back).
  if (cork_depth_ > 0 && h1_ != nullptr) {
    std::vector<Http1State::CorkedPiece>& corked = h1_->corked;
    for (unsigned i = 0; i < count; ++i) {
      if (bufs[i].len == 0) continue;
      if (stable) {
        corked.push_back({bufs[i].base, 0, bufs[i].len});
      } else {
        corked.push_back({nullptr, h1_->corked_bytes.size(), bufs[i].len});
        h1_->corked_bytes.append(bufs[i].base, bufs[i].len);
      }
    }
    if (corked.size() >= kMaxCorked) flush_cork();
    return true;
  }
  if (tls_ != nullptr) {
    // Encrypt every piece into one buffer, written once, in order.
    std::string& net = worker_->tls_net_scratch();
    net.clear();
    if (!tls_encrypt_all(*tls_, bufs, count, net)) {
      close_now();
      return false;
    }
    return write_raw(net) == 0;
  }
  int r = stream_write(reinterpret_cast<uv_stream_t*>(&tcp_), bufs, count,
                       &ClientConnection::on_write_done);
  if (r != 0) {
    close_now();
    return false;
  }
  return true;
}

void ClientConnection::flush_cork() {
  if (h1_ == nullptr || h1_->corked.empty()) return;
  Http1State& h = *h1_;
  uv_buf_t bufs[kMaxCorked];
  unsigned n = 0;
  for (const Http1State::CorkedPiece& p : h.corked) {
    char* base =
        p.external != nullptr ? const_cast<char*>(p.external) : h.corked_bytes.data() + p.offset;
    bufs[n++] = uv_buf_init(base, static_cast<unsigned>(p.length));
  }
  int depth = cork_depth_;
  cork_depth_ = 0;
  write_client(bufs, n, false);
  cork_depth_ = depth;
  h.corked.clear();
  h.corked_bytes.clear();
  // A slow client: the exchange stops reading its upstream until the queue drains.
  if (!closing_ && exchange_ != nullptr &&
      queued_bytes(reinterpret_cast<uv_stream_t*>(&tcp_)) > kWriteHighWater)
    exchange_->client_output_full();
}

void ClientConnection::on_write_done(uv_stream_t* s, int status) {
  auto* c = static_cast<ClientConnection*>(s->data);
  if (c->closing_) return;
  if (status < 0) {
    c->close_now();
    return;
  }
  if (c->h2_ != nullptr) {
    c->h2_->on_write_drained();
    return;
  }
  if (c->timer_kind_ == TimerKind::kActivity) c->arm_timer(TimerKind::kActivity);
  if (c->exchange_ != nullptr && c->exchange_->output_paused() && queued_bytes(s) < kWriteLowWater)
    c->exchange_->client_output_drained();
}

// ---- splice (issue 17 item 4) -------------------------------------------------------------

int ClientConnection::raw_body_fd() {
  // Only bytes that go out as they come, and only behind everything already written: nothing
  // corked, nothing in libuv's queue (the pipe writes to the socket directly).
  auto* s = reinterpret_cast<uv_stream_t*>(&tcp_);
  if (tls_ != nullptr || h2_ != nullptr || closing_ || state_ != State::kForward ||
      response_framing_ != BodyFraming::kContentLength || cork_depth_ > 0 ||
      (h1_ != nullptr && !h1_->corked.empty()) || queued_bytes(s) != 0)
    return -1;
  uv_os_fd_t fd;
  if (uv_fileno(reinterpret_cast<uv_handle_t*>(&tcp_), &fd) != 0) return -1;
  return fd;
}

void ClientConnection::await_writable() {
  if (closing_) return;
  if (writable_ == nullptr) {
    uv_os_fd_t fd;
    if (uv_fileno(reinterpret_cast<uv_handle_t*>(&tcp_), &fd) != 0) {
      close_now();
      return;
    }
    auto w = std::make_unique<WritableWatch>();
    w->fd = dup(fd);
    if (w->fd < 0 || uv_poll_init(worker_->loop(), &w->poll, w->fd) != 0) {
      if (w->fd >= 0) ::close(w->fd);
      close_now();  // cannot wait for the client: end this response as a failed one
      return;
    }
    w->poll.data = this;
    ++handles_open_;
    writable_ = std::move(w);
  }
  if (uv_poll_start(&writable_->poll, UV_WRITABLE, &ClientConnection::on_writable) != 0)
    close_now();
}

void ClientConnection::on_writable(uv_poll_t* p, int status, int) {
  auto* c = static_cast<ClientConnection*>(p->data);
  uv_poll_stop(p);
  if (c->closing_) return;
  if (status < 0) {
    c->close_now();
    return;
  }
  if (c->exchange_ != nullptr && c->exchange_->output_paused())
    c->exchange_->client_output_drained();
}

}  // namespace sg
