#include "proxy_core/session/token.h"

#include <doctest/doctest.h>

#include <set>
#include <string>

namespace sg {
namespace {

TEST_CASE("a generated token is 43 canonical base64url characters") {
  std::string token;
  REQUIRE(generate_token(token));
  CHECK(token.size() == kTokenChars);
  CHECK(is_token_shaped(token));
  CHECK(token.find_first_of("=+/") == std::string::npos);
}

TEST_CASE("generated tokens do not repeat") {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    std::string token;
    REQUIRE(generate_token(token));
    CHECK(seen.insert(token).second);
  }
}

TEST_CASE("a token can be generated into a caller buffer") {
  char buf[kTokenChars];
  REQUIRE(generate_token(buf));
  CHECK(is_token_shaped(std::string_view(buf, sizeof buf)));
}

TEST_CASE("only the exact token shape is accepted") {
  const std::string good(42, 'A');
  CHECK(is_token_shaped(good + "A"));
  CHECK(is_token_shaped(good + "E"));        // value 4: low two bits zero
  CHECK_FALSE(is_token_shaped(good + "B"));  // value 1: a non-canonical spelling
  CHECK_FALSE(is_token_shaped(good + "_"));  // value 63
  CHECK_FALSE(is_token_shaped(good));
  CHECK_FALSE(is_token_shaped(good + "AA"));
  CHECK_FALSE(is_token_shaped(""));
  CHECK_FALSE(is_token_shaped(good + "="));
  CHECK_FALSE(is_token_shaped("+" + std::string(41, 'A') + "A"));
  CHECK_FALSE(is_token_shaped("\"" + std::string(41, 'A') + "\""));
  CHECK_FALSE(is_token_shaped(std::string(21, 'A') + '\0' + std::string(21, 'A')));
  CHECK(is_token_shaped(std::string(21, '-') + std::string(21, '_') + "w"));  // 'w' = 48
}

TEST_CASE("every token character class is accepted and every other byte refused") {
  const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  for (int c = 0; c < 256; ++c) {
    std::string t = std::string(1, static_cast<char>(c)) + std::string(42, 'A');
    CHECK(is_token_shaped(t) == (alphabet.find(static_cast<char>(c)) != std::string::npos));
  }
}

TEST_CASE("the token hash is SHA-256 of the token text") {
  // SHA-256("abc"), FIPS 180-2 appendix B.1.
  const TokenHash h = hash_token("abc");
  const TokenHash expected = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
                              0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
                              0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
  CHECK(h == expected);
  CHECK(hash_token("abd") != h);
}

TEST_CASE("handles are random and print as 32 lowercase hex digits") {
  SessionHandle a{};
  SessionHandle b{};
  REQUIRE(generate_handle(a));
  REQUIRE(generate_handle(b));
  CHECK(a != b);
  const std::string hex = handle_to_hex(a);
  CHECK(hex.size() == 32);
  CHECK(hex.find_first_not_of("0123456789abcdef") == std::string::npos);
  SessionHandle fixed{};
  fixed[0] = 0x01;
  fixed[15] = 0xfe;
  CHECK(handle_to_hex(fixed) == "01" + std::string(28, '0') + "fe");
}

TEST_CASE("constant-time comparison compares") {
  CHECK(constant_time_equal("abc", "abc"));
  CHECK_FALSE(constant_time_equal("abc", "abd"));
  CHECK_FALSE(constant_time_equal("abc", "abcd"));
  CHECK(constant_time_equal("", ""));
  CHECK(constant_time_equal(hash_token("x"), hash_token("x")));
  CHECK_FALSE(constant_time_equal(hash_token("x"), hash_token("y")));
}

TEST_CASE("the token digest cache answers the digest of the token asked, alternating or not") {
  std::string a, b;
  REQUIRE(generate_token(a));
  REQUIRE(generate_token(b));
  CHECK(TokenDigestCache().digest_of("") == hash_token(""));  // nothing cached yet
  TokenDigestCache cache;
  CHECK(cache.digest_of(a) == hash_token(a));
  CHECK(cache.digest_of(a) == hash_token(a));  // a hit
  CHECK(cache.digest_of(b) == hash_token(b));  // a different token replaces it
  CHECK(cache.digest_of(a) == hash_token(a));
  CHECK(cache.digest_of("") == hash_token(""));
}

}  // namespace
}  // namespace sg
