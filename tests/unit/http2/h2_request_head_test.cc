// H2RequestHeadBuilder alone, without nghttp2: the RFC 9113 §8 rules it enforces itself, including
// those nghttp2 enforces first in the session (so that they hold whatever nghttp2 lets through).
#include "proxy_core/http2/h2_request_head.h"

#include <doctest/doctest.h>
#include <llhttp.h>

#include <string>
#include <utility>
#include <vector>

namespace sg {
namespace {

using Fields = std::vector<std::pair<std::string, std::string>>;

const Fields kGet = {
    {":method", "GET"}, {":scheme", "https"}, {":authority", "a.example"}, {":path", "/p"}};

H2HeadVerdict build(const Fields& fields, MessageHead* out = nullptr, size_t limit = 4096,
                    size_t max_fields = 100) {
  H2RequestHeadBuilder b(limit, max_fields);
  for (const auto& [n, v] : fields)
    if (b.add(n, v) != H2HeadVerdict::kOk) return b.verdict();
  MessageHead head;
  H2HeadVerdict v = b.finish(head);
  if (out != nullptr) *out = head;
  return v;
}

Fields plus(Fields base, const Fields& extra) {
  base.insert(base.end(), extra.begin(), extra.end());
  return base;
}

TEST_CASE("h2 head builder accepts a plain request and fills the head") {
  MessageHead head;
  REQUIRE(build(plus(kGet, {{"accept", "*/*"}, {"content-length", "12"}}), &head) ==
          H2HeadVerdict::kOk);
  CHECK(head.method_id == HTTP_GET);
  CHECK(head.target == "/p");
  CHECK(head.http2);
  CHECK(head.has_content_length);
  CHECK(head.content_length == 12);
  CHECK(head.headers[0].name == "host");
  CHECK(head.headers[0].value == "a.example");
  CHECK(head.header_count == 3);
}

TEST_CASE("h2 head builder refuses every malformed pseudo-header section") {
  const Fields cases[] = {
      {{":method", "GET"}, {"x", "1"}, {":scheme", "https"}, {":path", "/"}},
      plus(kGet, {{":path", "/2"}}),
      plus(kGet, {{":scheme", "http"}}),
      plus(kGet, {{":authority", "b"}}),
      plus(kGet, {{":method", "GET"}}),
      plus(kGet, {{":nope", "1"}}),
      plus(kGet, {{":status", "200"}}),
      {{":scheme", "https"}, {":path", "/"}},
      {{":method", "GET"}, {":path", "/"}},
      {{":method", "GET"}, {":scheme", "https"}},
      {{":method", "GET"}, {":scheme", "https"}, {":path", ""}},
      {{":method", "GET"}, {":scheme", "https"}, {":path", "p"}},
      {{":method", "GET"}, {":scheme", "https"}, {":path", "*"}},
      {{":method", "GET"}, {":scheme", "https"}, {":path", "/a b"}},
      {{":method", "G T"}, {":scheme", "https"}, {":path", "/"}},
      {{":method", "CONNECT"}},
      {{":method", "CONNECT"}, {":authority", "a:1"}, {":path", "/"}},
  };
  for (const Fields& f : cases) {
    CAPTURE(f.size());
    CHECK(build(f) == H2HeadVerdict::kMalformed);
  }
  CHECK(build({{":method", "OPTIONS"}, {":scheme", "https"}, {":path", "*"}}) ==
        H2HeadVerdict::kOk);
  MessageHead connect;
  CHECK(build({{":method", "CONNECT"}, {":authority", "a:1"}}, &connect) == H2HeadVerdict::kOk);
  CHECK(connect.target == "a:1");
}

TEST_CASE("h2 head builder refuses bad regular fields") {
  const Fields cases[] = {
      {{"Upper", "x"}},
      {{"sp ace", "x"}},
      {{"", "x"}},
      {{"x", "a\rb"}},
      {{"x", "a\nb"}},
      {{"x", std::string("a\0b", 3)}},
      {{"x", " a"}},
      {{"x", "a\t"}},
      {{"connection", "close"}},
      {{"keep-alive", "1"}},
      {{"proxy-connection", "x"}},
      {{"transfer-encoding", "chunked"}},
      {{"upgrade", "h2c"}},
      {{"te", "gzip"}},
      {{"host", "other"}},
      {{"content-length", "-1"}},
      {{"content-length", "1"}, {"content-length", "2"}},
      {{"host", "a.example"}, {"host", "a.example"}},
  };
  for (const Fields& f : cases) {
    CAPTURE(f[0].first);
    CHECK(build(plus(kGet, f)) == H2HeadVerdict::kMalformed);
  }
  CHECK(build(plus(kGet, {{"te", "trailers"}, {"host", "a.example"}})) == H2HeadVerdict::kOk);
  CHECK(build(plus(kGet, {{"content-length", "3"}, {"content-length", "3"}})) ==
        H2HeadVerdict::kOk);
}

TEST_CASE("h2 head builder joins cookie crumbs in order into one field") {
  MessageHead head;
  REQUIRE(build(plus(kGet, {{"cookie", "a=1"}, {"x", "y"}, {"cookie", "b=2"}}), &head) ==
          H2HeadVerdict::kOk);
  CHECK(head.count("cookie") == 1);
  CHECK(head.find("cookie")->value == "a=1; b=2");
}

TEST_CASE("h2 head builder counts the header list like SETTINGS_MAX_HEADER_LIST_SIZE") {
  // kGet is 7+3 + 7+5 + 10+9 + 5+2 + 4*32 = 176 bytes.
  CHECK(build(kGet, nullptr, 176) == H2HeadVerdict::kOk);
  CHECK(build(kGet, nullptr, 175) == H2HeadVerdict::kTooLarge);
  CHECK(build(plus(kGet, {{"x", std::string(5000, 'a')}})) == H2HeadVerdict::kTooLarge);
}

TEST_CASE("h2 head builder counts regular fields like limits.max_headers") {
  Fields three = plus(kGet, {{"a", "1"}, {"cookie", "b=2"}, {"cookie", "c=3"}});
  CHECK(build(three, nullptr, 4096, 3) == H2HeadVerdict::kOk);
  CHECK(build(three, nullptr, 4096, 2) == H2HeadVerdict::kTooLarge);
}

TEST_CASE("h2 head builder answers unknown methods with kBadMethod") {
  CHECK(build({{":method", "FROB"}, {":scheme", "https"}, {":path", "/"}}) ==
        H2HeadVerdict::kBadMethod);
  CHECK(build({{":method", "get"}, {":scheme", "https"}, {":path", "/"}}) ==
        H2HeadVerdict::kBadMethod);
}

TEST_CASE("h2 head builder reused: reset() and a reused head carry nothing of the last request") {
  H2RequestHeadBuilder b(4096, 100);
  MessageHead head;
  for (const auto& [n, v] : plus(kGet, {{"accept", "*/*"},
                                        {"content-length", "12"},
                                        {"cookie", "a=1"},
                                        {"x-long", std::string(300, 'l')},
                                        {"cookie", "b=2"}}))
    REQUIRE(b.add(n, v) == H2HeadVerdict::kOk);
  REQUIRE(b.finish(head) == H2HeadVerdict::kOk);
  CHECK(head.header_count == 5);  // host, accept, content-length, x-long, cookie
  CHECK(head.find("cookie")->value == "a=1; b=2");
  // Spent: a second finish() without reset() gives no head.
  CHECK(b.finish(head) != H2HeadVerdict::kOk);

  b.reset();
  for (const auto& [n, v] :
       Fields{{":method", "POST"}, {":scheme", "https"}, {":path", "/second"}, {"x-b", "v"}})
    REQUIRE(b.add(n, v) == H2HeadVerdict::kOk);
  REQUIRE(b.finish(head) == H2HeadVerdict::kOk);
  CHECK(head.method == "POST");
  CHECK(head.method_id == HTTP_POST);
  CHECK(head.target == "/second");
  CHECK(head.header_count == 1);
  CHECK(head.headers[0].name == "x-b");
  CHECK(head.headers[0].value == "v");
  CHECK(head.find("cookie") == nullptr);
  CHECK(head.find("host") == nullptr);
  CHECK_FALSE(head.has_content_length);
  CHECK(head.content_length == 0);
}

}  // namespace
}  // namespace sg
