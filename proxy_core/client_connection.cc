#include "proxy_core/client_connection.h"

#include <llhttp.h>

#include "proxy_core/chunk_bufs.h"
#include "proxy_core/http/request_validation.h"
#include "proxy_core/http/set_cookie.h"
#include "proxy_core/net/cidr.h"
#include "proxy_core/net/handle_closer.h"
#include "proxy_core/net/socket_address.h"
#include "proxy_core/net/stream_io.h"
#include "proxy_core/ops/log.h"
#include "proxy_core/tls/tls_pump.h"
#include "proxy_core/worker.h"

namespace sg {

namespace {

HttpParser::Limits request_limits(const Config& c) {
  return {static_cast<size_t>(c.limits.max_header_bytes), c.limits.max_headers, 4096};
}

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

constexpr std::string_view k100Continue = "HTTP/1.1 100 Continue\r\n\r\n";
// How long a rejected connection may keep sending before we stop discarding and close: enough
// for the client to read our error before a reset could destroy it (nginx: lingering_timeout).
constexpr Millis kLingerTime{2000};

}  // namespace

ClientConnection::ClientConnection(Worker* worker)
    : worker_(worker),
      config_(worker->config()),
      request_parser_(HttpParser::Kind::kRequest, request_limits(*worker->config())) {
  uv_tcp_init(worker_->loop(), &tcp_);
  uv_timer_init(worker_->loop(), &timer_);
  tcp_.data = this;
  timer_.data = this;
  handles_open_ = 2;
  request_parser_.set_body_sink(
      [this](const char* data, size_t len) { on_request_body(data, len); });
}

bool ClientConnection::accept_from(uv_stream_t* server, std::shared_ptr<const TlsServerContext> tls,
                                   bool redirect_only) {
  if (uv_accept(server, reinterpret_cast<uv_stream_t*>(&tcp_)) != 0) {
    close_now();
    return false;
  }
  redirect_only_ = redirect_only;
  if (tls != nullptr) {
    tls_context_ = std::move(tls);
    tls_ = std::make_unique<TlsEngine>(*tls_context_);
  }
  uv_tcp_nodelay(&tcp_, 1);
  sockaddr_storage peer{};
  int len = sizeof peer;
  if (uv_tcp_getpeername(&tcp_, reinterpret_cast<sockaddr*>(&peer), &len) == 0) {
    peer_ip_ = address_ip_string(reinterpret_cast<sockaddr*>(&peer));
    peer_trusted_ =
        any_contains(config_->server.trusted_proxies, reinterpret_cast<sockaddr*>(&peer));
  }
  state_ = State::kIdle;
  arm_timer(tls_ != nullptr ? TimerKind::kHandshake : TimerKind::kIdle);
  update_reading();
  return true;
}

// ---- reading ------------------------------------------------------------------------------

void ClientConnection::on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto* c = static_cast<ClientConnection*>(h->data);
  *buf =
      uv_buf_init(c->worker_->read_buffer(), static_cast<unsigned>(c->worker_->read_buffer_size()));
}

void ClientConnection::on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
  auto* c = static_cast<ClientConnection*>(s->data);
  if (nread == 0 || (c->closing_ && !c->lingering_)) return;
  if (nread < 0) {
    c->on_client_eof(static_cast<int>(nread));
    return;
  }
  if (c->lingering_) return;  // discarding after a rejection
  if (c->tls_ == nullptr) {
    c->on_plaintext(buf->base, static_cast<size_t>(nread));
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
  if (handshake_completed) c->arm_timer(TimerKind::kIdle);
  if (!plain.empty()) c->on_plaintext(plain.data(), plain.size());
  if (st == TlsStatus::kClosed && !c->closing_) c->on_client_eof(UV_EOF);
}

void ClientConnection::on_client_eof(int status) {
  if (status == UV_EOF && state_ == State::kForward && ex_.request_done && !closing_) {
    // A half-close after a complete request (RFC 9112 §9.6 allows it): answer, then close.
    client_eof_ = true;
    ex_.close_after = true;
    update_reading();
    return;
  }
  // The client went away. Mid-tunnel or mid-request there is nobody left to answer; an
  // upstream exchange in flight is abandoned.
  close_now();
}

