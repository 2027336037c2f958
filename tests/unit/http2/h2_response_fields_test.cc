// H2ResponseFields alone: what a response HEADERS frame is built from (names lowercased, the
// connection-specific fields of RFC 9113 §8.2.2 left out, values copied in so that the caller's
// strings may die), and its reuse from one response to the next.
#include "proxy_core/http2/h2_response_fields.h"

#include <doctest/doctest.h>

#include <string>
#include <utility>
#include <vector>

namespace sg {
namespace {

using Pairs = std::vector<std::pair<std::string, std::string>>;

Pairs pairs(const std::vector<nghttp2_nv>& nv) {
  Pairs out;
  for (const nghttp2_nv& f : nv)
    out.emplace_back(std::string(reinterpret_cast<const char*>(f.name), f.namelen),
                     std::string(reinterpret_cast<const char*>(f.value), f.valuelen));
  return out;
}

TEST_CASE("h2 response fields: status first, names lowercased, order kept") {
  H2ResponseFields f;
  f.field("Content-Type", "text/plain");
  f.field("X-Mixed-CASE", "Value Kept");
  f.field("set-cookie", "a=1");
  f.field("Set-Cookie", "b=2");
  CHECK(pairs(f.nv(204)) == Pairs{{":status", "204"},
                                  {"content-type", "text/plain"},
                                  {"x-mixed-case", "Value Kept"},
                                  {"set-cookie", "a=1"},
                                  {"set-cookie", "b=2"}});
}

TEST_CASE("h2 response fields: connection-specific fields and those Connection names are dropped") {
  H2ResponseFields f;
  f.field("Connection", "keep-alive, X-Hop");
  f.field("Keep-Alive", "timeout=5");
  f.field("Transfer-Encoding", "chunked");
  f.field("Upgrade", "h2c");
  f.field("Proxy-Connection", "close");
  f.field("TE", "trailers");
  f.field("x-hop", "1");
  f.field("X-Kept", "2");
  CHECK(pairs(f.nv(200)) == Pairs{{":status", "200"}, {"x-kept", "2"}});
}

TEST_CASE("h2 response fields: values are copied in, the caller's strings may die") {
  H2ResponseFields f;
  {
    std::string name = "Content-Length";
    std::string value = std::to_string(12345);
    f.field(name, value);
    name.assign(name.size(), 'x');
    value.assign(value.size(), 'y');
  }
  // Enough fields to make the buffer grow after the first one was written.
  for (int i = 0; i < 50; ++i)
    f.field("x-n" + std::to_string(i), std::string(40, static_cast<char>('a' + i % 26)));
  Pairs got = pairs(f.nv(200));
  REQUIRE(got.size() == 52);
  CHECK(got[1] == std::pair<std::string, std::string>{"content-length", "12345"});
  CHECK(got[51].second == std::string(40, static_cast<char>('a' + 49 % 26)));
}

TEST_CASE("h2 response fields: clear() starts the next response afresh") {
  H2ResponseFields f;
  f.field("Connection", "x-a");
  f.field("x-a", "1");
  f.field("x-b", "2");
  CHECK(pairs(f.nv(200)) == Pairs{{":status", "200"}, {"x-b", "2"}});
  f.clear();
  f.field("x-a", "3");  // no Connection in this response: kept
  CHECK(pairs(f.nv(404)) == Pairs{{":status", "404"}, {"x-a", "3"}});
  f.clear();
  CHECK(pairs(f.nv(500)) == Pairs{{":status", "500"}});
}

}  // namespace
}  // namespace sg
