// Request validation of the HTTP/2 codec (RFC 9113 §8), driven by an nghttp2 client session that
// sends whatever fields the case names. Each malformed request must be a stream error
// (RST_STREAM PROTOCOL_ERROR) that never reaches the owner, whether nghttp2 or our builder
// catches it, and must leave the connection usable.
#include <doctest/doctest.h>
#include <llhttp.h>

#include "proxy_core/http/cookie.h"
#include "proxy_core/http/request_validation.h"
#include "tests/unit/http2/h2_test_support.h"

namespace sg {
namespace {

using h2test::Fields;
using h2test::get_request;

struct Harness {
  Harness() : session(owner, H2Settings{}) { owner.session = &session; }
  h2test::FakeOwner owner;
  H2Session session;
  h2test::H2Client client;
};

// Sends `fields` and returns the stream's close code; the owner must not have seen it. Then a
// normal request on the same connection must still be delivered.
uint32_t refused_with(const Fields& fields) {
  Harness h;
  int32_t id = h.client.request(fields);
  h.client.pump(h.session);
  CHECK(h.owner.requests.count(id) == 0);
  CHECK(h.client.responses[id].closed);
  int32_t next = h.client.request(get_request());
  h.client.pump(h.session);
  CHECK(h.owner.requests.count(next) == 1);
  CHECK_FALSE(h.client.goaway);
  return h.client.responses[id].close_code;
}

// Sends `fields` and returns the head the owner got (version 2.0), or fails.
MessageHead delivered(const Fields& fields) {
  Harness h;
  int32_t id = h.client.request(fields);
  h.client.pump(h.session);
  REQUIRE(h.owner.requests.count(id) == 1);
  return h.owner.requests[id].head;
}

Fields with(Fields base, const Fields& extra) {
  base.insert(base.end(), extra.begin(), extra.end());
  return base;
}

TEST_CASE("h2 a plain GET becomes a version 2.0 head that validate_request accepts") {
  MessageHead head = delivered(with(get_request("/a?b=c"), {{"accept", "*/*"}}));
  CHECK(head.method == "GET");
  CHECK(head.method_id == HTTP_GET);
  CHECK(head.target == "/a?b=c");
  CHECK(head.version_major == 2);
  CHECK(head.version_minor == 0);
  CHECK(head.http2);
  REQUIRE(head.find("host") != nullptr);
  CHECK(head.find("host")->value == "example.com");
  CHECK(head.find("accept")->value == "*/*");
  CHECK(validate_request(head, UnderscorePolicy::kReject).ok());
}

TEST_CASE("h2 pseudo-header order, duplicates, unknown and missing ones are stream errors") {
  const uint32_t kProtocol = kH2ProtocolError;
  CHECK(refused_with({{":method", "GET"},
                      {"accept", "*/*"},
                      {":scheme", "https"},
                      {":authority", "a"},
                      {":path", "/"}}) == kProtocol);
  CHECK(refused_with(with(get_request(), {{":path", "/again"}})) == kProtocol);
  CHECK(refused_with(with(get_request(), {{":method", "POST"}})) == kProtocol);
  CHECK(refused_with(with(get_request(), {{":foo", "bar"}})) == kProtocol);
  CHECK(refused_with(with(get_request(), {{":protocol", "websocket"}})) == kProtocol);
  CHECK(refused_with(with(get_request(), {{":status", "200"}})) == kProtocol);
  CHECK(refused_with({{":scheme", "https"}, {":authority", "a"}, {":path", "/"}}) == kProtocol);
  CHECK(refused_with({{":method", "GET"}, {":authority", "a"}, {":path", "/"}}) == kProtocol);
  CHECK(refused_with({{":method", "GET"}, {":scheme", "https"}, {":authority", "a"}}) == kProtocol);
}

TEST_CASE("h2 path must be origin-form, or an asterisk for OPTIONS only") {
  Fields base = {{":method", "GET"}, {":scheme", "https"}, {":authority", "a"}};
  CHECK(refused_with(with(base, {{":path", ""}})) == kH2ProtocolError);
  CHECK(refused_with(with(base, {{":path", "a/b"}})) == kH2ProtocolError);
  CHECK(refused_with(with(base, {{":path", "*"}})) == kH2ProtocolError);
  CHECK(refused_with(with(base, {{":path", "http://a/b"}})) == kH2ProtocolError);
  MessageHead options = delivered(
      {{":method", "OPTIONS"}, {":scheme", "https"}, {":authority", "a"}, {":path", "*"}});
  CHECK(options.target == "*");
  CHECK(options.method_id == HTTP_OPTIONS);
  CHECK(validate_request(options, UnderscorePolicy::kReject).ok());
}

TEST_CASE("h2 connection-specific fields and te other than trailers are stream errors") {
  for (const char* name :
       {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"}) {
    CAPTURE(name);
    CHECK(refused_with(with(get_request(), {{name, "x"}})) == kH2ProtocolError);
  }
  CHECK(refused_with(with(get_request(), {{"te", "gzip"}})) == kH2ProtocolError);
  CHECK(refused_with(with(get_request(), {{"te", "trailers, gzip"}})) == kH2ProtocolError);
  MessageHead te = delivered(with(get_request(), {{"te", "trailers"}}));
  CHECK(te.find("te")->value == "trailers");
}

// nghttp2's client lowercases names it sends: uppercase ones are written by hand.
TEST_CASE("h2 uppercase field names are stream errors") {
  for (const char* name : {"Accept", "x-Forwarded-For", "COOKIE"}) {
    CAPTURE(name);
    h2test::FakeOwner owner;
    H2Session session(owner, H2Settings{});
    owner.session = &session;
    std::string out;
    session.receive(h2test::raw_preface() +
                    h2test::raw_headers(1, with(get_request(), {{name, "x"}}), true) +
                    h2test::raw_headers(3, get_request(), true));
    while (session.produce(out) > 0) {
    }
    h2test::ServerFrames frames = h2test::parse_server_output(out);
    CHECK(owner.requests.count(1) == 0);
    CHECK(frames.resets[1] == kH2ProtocolError);
    CHECK(owner.requests.count(3) == 1);
    CHECK_FALSE(frames.goaway);
  }
}

TEST_CASE("h2 bad bytes or edge whitespace in values are stream errors") {
  CHECK(refused_with(with(get_request(), {{"x-a", std::string("a\rb")}})) == kH2ProtocolError);
  CHECK(refused_with(with(get_request(), {{"x-a", std::string("a\nb")}})) == kH2ProtocolError);
  CHECK(refused_with(with(get_request(), {{"x-a", std::string("a\0b", 3)}})) == kH2ProtocolError);
  CHECK(refused_with(with(get_request(), {{"x-a", " a"}})) == kH2ProtocolError);
  CHECK(refused_with(with(get_request(), {{"x-a", "a "}})) == kH2ProtocolError);
  CHECK(refused_with(with(get_request(), {{"x-a", "\ta"}})) == kH2ProtocolError);
  CHECK(refused_with(with(get_request(), {{"x a", "b"}})) == kH2ProtocolError);
  CHECK(refused_with(with(get_request(), {{"", "b"}})) == kH2ProtocolError);
  MessageHead inner = delivered(with(get_request(), {{"x-a", "a b\tc"}}));
  CHECK(inner.find("x-a")->value == "a b\tc");
}

TEST_CASE("h2 authority and host must agree and authority alone becomes Host") {
  Fields no_authority = {{":method", "GET"}, {":scheme", "https"}, {":path", "/"}};
  CHECK(refused_with(with(get_request(), {{"host", "other.example"}})) == kH2ProtocolError);
  CHECK(refused_with(with(get_request(), {{"host", "example.com"}, {"host", "example.com"}})) ==
        kH2ProtocolError);
  CHECK(refused_with(no_authority) == kH2ProtocolError);  // neither: no Host to route by
  MessageHead same = delivered(with(get_request(), {{"host", "example.com"}}));
  CHECK(same.count("host") == 1);
  MessageHead host_only = delivered(with(no_authority, {{"host", "h.example"}}));
  CHECK(host_only.find("host")->value == "h.example");
  CHECK(validate_request(host_only, UnderscorePolicy::kReject).ok());
  MessageHead bad =
      delivered({{":method", "GET"}, {":scheme", "https"}, {":authority", "a,b"}, {":path", "/"}});
  CHECK(validate_request(bad, UnderscorePolicy::kReject).status == 400);
}

TEST_CASE("h2 cookie crumbs are joined and the session cookie is found in any crumb") {
  for (int crumb = 0; crumb < 3; ++crumb) {
    CAPTURE(crumb);
    Fields cookies = {{"cookie", "a=1"}, {"cookie", "b=2"}, {"cookie", "c=3"}};
    cookies[static_cast<size_t>(crumb)].second = "sid=TOKEN";
    MessageHead head = delivered(with(get_request(), cookies));
    CHECK(head.count("cookie") == 1);
    std::string joined = head.find("cookie")->value;
    CHECK(std::count(joined.begin(), joined.end(), ';') == 2);
    std::vector<std::string_view> fields{joined};
    CHECK(find_cookie_values(fields, "sid") == std::vector<std::string_view>{"TOKEN"});
    std::string rest = remove_cookie(fields, "sid");
    CHECK(rest.find("sid") == std::string::npos);
    CHECK(std::count(rest.begin(), rest.end(), '=') == 2);
  }
  MessageHead one = delivered(with(get_request(), {{"cookie", "a=1; sid=T"}}));
  CHECK(one.find("cookie")->value == "a=1; sid=T");
}

TEST_CASE("h2 content-length must be valid and match the DATA received") {
  Harness h;
  std::string body = "abc";
  Fields post = {{":method", "POST"}, {":scheme", "https"}, {":authority", "a"}, {":path", "/"}};
  int32_t shorter = h.client.request(with(post, {{"content-length", "5"}}), &body);
  int32_t longer = h.client.request(with(post, {{"content-length", "2"}}), &body);
  int32_t exact = h.client.request(with(post, {{"content-length", "3"}}), &body);
  h.client.pump(h.session);
  CHECK(h.client.responses[shorter].close_code == kH2ProtocolError);
  CHECK(h.client.responses[longer].close_code == kH2ProtocolError);
  CHECK_FALSE(h.owner.requests[shorter].ended);
  CHECK_FALSE(h.owner.requests[longer].ended);
  CHECK(h.owner.requests[shorter].closed);
  CHECK(h.owner.requests[exact].ended);
  CHECK(h.owner.requests[exact].body == "abc");
  CHECK(h.owner.requests[exact].head.content_length == 3);
  CHECK(refused_with(with(post, {{"content-length", "x"}})) == kH2ProtocolError);
  CHECK(refused_with(with(post, {{"content-length", "1"}, {"content-length", "2"}})) ==
        kH2ProtocolError);
}

TEST_CASE("h2 unknown methods get 400 and CONNECT reaches validate_request which refuses it") {
  Harness h;
  int32_t id = h.client.request(
      {{":method", "FROB"}, {":scheme", "https"}, {":authority", "a"}, {":path", "/"}});
  h.client.pump(h.session);
  CHECK(h.owner.requests.count(id) == 0);
  CHECK(h.client.responses[id].status == 400);
  MessageHead connect = delivered({{":method", "CONNECT"}, {":authority", "a.example:443"}});
  CHECK(connect.method_id == HTTP_CONNECT);
  CHECK(validate_request(connect, UnderscorePolicy::kReject).status == 400);
}

TEST_CASE("h2 underscore names go through validate_request like HTTP/1.1") {
  MessageHead head = delivered(with(get_request(), {{"x_user", "admin"}, {"x-a", "1"}}));
  MessageHead copy = head;
  CHECK(validate_request(copy, UnderscorePolicy::kReject).status == 400);
  CHECK(validate_request(head, UnderscorePolicy::kDrop).ok());
  CHECK(head.find("x_user") == nullptr);
  CHECK(head.find("x-a") != nullptr);
}

TEST_CASE("h2 an HTTP/1.x request line saying HTTP/2.0 is still refused") {
  MessageHead head;
  head.method = "GET";
  head.method_id = HTTP_GET;
  head.target = "/";
  head.version_major = 2;
  head.version_minor = 0;
  head.headers = {{"Host", "a"}};
  head.header_count = 1;
  CHECK(validate_request(head, UnderscorePolicy::kReject).status == 400);
}

TEST_CASE("h2 a header list over the limit is answered 431 and the connection goes on") {
  H2Settings settings;
  settings.max_header_list_bytes = 1024;
  h2test::FakeOwner owner;
  H2Session session(owner, settings);
  owner.session = &session;
  h2test::H2Client client;
  int32_t big = client.request(with(get_request(), {{"x-big", std::string(2000, 'a')}}));
  int32_t small = client.request(with(get_request(), {{"x-small", std::string(500, 'a')}}));
  client.pump(session);
  CHECK(owner.requests.count(big) == 0);
  CHECK(client.responses[big].status == 431);
  CHECK(owner.requests.count(small) == 1);
  CHECK(session.stats().header_lists_too_large == 1);
}

TEST_CASE("h2 more fields than limits.max_headers are answered 431") {
  H2Settings settings;
  settings.max_header_fields = 10;
  h2test::FakeOwner owner;
  H2Session session(owner, settings);
  owner.session = &session;
  h2test::H2Client client;
  Fields many = get_request();
  for (int i = 0; i < 11; ++i)
    many.emplace_back("x-" + std::to_string(i), "v");
  int32_t over = client.request(many);
  many.pop_back();
  int32_t at = client.request(many);
  client.pump(session);
  CHECK(owner.requests.count(over) == 0);
  CHECK(client.responses[over].status == 431);
  CHECK(owner.requests.count(at) == 1);
}

}  // namespace
}  // namespace sg
