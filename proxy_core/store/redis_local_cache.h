// A worker's copy of session records read from Redis, kept only while Redis promises to say when
// they change: server-assisted client-side caching (CLIENT TRACKING, Redis 6 and later). The
// store (redis_store.h, "The local cache") turns tracking on for its connection with the
// invalidations redirected to a second connection, and feeds this cache from both: the records
// its lookups read, and the keys Redis says changed. A returning visit whose record is here costs
// no Redis command at all.
//
// The rules that keep a cached record from ever outliving a change Redis told us about:
// - An invalidation removes the key's entry, and also spoils every read of that key that was in
//   flight when it arrived: the reply and the invalidation come on two connections, so the
//   invalidation of a change made after Redis ran the read can be read before the read's reply.
//   Such a reply answers its own lookup (the change raced that request) but is not kept.
// - clear() forgets everything and spoils every read in flight: the store calls it when either
//   connection is lost or tracking is not (yet) confirmed on the current pair, because Redis
//   drops tracking state with the connection and invalidations sent meanwhile are lost.
// - Every entry also expires `max_age` after it was read, whatever Redis says: a silently broken
//   invalidation connection (a network partition: no reset, no message) serves a session changed
//   elsewhere for at most that long.
// - Bounded: at most `capacity` entries; a full cache forgets its oldest entry first (entries
//   share one max_age, so the oldest is also the first to expire).
//
// Threading: one per worker (like its store), loop thread only. Not the place for expiry by
// idle or absolute timeout: the store checks those on every hit with the caller's clock.
#pragma once

#include <cstdint>
#include <deque>
#include <unordered_map>

#include "proxy_core/session/session_store.h"

namespace sg {

class RedisLocalCache {
 public:
  static constexpr size_t kDefaultCapacity = 16384;

  // Given to a read when it is sent; handed back with its reply.
  struct ReadTicket {
    uint64_t seq = 0;
    uint64_t clears = 0;
  };

  // REQUIRES: max_age_ms > 0, capacity > 0.
  explicit RedisLocalCache(int64_t max_age_ms, size_t capacity = kDefaultCapacity);

  // The record cached under `key`, or null (absent, or older than max_age at now_ms). The
  // pointer is valid until the next call that changes the cache.
  const SessionRecord* find(const TokenHash& key, int64_t now_ms);

  // A (tracked) read of `key` is being sent. Every begin_read gets exactly one finish_read.
  ReadTicket begin_read(const TokenHash& key);
  // A read of `key` was begun and not finished.
  bool read_in_flight(const TokenHash& key) const { return in_flight_.count(key) != 0; }
  // Its reply arrived: true when what it read may be kept (no invalidation of the key and no
  // clear() since begin_read).
  bool finish_read(const ReadTicket& ticket, const TokenHash& key);
  // Keeps `record` as read at now_ms (replacing an older copy). Only with a read whose
  // finish_read said true.
  void insert(const TokenHash& key, const SessionRecord& record, int64_t now_ms);

  // Redis says `key` changed (or this worker is about to change it): forget it.
  void invalidate(const TokenHash& key);
  // Forget everything.
  void clear();

  size_t size() const { return entries_.size(); }
  int64_t max_age_ms() const { return max_age_ms_; }

 private:
  struct KeyHasher {  // keys are SHA-256 digests: their bytes are hash values already
    size_t operator()(const TokenHash& key) const;
  };
  struct Entry {
    SessionRecord record;
    int64_t read_at_ms = 0;
    uint64_t id = 0;  // its place in order_ (an older place of the same key is stale)
  };
  struct InFlight {
    uint32_t reads = 0;
    uint64_t invalidated_at = 0;  // reads begun up to this sequence number are spoiled
  };
  void drop_oldest();

  int64_t max_age_ms_;
  size_t capacity_;
  uint64_t next_id_ = 0;
  uint64_t read_seq_ = 0;
  uint64_t clears_ = 0;
  std::unordered_map<TokenHash, Entry, KeyHasher> entries_;
  std::deque<std::pair<TokenHash, uint64_t>> order_;  // oldest first; erased entries stay as stale
  std::unordered_map<TokenHash, InFlight, KeyHasher> in_flight_;
};

}  // namespace sg
