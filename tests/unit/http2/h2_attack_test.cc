// Attacks on the HTTP/2 codec found in review: resets the server is made to send (MadeYouReset),
// an owner that calls back into the session from its callbacks (reset, produce, submit) and the
// exactly-once promise of on_stream_closed, and :path bytes that an HTTP/1.1 upstream would read
// differently from the gateway.
#include <doctest/doctest.h>

#include <functional>
#include <set>

#include "proxy_core/http2/h2_request_head.h"
#include "tests/unit/http2/h2_test_support.h"

namespace sg {
namespace {

using h2test::Fields;
using h2test::get_request;
using h2test::raw_frame;
using h2test::raw_headers;

std::string u32(uint32_t v) {
  std::string s;
  for (int shift = 24; shift >= 0; shift -= 8)
    s += static_cast<char>((v >> shift) & 0xff);
  return s;
}

Fields post_with_length(const std::string& length) {
  return {{":method", "POST"},
          {":scheme", "https"},
          {":authority", "a"},
          {":path", "/"},
          {"content-length", length}};
}

// Counts every event per stream and checks that none comes after on_stream_closed. What it does
// from inside each callback is up to the test.
struct StrictOwner : H2SessionOwner {
  H2Session* session = nullptr;
  std::map<int32_t, int> closes;
  std::set<int32_t> heads;
  int events_after_close = 0;
  std::function<void(int32_t)> on_head;
  std::function<void(int32_t)> on_closed;

