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
  if (c != ex_.upstream || closing_) return true;
  // The application has answered: from here on a close of this connection is a failure, never
  // a reason to send the request again, even while the store still applies the directives.
  upstream_head_.clear();
  if (!apply_directives(head)) return false;
  on_response_head(head);
  return true;
}

void ClientConnection::on_upstream_body(UpstreamConnection* c, const char* data, size_t len) {
  if (c == ex_.upstream) on_response_body(data, len);
}

void ClientConnection::on_upstream_complete(UpstreamConnection* c) {
  if (c != ex_.upstream) return;
  if (c->closing()) ex_.upstream = nullptr;  // delimited by the upstream's close
  if (closing_) return;
  on_response_complete();
}

void ClientConnection::on_upstream_upgrade(UpstreamConnection* c, const MessageHead& head,
                                           const char* rest, size_t len) {
  if (c != ex_.upstream || closing_) return;
  on_response_head(head);
  if (ex_.upstream != c || closing_) return;
  if (head.status == 101 && ex_.tunnel_requested) {
    // Bytes after the 101 head belong to the tunnel.
    if (len > 0) write_client(std::string_view(rest, len));
    start_tunnel();
    return;
  }
  upstream_failed(502, UpstreamError::kBadResponse, "unexpected upgrade from upstream");
}

void ClientConnection::on_upstream_bad_response(UpstreamConnection* c, const char* why) {
  if (c == ex_.upstream && !closing_) upstream_failed(502, UpstreamError::kBadResponse, why);
}

void ClientConnection::on_upstream_tunnel_data(UpstreamConnection* c, const char* data,
                                               size_t len) {
  if (c != ex_.upstream || closing_) return;
  uv_buf_t buf = uv_buf_init(const_cast<char*>(data), static_cast<unsigned>(len));
  write_client(&buf, 1, /*stable=*/true);
  arm_timer(TimerKind::kActivity);
}

// Applies the application's session directives before the response head goes out (its
// Set-Cookie depends on them). True when the store answered at once; otherwise
// after_directives() goes on when it does.
bool ClientConnection::apply_directives(const MessageHead& response) {
  ex_.in_directives_call = true;
  ex_.directives_answered = false;
  session_.on_response(response, [this] {
    if (ex_.in_directives_call) {
      ex_.directives_answered = true;
    } else {
      after_directives();
    }
  });
  ex_.in_directives_call = false;
  return ex_.directives_answered;
}

void ClientConnection::after_directives() {
  UpstreamConnection* c = ex_.upstream;
  if (closing_ || c == nullptr) return;
  CorkGuard cork(this);
  on_response_head(c->response_head());
  if (ex_.upstream != c || closing_) return;
  c->resume_response();
}

void ClientConnection::on_response_head(const MessageHead& resp) {
  if (resp.status < 200 && resp.status != 101) return;  // 1xx: we sent our own 100 already
  upstream_head_.clear();  // the response has started: no retry any more (upgrade heads)
  ex_.upstream_ms = static_cast<double>(uv_hrtime() - ex_.upstream_started_hr) / 1e6;
  worker_->metrics().upstream_response_duration.observe(ex_.upstream_ms / 1e3);
  worker_->gateway_state().upstream_ok_ms.store(unix_now_ms(), std::memory_order_relaxed);
  if (resp.status == 101) {
    if (!ex_.tunnel_requested) return;  // the parser reports kUpgrade; refused there
    out_.clear();
    ClientResponseOptions o;
    o.header_prefix = config_->session.header_prefix;
    o.cookie_name = config_->session.cookie_name;
    o.upgrade = true;
    o.added = &response_extra(nullptr);
    build_client_response(resp, o, out_);
    ex_.status = 101;
    ex_.response = Response::kStarted;
    write_client(out_);
    return;
  }
  // A refused upgrade: whatever the client sends next may not be HTTP.
  if (ex_.tunnel_requested) ex_.close_after = true;
  const bool client11 = ex_.client_http11;
  bool no_body = ex_.head_request || resp.status == 204 || resp.status == 304;
  if (no_body) {
    ex_.response_framing = BodyFraming::kNone;
  } else if (resp.has_content_length && !resp.chunked) {
    ex_.response_framing = BodyFraming::kContentLength;
  } else if (client11) {
    ex_.response_framing = BodyFraming::kChunked;  // chunked, or close-delimited re-framed
  } else {
    ex_.response_framing = BodyFraming::kUntilClose;  // an HTTP/1.0 client cannot take chunks
    ex_.close_after = true;
  }
  if (!ex_.request_done) ex_.close_after = true;  // early response: the rest of the body is unread
  ex_.status = resp.status;
  ClientResponseOptions o;
  o.header_prefix = config_->session.header_prefix;
  o.cookie_name = config_->session.cookie_name;
  o.framing = ex_.response_framing;
  o.client_http11 = client11;
  o.close = ex_.close_after || draining_;
  o.force_no_store = session_.sets_cookie();
  o.added = &response_extra(nullptr);
  out_.clear();
  build_client_response(resp, o, out_);
  ex_.response = Response::kStarted;
  arm_timer(TimerKind::kActivity);  // from here on, the client must keep reading
  write_client(out_);
}

