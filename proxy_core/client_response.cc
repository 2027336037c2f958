// ClientConnection, the response half of an exchange: upstream events, the response head and
// body, directives, the WebSocket tunnel, and the end of an exchange. See client_connection.h.
#include "proxy_core/client_connection.h"

#include <algorithm>

#include "proxy_core/chunk_bufs.h"
#include "proxy_core/http/request_validation.h"
#include "proxy_core/net/stream_io.h"
#include "proxy_core/ops/log.h"
#include "proxy_core/worker.h"

namespace sg {

// ---- the response -------------------------------------------------------------------------

// A final response head, parsed by the upstream connection. False while the store applies its
// directives: the connection holds the rest of the response until after_directives().
bool ClientConnection::on_upstream_head(UpstreamConnection* c, const MessageHead& head) {
  if (c != upstream_ || closing_) return true;
  if (!apply_directives(head)) return false;
  on_response_head(head);
  return true;
}

void ClientConnection::on_upstream_body(UpstreamConnection* c, const char* data, size_t len) {
  if (c == upstream_) on_response_body(data, len);
}

void ClientConnection::on_upstream_complete(UpstreamConnection* c) {
  if (c != upstream_) return;
  if (c->closing()) upstream_ = nullptr;  // delimited by the upstream's close
  if (closing_) return;
  on_response_complete();
}

void ClientConnection::on_upstream_upgrade(UpstreamConnection* c, const MessageHead& head,
                                           const char* rest, size_t len) {
  if (c != upstream_ || closing_) return;
  on_response_head(head);
  if (upstream_ != c || closing_) return;
  if (head.status == 101 && tunnel_requested_) {
    // Bytes after the 101 head belong to the tunnel.
    if (len > 0) write_client(std::string_view(rest, len));
    start_tunnel();
    return;
  }
  upstream_failed(502, UpstreamError::kBadResponse, "unexpected upgrade from upstream");
}

void ClientConnection::on_upstream_bad_response(UpstreamConnection* c, const char* why) {
  if (c == upstream_ && !closing_) upstream_failed(502, UpstreamError::kBadResponse, why);
}

void ClientConnection::on_upstream_tunnel_data(UpstreamConnection* c, const char* data,
                                               size_t len) {
  if (c != upstream_ || closing_) return;
  uv_buf_t buf = uv_buf_init(const_cast<char*>(data), static_cast<unsigned>(len));
  write_client(&buf, 1, /*stable=*/true);
  arm_timer(TimerKind::kActivity);
}

// Applies the application's session directives before the response head goes out (its
// Set-Cookie depends on them). True when the store answered at once; otherwise
// after_directives() goes on when it does.
bool ClientConnection::apply_directives(const MessageHead& response) {
  in_directives_call_ = true;
  directives_answered_ = false;
  session_.on_response(response, [this] {
    if (in_directives_call_) {
      directives_answered_ = true;
    } else {
      after_directives();
    }
  });
  in_directives_call_ = false;
  return directives_answered_;
}

void ClientConnection::after_directives() {
  UpstreamConnection* c = upstream_;
  if (closing_ || c == nullptr) return;
  CorkGuard cork(this);
  on_response_head(c->response_head());
  if (upstream_ != c || closing_) return;
  c->resume_response();
}

void ClientConnection::on_response_head(const MessageHead& resp) {
  if (resp.status < 200 && resp.status != 101) return;  // 1xx: we sent our own 100 already
  upstream_head_.clear();  // the response has started: no retry any more
  upstream_ms_ = static_cast<double>(uv_hrtime() - upstream_started_hr_) / 1e6;
  worker_->metrics().upstream_response_duration.observe(upstream_ms_ / 1e3);
  worker_->state().upstream_ok_ms.store(unix_now_ms(), std::memory_order_relaxed);
  if (resp.status == 101) {
    if (!tunnel_requested_) return;  // the parser reports kUpgrade; refused there
    out_.clear();
    ClientResponseOptions o;
    o.header_prefix = config_->session.header_prefix;
    o.cookie_name = config_->session.cookie_name;
    o.upgrade = true;
    o.added = &response_extra(nullptr);
    build_client_response(resp, o, out_);
    status_ = 101;
    response_started_ = true;
    write_client(out_);
    return;
  }
  // A refused upgrade: whatever the client sends next may not be HTTP.
  if (tunnel_requested_) close_after_ = true;
  const MessageHead& req = request_parser_.head();
  bool client11 = req.is_http11();
  bool no_body = head_request_ || resp.status == 204 || resp.status == 304;
  if (no_body) {
    response_framing_ = BodyFraming::kNone;
  } else if (resp.has_content_length && !resp.chunked) {
    response_framing_ = BodyFraming::kContentLength;
  } else if (client11) {
    response_framing_ = BodyFraming::kChunked;  // chunked, or close-delimited re-framed
  } else {
    response_framing_ = BodyFraming::kUntilClose;  // an HTTP/1.0 client cannot take chunks
    close_after_ = true;
  }
  if (!request_done_) close_after_ = true;  // early response: the rest of the body is unread
  status_ = resp.status;
  ClientResponseOptions o;
  o.header_prefix = config_->session.header_prefix;
  o.cookie_name = config_->session.cookie_name;
  o.framing = response_framing_;
  o.client_http11 = client11;
  o.close = close_after_ || draining_;
  o.force_no_store = session_.sets_cookie();
  o.added = &response_extra(nullptr);
  out_.clear();
  build_client_response(resp, o, out_);
  response_started_ = true;
  arm_timer(TimerKind::kActivity);  // from here on, the client must keep reading
  write_client(out_);
}

void ClientConnection::on_response_body(const char* data, size_t len) {
  if (closing_ || len == 0) return;
  response_body_bytes_ += len;
  if (response_framing_ == BodyFraming::kChunked) {
    ChunkBufs chunk(data, len, out_);
    write_client(chunk.bufs, ChunkBufs::kCount, /*stable=*/false);
  } else {
    uv_buf_t buf = uv_buf_init(const_cast<char*>(data), static_cast<unsigned>(len));
    write_client(&buf, 1, /*stable=*/true);  // the upstream read buffer outlives the cork
  }
}

void ClientConnection::on_response_complete() {
  if (response_framing_ == BodyFraming::kChunked) {
    uv_buf_t buf = uv_buf_init(const_cast<char*>(kLastChunk.data()), 5);
    write_client(&buf, 1, /*stable=*/true);
  }
  response_done_ = true;
  if (request_done_ || close_after_) finish_exchange();
}

void ClientConnection::on_upstream_closed(UpstreamConnection* c, int status) {
  if (c != upstream_) return;
  upstream_ = nullptr;  // it is closing itself
  if (closing_) return;
  if (state_ == State::kTunnel) {
    close_after_flush();
    return;
  }
  if (!response_started_ && c->reused() && !retried_ && request_framing_ == BodyFraming::kNone &&
      !upstream_head_.empty()) {
    // The pooled connection was closed by the upstream under us and nothing of the response
    // arrived: safe to send the (bodiless) request again, once, on a fresh connection.
    retried_ = true;
    connect_upstream();
    return;
  }
  upstream_failed(502, UpstreamError::kClosedEarly,
                  status == UV_EOF ? "upstream closed the connection" : uv_strerror(status));
}

void ClientConnection::on_upstream_drained(UpstreamConnection* c) {
  if (c == upstream_) update_reading();
}

void ClientConnection::on_upstream_timeout(UpstreamConnection* c) {
  if (c != upstream_) return;
  if (state_ == State::kTunnel) {
    close_now();
    return;
  }
  if (state_ == State::kUpstreamWait) {
    upstream_failed(504, UpstreamError::kConnectTimeout, "upstream connect timed out");
  } else {
    upstream_failed(504, UpstreamError::kResponseTimeout, "upstream timed out");
  }
}

void ClientConnection::upstream_failed(int status, UpstreamError kind, const char* why) {
  worker_->metrics().upstream_errors[static_cast<int>(kind)].add();
  SG_LOG_WARN("%s %s: %s (status %d)", request_parser_.head().method.c_str(),
              std::string(target_path(request_parser_.head().target)).c_str(), why, status);
  release_upstream(false);
  if (response_started_) {
    // Never let a truncated response look complete: abort the client connection (after what
    // was already produced, so the client sees where it broke).
    flush_cork();
    status_ = status_ == 0 ? status : status_;
    log_exchange();
    close_now();
    return;
  }
  status_ = status;
  close_after_ = true;
  send_local(status, status == 504 ? "upstream timed out\n" : "bad gateway\n", true);
}

void ClientConnection::start_tunnel() {
  state_ = State::kTunnel;
  request_done_ = response_done_ = true;
  log_exchange();
  if (upstream_ != nullptr) {
    upstream_->stop_timer();
    upstream_->start_tunnel();
    if (!pending_.empty()) {
      upstream_->write(pending_);
      pending_.clear();
    }
  }
  arm_timer(TimerKind::kActivity);
  update_reading();
}

void ClientConnection::finish_exchange() {
  bool reusable = request_done_ && response_done_ && upstream_ != nullptr && upstream_->reusable();
  release_upstream(reusable);
  log_exchange();
  if (close_after_ || draining_ || !request_done_) {
    close_after_flush();
    return;
  }
  // Next request on this keep-alive connection (maybe already waiting in pending_).
  state_ = State::kIdle;
  request_parser_.resume();
  arm_timer(TimerKind::kIdle);
  if (!pending_.empty()) {
    process_pending();
  } else {
    update_reading();
  }
}

void ClientConnection::release_upstream(bool reusable) {
  UpstreamConnection* c = upstream_;
  upstream_ = nullptr;
  upstream_paused_ = false;
  if (c == nullptr) return;
  c->stop_timer();
  if (reusable) {
    worker_->pool().put_idle(c, config_->upstream.idle_timeout,
                             config_->upstream.max_idle_connections);
  } else {
    c->attach(nullptr);
    c->close();
  }
}

}  // namespace sg
