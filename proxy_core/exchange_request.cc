// Exchange, the request half: the checks on the head, the session gate's outcome, and the
// upstream request (build, connect, send, stream the body). See exchange.h.
#include <llhttp.h>
#include <uv.h>

#include <atomic>

#include "proxy_core/base/clock.h"
#include "proxy_core/chunk_bufs.h"
#include "proxy_core/exchange.h"
#include "proxy_core/http/request_validation.h"
#include "proxy_core/net/stream_io.h"
#include "proxy_core/net/upstream_socket.h"
#include "proxy_core/ops/log.h"
#include "proxy_core/session/logout_guard.h"

namespace sg {

namespace {

// Response heads are bounded too: a broken upstream must not make us buffer without limit.
HttpParser::Limits response_limits(const Config& c) {
  return {static_cast<size_t>(std::max<uint64_t>(c.limits.max_header_bytes, 64 * 1024)),
          std::max<uint32_t>(c.limits.max_headers, 200), 4096};
}

// A request id we pass on: short, visible ASCII only (it lands in logs and headers).
bool is_printable_id(std::string_view v) {
  if (v.empty() || v.size() > 128) return false;
  for (unsigned char c : v)
    if (c <= 0x20 || c >= 0x7f) return false;
  return true;
}

}  // namespace

void Exchange::begin(Downstream* downstream) {
  reset();
  downstream_ = downstream;
  // Taken now, not only at the head: a request refused before its head (a parse error, the
  // header timeout) is answered with this configuration (HSTS over TLS).
  if (config_ != services_->config()) config_ = services_->config();
  started_ms_ = unix_now_ms();
  started_hr_ = uv_hrtime();
  services_->next_request_id(request_id_);  // rejected requests are logged with an id too
}

void Exchange::on_request_head(MessageHead& req, bool complete) {
  request_ = &req;
  if (config_ != services_->config()) config_ = services_->config();
  if (keys_ != services_->policy_keys()) keys_ = services_->policy_keys();  // loaded with config_
  note_request(req);
  const ClientFacts& client = downstream_->client();
  // A trusted proxy's request id is kept so that one request has one id end to end.
  const HeaderField* incoming_id = client.trusted ? req.find("x-request-id") : nullptr;
  if (incoming_id != nullptr && is_printable_id(incoming_id->value))
    request_id_ = incoming_id->value;
  request_done_ = complete;
  head_request_ = req.method_id == HTTP_HEAD;
  close_after_ = !req.keep_alive || downstream_->draining();
  if (!check_request_head(req)) return;
  // A body is read under the activity timer; otherwise the upstream's timers govern.
  downstream_->set_client_timer(request_framing_ == BodyFraming::kNone ? ClientTimer::kNone
                                                                       : ClientTimer::kActivity);
  if (answer_locally(req)) return;
  if (client.redirect_only) {
    redirect_to_https(req);
    return;
  }
  // (The common cases, TLS or an untrusted peer, are decided here without a call.)
  const bool https = client.tls || (client.trusted && request_scheme(req) == ClientScheme::kHttps);
  if (!config_->session.logout_path.empty() && refuse_logout(req, https)) return;

  phase_ = Phase::kSession;
  // The store records where a session was created and the audit log names the request.
  session_.set_client(client.peer_ip, request_id_, client.token_digests);
  session_.begin(*config_, services_->store(), &services_->metrics(), https, req,
                 [this](SessionGate::Outcome outcome) { on_session_ready(outcome); });
}

// validate_request, the body limit, Expect and the WebSocket rule. False when refused.
bool Exchange::check_request_head(MessageHead& req) {
  RequestVerdict verdict = validate_request(req, config_->server.underscore_headers);
  if (!verdict.ok()) {
    reject(verdict.status, verdict.reason);
    return false;
  }
  content_length_ = req.content_length;
  if (req.chunked) {
    request_framing_ = BodyFraming::kChunked;
  } else if (req.has_content_length) {
    request_framing_ = BodyFraming::kContentLength;
    if (config_->limits.max_body_bytes != 0 &&
        req.content_length > config_->limits.max_body_bytes) {
      reject(413, "request body over limits.max_body_bytes");
      return false;
    }
  } else {
    request_framing_ = BodyFraming::kNone;
  }
  if (const HeaderField* expect = req.find("expect")) {
    // RFC 9110 §10.1.1: we answer 100 ourselves when we are ready for the body.
    expect_continue_ = iequals(trim_ows(expect->value), "100-continue") && req.is_http11() &&
                       (req.chunked || req.content_length > 0);
  }
  if (req.upgrade) {
    const HeaderField* upgrade = req.find("upgrade");
    // Only WebSocket is tunnelled; h2c and anything else are forwarded as plain requests
    // (Upgrade is hop-by-hop and dropped), and the connection is not reused after.
    tunnel_requested_ = config_->upstream.websocket && downstream_->client().can_tunnel &&
                        upgrade != nullptr && req.method_id == HTTP_GET &&
                        list_contains_token(upgrade->value, "websocket");
    if (!tunnel_requested_) close_after_ = true;
  }
  return true;
}

// Health and readiness are answered here and never forwarded.
bool Exchange::answer_locally(const MessageHead& req) {
  if (req.method_id != HTTP_GET && req.method_id != HTTP_HEAD) return false;
  std::string_view path = target_path(req.target);
  const HealthConfig& h = config_->health;
  if (path == h.path) {
    send_local(200, "ok\n", close_after_);
  } else if (path == h.ready_path) {
    const char* why = downstream_->draining()
                          ? "not ready: draining"
                          : readiness_problem(services_->gateway_state(), *config_);
    send_local(why ? 503 : 200, why ? std::string(why) + "\n" : std::string("ready\n"),
               close_after_);
  } else {
    return false;
  }
  return true;
}

// The scheme the client used (Secure under cookie_secure = "auto", the logout origin check).
ClientScheme Exchange::request_scheme(const MessageHead& req) {
  const ClientFacts& client = downstream_->client();
  const HeaderField* proto = client.trusted ? req.find("x-forwarded-proto") : nullptr;
  ClientScheme scheme =
      client_scheme(client.tls, client.trusted,
                    proto ? std::optional<std::string_view>(proto->value) : std::nullopt);
  if (scheme == ClientScheme::kUnknown && config_->session.cookie_secure == CookieSecure::kAuto) {
    // Cannot be decided: the cookie goes without Secure. Once per process, not per request.
    static std::atomic<bool> warned{false};
    if (!warned.exchange(true))
      SG_LOG_WARN(
          "trusted proxy %s sent a request without X-Forwarded-Proto: with cookie_secure = "
          "\"auto\" and TLS off its session cookie is not Secure (have the proxy send "
          "X-Forwarded-Proto, or set cookie_secure)",
          std::string(client.peer_ip).c_str());
  }
  return scheme;
}

// logout_path ends the session only for a POST, or a GET from our own origin (logout CSRF);
// decided before the session gate can destroy anything. True when answered here.
bool Exchange::refuse_logout(const MessageHead& req, bool https) {
  const std::string& logout = config_->session.logout_path;
  if (logout.empty() || target_path(req.target) != logout) return false;
  const auto field = [&req](std::string_view name) -> std::optional<std::string_view> {
    const HeaderField* f = req.find(name);
    return f ? std::optional<std::string_view>(f->value) : std::nullopt;
  };
  const HeaderField* host = req.find("host");
  LogoutRequest r{req.method_id == HTTP_GET,
                  req.method_id == HTTP_POST,
                  field("sec-fetch-site"),
                  field("origin"),
                  field("referer"),
                  https ? "https" : "http",
                  host ? trim_ows(host->value) : std::string_view()};
  switch (logout_allowed(r)) {
    case LogoutVerdict::kAllowed:
      return false;
    case LogoutVerdict::kMethodNotAllowed: {
      HeaderList extra{{"Allow", std::string(kLogoutAllow)}};
      send_local(405, "method not allowed\n", close_after_, &extra);
      return true;
    }
    case LogoutVerdict::kCrossSite:
      services_->metrics().logout_refused.add();
      SG_LOG_INFO("client %s: %s %s refused: not from this site's own pages (logout CSRF)",
                  std::string(downstream_->client().peer_ip).c_str(), req.method.c_str(),
                  logout.c_str());
      send_local(403, "logout refused: use POST, or a link on this site\n", close_after_);
      return true;
  }
  return false;
}

void Exchange::on_session_ready(SessionGate::Outcome outcome) {
  if (closed_) return;
  switch (outcome) {
    case SessionGate::Outcome::kUnavailable: {
      HeaderList extra{{"Retry-After", "1"}};
      send_local(503, "session store unavailable\n", close_after_, &extra);
      return;
    }
    case SessionGate::Outcome::kLogout: {
      HeaderList extra = session_.response_headers();
      extra.emplace_back("Location", config_->session.logout_redirect);
      send_local(303, "logged out\n", close_after_, &extra);
      return;
    }
    case SessionGate::Outcome::kProceed:
      if (answer_status()) return;  // session.status_path: answered here, never forwarded
      run_policy();                 // forwards the request unless the policy answers it
      return;
  }
}

void Exchange::forward_request() {
  const MessageHead& req = *request_;
  const ClientFacts& client = downstream_->client();
  UpstreamRequestOptions o;
  o.client_address = client.peer_ip;
  o.peer_trusted = client.trusted;
  o.scheme = client.tls ? "https" : "http";
  o.header_prefix = config_->session.header_prefix;
  o.tunnel_websocket = tunnel_requested_;
  o.framing = request_framing_;
  o.content_length = content_length_;
  o.replace_cookie = session_.replace_cookie();
  o.cookie_value = session_.cookie_value();
  o.injected = &session_.injected();
  o.injected_count = session_.injected_count();
  o.request_id = request_id_;
  size_t removed = 0;
  o.removed_reserved = &removed;
  o.appended = policy_headers(req);
  upstream_head_.clear();
  build_upstream_request(req, o, upstream_head_);
  if (removed != 0) services_->metrics().rejected_client_headers.add(removed);
  connect_upstream();
}

void Exchange::connect_upstream() {
  UpstreamSource& pool = services_->upstreams();
  const std::string& server = pool.pick_server(config_->upstream.servers);
  upstream_ = retried_ ? nullptr : pool.take_idle(server);
  upstream_started_hr_ = uv_hrtime();
  if (upstream_ != nullptr) {
    upstream_->attach(this);
    send_upstream_head();
    return;
  }
  phase_ = Phase::kConnecting;
  upstream_ =
      pool.open(server, config_->upstream, response_limits(*config_), this, config_->upstream.tls);
  if (upstream_ == nullptr)
    upstream_failed(502, UpstreamError::kConnectOther, "upstream address unusable");
}

void Exchange::on_upstream_connected(UpstreamChannel* c, int status) {
  if (c != upstream_ || closed_) return;
  if (status != 0) {
    const bool refused = is_connect_refusal(status);
    if (refused) services_->upstreams().mark_refused(c->server());
    SG_LOG_WARN("upstream %s: connect failed: %s", c->server().c_str(), uv_strerror(status));
    upstream_ = nullptr;  // the connection closes itself
    upstream_failed(502, refused ? UpstreamError::kConnectRefused : UpstreamError::kConnectOther,
                    "upstream connect failed");
    return;
  }
  services_->metrics().upstream_connect_duration.observe(
      static_cast<double>(uv_hrtime() - upstream_started_hr_) / 1e9);
  send_upstream_head();
}

void Exchange::send_upstream_head() {
  phase_ = Phase::kForward;
  follow_response();  // issue 14: from now on the exchange follows its session
  upstream_->begin_response(head_request_, config_->upstream.response_timeout);
  if (int r = upstream_->write(upstream_head_); r != 0) {
    upstream_->fail(r);  // a pooled connection the upstream had closed: on_upstream_closed
    return;
  }
  upstream_->start_timer(config_->upstream.response_timeout);
  if (hold_ == Hold::kHolding && !send_held_body()) return;
  // Not for a complete request (no body, a retry, a held body that was complete): there is no
  // body left to ask for.
  if (!request_done_ && expect_continue_ &&
      (request_framing_ != BodyFraming::kNone || tunnel_requested_)) {
    downstream_->send_continue();
    expect_continue_ = false;
  }
  // The request is forwarded: its body (or, without one, its end) may come.
  downstream_->deliver_request_body();
}

void Exchange::on_request_body(const char* data, size_t len) {
  if (closed_) return;  // cancelled (its session ended): an HTTP/2 stream's body may still come
  request_body_bytes_ += len;
  uint64_t limit = config_->limits.max_body_bytes;
  if (limit != 0 && request_body_bytes_ > limit) {
    // Only a chunked body can get here (a Content-Length over the limit is refused up front).
    release_upstream(false);
    reject(413, "request body over limits.max_body_bytes");
    return;
  }
  if (hold_ != Hold::kNone) {
    hold_body(data, len);  // a CSRF token scan (exchange_policy.cc)
    return;
  }
  if (upstream_ == nullptr || closed_) return;  // a local answer discards the body
  int r;
  if (request_framing_ == BodyFraming::kChunked) {
    ChunkBufs chunk(data, len, chunk_scratch_);
    r = upstream_->write(chunk.bufs, ChunkBufs::kCount);
  } else {
    r = upstream_->write(std::string_view(data, len));
  }
  if (r != 0) {
    upstream_->fail(r);
    return;
  }
  // A long upload is progress: the response timeout counts from the last body byte sent.
  upstream_->start_timer(config_->upstream.response_timeout);
  downstream_->touch_client_timer();
}

void Exchange::on_request_end() {
  request_done_ = true;
  if (closed_) return;  // cancelled, as above
  if (response_ == Response::kNotStarted) downstream_->set_client_timer(ClientTimer::kNone);
  if (hold_ == Hold::kScanning) {
    form_scanned();  // the CSRF token scan ends (exchange_policy.cc)
    return;
  }
  // A held body waiting for the upstream: send_held_body writes the last chunk.
  if (hold_ == Hold::kHolding && upstream_ != nullptr) return;
  if (upstream_ != nullptr && request_framing_ == BodyFraming::kChunked) {
    if (int r = upstream_->write(kLastChunk); r != 0) {
      upstream_->fail(r);
      return;
    }
  }
  // Anything after this message (a pipelined request, tunnel bytes) waits downstream.
  if (response_ == Response::kDone) finish_exchange();
}

bool Exchange::wants_request_body() const {
  if (upstream_ == nullptr) return phase_ != Phase::kTunnel;
  return upstream_->queued() < kWriteHighWater && !request_splice_blocked_;
}

}  // namespace sg
