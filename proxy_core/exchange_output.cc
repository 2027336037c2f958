// Exchange, what it answers itself and what it records: local responses, rejections, the
// redirect listener, the access record and metrics; and the ExchangePool. See exchange.h.
#include <uv.h>

#include <algorithm>

#include "proxy_core/exchange.h"
#include "proxy_core/http/request_validation.h"
#include "proxy_core/net/host_port.h"
#include "proxy_core/ops/log.h"

namespace sg {

Exchange::~Exchange() {
  unfollow();
}

void Exchange::reset() {
  unfollow();  // release_upstream did; no path may pool or free a followed exchange
  downstream_ = nullptr;
  request_ = nullptr;
  upstream_ = nullptr;
  phase_ = Phase::kHead;
  response_ = Response::kNotStarted;
  hold_ = Hold::kNone;
  request_framing_ = BodyFraming::kNone;
  closed_ = request_done_ = close_after_ = head_request_ = tunnel_requested_ = false;
  expect_continue_ = retried_ = upstream_paused_ = rejected_ = request_splice_blocked_ = false;
  in_directives_call_ = directives_answered_ = directives_running_ = false;
  follow_since_ms_ = 0;
  status_ = 0;
  version_major_ = version_minor_ = 1;
  started_ms_ = 0;
  started_hr_ = upstream_started_hr_ = 0;
  upstream_ms_ = -1;
  request_body_bytes_ = response_body_bytes_ = content_length_ = 0;
  // The strings keep their capacity for the next request.
  method_.clear();
  target_.clear();
  referer_.clear();
  user_agent_.clear();
  upstream_head_.clear();
  held_body_.clear();
  session_.reset();
}

void Exchange::note_request(const MessageHead& req) {
  method_.assign(req.method);
  target_.assign(req.target);
  version_major_ = req.version_major;
  version_minor_ = req.version_minor;
  if (services_->gateway_state().access_log.combined()) {
    const HeaderField* h = req.find("referer");
    referer_.assign(h != nullptr ? std::string_view(h->value) : std::string_view());
    h = req.find("user-agent");
    user_agent_.assign(h != nullptr ? std::string_view(h->value) : std::string_view());
  }
}

// Headers added to every response: the session's Set-Cookie, HSTS over TLS, and `more`.
const HeaderList& Exchange::response_extra(const HeaderList* more) {
  const std::string& hsts = config_->tls.strict_transport_security;
  bool add_hsts = downstream_->client().tls && !hsts.empty();
  if (!add_hsts && more == nullptr) return session_.response_headers();
  extra_ = session_.response_headers();
  if (more != nullptr)
    for (const auto& h : *more)
      if (std::find(extra_.begin(), extra_.end(), h) == extra_.end()) extra_.push_back(h);
  if (add_hsts) extra_.emplace_back("Strict-Transport-Security", hsts);
  return extra_;
}

void Exchange::send_local(int status, std::string_view body, bool close, const HeaderList* extra,
                          std::string_view content_type) {
  LocalResponse r;
  r.status = status;
  r.body = body;
  r.content_type = content_type;
  r.extra = &response_extra(extra);
  r.head_only = head_request_;
  r.close = close;
  r.discard_input = rejected_;
  status_ = status;
  response_ = Response::kDone;
  downstream_->send_local(r);
  if (closed_) return;  // the write failed: the downstream closed and logged us
  if (close || downstream_->draining()) {
    log_exchange();
    downstream_->finish(/*keep_alive=*/false);
    return;
  }
  // Keep the connection: read (and discard) the rest of this request, then finish the exchange
  // when its end is seen, exactly as for a forwarded one.
  if (request_done_) {
    finish_exchange();
    return;
  }
  phase_ = Phase::kForward;
  downstream_->deliver_request_body();
}

void Exchange::reject(int status, const char* reason, const MessageHead* partial) {
  if (partial != nullptr && request_ == nullptr) note_request(*partial);
  SG_LOG_DEBUG("client %s: rejected with %d: %s",
               std::string(downstream_->client().peer_ip).c_str(), status, reason);
  services_->metrics().bad_requests.add();
  if (response_ != Response::kNotStarted) {
    downstream_->abort();
    return;
  }
  close_after_ = true;
  head_request_ = false;
  rejected_ = true;
  send_local(status, std::string(status_reason(status)) + "\n", true);
}

// The redirect listener: every request but health checks gets a 308 to the same URL on https,
// at server.canonical_host when set, else at the request's Host (validated by then).
void Exchange::redirect_to_https(const MessageHead& req) {
  const std::string& canonical = config_->server.canonical_host;
  const HeaderField* host = req.find("host");
  if (canonical.empty() && (host == nullptr || trim_ows(host->value).empty())) {
    reject(400, "no Host to redirect to");
    return;
  }
  std::string_view h = canonical.empty() ? trim_ows(host->value) : std::string_view(canonical);
  // Drop the port the client used for plain HTTP; add the TLS listener's unless it is 443. A
  // canonical_host with a port is taken as it is (a proxy in front may listen elsewhere).
  std::optional<HostPort> authority = split_authority(h);
  bool has_port = authority && authority->has_port;
  if (has_port && canonical.empty()) {
    h.remove_suffix(authority->port.size() + 1);  // ":port"; an IPv6 host keeps its brackets
    has_port = false;
  }
  std::string location = "https://";
  location.append(h);
  std::optional<HostPort> listener = split_host_port(config_->server.listen.front());
  if (!has_port && listener && listener->port != "443") {
    location.push_back(':');
    location.append(listener->port);
  }
  location.append(req.target);
  HeaderList extra{{"Location", std::move(location)}};
  send_local(308, "", close_after_, &extra);
}

void Exchange::downstream_closed() {
  if (closed_) return;
  closed_ = true;
  release_upstream(false);  // unfollows
  log_exchange();
}

void Exchange::log_exchange() {
  if (status_ == 0 || started_hr_ == 0) return;
  AccessRecord r;
  r.time_ms = started_ms_;
  r.request_id = request_id_;
  r.client = downstream_->client().peer_ip;
  r.method = method_;
  r.target = target_;
  r.version_major = version_major_;
  r.version_minor = version_minor_;
  r.referer = referer_;
  r.user_agent = user_agent_;
  r.status = status_;
  r.bytes_sent = response_body_bytes_;
  r.bytes_received = request_body_bytes_;
  r.duration_ms = static_cast<double>(uv_hrtime() - started_hr_) / 1e6;
  r.upstream_ms = upstream_ms_;
  r.session = session_.handle();
  r.session_event = session_.event();
  services_->gateway_state().access_log.write(r);
  started_hr_ = 0;  // logged once
  WorkerMetrics& m = services_->metrics();
  int cls = status_ / 100 - 1;
  if (cls >= 0 && cls < 5) m.requests[static_cast<int>(method_label(method_))][cls].add();
  m.requests_by_protocol[static_cast<int>(version_major_ == 2 ? ProtocolLabel::kHttp2
                                                              : ProtocolLabel::kHttp1)]
      .add();
  m.request_duration.observe(r.duration_ms / 1e3);
  m.bytes_received.add(request_body_bytes_);
  m.bytes_sent.add(response_body_bytes_);
  if (unsigned n = session_.rejected_directives()) m.rejected_directives.add(n);
}

// ---- the pool -----------------------------------------------------------------------------

Exchange* ExchangePool::acquire() {
  bound_.taken();
  if (free_.empty()) return new Exchange(services_);
  Exchange* e = free_.back().release();
  free_.pop_back();
  return e;
}

void ExchangePool::release(Exchange* e) {
  bound_.given_back();
  free_.emplace_back(e);
  // Over the bound, the oldest go (never the one just given back: it may still be on the stack
  // of the call that finished it), all at once: after a burst the bound falls by hundreds.
  size_t limit = std::max<size_t>(1, bound_.limit());
  if (free_.size() > limit) free_.erase(free_.begin(), free_.end() - static_cast<ptrdiff_t>(limit));
}

}  // namespace sg
