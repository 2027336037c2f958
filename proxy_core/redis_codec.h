// The Redis store's key and value encoding. Pure logic, no I/O: tested without a server.
//
// Key: key_prefix + lowercase hex of the token's SHA-256 (64 characters). One key per session, so
// a Redis Cluster deployment never needs a multi-slot command except for rotate.
//
// Value: one binary string (Redis strings are binary safe), integers little-endian:
//
//   offset  0  u8   format version (kValueVersion)
//   offset  1  16   handle
//   offset 17  i64  created_ms
//   offset 25  i64  last_seen_ms
//   offset 33  attributes, each: varint name length, name, varint value length, value
//
// The first kValueFixedBytes bytes (version, handle, created) never change for a session's life:
// the rotate script keeps the stored ones and appends the caller's tail (last seen, attributes),
// so a rotated session keeps its handle and created time even if the caller's record were stale.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "proxy_core/session_store.h"

namespace sg {

inline constexpr uint8_t kValueVersion = 1;
inline constexpr size_t kValueFixedBytes = 25;  // version + handle + created_ms

// key_prefix + hex(key).
std::string redis_session_key(std::string_view prefix, const TokenHash& key);

// The whole value (see above).
std::string encode_session_value(const SessionRecord& record);
// False (and `out` unspecified) when `value` is not a well-formed value of a known version.
bool decode_session_value(std::string_view value, SessionRecord& out);

// Which timeout a session has passed at now_ms, absolute first (as the memory store reports it).
ExpiryKind session_expiry(const SessionRecord& record, int64_t now_ms, int64_t idle_ms,
                          int64_t absolute_ms);

// Milliseconds until the session expires by either timeout, measured from now_ms; at least 1, so
// that a PX argument is always valid (an already expired record vanishes at once).
int64_t session_ttl_ms(const SessionRecord& record, int64_t now_ms, int64_t idle_ms,
                       int64_t absolute_ms);

}  // namespace sg
