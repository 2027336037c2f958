#include "proxy_core/http/set_cookie.h"

#include <doctest/doctest.h>

#include <ctime>
#include <optional>
#include <string>
#include <string_view>

namespace sg {
namespace {

const std::string kToken = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

TEST_CASE("IMF-fixdate matches RFC 9110 and known calendar dates") {
  CHECK(format_imf_fixdate(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT");  // RFC 9110 §5.6.7
  CHECK(format_imf_fixdate(0) == "Thu, 01 Jan 1970 00:00:00 GMT");
  CHECK(format_imf_fixdate(951782400) == "Tue, 29 Feb 2000 00:00:00 GMT");  // 400-year leap
  CHECK(format_imf_fixdate(1709164800) == "Thu, 29 Feb 2024 00:00:00 GMT");
  CHECK(format_imf_fixdate(4102444800) == "Fri, 01 Jan 2100 00:00:00 GMT");  // 2100 not leap
  CHECK(format_imf_fixdate(253402300799) == "Fri, 31 Dec 9999 23:59:59 GMT");
}

TEST_CASE("IMF-fixdate clamps what four-digit years cannot show") {
  CHECK(format_imf_fixdate(-1) == "Thu, 01 Jan 1970 00:00:00 GMT");
  CHECK(format_imf_fixdate(253402300800) == "Fri, 31 Dec 9999 23:59:59 GMT");
  CHECK(format_imf_fixdate(INT64_MAX) == "Fri, 31 Dec 9999 23:59:59 GMT");
}

TEST_CASE("IMF-fixdate agrees with gmtime over a spread of instants") {
  static const char* const kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char* const kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  for (int64_t t = 0; t < 5000000000; t += 7777777) {
    const time_t tt = static_cast<time_t>(t);
    struct tm tm;
    REQUIRE(gmtime_r(&tt, &tm) != nullptr);
    char expected[64];
    std::snprintf(expected, sizeof expected, "%s, %02d %s %04d %02d:%02d:%02d GMT",
                  kDays[tm.tm_wday], tm.tm_mday, kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour,
                  tm.tm_min, tm.tm_sec);
    CHECK(format_imf_fixdate(t) == expected);
  }
}

TEST_CASE("the session cookie carries every attribute in a fixed order") {
  SessionConfig config;  // session_id, Path=/, Lax, idle 1h
  CHECK(build_session_cookie(config, kToken, false, 784111777) ==
        "session_id=" + kToken +
            "; Path=/; Max-Age=3600; Expires=Sun, 06 Nov 1994 09:49:37 GMT; HttpOnly; "
            "SameSite=Lax");
  config.cookie_domain = "example.com";
  config.cookie_path = "/app";
  config.cookie_samesite = "Strict";
  config.idle_timeout = Millis(90 * 1000);
  CHECK(build_session_cookie(config, kToken, true, 0) ==
        "session_id=" + kToken +
            "; Path=/app; Domain=example.com; Max-Age=90; Expires=Thu, 01 Jan 1970 00:01:30 GMT; "
            "Secure; HttpOnly; SameSite=Strict");
}

TEST_CASE("the destroy cookie is empty and expired with the same attributes") {
  SessionConfig config;
  CHECK(build_expired_cookie(config, false) ==
        "session_id=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; "
        "SameSite=Lax");
  config.cookie_domain = "example.com";
  CHECK(build_expired_cookie(config, true) ==
        "session_id=; Path=/; Domain=example.com; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 "
        "GMT; Secure; HttpOnly; SameSite=Lax");
}

TEST_CASE("Secure follows cookie_secure and TLS") {
  SessionConfig config;
  config.cookie_secure = CookieSecure::kAuto;
  CHECK(cookie_secure_effective(config, true));
  CHECK_FALSE(cookie_secure_effective(config, false));
  config.cookie_secure = CookieSecure::kAlways;
  CHECK(cookie_secure_effective(config, false));
  config.cookie_secure = CookieSecure::kNever;
  CHECK_FALSE(cookie_secure_effective(config, true));
}

TEST_CASE("the client's scheme is https over TLS, or when a trusted proxy says so") {
  using S = ClientScheme;
  using O = std::optional<std::string_view>;
  CHECK(client_scheme(true, false, O()) == S::kHttps);
  CHECK(client_scheme(true, true, O("http")) == S::kHttps);    // our own TLS is what we know
  CHECK(client_scheme(false, false, O("https")) == S::kHttp);  // an untrusted peer is not heard
  CHECK(client_scheme(false, false, O()) == S::kHttp);
  CHECK(client_scheme(false, true, O("https")) == S::kHttps);
  CHECK(client_scheme(false, true, O(" HTTPS ")) == S::kHttps);
  CHECK(client_scheme(false, true, O("https, http")) == S::kHttps);  // the first proxy's view
  CHECK(client_scheme(false, true, O("http, https")) == S::kHttp);
  CHECK(client_scheme(false, true, O("http")) == S::kHttp);
  CHECK(client_scheme(false, true, O()) == S::kUnknown);
  CHECK(client_scheme(false, true, O("")) == S::kUnknown);
  CHECK(client_scheme(false, true, O("wss")) == S::kUnknown);
}

TEST_CASE("cookie path-match follows RFC 6265 5.1.4") {
  CHECK(cookie_path_matches("/", "/logout"));
  CHECK(cookie_path_matches("/app", "/app"));
  CHECK(cookie_path_matches("/app", "/app/logout"));
  CHECK(cookie_path_matches("/app/", "/app/logout"));
  CHECK_FALSE(cookie_path_matches("/app", "/apple"));
  CHECK_FALSE(cookie_path_matches("/app/", "/app"));
  CHECK_FALSE(cookie_path_matches("/app", "/logout"));
  CHECK_FALSE(cookie_path_matches("/App", "/app/logout"));  // paths are case-sensitive
}

TEST_CASE("an application Set-Cookie for our name is recognised") {
  CHECK(set_cookie_names_cookie("session_id=abc; Path=/", "session_id"));
  CHECK(set_cookie_names_cookie("session_id=", "session_id"));
  CHECK(set_cookie_names_cookie("  session_id\t=abc", "session_id"));
  CHECK(set_cookie_names_cookie("session_id=a=b; HttpOnly", "session_id"));
}

TEST_CASE("other Set-Cookie fields are left alone") {
  CHECK_FALSE(set_cookie_names_cookie("other=1; Path=/", "session_id"));
  CHECK_FALSE(set_cookie_names_cookie("Session_ID=1", "session_id"));
  CHECK_FALSE(set_cookie_names_cookie("session_id", "session_id"));  // no '=': ignored by UAs
  CHECK_FALSE(set_cookie_names_cookie("x=1; session_id=2", "session_id"));
  CHECK_FALSE(set_cookie_names_cookie("session_idx=1", "session_id"));
  CHECK_FALSE(set_cookie_names_cookie("", "session_id"));
  CHECK_FALSE(set_cookie_names_cookie("=1", ""));
}

}  // namespace
}  // namespace sg
