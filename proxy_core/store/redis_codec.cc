#include "proxy_core/store/redis_codec.h"

#include <openssl/evp.h>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace sg {
namespace {

// Every byte's two digits, and every character's value as a digit (-1: none): a lookup per byte
// instead of shifts, masks and range tests per digit (a returning visit writes the 32-byte digest
// and reads the 16-byte handle: callgrind counted ~12 instructions a byte before).
struct HexTables {
  char pair[256][2];
  int8_t value[256];
  constexpr HexTables() : pair(), value() {
    constexpr char kDigits[] = "0123456789abcdef";
    for (int b = 0; b < 256; ++b) {
      pair[b][0] = kDigits[b >> 4];
      pair[b][1] = kDigits[b & 0xf];
      value[b] = -1;  // uppercase too: we only ever write lowercase
    }
    for (int d = 0; d < 16; ++d)
      value[static_cast<unsigned char>(kDigits[d])] = static_cast<int8_t>(d);
  }
};
constexpr HexTables kHex;

void write_hex(const uint8_t* bytes, size_t n, char* p) {
  for (size_t i = 0; i < n; ++i)
    std::memcpy(p + 2 * i, kHex.pair[bytes[i]], 2);
}

// Grows `out` once and writes in place: push_back per digit made this a tenth of a returning
// visit's Redis cost (callgrind).
void append_hex(std::string& out, const uint8_t* bytes, size_t n) {
  const size_t at = out.size();
  out.resize(at + 2 * n);
  write_hex(bytes, n, out.data() + at);
}

bool parse_hex(std::string_view hex, uint8_t* out, size_t n) {
  if (hex.size() != 2 * n) return false;
  int bad = 0;  // any digit's -1 sets the sign bit: one test at the end
  for (size_t i = 0; i < n; ++i) {
    const int hi = kHex.value[static_cast<unsigned char>(hex[2 * i])];
    const int lo = kHex.value[static_cast<unsigned char>(hex[2 * i + 1])];
    bad |= hi | lo;
    out[i] = static_cast<uint8_t>(static_cast<unsigned>(hi) << 4 | static_cast<unsigned>(lo));
  }
  return bad >= 0;
}

// Plain decimal as we write it: an optional '-', digits, nothing else, within int64. Up to 18
// digits cannot overflow, and a timestamp has 13: only longer numbers take from_chars's checks.
bool parse_int64(std::string_view text, int64_t& out) {
  if (text.empty() || text.size() > 20) return false;
  const bool negative = text[0] == '-';
  const size_t digits = text.size() - (negative ? 1 : 0);
  if (digits == 0 || digits > 18) {
    const char* last = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), last, out);
    return ec == std::errc() && ptr == last;
  }
  int64_t v = 0;
  for (size_t i = negative ? 1 : 0; i < text.size(); ++i) {
    const unsigned d = static_cast<unsigned char>(text[i]) - unsigned{'0'};
    if (d > 9) return false;
    v = v * 10 + static_cast<int64_t>(d);
  }
  out = negative ? -v : v;
  return true;
}

// One field set at most once; `seen` guards against a crafted reply that repeats a field.
bool take_int(std::string_view value, bool& seen, int64_t& out) {
  if (seen) return false;
  seen = true;
  return parse_int64(value, out);
}

}  // namespace

std::string digest_hex(const TokenHash& key) {
  std::string out;
  out.reserve(key.size() * 2);
  append_hex(out, key.data(), key.size());
  return out;
}

void write_digest_hex(const TokenHash& key, char* out) {
  write_hex(key.data(), key.size(), out);
}

bool parse_digest_hex(std::string_view hex, TokenHash& out) {
  return parse_hex(hex, out.data(), out.size());
}

std::string handle_hex(const SessionHandle& handle) {
  std::string out;
  append_hex(out, handle.data(), handle.size());
  return out;
}

bool parse_handle_hex(std::string_view hex, SessionHandle& out) {
  return parse_hex(hex, out.data(), out.size());
}

std::string redis_session_key(std::string_view prefix, const TokenHash& key) {
  std::string out;
  out.reserve(prefix.size() + key.size() * 2);
  out.append(prefix);
  append_hex(out, key.data(), key.size());
  return out;
}

std::string redis_user_index_id(std::string_view prefix, std::string_view user) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const unsigned char nul = 0;
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  EVP_DigestUpdate(ctx, prefix.data(), prefix.size());
  EVP_DigestUpdate(ctx, &nul, 1);
  EVP_DigestUpdate(ctx, user.data(), user.size());
  EVP_DigestFinal_ex(ctx, md, &n);
  EVP_MD_CTX_free(ctx);
  std::string out;
  append_hex(out, md, 16);
  return out;
}

std::string redis_user_index_key(std::string_view prefix, std::string_view id) {
  std::string out(prefix);
  out.append("{u:").append(id).append("}");
  return out;
}

std::string redis_handle_key(std::string_view prefix, const SessionHandle& handle) {
  return std::string(prefix).append("h:").append(handle_hex(handle));
}

