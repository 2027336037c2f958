#include "proxy_core/redis_codec.h"

#include <algorithm>
#include <cstring>

namespace sg {
namespace {

constexpr char kHexDigits[] = "0123456789abcdef";

void put_i64(std::string& out, int64_t v) {
  uint64_t u = static_cast<uint64_t>(v);
  for (int i = 0; i < 8; ++i)
    out.push_back(static_cast<char>((u >> (8 * i)) & 0xff));
}

int64_t get_i64(const unsigned char* p) {
  uint64_t u = 0;
  for (int i = 7; i >= 0; --i)
    u = (u << 8) | p[i];
  return static_cast<int64_t>(u);
}

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

// Reads a LEB128 varint of at most 5 bytes (lengths beyond 4 GiB are corrupt, not big).
bool get_varint(std::string_view& in, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 35; shift += 7) {
    if (in.empty()) return false;
    const auto byte = static_cast<unsigned char>(in.front());
    in.remove_prefix(1);
    v |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

bool get_string(std::string_view& in, std::string& out) {
  uint64_t n = 0;
  if (!get_varint(in, n) || n > in.size()) return false;
  out.assign(in.substr(0, n));
  in.remove_prefix(n);
  return true;
}

}  // namespace

std::string redis_session_key(std::string_view prefix, const TokenHash& key) {
  std::string out;
  out.reserve(prefix.size() + key.size() * 2);
  out.append(prefix);
  for (uint8_t b : key) {
    out.push_back(kHexDigits[b >> 4]);
    out.push_back(kHexDigits[b & 0xf]);
  }
  return out;
}

std::string encode_session_value(const SessionRecord& record) {
  std::string out;
  size_t size = kValueFixedBytes + 8;
  for (const auto& [name, value] : record.attributes)
    size += name.size() + value.size() + 4;
  out.reserve(size);
  out.push_back(static_cast<char>(kValueVersion));
  out.append(reinterpret_cast<const char*>(record.handle.data()), record.handle.size());
  put_i64(out, record.created_ms);
  put_i64(out, record.last_seen_ms);
  for (const auto& [name, value] : record.attributes) {
    put_varint(out, name.size());
    out.append(name);
    put_varint(out, value.size());
    out.append(value);
  }
  return out;
}

bool decode_session_value(std::string_view value, SessionRecord& out) {
  if (value.size() < kValueFixedBytes + 8) return false;
  const auto* p = reinterpret_cast<const unsigned char*>(value.data());
  if (p[0] != kValueVersion) return false;
  std::memcpy(out.handle.data(), p + 1, out.handle.size());
  out.created_ms = get_i64(p + 17);
  out.last_seen_ms = get_i64(p + 25);
  out.attributes.clear();
  value.remove_prefix(kValueFixedBytes + 8);
  while (!value.empty()) {
    auto& [name, val] = out.attributes.emplace_back();
    if (!get_string(value, name) || name.empty() || !get_string(value, val)) return false;
  }
  return true;
}

ExpiryKind session_expiry(const SessionRecord& record, int64_t now_ms, int64_t idle_ms,
                          int64_t absolute_ms) {
  if (now_ms - record.created_ms > absolute_ms) return ExpiryKind::kAbsolute;
  if (now_ms - record.last_seen_ms > idle_ms) return ExpiryKind::kIdle;
  return ExpiryKind::kNone;
}

int64_t session_ttl_ms(const SessionRecord& record, int64_t now_ms, int64_t idle_ms,
                       int64_t absolute_ms) {
  const int64_t idle_left = idle_ms - (now_ms - record.last_seen_ms);
  const int64_t absolute_left = absolute_ms - (now_ms - record.created_ms);
  return std::max<int64_t>(1, std::min(idle_left, absolute_left));
}

}  // namespace sg
