// Responses, stream ends and flow control of the HTTP/2 codec, both directions, with an nghttp2
// client session: bounded response buffers with pause/resume for a slow client, request windows
// held until the owner consumes, and one slow stream not stalling the others.
#include <doctest/doctest.h>

#include <algorithm>

#include "tests/unit/http2/h2_test_support.h"

namespace sg {
namespace {

using h2test::Fields;
using h2test::get_request;

Fields post_request() {
  return {{":method", "POST"}, {":scheme", "https"}, {":authority", "a"}, {":path", "/up"}};
}

std::string header_value(const Fields& fields, const std::string& name) {
  for (const auto& [n, v] : fields)
    if (n == name) return v;
  return "<absent>";
}

TEST_CASE("h2 a response goes out with lowercase names and no connection-specific fields") {
  h2test::FakeOwner owner;
  H2Session session(owner, H2Settings{});
  owner.session = &session;
  h2test::H2Client client;
  int32_t id = client.request(get_request());
  client.pump(session);
  REQUIRE(owner.requests.count(id) == 1);
  CHECK(session.submit_response(id, 200,
                                {{"Content-Type", "text/plain"},
                                 {"Connection", "keep-alive, X-Hop"},
                                 {"X-Hop", "secret"},
                                 {"Keep-Alive", "timeout=5"},
                                 {"Transfer-Encoding", "chunked"},
                                 {"Upgrade", "h2c"},
                                 {"Proxy-Connection", "close"},
                                 {"X-Kept", "yes"}},
                                true));
  CHECK(session.send_body(id, "hello "));
  CHECK(session.send_body(id, "world"));
  CHECK(session.end_body(id));
  client.pump(session);
  const h2test::H2Client::Response& r = client.responses[id];
  CHECK(r.status == 200);
  CHECK(r.body == "hello world");
  CHECK(r.closed);
  CHECK(r.close_code == kH2NoError);
  CHECK(header_value(r.headers, "content-type") == "text/plain");
  CHECK(header_value(r.headers, "x-kept") == "yes");
  for (const char* gone :
       {"connection", "x-hop", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection"})
    CHECK(header_value(r.headers, gone) == "<absent>");
  CHECK(owner.requests[id].closed);
  CHECK(owner.requests[id].close_code == kH2NoError);
  // The stream is gone: calls naming it are refused.
  CHECK_FALSE(session.send_body(id, "late"));
  CHECK_FALSE(session.reset_stream(id, kH2Cancel));
}

TEST_CASE("h2 a response without body ends the stream with its HEADERS") {
  h2test::FakeOwner owner;
  H2Session session(owner, H2Settings{});
  owner.session = &session;
  h2test::H2Client client;
  int32_t id = client.request(get_request());
  client.pump(session);
  CHECK(session.submit_response(id, 304, {{"ETag", "\"x\""}}, false));
  CHECK_FALSE(session.send_body(id, "x"));
  client.pump(session);
  CHECK(client.responses[id].status == 304);
  CHECK(client.responses[id].closed);
  CHECK(owner.requests[id].closed);
}

TEST_CASE("h2 a peer reset reaches the owner with its code and resets go the other way") {
  h2test::FakeOwner owner;
  H2Session session(owner, H2Settings{});
  owner.session = &session;
  h2test::H2Client client;
  int32_t a = client.request(get_request("/a"));
  int32_t b = client.request(get_request("/b"));
  client.pump(session);
  nghttp2_submit_rst_stream(client.raw(), NGHTTP2_FLAG_NONE, a, NGHTTP2_CANCEL);
  CHECK(session.reset_stream(b, kH2InternalError));
  client.pump(session);
  CHECK(owner.requests[a].closed);
  CHECK(owner.requests[a].close_code == kH2Cancel);
  CHECK(owner.requests[b].closed);
  CHECK(owner.requests[b].close_code == kH2InternalError);
  CHECK(client.responses[b].close_code == kH2InternalError);
  CHECK(session.stats().peer_resets == 1);
}

// Feeds `total` bytes of response body in 16 KiB pieces, as an upstream would, honouring pause.
struct PausingSource {
  int32_t id;
  size_t total;
  size_t sent = 0;
  size_t max_buffered = 0;
  void feed(H2Session& session, h2test::FakeOwner& owner) {
    while (sent < total && (owner.paused.size() == owner.resumed.size())) {
      size_t n = std::min<size_t>(16 * 1024, total - sent);
      session.send_body(id, std::string(n, 'x'));
      sent += n;
      max_buffered = std::max(max_buffered, session.buffered(id));
      if (sent == total) session.end_body(id);
    }
  }
};

TEST_CASE("h2 a slow client holds a bounded response buffer and the source pauses and resumes") {
  H2Settings settings;
  settings.response_buffer_bytes = 64 * 1024;
  h2test::FakeOwner owner;
  H2Session session(owner, settings);
  owner.session = &session;
  h2test::H2Client client(/*auto_window_update=*/false);
  int32_t id = client.request(get_request());
  client.pump(session);
  session.submit_response(id, 200, {}, true);
  PausingSource source{id, 1024 * 1024};
  source.feed(session, owner);
  client.pump(session);
  CHECK(owner.paused.size() == 1);
  CHECK(source.sent < source.total);
  CHECK(session.blocked_on_peer_window());
  for (int round = 0; round < 1000 && !client.responses[id].closed; ++round) {
    size_t got = client.responses[id].body.size();
    client.consume(id, got);  // the client reads what arrived
    client.responses[id].body.clear();
    source.feed(session, owner);
    client.pump(session);
    source.feed(session, owner);
  }
  CHECK(client.responses[id].closed);
  CHECK(source.sent == source.total);
  CHECK(owner.resumed.size() == owner.paused.size());
  CHECK(owner.paused.size() > 1);
  // One piece over the high-water mark at most.
  CHECK(source.max_buffered <= settings.response_buffer_bytes + 16 * 1024);
  CHECK_FALSE(session.blocked_on_peer_window());
}

TEST_CASE("h2 one slow stream does not stall another beyond the connection window") {
  h2test::FakeOwner owner;
  H2Session session(owner, H2Settings{});
  owner.session = &session;
  // Streams get 16 KiB windows, the connection 1 MiB; the client reads stream b only, and gives
  // the connection back what stream a received (a browser whose consumer of a is stuck).
  h2test::H2Client client(/*auto_window_update=*/false, 16 * 1024);
  nghttp2_session_set_local_window_size(client.raw(), NGHTTP2_FLAG_NONE, 0, 1 << 20);
  int32_t a = client.request(get_request("/slow"));
  int32_t b = client.request(get_request("/fast"));
  client.pump(session);
  session.submit_response(a, 200, {}, true);
  session.submit_response(b, 200, {}, true);
  PausingSource slow{a, 512 * 1024};
  slow.feed(session, owner);
  std::string big(300 * 1024, 'b');
  session.send_body(b, big);
  session.end_body(b);
  size_t b_received = 0;
  for (int round = 0; round < 1000 && !client.responses[b].closed; ++round) {
    client.pump(session);
    size_t got = client.responses[b].body.size() - b_received;
    client.consume(b, got);
    b_received += got;
    size_t a_got = client.responses[a].body.size();
    nghttp2_session_consume_connection(client.raw(), a_got);
    client.responses[a].body.clear();
  }
  CHECK(client.responses[b].closed);
  CHECK(b_received == big.size());
  CHECK_FALSE(client.responses[a].closed);
  CHECK(session.buffered(a) > 0);
}

TEST_CASE("h2 request bodies hold the stream window until the owner consumes them") {
  H2Settings settings;
  settings.stream_window_bytes = 64 * 1024;
  h2test::FakeOwner owner;
  owner.consume_at_once = false;
  H2Session session(owner, settings);
  owner.session = &session;
  h2test::H2Client client;
  std::string body(300 * 1024, 'u');
  int32_t id = client.request(post_request(), &body);
  size_t most_held = 0;
  for (int round = 0; round < 100 && !owner.requests[id].ended; ++round) {
    client.pump(session);
    most_held = std::max(most_held, owner.unconsumed);
    CHECK(owner.unconsumed <= settings.stream_window_bytes);
    owner.consume_all();
  }
  CHECK(owner.requests[id].ended);
  CHECK(owner.requests[id].body == body);
  CHECK(most_held > 0);
}

TEST_CASE("h2 bytes of a reset stream the owner never consumed return to the connection") {
  H2Settings settings;
  settings.stream_window_bytes = 64 * 1024;
  settings.connection_window_bytes = 64 * 1024;
  h2test::FakeOwner owner;
  owner.consume_at_once = false;
  H2Session session(owner, settings);
  owner.session = &session;
  h2test::H2Client client;
  std::string body(64 * 1024, 'u');
  int32_t held = client.request(post_request(), &body);
  client.pump(session);
  CHECK(owner.unconsumed == 64 * 1024);
  nghttp2_submit_rst_stream(client.raw(), NGHTTP2_FLAG_NONE, held, NGHTTP2_CANCEL);
  client.pump(session);
  CHECK(owner.requests[held].closed);
  owner.consume_at_once = true;
  std::string second(100 * 1024, 'v');
  int32_t next = client.request(post_request(), &second);
  client.pump(session);
  CHECK(owner.requests[next].ended);
  CHECK(owner.requests[next].body.size() == second.size());
}

TEST_CASE("h2 a zero window from the peer is reported as blocked until it opens") {
  h2test::FakeOwner owner;
  H2Session session(owner, H2Settings{});
  owner.session = &session;
  h2test::H2Client client(/*auto_window_update=*/false, 0);
  int32_t id = client.request(get_request());
  client.pump(session);
  CHECK_FALSE(session.blocked_on_peer_window());
  session.submit_response(id, 200, {}, true);
  session.send_body(id, "waiting");
  session.end_body(id);
  client.pump(session);
  CHECK(client.responses[id].status == 200);
  CHECK(session.blocked_on_peer_window());
  CHECK(session.buffered(id) == 7);
  nghttp2_submit_window_update(client.raw(), NGHTTP2_FLAG_NONE, id, 100);
  client.pump(session);
  CHECK(client.responses[id].body == "waiting");
  CHECK_FALSE(session.blocked_on_peer_window());
}

}  // namespace
}  // namespace sg
