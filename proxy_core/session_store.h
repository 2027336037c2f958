// The asynchronous session store interface. The request path talks only to this, so a networked
// store (Redis) drops in beside the embedded memory store without changing the proxy.
//
// Keys are SHA-256 digests of tokens (TokenHash): a store never sees or keeps a usable token.
// Threading: a store object is used from one worker's loop thread (Redis: one connection per
// worker) or is internally thread-safe (memory store, shared by all workers, sharded locks).
// Callbacks: may run synchronously inside the call (memory store) or later on the caller's loop
// (Redis). Callers must handle both.
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
};

enum class StoreStatus {
  kOk,           // done; for lookup, `record` holds the valid session
  kNotFound,     // unknown, or expired (idle or absolute): treat as no session
  kUnavailable,  // the store could not answer (Redis down, timeout): apply on_unavailable
};

enum class ExpiryKind { kNone, kIdle, kAbsolute };

struct LookupResult {
  StoreStatus status = StoreStatus::kNotFound;
  std::optional<SessionRecord> record;
  ExpiryKind expired = ExpiryKind::kNone;  // set with kNotFound when the session had expired
};

class SessionStore {
 public:
  using LookupCallback = std::function<void(LookupResult)>;
  using DoneCallback = std::function<void(StoreStatus)>;

  virtual ~SessionStore() = default;

  // Finds a valid session. Expired sessions are reported as kNotFound (with `expired` set) and
  // removed. Does not refresh last-seen: that is touch().
  virtual void lookup(const TokenHash& key, int64_t now_ms, LookupCallback done) = 0;
  // Stores a new session under `key` (replacing nothing: keys are fresh random tokens).
  virtual void create(const TokenHash& key, const SessionRecord& record, DoneCallback done) = 0;
  // Writes last_seen_ms and attributes of an existing session (refresh and attribute changes).
  virtual void update(const TokenHash& key, const SessionRecord& record, DoneCallback done) = 0;
  // Atomically moves the session from old_key to new_key: afterwards old_key finds nothing.
  virtual void rotate(const TokenHash& old_key, const TokenHash& new_key,
                      const SessionRecord& record, DoneCallback done) = 0;
  virtual void destroy(const TokenHash& key, DoneCallback done) = 0;
  // True while the store can answer (readiness).
  virtual bool usable() const = 0;
};

}  // namespace sg
