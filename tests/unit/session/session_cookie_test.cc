#include "proxy_core/session/session_cookie.h"

#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

namespace sg {
namespace {

using Values = std::vector<std::string_view>;

const std::string kToken = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

TEST_CASE("token candidates keep only distinct token-shaped values") {
  const std::string t1(43, 'A');
  const std::string t2(43, 'Q');
  CHECK(token_candidates({"short", t1, "\"x\"", t1}) == Values{t1});
  CHECK(token_candidates({t1, t2}) == Values{t1, t2});
  CHECK(token_candidates({}).empty());
}

TEST_CASE("too many token candidates count as no cookie") {
  std::vector<std::string> tokens;
  for (char c : std::string("ABCDEFGH"))
    tokens.push_back(std::string(42, c) + "A");
  Values values(tokens.begin(), tokens.begin() + kMaxTokenCandidates);
  CHECK(token_candidates(values).size() == kMaxTokenCandidates);
  values.push_back(tokens[kMaxTokenCandidates]);
  CHECK(token_candidates(values).empty());
}

TEST_CASE("a quoted cookie value is never a token candidate") {
  const std::string quoted = "\"" + std::string(43, 'A') + "\"";
  CHECK(token_candidates({quoted}).empty());
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

}  // namespace
}  // namespace sg