void ClientConnection::on_response_body(const char* data, size_t len) {
  if (closing_ || len == 0) return;
  ex_.response_body_bytes += len;
  if (ex_.response_framing == BodyFraming::kChunked) {
    ChunkBufs chunk(data, len, out_);
    write_client(chunk.bufs, ChunkBufs::kCount, /*stable=*/false);
  } else {
    uv_buf_t buf = uv_buf_init(const_cast<char*>(data), static_cast<unsigned>(len));
    write_client(&buf, 1, /*stable=*/true);  // the upstream read buffer outlives the cork
  }
}

void ClientConnection::on_response_complete() {
  if (ex_.response_framing == BodyFraming::kChunked) {
    uv_buf_t buf = uv_buf_init(const_cast<char*>(kLastChunk.data()), 5);
    write_client(&buf, 1, /*stable=*/true);
  }
  ex_.response = Response::kDone;
  if (ex_.request_done || ex_.close_after) finish_exchange();
}

void ClientConnection::on_upstream_closed(UpstreamConnection* c, int status) {
  if (c != ex_.upstream) return;
  ex_.upstream = nullptr;  // it is closing itself
  if (closing_) return;
  if (state_ == State::kTunnel) {
    close_after_flush();
    return;
  }
  if (ex_.response == Response::kNotStarted && c->reused() && !ex_.retried &&
      ex_.request_framing == BodyFraming::kNone && !upstream_head_.empty()) {
    // The pooled connection was closed by the upstream under us and no response head arrived
    // (on_upstream_head clears upstream_head_): safe to send the (bodiless) request again, once,
    // on a fresh connection.
    ex_.retried = true;
    connect_upstream();
    return;
  }
  upstream_failed(502, UpstreamError::kClosedEarly,
                  status == UV_EOF ? "upstream closed the connection" : uv_strerror(status));
}

void ClientConnection::on_upstream_drained(UpstreamConnection* c) {
  if (c == ex_.upstream) update_reading();
}

void ClientConnection::on_upstream_timeout(UpstreamConnection* c) {
  if (c != ex_.upstream) return;
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
  if (ex_.response != Response::kNotStarted) {
    // Never let a truncated response look complete: abort the client connection (after what
    // was already produced, so the client sees where it broke).
    flush_cork();
    ex_.status = ex_.status == 0 ? status : ex_.status;
    log_exchange();
    close_now();
    return;
  }
  ex_.status = status;
  ex_.close_after = true;
  send_local(status, status == 504 ? "upstream timed out\n" : "bad gateway\n", true);
}

void ClientConnection::start_tunnel() {
  state_ = State::kTunnel;
  ex_.request_done = true;
  ex_.response = Response::kDone;
  log_exchange();
  if (ex_.upstream != nullptr) {
    ex_.upstream->stop_timer();
    ex_.upstream->start_tunnel();
    if (!pending_.empty()) {
      ex_.upstream->write(pending_);
      pending_.clear();
    }
  }
  arm_timer(TimerKind::kActivity);
  update_reading();
}

void ClientConnection::finish_exchange() {
  bool reusable = ex_.request_done && ex_.response == Response::kDone && ex_.upstream != nullptr &&
                  ex_.upstream->reusable();
  release_upstream(reusable);
  log_exchange();
  if (ex_.close_after || draining_ || !ex_.request_done) {
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
  UpstreamConnection* c = ex_.upstream;
  ex_.upstream = nullptr;
  ex_.upstream_paused = false;
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