void ClientConnection::on_plaintext(const char* data, size_t len) {
  if (state_ == State::kTunnel) {
    if (ex_.upstream == nullptr || ex_.upstream->write(std::string_view(data, len)) != 0) {
      close_now();
      return;
    }
    arm_timer(TimerKind::kActivity);
    update_reading();
    return;
  }
  if (!pending_.empty()) {
    pending_.append(data, len);
    process_pending();
  } else {
    process(data, len);
  }
}

void ClientConnection::process_pending() {
  std::string input;
  input.swap(pending_);
  process(input.data(), input.size());
  // Keep the larger buffer for the next time (reuse its capacity).
  if (pending_.empty() && input.capacity() <= 64 * 1024) {
    input.clear();
    pending_.swap(input);
  }
}

// Feeds client bytes to the request parser for as long as the state allows; stashes the rest.
void ClientConnection::process(const char* data, size_t len) {
  while (len > 0 && !closing_) {
    if (state_ == State::kIdle) {
      state_ = State::kHead;
      // A new exchange, reset as a whole: a head rejected before on_request_head (parse error,
      // header timeout) must get its error response after the previous, possibly still corked,
      // answer (a stale response state would make reject() abort the connection), and its log
      // line must not carry the previous exchange's figures or session.
      ex_ = ExchangeState{};
      session_.reset();
      ex_.started_ms = unix_now_ms();
      ex_.started_hr = uv_hrtime();
      worker_->next_request_id(request_id_);  // rejected requests are logged with an id too
      arm_timer(TimerKind::kHeader);
    }
    // Parse only while reading a head or streaming a request body to a connected upstream.
    bool parse = state_ == State::kHead || (state_ == State::kForward && !ex_.request_done);
    if (!parse) break;
    HttpParser::Event ev = request_parser_.step(data, len);
    switch (ev) {
      case HttpParser::Event::kNeedMore:
        break;
      case HttpParser::Event::kHead:
        on_request_head(/*complete=*/false);
        break;
      case HttpParser::Event::kHeadDone:
        on_request_head(/*complete=*/true);
        break;
      case HttpParser::Event::kMessageDone:
        on_request_complete();
        break;
      case HttpParser::Event::kUpgrade:
        if (request_parser_.head_reported()) {
          on_request_complete();
        } else {
          on_request_head(/*complete=*/true);
        }
        break;
      case HttpParser::Event::kError:
        reject(request_parser_.error_status(), request_parser_.error_reason());
        return;
    }
  }
  if (len > 0 && !closing_) pending_.append(data, len);
  update_reading();
}

void ClientConnection::update_reading() {
  if (closing_ && !lingering_) return;
  bool want = false;
  switch (state_) {
    case State::kIdle:
    case State::kHead:
      // Bounded: at most one read buffer of unparsed bytes is held while a head is incomplete.
      want = pending_.size() < worker_->read_buffer_size();
      break;
    case State::kForward:
      if (ex_.request_done) {
        // Keep reading while the response runs: a pipelined request waits in pending_ (bounded),
        // and not toggling the socket saves two epoll_ctl calls per request.
        want = pending_.size() < worker_->read_buffer_size() && !client_eof_;
        break;
      }
      // ex_.upstream is null only while a local answer discards the rest of the request.
      want =
          pending_.empty() && (ex_.upstream == nullptr || ex_.upstream->queued() < kWriteHighWater);
      // While we hold the client back (a slow upstream), the client is not idle: its timer
      // waits, and the upstream's response timeout bounds the stall instead.
      if (!ex_.request_done && ex_.response == Response::kNotStarted &&
          want != (timer_kind_ == TimerKind::kActivity))
        arm_timer(want ? TimerKind::kActivity : TimerKind::kNone);
      break;
    case State::kTunnel:
      want = ex_.upstream != nullptr && ex_.upstream->queued() < kWriteHighWater;
      break;
    case State::kClosing:
      want = lingering_;
      break;
    default:
      want = false;
  }
  auto* s = reinterpret_cast<uv_stream_t*>(&tcp_);
  if (want && !reading_) {
    reading_ = uv_read_start(s, &ClientConnection::on_alloc, &ClientConnection::on_read) == 0;
  } else if (!want && reading_) {
    uv_read_stop(s);
    reading_ = false;
  }
}

