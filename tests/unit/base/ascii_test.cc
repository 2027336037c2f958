#include "proxy_core/base/ascii.h"

#include <doctest/doctest.h>

#include <string>

namespace sg {
namespace {

TEST_CASE("ASCII case folding touches letters only") {
  CHECK(ascii_lower('A') == 'a');
  CHECK(ascii_lower('Z') == 'z');
  CHECK(ascii_lower('a') == 'a');
  CHECK(ascii_lower('@') == '@');        // just below 'A'
  CHECK(ascii_lower('[') == '[');        // just above 'Z'
  CHECK(ascii_lower('\xc4') == '\xc4');  // no locale: bytes above 0x7f are left alone
  CHECK(ascii_lowercase("Content-TYPE_1") == "content-type_1");
}

TEST_CASE("iequals compares ASCII case-insensitively and nothing else") {
  CHECK(iequals("Content-Length", "content-length"));
  CHECK(iequals("", ""));
  CHECK_FALSE(iequals("host", "hosts"));
  CHECK_FALSE(iequals("x-a", "x_a"));
  CHECK_FALSE(iequals("\xc3\x89", "\xc3\xa9"));  // no Unicode folding
  CHECK_FALSE(iequals("@", "`"));                // 0x40 and 0x60 are not a case pair
  CHECK_FALSE(iequals("[", "{"));
  CHECK(iequals("Transfer-Encoding", "transfer-encoding"));
  CHECK(istarts_with("X-Forwarded-For", "x-forwarded-"));
  CHECK_FALSE(istarts_with("X-Forward", "x-forwarded-"));
}

TEST_CASE("tchar and token follow RFC 9110 5.6.2") {
  for (char c : std::string("!#$%&'*+-.^_`|~09azAZ"))
    CHECK(is_tchar(c));
  for (char c : std::string(" \t\"(),/:;<=>?@[\\]{}\x7f"))
    CHECK_FALSE(is_tchar(c));
  CHECK_FALSE(is_tchar('\0'));
  CHECK_FALSE(is_tchar('\x80'));
  CHECK(is_token("session_id"));
  CHECK_FALSE(is_token(""));
  CHECK_FALSE(is_token("a b"));
}

}  // namespace
}  // namespace sg