  void event(int32_t id) {
    if (closes.count(id) != 0) ++events_after_close;
  }
  void on_request_head(int32_t id, MessageHead&, bool) override {
    event(id);
    heads.insert(id);
    if (on_head) on_head(id);
  }
  void on_request_body(int32_t id, std::string_view data) override {
    event(id);
    session->consume(id, data.size());
  }
  void on_request_end(int32_t id) override { event(id); }
  void on_response_pause(int32_t id) override { event(id); }
  void on_response_resume(int32_t id) override { event(id); }
  void on_stream_closed(int32_t id, uint32_t) override {
    ++closes[id];
    if (on_closed) on_closed(id);
  }
};

struct StrictHarness {
  explicit StrictHarness(H2Settings s = {})
      : settings(s), session(owner, settings, [this] { return now_ms; }) {
    owner.session = &session;
    session.receive(h2test::raw_preface());
  }
  bool feed(const std::string& bytes) {
    bool ok = session.receive(bytes);
    while (session.produce(output) > 0) {
    }
    return ok;
  }
  uint64_t now_ms = 1000;
  H2Settings settings;
  StrictOwner owner;
  H2Session session;
  std::string output;
};

// MadeYouReset (CVE-2025-8671): the client never sends RST_STREAM; it makes the server reset each
// stream (a DATA frame past the Content-Length, a zero WINDOW_UPDATE) right after the owner got
// the head and started work upstream. Those resets must count like the client's own.
TEST_CASE("h2 resets the client provokes count like Rapid Reset and end in GOAWAY") {
  H2Settings s;
  s.max_resets_per_window = 50;
  SUBCASE("DATA beyond content-length") {
    StrictHarness h(s);
    int32_t id = 1;
    int refused_reads = 0;
    for (int read = 0; read < 20; ++read) {  // one socket read after another
      std::string burst;
      for (int i = 0; i < 10; ++i, id += 2) {
        burst += raw_headers(id, post_with_length("1"), false);
        burst += raw_frame(NGHTTP2_DATA, NGHTTP2_FLAG_END_STREAM, id, "xx");
      }
      if (!h.feed(burst)) ++refused_reads;
    }
    CHECK(refused_reads > 0);  // receive() says the connection is over
    h2test::ServerFrames f = h2test::parse_server_output(h.output);
    CHECK(f.goaway);
    CHECK(f.goaway_code == kH2EnhanceYourCalm);
    CHECK(h.session.stats().goaway_rapid_reset == 1);
    CHECK(h.owner.heads.size() <= 60);
    CHECK(h.session.done());
    // Streams still open at the GOAWAY are the owner's to tear down with the connection.
    for (const auto& [head, n] : h.owner.closes)
      CHECK(n == 1);
  }
  SUBCASE("zero WINDOW_UPDATE on the stream") {
    // nghttp2 1.52 makes this one a connection error at once: the connection ends either way.
    StrictHarness h(s);
    std::string burst;
    for (int32_t id = 1; id <= 2 * 200; id += 2) {
      burst += raw_headers(id, post_with_length("1"), false);
      burst += raw_frame(NGHTTP2_WINDOW_UPDATE, 0, id, u32(0));
    }
    h.feed(burst);
    CHECK(h2test::parse_server_output(h.output).goaway);
    CHECK(h.owner.heads.size() <= 51);
  }
}

TEST_CASE("h2 resets the owner asks for are not counted as a flood") {
  H2Settings s;
  s.max_resets_per_window = 10;
  StrictHarness h(s);
  h.owner.on_head = [&](int32_t id) { h.session.reset_stream(id, kH2RefusedStream); };
  std::string burst;
  for (int32_t id = 1; id <= 2 * 30; id += 2)
    burst += raw_headers(id, get_request(), true);
  CHECK(h.feed(burst));
  CHECK_FALSE(h2test::parse_server_output(h.output).goaway);
  CHECK(h.owner.heads.size() == 30);
}

TEST_CASE("h2 an owner resetting from on_request_head gets on_stream_closed exactly once") {
  StrictHarness h;
  h.owner.on_head = [&](int32_t id) {
    CHECK(h.session.reset_stream(id, kH2Cancel));
    CHECK(h.session.reset_stream(id, kH2Cancel));  // twice: still one close
  };
  h.owner.on_closed = [&](int32_t id) {
    // Every call naming a closed stream is refused, none crashes.
    CHECK_FALSE(h.session.reset_stream(id, kH2Cancel));
    CHECK_FALSE(h.session.submit_response(id, 200, {}, true));
    CHECK_FALSE(h.session.send_body(id, "late"));
    CHECK_FALSE(h.session.end_body(id));
    h.session.consume(id, 10);
  };
  std::string burst;
  for (int32_t id = 1; id <= 9; id += 2) {
    burst += raw_headers(id, post_with_length("4"), false);
    burst += raw_frame(NGHTTP2_DATA, NGHTTP2_FLAG_END_STREAM, id, "body");
  }
  CHECK(h.feed(burst));
  CHECK(h.owner.heads.size() == 5);
  for (int32_t id : h.owner.heads)
    CHECK(h.owner.closes[id] == 1);
  CHECK(h.owner.events_after_close == 0);
  h2test::ServerFrames f = h2test::parse_server_output(h.output);
  CHECK(f.resets.size() == 5);
}

// The connection will flush after every event; produce() from inside a callback must neither
// re-enter nghttp2's send loop nor lose output.
TEST_CASE("h2 produce called from inside owner callbacks is safe and loses nothing") {
  StrictHarness h;
  std::string inner;
  h.owner.on_head = [&](int32_t id) {
    h.session.submit_response(id, 200, {{"content-type", "text/plain"}}, true);
    h.session.send_body(id, "hello");
    h.session.end_body(id);
    h.session.produce(inner);
  };
  h.owner.on_closed = [&](int32_t) { h.session.produce(inner); };
  std::string burst;
  for (int32_t id = 1; id <= 5; id += 2)
    burst += raw_headers(id, get_request(), true);
  CHECK(h.feed(burst));
  // inner holds what the callbacks produced, first on the wire: it goes before h.output.
  h2test::ServerFrames f = h2test::parse_server_output(inner + h.output);
  for (int32_t id = 1; id <= 5; id += 2) {
    CHECK(h.owner.closes[id] == 1);
  }
  CHECK(f.data_bytes == 3 * 5);
  CHECK(h.owner.events_after_close == 0);
}

TEST_CASE("h2 an owner ending the connection from inside on_request_head gets no later stream") {
  StrictHarness h;
  h.owner.on_head = [&](int32_t id) {
    if (id == 1) h.session.terminate(kH2InternalError);
  };
  std::string burst;
  for (int32_t id = 1; id <= 9; id += 2)
    burst += raw_headers(id, get_request(), true);
  h.feed(burst);
  CHECK(h.owner.heads == std::set<int32_t>{1});
  h2test::ServerFrames f = h2test::parse_server_output(h.output);
  CHECK(f.goaway);
  CHECK(f.goaway_code == kH2InternalError);
  CHECK(h.session.done());
  // The connection is over: no response is accepted that could never leave, nothing is read.
  CHECK_FALSE(h.session.submit_response(1, 200, {}, false));
  CHECK_FALSE(h.session.receive(raw_headers(11, get_request(), true)));
  CHECK(h.owner.heads.size() == 1);
}

// RFC 9113 §8.3.1: :path holds the path and query only. A '#' would reach the HTTP/1.1 upstream
// in the request line, where the gateway (target_path stops at '#') and the application may
// disagree on the path; bytes above 0x7e are not in a request-target at all (RFC 3986).
TEST_CASE("h2 head builder refuses a fragment or non-ASCII bytes in :path") {
  for (std::string path : {"/public#/../admin", "/a#", "/\x80", "/caf\xc3\xa9"}) {
    CAPTURE(path);
    H2RequestHeadBuilder b(64 * 1024, 100);
    b.add(":method", "GET");
    b.add(":scheme", "https");
    b.add(":authority", "example.com");
    b.add(":path", path);
    MessageHead head;
    CHECK(b.finish(head) == H2HeadVerdict::kMalformed);
  }
  H2RequestHeadBuilder b(64 * 1024, 100);
  b.add(":method", "GET");
  b.add(":scheme", "https");
  b.add(":authority", "example.com");
  b.add(":path", "/a/%23b?c=d&e=%C3%A9");
  MessageHead head;
  CHECK(b.finish(head) == H2HeadVerdict::kOk);
}

// Two identical Content-Length fields: llhttp refuses them on HTTP/1.1, so the HTTP/1.1 upstream
// has never seen them from us; over HTTP/2 they must not reach it either.
TEST_CASE("h2 a repeated content-length never reaches the owner twice") {
  h2test::FakeOwner owner;
  H2Session session(owner, H2Settings{});
  owner.session = &session;
  h2test::H2Client client;
  const std::string body = "abc";
  Fields fields = post_with_length("3");
  fields.emplace_back("content-length", "3");
  int32_t id = client.request(fields, &body);
  client.pump(session);
  if (owner.requests.count(id) == 0) {
    CHECK(client.responses[id].closed);  // refused as malformed
    return;
  }
  size_t n = 0;
  for (const HeaderField& f : owner.requests[id].head.headers)
    if (f.name == "content-length") ++n;
  CHECK(n == 1);
}

}  // namespace
}  // namespace sg