void ClientConnection::arm_timer(TimerKind kind) {
  if (uv_is_closing(reinterpret_cast<uv_handle_t*>(&timer_))) return;
  timer_kind_ = kind;
  Millis t{0};
  switch (kind) {
    case TimerKind::kNone:
      return;  // lazily: the armed timer finds kNone when it fires and does nothing
    case TimerKind::kIdle:
    case TimerKind::kActivity:
      t = config_->limits.client_idle_timeout;
      break;
    case TimerKind::kHeader:
      t = config_->limits.header_timeout;
      break;
    case TimerKind::kLinger:
      t = kLingerTime;
      break;
    case TimerKind::kHandshake:
      t = config_->tls.handshake_timeout;
      break;
  }
  // Re-armed several times per request: LazyDeadline makes moving it later cheap.
  deadline_.set(&timer_, &ClientConnection::on_timer, static_cast<uint64_t>(t.count()));
}

void ClientConnection::on_timer(uv_timer_t* t) {
  auto* c = static_cast<ClientConnection*>(t->data);
  c->deadline_.fired();
  if (c->timer_kind_ == TimerKind::kNone) return;
  if (!c->deadline_.passed(&c->timer_, &ClientConnection::on_timer)) return;
  switch (c->timer_kind_) {
    case TimerKind::kHeader:
      c->reject(408, "request head not received in time");
      break;
    case TimerKind::kIdle:
    case TimerKind::kActivity:
    case TimerKind::kLinger:
    case TimerKind::kHandshake:
    case TimerKind::kNone:
      c->close_now();
      break;
  }
}

// ---- the request --------------------------------------------------------------------------

void ClientConnection::on_request_head(bool complete) {
  config_ = worker_->config();
  if (keys_ != worker_->policy_keys()) keys_ = worker_->policy_keys();  // loaded with config_
  request_parser_.set_limits(request_limits(*config_));
  MessageHead& req = request_parser_.head();
  // A trusted proxy's request id is kept so that one request has one id end to end.
  const HeaderField* incoming_id = peer_trusted_ ? req.find("x-request-id") : nullptr;
  if (incoming_id != nullptr && is_printable_id(incoming_id->value))
    request_id_ = incoming_id->value;
  ex_.request_done = complete;
  ex_.head_request = req.method_id == HTTP_HEAD;
  ex_.client_http11 = req.is_http11();
  ex_.close_after = !req.keep_alive || draining_;

  RequestVerdict verdict = validate_request(req, config_->server.underscore_headers);
  if (!verdict.ok()) {
    reject(verdict.status, verdict.reason);
    return;
  }
  if (req.chunked) {
    ex_.request_framing = BodyFraming::kChunked;
  } else if (req.has_content_length) {
    ex_.request_framing = BodyFraming::kContentLength;
    if (config_->limits.max_body_bytes != 0 &&
        req.content_length > config_->limits.max_body_bytes) {
      reject(413, "request body over limits.max_body_bytes");
      return;
    }
  } else {
    ex_.request_framing = BodyFraming::kNone;
  }
  if (const HeaderField* expect = req.find("expect")) {
    // RFC 9110 §10.1.1: we answer 100 ourselves when we are ready for the body.
    ex_.expect_continue = iequals(trim_ows(expect->value), "100-continue") && req.is_http11() &&
                          (req.chunked || req.content_length > 0);
  }
  if (req.upgrade) {
    const HeaderField* upgrade = req.find("upgrade");
    // Only WebSocket is tunnelled; h2c and anything else are forwarded as plain requests
    // (Upgrade is hop-by-hop and dropped), and the connection is not reused after.
    ex_.tunnel_requested = config_->upstream.websocket && upgrade != nullptr &&
                           req.method_id == HTTP_GET &&
                           list_contains_token(upgrade->value, "websocket");
    if (!ex_.tunnel_requested) ex_.close_after = true;
  }
  // A body is read under the activity timer; otherwise the upstream's timers govern.
  arm_timer(ex_.request_framing == BodyFraming::kNone ? TimerKind::kNone : TimerKind::kActivity);
  if (answer_locally(req)) return;
  if (redirect_only_) {
    redirect_to_https(req);
    return;
  }
  // (The common cases, TLS or an untrusted peer, are decided here without a call.)
  const bool https =
      tls_ != nullptr || (peer_trusted_ && request_scheme(req) == ClientScheme::kHttps);
  if (!config_->session.logout_path.empty() && refuse_logout(req, https)) return;

  state_ = State::kSession;
  // The store records where a session was created and the audit log names the request.
  session_.set_client(peer_ip_, request_id_);
  session_.begin(*config_, worker_->store(), &worker_->metrics(), https, req,
                 [this](SessionGate::Outcome outcome) { on_session_ready(outcome); });
}

