// Exchange, the response half: upstream events, the response head and body, directives, the
// WebSocket tunnel, and the end of an exchange. See exchange.h.
#include <uv.h>

#include <algorithm>

#include "proxy_core/base/clock.h"
#include "proxy_core/exchange.h"
#include "proxy_core/http/request_validation.h"
#include "proxy_core/ops/log.h"

namespace sg {

// A final response head, parsed by the upstream connection. False while the store applies its
// directives: the connection holds the rest of the response until after_directives().
bool Exchange::on_upstream_head(UpstreamChannel* c, const MessageHead& head) {
  if (c != upstream_ || closed_) return true;
  // The application has answered: from here on a close of this connection is a failure, never
  // a reason to send the request again, even while the store still applies the directives.
  upstream_head_.clear();
  if (!apply_directives(head)) return false;
  on_response_head(head);
  return true;
}

void Exchange::on_upstream_body(UpstreamChannel* c, const char* data, size_t len) {
  if (c != upstream_ || closed_ || len == 0) return;
  response_body_bytes_ += len;
  downstream_->send_body(data, len, /*stable=*/true);  // the upstream read buffer outlives the cork
}

void Exchange::on_upstream_complete(UpstreamChannel* c) {
  if (c != upstream_) return;
  if (c->closing()) upstream_ = nullptr;  // delimited by the upstream's close
  if (closed_) return;
  on_response_complete();
}

void Exchange::on_upstream_upgrade(UpstreamChannel* c, const MessageHead& head, const char* rest,
                                   size_t len) {
  if (c != upstream_ || closed_) return;
  on_response_head(head);
  if (upstream_ != c || closed_) return;
  if (head.status == 101 && tunnel_requested_) {
    // Bytes after the 101 head belong to the tunnel.
    if (len > 0) downstream_->send_body(rest, len, /*stable=*/false);
    start_tunnel();
    return;
  }
  upstream_failed(502, UpstreamError::kBadResponse, "unexpected upgrade from upstream");
}

void Exchange::on_upstream_bad_response(UpstreamChannel* c, const char* why) {
  if (c == upstream_ && !closed_) upstream_failed(502, UpstreamError::kBadResponse, why);
}

void Exchange::on_upstream_read_begin() {
  downstream_->cork();
}

void Exchange::on_upstream_read_end() {
  downstream_->uncork();
}

void Exchange::on_upstream_tunnel_data(UpstreamChannel* c, const char* data, size_t len) {
  if (c != upstream_ || closed_) return;
  downstream_->send_body(data, len, /*stable=*/true);
  downstream_->set_client_timer(ClientTimer::kActivity);
}

// Applies the application's session directives before the response head goes out (its
// Set-Cookie depends on them). True when the store answered at once; otherwise
// after_directives() goes on when it does.
bool Exchange::apply_directives(const MessageHead& response) {
  directives_running_ = true;  // a session end meanwhile may be this response's own destroy
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

void Exchange::after_directives() {
  UpstreamChannel* c = upstream_;
  if (closed_ || c == nullptr) return;
  Downstream* d = downstream_;
  d->cork();
  on_response_head(c->response_head());
  if (upstream_ == c && !closed_) c->resume_response();
  d->uncork();
}

void Exchange::on_response_head(const MessageHead& resp) {
  directives_running_ = false;
  // X-Session-Control: destroy (or destroy-user) ended this response's own session: the
  // response must reach the client (exchange_session_follow.cc).
  if (session_.event() == "destroyed") unfollow();
  if (resp.status < 200 && resp.status != 101) return;  // 1xx: we sent our own 100 already
  upstream_head_.clear();  // the response has started: no retry any more (upgrade heads)
  upstream_ms_ = static_cast<double>(uv_hrtime() - upstream_started_hr_) / 1e6;
  services_->metrics().upstream_response_duration.observe(upstream_ms_ / 1e3);
  services_->gateway_state().upstream_ok_ms.store(unix_now_ms(), std::memory_order_relaxed);
  ResponseHead h;
  h.upstream = &resp;
  h.header_prefix = config_->session.header_prefix;
  h.cookie_name = config_->session.cookie_name;
  h.extra = &response_extra(nullptr);
  if (resp.status == 101) {
    if (!tunnel_requested_) return;  // the parser reports kUpgrade; refused there
    h.has_body = false;
    h.upgrade = true;
    status_ = 101;
    response_ = Response::kStarted;
    downstream_->start_response(h);
    return;
  }
  // A refused upgrade: whatever the client sends next may not be HTTP.
  if (tunnel_requested_) close_after_ = true;
  h.has_body = !(head_request_ || resp.status == 204 || resp.status == 304);
  // Early response: the rest of the body is unread. A short rest is taken after the response and
  // the connection kept (request_rest_fits); else it closes after the response.
  if (!request_done_ && !request_rest_fits()) close_after_ = true;
  status_ = resp.status;
  h.close = close_after_;
  h.force_no_store = session_.sets_cookie();
  response_ = Response::kStarted;
  downstream_->set_client_timer(ClientTimer::kActivity);  // the client must keep reading
  downstream_->start_response(h);
}

void Exchange::on_response_complete() {
  downstream_->end_response();
  response_ = Response::kDone;
  if (request_done_ || close_after_) {
    finish_exchange();
    return;
  }
  // An early response, the rest of the body within the downstream's bound: the rest still goes
  // to an upstream connection that stays usable (one that reads it, as nginx does, is pooled at
  // the request's end); else it is dropped. on_request_end finishes the exchange.
  if (upstream_ == nullptr || !upstream_->reusable()) {
    drop_request_rest();
    return;
  }
  // Meanwhile the upstream's response timeout bounds its silence (a stalled upstream: the rest is
  // dropped), and the client's timer waits, as whenever the upstream holds the client back.
  downstream_->set_client_timer(ClientTimer::kNone);
  upstream_->start_timer(config_->upstream.response_timeout);
}

bool Exchange::request_rest_fits() const {
  uint64_t bound = downstream_->request_rest_bound();
  return bound != 0 && request_framing_ == BodyFraming::kContentLength &&
         content_length_ - std::min(content_length_, request_body_bytes_) <= bound;
}

// The rest of the request body after a complete early response goes nowhere: the upstream
// connection is given up (it has not had the whole request; it closed, stalled or said close),
// and the downstream reads the client's bytes and drops them (on_request_body) until the request's
// end, within one client activity timeout (dropped bytes do not restart it).
void Exchange::drop_request_rest() {
  release_upstream(false);
  downstream_->set_client_timer(ClientTimer::kActivity);  // not restarted by dropped bytes
  downstream_->request_flow_changed();  // reading may have waited for the upstream
}

void Exchange::on_upstream_closed(UpstreamChannel* c, int status) {
  if (c != upstream_) return;
  upstream_ = nullptr;  // it is closing itself
  if (closed_) return;
  if (taking_request_rest()) {
    drop_request_rest();
    return;
  }
  if (phase_ == Phase::kTunnel) {
    downstream_->finish(/*keep_alive=*/false);
    return;
  }
  if (response_ == Response::kNotStarted && c->reused() && !retried_ &&
      request_framing_ == BodyFraming::kNone && !upstream_head_.empty()) {
    // The pooled connection was closed by the upstream under us and no response head arrived
    // (on_upstream_head clears upstream_head_): safe to send the (bodiless) request again, once,
    // on a fresh connection.
    retried_ = true;
    connect_upstream();
    return;
  }
  upstream_failed(502, UpstreamError::kClosedEarly,
                  status == UV_EOF ? "upstream closed the connection" : uv_strerror(status));
}

void Exchange::on_upstream_drained(UpstreamChannel* c) {
  if (c != upstream_ || closed_) return;
  request_splice_blocked_ = false;
  downstream_->request_flow_changed();
}

void Exchange::on_upstream_timeout(UpstreamChannel* c) {
  if (c != upstream_) return;
  if (taking_request_rest() && !closed_) {
    drop_request_rest();
    return;
  }
  if (phase_ == Phase::kTunnel) {
    downstream_->abort();
    return;
  }
  if (phase_ == Phase::kConnecting) {
    upstream_failed(504, UpstreamError::kConnectTimeout, "upstream connect timed out");
  } else {
    upstream_failed(504, UpstreamError::kResponseTimeout, "upstream timed out");
  }
}

void Exchange::upstream_failed(int status, UpstreamError kind, const char* why) {
  services_->metrics().upstream_errors[static_cast<int>(kind)].add();
  SG_LOG_WARN("%s %s: %s (status %d)", method_.c_str(), std::string(target_path(target_)).c_str(),
              why, status);
  release_upstream(false);
  if (response_ != Response::kNotStarted) {
    // Never let a truncated response look complete: abort the client side (after what was
    // already produced, so the client sees where it broke).
    status_ = status_ == 0 ? status : status_;
    log_exchange();
    downstream_->abort();
    return;
  }
  close_after_ = true;
  send_local(status, status == 504 ? "upstream timed out\n" : "bad gateway\n", true);
}

void Exchange::start_tunnel() {
  phase_ = Phase::kTunnel;
  request_done_ = true;
  response_ = Response::kDone;
  log_exchange();
  if (upstream_ != nullptr) {
    upstream_->stop_timer();
    upstream_->start_tunnel();
  }
  watch_session();  // before the downstream's call, which may close it (then unwatched)
  downstream_->start_tunnel();
}

bool Exchange::tunnel_from_client(std::string_view bytes) {
  return upstream_ != nullptr && upstream_->write(bytes) == 0;
}

void Exchange::finish_exchange() {
  bool reusable = request_done_ && response_ == Response::kDone && upstream_ != nullptr &&
                  upstream_->reusable();
  release_upstream(reusable);
  log_exchange();
  downstream_->finish(/*keep_alive=*/!close_after_ && request_done_);
}

// The end of every forwarded exchange (but a tunnel's start): it stops following its session.
void Exchange::release_upstream(bool reusable) {
  unfollow();
  UpstreamChannel* c = upstream_;
  upstream_ = nullptr;
  upstream_paused_ = false;
  if (c == nullptr) return;
  c->stop_timer();
  if (reusable) {
    services_->upstreams().put_idle(c, config_->upstream.idle_timeout,
                                    config_->upstream.max_idle_connections);
  } else {
    c->attach(nullptr);
    c->close();
  }
}

void Exchange::client_output_full() {
  if (upstream_ == nullptr || upstream_paused_ || closed_) return;
  // A slow client, not a slow upstream: the upstream's silence is ours, so its response
  // timeout waits while the client's activity timeout bounds the stall.
  upstream_->pause_reading();
  if (phase_ != Phase::kTunnel) upstream_->stop_timer();
  upstream_paused_ = true;
}

void Exchange::client_output_drained() {
  if (upstream_ == nullptr || !upstream_paused_) return;
  upstream_paused_ = false;
  if (phase_ == Phase::kForward) upstream_->start_timer(config_->upstream.response_timeout);
  // Last: a spliced body may end (and this exchange finish) inside this call.
  upstream_->resume_reading();
}

}  // namespace sg
