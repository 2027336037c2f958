#include "proxy_core/http/path_match.h"

#include <doctest/doctest.h>

#include <string>

namespace sg {
namespace {

TEST_CASE("a trailing star matches everything below a prefix, slashes included") {
  CHECK(path_matches("/static/*", "/static/"));
  CHECK(path_matches("/static/*", "/static/a.css"));
  CHECK(path_matches("/static/*", "/static/css/deep/a.css"));
  CHECK_FALSE(path_matches("/static/*", "/static"));
  CHECK_FALSE(path_matches("/static/*", "/staticx/a"));
  CHECK_FALSE(path_matches("/static/*", "/api/static/a"));
}

TEST_CASE("without a star the whole path must be equal") {
  CHECK(path_matches("/healthz", "/healthz"));
  CHECK_FALSE(path_matches("/healthz", "/healthz/"));
  CHECK_FALSE(path_matches("/healthz", "/HEALTHZ"));
  CHECK(path_matches("", ""));
  CHECK_FALSE(path_matches("", "/"));
}

TEST_CASE("stars match anywhere, several times, and may match nothing") {
  CHECK(path_matches("*.css", "/a/b.css"));
  CHECK_FALSE(path_matches("*.css", "/a/b.css.map"));
  CHECK(path_matches("/*/assets/*", "/v1/assets/x.js"));
  CHECK(path_matches("/a*b*c", "/abc"));
  CHECK(path_matches("/a*b*c", "/aXXbYYbZZc"));
  CHECK_FALSE(path_matches("/a*b*c", "/aXXcYYb"));
  CHECK(path_matches("*", ""));
  CHECK(path_matches("**", "/anything"));
}

TEST_CASE("other glob characters are literal") {
  CHECK(path_matches("/a?b", "/a?b"));
  CHECK_FALSE(path_matches("/a?b", "/axb"));
  CHECK(path_matches("/[x]", "/[x]"));
  CHECK_FALSE(path_matches("/[x]", "/x"));
}

TEST_CASE("a long hostile path is matched quickly") {
  const std::string path = "/" + std::string(20000, 'a');
  CHECK_FALSE(path_matches("/*a*a*a*a*a*b", path));
}

TEST_CASE("the query and fragment are cut from the target") {
  CHECK(path_without_query("/static/a.css?v=3") == "/static/a.css");
  CHECK(path_without_query("/a?") == "/a");
  CHECK(path_without_query("/a#frag") == "/a");
  CHECK(path_without_query("/") == "/");
  CHECK(path_without_query("/a/b") == "/a/b");
}

TEST_CASE("absolute-form targets give their path") {
  CHECK(path_without_query("http://example.com/static/a?x") == "/static/a");
  CHECK(path_without_query("https://example.com:8443") == "/");
  CHECK(path_without_query("http://example.com?q") == "/");
}

TEST_CASE("authority-form and asterisk-form targets are returned unchanged") {
  CHECK(path_without_query("example.com:443") == "example.com:443");
  CHECK(path_without_query("*") == "*");
  CHECK(path_without_query("") == "");
}

}  // namespace
}  // namespace sg
