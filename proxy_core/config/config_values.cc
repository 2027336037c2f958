// The value syntaxes of gateway.toml (durations, sizes, addresses) and diagnostic formatting.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <array>
#include <charconv>
#include <limits>

#include "proxy_core/base/ascii.h"
#include "proxy_core/config/config_loader.h"
#include "proxy_core/net/host_port.h"

namespace sg {
namespace {

// Reads a run of decimal digits at the front of `text` into `value`; false on overflow or when
// there is no digit. Advances `text` past the digits.
bool take_number(std::string_view& text, uint64_t& value) {
  size_t n = 0;
  while (n < text.size() && is_ascii_digit(text[n]))
    ++n;
  if (n == 0) return false;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + n, value);
  if (ec != std::errc() || end != text.data() + n) return false;
  text.remove_prefix(n);
  return true;
}

struct DurationUnit {
  std::string_view name;
  uint64_t millis;
};
// Largest first: parse_duration requires this order, format_duration emits it.
constexpr std::array<DurationUnit, 5> kDurationUnits = {{
    {"d", 86400000},
    {"h", 3600000},
    {"m", 60000},
    {"s", 1000},
    {"ms", 1},
}};

struct SizeUnit {
  std::string_view name;
  uint64_t bytes;
};
constexpr std::array<SizeUnit, 5> kSizeUnits = {{
    {"TiB", 1ull << 40},
    {"GiB", 1ull << 30},
    {"MiB", 1ull << 20},
    {"KiB", 1ull << 10},
    {"B", 1},
}};

bool is_ip(int family, std::string_view host) {
  std::array<uint8_t, 16> buffer{};
  return inet_pton(family, std::string(host).c_str(), buffer.data()) == 1;
}

// RFC 1123 host names; the last label may not be all digits (RFC 3696 §2), which also catches
// malformed IPv4 addresses such as "300.1.1.1".
bool is_dns_name(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  if (host.back() == '.') host.remove_suffix(1);  // a fully qualified "example.com."
  bool last_label_numeric = true;
  size_t label_start = 0;
  for (size_t i = 0; i <= host.size(); ++i) {
    if (i == host.size() || host[i] == '.') {
      const std::string_view label = host.substr(label_start, i - label_start);
      if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
        return false;
      }
      last_label_numeric = true;
      for (char c : label)
        last_label_numeric = last_label_numeric && is_ascii_digit(c);
      label_start = i + 1;
    } else if (!is_ascii_alpha(host[i]) && !is_ascii_digit(host[i]) && host[i] != '-') {
      return false;
    }
  }
  return !last_label_numeric;
}

}  // namespace

std::string ConfigDiagnostic::format() const {
  std::string out = file;
  if (line > 0) {
    out += ":" + std::to_string(line);
    if (column > 0) out += ":" + std::to_string(column);
  }
  return out + ": " + message;
}

std::optional<Millis> parse_duration(std::string_view text) {
  if (text.empty()) return std::nullopt;
  const uint64_t max_millis = static_cast<uint64_t>(std::numeric_limits<Millis::rep>::max());
  uint64_t total = 0;
  size_t next_unit = 0;  // index into kDurationUnits: units must strictly descend
  while (!text.empty()) {
    uint64_t amount = 0;
    if (!take_number(text, amount)) return std::nullopt;
    size_t n = 0;
    while (n < text.size() && is_ascii_alpha(text[n]))
      ++n;
    const std::string_view unit_name = text.substr(0, n);
    text.remove_prefix(n);
    size_t unit = next_unit;
    while (unit < kDurationUnits.size() && kDurationUnits[unit].name != unit_name)
      ++unit;
    if (unit == kDurationUnits.size()) return std::nullopt;  // no unit, unknown, or out of order
    next_unit = unit + 1;
    const uint64_t per = kDurationUnits[unit].millis;
    if (amount > (max_millis - total) / per) return std::nullopt;
    total += amount * per;
  }
  return Millis{static_cast<Millis::rep>(total)};
}

std::string format_duration(Millis value) {
  if (value.count() <= 0) return "0s";
  uint64_t rest = static_cast<uint64_t>(value.count());
  std::string out;
  for (const DurationUnit& unit : kDurationUnits) {
    if (rest >= unit.millis) {
      out += std::to_string(rest / unit.millis);
      out += unit.name;
      rest %= unit.millis;
    }
  }
  return out;
}

std::optional<uint64_t> parse_size(std::string_view text) {
  uint64_t amount = 0;
  if (!take_number(text, amount)) return std::nullopt;
  if (text.empty()) return amount;
  for (const SizeUnit& unit : kSizeUnits) {
    if (text == unit.name) {
      if (amount > std::numeric_limits<uint64_t>::max() / unit.bytes) return std::nullopt;
      return amount * unit.bytes;
    }
  }
  return std::nullopt;
}

std::string format_size(uint64_t bytes) {
  for (const SizeUnit& unit : kSizeUnits) {
    if (bytes != 0 && bytes % unit.bytes == 0) {
      return std::to_string(bytes / unit.bytes) + std::string(unit.name);
    }
  }
  return "0B";
}

std::optional<ListenEndpoint> parse_listen_address(std::string_view text) {
  const std::optional<HostPort> split = split_host_port(text);
  if (!split) return std::nullopt;
  std::string_view host = split->host;
  const std::optional<uint16_t> port = parse_port(split->port);
  if (!port) return std::nullopt;
  if (split->bracketed) {
    if (!is_ip(AF_INET6, host)) return std::nullopt;
  } else if (host == "*" || host.empty()) {
    host = "0.0.0.0";
  } else if (!is_ip(AF_INET, host)) {
    return std::nullopt;
  }
  return ListenEndpoint{std::string(host), *port};
}

std::optional<ListenEndpoint> parse_host_port(std::string_view text) {
  const std::optional<HostPort> split = split_host_port(text);
  if (!split) return std::nullopt;
  const std::string_view host = split->host;
  const std::optional<uint16_t> port = parse_port(split->port);
  if (!port || *port == 0) return std::nullopt;
  if (split->bracketed ? !is_ip(AF_INET6, host) : !(is_ip(AF_INET, host) || is_dns_name(host))) {
    return std::nullopt;
  }
  return ListenEndpoint{std::string(host), *port};
}

}  // namespace sg
