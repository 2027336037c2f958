// Flood and abuse defences of the HTTP/2 codec, with hand-written client frames: Rapid Reset,
// CONTINUATION flood, HPACK bomb, SETTINGS/PING/PRIORITY floods, empty DATA frames, unread ACKs,
// too many streams, broken prefaces. Each ends in a GOAWAY with the right code and done() once
// the output is flushed, and another session keeps serving meanwhile.
#include <doctest/doctest.h>

#include "tests/unit/http2/h2_test_support.h"

namespace sg {
namespace {

using h2test::get_request;
using h2test::raw_frame;
using h2test::raw_headers;

std::string u32(uint32_t v) {
  std::string s;
  for (int shift = 24; shift >= 0; shift -= 8)
    s += static_cast<char>((v >> shift) & 0xff);
  return s;
}

struct RawHarness {
  explicit RawHarness(H2Settings s = {})
      : settings(s), session(owner, settings, [this] { return now_ms; }) {
    owner.session = &session;
    owner.answer_on_end = true;
    session.receive(h2test::raw_preface());
  }
  // Feeds `bytes`, then collects everything the server has to say.
  bool feed(const std::string& bytes) {
    bool ok = session.receive(bytes);
    while (session.produce(output) > 0) {
    }
    return ok;
  }
  h2test::ServerFrames frames() const { return h2test::parse_server_output(output); }

  uint64_t now_ms = 1000;
  H2Settings settings;
  h2test::FakeOwner owner;
  H2Session session;
  std::string output;
};

// A second connection that must keep working while the first is attacked.
struct Bystander {
  Bystander() : session(owner, H2Settings{}) {
    owner.session = &session;
    owner.answer_on_end = true;
  }
  bool serves_a_request() {
    int32_t id = client.request(get_request());
    client.pump(session);
    return client.responses[id].status == 200 && client.responses[id].body == "ok";
  }
  h2test::FakeOwner owner;
  H2Session session;
  h2test::H2Client client;
};

TEST_CASE("h2 Rapid Reset beyond the threshold gets GOAWAY ENHANCE_YOUR_CALM") {
  H2Settings s;
  s.max_resets_per_window = 50;
  RawHarness h(s);
  Bystander other;
  std::string burst;
  for (int32_t id = 1; id <= 2 * 60; id += 2) {
    burst += raw_headers(id, get_request(), false);
    burst += raw_frame(NGHTTP2_RST_STREAM, 0, id, u32(NGHTTP2_CANCEL));
  }
  h.feed(burst);
  CHECK(other.serves_a_request());
  h2test::ServerFrames f = h.frames();
  CHECK(f.goaway);
  CHECK(f.goaway_code == kH2EnhanceYourCalm);
  CHECK(h.session.stats().goaway_rapid_reset == 1);
  CHECK(h.session.done());
  // Every stream the owner saw was closed for it.
  for (const auto& [id, r] : h.owner.requests)
    CHECK(r.closed);
}

TEST_CASE("h2 resets under the threshold, spread over windows, are tolerated") {
  H2Settings s;
  s.max_resets_per_window = 50;
  s.flood_window_ms = 1000;
  RawHarness h(s);
  int32_t id = 1;
  for (int window = 0; window < 3; ++window) {
    std::string burst;
    for (int i = 0; i < 40; ++i, id += 2) {
      burst += raw_headers(id, get_request(), false);
      burst += raw_frame(NGHTTP2_RST_STREAM, 0, id, u32(NGHTTP2_CANCEL));
    }
    CHECK(h.feed(burst));
    h.now_ms += 1000;
  }
  CHECK_FALSE(h.frames().goaway);
  CHECK(h.session.stats().peer_resets == 120);
  CHECK(h.feed(raw_headers(id, get_request(), true)));
  CHECK(h.frames().statuses[id] == 200);
}

TEST_CASE("h2 a CONTINUATION flood closes the connection") {
  RawHarness h;
  Bystander other;
  std::string flood = raw_frame(NGHTTP2_HEADERS, 0, 1, h2test::raw_header_block(get_request()));
  for (int i = 0; i < 5000; ++i)
    flood += raw_frame(NGHTTP2_CONTINUATION, 0, 1, h2test::raw_header_block({{"x-a", "b"}}));
  CHECK_FALSE(h.feed(flood));
  CHECK(other.serves_a_request());
  h2test::ServerFrames f = h.frames();
  CHECK(f.goaway);
  CHECK(f.goaway_code == kH2EnhanceYourCalm);
  CHECK(h.session.stats().goaway_continuation_flood == 1);
  CHECK(h.owner.requests.empty());
  CHECK(h.session.done());
}

TEST_CASE("h2 an HPACK bomb expands over the header list limit and is answered 431") {
  RawHarness h;
  // Stream 1 puts a 4000-byte field into the decoder's table (literal with incremental
  // indexing, RFC 7541 §6.2.1); stream 3 references it (one byte each) 100 times.
  std::string value(4000, 'v');
  // Value length 4000 as a 7-bit prefix integer: 127 + 3873 (0xA1 0x1E).
  std::string insert = std::string("\x40\x03x-b", 5) + std::string("\x7f\xa1\x1e", 3) + value;
  std::string first = h2test::raw_header_block(get_request()) + insert;
  h.feed(raw_frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, 1, first));
  CHECK(h.frames().statuses[1] == 200);
  std::string bomb = h2test::raw_header_block(get_request());
  for (int i = 0; i < 100; ++i)
    bomb += '\xbe';  // indexed field 62: the newest dynamic entry
  h.feed(raw_frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, 3, bomb));
  CHECK(h.frames().statuses[3] == 431);
  CHECK(h.owner.requests.count(3) == 0);
  CHECK(h.session.stats().header_lists_too_large == 1);
  // The decoder state is intact: the next request works.
  h.feed(raw_headers(5, get_request(), true));
  CHECK(h.frames().statuses[5] == 200);
}

