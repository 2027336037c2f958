#include "proxy_core/h2_stream.h"

#include <utility>

#include "proxy_core/h2_connection.h"
#include "proxy_core/http/header_rewrite.h"

namespace sg {

H2Stream::~H2Stream() {
  if (timer_ == ClientTimer::kActivity) conn_.stream_timer_changed(timer_, ClientTimer::kNone);
}

void H2Stream::start(int32_t id, MessageHead& head, bool has_body) {
  id_ = id;
  std::swap(head_, head);
  request_ended_ = !has_body;
  end_told_ = !has_body;  // the head says the request is complete (on_request_head's `complete`)
  // RFC 9113 §8.1: without content-length the body ends with END_STREAM. The HTTP/1.1 request
  // upstream then needs chunked framing: exactly one framing, never a body without one (the
  // application would read the body as the next request).
  if (has_body && !head_.has_content_length) head_.chunked = true;
  ex_ = conn_.pool().acquire();
  Exchange* ex = ex_;
  ex->begin(this);
  if (ex_ != ex) return;  // answered and given back already
  ex->on_request_head(head_, !has_body);
}

void H2Stream::on_body(std::string_view data) {
  conn_.touch();
  if (ex_ == nullptr) {
    // No exchange reads it any more (answered already): free the window at once.
    conn_.session().consume(id_, data.size());
    return;
  }
  if (!delivering_) {
    held_.append(data);  // bounded by the stream's window: not consumed yet
    return;
  }
  hand_over(data);
}

void H2Stream::hand_over(std::string_view data) {
  Exchange* ex = ex_;
  unconsumed_ += data.size();
  ex->on_request_body(data.data(), data.size());
  consume_if_upstream_ready();
}

void H2Stream::consume_if_upstream_ready() {
  if (unconsumed_ == 0) return;
  if (ex_ != nullptr && !ex_->wants_request_body()) return;
  conn_.session().consume(id_, unconsumed_);
  unconsumed_ = 0;
  conn_.schedule_flush();  // the WINDOW_UPDATE
}

void H2Stream::on_end() {
  request_ended_ = true;
  if (ex_ == nullptr || !delivering_ || end_told_) return;
  end_told_ = true;
  ex_->on_request_end();
}

void H2Stream::on_pause() {
  if (ex_ != nullptr) ex_->client_output_full();
}

void H2Stream::on_resume() {
  if (ex_ != nullptr) ex_->client_output_drained();
}

void H2Stream::closed() {
  if (ex_ == nullptr) return;
  Exchange* ex = ex_;
  ex->downstream_closed();
  // No call of the exchange is on the stack (h2_connection.h): reset it now, so that a store
  // answer still on its way finds a newer generation in its session gate and is dropped.
  ex->reset();
  give_back();
}

void H2Stream::reset() {
  // closed() ran: no exchange, no timer. head_ keeps its buffers (start swaps it out).
  id_ = 0;
  held_.clear();
  if (held_.capacity() > 4096) std::string().swap(held_);  // a spare holds no big body
  unconsumed_ = 0;
  delivering_ = request_ended_ = end_told_ = false;
}

void H2Stream::give_back() {
  Exchange* ex = ex_;
  ex_ = nullptr;
  set_client_timer(ClientTimer::kNone);
  conn_.pool().release(ex);
  // Whatever the exchange will not read frees its window now.
  size_t rest = unconsumed_ + held_.size();
  unconsumed_ = 0;
  held_.clear();
  if (rest > 0) {
    conn_.session().consume(id_, rest);
    conn_.schedule_flush();
  }
}

// ---- Downstream --------------------------------------------------------------------------

const ClientFacts& H2Stream::client() const {
  return conn_.facts();
}

bool H2Stream::draining() const {
  return conn_.draining();
}

void H2Stream::start_response(const ResponseHead& head) {
  const MessageHead& up = *head.upstream;
  ClientResponseOptions o;
  o.header_prefix = head.header_prefix;
  o.cookie_name = head.cookie_name;
  // Content-Length is kept when the application framed the body with it (or there is no body:
  // HEAD, 304); a chunked one goes out as DATA frames without it.
  o.framing = !head.has_body          ? BodyFraming::kNone
              : up.has_content_length ? BodyFraming::kContentLength
                                      : BodyFraming::kChunked;
  o.force_no_store = head.force_no_store;
  // Straight into the codec's reused collector, which nghttp2 copies from at the submit.
  H2Session& s = conn_.session();
  H2ResponseFields& fields = s.response_fields();
  fields.clear();
  client_response_fields(up, o, fields);
  if (head.extra != nullptr)
    for (const auto& [name, value] : *head.extra)
      fields.field(name, value);
  s.submit_response(id_, up.status, fields, head.has_body);
  conn_.schedule_flush();
}

void H2Stream::send_body(const char* data, size_t len, bool) {
  conn_.session().send_body(id_, std::string_view(data, len));
  conn_.schedule_flush();
}

void H2Stream::end_response() {
  conn_.session().end_body(id_);
  conn_.schedule_flush();
}

void H2Stream::send_local(const LocalResponse& r) {
  H2Session& s = conn_.session();
  H2ResponseFields& fields = s.response_fields();
  fields.clear();
  fields.field("date", conn_.services().http_date());
  fields.field("content-type", r.content_type);
  fields.field("cache-control", "no-store");
  fields.field("content-length", std::to_string(r.body.size()));
  if (r.extra != nullptr)
    for (const auto& [name, value] : *r.extra)
      fields.field(name, value);
  bool has_body = !r.head_only && !r.body.empty();
  if (s.submit_response(id_, r.status, fields, has_body) && has_body) {
    s.send_body(id_, r.body);
    s.end_body(id_);
  }
  conn_.schedule_flush();
}

void H2Stream::abort() {
  // The response cannot be completed: the client must not take what it got for a whole one.
  conn_.session().reset_stream(id_, kH2InternalError);
  conn_.schedule_flush();
}

// Its session ended (issue 14): this stream only; the exchange stays ours until the codec closes
// the stream (closed(), on the flush), and sends nothing more.
void H2Stream::cancel() {
  conn_.session().reset_stream(id_, kH2Cancel);
  conn_.schedule_flush();
}

void H2Stream::deliver_request_body() {
  if (delivering_ || ex_ == nullptr) return;
  delivering_ = true;
  Exchange* ex = ex_;
  if (!held_.empty()) {
    std::string held;
    held.swap(held_);
    hand_over(held);
    if (ex_ != ex) return;
  }
  if (request_ended_ && !end_told_) {
    end_told_ = true;
    ex->on_request_end();
  }
}

void H2Stream::request_flow_changed() {
  consume_if_upstream_ready();
}

void H2Stream::set_client_timer(ClientTimer timer) {
  if (timer == timer_) return;
  ClientTimer before = timer_;
  timer_ = timer;
  conn_.stream_timer_changed(before, timer);
}

void H2Stream::touch_client_timer() {
  conn_.touch();
}

void H2Stream::finish(bool) {
  // keep_alive is the connection's business on HTTP/1.1; an HTTP/2 stream simply ends (the
  // connection goes on unless drain() sent GOAWAY). A request body still coming is discarded.
  give_back();
}

}  // namespace sg
