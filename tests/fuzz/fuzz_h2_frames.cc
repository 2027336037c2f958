// Fuzz target: client bytes (after the HTTP/2 connection preface, which the harness sends) into
// the HTTP/2 server codec (proxy_core/http2/h2_session.h), with a fake stream owner that answers
// every request, consumes bodies and pauses its source when told.
//
// Input: byte 0 options (bit 0: consume request bodies only at the end of each input piece; bit 1:
// answer with a body at the head rather than at the end of the request; bits 2-3: response body
// size 0, 100, 20000 or 200000 bytes); byte 1: where to cut the rest into two receive() calls.
//
// Invariants:
// - on_stream_closed comes exactly once for every stream that had on_request_head, and no event
//   names a stream before its head or after its close;
// - every head is a version 2.0 head with the http2 flag, a method, an origin-form target ("*"
//   for OPTIONS, the authority for CONNECT), at most one Host and one Cookie, lowercase names,
//   no connection-specific field, no te but "trailers", no CR, LF or NUL in any value;
// - request body bytes never exceed the Content-Length, and equal it at on_request_end;
// - unconsumed request bytes of a stream never exceed the stream window we advertised;
// - pause and resume alternate per stream, starting with pause.
#include <map>
#include <string>

#include "proxy_core/http2/h2_request_head.h"
#include "proxy_core/http2/h2_session.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

constexpr size_t kBodySizes[] = {0, 100, 20000, 200000};

struct StreamModel {
  bool closed = false;
  bool ended = false;
  bool paused = false;
  bool answered = false;
  bool has_length = false;
  uint64_t length = 0;
  uint64_t received = 0;
  uint64_t unconsumed = 0;
};

void check_head(const sg::MessageHead& head) {
  SG_FUZZ_CHECK(head.http2 && head.version_major == 2 && head.version_minor == 0);
  SG_FUZZ_CHECK(!head.method.empty());
  bool connect = head.method == "CONNECT";
  SG_FUZZ_CHECK(connect || head.target == "*" || (!head.target.empty() && head.target[0] == '/'));
  SG_FUZZ_CHECK(head.target != "*" || head.method == "OPTIONS");
  SG_FUZZ_CHECK(head.count("host") <= 1 && head.count("cookie") <= 1);
  for (size_t i = 0; i < head.header_count; ++i) {
    const sg::HeaderField& f = head.headers[i];
    SG_FUZZ_CHECK(!f.name.empty() && f.name[0] != ':');
    for (char c : f.name)
      SG_FUZZ_CHECK(!(c >= 'A' && c <= 'Z'));
    SG_FUZZ_CHECK(!sg::is_connection_specific_field(f.name));
    SG_FUZZ_CHECK(f.name != "te" || f.value == "trailers");
    SG_FUZZ_CHECK(f.value.find_first_of(std::string_view("\r\n\0", 3)) == std::string::npos);
  }
}

struct Owner : sg::H2SessionOwner {
  sg::H2Session* session = nullptr;
  std::map<int32_t, StreamModel> streams;
  uint8_t options = 0;
  uint32_t window = 0;

  StreamModel& live(int32_t id) {
    auto it = streams.find(id);
    SG_FUZZ_CHECK(it != streams.end() && !it->second.closed);
    return it->second;
  }
  void answer(int32_t id) {
    StreamModel& s = live(id);
    if (s.answered) return;
    s.answered = true;
    size_t size = kBodySizes[(options >> 2) & 3];
    session->submit_response(id, 200, {{"Content-Length", std::to_string(size)}}, size > 0);
    if (size == 0) return;
    session->send_body(id, std::string(size, 'r'));
    session->end_body(id);
  }
  void on_request_head(int32_t id, sg::MessageHead& head, bool has_body) override {
    SG_FUZZ_CHECK(streams.count(id) == 0);
    check_head(head);
    StreamModel& s = streams[id];
    s.ended = !has_body;
    s.has_length = head.has_content_length;
    s.length = head.content_length;
    if (!has_body || (options & 2)) answer(id);
  }
  void on_request_body(int32_t id, std::string_view data) override {
    StreamModel& s = live(id);
    SG_FUZZ_CHECK(!s.ended);
    s.received += data.size();
    SG_FUZZ_CHECK(!s.has_length || s.received <= s.length);
    s.unconsumed += data.size();
    SG_FUZZ_CHECK(s.unconsumed <= window);
    if (!(options & 1)) consume(id, s);
  }
  void on_request_end(int32_t id) override {
    StreamModel& s = live(id);
    SG_FUZZ_CHECK(!s.ended);
    SG_FUZZ_CHECK(!s.has_length || s.received == s.length);
    s.ended = true;
    answer(id);
  }
  void on_response_pause(int32_t id) override {
    StreamModel& s = live(id);
    SG_FUZZ_CHECK(!s.paused);
    s.paused = true;
  }
  void on_response_resume(int32_t id) override {
    StreamModel& s = live(id);
    SG_FUZZ_CHECK(s.paused);
    s.paused = false;
  }
  void on_stream_closed(int32_t id, uint32_t) override { live(id).closed = true; }
  void consume(int32_t id, StreamModel& s) {
    session->consume(id, s.unconsumed);
    s.unconsumed = 0;
  }
  void consume_all() {
    for (auto& [id, s] : streams)
      if (!s.closed) consume(id, s);
  }
};

}  // namespace

SG_FUZZ_ENTRY(h2_frames) {
  if (size < 2) return 0;
  sg::H2Settings settings;
  settings.max_concurrent_streams = 16;
  settings.stream_window_bytes = 16 * 1024;
  settings.connection_window_bytes = 64 * 1024;
  settings.max_header_list_bytes = 4096;
  settings.response_buffer_bytes = 16 * 1024;
  uint64_t now = 0;
  Owner owner;
  owner.options = data[0];
  owner.window = settings.stream_window_bytes;
  sg::H2Session session(owner, settings, [&now] { return now += 7; });
  owner.session = &session;
  std::string_view input = sg_fuzz::as_text(data + 2, size - 2);
  size_t cut = input.empty() ? 0 : data[1] % (input.size() + 1);
  std::string out;
  bool ok = session.receive("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
  for (std::string_view piece : {input.substr(0, cut), input.substr(cut)}) {
    if (ok) ok = session.receive(piece);
    owner.consume_all();
    for (int i = 0; i < 64 && session.produce(out) > 0; ++i)
      out.clear();
  }
  for (const auto& [id, s] : owner.streams)
    SG_FUZZ_CHECK(s.closed || session.buffered(id) <= 200000);
  return 0;
}
