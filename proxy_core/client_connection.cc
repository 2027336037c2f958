// ClientConnection, the transport: accepting, reading (and decrypting), the timers and the
// closing sequence. See client_connection.h.
#include "proxy_core/client_connection.h"

#include <unistd.h>

#include "proxy_core/exchange.h"
#include "proxy_core/net/cidr.h"
#include "proxy_core/net/handle_closer.h"
#include "proxy_core/net/socket_address.h"
#include "proxy_core/net/stream_io.h"
#include "proxy_core/ops/log.h"
#include "proxy_core/tls/tls_pump.h"
#include "proxy_core/worker.h"

namespace sg {

namespace {

// How long a rejected connection may keep sending before we stop discarding and close: enough
// for the client to read our error before a reset could destroy it (nginx: lingering_timeout).
constexpr Millis kLingerTime{2000};

}  // namespace

ClientConnection::ClientConnection(Worker* worker) : worker_(worker), config_(worker->config()) {
  facts_.can_tunnel = true;
  facts_.token_digests = &token_digests_;
  uv_tcp_init(worker_->loop(), &tcp_);
  tcp_.data = this;
  deadline_.owner = this;
  handles_open_ = 1;
}

ClientConnection::~ClientConnection() = default;

bool ClientConnection::accept_from(uv_stream_t* server, std::shared_ptr<const TlsServerContext> tls,
                                   bool redirect_only) {
  if (uv_accept(server, reinterpret_cast<uv_stream_t*>(&tcp_)) != 0) {
    close_now();
    return false;
  }
  facts_.redirect_only = redirect_only;
  if (tls != nullptr) {
    tls_context_ = std::move(tls);
    tls_ = std::make_unique<TlsEngine>(*tls_context_);
  }
  uv_tcp_nodelay(&tcp_, 1);
  sockaddr_storage peer{};
  int len = sizeof peer;
  if (uv_tcp_getpeername(&tcp_, reinterpret_cast<sockaddr*>(&peer), &len) == 0) {
    peer_ip_ = address_ip_string(reinterpret_cast<sockaddr*>(&peer));
    facts_.trusted =
        any_contains(config_->server.trusted_proxies, reinterpret_cast<sockaddr*>(&peer));
  }
  facts_.peer_ip = peer_ip_;
  facts_.tls = tls_ != nullptr;
  sniff_h2c_ = tls_ == nullptr && !redirect_only && config_->server.http2_cleartext;
  state_ = State::kIdle;
  arm_timer(tls_ != nullptr ? TimerKind::kHandshake : TimerKind::kIdle);
  update_reading();
  return true;
}

// ---- reading ------------------------------------------------------------------------------

void ClientConnection::on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto* c = static_cast<ClientConnection*>(h->data);
  if (c->splicing_request() && !c->closing_) {
    *buf = uv_buf_init(nullptr, 0);  // splicing: libuv reports readiness as UV_ENOBUFS
    return;
  }
  *buf =
      uv_buf_init(c->worker_->read_buffer(), static_cast<unsigned>(c->worker_->read_buffer_size()));
}

void ClientConnection::on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
  auto* c = static_cast<ClientConnection*>(s->data);
  if (nread == 0 || (c->closing_ && !c->lingering_)) return;
  if (nread == UV_ENOBUFS && c->splicing_request()) {
    c->pump_request_body();  // the client socket is readable
    return;
  }
  if (nread < 0) {
    c->on_client_eof(static_cast<int>(nread));
    return;
  }
  if (c->lingering_) return;  // discarding after a rejection
  if (c->tls_ == nullptr) {
    c->on_client_bytes(buf->base, static_cast<size_t>(nread));
    return;
  }
  // TLS: decrypt into the worker's scratch; handshake flights and alerts go out first.
  std::string& plain = c->worker_->tls_plain_scratch();
  std::string& net = c->worker_->tls_net_scratch();
  auto [st, handshake_completed] =
      tls_feed(*c->tls_, buf->base, static_cast<size_t>(nread), plain, net);
  if (!net.empty() && c->write_raw(net) != 0) return;
  if (st == TlsStatus::kError) {
    SG_LOG_DEBUG("client %s: TLS: %s", c->peer_ip_.c_str(),
                 std::string(c->tls_->error_text()).c_str());
    c->worker_->metrics().tls_handshake_errors.add();
    c->close_now();
    return;
  }
  if (handshake_completed) {
    if (c->tls_->negotiated_h2()) {
      c->start_h2();
    } else {
      c->arm_timer(TimerKind::kIdle);
    }
  }
  if (!plain.empty()) c->on_client_bytes(plain.data(), plain.size());
  if (st == TlsStatus::kClosed && !c->closing_) c->on_client_eof(UV_EOF);
}

