#include "proxy_core/http/set_cookie.h"

#include <doctest/doctest.h>

#include <optional>
#include <string_view>

namespace sg {
namespace {

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
