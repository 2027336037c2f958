// The asynchronous session store interface. The request path talks only to this, so a networked
// store (Redis) drops in beside the embedded memory store without changing the proxy.
//
// Keys are SHA-256 digests of tokens (TokenHash): a store never sees or keeps a usable token.
// Threading: a store object is used from one worker's loop thread (Redis: one connection per
// worker) or is internally thread-safe (memory store, shared by all workers, sharded locks).
// Callbacks: may run synchronously inside the call (memory store) or later on the caller's loop
// (Redis). Callers must handle both.
//
// Integrity rules every implementation keeps (the gateway's promise that logout and revocation
// are real):
// - Writes are per-field changes (SessionChange) applied atomically in the store, and only to a
//   session that still exists under that key: no write ever re-creates a destroyed session, and a
//   slow request can never put back an attribute that another request removed meanwhile.
// - A refresh writes only last-seen (and the expiry that follows from it).
// - rotate() leaves the old key behind as a rotation marker: for `grace_ms` it still resolves to
//   the same session (parallel requests of a page that left with the old token); after that, and
//   until the session's idle timeout from the rotation, a lookup of it is reported as a replay so
//   that the caller can count it, log it and, by policy, end the session.
// - destroy() reports kOk only when the store confirmed the session is gone.
// - Records read back from storage (snapshot file, Redis) are checked like directives before they
//   are returned (session_record_check.h): a record that fails is skipped and counted, never
//   returned.
//
// The user index (issue 14). A store is built with a UserIndexPolicy naming the attribute whose
// value is the session's user (session.user_attribute, folded). A session whose attribute of that
// name is set belongs to that user's index; a change that sets another value moves it, one that
// removes it takes it out; destroy, expiry, eviction and rotation (the key changes, the session
// stays) keep the index in step. The rules every implementation keeps:
// - list_user() never returns a session that is not live (destroyed, expired, or no longer that
//   user's); the index holds at most one entry per live indexed session (it never grows beyond
//   the sessions stored).
// - Joining an index and the cap (SessionChange::max_per_user) are decided in the same atomic
//   step as the write: two concurrent logins cannot both pass a cap of one. kLimitReached (the
//   policy is reject) writes nothing; with evict-oldest the oldest sessions (by created time)
//   leave the index in that step and the store destroys them before it answers.
// - destroy_user() and destroy_handle() end the sessions they report and report only those. A
//   session that joins the index while destroy_user() runs may survive it (the caller can repeat).
// - A store without a user index answers the user operations with kUnavailable through the
//   defaults below; writes still work there. Both stores have one: the memory store
//   (memory_store_users.h) and Redis (one Lua script per operation, redis_scripts.h).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace sg {

using TokenHash = std::array<uint8_t, 32>;      // SHA-256 of the 43-character token
using SessionHandle = std::array<uint8_t, 16>;  // random, shown to the application in hex

struct SessionRecord {
  SessionHandle handle{};
  int64_t created_ms = 0;    // unix epoch milliseconds
  int64_t last_seen_ms = 0;  // last refresh (throttled to once per tenth of idle_timeout)
  std::vector<std::pair<std::string, std::string>> attributes;  // sorted by name, unique names
  // Recorded at creation for the user's session list (admin API), never changed afterwards and
  // bounded (kMaxClientAddressBytes, kMaxUserAgentBytes; printable ASCII, see
  // session_record_check.h). Empty when unknown.
  std::string client_address;
  std::string user_agent;
};

inline constexpr size_t kMaxClientAddressBytes = 64;  // an IPv6 text address is at most 45
inline constexpr size_t kMaxUserAgentBytes = 256;     // longer ones are cut (never refused)

// Which attribute names a session's user (the store is built with it). `attribute` is the
// folded name (session_attributes.h); empty = no user index.
struct UserIndexPolicy {
  std::string attribute = "user";
};

// One session of a user's list: never its key or token.
struct UserSession {
  SessionHandle handle{};
  int64_t created_ms = 0;
  int64_t last_seen_ms = 0;
  std::string client_address;
  std::string user_agent;
};

enum class OnUserLimit { kEvictOldest, kReject };

// A change to one stored session, applied atomically by the store and only while the session
// exists under the key given. Attribute names are already folded and validated (the gate applies
// session_attributes.h's rules); the store enforces the count and byte bounds on the result,
// because two concurrent changes that each fit may not fit together.
struct SessionChange {
  int64_t last_seen_ms = 0;  // > 0: new last-seen time (the idle expiry moves with it)
  std::vector<std::pair<std::string, std::string>> set;  // attributes to set (name, value)
  std::vector<std::string> remove;                       // attribute names to remove
  uint32_t max_attributes = 0;       // bounds on the result; 0 = unbounded (tests, tools)
  uint32_t max_attribute_bytes = 0;  // names + values of the whole session
  // Sessions per user (session.max_per_user): applied only when the change makes the session
  // join a user's index (sets the user attribute to a user it was not in). 0 = no cap.
  uint32_t max_per_user = 0;
  OnUserLimit on_limit = OnUserLimit::kEvictOldest;
  bool empty() const { return last_seen_ms <= 0 && set.empty() && remove.empty(); }
};

enum class StoreStatus {
  kOk,        // done; for lookup, `record` holds the valid session
  kNotFound,  // unknown, expired, or (for writes) no live session under that key: nothing written
  kUnavailable,   // the store could not answer (Redis down, timeout): apply on_unavailable
  kRejected,      // modify/rotate: the result would exceed the attribute bounds; nothing written
  kLimitReached,  // modify/rotate: the change would add the session to a user index that is at
                  // max_per_user, and on_limit is reject; nothing written
};