// Health and readiness are answered here and never forwarded.
bool ClientConnection::answer_locally(const MessageHead& req) {
  if (req.method_id != HTTP_GET && req.method_id != HTTP_HEAD) return false;
  std::string_view path = target_path(req.target);
  const HealthConfig& h = config_->health;
  if (path == h.path) {
    ex_.status = 200;
    send_local(200, "ok\n", ex_.close_after);
  } else if (path == h.ready_path) {
    const char* why =
        draining_ ? "not ready: draining" : readiness_problem(worker_->gateway_state(), *config_);
    ex_.status = why ? 503 : 200;
    send_local(ex_.status, why ? std::string(why) + "\n" : std::string("ready\n"), ex_.close_after);
  } else {
    return false;
  }
  return true;
}

void ClientConnection::on_session_ready(SessionGate::Outcome outcome) {
  if (closing_) return;
  switch (outcome) {
    case SessionGate::Outcome::kUnavailable: {
      HeaderList extra{{"Retry-After", "1"}};
      ex_.status = 503;
      send_local(503, "session store unavailable\n", ex_.close_after, &extra);
      return;
    }
    case SessionGate::Outcome::kLogout: {
      HeaderList extra = session_.response_headers();
      extra.emplace_back("Location", config_->session.logout_redirect);
      ex_.status = 303;
      send_local(303, "logged out\n", ex_.close_after, &extra);
      return;
    }
    case SessionGate::Outcome::kProceed:
      run_policy();  // forwards the request unless the policy answers it
      return;
  }
}

void ClientConnection::forward_request() {
  const MessageHead& req = request_parser_.head();
  UpstreamRequestOptions o;
  o.client_address = peer_ip_;
  o.peer_trusted = peer_trusted_;
  o.scheme = tls_ != nullptr ? "https" : "http";
  o.header_prefix = config_->session.header_prefix;
  o.tunnel_websocket = ex_.tunnel_requested;
  o.framing = ex_.request_framing;
  o.content_length = req.content_length;
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
  if (removed != 0) worker_->metrics().rejected_client_headers.add(removed);
  connect_upstream();
}

void ClientConnection::connect_upstream() {
  UpstreamPool& pool = worker_->pool();
  const std::string& server = pool.pick_server(config_->upstream.servers);
  ex_.upstream = ex_.retried ? nullptr : pool.take_idle(server);
  ex_.upstream_started_hr = uv_hrtime();
  if (ex_.upstream != nullptr) {
    ex_.upstream->attach(this);
    send_upstream_head();
    return;
  }
  state_ = State::kUpstreamWait;
  update_reading();
  ex_.upstream = pool.open(server, config_->upstream, response_limits(*config_), this,
                           config_->upstream.tls ? worker_->upstream_tls() : nullptr);
  if (ex_.upstream == nullptr)
    upstream_failed(502, UpstreamError::kConnectOther, "upstream address unusable");
}

void ClientConnection::on_upstream_connected(UpstreamConnection* c, int status) {
  if (c != ex_.upstream || closing_) return;
  if (status != 0) {
    const bool refused = is_connect_refusal(status);
    if (refused) worker_->pool().mark_refused(c->server());
    SG_LOG_WARN("upstream %s: connect failed: %s", c->server().c_str(), uv_strerror(status));
    ex_.upstream = nullptr;  // the connection closes itself
    upstream_failed(502, refused ? UpstreamError::kConnectRefused : UpstreamError::kConnectOther,
                    "upstream connect failed");
    return;
  }
  worker_->metrics().upstream_connect_duration.observe(
      static_cast<double>(uv_hrtime() - ex_.upstream_started_hr) / 1e9);
  send_upstream_head();
}