void check_control_flood(uint8_t type, const std::string& payload) {
  H2Settings s;
  s.max_control_frames_per_window = 100;
  RawHarness h(s);
  Bystander other;
  std::string flood;
  for (int i = 0; i < 150; ++i)
    flood += raw_frame(type, 0, type == NGHTTP2_PRIORITY ? 1 : 0, payload);
  h.feed(flood);
  CHECK(other.serves_a_request());
  h2test::ServerFrames f = h.frames();
  CHECK(f.goaway);
  CHECK(f.goaway_code == kH2EnhanceYourCalm);
  CHECK(h.session.stats().goaway_control_flood == 1);
  CHECK(h.session.done());
}

TEST_CASE("h2 SETTINGS PING and PRIORITY floods get GOAWAY ENHANCE_YOUR_CALM") {
  SUBCASE("settings") {
    check_control_flood(NGHTTP2_SETTINGS, "");
  }
  SUBCASE("ping") {
    check_control_flood(NGHTTP2_PING, std::string(8, '\x01'));
  }
  SUBCASE("priority") {
    check_control_flood(NGHTTP2_PRIORITY, u32(0) + "\x10");
  }
}

// Data dribble (CVE-2019-9511): WINDOW_UPDATEs of a few bytes each, on a stream and on the
// connection, would have the server cut its response into frames of that size.
TEST_CASE("h2 a data dribble of small WINDOW_UPDATEs gets GOAWAY ENHANCE_YOUR_CALM") {
  H2Settings s;
  s.max_control_frames_per_window = 100;
  RawHarness h(s);
  Bystander other;
  h.owner.answer_on_end = false;
  h.feed(raw_headers(1, get_request(), true));
  REQUIRE(h.session.submit_response(1, 200, {}, true));
  REQUIRE(h.session.send_body(1, std::string(200'000, 'x')));
  std::string dribble;
  for (int i = 0; i < 60; ++i) {
    dribble += raw_frame(NGHTTP2_WINDOW_UPDATE, 0, 1, u32(1));
    dribble += raw_frame(NGHTTP2_WINDOW_UPDATE, 0, 0, u32(1));
  }
  CHECK_FALSE(h.feed(dribble));
  CHECK(other.serves_a_request());
  h2test::ServerFrames f = h.frames();
  CHECK(f.goaway);
  CHECK(f.goaway_code == kH2EnhanceYourCalm);
  CHECK(h.session.stats().goaway_window_update_flood == 1);
  CHECK(h.session.stats().goaway_control_flood == 0);
}

TEST_CASE("h2 WINDOW_UPDATEs of ordinary size are not a flood") {
  H2Settings s;
  s.max_control_frames_per_window = 100;
  RawHarness h(s);
  std::string updates;
  for (int i = 0; i < 300; ++i)
    updates += raw_frame(NGHTTP2_WINDOW_UPDATE, 0, 0, u32(s.small_window_update_bytes));
  CHECK(h.feed(updates));
  CHECK_FALSE(h.frames().goaway);
  CHECK(h.feed(raw_headers(1, get_request(), true)));
  CHECK(h.frames().statuses[1] == 200);
}

TEST_CASE("h2 unread SETTINGS and PING ACKs trip nghttp2's outbound flood guard") {
  H2Settings s;
  s.max_control_frames_per_window = 1'000'000;
  h2test::FakeOwner owner;
  H2Session session(owner, s);
  owner.session = &session;
  std::string flood = h2test::raw_preface();
  for (int i = 0; i < 3000; ++i)
    flood += raw_frame(NGHTTP2_PING, 0, 0, std::string(8, '\x02'));
  CHECK_FALSE(session.receive(flood));  // produce() never called: the ACKs pile up
  CHECK(session.stats().goaway_flooded == 1);
  CHECK_FALSE(session.wants_read());
}

TEST_CASE("h2 empty DATA frames beyond the threshold get GOAWAY ENHANCE_YOUR_CALM") {
  H2Settings s;
  s.max_empty_frames_per_window = 20;
  RawHarness h(s);
  std::string flood = raw_headers(
      1, {{":method", "POST"}, {":scheme", "https"}, {":authority", "a"}, {":path", "/"}}, false);
  for (int i = 0; i < 30; ++i)
    flood += raw_frame(NGHTTP2_DATA, 0, 1, "");
  h.feed(flood);
  h2test::ServerFrames f = h.frames();
  CHECK(f.goaway);
  CHECK(f.goaway_code == kH2EnhanceYourCalm);
  CHECK(h.session.stats().goaway_empty_frame_flood == 1);
}

TEST_CASE("h2 streams over max_concurrent_streams are refused") {
  H2Settings s;
  s.max_concurrent_streams = 4;
  RawHarness h(s);
  h.feed(raw_frame(NGHTTP2_SETTINGS, NGHTTP2_FLAG_ACK, 0, ""));
  std::string opens;
  for (int32_t id = 1; id <= 9; id += 2)
    opens += raw_headers(
        id,
        h2test::Fields{
            {":method", "POST"}, {":scheme", "https"}, {":authority", "a"}, {":path", "/"}},
        false);
  h.owner.answer_on_end = false;
  h.feed(opens);
  CHECK(h.owner.requests.size() == 4);
  h2test::ServerFrames f = h.frames();
  bool refused = f.resets.count(9) == 1 && f.resets[9] == kH2RefusedStream;
  bool goaway = f.goaway;
  CHECK((refused || goaway));
  CHECK(h.owner.requests.count(9) == 0);
}

TEST_CASE("h2 a bad preface or a frame on the wrong stream is a connection error") {
  SUBCASE("preface") {
    h2test::FakeOwner owner;
    H2Session session(owner, H2Settings{});
    CHECK_FALSE(session.receive("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
    std::string out;
    while (session.produce(out) > 0) {
    }
    CHECK(session.done());
  }
  SUBCASE("data on stream 0") {
    RawHarness h;
    h.feed(raw_frame(NGHTTP2_DATA, 0, 0, "x"));
    CHECK(h.frames().goaway);
    CHECK(h.frames().goaway_code == kH2ProtocolError);
    CHECK(h.session.done());
  }
}

TEST_CASE("h2 the client preface is recognised for h2c with prior knowledge") {
  const std::string preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  CHECK(match_h2_preface(preface) == H2Preface::kYes);
  CHECK(match_h2_preface(preface + "\x00\x00") == H2Preface::kYes);
  CHECK(match_h2_preface("") == H2Preface::kNeedMore);
  CHECK(match_h2_preface("PRI * HTTP/2") == H2Preface::kNeedMore);
  CHECK(match_h2_preface("GET / HTTP/1.1\r\n") == H2Preface::kNo);
  CHECK(match_h2_preface("PRI * HTTP/1.1\r\n") == H2Preface::kNo);
  CHECK(match_h2_preface("POST") == H2Preface::kNo);
}

TEST_CASE("h2 graceful shutdown lets open streams finish and refuses new ones") {
  RawHarness h;
  h.owner.answer_on_end = false;
  h.feed(raw_headers(1, get_request(), true));
  h.session.shutdown_gracefully();
  h.feed("");
  CHECK(h.frames().goaway);
  CHECK(h.frames().goaway_code == kH2NoError);
  h.feed(raw_headers(3, get_request(), true));
  CHECK(h.owner.requests.count(3) == 0);
  h.owner.answer(1);
  h.feed("");
  CHECK(h.frames().statuses[1] == 200);
}

}  // namespace
}  // namespace sg
