// The Redis store's key and hash encoding, and the checks on what is read back. Pure logic, no
// I/O: tested (and fuzzed) without a server.
//
// Key: key_prefix + lowercase hex of the token's SHA-256 (64 characters). One key per session;
// only rotate touches two (old and new), as it did before the hash layout.
//
// Data: one Redis hash per key, so that a change is per field (HSET/HDEL of the fields it
// touches) and two requests changing different attributes never undo each other. A live session:
//
//   h     handle, 32 lowercase hex digits
//   c     created, unix epoch ms, decimal
//   s     last seen, unix epoch ms, decimal (only ever moves forward)
//   a:N   attribute N (a folded header token), its value
//   ip    client address recorded at creation (absent when unknown)
//   ua    user agent recorded at creation (absent when unknown)
//   u     the id of the user index the session is in (redis_scripts.h), only while indexed
//
// A rotation marker (what rotate leaves under the old key, with a TTL of idle_timeout):
//
//   r     the session's next key: 64 lowercase hex digits (the digest, without the prefix)
//   g     grace until, unix epoch ms, decimal
//
// Why a hash and not a versioned binary value: a per-field change needs the store to address the
// fields, and HGETALL still reads a whole session in one command. Anything else under the prefix
// (a value of another type, a missing or unknown field, a bad integer, a record that breaks
// check_session_record) is never returned as a session.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proxy_core/session/session_record_check.h"
#include "proxy_core/session/session_store.h"

namespace sg {

inline constexpr std::string_view kFieldHandle = "h";
inline constexpr std::string_view kFieldCreated = "c";
inline constexpr std::string_view kFieldLastSeen = "s";
inline constexpr std::string_view kFieldAttributePrefix = "a:";
inline constexpr std::string_view kFieldRotatedTo = "r";
inline constexpr std::string_view kFieldGraceUntil = "g";
inline constexpr std::string_view kFieldClientAddress = "ip";
inline constexpr std::string_view kFieldUserAgent = "ua";
inline constexpr std::string_view kFieldUserIndex = "u";

// The user index (redis_scripts.h). A user's id: the first 16 bytes of SHA-256(prefix, NUL,
// user) in lowercase hex. The user name never appears in a key (keys show in SLOWLOG, MONITOR,
// --bigkeys and key-space tooling; values already hold it). Salted by the prefix so that ids of
// one deployment are no lookup table for another; not keyed by a secret: whoever can read keys
// can read the a:user values beside them, and a secret would have to be shared by every instance
// and would orphan every index when it changes. Two users whose ids collide share an index key
// and nothing else: every reader checks the session's user.
std::string redis_user_index_id(std::string_view prefix, std::string_view user);
// prefix{u:<id>}: the sorted set of the user's session digests, scored by created time.
std::string redis_user_index_key(std::string_view prefix, std::string_view id);
// prefix h:<handle hex>: the digest of the session that has this handle (indexed sessions only).
std::string redis_handle_key(std::string_view prefix, const SessionHandle& handle);
// prefix expiries: the expiry schedule, a sorted set of members "<digest hex>:<handle hex>" scored
// by the session's deadline (redis_scripts.h, "The expiry schedule"). Never a session key: those
// are 64 hex digits after the prefix.
std::string redis_expiry_schedule_key(std::string_view prefix);
std::string redis_schedule_member(const TokenHash& key, const SessionHandle& handle);

// Lowercase hex of the digest (64 characters), and back (false unless exactly that form).
std::string digest_hex(const TokenHash& key);
// The same written at `out` (64 characters, no NUL): for a command formatted once (the lookup's).
void write_digest_hex(const TokenHash& key, char* out);
bool parse_digest_hex(std::string_view hex, TokenHash& out);
// The same for a session handle (32 characters).
std::string handle_hex(const SessionHandle& handle);
bool parse_handle_hex(std::string_view hex, SessionHandle& out);

// key_prefix + digest_hex(key).
std::string redis_session_key(std::string_view prefix, const TokenHash& key);

// The field/value arguments of a new session's hash (h, c, s, then a:N per attribute).
std::vector<std::string> session_hash_fields(const SessionRecord& record);

// A field and its value of an HGETALL reply.
using HashFields = std::vector<std::pair<std::string_view, std::string_view>>;

struct RotationMarker {
  TokenHash next{};  // the key the session moved to
  int64_t grace_until_ms = 0;
};

enum class StoredKind {
  kAbsent,     // no fields: no such key
  kSession,    // a session that passed check_session_record
  kMarker,     // a rotation marker
  kMalformed,  // not a hash of ours: unknown, missing or duplicated fields, bad integers or hex
  kInvalid,    // decoded, but check_session_record refused it (`error` says why)
};

struct StoredEntry {
  StoredKind kind = StoredKind::kAbsent;
  SessionRecord record;   // kSession
  RotationMarker marker;  // kMarker
  RecordError error = RecordError::kOk;
};

// Reads what HGETALL returned under a session key. A session comes back with its attributes
// sorted (a hash has no order) and only when check_session_record(record, now_ms, bounds) passes.
StoredEntry read_session_hash(const HashFields& fields, int64_t now_ms, uint32_t max_attributes,
                              uint32_t max_attribute_bytes);

// Which timeout a session has passed at now_ms, absolute first (as the memory store reports it).
ExpiryKind session_expiry(const SessionRecord& record, int64_t now_ms, int64_t idle_ms,
                          int64_t absolute_ms);

// Milliseconds until the session expires by either timeout, measured from now_ms; at least 1, so
// that a PEXPIRE argument is always valid (an already expired record vanishes at once).
int64_t session_ttl_ms(const SessionRecord& record, int64_t now_ms, int64_t idle_ms,
                       int64_t absolute_ms);

// Session ends on pub/sub (issue 14: live connections follow the session). Channel:
// key_prefix + "events" (a channel, not a key: channels have their own namespace). Payload:
// "k:" + digest_hex(key) after a confirmed destroy of that key, or "h:" + the handle's 32 hex
// digits when a revocation names sessions by handle. Never a token.
std::string redis_events_channel(std::string_view prefix);
std::string end_event_by_key(const TokenHash& key);
std::string end_event_by_handle(const SessionHandle& handle);
// Parses a payload: true with by_key and key, or !by_key and handle; false when malformed.
bool parse_end_event(std::string_view payload, bool& by_key, TokenHash& key, SessionHandle& handle);

}  // namespace sg