void ClientConnection::send_upstream_head() {
  state_ = State::kForward;
  ex_.upstream->begin_response(ex_.head_request, config_->upstream.response_timeout);
  if (int r = ex_.upstream->write(upstream_head_); r != 0) {
    ex_.upstream->fail(r);  // a pooled connection the upstream had closed: on_upstream_closed
    return;
  }
  ex_.upstream->start_timer(config_->upstream.response_timeout);
  if (ex_.hold == ExchangeState::Hold::kHolding && !send_held_body()) return;
  if (ex_.request_done) return;  // a retry, or a held body that was complete
  if (ex_.request_framing == BodyFraming::kNone && !ex_.tunnel_requested) {
    // No body: the message is complete once the head is; let the parser say so.
  } else if (ex_.expect_continue) {
    write_client(k100Continue);
    ex_.expect_continue = false;
  }
  request_parser_.resume();
  process_pending();
}

void ClientConnection::on_request_body(const char* data, size_t len) {
  ex_.request_body_bytes += len;
  uint64_t limit = config_->limits.max_body_bytes;
  if (limit != 0 && ex_.request_body_bytes > limit) {
    // Only a chunked body can get here (a Content-Length over the limit is refused up front).
    release_upstream(false);
    reject(413, "request body over limits.max_body_bytes");
    return;
  }
  if (ex_.hold != ExchangeState::Hold::kNone) {
    hold_body(data, len);  // a CSRF token scan (client_policy.cc)
    return;
  }
  if (ex_.upstream == nullptr || closing_) return;  // a local answer discards the body
  int r;
  if (ex_.request_framing == BodyFraming::kChunked) {
    ChunkBufs chunk(data, len, out_);
    r = ex_.upstream->write(chunk.bufs, ChunkBufs::kCount);
  } else {
    r = ex_.upstream->write(std::string_view(data, len));
  }
  if (r != 0) {
    ex_.upstream->fail(r);
    return;
  }
  // A long upload is progress: the response timeout counts from the last body byte sent.
  ex_.upstream->start_timer(config_->upstream.response_timeout);
  if (timer_kind_ == TimerKind::kActivity) arm_timer(TimerKind::kActivity);
}

void ClientConnection::on_request_complete() {
  ex_.request_done = true;
  if (ex_.response == Response::kNotStarted) arm_timer(TimerKind::kNone);
  if (ex_.hold == ExchangeState::Hold::kScanning) {
    form_scanned();  // the CSRF token scan ends (client_policy.cc)
    return;
  }
  // A held body waiting for the upstream: send_held_body writes the last chunk.
  if (ex_.hold == ExchangeState::Hold::kHolding && ex_.upstream != nullptr) return;
  if (ex_.upstream != nullptr && ex_.request_framing == BodyFraming::kChunked) {
    if (int r = ex_.upstream->write(kLastChunk); r != 0) {
      ex_.upstream->fail(r);
      return;
    }
  }
  // Anything after this message (a pipelined request, tunnel bytes) waits in pending_.
  if (ex_.response == Response::kDone) finish_exchange();
}

// ---- closing ------------------------------------------------------------------------------

void ClientConnection::drain() {
  draining_ = true;
  if (state_ == State::kIdle && pending_.empty()) close_now();
}

void ClientConnection::abort() {
  close_now();
}

// Sends what is queued, then FIN; keeps reading (and discarding) for a short while so that the
// client reads our answer before a reset could destroy it.
void ClientConnection::close_after_flush() {
  if (closing_) return;
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
  linger_ = !ex_.request_done || !pending_.empty();
  if (!linger_ && tls_ == nullptr && queued_bytes(reinterpret_cast<uv_stream_t*>(&tcp_)) == 0) {
    // Everything is already in the kernel and nothing is unread: close() sends our FIN after
    // the data, and saves the shutdown(2) round.
    close_now();
    return;
  }
  closing_ = true;
  state_ = State::kClosing;
  release_upstream(false);
  update_reading();
  // A slow client still has the activity timeout to take what is queued.
  arm_timer(TimerKind::kActivity);
  shutdown_req_.data = this;
  if (uv_shutdown(&shutdown_req_, reinterpret_cast<uv_stream_t*>(&tcp_),
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
  corked_.clear();  // an abort: nothing more goes out
  release_upstream(false);
  log_exchange();
  HandleCloser<ClientConnection, &ClientConnection::handles_open_,
               &ClientConnection::on_closed>::close({h, reinterpret_cast<uv_handle_t*>(&timer_)});
}

void ClientConnection::on_closed(ClientConnection* c) {
  c->worker_->connection_closed(c);
  delete c;
}

}  // namespace sg
