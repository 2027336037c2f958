// CIDR blocks (IPv4 and IPv6) for server.trusted_proxies. Pure logic, no I/O.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sg {

struct CidrBlock {
  int family = AF_INET;  // AF_INET or AF_INET6
  std::array<uint8_t, 16> address{};
  unsigned prefix_length = 0;

  // "10.0.0.0/8", "::1/128", or a bare address (a /32 or /128). nullopt when malformed.
  static std::optional<CidrBlock> parse(std::string_view text);
  // True when `addr` (sockaddr_in or sockaddr_in6; v4-mapped v6 counts as v4) is inside.
  bool contains(const sockaddr* addr) const;
  std::string to_string() const;
};

bool any_contains(const std::vector<CidrBlock>& blocks, const sockaddr* addr);

}  // namespace sg
