#include "proxy_core/http2/h2_session.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <chrono>

#include "proxy_core/http2/h2_stream.h"

namespace sg {

namespace {

uint64_t steady_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

nghttp2_option* make_options(const H2Settings& s) {
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  // The owner says when request body bytes are taken (consume): a slow upstream holds the window.
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_max_continuations(opt, s.max_continuations);
  // Our own reset counter answers ENHANCE_YOUR_CALM first; nghttp2's token bucket (its default:
  // 1000 tokens, 33 more a second) stays as a looser backstop, never below its default burst.
  uint64_t burst = std::max<uint64_t>(1000, static_cast<uint64_t>(s.max_resets_per_window) * 2);
  nghttp2_option_set_stream_reset_rate_limit(opt, burst, burst);
  nghttp2_option_set_max_outbound_ack(opt, 1000);
  nghttp2_option_set_max_settings(opt, 32);
  // Our HPACK encoder's table: the client may ask for up to 64 KiB, we keep 4 KiB.
  nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);
  return opt;
}

}  // namespace

H2Preface match_h2_preface(std::string_view received) {
  std::string_view preface(NGHTTP2_CLIENT_MAGIC, NGHTTP2_CLIENT_MAGIC_LEN);
  size_t n = std::min(received.size(), preface.size());
  if (received.substr(0, n) != preface.substr(0, n)) return H2Preface::kNo;
  return n == preface.size() ? H2Preface::kYes : H2Preface::kNeedMore;
}

H2Session::H2Session(H2SessionOwner& owner, const H2Settings& settings, Clock clock)
    : owner_(owner), settings_(settings), clock_(clock ? std::move(clock) : Clock(steady_ms)) {
  nghttp2_session_callbacks* callbacks = nullptr;
  nghttp2_session_callbacks_new(&callbacks);
  install_h2_callbacks(callbacks);
  nghttp2_option* opt = make_options(settings_);
  nghttp2_session_server_new2(&session_, callbacks, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(callbacks);
  nghttp2_settings_entry entries[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, settings_.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, settings_.stream_window_bytes},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, settings_.max_header_list_bytes},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, entries, std::size(entries));
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                        static_cast<int32_t>(settings_.connection_window_bytes));
}

H2Session::~H2Session() {
  nghttp2_session_del(session_);
}

H2Session::Stream* H2Session::find(int32_t stream_id) const {
  return streams_.find(stream_id);
}

bool H2Session::receive(std::string_view bytes) {
  if (broken_) return false;
  ssize_t rv = nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(bytes.data()),
                                        bytes.size());
  flush_resumes();
  // A flood defence (count_flood) or the owner (terminate) ended the connection meanwhile.
  if (broken_) return false;
  if (rv >= 0) return true;
  broken_ = true;
  uint32_t code = kH2ProtocolError;
  if (rv == NGHTTP2_ERR_FLOODED) {
    ++stats_.goaway_flooded;
    code = kH2EnhanceYourCalm;
  } else if (rv == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS) {
    ++stats_.goaway_continuation_flood;
    code = kH2EnhanceYourCalm;
  } else {
    ++stats_.goaway_protocol_error;
  }
  nghttp2_session_terminate_session(session_, code);
  return false;
}

size_t H2Session::produce(std::string& out, size_t max_bytes) {
  size_t before = out.size();
  produced_all_ = false;
  for (;;) {
    if (out.size() - before >= max_bytes) break;
    const uint8_t* data = nullptr;
    ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n <= 0) {
      if (n < 0) broken_ = true;
      produced_all_ = true;
      break;
    }
    out.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
  }
  // A resumed source may submit more right away.
  if (!pending_resumes_.empty()) produced_all_ = false;
  flush_resumes();
  return out.size() - before;
}

void H2Session::flush_resumes() {
  while (!pending_resumes_.empty()) {
    std::vector<int32_t> ids;
    ids.swap(pending_resumes_);
    for (int32_t id : ids)
      if (find(id) != nullptr) owner_.on_response_resume(id);
  }
}

bool H2Session::submit_response(int32_t stream_id, int status,
                                const std::vector<HeaderField>& headers, bool has_body) {
  response_fields_.clear();
  for (const HeaderField& f : headers)
    response_fields_.field(f.name, f.value);
  return submit_response(stream_id, status, response_fields_, has_body);
}