void ClientConnection::on_client_eof(int status) {
  if (h2_ != nullptr) {
    close_now();  // HTTP/2 ends with GOAWAY, not a half-close: the client is gone
    return;
  }
  if (status == UV_EOF && (state_ == State::kForward || state_ == State::kWaiting) &&
      request_done_ && !closing_) {
    // A half-close after a complete request (RFC 9112 §9.6 allows it): answer, then close.
    client_eof_ = true;
    close_after_ = true;
    update_reading();
    return;
  }
  // The client went away. Mid-tunnel or mid-request there is nobody left to answer; an
  // upstream exchange in flight is abandoned.
  close_now();
}

void ClientConnection::set_reading(bool want) {
  auto* s = reinterpret_cast<uv_stream_t*>(&tcp_);
  if (want && !reading_) {
    reading_ = uv_read_start(s, &ClientConnection::on_alloc, &ClientConnection::on_read) == 0;
  } else if (!want && reading_) {
    uv_read_stop(s);
    reading_ = false;
  }
}

void ClientConnection::arm_timer(TimerKind kind) {
  if (uv_is_closing(reinterpret_cast<uv_handle_t*>(&tcp_))) return;
  timer_kind_ = kind;
  Millis t{0};
  size_t list = kIdleList;
  switch (kind) {
    case TimerKind::kNone:
      return;  // lazily: the link stays where it is and expires into nothing (kNone)
    case TimerKind::kIdle:
    case TimerKind::kActivity:
      t = config_->limits.client_idle_timeout;
      break;
    case TimerKind::kHeader:
      t = config_->limits.header_timeout;
      list = kHeaderList;
      break;
    case TimerKind::kLinger:
      t = kLingerTime;
      list = kLingerList;
      break;
    case TimerKind::kHandshake:
      t = config_->tls.handshake_timeout;
      list = kHandshakeList;
      break;
  }
  // Re-armed several times per request: an unlink and an append, no timer heap.
  worker_->client_deadlines(list).set(&deadline_, static_cast<uint64_t>(t.count()));
}

void ClientConnection::deadline_expired(DeadlineLink* link) {
  auto* c = static_cast<ClientConnection*>(link->owner);
  switch (c->timer_kind_) {
    case TimerKind::kHeader:
      c->reject(408, "request head not received in time");  // armed with an exchange begun
      break;
    case TimerKind::kIdle:
    case TimerKind::kActivity:
    case TimerKind::kLinger:
    case TimerKind::kHandshake:
      c->close_now();
      break;
    case TimerKind::kNone:  // disarmed lazily (arm_timer)
      break;
  }
}

// ---- closing ------------------------------------------------------------------------------

void ClientConnection::drain() {
  draining_ = true;
  if (h2_ != nullptr) {
    h2_->drain();  // GOAWAY; the open streams finish, then the connection closes
    return;
  }
  if (state_ == State::kIdle && !has_pending()) close_now();
}

// The drain deadline passed, or a started response cannot be completed (Downstream::abort):
// what is already produced goes out, then the connection closes.
void ClientConnection::abort() {
  flush_cork();
  close_now();
}

// The response is cut where it is: no last chunk, no close_notify, the bytes not yet written
// dropped, so that the client cannot take it for a whole one (a Content-Length body is short).
void ClientConnection::cancel() {
  close_now();
}

