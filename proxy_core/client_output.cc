// ClientConnection, what goes to the client: writes (corked into one writev per upstream read,
// encrypted with TLS), local responses, redirects and the access log. See client_connection.h.
#include "proxy_core/client_connection.h"

#include <algorithm>

#include "proxy_core/http/request_validation.h"
#include "proxy_core/net/host_port.h"
#include "proxy_core/net/stream_io.h"
#include "proxy_core/ops/log.h"
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
  if (cork_depth_ > 0) {
    for (unsigned i = 0; i < count; ++i) {
      if (bufs[i].len == 0) continue;
      if (stable) {
        corked_.push_back({bufs[i].base, 0, bufs[i].len});
      } else {
        corked_.push_back({nullptr, corked_bytes_.size(), bufs[i].len});
        corked_bytes_.append(bufs[i].base, bufs[i].len);
      }
    }
    if (corked_.size() >= kMaxCorked) flush_cork();
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

// Headers added to every response: the session's Set-Cookie, HSTS over TLS, and `more`.
const HeaderList& ClientConnection::response_extra(const HeaderList* more) {
  const std::string& hsts = config_->tls.strict_transport_security;
  bool add_hsts = tls_ != nullptr && !hsts.empty();
  if (!add_hsts && more == nullptr) return session_.response_headers();
  extra_ = session_.response_headers();
  if (more != nullptr)
    for (const auto& h : *more)
      if (std::find(extra_.begin(), extra_.end(), h) == extra_.end()) extra_.push_back(h);
  if (add_hsts) extra_.emplace_back("Strict-Transport-Security", hsts);
  return extra_;
}

// The redirect listener: every request but health checks gets a 308 to the same URL on https,
// at server.canonical_host when set, else at the request's Host (validated by then).
void ClientConnection::redirect_to_https(const MessageHead& req) {
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
  ex_.status = 308;
  send_local(308, "", ex_.close_after, &extra);
}

void ClientConnection::flush_cork() {
  if (corked_.empty()) return;
  uv_buf_t bufs[kMaxCorked];
  unsigned n = 0;
  for (const CorkedPiece& p : corked_) {
    char* base =
        p.external != nullptr ? const_cast<char*>(p.external) : corked_bytes_.data() + p.offset;
    bufs[n++] = uv_buf_init(base, static_cast<unsigned>(p.length));
  }
  int depth = cork_depth_;
  cork_depth_ = 0;
  write_client(bufs, n, false);
  cork_depth_ = depth;
  corked_.clear();
  corked_bytes_.clear();
  if (closing_ || ex_.upstream == nullptr) return;
  if (queued_bytes(reinterpret_cast<uv_stream_t*>(&tcp_)) > kWriteHighWater &&
      !ex_.upstream_paused) {
    // A slow client, not a slow upstream: the upstream's silence is ours, so its response
    // timeout waits while the client's activity timeout bounds the stall.
    ex_.upstream->pause_reading();
    if (state_ != State::kTunnel) ex_.upstream->stop_timer();
    ex_.upstream_paused = true;
  }
}

void ClientConnection::uncork() {
  if (--cork_depth_ == 0) flush_cork();
}

void ClientConnection::on_write_done(uv_stream_t* s, int status) {
  auto* c = static_cast<ClientConnection*>(s->data);
  if (c->closing_) return;
  if (status < 0) {
    c->close_now();
    return;
  }
  if (c->timer_kind_ == TimerKind::kActivity) c->arm_timer(TimerKind::kActivity);
  if (c->ex_.upstream != nullptr && c->ex_.upstream_paused && queued_bytes(s) < kWriteLowWater) {
    c->ex_.upstream_paused = false;
    c->ex_.upstream->resume_reading();
    if (c->state_ == State::kForward)
      c->ex_.upstream->start_timer(c->config_->upstream.response_timeout);
  }
}

void ClientConnection::send_local(int status, std::string_view body, bool close,
                                  const HeaderList* extra, std::string_view content_type) {
  out_.clear();
  build_local_response(status, body, close || draining_, worker_->http_date(), out_,
                       &response_extra(extra), ex_.head_request, content_type);
  ex_.status = status;
  ex_.response = Response::kDone;
  write_client(out_);
  if (close || draining_) {
    log_exchange();
    close_after_flush();
    return;
  }
  // Keep the connection: read (and discard) the rest of this request, then finish the exchange
  // when its end is parsed, exactly as for a forwarded one.
  if (ex_.request_done) {
    finish_exchange();
    return;
  }
  state_ = State::kForward;
  request_parser_.resume();
  process_pending();
}

void ClientConnection::reject(int status, const char* reason) {
  SG_LOG_DEBUG("client %s: rejected with %d: %s", peer_ip_.c_str(), status, reason);
  worker_->metrics().bad_requests.add();
  if (ex_.response != Response::kNotStarted) {
    close_now();
    return;
  }
  ex_.close_after = true;
  ex_.head_request = false;
  pending_.clear();
  send_local(status, std::string(status_reason(status)) + "\n", true);
}

void ClientConnection::log_exchange() {
  if (ex_.status == 0 || ex_.started_hr == 0) return;
  const MessageHead& req = request_parser_.head();
  AccessRecord r;
  r.time_ms = ex_.started_ms;
  r.request_id = request_id_;
  r.client = peer_ip_;
  r.method = req.method;
  r.target = req.target;
  r.version_minor = req.version_minor;
  if (worker_->gateway_state().access_log.combined()) {
    if (const HeaderField* h = req.find("referer")) r.referer = h->value;
    if (const HeaderField* h = req.find("user-agent")) r.user_agent = h->value;
  }
  r.status = ex_.status;
  r.bytes_sent = ex_.response_body_bytes;
  r.bytes_received = ex_.request_body_bytes;
  r.duration_ms = static_cast<double>(uv_hrtime() - ex_.started_hr) / 1e6;
  r.upstream_ms = ex_.upstream_ms;
  r.session = session_.handle();
  r.session_event = session_.event();
  worker_->gateway_state().access_log.write(r);
  ex_.started_hr = 0;  // logged once
  WorkerMetrics& m = worker_->metrics();
  int cls = ex_.status / 100 - 1;
  if (cls >= 0 && cls < 5) m.requests[static_cast<int>(method_label(req.method))][cls].add();
  m.request_duration.observe(r.duration_ms / 1e3);
  m.bytes_received.add(ex_.request_body_bytes);
  m.bytes_sent.add(ex_.response_body_bytes);
  if (unsigned n = session_.rejected_directives()) m.rejected_directives.add(n);
}

}  // namespace sg
