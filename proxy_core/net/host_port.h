// Splitting "host:port" and "[v6]:port" text (listen addresses, upstream and Redis servers, Host
// and Origin authorities) and the port number rule, written once. Pure string logic: no lookups,
// no sockets; resolving is socket_address.h.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sg {

struct HostPort {
  std::string_view host;   // without the brackets of an IP-literal ("::1", not "[::1]")
  std::string_view port;   // the text after the ':' (not checked: see parse_port); empty: none
  bool bracketed = false;  // the host was written as "[...]"
  bool has_port = false;   // a ':' followed the host
};

// "host", "host:port", "[v6]" or "[v6]:port" (RFC 3986 §3.2.2 authority without userinfo).
// Refuses an unbracketed host holding ':' ("::1:8080" cannot be split reliably), an unclosed '['
// and anything but ":port" after "]". The host may be empty (":8080"); the caller decides.
std::optional<HostPort> split_authority(std::string_view text);
// split_authority where the ":port" part is required.
std::optional<HostPort> split_host_port(std::string_view text);

// A port: one to five decimal digits, at most 65535 ("0008080" is a typo more often than a port).
// 0 is a number here; callers that need a connectable port refuse it.
std::optional<uint16_t> parse_port(std::string_view text);

// The host as written in "host:port" text: an IPv6 address (any host holding ':') in brackets.
std::string bracket_host(std::string_view host);
// "[::1]" -> "::1"; any other text unchanged.
std::string_view unbracket_host(std::string_view host);

}  // namespace sg
