#include "proxy_core/net/host_port.h"

#include <doctest/doctest.h>

#include <optional>
#include <string_view>

namespace sg {
namespace {

TEST_CASE("host:port splits at the only colon") {
  const auto hp = split_host_port("example.com:8080");
  REQUIRE(hp);
  CHECK(hp->host == "example.com");
  CHECK(hp->port == "8080");
  CHECK(hp->has_port);
  CHECK_FALSE(hp->bracketed);
  const auto any = split_host_port(":8080");  // the empty host is the caller's to judge
  REQUIRE(any);
  CHECK(any->host.empty());
  CHECK(any->port == "8080");
}

TEST_CASE("a bracketed IPv6 host loses its brackets and keeps its colons") {
  const auto hp = split_host_port("[::1]:443");
  REQUIRE(hp);
  CHECK(hp->host == "::1");
  CHECK(hp->port == "443");
  CHECK(hp->bracketed);
  const auto no_port = split_authority("[2001:db8::1]");
  REQUIRE(no_port);
  CHECK(no_port->host == "2001:db8::1");
  CHECK_FALSE(no_port->has_port);
}

TEST_CASE("an authority without a port has none, and split_host_port refuses it") {
  const auto hp = split_authority("example.com");
  REQUIRE(hp);
  CHECK(hp->host == "example.com");
  CHECK(hp->port.empty());
  CHECK_FALSE(hp->has_port);
  CHECK_FALSE(split_host_port("example.com"));
  CHECK_FALSE(split_host_port("[::1]"));
}

TEST_CASE("text that cannot be split reliably is refused") {
  CHECK_FALSE(split_authority("::1:8080"));  // unbracketed IPv6
  CHECK_FALSE(split_authority("a:1:2"));
  CHECK_FALSE(split_authority("[::1"));       // unclosed
  CHECK_FALSE(split_authority("[::1]8080"));  // no ':' after ']'
  CHECK_FALSE(split_authority("[::1]:80:90"));
  const auto empty_port = split_host_port("host:");
  REQUIRE(empty_port);  // split, but parse_port refuses the empty port
  CHECK_FALSE(parse_port(empty_port->port));
}

TEST_CASE("a port is one to five digits up to 65535") {
  CHECK(parse_port("0") == uint16_t{0});
  CHECK(parse_port("80") == uint16_t{80});
  CHECK(parse_port("65535") == uint16_t{65535});
  CHECK(parse_port("00080") == uint16_t{80});
  CHECK_FALSE(parse_port("65536"));
  CHECK_FALSE(parse_port("99999"));
  CHECK_FALSE(parse_port("008080"));  // six digits: a typo more often than a port
  CHECK_FALSE(parse_port(""));
  CHECK_FALSE(parse_port("+80"));
  CHECK_FALSE(parse_port("8o"));
  CHECK_FALSE(parse_port(" 80"));
}

TEST_CASE("brackets go around IPv6 hosts only and come off bracketed text") {
  CHECK(bracket_host("::1") == "[::1]");
  CHECK(bracket_host("10.0.0.1") == "10.0.0.1");
  CHECK(bracket_host("redis.internal") == "redis.internal");
  CHECK(unbracket_host("[::1]") == "::1");
  CHECK(unbracket_host("::1") == "::1");
  CHECK(unbracket_host("example.com") == "example.com");
  CHECK(unbracket_host("[") == "[");
}

}  // namespace
}  // namespace sg