std::string redis_expiry_schedule_key(std::string_view prefix) {
  return std::string(prefix).append("expiries");
}

std::string redis_schedule_member(const TokenHash& key, const SessionHandle& handle) {
  std::string out;  // one allocation: this is on every new visitor's path
  out.reserve(2 * key.size() + 1 + 2 * handle.size());
  append_hex(out, key.data(), key.size());
  out.push_back(':');
  append_hex(out, handle.data(), handle.size());
  return out;
}

std::vector<std::string> session_hash_fields(const SessionRecord& record) {
  std::vector<std::string> out;
  out.reserve(6 + 2 * record.attributes.size());
  std::string handle;
  append_hex(handle, record.handle.data(), record.handle.size());
  out.emplace_back(kFieldHandle);
  out.push_back(std::move(handle));
  out.emplace_back(kFieldCreated);
  out.push_back(std::to_string(record.created_ms));
  out.emplace_back(kFieldLastSeen);
  out.push_back(std::to_string(record.last_seen_ms));
  for (const auto& [name, value] : record.attributes) {
    out.push_back(std::string(kFieldAttributePrefix).append(name));
    out.push_back(value);
  }
  if (!record.client_address.empty()) {
    out.emplace_back(kFieldClientAddress);
    out.push_back(record.client_address);
  }
  if (!record.user_agent.empty()) {
    out.emplace_back(kFieldUserAgent);
    out.push_back(record.user_agent);
  }
  return out;
}

StoredEntry read_session_hash(const HashFields& fields, int64_t now_ms, uint32_t max_attributes,
                              uint32_t max_attribute_bytes) {
  StoredEntry e;
  if (fields.empty()) return e;
  e.kind = StoredKind::kMalformed;
  bool handle = false, created = false, seen = false, next = false, grace = false;
  bool address = false, agent = false, index = false;
  for (const auto& [field, value] : fields) {
    if (field.size() > kFieldAttributePrefix.size() &&
        field.substr(0, kFieldAttributePrefix.size()) == kFieldAttributePrefix) {
      e.record.attributes.emplace_back(field.substr(kFieldAttributePrefix.size()), value);
    } else if (field == kFieldHandle) {
      if (handle || !parse_hex(value, e.record.handle.data(), e.record.handle.size())) return e;
      handle = true;
    } else if (field == kFieldCreated) {
      if (!take_int(value, created, e.record.created_ms)) return e;
    } else if (field == kFieldLastSeen) {
      if (!take_int(value, seen, e.record.last_seen_ms)) return e;
    } else if (field == kFieldRotatedTo) {
      if (next || !parse_digest_hex(value, e.marker.next)) return e;
      next = true;
    } else if (field == kFieldGraceUntil) {
      if (!take_int(value, grace, e.marker.grace_until_ms)) return e;
    } else if (field == kFieldClientAddress) {
      if (address) return e;
      address = true;
      e.record.client_address = value;  // bounded by check_session_record below
    } else if (field == kFieldUserAgent) {
      if (agent) return e;
      agent = true;
      e.record.user_agent = value;
    } else if (field == kFieldUserIndex) {
      uint8_t id[16];  // only its form is checked: the scripts own it
      if (index || !parse_hex(value, id, sizeof id)) return e;
      index = true;
    } else {
      return e;  // unknown field (including "a:" with an empty name)
    }
  }
  if (next || grace) {
    // A marker is exactly r and g.
    if (next && grace && !handle && !created && !seen && !address && !agent && !index &&
        e.record.attributes.empty() && e.marker.grace_until_ms >= 0) {
      e.kind = StoredKind::kMarker;
    }
    return e;
  }
  if (!handle || !created || !seen) return e;
  std::sort(e.record.attributes.begin(), e.record.attributes.end());
  e.error = check_session_record(e.record, now_ms, max_attributes, max_attribute_bytes);
  e.kind = e.error == RecordError::kOk ? StoredKind::kSession : StoredKind::kInvalid;
  return e;
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

std::string redis_events_channel(std::string_view prefix) {
  std::string out(prefix);
  out += "events";
  return out;
}

std::string end_event_by_key(const TokenHash& key) {
  std::string out = "k:";
  append_hex(out, key.data(), key.size());
  return out;
}

std::string end_event_by_handle(const SessionHandle& handle) {
  std::string out = "h:";
  append_hex(out, handle.data(), handle.size());
  return out;
}

bool parse_end_event(std::string_view payload, bool& by_key, TokenHash& key,
                     SessionHandle& handle) {
  if (payload.size() < 2 || payload[1] != ':') return false;
  const std::string_view hex = payload.substr(2);
  if (payload[0] == 'k') {
    by_key = true;
    return parse_hex(hex, key.data(), key.size());
  }
  if (payload[0] == 'h') {
    by_key = false;
    return parse_hex(hex, handle.data(), handle.size());
  }
  return false;
}

}  // namespace sg
