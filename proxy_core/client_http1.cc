// ClientConnection, HTTP/1.1: the request parser and pipelining, the response's framing
// (Content-Length, chunked, close-delimited for HTTP/1.0 clients, Connection: close), the
// keep-alive decision, and the raw tunnel. The connection is the Downstream of the current
// Exchange, which decides everything else. See client_connection.h.
#include <llhttp.h>

#include "proxy_core/chunk_bufs.h"
#include "proxy_core/client_connection.h"
#include "proxy_core/exchange.h"
#include "proxy_core/net/stream_io.h"
#include "proxy_core/worker.h"

namespace sg {

namespace {
constexpr std::string_view k100Continue = "HTTP/1.1 100 Continue\r\n\r\n";
}  // namespace

HttpParser::Limits ClientConnection::request_limits(const Config& c) {
  return {static_cast<size_t>(c.limits.max_header_bytes), c.limits.max_headers, 4096};
}

void ClientConnection::on_plaintext(const char* data, size_t len) {
  if (state_ == State::kTunnel) {
    if (!exchange_->tunnel_from_client(std::string_view(data, len))) {
      close_now();
      return;
    }
    arm_timer(TimerKind::kActivity);
    update_reading();
    return;
  }
  if (has_pending()) {
    h1_->pending.append(data, len);
    process_pending();
  } else {
    process(data, len);
  }
}

Http1State& ClientConnection::h1() {
  if (h1_ == nullptr) h1_ = worker_->http1_states().acquire(request_limits(*worker_->config()));
  return *h1_;
}

// Gives the HTTP/1.1 state back once nothing of a request is left: its parser between messages,
// nothing unparsed. Corked writes (finish() runs inside the exchange's cork) go out first.
void ClientConnection::release_h1() {
  if (h1_ == nullptr) return;
  flush_cork();
  worker_->http1_states().give_back(h1_);
  h1_ = nullptr;
}

void ClientConnection::process_pending() {
  std::string input;
  input.swap(h1().pending);
  process(input.data(), input.size());
  // Keep the larger buffer for the next time (reuse its capacity), if a request is still in
  // progress (else the state went back to the pool as it was).
  if (h1_ != nullptr && h1_->pending.empty() && input.capacity() <= 64 * 1024) {
    input.clear();
    h1_->pending.swap(input);
  }
}

// Feeds client bytes to the request parser for as long as the state allows; stashes the rest.
void ClientConnection::process(const char* data, size_t len) {
  while (len > 0 && !closing_) {
    if (state_ == State::kIdle) {
      state_ = State::kHead;
      // A new exchange, reset as a whole: a head rejected before on_request_head (parse error,
      // header timeout) gets its own answer and log line, never the previous request's.
      if (exchange_ == nullptr) exchange_ = worker_->exchanges().acquire();
      h1().body_to = exchange_;  // the request body's bytes (the parser's sink)
      request_done_ = response_started_ = close_after_ = false;
      response_framing_ = BodyFraming::kNone;
      exchange_->begin(this);
      arm_timer(TimerKind::kHeader);
    }
    // Parse only while reading a head or streaming a request body the exchange takes.
    bool parse = state_ == State::kHead || (state_ == State::kForward && !request_done_);
    if (!parse) break;
    HttpParser& parser = h1_->parser;  // h1_ may change when a request ends inside the loop
    HttpParser::Event ev = parser.step(data, len);
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
        if (parser.head_reported()) {
          on_request_complete();
        } else {
          on_request_head(/*complete=*/true);
        }
        break;
      case HttpParser::Event::kError:
        reject(parser.error_status(), parser.error_reason());
        return;
    }
  }
  if (len > 0 && !closing_) h1().pending.append(data, len);
  if (state_ == State::kForward && !request_done_) maybe_splice_request();  // client_splice.cc
  update_reading();
}

void ClientConnection::update_reading() {
  if (closing_ && !lingering_) return;
  bool want = false;
  switch (state_) {
    case State::kIdle:
    case State::kHead:
      // Bounded: at most one read buffer of unparsed bytes is held while a head is incomplete.
      want = pending_size() < worker_->read_buffer_size();
      break;
    case State::kForward:
      if (request_done_) {
        // Keep reading while the response runs: a pipelined request waits unparsed (bounded),
        // and not toggling the socket saves two epoll_ctl calls per request.
        want = pending_size() < worker_->read_buffer_size() && !client_eof_;
        break;
      }
      want = !has_pending() && exchange_->wants_request_body();
      // While we hold the client back (a slow upstream), the client is not idle: its timer
      // waits, and the upstream's response timeout bounds the stall instead.
      if (!response_started_ && want != (timer_kind_ == TimerKind::kActivity))
        arm_timer(want ? TimerKind::kActivity : TimerKind::kNone);
      break;
    case State::kTunnel:
      want = exchange_->wants_request_body();
      break;
    case State::kClosing:
      want = lingering_;
      break;
    case State::kWaiting:
      // A whole request (no body) waiting for the store or the policy: go on reading as once it
      // is forwarded. An asynchronous lookup (Redis) then costs no uv_read_stop/uv_read_start
      // pair, two epoll_ctl calls per request; pipelined bytes wait unparsed (bounded), and a
      // half-close is answered first (on_client_eof). A request with a body is held back.
      want = request_done_ && pending_size() < worker_->read_buffer_size() && !client_eof_;
      break;
  }
  set_reading(want);
}

