#include "proxy_core/session/logout_guard.h"

#include <doctest/doctest.h>

#include <optional>
#include <string_view>

namespace sg {
namespace {

using Opt = std::optional<std::string_view>;

LogoutRequest get_from(Opt site, Opt origin, Opt referer) {
  LogoutRequest r;
  r.get = true;
  r.sec_fetch_site = site;
  r.origin = origin;
  r.referer = referer;
  r.scheme = "https";
  r.host = "app.example";
  return r;
}

TEST_CASE("a POST to logout_path is allowed whatever its origin") {
  LogoutRequest r = get_from("cross-site", "https://evil.example", "https://evil.example/x");
  r.get = false;
  r.post = true;
  CHECK(logout_allowed(r) == LogoutVerdict::kAllowed);
  r.sec_fetch_site = r.origin = r.referer = std::nullopt;
  CHECK(logout_allowed(r) == LogoutVerdict::kAllowed);
}

TEST_CASE("methods other than GET and POST get 405 with GET and POST allowed") {
  LogoutRequest r = get_from("same-origin", std::nullopt, std::nullopt);
  r.get = false;  // PUT, DELETE, HEAD, ...
  CHECK(logout_allowed(r) == LogoutVerdict::kMethodNotAllowed);
  CHECK(kLogoutAllow == "GET, POST");
}

TEST_CASE("a GET is allowed when Sec-Fetch-Site says same-origin or none, and only then") {
  CHECK(logout_allowed(get_from("same-origin", Opt(), Opt())) == LogoutVerdict::kAllowed);
  CHECK(logout_allowed(get_from("none", Opt(), Opt())) == LogoutVerdict::kAllowed);
  CHECK(logout_allowed(get_from(" Same-Origin ", Opt(), Opt())) == LogoutVerdict::kAllowed);
  CHECK(logout_allowed(get_from("same-site", Opt(), Opt())) == LogoutVerdict::kCrossSite);
  CHECK(logout_allowed(get_from("cross-site", Opt(), Opt())) == LogoutVerdict::kCrossSite);
  CHECK(logout_allowed(get_from("", Opt(), Opt())) == LogoutVerdict::kCrossSite);
  CHECK(logout_allowed(get_from("bogus", Opt(), Opt())) == LogoutVerdict::kCrossSite);
}

TEST_CASE("Sec-Fetch-Site decides over Origin and Referer when present") {
  // A browser that sends Sec-Fetch-Site is believed: a matching Referer cannot rescue cross-site.
  CHECK(logout_allowed(get_from("cross-site", "https://app.example", "https://app.example/")) ==
        LogoutVerdict::kCrossSite);
  CHECK(logout_allowed(get_from("same-origin", "https://evil.example", Opt())) ==
        LogoutVerdict::kAllowed);
}

TEST_CASE("without Sec-Fetch-Site a GET is allowed when Origin is our own origin") {
  CHECK(logout_allowed(get_from(Opt(), "https://app.example", Opt())) == LogoutVerdict::kAllowed);
  CHECK(logout_allowed(get_from(Opt(), "HTTPS://APP.example:443", Opt())) ==
        LogoutVerdict::kAllowed);
  CHECK(logout_allowed(get_from(Opt(), "http://app.example", Opt())) == LogoutVerdict::kCrossSite);
  CHECK(logout_allowed(get_from(Opt(), "https://app.example:8443", Opt())) ==
        LogoutVerdict::kCrossSite);
  CHECK(logout_allowed(get_from(Opt(), "https://evil.example", Opt())) ==
        LogoutVerdict::kCrossSite);
  CHECK(logout_allowed(get_from(Opt(), "null", Opt())) == LogoutVerdict::kCrossSite);
  // Origin decides over Referer: a cross-site Origin with a same-origin Referer is cross-site.
  CHECK(logout_allowed(get_from(Opt(), "https://evil.example", "https://app.example/")) ==
        LogoutVerdict::kCrossSite);
}

TEST_CASE("without Sec-Fetch-Site and Origin a GET is allowed when Referer is on our origin") {
  CHECK(logout_allowed(get_from(Opt(), Opt(), "https://app.example/account?x=1#f")) ==
        LogoutVerdict::kAllowed);
  CHECK(logout_allowed(get_from(Opt(), Opt(), "https://app.example")) == LogoutVerdict::kAllowed);
  CHECK(logout_allowed(get_from(Opt(), Opt(), "https://app.example.evil.example/")) ==
        LogoutVerdict::kCrossSite);
  CHECK(logout_allowed(get_from(Opt(), Opt(), "https://app.example@evil.example/")) ==
        LogoutVerdict::kCrossSite);
  CHECK(logout_allowed(get_from(Opt(), Opt(), "https://evil.example/?https://app.example/")) ==
        LogoutVerdict::kCrossSite);
  CHECK(logout_allowed(get_from(Opt(), Opt(), "/relative")) == LogoutVerdict::kCrossSite);
}

TEST_CASE("a GET with none of Sec-Fetch-Site, Origin, Referer is refused") {
  CHECK(logout_allowed(get_from(Opt(), Opt(), Opt())) == LogoutVerdict::kCrossSite);
}

TEST_CASE("same_origin compares scheme, host and port, with default ports made explicit") {
  CHECK(same_origin("http://app.example", "http", "app.example:80"));
  CHECK(same_origin("http://app.example:80/x", "http", "app.example"));
  CHECK(same_origin("http://127.0.0.1:8080", "http", "127.0.0.1:8080"));
  CHECK(same_origin("http://[::1]:8080/a", "http", "[::1]:8080"));
  CHECK(same_origin("https://[::1]", "https", "[::1]:443"));
  CHECK_FALSE(same_origin("http://127.0.0.1:8081", "http", "127.0.0.1:8080"));
  CHECK_FALSE(same_origin("http://[::1]:8080", "http", "[::2]:8080"));
  CHECK_FALSE(same_origin("https://app.example", "http", "app.example"));
  CHECK_FALSE(same_origin("ftp://app.example", "ftp", "app.example"));
  CHECK_FALSE(same_origin("http://app.example", "http", ""));
  CHECK_FALSE(same_origin("", "http", "app.example"));
}

}  // namespace
}  // namespace sg
