#include "proxy_core/net/cidr.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace sg {
namespace {

// Every comparison happens in the 16-byte IPv6 space: an IPv4 address a.b.c.d is ::ffff:a.b.c.d
// (RFC 4291 §2.5.5.2) and an IPv4 block of length n is an IPv6 block of length 96 + n. A
// dual-stack socket reports IPv4 peers in exactly that form, so one comparison covers both kinds
// of listener, and "::/0" trusts IPv4 peers just as it does on a dual-stack socket.
constexpr std::array<uint8_t, 12> kV4MappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

std::array<uint8_t, 16> v4_mapped(const uint8_t* v4) {
  std::array<uint8_t, 16> out{};
  std::memcpy(out.data(), kV4MappedPrefix.data(), kV4MappedPrefix.size());
  std::memcpy(out.data() + 12, v4, 4);
  return out;
}

bool is_v4_mapped(const uint8_t* v6) {
  return std::memcmp(v6, kV4MappedPrefix.data(), kV4MappedPrefix.size()) == 0;
}

// Clears every bit after the first `prefix_length` bits, so that to_string() shows the network.
void mask_host_bits(uint8_t* bytes, size_t size, unsigned prefix_length) {
  for (size_t i = 0; i < size; ++i) {
    const unsigned first_bit = static_cast<unsigned>(i) * 8;
    if (first_bit >= prefix_length) {
      bytes[i] = 0;
    } else if (prefix_length - first_bit < 8) {
      bytes[i] &= static_cast<uint8_t>(0xff << (8 - (prefix_length - first_bit)));
    }
  }
}

bool prefix_equal(const std::array<uint8_t, 16>& a, const std::array<uint8_t, 16>& b,
                  unsigned bits) {
  const unsigned whole = bits / 8;
  if (std::memcmp(a.data(), b.data(), whole) != 0) return false;
  const unsigned rest = bits % 8;
  if (rest == 0) return true;
  const uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a[whole] & mask) == (b[whole] & mask);
}

}  // namespace

// For AF_INET blocks the address lives in address[0..3] and prefix_length is 0..32; the rest of
// `address` is zero. Host bits are cleared. A v4-mapped IPv6 block with a prefix of at least 96
// ("::ffff:10.0.0.0/104") is stored as the IPv4 block it denotes ("10.0.0.0/8").
std::optional<CidrBlock> CidrBlock::parse(std::string_view text) {
  std::string_view address_text = text;
  std::optional<unsigned> prefix;
  if (const size_t slash = text.find('/'); slash != std::string_view::npos) {
    address_text = text.substr(0, slash);
    const std::string_view digits = text.substr(slash + 1);
    // Three digits at most: 128 is the largest prefix, and "0000008" is not a sane spelling.
    if (digits.empty() || digits.size() > 3) return std::nullopt;
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
    prefix = value;
  }
  // inet_pton needs a NUL-terminated string; it also rejects zone ids ("fe80::1%eth0"), which
  // have no meaning for a peer address comparison.
  const std::string address_string(address_text);
  CidrBlock block;
  if (inet_pton(AF_INET, address_string.c_str(), block.address.data()) == 1) {
    block.family = AF_INET;
    block.prefix_length = prefix.value_or(32);
    if (block.prefix_length > 32) return std::nullopt;
    mask_host_bits(block.address.data(), 4, block.prefix_length);
    return block;
  }
  if (inet_pton(AF_INET6, address_string.c_str(), block.address.data()) == 1) {
    block.family = AF_INET6;
    block.prefix_length = prefix.value_or(128);
    if (block.prefix_length > 128) return std::nullopt;
    if (block.prefix_length >= 96 && is_v4_mapped(block.address.data())) {
      std::array<uint8_t, 16> v4{};
      std::memcpy(v4.data(), block.address.data() + 12, 4);
      block.address = v4;
      block.family = AF_INET;
      block.prefix_length -= 96;
      mask_host_bits(block.address.data(), 4, block.prefix_length);
      return block;
    }
    mask_host_bits(block.address.data(), 16, block.prefix_length);
    return block;
  }
  return std::nullopt;
}

bool CidrBlock::contains(const sockaddr* addr) const {
  if (addr == nullptr) return false;
  std::array<uint8_t, 16> peer{};
  if (addr->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(addr);
    peer = v4_mapped(reinterpret_cast<const uint8_t*>(&in->sin_addr.s_addr));
  } else if (addr->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(addr);
    std::memcpy(peer.data(), in6->sin6_addr.s6_addr, 16);
  } else {
    return false;  // unix sockets and anything else are never a trusted proxy
  }
  if (family == AF_INET) return prefix_equal(v4_mapped(address.data()), peer, 96 + prefix_length);
  return prefix_equal(address, peer, prefix_length);
}

std::string CidrBlock::to_string() const {
  char buffer[INET6_ADDRSTRLEN] = {};
  if (inet_ntop(family, address.data(), buffer, sizeof buffer) == nullptr) return {};
  return std::string(buffer) + "/" + std::to_string(prefix_length);
}

bool any_contains(const std::vector<CidrBlock>& blocks, const sockaddr* addr) {
  for (const CidrBlock& block : blocks) {
    if (block.contains(addr)) return true;
  }
  return false;
}

}  // namespace sg
