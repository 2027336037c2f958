#include "proxy_core/http/header_rewrite.h"

#include <doctest/doctest.h>

#include <string>
#include <utility>
#include <vector>

namespace sg {
namespace {

MessageHead request(std::vector<HeaderField> headers, std::string method = "GET",
                    std::string target = "/path?q=1") {
  MessageHead h;
  h.method = std::move(method);
  h.target = std::move(target);
  h.headers = std::move(headers);
  h.header_count = h.headers.size();
  return h;
}

MessageHead response(int status, std::vector<HeaderField> headers, std::string reason = "OK") {
  MessageHead h;
  h.status = status;
  h.reason = std::move(reason);
  h.headers = std::move(headers);
  h.header_count = h.headers.size();
  return h;
}

UpstreamRequestOptions upstream_options() {
  UpstreamRequestOptions o;
  o.client_address = "192.0.2.7";
  return o;
}

std::string upstream(const MessageHead& h, const UpstreamRequestOptions& o) {
  std::string out;
  build_upstream_request(h, o, out);
  return out;
}

std::string client(const MessageHead& h, const ClientResponseOptions& o) {
  std::string out;
  build_client_response(h, o, out);
  return out;
}

const std::string kForwarded =
    "X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: example.com\r\n";

// ---- hop-by-hop names ---------------------------------------------------------------------

TEST_CASE("hop-by-hop names are recognised whatever their case") {
  for (const char* name : {"Connection", "connection", "Keep-Alive", "TE", "te", "Trailer",
                           "Transfer-Encoding", "TRANSFER-ENCODING", "Upgrade",
                           "Proxy-Authorization", "Proxy-Connection", "proxy-authenticate",
                           // proxy-* names as long as a listed name (found by fuzz_request_parser)
                           "Proxy-X", "Proxy-Conn", "Proxy-Authorction"}) {
    CAPTURE(name);
    CHECK(is_hop_by_hop(name));
  }
  for (const char* name : {"Host", "Content-Length", "Trailers", "Tee", "Proxy", "Proxy-",
                           "Upgrade-Insecure-Requests", "Connections", "Keep-Alive2", ""}) {
    CAPTURE(name);
    CHECK_FALSE(is_hop_by_hop(name));
  }
}

// Names are compared 8 bytes at a time: every byte value at every position of a name must give
// what a byte-by-byte ASCII case-insensitive comparison gives.
TEST_CASE("a hop-by-hop name matches only with ASCII case folded, byte for byte") {
  for (std::string spelled : {"te", "trailer", "connection", "keep-alive", "transfer-encoding"}) {
    for (size_t at = 0; at < spelled.size(); ++at) {
      for (int b = 0; b < 256; ++b) {
        std::string name = spelled;
        name[at] = static_cast<char>(b);
        const char c = static_cast<char>(b);
        const bool same = c == spelled[at] || (c >= 'A' && c <= 'Z' && c + 32 == spelled[at]);
        CAPTURE(name);
        CHECK(is_hop_by_hop(name) == same);
      }
    }
  }
}

TEST_CASE("the reserved prefix matches with case folded and '_' read as '-'") {
  CHECK(under_prefix("X-Session-Id", "X-Session-"));
  CHECK(under_prefix("x-session-id", "X-Session-"));
  CHECK(under_prefix("X-SESSION-ID", "X-Session-"));
  CHECK(under_prefix("X_Session_Id", "X-Session-"));
  CHECK(under_prefix("x_session-user", "X-Session-"));
  CHECK(under_prefix("X-Session-", "X-Session-"));
  CHECK_FALSE(under_prefix("X-Session", "X-Session-"));
  CHECK_FALSE(under_prefix("X-Sessions-Id", "X-Session-"));
  CHECK_FALSE(under_prefix("Y-Session-Id", "X-Session-"));
  CHECK_FALSE(under_prefix("X-Session-Id", ""));
}

// ---- the upstream request -------------------------------------------------------------------

TEST_CASE("an ordinary request is forwarded in order with X-Forwarded-* appended") {
  MessageHead h = request({{"Host", "example.com"}, {"Accept", "*/*"}, {"User-Agent", "t/1"}});
  CHECK(upstream(h, upstream_options()) ==
        "GET /path?q=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\nUser-Agent: t/1\r\n" +
            kForwarded + "\r\n");
}

TEST_CASE("an HTTP/1.0 request goes upstream as HTTP/1.1 and appends to `out`") {
  MessageHead h = request({{"Host", "example.com"}});
  h.version_minor = 0;
  std::string out = "before|";
  build_upstream_request(h, upstream_options(), out);
  CHECK(out == "before|GET /path?q=1 HTTP/1.1\r\nHost: example.com\r\n" + kForwarded + "\r\n");
}

TEST_CASE("heads of any size are written whole, after what `out` held, and nothing more") {
  // The heads are written through a cursor into room grown ahead of it (512 bytes at a time,
  // then doubling) and cut to what was written: fields that straddle, and exceed, each step.
  for (size_t value_size : {10u, 490u, 510u, 600u, 1100u, 5000u}) {
    std::string big(value_size, 'v');
    MessageHead h = request({{"Host", "example.com"}, {"X-Big", big}, {"Accept", "*/*"}});
    std::string out = "held|";
    build_upstream_request(h, upstream_options(), out);
    CHECK(out == "held|GET /path?q=1 HTTP/1.1\r\nHost: example.com\r\nX-Big: " + big +
                     "\r\nAccept: */*\r\n" + kForwarded + "\r\n");
    std::string long_prefix(700, 'p');  // the room is taken after existing content too
    std::string resp = long_prefix;
    ClientResponseOptions o;
    o.client_http11 = true;
    build_client_response(response(200, {{"X-Big", big}, {"Content-Length", "0"}}), o, resp);
    CHECK(resp ==
          long_prefix + "HTTP/1.1 200 OK\r\nX-Big: " + big + "\r\nContent-Length: 0\r\n\r\n");
    std::string local;
    build_local_response(200, big, false, "D", local);
    CHECK(local.size() == local.find("\r\n\r\n") + 4 + big.size());
    CHECK(local.substr(local.size() - big.size()) == big);
  }
}

TEST_CASE("hop-by-hop and proxy-consumed headers never reach the upstream") {
  MessageHead h = request({{"Host", "example.com"},
                           {"Connection", "keep-alive, Upgrade, HTTP2-Settings"},
                           {"Keep-Alive", "timeout=5"},
                           {"TE", "trailers"},
                           {"Trailer", "X-Checksum"},
                           {"Upgrade", "h2c"},
                           {"HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA"},
                           {"Proxy-Authorization", "Basic Zm9vOmJhcg=="},
                           {"Proxy-Connection", "keep-alive"},
                           {"Transfer-Encoding", "chunked"},
                           {"Content-Length", "5"},
                           {"Expect", "100-continue"},
                           {"Accept", "*/*"}},
                          "POST", "/upload");
  UpstreamRequestOptions o = upstream_options();
  o.framing = BodyFraming::kChunked;
  CHECK(upstream(h, o) == "POST /upload HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n" +
                              kForwarded + "Transfer-Encoding: chunked\r\n\r\n");
}

TEST_CASE("Content-Length is written from the chosen framing, not copied") {
  MessageHead h = request({{"Host", "example.com"}, {"Content-Length", "11"}}, "PUT", "/x");
  UpstreamRequestOptions o = upstream_options();
  o.framing = BodyFraming::kContentLength;
  o.content_length = 11;
  CHECK(upstream(h, o) ==
        "PUT /x HTTP/1.1\r\nHost: example.com\r\n" + kForwarded + "Content-Length: 11\r\n\r\n");
  o.content_length = 0;
  CHECK(upstream(h, o) ==
        "PUT /x HTTP/1.1\r\nHost: example.com\r\n" + kForwarded + "Content-Length: 0\r\n\r\n");
  o.framing = BodyFraming::kNone;
  CHECK(upstream(h, o) == "PUT /x HTTP/1.1\r\nHost: example.com\r\n" + kForwarded + "\r\n");
}

TEST_CASE("headers named in any Connection field are removed, whatever their case") {
  MessageHead h = request({{"Host", "example.com"},
                           {"Connection", " x-a ,X-B"},
                           {"X-A", "1"},
                           {"x-b", "2"},
                           {"connection", "X-C"},
                           {"X-C", "3"},
                           {"X-D", "4"}});
  CHECK(upstream(h, upstream_options()) ==
        "GET /path?q=1 HTTP/1.1\r\nHost: example.com\r\nX-D: 4\r\n" + kForwarded + "\r\n");
}

// The rewriters collect up to 16 listed names, then scan the whole head again for each field.
TEST_CASE("names in a seventeenth or later Connection field are honoured too") {
  std::vector<HeaderField> fields = {{"Host", "example.com"}};
  for (int i = 0; i < 20; ++i)
    fields.push_back({"Connection", "x-hop-" + std::to_string(i)});
  for (int i = 0; i < 20; ++i)
    fields.push_back({"X-Hop-" + std::to_string(i), "v"});
  fields.push_back({"X-Kept", "k"});
  MessageHead h = request(fields);
  CHECK(upstream(h, upstream_options()) ==
        "GET /path?q=1 HTTP/1.1\r\nHost: example.com\r\nX-Kept: k\r\n" + kForwarded + "\r\n");
}

TEST_CASE("every name of a long Connection list is honoured, hop-by-hop ones taking no room") {
  std::string list = "keep-alive, Keep-Alive,TE,,\tclose ";
  for (int i = 0; i < 20; ++i)
    list += ", x-hop-" + std::to_string(i);
  for (int i = 0; i < 16; ++i)
    list += ",Upgrade";
  std::vector<HeaderField> fields = {{"Host", "example.com"}, {"Connection", list}};
  for (int i = 19; i >= 0; --i)
    fields.push_back({"X-HOP-" + std::to_string(i), "v"});
  fields.push_back({"Close", "c"});
  fields.push_back({"X-Hop-20", "kept"});
  CHECK(upstream(request(fields), upstream_options()) ==
        "GET /path?q=1 HTTP/1.1\r\nHost: example.com\r\nX-Hop-20: kept\r\n" + kForwarded + "\r\n");
  fields.erase(fields.begin());
  CHECK(client(response(200, fields), ClientResponseOptions{}) ==
        "HTTP/1.1 200 OK\r\nX-Hop-20: kept\r\n\r\n");
  // A short list: the few names are collected and matched whatever their case.
  CHECK(client(response(200, {{"Connection", "keep-alive, x-a"}, {"X-A", "1"}, {"X-B", "2"}}),
               ClientResponseOptions{}) == "HTTP/1.1 200 OK\r\nX-B: 2\r\n\r\n");
}

TEST_CASE("a client cannot strip an injected header by naming it in Connection") {
  MessageHead h = request({{"Host", "example.com"},
                           {"Connection", "X-Session-Id, X-Request-Id, X-Forwarded-For"},
                           {"X-Request-Id", "client-chosen"}});
  HeaderList injected = {{"X-Session-Id", "sid-1"}, {"X-Request-Id", "rid-1"}};
  UpstreamRequestOptions o = upstream_options();
  o.injected = &injected;
  CHECK(upstream(h, o) == "GET /path?q=1 HTTP/1.1\r\nHost: example.com\r\n" + kForwarded +
                              "X-Session-Id: sid-1\r\nX-Request-Id: rid-1\r\n\r\n");
}

TEST_CASE("whatever the client sends under the reserved prefix is removed, in any spelling") {
  MessageHead h = request({{"X-Session-Id", "forged-1"},
                           {"Host", "example.com"},
                           {"x-session-id", "forged-2"},
                           {"X-SESSION-ID", "forged-3"},
                           {"X_Session_Id", "forged-4"},
                           {"x_session-user", "root"},
                           {"X-Session-Id", "forged-5"},
                           {"X-Sessionid", "kept"},
                           {"X-Session", "kept too"}});
  HeaderList injected = {{"X-Session-Id", "sid-1"}, {"X-Session-User", "alice"}};
  UpstreamRequestOptions o = upstream_options();
  o.injected = &injected;
  std::string out = upstream(h, o);
  CHECK(out ==
        "GET /path?q=1 HTTP/1.1\r\nHost: example.com\r\nX-Sessionid: kept\r\n"
        "X-Session: kept too\r\n" +
            kForwarded + "X-Session-Id: sid-1\r\nX-Session-User: alice\r\n\r\n");
  CHECK(out.find("forged") == std::string::npos);
  CHECK(out.find("root") == std::string::npos);
}

TEST_CASE("the exchange's own headers follow the injected ones and client copies are dropped") {
  MessageHead h = request({{"Host", "example.com"},
                           {"X-Session-Signature", "v1; forged"},
                           {"X-Session-Csrf", "forged"}});
  HeaderList injected = {{"X-Session-Id", "sid-1"}};
  HeaderList appended = {{"X-Session-Csrf", "tok"}, {"X-Session-Signature", "v1; sig"}};
  UpstreamRequestOptions o = upstream_options();
  o.injected = &injected;
  o.appended = &appended;
  std::string out = upstream(h, o);
  CHECK(out == "GET /path?q=1 HTTP/1.1\r\nHost: example.com\r\n" + kForwarded +
                   "X-Session-Id: sid-1\r\nX-Session-Csrf: tok\r\n"
                   "X-Session-Signature: v1; sig\r\n\r\n");
  CHECK(out.find("forged") == std::string::npos);
}

TEST_CASE("the reserved prefix is taken from the options") {
  MessageHead h = request({{"Host", "example.com"},
                           {"X-Auth-User", "forged"},
                           {"X_AUTH_ROLE", "x"},
                           {"X-Session-Id", "not ours here"}});
  UpstreamRequestOptions o = upstream_options();
  o.header_prefix = "X-Auth-";
  CHECK(upstream(h, o) ==
        "GET /path?q=1 HTTP/1.1\r\nHost: example.com\r\nX-Session-Id: not ours here\r\n" +
            kForwarded + "\r\n");
}

TEST_CASE("an untrusted peer's X-Forwarded-* are replaced by what the gateway saw") {
  MessageHead h = request({{"X-Forwarded-For", "203.0.113.9"},
                           {"Host", "example.com"},
                           {"x-forwarded-proto", "https"},
                           {"X-Forwarded-Host", "evil.example"},
                           {"X-Forwarded-For", "198.51.100.1"}});
  CHECK(upstream(h, upstream_options()) ==
        "GET /path?q=1 HTTP/1.1\r\nHost: example.com\r\n" + kForwarded + "\r\n");
  UpstreamRequestOptions o = upstream_options();
  o.scheme = "https";
  CHECK(upstream(h, o) ==
        "GET /path?q=1 HTTP/1.1\r\nHost: example.com\r\nX-Forwarded-For: 192.0.2.7\r\n"
        "X-Forwarded-Proto: https\r\nX-Forwarded-Host: example.com\r\n\r\n");
}

TEST_CASE("a trusted proxy's X-Forwarded-For chain is kept and extended with the peer") {
  MessageHead h = request({{"X-Forwarded-For", " 203.0.113.9, 10.0.0.1 "},
                           {"Host", "example.com"},
                           {"X-Forwarded-Proto", " https "},
                           {"X-Forwarded-Host", "public.example"},
                           {"X-Forwarded-For", "10.0.0.2"},
                           {"X-Forwarded-Proto", "http"},
                           {"X-Forwarded-Host", "second.example"}});
  UpstreamRequestOptions o = upstream_options();
  o.peer_trusted = true;
  CHECK(upstream(h, o) ==
        "GET /path?q=1 HTTP/1.1\r\nHost: example.com\r\n"
        "X-Forwarded-For: 203.0.113.9, 10.0.0.1, 10.0.0.2, 192.0.2.7\r\n"
        "X-Forwarded-Proto: https\r\nX-Forwarded-Host: public.example\r\n\r\n");
}

TEST_CASE("a trusted proxy that sends no X-Forwarded-* gets the gateway's own") {
  MessageHead h = request({{"Host", "example.com"}});
  UpstreamRequestOptions o = upstream_options();
  o.peer_trusted = true;
  o.scheme = "https";
  CHECK(upstream(h, o) ==
        "GET /path?q=1 HTTP/1.1\r\nHost: example.com\r\nX-Forwarded-For: 192.0.2.7\r\n"
        "X-Forwarded-Proto: https\r\nX-Forwarded-Host: example.com\r\n\r\n");
}

TEST_CASE("an untrusted peer's Forwarded, X-Real-IP and other forwarding headers are removed") {
  MessageHead h = request({{"Host", "example.com"},
                           {"Forwarded", "for=203.0.113.9;proto=https;host=evil.example"},
                           {"X-Real-IP", "203.0.113.9"},
                           {"x-forwarded-port", "443"},
                           {"X-FORWARDED-PREFIX", "/admin"},
                           {"X-Forwarded-Server", "lb1"},
                           {"X-Forwarded-Ssl", "on"},
                           {"X-Client-IP", "203.0.113.9"},
                           {"True-Client-IP", "203.0.113.9"},
                           {"Front-End-Https", "on"},
                           {"X-Url-Scheme", "https"},
                           {"Accept", "*/*"}});
  CHECK(upstream(h, upstream_options()) ==
        "GET /path?q=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n" + kForwarded + "\r\n");
}

TEST_CASE("a trusted proxy's forwarding headers are kept as they came") {
  MessageHead h = request({{"Host", "example.com"},
                           {"Forwarded", "for=\"[2001:db8::1]:4711\";proto=https"},
                           {"X-Real-IP", "203.0.113.9"},
                           {"X-Forwarded-Port", "443"},
                           {"X-Forwarded-Prefix", "/app"}});
  UpstreamRequestOptions o = upstream_options();
  o.peer_trusted = true;
  CHECK(upstream(h, o) ==
        "GET /path?q=1 HTTP/1.1\r\nHost: example.com\r\n"
        "Forwarded: for=\"[2001:db8::1]:4711\";proto=https\r\nX-Real-IP: 203.0.113.9\r\n"
        "X-Forwarded-Port: 443\r\nX-Forwarded-Prefix: /app\r\n" +
            kForwarded + "\r\n");
}

TEST_CASE("a trusted proxy's X-Forwarded-Host that is not a valid host is replaced by Host") {
  for (const char* bad : {"evil.example/path?x=", "a@evil.example", "a, b", "a b", ""}) {
    CAPTURE(bad);
    MessageHead h = request({{"Host", "example.com"}, {"X-Forwarded-Host", bad}});
    UpstreamRequestOptions o = upstream_options();
    o.peer_trusted = true;
    CHECK(upstream(h, o) ==
          "GET /path?q=1 HTTP/1.1\r\nHost: example.com\r\n" + kForwarded + "\r\n");
  }
}

TEST_CASE("forwarding header names are recognised whatever their case") {
  for (const char* name :
       {"Forwarded", "x-real-ip", "X-Forwarded-Port", "x-forwarded-prefix", "X-Forwarded-Anything",
        "X-Forwarded-", "X-Client-IP", "true-client-ip", "Front-End-Https", "X-URL-Scheme"}) {
    CAPTURE(name);
    CHECK(is_forwarding_header(name));
  }
  for (const char* name :
       {"X-Forwarded", "Forwarded-For", "X-Real", "Host", "X-Request-Id", "X-Real-IPs"}) {
    CAPTURE(std::string(name));
    CHECK_FALSE(is_forwarding_header(name));
  }
}

TEST_CASE("without Host there is no X-Forwarded-Host") {
  MessageHead h = request({{"Accept", "*/*"}});
  h.version_minor = 0;
  CHECK(upstream(h, upstream_options()) ==
        "GET /path?q=1 HTTP/1.1\r\nAccept: */*\r\nX-Forwarded-For: 192.0.2.7\r\n"
        "X-Forwarded-Proto: http\r\n\r\n");
}

TEST_CASE("the Cookie header is replaced by the given value, once, where the first one was") {
  MessageHead h = request({{"Host", "example.com"},
                           {"Cookie", "a=1; session_id=tok"},
                           {"Accept", "*/*"},
                           {"cookie", "b=2"}});
  UpstreamRequestOptions o = upstream_options();
  o.replace_cookie = true;
  o.cookie_value = "a=1; b=2";
  CHECK(upstream(h, o) ==
        "GET /path?q=1 HTTP/1.1\r\nHost: example.com\r\nCookie: a=1; b=2\r\nAccept: */*\r\n" +
            kForwarded + "\r\n");
}

TEST_CASE("an empty replacement Cookie value drops every Cookie header") {
  MessageHead h = request({{"Host", "example.com"}, {"Cookie", "session_id=tok"}, {"Cookie", "x"}});
  UpstreamRequestOptions o = upstream_options();
  o.replace_cookie = true;
  CHECK(upstream(h, o) == "GET /path?q=1 HTTP/1.1\r\nHost: example.com\r\n" + kForwarded + "\r\n");
}

TEST_CASE("without replacement the client's Cookie headers pass as they are") {
  MessageHead h = request({{"Host", "example.com"}, {"Cookie", "a=1"}, {"Cookie", "b=2"}});
  CHECK(upstream(h, upstream_options()) ==
        "GET /path?q=1 HTTP/1.1\r\nHost: example.com\r\nCookie: a=1\r\nCookie: b=2\r\n" +
            kForwarded + "\r\n");
}

TEST_CASE("a WebSocket tunnel request carries the gateway's own Connection and Upgrade") {
  MessageHead h = request({{"Host", "example.com"},
                           {"Connection", "Upgrade, X-Private"},
                           {"Upgrade", "websocket"},
                           {"X-Private", "1"},
                           {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
                           {"Sec-WebSocket-Version", "13"}},
                          "GET", "/ws");
  HeaderList injected = {{"X-Session-Id", "sid-1"}};
  UpstreamRequestOptions o = upstream_options();
  o.tunnel_websocket = true;
  o.injected = &injected;
  CHECK(upstream(h, o) ==
        "GET /ws HTTP/1.1\r\nHost: example.com\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n" +
            kForwarded +
            "Connection: upgrade\r\nUpgrade: websocket\r\nX-Session-Id: sid-1\r\n\r\n");
}

// ---- the client response --------------------------------------------------------------------

TEST_CASE("an ordinary response is passed in order") {
  MessageHead r = response(200, {{"Content-Type", "text/html"}, {"Content-Length", "5"}});
  ClientResponseOptions o;
  o.framing = BodyFraming::kContentLength;
  CHECK(client(r, o) == "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5\r\n\r\n");
}

TEST_CASE("the status line is HTTP/1.1 with the upstream's reason or a standard one") {
  MessageHead r = response(404, {}, "Nope");
  r.version_minor = 0;
  CHECK(client(r, {}) == "HTTP/1.1 404 Nope\r\n\r\n");
  CHECK(client(response(404, {}, ""), {}) == "HTTP/1.1 404 Not Found\r\n\r\n");
  CHECK(client(response(299, {}, ""), {}) == "HTTP/1.1 299 Unknown\r\n\r\n");
}

TEST_CASE("hop-by-hop headers and those named in Connection are removed from the response") {
  MessageHead r = response(200, {{"Connection", "close, X-Internal"},
                                 {"Keep-Alive", "timeout=5"},
                                 {"X-Internal", "secret"},
                                 {"Upgrade", "h2c"},
                                 {"Trailer", "X-Sum"},
                                 {"Proxy-Authenticate", "Basic"},
                                 {"Content-Length", "2"},
                                 {"ETag", "\"e\""}});
  ClientResponseOptions o;
  o.framing = BodyFraming::kContentLength;
  CHECK(client(r, o) == "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nETag: \"e\"\r\n\r\n");
}

TEST_CASE("a response re-chunked for the client loses Content-Length and Transfer-Encoding") {
  MessageHead r = response(200, {{"Transfer-Encoding", "chunked"}, {"Date", "d"}});
  ClientResponseOptions o;
  o.framing = BodyFraming::kChunked;
  CHECK(client(r, o) == "HTTP/1.1 200 OK\r\nDate: d\r\nTransfer-Encoding: chunked\r\n\r\n");
  MessageHead with_length = response(200, {{"Content-Length", "9"}, {"Date", "d"}});
  CHECK(client(with_length, o) ==
        "HTTP/1.1 200 OK\r\nDate: d\r\nTransfer-Encoding: chunked\r\n\r\n");
}

TEST_CASE("a close-delimited response has no framing header and announces the close") {
  MessageHead r = response(200, {{"Content-Length", "9"}, {"Date", "d"}});
  ClientResponseOptions o;
  o.framing = BodyFraming::kUntilClose;
  o.client_http11 = false;
  o.close = true;
  CHECK(client(r, o) == "HTTP/1.1 200 OK\r\nDate: d\r\nConnection: close\r\n\r\n");
}

TEST_CASE("a bodyless response keeps its Content-Length (a response to HEAD)") {
  MessageHead r = response(200, {{"Content-Length", "1234"}});
  CHECK(client(r, {}) == "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n");
}

TEST_CASE("headers under the reserved prefix are dropped from the response") {
  MessageHead r = response(200, {{"X-Session-Set-User", "alice"},
                                 {"x_session_destroy", "1"},
                                 {"X-SESSION-ROTATE", "1"},
                                 {"X-Sessionid", "kept"}});
  CHECK(client(r, {}) == "HTTP/1.1 200 OK\r\nX-Sessionid: kept\r\n\r\n");
}

TEST_CASE("the application cannot set the gateway's cookie") {
  MessageHead r = response(200, {{"Set-Cookie", "session_id=evil; Path=/"},
                                 {"Set-Cookie", " session_id =evil2"},
                                 {"Set-Cookie", "session_id\t=evil3"},
                                 {"set-cookie", "session_id="},
                                 {"Set-Cookie", "session_idx=1"},
                                 {"Set-Cookie", "Session_Id=2"},
                                 {"Set-Cookie", "theme=dark; session_id=3"},
                                 {"Set-Cookie", "other=4; Path=/"}});
  ClientResponseOptions o;
  o.cookie_name = "session_id";
  CHECK(client(r, o) ==
        "HTTP/1.1 200 OK\r\nSet-Cookie: session_idx=1\r\nSet-Cookie: Session_Id=2\r\n"
        "Set-Cookie: theme=dark; session_id=3\r\nSet-Cookie: other=4; Path=/\r\n\r\n");
  o.cookie_name = "";
  CHECK(client(r, o).find("evil3") != std::string::npos);
}

TEST_CASE("with force_no_store a cacheable Cache-Control becomes no-store") {
  ClientResponseOptions o;
  o.force_no_store = true;
  CHECK(client(response(200, {{"Cache-Control", "public, max-age=60"}, {"ETag", "e"}}), o) ==
        "HTTP/1.1 200 OK\r\nETag: e\r\nCache-Control: no-store\r\n\r\n");
  CHECK(client(response(200, {{"ETag", "e"}}), o) ==
        "HTTP/1.1 200 OK\r\nETag: e\r\nCache-Control: no-store\r\n\r\n");
  // private="field" is not "private": the rest of the response stays shareable.
  CHECK(client(response(200, {{"Cache-Control", "private=\"Set-Cookie\""}}), o) ==
        "HTTP/1.1 200 OK\r\nCache-Control: no-store\r\n\r\n");
}

TEST_CASE("with force_no_store a private or no-store Cache-Control is kept as it is") {
  ClientResponseOptions o;
  o.force_no_store = true;
  CHECK(client(response(200, {{"Cache-Control", "private, max-age=0"}}), o) ==
        "HTTP/1.1 200 OK\r\nCache-Control: private, max-age=0\r\n\r\n");
  CHECK(client(response(200, {{"cache-control", "No-Store"}}), o) ==
        "HTTP/1.1 200 OK\r\ncache-control: No-Store\r\n\r\n");
  CHECK(client(response(200, {{"Cache-Control", "max-age=60"}, {"Cache-Control", "PRIVATE"}}), o) ==
        "HTTP/1.1 200 OK\r\nCache-Control: PRIVATE\r\n\r\n");
}

TEST_CASE("without force_no_store Cache-Control passes untouched") {
  CHECK(client(response(200, {{"Cache-Control", "public, max-age=60"}}), {}) ==
        "HTTP/1.1 200 OK\r\nCache-Control: public, max-age=60\r\n\r\n");
}

TEST_CASE("Connection is announced for a close and for an HTTP/1.0 client kept alive") {
  ClientResponseOptions o;
  o.close = true;
  CHECK(client(response(204, {}, "No Content"), o) ==
        "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
  o.close = false;
  o.client_http11 = false;
  CHECK(client(response(204, {}, "No Content"), o) ==
        "HTTP/1.1 204 No Content\r\nConnection: keep-alive\r\n\r\n");
  o.close = true;
  CHECK(client(response(204, {}, "No Content"), o) ==
        "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
}

TEST_CASE("a 101 for a tunnel keeps Connection and Upgrade and never announces close") {
  MessageHead r = response(101,
                           {{"Connection", "Upgrade"},
                            {"Upgrade", "websocket"},
                            {"Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="},
                            {"X-Session-Set", "x"}},
                           "Switching Protocols");
  ClientResponseOptions o;
  o.upgrade = true;
  o.close = true;
  HeaderList added = {{"Set-Cookie", "session_id=t; Path=/"}};
  o.added = &added;
  CHECK(client(r, o) ==
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        "Set-Cookie: session_id=t; Path=/\r\n\r\n");
}

TEST_CASE("the gateway's own headers come last, after every rewrite") {
  MessageHead r = response(200, {{"Set-Cookie", "session_id=app"},
                                 {"Cache-Control", "max-age=60"},
                                 {"Transfer-Encoding", "chunked"}});
  HeaderList added = {{"Set-Cookie", "session_id=gw; Path=/; HttpOnly"},
                      {"Strict-Transport-Security", "max-age=31536000"}};
  ClientResponseOptions o;
  o.cookie_name = "session_id";
  o.framing = BodyFraming::kChunked;
  o.force_no_store = true;
  o.close = true;
  o.added = &added;
  CHECK(client(r, o) ==
        "HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nTransfer-Encoding: chunked\r\n"
        "Connection: close\r\nSet-Cookie: session_id=gw; Path=/; HttpOnly\r\n"
        "Strict-Transport-Security: max-age=31536000\r\n\r\n");
}

// ---- local responses and chunks -------------------------------------------------------------

// The rewriters recognise a name by its length and first letter, then one full comparison: a
// name that shares both with one they act on, but not its spelling, is an ordinary header.
TEST_CASE("names as long as, and starting like, a rewritten one are forwarded untouched") {
  const std::vector<HeaderField> near = {{"Tx", "1"},
                                         {"Hose", "1"},
                                         {"Cookix", "1"},
                                         {"Expecx", "1"},
                                         {"Trailex", "1"},
                                         {"Upgradx", "1"},
                                         {"Connectiox", "1"},
                                         {"Keep-Alivx", "1"},
                                         {"Set-Cookix", "1"},
                                         {"Sat-Cookie", "1"},
                                         {"X-Request-Ix", "1"},
                                         {"Cache-Contro1", "1"},
                                         {"Content-Lengtx", "1"},
                                         {"Http2-Settingx", "1"},
                                         {"X-Forwarder-For", "1"},
                                         {"X-Forwarder-Host", "1"},
                                         {"Transfer-Encodinx", "1"},
                                         {"X-Forwarder-Proto", "1"},
                                         {"1e", "1"},
                                         {"-ookie", "1"},
                                         {"proxy_", "1"}};
  std::string fields;
  for (const auto& f : near)
    fields += f.name + ": 1\r\n";
  UpstreamRequestOptions uo = upstream_options();
  uo.replace_cookie = true;
  uo.cookie_value = "a=b";
  const std::string up = upstream(request(near), uo);
  CHECK(up.find(fields) != std::string::npos);

  ClientResponseOptions co;
  co.cookie_name = "Cookix";
  co.framing = BodyFraming::kChunked;
  co.force_no_store = true;
  const std::string down = client(response(200, near), co);
  CHECK(down.find(fields) != std::string::npos);
}

TEST_CASE("every rewritten name is recognised in any case, in both directions") {
  UpstreamRequestOptions uo = upstream_options();
  uo.replace_cookie = true;
  uo.cookie_value = "a=b";
  const std::string up = upstream(request({{"hOsT", "h.example"},
                                           {"COOKIE", "session=x"},
                                           {"eXpEcT", "100-continue"},
                                           {"HTTP2-settings", "x"},
                                           {"content-LENGTH", "5"},
                                           {"x-REQUEST-id", "abc"},
                                           {"X-FORWARDED-FOR", "198.51.100.1"},
                                           {"x-forwarded-PROTO", "https"},
                                           {"x-Forwarded-Host", "evil.example"},
                                           {"tE", "trailers"},
                                           {"TRAILER", "x"},
                                           {"KEEP-alive", "timeout=5"},
                                           {"Proxy-AUTHORIZATION", "x"}}),
                                  uo);
  CHECK(up ==
        "GET /path?q=1 HTTP/1.1\r\nhOsT: h.example\r\nCookie: a=b\r\n"
        "X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\n"
        "X-Forwarded-Host: h.example\r\n\r\n");

  ClientResponseOptions co;
  co.cookie_name = "sid";
  co.framing = BodyFraming::kChunked;
  co.force_no_store = true;
  const std::string down = client(response(200, {{"CONTENT-length", "5"},
                                                 {"SET-COOKIE", "sid=evil"},
                                                 {"cache-CONTROL", "max-age=60"},
                                                 {"UPGRADE", "h2c"},
                                                 {"connection", "X-Gone"},
                                                 {"x-gone", "1"},
                                                 {"Server", "s"}}),
                                  co);
  CHECK(down ==
        "HTTP/1.1 200 OK\r\nServer: s\r\nCache-Control: no-store\r\n"
        "Transfer-Encoding: chunked\r\n\r\n");
}

TEST_CASE("a local response is a complete plain-text message") {
  std::string out;
  build_local_response(403, "forbidden\n", false, "Sun, 06 Nov 1994 08:49:37 GMT", out);
  CHECK(out ==
        "HTTP/1.1 403 Forbidden\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Type: "
        "text/plain; charset=utf-8\r\n"
        "Cache-Control: no-store\r\nContent-Length: 10\r\n\r\nforbidden\n");
}

TEST_CASE("a local response can close, carry extra headers, and omit its body for HEAD") {
  std::string out;
  HeaderList extra = {{"Retry-After", "5"}};
  build_local_response(503, "busy", true, "Sun, 06 Nov 1994 08:49:37 GMT", out, &extra, true);
  CHECK(out ==
        "HTTP/1.1 503 Service Unavailable\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Cache-Control: no-store\r\nContent-Length: 4\r\nConnection: close\r\n"
        "Retry-After: 5\r\n\r\n");
  std::string appended(1, 'x');  // (not `out = "x"`: g++ 12 -O2 warns falsely, -Wrestrict)
  build_local_response(200, "", false, "Sun, 06 Nov 1994 08:49:37 GMT", appended);
  out = appended;
  CHECK(out ==
        "xHTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Type: text/plain; "
        "charset=utf-8\r\n"
        "Cache-Control: no-store\r\nContent-Length: 0\r\n\r\n");
}

TEST_CASE("a local response carries the content type it is given (an access rule's JSON 401)") {
  std::string out;
  build_local_response(401, "{}", false, "Sun, 06 Nov 1994 08:49:37 GMT", out, nullptr, false,
                       "application/json");
  CHECK(out ==
        "HTTP/1.1 401 Unauthorized\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Type: "
        "application/json\r\nCache-Control: no-store\r\nContent-Length: 2\r\n\r\n{}");
}

TEST_CASE("every status the gateway answers has its standard reason phrase") {
  CHECK(status_reason(400) == "Bad Request");
  CHECK(status_reason(401) == "Unauthorized");  // an access rule's answer to an API call
  CHECK(status_reason(413) == "Content Too Large");
  CHECK(status_reason(431) == "Request Header Fields Too Large");
  CHECK(status_reason(502) == "Bad Gateway");
  CHECK(status_reason(504) == "Gateway Timeout");
  CHECK(status_reason(505) == "HTTP Version Not Supported");
  CHECK(status_reason(799) == "Unknown");
}

TEST_CASE("chunk headers are lowercase hex sizes followed by CRLF") {
  std::string out;
  append_chunk_header(0, out);
  append_chunk_header(1, out);
  append_chunk_header(26, out);
  append_chunk_header(4096, out);
  append_chunk_header(0xabcdef, out);
  CHECK(out == "0\r\n1\r\n1a\r\n1000\r\nabcdef\r\n");
  CHECK(kChunkTrailer == "\r\n");
  CHECK(kLastChunk == "0\r\n\r\n");
}

}  // namespace
}  // namespace sg
