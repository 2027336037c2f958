#include "proxy_core/h2_connection.h"

#include <algorithm>

#include "proxy_core/h2_stats_report.h"
#include "proxy_core/h2_stream.h"
#include "proxy_core/net/handle_closer.h"

namespace sg {

namespace {

// Frames are produced while the transport holds less than this (its own high water mark is
// higher): the rest waits in the codec's per-stream buffers, where backpressure reaches each
// stream's upstream on its own (on_response_pause).
constexpr size_t kProduceBelow = 256 * 1024;

ClientFacts h2_facts(const ClientFacts& facts) {
  ClientFacts f = facts;
  f.can_tunnel = false;  // RFC 8441 is not implemented: no WebSocket over HTTP/2
  return f;
}

}  // namespace

H2Connection::H2Connection(H2Transport& transport, uv_loop_t* loop, ExchangeServices& services,
                           ExchangePool& pool, const ClientFacts& facts)
    : transport_(&transport),
      loop_(loop),
      services_(services),
      pool_(pool),
      facts_(h2_facts(facts)),
      session_(*this, h2_settings_from(*services.config()),
               [loop] { return static_cast<uint64_t>(uv_now(loop)); }) {
  uv_check_init(loop_, &flush_check_);
  uv_idle_init(loop_, &flush_idle_);
  flush_check_.data = this;
  uv_timer_init(loop_, &timer_);
  flush_idle_.data = this;
  timer_.data = this;
  services_.metrics().h2.connections.add();
  last_progress_ = uv_now(loop_);
  schedule_flush();  // the server preface
  update_timer();
}

H2Connection::~H2Connection() = default;

H2Stream* H2Connection::find(int32_t stream_id) {
  return streams_.find(stream_id);
}

void H2Connection::receive(const char* data, size_t len) {
  if (transport_ == nullptr) return;
  touch();
  session_.receive(std::string_view(data, len));  // false: a GOAWAY is queued; flush sends it
  if (transport_ == nullptr) return;
  flush();
}

void H2Connection::on_write_drained() {
  if (transport_ == nullptr) return;
  touch();  // the client reads what we send: progress
  flush();
}

void H2Connection::drain() {
  if (transport_ == nullptr || draining_) return;
  draining_ = true;
  session_.shutdown_gracefully();
  schedule_flush();
}

void H2Connection::schedule_flush() {
  if (flush_scheduled_ || transport_ == nullptr) return;
  flush_scheduled_ = true;
  uv_check_start(&flush_check_, &H2Connection::on_flush);
  uv_idle_start(&flush_idle_, [](uv_idle_t*) {});
}

void H2Connection::on_flush(uv_check_t* check) {
  auto* c = static_cast<H2Connection*>(check->data);
  uv_check_stop(check);
  uv_idle_stop(&c->flush_idle_);
  c->flush_scheduled_ = false;
  c->flush();
}

// Hands the transport what the codec has to say, as far as the transport's queue allows, in one
// write: every frame of this loop turn goes out together (one send, one run of TLS records),
// not one write per frame or per stream.
void H2Connection::flush() {
  if (transport_ == nullptr) return;
  out_.clear();
  size_t queued = transport_->h2_write_queued();
  // wants_write() first: most flushes after a read have nothing to say. Then nghttp2 is asked
  // again only when the last produce() stopped short of everything.
  if (session_.wants_write()) {
    while (transport_ != nullptr && queued + out_.size() < kProduceBelow) {
      size_t n = session_.produce(out_, kProduceBelow - queued - out_.size());
      if (n == 0 || session_.produced_all()) break;
    }
  }
  if (transport_ == nullptr) return;
  if (!out_.empty() && !transport_->h2_write(out_)) return;  // failed: the transport releases us
  if (out_.capacity() > 256 * 1024) std::string().swap(out_);
  after_io();
}

// After each batch of input or output: metrics, reading, the end of the session, the timer.
void H2Connection::after_io() {
  if (transport_ == nullptr) return;
  report_h2_stats(session_.stats(), reported_, services_.metrics().h2);
  if (session_.done()) {
    // GOAWAY flushed and nothing more to say: streams the codec still knew of get no
    // on_stream_closed (h2_session.h), so their exchanges are torn down here.
    teardown_streams();
    if (!finished_) {
      finished_ = true;
      transport_->h2_finished();
    }
    return;
  }
  transport_->h2_set_reading(session_.wants_read() &&
                             transport_->h2_write_queued() < kProduceBelow);
  update_timer();
}

void H2Connection::update_timer() {
  uint64_t now = uv_now(loop_);
  if (session_.blocked_on_peer_window()) {
    if (stalled_since_ == 0) stalled_since_ = now;
  } else {
    stalled_since_ = 0;
  }
  uint64_t timeout = static_cast<uint64_t>(services_.config()->limits.client_idle_timeout.count());
  // Idle (no stream) and waiting for the client's body count from its last bytes; a stalled
  // response counts from when the client's window closed.
  uint64_t from = last_progress_;
  if (!streams_.empty() && activity_streams_ == 0) {
    if (stalled_since_ == 0) return;  // the upstream's own timers govern
    from = stalled_since_;
  } else if (stalled_since_ != 0) {
    from = std::min(from, stalled_since_);
  }
  uint64_t due = from + timeout;
  deadline_.set(&timer_, &H2Connection::on_timer, due > now ? due - now : 0);
}

void H2Connection::on_timer(uv_timer_t* t) {
  auto* c = static_cast<H2Connection*>(t->data);
  c->deadline_.fired();
  if (c->transport_ == nullptr) return;
  uint64_t now = uv_now(c->loop_);
  uint64_t timeout =
      static_cast<uint64_t>(c->services_.config()->limits.client_idle_timeout.count());
  bool idle = c->streams_.empty();
  bool waiting = c->activity_streams_ > 0 && now - c->last_progress_ >= timeout;
  bool stalled = c->stalled_since_ != 0 && now - c->stalled_since_ >= timeout &&
                 c->session_.blocked_on_peer_window();
  if (idle && now - c->last_progress_ >= timeout) {
    c->session_.shutdown_gracefully();  // idle: GOAWAY, then done() once flushed
    c->flush();
    return;
  }
  if (waiting || stalled) {
    // The client stopped sending a body it owes, or stopped reading (a zero window held
    // open): nothing more is read, the GOAWAY goes out and the connection closes.
    c->session_.terminate(kH2NoError);
    c->flush();
    return;
  }
  c->update_timer();
}

void H2Connection::stream_timer_changed(ClientTimer before, ClientTimer after) {
  if (before == ClientTimer::kActivity) --activity_streams_;
  if (after == ClientTimer::kActivity) {
    ++activity_streams_;
    touch();
  }
}

// ---- H2SessionOwner ------------------------------------------------------------------------

void H2Connection::on_request_head(int32_t stream_id, MessageHead& head, bool has_body) {
  std::unique_ptr<H2Stream> stream = streams_.spare();  // a closed stream's, buffers kept
  if (stream == nullptr) stream = std::make_unique<H2Stream>(*this);
  H2Stream& s = streams_.insert(stream_id, std::move(stream));
  s.start(stream_id, head, has_body);
}

void H2Connection::on_request_body(int32_t stream_id, std::string_view data) {
  if (H2Stream* s = find(stream_id)) {
    s->on_body(data);
  } else {
    session_.consume(stream_id, data.size());
  }
}

void H2Connection::on_request_end(int32_t stream_id) {
  if (H2Stream* s = find(stream_id)) s->on_end();
}

void H2Connection::on_response_pause(int32_t stream_id) {
  if (H2Stream* s = find(stream_id)) s->on_pause();
}

void H2Connection::on_response_resume(int32_t stream_id) {
  if (H2Stream* s = find(stream_id)) s->on_resume();
}

void H2Connection::on_stream_closed(int32_t stream_id, uint32_t) {
  std::unique_ptr<H2Stream> s = streams_.take(stream_id);
  if (s == nullptr) return;
  s->closed();
  streams_.recycle(std::move(s));
}

// ---- the end -------------------------------------------------------------------------------

void H2Connection::teardown_streams() {
  while (std::unique_ptr<H2Stream> s = streams_.take_first())
    s->closed();
}

void H2Connection::release() {
  if (transport_ == nullptr) return;
  report_h2_stats(session_.stats(), reported_, services_.metrics().h2);
  teardown_streams();
  transport_ = nullptr;
  HandleCloser<H2Connection, &H2Connection::handles_open_, &H2Connection::destroy>::close(
      {reinterpret_cast<uv_handle_t*>(&flush_check_), reinterpret_cast<uv_handle_t*>(&flush_idle_),
       reinterpret_cast<uv_handle_t*>(&timer_)});
}

void H2Connection::destroy(H2Connection* c) {
  delete c;
}

}  // namespace sg
