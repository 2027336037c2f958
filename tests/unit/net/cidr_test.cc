#include "proxy_core/net/cidr.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>

#include <cstring>

namespace {

sockaddr_in v4(const char* text) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  REQUIRE(inet_pton(AF_INET, text, &addr.sin_addr) == 1);
  return addr;
}

sockaddr_in6 v6(const char* text) {
  sockaddr_in6 addr{};
  addr.sin6_family = AF_INET6;
  REQUIRE(inet_pton(AF_INET6, text, &addr.sin6_addr) == 1);
  return addr;
}

bool contains(const char* block, const sockaddr_in& peer) {
  return sg::CidrBlock::parse(block)->contains(reinterpret_cast<const sockaddr*>(&peer));
}
bool contains(const char* block, const sockaddr_in6& peer) {
  return sg::CidrBlock::parse(block)->contains(reinterpret_cast<const sockaddr*>(&peer));
}

}  // namespace

TEST_CASE("CIDR blocks parse IPv4 and IPv6 with and without a prefix length") {
  CHECK(sg::CidrBlock::parse("10.0.0.0/8")->to_string() == "10.0.0.0/8");
  CHECK(sg::CidrBlock::parse("192.168.1.7")->to_string() == "192.168.1.7/32");
  CHECK(sg::CidrBlock::parse("::1")->to_string() == "::1/128");
  CHECK(sg::CidrBlock::parse("2001:db8::/32")->to_string() == "2001:db8::/32");
  CHECK(sg::CidrBlock::parse("0.0.0.0/0")->to_string() == "0.0.0.0/0");
  CHECK(sg::CidrBlock::parse("10.0.0.0/8")->family == AF_INET);
  CHECK(sg::CidrBlock::parse("::/0")->family == AF_INET6);
}

TEST_CASE("malformed CIDR blocks are refused") {
  for (const char* text : {"", "10.0.0.0/", "/8", "10.0.0.0/33", "::/129", "10.0.0.0/8/8",
                           "10.0.0.0/-1", "10.0.0.0/ 8", "10.0.0", "300.0.0.0/8", "fe80::1%eth0",
                           "example.com/8", "10.0.0.0/0008", "10.0.0.0/8 "}) {
    CAPTURE(text);
    CHECK_FALSE(sg::CidrBlock::parse(text).has_value());
  }
}

TEST_CASE("host bits after the prefix are cleared") {
  CHECK(sg::CidrBlock::parse("10.1.2.3/8")->to_string() == "10.0.0.0/8");
  CHECK(sg::CidrBlock::parse("10.1.2.3/12")->to_string() == "10.0.0.0/12");
  CHECK(sg::CidrBlock::parse("2001:db8::1/64")->to_string() == "2001:db8::/64");
}

TEST_CASE("an IPv4 block contains exactly the addresses under its prefix") {
  CHECK(contains("10.0.0.0/8", v4("10.255.1.2")));
  CHECK_FALSE(contains("10.0.0.0/8", v4("11.0.0.1")));
  CHECK(contains("172.16.0.0/12", v4("172.31.255.255")));
  CHECK_FALSE(contains("172.16.0.0/12", v4("172.32.0.0")));
  CHECK(contains("192.168.1.7", v4("192.168.1.7")));
  CHECK_FALSE(contains("192.168.1.7", v4("192.168.1.8")));
  CHECK(contains("0.0.0.0/0", v4("8.8.8.8")));
}

TEST_CASE("an IPv6 block contains exactly the addresses under its prefix") {
  CHECK(contains("2001:db8::/32", v6("2001:db8:ffff::1")));
  CHECK_FALSE(contains("2001:db8::/32", v6("2001:db9::1")));
  CHECK(contains("::1/128", v6("::1")));
  CHECK_FALSE(contains("::1/128", v6("::2")));
  CHECK(contains("fe80::/10", v6("febf::1")));
  CHECK_FALSE(contains("fe80::/10", v6("fec0::1")));
}

TEST_CASE("a v4-mapped IPv6 peer on a dual-stack socket matches IPv4 blocks") {
  CHECK(contains("10.0.0.0/8", v6("::ffff:10.1.2.3")));
  CHECK_FALSE(contains("10.0.0.0/8", v6("::ffff:11.1.2.3")));
  CHECK(contains("127.0.0.1", v6("::ffff:127.0.0.1")));
  // Only the v4-mapped form is IPv4: the same bits elsewhere in IPv6 are another address.
  CHECK_FALSE(contains("10.0.0.0/8", v6("::10.1.2.3")));
  CHECK_FALSE(contains("10.0.0.0/8", v6("2001:db8::a01:203")));
}

TEST_CASE("a v4-mapped IPv6 block is the IPv4 block it denotes") {
  const auto block = sg::CidrBlock::parse("::ffff:10.0.0.0/104");
  REQUIRE(block.has_value());
  CHECK(block->family == AF_INET);
  CHECK(block->to_string() == "10.0.0.0/8");
  CHECK(contains("::ffff:10.0.0.0/104", v4("10.9.9.9")));
}

TEST_CASE("IPv4 peers match IPv6 blocks that cover the v4-mapped range") {
  CHECK(contains("::/0", v4("192.0.2.1")));
  CHECK_FALSE(contains("::1/128", v4("127.0.0.1")));
  CHECK_FALSE(contains("2001:db8::/32", v4("192.0.2.1")));
}

TEST_CASE("peers that are not IP addresses are never contained") {
  sockaddr unix_peer{};
  unix_peer.sa_family = AF_UNIX;
  CHECK_FALSE(sg::CidrBlock::parse("0.0.0.0/0")->contains(&unix_peer));
  CHECK_FALSE(sg::CidrBlock::parse("0.0.0.0/0")->contains(nullptr));
}

TEST_CASE("any_contains is true when one block of the list contains the peer") {
  const std::vector<sg::CidrBlock> blocks = {*sg::CidrBlock::parse("10.0.0.0/8"),
                                             *sg::CidrBlock::parse("::1")};
  const sockaddr_in inside = v4("10.2.3.4");
  const sockaddr_in outside = v4("192.0.2.1");
  const sockaddr_in6 loopback = v6("::1");
  CHECK(sg::any_contains(blocks, reinterpret_cast<const sockaddr*>(&inside)));
  CHECK_FALSE(sg::any_contains(blocks, reinterpret_cast<const sockaddr*>(&outside)));
  CHECK(sg::any_contains(blocks, reinterpret_cast<const sockaddr*>(&loopback)));
  CHECK_FALSE(sg::any_contains({}, reinterpret_cast<const sockaddr*>(&inside)));
}