// Sends what is queued, then FIN; keeps reading (and discarding) for a short while so that the
// client reads our answer before a reset could destroy it.
void ClientConnection::close_after_flush() {
  if (closing_) return;
  end_request_splice();  // lingering reads go to the read buffer and are dropped
  flush_cork();
  if (tls_ != nullptr && tls_->handshake_done()) {
    std::string& net = worker_->tls_net_scratch();
    net.clear();
    tls_->shutdown(net);  // close_notify: a truncation attack cannot pass for our close
    if (!net.empty() && write_raw(net) != 0) return;
  }
  // Linger (read and discard for a while after our FIN) only when the client may still be
  // sending: a rejected or unfinished request, or bytes we never parsed. Closing with unread
  // data makes the kernel send a reset that can destroy our answer in flight (nginx's
  // lingering_close heuristic). A complete exchange closes as soon as our bytes are out.
  linger_ = !request_done_ || has_pending();
  if (!linger_ && tls_ == nullptr && queued_bytes(reinterpret_cast<uv_stream_t*>(&tcp_)) == 0) {
    // Everything is already in the kernel and nothing is unread: close() sends our FIN after
    // the data, and saves the shutdown(2) round.
    close_now();
    return;
  }
  closing_ = true;
  state_ = State::kClosing;
  if (exchange_ != nullptr) exchange_->downstream_closed();
  update_reading();
  // A slow client still has the activity timeout to take what is queued.
  arm_timer(TimerKind::kActivity);
  shutdown_req_ = std::make_unique<uv_shutdown_t>();
  shutdown_req_->data = this;
  if (uv_shutdown(shutdown_req_.get(), reinterpret_cast<uv_stream_t*>(&tcp_),
                  &ClientConnection::on_shutdown) != 0) {
    close_now();
  }
}

void ClientConnection::on_shutdown(uv_shutdown_t* req, int status) {
  auto* c = static_cast<ClientConnection*>(req->data);
  if (status == UV_ECANCELED || c->handles_open_ == 0 ||
      uv_is_closing(reinterpret_cast<uv_handle_t*>(&c->tcp_)))
    return;
  if (status < 0 || !c->linger_) {
    c->close_now();
    return;
  }
  // Our answer is out; linger (reading and discarding) until the peer closes or the timer fires.
  c->lingering_ = true;
  c->arm_timer(TimerKind::kLinger);
  c->update_reading();
}

void ClientConnection::close_now() {
  if (handles_open_ == 0) return;
  auto* h = reinterpret_cast<uv_handle_t*>(&tcp_);
  if (uv_is_closing(h)) return;
  closing_ = true;
  lingering_ = false;
  state_ = State::kClosing;
  if (h1_ != nullptr) h1_->corked.clear();  // an abort: nothing more goes out
  end_request_splice();
  if (exchange_ != nullptr) exchange_->downstream_closed();
  DeadlineList::cancel(&deadline_);
  if (h2_ != nullptr) {
    H2Connection* h2 = h2_;
    h2_ = nullptr;
    h2->release();  // its streams' exchanges are told and given back; it deletes itself
  }
  HandleCloser<ClientConnection, &ClientConnection::handles_open_,
               &ClientConnection::on_closed>::close({h});
  if (writable_ != nullptr) {
    HandleCloser<ClientConnection, &ClientConnection::handles_open_, &ClientConnection::on_closed>::
        close({reinterpret_cast<uv_handle_t*>(&writable_->poll)});
  }
}

void ClientConnection::on_closed(ClientConnection* c) {
  // No callback of the exchange is on the stack here: it can go back to the pool, reset (a
  // store answer still on its way finds a newer generation in its session gate).
  if (c->exchange_ != nullptr) {
    c->exchange_->reset();
    c->worker_->exchanges().release(c->exchange_);
    c->exchange_ = nullptr;
  }
  if (c->writable_ != nullptr) ::close(c->writable_->fd);  // the dup(): the socket's last reference
  if (c->h1_ != nullptr) c->worker_->http1_states().give_back_dirty(c->h1_);
  c->worker_->connection_closed(c);
  delete c;
}

}  // namespace sg
