#include "proxy_core/net/host_port.h"

#include "proxy_core/base/ascii.h"

namespace sg {

std::optional<HostPort> split_authority(std::string_view text) {
  HostPort out;
  std::string_view rest;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    out.host = text.substr(1, close - 1);
    out.bracketed = true;
    rest = text.substr(close + 1);
  } else {
    const size_t colon = text.find(':');
    out.host = text.substr(0, colon);
    if (colon != std::string_view::npos) rest = text.substr(colon);
  }
  if (rest.empty()) return out;
  if (rest.front() != ':') return std::nullopt;
  out.port = rest.substr(1);
  out.has_port = true;
  // A second ':' means an unbracketed IPv6 address, or garbage: no reliable split either way.
  if (out.port.find(':') != std::string_view::npos) return std::nullopt;
  return out;
}

std::optional<HostPort> split_host_port(std::string_view text) {
  std::optional<HostPort> out = split_authority(text);
  if (!out || !out->has_port) return std::nullopt;
  return out;
}

std::optional<uint16_t> parse_port(std::string_view text) {
  if (text.empty() || text.size() > 5) return std::nullopt;
  uint32_t value = 0;
  for (char c : text) {
    if (!is_ascii_digit(c)) return std::nullopt;
    value = value * 10 + static_cast<uint32_t>(c - '0');
  }
  if (value > 65535) return std::nullopt;
  return static_cast<uint16_t>(value);
}

std::string bracket_host(std::string_view host) {
  if (host.find(':') == std::string_view::npos) return std::string(host);
  std::string out = "[";
  out += host;
  out += ']';
  return out;
}

std::string_view unbracket_host(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    return host.substr(1, host.size() - 2);
  return host;
}

}  // namespace sg