bool H2Session::submit_response(int32_t stream_id, int status, H2ResponseFields& fields,
                                bool has_body) {
  Stream* st = find(stream_id);
  if (st == nullptr || st->response_submitted || broken_) return false;
  const std::vector<nghttp2_nv>& nva = fields.nv(status);
  nghttp2_data_provider provider{};
  provider.read_callback = read_h2_body;
  // nghttp2 copies the names and values here (no NO_COPY flag): `fields` may be reused next.
  int rv = nghttp2_submit_response(session_, stream_id, nva.data(), nva.size(),
                                   has_body ? &provider : nullptr);
  if (rv != 0) return false;
  st->response_submitted = true;
  st->body_ended = !has_body;
  return true;
}

bool H2Session::send_body(int32_t stream_id, std::string_view data) {
  Stream* st = find(stream_id);
  if (st == nullptr || !st->response_submitted || st->body_ended) return false;
  st->out.append(data);
  if (st->deferred) {
    st->deferred = false;
    nghttp2_session_resume_data(session_, stream_id);
  }
  if (!st->paused && st->pending() > settings_.response_buffer_bytes) {
    st->paused = true;
    ++stats_.response_pauses;
    owner_.on_response_pause(stream_id);
  }
  return true;
}

bool H2Session::end_body(int32_t stream_id) {
  Stream* st = find(stream_id);
  if (st == nullptr || !st->response_submitted || st->body_ended) return false;
  st->body_ended = true;
  if (st->deferred) {
    st->deferred = false;
    nghttp2_session_resume_data(session_, stream_id);
  }
  return true;
}

bool H2Session::reset_stream(int32_t stream_id, uint32_t error_code) {
  Stream* st = find(stream_id);
  if (st == nullptr) return false;
  st->owner_reset = true;
  return nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream_id, error_code) == 0;
}

void H2Session::consume(int32_t stream_id, size_t bytes) {
  Stream* st = find(stream_id);
  if (st == nullptr) return;  // closed: its unconsumed bytes went back to the connection then
  size_t n = std::min<uint64_t>(bytes, st->unconsumed);
  st->unconsumed -= n;
  nghttp2_session_consume(session_, stream_id, n);
}

void H2Session::shutdown_gracefully() {
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(session_), NGHTTP2_NO_ERROR,
                        nullptr, 0);
}

void H2Session::terminate(uint32_t error_code) {
  if (broken_) return;  // a GOAWAY is queued already
  broken_ = true;
  nghttp2_session_terminate_session(session_, error_code);
}

bool H2Session::wants_read() const {
  return !broken_ && nghttp2_session_want_read(session_);
}

bool H2Session::wants_write() const {
  return nghttp2_session_want_write(session_) != 0;
}

bool H2Session::blocked_on_peer_window() const {
  // The streams first: most of the time none has output waiting, and wants_write() costs more.
  bool waiting = false;
  for (const auto& [id, st] : streams_.open())
    if (st->pending() != 0 || (st->body_ended && st->deferred)) waiting = true;
  if (!waiting || wants_write()) return false;
  int32_t connection_window = nghttp2_session_get_remote_window_size(session_);
  for (const auto& [id, st] : streams_.open()) {
    if (st->pending() == 0 && !(st->body_ended && st->deferred)) continue;
    if (connection_window <= 0) return true;
    if (nghttp2_session_get_stream_remote_window_size(session_, id) <= 0) return true;
  }
  return false;
}

size_t H2Session::buffered(int32_t stream_id) const {
  Stream* st = find(stream_id);
  return st == nullptr ? 0 : st->pending();
}

bool H2Session::count_flood(uint32_t& count, uint64_t& window_start, uint32_t limit,
                            uint64_t& stat) {
  uint64_t now = clock_();
  if (now - window_start >= settings_.flood_window_ms) {
    window_start = now;
    count = 0;
  }
  if (++count <= limit) return true;
  if (count == limit + 1 && !broken_) {
    ++stat;
    broken_ = true;  // nothing more is read, no response accepted: receive() returns false
    nghttp2_session_terminate_session(session_, NGHTTP2_ENHANCE_YOUR_CALM);
  }
  return false;
}

void H2Session::answer_locally(int32_t stream_id, int status) {
  std::string code = std::to_string(status);
  nghttp2_nv nv[] = {{reinterpret_cast<uint8_t*>(const_cast<char*>(":status")),
                      reinterpret_cast<uint8_t*>(code.data()), 7, code.size(),
                      NGHTTP2_NV_FLAG_NONE}};
  nghttp2_submit_response(session_, stream_id, nv, 1, nullptr);
}

}  // namespace sg
