#include "proxy_core/http/request_validation.h"

#include <doctest/doctest.h>
#include <llhttp.h>

#include <string>
#include <utility>
#include <vector>

#include "proxy_core/http/http_parser.h"

namespace sg {
namespace {

MessageHead request(std::string method, std::string target, std::vector<HeaderField> headers,
                    int major = 1, int minor = 1) {
  MessageHead h;
  h.method = method;
  if (method == "GET") h.method_id = HTTP_GET;
  if (method == "POST") h.method_id = HTTP_POST;
  if (method == "OPTIONS") h.method_id = HTTP_OPTIONS;
  if (method == "CONNECT") h.method_id = HTTP_CONNECT;
  h.target = std::move(target);
  h.headers = std::move(headers);
  h.header_count = h.headers.size();
  h.version_major = major;
  h.version_minor = minor;
  return h;
}

MessageHead get(std::string target, std::vector<HeaderField> headers = {{"Host", "example.com"}}) {
  return request("GET", std::move(target), std::move(headers));
}

int status_of(MessageHead h, UnderscorePolicy policy = UnderscorePolicy::kReject) {
  return validate_request(h, policy).status;
}

std::vector<std::string> names(const MessageHead& h) {
  std::vector<std::string> out;
  for (size_t i = 0; i < h.header_count; ++i)
    out.push_back(h.headers[i].name);
  return out;
}

// Parses one request head with HttpParser and validates it, as the connection does.
int parse_and_validate(const std::string& input) {
  HttpParser p(HttpParser::Kind::kRequest, {});
  size_t used = 0;
  HttpParser::Event ev = p.execute(input.data(), input.size(), used);
  if (ev == HttpParser::Event::kError) return p.error_status();
  return validate_request(p.head(), UnderscorePolicy::kReject).status;
}

TEST_CASE("an ordinary HTTP/1.1 request in origin-form is accepted unchanged") {
  MessageHead h = get("/a/b?c=d");
  RequestVerdict v = validate_request(h, UnderscorePolicy::kReject);
  CHECK(v.ok());
  CHECK(v.status == 0);
  CHECK(h.target == "/a/b?c=d");
  CHECK(names(h) == std::vector<std::string>{"Host"});
}

TEST_CASE("only HTTP/1.0 and HTTP/1.1 are spoken") {
  CHECK(status_of(request("GET", "/", {{"Host", "a"}}, 1, 0)) == 0);
  CHECK(status_of(request("GET", "/", {{"Host", "a"}}, 1, 1)) == 0);
  // 0.9 and 2.0 are not HTTP/1.x request lines at all: 400. A later 1.x or 3.x: 505.
  CHECK(status_of(request("GET", "/", {}, 0, 9)) == 400);
  CHECK(status_of(request("GET", "/", {{"Host", "a"}}, 2, 0)) == 400);
  CHECK(status_of(request("GET", "/", {{"Host", "a"}}, 1, 2)) == 505);
  CHECK(status_of(request("GET", "/", {{"Host", "a"}}, 3, 0)) == 505);
}

TEST_CASE("HTTP/0.9 and HTTP/2.0 request lines end in 400 after parsing") {
  CHECK(parse_and_validate("GET /\r\n\r\n") == 400);
  CHECK(parse_and_validate("GET / HTTP/0.9\r\n\r\n") == 400);
  CHECK(parse_and_validate("GET / HTTP/2.0\r\nHost: a\r\n\r\n") == 400);
  CHECK(parse_and_validate("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") == 400);
  CHECK(parse_and_validate("GET / HTTP/1.2\r\nHost: a\r\n\r\n") == 505);
  CHECK(parse_and_validate("GET / HTTP/1.1\r\nHost: a\r\n\r\n") == 0);
}

TEST_CASE("CONNECT is refused") {
  CHECK(status_of(request("CONNECT", "example.com:443", {{"Host", "example.com:443"}})) == 400);
}

TEST_CASE("Transfer-Encoding in an HTTP/1.0 request is refused") {
  MessageHead h = request("POST", "/", {{"Host", "a"}, {"Transfer-Encoding", "chunked"}}, 1, 0);
  h.has_transfer_encoding = true;
  h.chunked = true;
  CHECK(status_of(h) == 400);
  h.version_minor = 1;
  CHECK(status_of(h) == 0);
}

TEST_CASE("HTTP/1.1 requires exactly one Host and HTTP/1.0 at most one") {
  CHECK(status_of(get("/", {})) == 400);
  CHECK(status_of(get("/", {{"Accept", "*/*"}})) == 400);
  CHECK(status_of(request("GET", "/", {}, 1, 0)) == 0);
  CHECK(status_of(get("/", {{"Host", "a"}, {"Host", "a"}})) == 400);
  CHECK(status_of(get("/", {{"Host", "a"}, {"host", "b"}})) == 400);
  CHECK(status_of(get("/", {{"HOST", "a"}, {"X", "1"}, {"hOsT", "a"}})) == 400);
  CHECK(status_of(request("GET", "/", {{"Host", "a"}, {"Host", "b"}}, 1, 0)) == 400);
  CHECK(status_of(get("/", {{"hOsT", "a"}})) == 0);
}

TEST_CASE("an empty Host is refused (RFC 9112 3.2: the target always has our authority)") {
  CHECK(status_of(get("/", {{"Host", ""}})) == 400);
  CHECK(status_of(get("/", {{"Host", " \t "}})) == 400);
  CHECK(status_of(request("GET", "/", {{"Host", ""}}, 1, 0)) == 400);
}

TEST_CASE("a Host that is not uri-host[:port] is refused with 400") {
  const char* const bad[] = {"evil.example/path?x=",
                             "a@evil.example",
                             "a, b",
                             "a b",
                             "a,b",
                             "a;b",
                             "a=b",
                             "a%2fb",
                             "example.com:",
                             "example.com:80:80",
                             "example.com:x",
                             "example.com:65536",
                             "example.com:123456",
                             ":80",
                             "[::1",
                             "[::1]x",
                             "[::1]:",
                             "[not-v6]",
                             "[]",
                             "[v1.x]",
                             "[fe80::1%25eth0]",
                             "::1",
                             "exa mple.com",
                             "example.com\x7f",
                             "h\xc3\xa9.example",
                             "http://example.com",
                             "example.com#f"};
  for (const char* host : bad) {
    CAPTURE(host);
    CHECK_FALSE(is_valid_host(host));
    CHECK(status_of(get("/", {{"Host", host}})) == 400);
  }
  CHECK_FALSE(is_valid_host(std::string(256, 'a')));
}

TEST_CASE("a Host that is a name, an IPv4 or an IPv6 literal, with an optional port, passes") {
  const char* const good[] = {
      "example.com",         "EXAMPLE.com:8080", "a",     "localhost:1",
      "127.0.0.1",           "10.0.0.1:65535",   "[::1]", "[2001:db8::1]:443",
      "under_score.example", "x-y.example.",     "t~ilde"};
  for (const char* host : good) {
    CAPTURE(host);
    CHECK(is_valid_host(host));
    CHECK(status_of(get("/", {{"Host", host}})) == 0);
  }
  CHECK(is_valid_host(std::string(255, 'a')));
}

TEST_CASE("an HTTP/1.0 request may omit Host") {
  CHECK(status_of(request("GET", "/", {}, 1, 0)) == 0);
}

TEST_CASE("a header name with an underscore is refused under the reject policy") {
  CHECK(status_of(get("/", {{"Host", "a"}, {"X_Session_Id", "forged"}})) == 400);
  CHECK(status_of(get("/", {{"Host", "a"}, {"_", "1"}})) == 400);
  RequestVerdict v = [] {
    MessageHead h = get("/", {{"Host", "a"}, {"X-Forwarded_For", "1.2.3.4"}});
    return validate_request(h, UnderscorePolicy::kReject);
  }();
  CHECK(v.status == 400);
  CHECK(std::string(v.reason) == "header name with underscore");
}

TEST_CASE(
    "headers with an underscore are dropped under the drop policy, the rest keep their order") {
  MessageHead h = get("/", {{"A_1", "x"},
                            {"Host", "a"},
                            {"X_Session_Id", "forged"},
                            {"Accept", "*/*"},
                            {"x_forwarded_for", "1.2.3.4"},
                            {"User-Agent", "t"},
                            {"Z_", "z"}});
  CHECK(validate_request(h, UnderscorePolicy::kDrop).ok());
  CHECK(names(h) == std::vector<std::string>{"Host", "Accept", "User-Agent"});
  CHECK(h.find("host")->value == "a");
  CHECK(h.find("accept")->value == "*/*");
  CHECK(h.find("user-agent")->value == "t");
}

TEST_CASE("the drop policy leaves a request without underscores alone") {
  MessageHead h = get("/", {{"Host", "a"}, {"X-Session-Id", "x"}});
  CHECK(validate_request(h, UnderscorePolicy::kDrop).ok());
  CHECK(names(h) == std::vector<std::string>{"Host", "X-Session-Id"});
}

TEST_CASE("an underscore header that would be the only Host does not count as Host") {
  MessageHead h = get("/", {{"Host_", "a"}});
  CHECK(status_of(h, UnderscorePolicy::kDrop) == 400);  // missing Host
}

TEST_CASE("an asterisk target is accepted only for OPTIONS") {
  CHECK(status_of(request("OPTIONS", "*", {{"Host", "a"}})) == 0);
  CHECK(status_of(request("GET", "*", {{"Host", "a"}})) == 400);
  CHECK(status_of(request("POST", "*", {{"Host", "a"}})) == 400);
}

TEST_CASE("an absolute-form target that agrees with Host becomes origin-form") {
  struct Case {
    const char* target;
    const char* host;
    const char* origin;
  };
  const Case cases[] = {
      {"http://example.com/a/b?c=d", "example.com", "/a/b?c=d"},
      {"http://example.com", "example.com", "/"},
      {"http://example.com?q=1", "example.com", "/?q=1"},
      {"https://example.com:8443/x", "example.com:8443", "/x"},
      {"HTTP://Example.COM/Path", "example.com", "/Path"},
      {"HtTpS://example.com/", "EXAMPLE.com", "/"},
      {"http://example.com/", " \texample.com\t ", "/"},
      {"http://[::1]:8080/v6", "[::1]:8080", "/v6"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.target);
    MessageHead h = get(c.target, {{"Host", c.host}});
    CHECK(validate_request(h, UnderscorePolicy::kReject).ok());
    CHECK(h.target == c.origin);
  }
}

TEST_CASE("an absolute-form target's authority replaces a different Host (RFC 9112 3.2.2)") {
  const std::pair<const char*, const char*> cases[] = {
      {"http://example.com/", "other.com"},
      {"http://example.com/", "example.com:80"},
      {"http://example.com:80/", "example.com"},
      {"http://example.com.evil/", "example.com"},
  };
  for (const auto& c : cases) {
    // Plain variables: clang 14 (the sanitizer build) cannot capture structured bindings in
    // CAPTURE's lambda.
    const char* target = c.first;
    const char* host = c.second;
    CAPTURE(target);
    CAPTURE(host);
    MessageHead h = get(target, {{"Host", host}, {"Accept", "*/*"}});
    CHECK(validate_request(h, UnderscorePolicy::kReject).ok());
    CHECK(h.target == "/");
    std::string_view t = target;
    CHECK(h.find("host")->value == t.substr(7, t.size() - 8));
    CHECK(h.count("host") == 1);
    CHECK(names(h) == std::vector<std::string>{"Host", "Accept"});
  }
  // An invalid Host is still a 400 (RFC 9112 3.2), whatever the target says.
  CHECK(status_of(get("http://example.com/", {{"Host", ""}})) == 400);
  CHECK(status_of(get("http://example.com/", {{"Host", "a b"}})) == 400);
  // HTTP/1.0 may omit Host: the target's authority becomes the Host.
  MessageHead h = request("GET", "http://example.com:8080/x", {}, 1, 0);
  CHECK(validate_request(h, UnderscorePolicy::kReject).ok());
  CHECK(h.target == "/x");
  REQUIRE(h.find("host") != nullptr);
  CHECK(h.find("host")->value == "example.com:8080");
}

TEST_CASE("an absolute-form target whose authority is not a valid host is refused") {
  for (const char* target : {"http://a b/", "http://a,b/", "http://example.com:/",
                             "http://example.com:99999/", "http://[::1/"}) {
    CAPTURE(target);
    CHECK(status_of(get(target, {{"Host", "example.com"}})) == 400);
  }
}

TEST_CASE("a malformed request target is refused") {
  const char* const bad[] = {
      "http://user:pw@example.com/",  // userinfo: a classic host-confusion vector
      "http://@example.com/",
      "http:///path",
      "http://",
      "https://?q",
      "ftp://example.com/",
      "example.com:443",  // authority-form outside CONNECT
      "example.com/path",
      "",
  };
  for (const char* target : bad) {
    CAPTURE(target);
    CHECK(status_of(get(target, {{"Host", "example.com"}})) == 400);
  }
  // Starts with '/': origin-form whose path begins with an empty segment, forwarded as a path.
  MessageHead h = get("//other.com/p", {{"Host", "example.com"}});
  CHECK(validate_request(h, UnderscorePolicy::kReject).ok());
  CHECK(h.target == "//other.com/p");
}

TEST_CASE("target_path cuts the query and the fragment") {
  CHECK(target_path("/a/b?c=d") == "/a/b");
  CHECK(target_path("/a#frag") == "/a");
  CHECK(target_path("/a?b#c") == "/a");
  CHECK(target_path("/") == "/");
  CHECK(target_path("/?") == "/");
  CHECK(target_path("") == "");
  CHECK(target_path("*") == "*");
}

TEST_CASE("list_contains_token finds a list element whatever its case and surrounding OWS") {
  CHECK(list_contains_token("close", "close"));
  CHECK(list_contains_token("keep-alive, Close", "close"));
  CHECK(list_contains_token(" \tUpgrade\t ,x", "upgrade"));
  CHECK(list_contains_token(",,close,,", "close"));
  CHECK_FALSE(list_contains_token("closed", "close"));
  CHECK_FALSE(list_contains_token("clo se", "close"));
  CHECK_FALSE(list_contains_token("", "close"));
  CHECK_FALSE(list_contains_token("private=\"x\"", "private"));
}

TEST_CASE("trim_ows removes spaces and tabs only at the ends") {
  CHECK(trim_ows(" \t a b \t ") == "a b");
  CHECK(trim_ows("") == "");
  CHECK(trim_ows(" \t ") == "");
  CHECK(trim_ows("\r\na\r\n") == "\r\na\r\n");
}

TEST_CASE("MessageHead finds and counts headers case-insensitively among the valid entries only") {
  MessageHead h = get("/", {{"Host", "a"}, {"Accept", "1"}, {"accept", "2"}, {"Stale", "x"}});
  h.header_count = 3;  // the fourth entry is left over from an earlier message
  CHECK(h.find("ACCEPT")->value == "1");
  CHECK(h.count("accept") == 2);
  CHECK(h.find("stale") == nullptr);
  CHECK(h.count("stale") == 0);
  h.clear();
  CHECK(h.header_count == 0);
  CHECK(h.find("host") == nullptr);
  CHECK(h.version_major == 1);
  CHECK(h.version_minor == 1);
  CHECK(h.keep_alive);
}

TEST_CASE("a Transfer-Encoding with a coding besides chunked is 501, an empty one 400") {
  // We re-chunk bodies and send only "chunked" upstream: another coding would be dropped silently.
  auto post = [](std::vector<HeaderField> te) {
    te.insert(te.begin(), {"Host", "example.com"});
    return request("POST", "/", std::move(te));
  };
  CHECK(status_of(post({{"Transfer-Encoding", "chunked"}})) == 0);
  CHECK(status_of(post({{"Transfer-Encoding", " CHUNKED "}})) == 0);
  CHECK(status_of(post({{"Transfer-Encoding", "x, chunked"}})) == 501);
  CHECK(status_of(post({{"Transfer-Encoding", "gzip"}, {"Transfer-Encoding", "chunked"}})) == 501);
  CHECK(status_of(post({{"Transfer-Encoding", ""}})) == 400);
  CHECK(status_of(post({{"Transfer-Encoding", " , "}})) == 400);
  CHECK(parse_and_validate("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: x, chunked\r\n\r\n") ==
        501);
  CHECK(parse_and_validate("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\n\r\n") == 400);
}

}  // namespace
}  // namespace sg