void ClientConnection::on_request_head(bool complete) {
  if (config_ != worker_->config()) config_ = worker_->config();
  HttpParser& parser = h1_->parser;
  parser.set_limits(request_limits(*config_));
  MessageHead& req = parser.head();
  request_done_ = complete;
  client_http11_ = req.is_http11();
  state_ = State::kWaiting;
  exchange_->on_request_head(req, complete);
}

void ClientConnection::on_request_complete() {
  request_done_ = true;
  exchange_->on_request_end();
}

void ClientConnection::reject(int status, const char* reason) {
  if (exchange_ == nullptr) {  // cannot happen: an exchange begins with the first byte
    close_now();
    return;
  }
  exchange_->reject(status, reason, h1_ != nullptr ? &h1_->parser.head() : nullptr);
}

// ---- Downstream ---------------------------------------------------------------------------

void ClientConnection::start_response(const ResponseHead& h) {
  ClientResponseOptions o;
  o.header_prefix = h.header_prefix;
  o.cookie_name = h.cookie_name;
  o.added = h.extra;
  o.force_no_store = h.force_no_store;
  if (h.upgrade) {
    o.upgrade = true;
    o.force_no_store = false;
    response_framing_ = BodyFraming::kNone;  // the tunnel's bytes go out as they come
  } else {
    const MessageHead& resp = *h.upstream;
    if (!h.has_body) {
      response_framing_ = BodyFraming::kNone;
    } else if (resp.has_content_length && !resp.chunked) {
      response_framing_ = BodyFraming::kContentLength;
    } else if (client_http11_) {
      response_framing_ = BodyFraming::kChunked;  // chunked, or close-delimited re-framed
    } else {
      response_framing_ = BodyFraming::kUntilClose;  // an HTTP/1.0 client cannot take chunks
      close_after_ = true;
    }
    o.framing = response_framing_;
    o.client_http11 = client_http11_;
    o.close = h.close || close_after_ || draining_;
  }
  std::string& out = h1().out;
  out.clear();
  build_client_response(*h.upstream, o, out);
  response_started_ = true;
  write_client(out);
}

void ClientConnection::send_body(const char* data, size_t len, bool stable) {
  if (closing_ || len == 0) return;
  if (response_framing_ == BodyFraming::kChunked) {
    ChunkBufs chunk(data, len, h1().out);
    write_client(chunk.bufs, ChunkBufs::kCount, /*stable=*/false);
  } else {
    uv_buf_t buf = uv_buf_init(const_cast<char*>(data), static_cast<unsigned>(len));
    write_client(&buf, 1, stable);
  }
}

void ClientConnection::end_response() {
  if (response_framing_ != BodyFraming::kChunked) return;
  uv_buf_t buf =
      uv_buf_init(const_cast<char*>(kLastChunk.data()), static_cast<unsigned>(kLastChunk.size()));
  write_client(&buf, 1, /*stable=*/true);
}

void ClientConnection::send_local(const LocalResponse& r) {
  if (r.discard_input && h1_ != nullptr) h1_->pending.clear();
  const bool close = r.close || close_after_ || draining_;
  std::string& out = h1().out;
  out.clear();
  build_local_response(r.status, r.body, close, worker_->http_date(), out, r.extra, r.head_only,
                       r.content_type);
  if (close) close_after_ = true;
  response_started_ = true;
  write_client(out);
}

void ClientConnection::send_continue() {
  write_client(k100Continue);
}

void ClientConnection::deliver_request_body() {
  state_ = State::kForward;
  if (request_done_) {
    // Nothing left of this request: keep reading while the response runs (a pipelined
    // request waits unparsed; not toggling the socket saves two epoll_ctl calls).
    update_reading();
    return;
  }
  h1().parser.resume();
  process_pending();
}

void ClientConnection::set_client_timer(ClientTimer timer) {
  arm_timer(timer == ClientTimer::kActivity ? TimerKind::kActivity : TimerKind::kNone);
}

void ClientConnection::touch_client_timer() {
  if (timer_kind_ == TimerKind::kActivity) arm_timer(TimerKind::kActivity);
}

void ClientConnection::finish(bool keep_alive) {
  if (closing_) return;
  if (!keep_alive || close_after_ || draining_ || !request_done_) {
    close_after_flush();
    return;
  }
  // Next request on this keep-alive connection (maybe already waiting unparsed).
  state_ = State::kIdle;
  if (h1_ != nullptr) h1_->parser.resume();
  arm_timer(TimerKind::kIdle);
  if (has_pending()) {
    process_pending();  // the next request begins on the same exchange object
  } else {
    release_exchange();  // an idle connection holds no exchange, parser or buffer
    release_h1();
    update_reading();
  }
}

// Gives the exchange back between requests. It may still be on the stack (finish() is the last
// thing it does): the pool keeps it as it is, and begin() resets it.
void ClientConnection::release_exchange() {
  if (exchange_ == nullptr) return;
  worker_->exchanges().release(exchange_);
  exchange_ = nullptr;
  if (h1_ != nullptr) h1_->body_to = nullptr;
}

void ClientConnection::start_tunnel() {
  state_ = State::kTunnel;
  request_done_ = true;
  if (has_pending()) {
    exchange_->tunnel_from_client(h1_->pending);  // bytes that followed the upgrade request
    h1_->pending.clear();
  }
  arm_timer(TimerKind::kActivity);
  update_reading();
}

}  // namespace sg