enum class ExpiryKind { kNone, kIdle, kAbsolute };

// How the key a lookup was given relates to rotation.
enum class RotatedKey {
  kNo,       // the key is the session's live key (or unknown)
  kInGrace,  // rotated away less than grace_ms ago: status kOk, `record` is the live session
  kReplay,   // rotated away and the grace window is over: status kNotFound (a possible stolen
             // cookie); `record`, when the session still lives, says whose it was
};

struct LookupResult {
  StoreStatus status = StoreStatus::kNotFound;
  std::optional<SessionRecord> record;
  ExpiryKind expired = ExpiryKind::kNone;  // set with kNotFound when the session had expired
  RotatedKey rotated = RotatedKey::kNo;
  // With kInGrace, and with kReplay when `record` is set: the session's live key now. Writes for
  // that session go to this key (modify/destroy on a rotated key find nothing).
  TokenHash live_key{};
};

// Told of every session a store removes by itself or on request: destroyed, expired (when the
// store finds it expired), evicted. The memory store calls it under a shard lock, from any thread,
// so an implementation takes only leaf locks and never calls the store (session_end_bus.h).
// Live connections of the session are closed from there (issue 14).
class SessionEndSink {
 public:
  virtual void session_ended(const SessionHandle& handle) = 0;
  // The session stored under `key` ended (a Redis destroy names the key it removed).
  virtual void session_key_ended(const TokenHash& key) = 0;

 protected:
  ~SessionEndSink() = default;
};

class SessionStore {
 public:
  using LookupCallback = std::function<void(LookupResult)>;
  using DoneCallback = std::function<void(StoreStatus)>;
  // kOk with the sessions concerned (listed, or destroyed), kUnavailable when the store cannot
  // answer or has no user index.
  using UsersCallback = std::function<void(StoreStatus, std::vector<UserSession>)>;

  virtual ~SessionStore() = default;

  // Finds a valid session, following a rotation marker inside its grace window (see
  // LookupResult). Expired sessions are reported as kNotFound (with `expired` set) and removed.
  // Never writes last-seen: that is modify().
  virtual void lookup(const TokenHash& key, int64_t now_ms, LookupCallback done) = 0;
  // The same lookup when the store can answer without waiting (the memory store): true, and
  // `out` (given default-constructed) holds what lookup() would have passed to its callback. False
  // (the default, a store that waits on I/O): nothing done, call lookup(). The session gate tries
  // it first: a returning visit then builds no callback (a std::function whose captures do not
  // fit inline: one allocation per request).
  virtual bool lookup_now(const TokenHash& key, int64_t now_ms, LookupResult& out) {
    (void)key;
    (void)now_ms;
    (void)out;
    return false;
  }
  // Stores a new session under `key` (replacing nothing: keys are fresh random tokens).
  // kUnavailable if `key` is already present (a 256-bit collision: fail closed).
  virtual void create(const TokenHash& key, const SessionRecord& record, DoneCallback done) = 0;
  // Applies `change` atomically to the live session under `key`. kNotFound (nothing written) when
  // no live session has that key: destroyed, expired, or rotated away (a rotation marker is not a
  // live key). kRejected when the result would break the bounds. now_ms sets the new expiry.
  virtual void modify(const TokenHash& key, const SessionChange& change, int64_t now_ms,
                      DoneCallback done) = 0;
  // Atomically moves the live session from old_key to new_key with `change` applied (login:
  // rotate and set the user in one step), keeping the stored handle and created time; old_key
  // becomes a rotation marker (grace_ms may be 0: then it is a replay marker at once).
  // kNotFound when old_key is not a live session's key (nothing changes), kUnavailable when
  // new_key is taken or the store cannot answer, kRejected as for modify.
  virtual void rotate(const TokenHash& old_key, const TokenHash& new_key,
                      const SessionChange& change, int64_t grace_ms, int64_t now_ms,
                      DoneCallback done) = 0;
  // Removes the session under `key` (its live key). kOk when the store confirmed it is gone (or
  // it was already absent); kUnavailable when that is not confirmed: the caller must not tell the
  // client it is logged out as if it were.
  virtual void destroy(const TokenHash& key, DoneCallback done) = 0;
  // True while the store can answer (readiness).
  virtual bool usable() const = 0;

  // The user index (see the top of this file). `user` is an attribute value as stored.
  // Every live session of `user`, oldest first.
  virtual void list_user(const std::string& user, int64_t now_ms, UsersCallback done) {
    (void)user, (void)now_ms;
    done(StoreStatus::kUnavailable, {});
  }
  // Destroys every live session of `user` except the one whose live key is `*except` (when not
  // null); reports those it destroyed.
  virtual void destroy_user(const std::string& user, const TokenHash* except, int64_t now_ms,
                            UsersCallback done) {
    (void)user, (void)except, (void)now_ms;
    done(StoreStatus::kUnavailable, {});
  }
  // Destroys the indexed session with this handle (a session that belongs to no user is not
  // found this way: handles are indexed only with their user). kNotFound when there is none.
  virtual void destroy_handle(const SessionHandle& handle, int64_t now_ms, UsersCallback done) {
    (void)handle, (void)now_ms;
    done(StoreStatus::kUnavailable, {});
  }
};

}  // namespace sg
