// The embedded session store: a sharded hash table in this process, shared by all workers.
//
// Threading: every method is thread-safe. Keys are spread over up to 64 shards, each with its own
// mutex, so workers rarely contend; a call holds at most one shard lock (rotate: two, taken in
// shard order). Callbacks run synchronously inside the call, after the lock is released, so a
// callback may call the store again.
//
// Expiry: lookup() checks both timeouts and removes what it finds expired. reclaim_some(), called
// from a worker's timer, walks each shard's least-recently-seen end and frees idle-expired
// sessions a bounded number at a time; the request path never scans.
//
// Bound: at most max_sessions sessions. Each shard owns an equal share; a create in a full shard
// evicts that shard's least recently seen session (leveldb's ShardedLRUCache does the same). With
// random keys the shards fill evenly, so eviction starts within a fraction of a percent of
// max_sessions. Small bounds use fewer shards (at least kMinSessionsPerShard each), so the LRU
// order is exact for tiny stores.
//
// Memory: a session without attributes costs one 80-byte node plus 8-byte index slots at a load
// factor of at most 3/4 (about 100 bytes); attributes live behind a pointer that is null when
// there are none.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "proxy_core/config.h"
#include "proxy_core/session_snapshot.h"
#include "proxy_core/session_store.h"

namespace sg {

class MemoryStore final : public SessionStore {
 public:
  static constexpr size_t kMaxShards = 64;
  static constexpr uint64_t kMinSessionsPerShard = 1024;

  struct Stats {
    uint64_t created = 0;
    uint64_t expired_idle = 0;
    uint64_t expired_absolute = 0;
    uint64_t rotated = 0;
    uint64_t destroyed = 0;
    uint64_t evicted = 0;  // removed to make room under max_sessions
    uint64_t active = 0;   // sessions held now (expired ones not yet reclaimed included)
  };

  // REQUIRES: timeouts > 0. max_sessions 0 is read as 1.
  MemoryStore(Millis idle_timeout, Millis absolute_timeout, uint64_t max_sessions);
  ~MemoryStore() override;
  MemoryStore(const MemoryStore&) = delete;
  MemoryStore& operator=(const MemoryStore&) = delete;

  // Valid = known, now - last_seen <= idle_timeout and now - created <= absolute_timeout. When
  // both are exceeded, the absolute timeout is the one reported.
  void lookup(const TokenHash& key, int64_t now_ms, LookupCallback done) override;
  // kUnavailable if `key` is already present (a 256-bit collision: fail closed, replace nothing).
  void create(const TokenHash& key, const SessionRecord& record, DoneCallback done) override;
  // Sets last_seen_ms and attributes; the handle and created time stay those stored. The session
  // becomes the most recently seen only when last_seen_ms moves forward.
  void update(const TokenHash& key, const SessionRecord& record, DoneCallback done) override;
  // Moves the session to new_key with the stored handle and created time and the record's
  // last_seen_ms and attributes. kNotFound when old_key is unknown, kUnavailable when new_key is
  // taken; in both cases nothing changes.
  void rotate(const TokenHash& old_key, const TokenHash& new_key, const SessionRecord& record,
              DoneCallback done) override;
  void destroy(const TokenHash& key, DoneCallback done) override;
  bool usable() const override { return true; }

  // Frees up to about `budget` idle- or absolute-expired sessions, starting at the shard after the
  // one the previous call ended on. Returns how many were freed.
  size_t reclaim_some(int64_t now_ms, size_t budget);

  Stats stats() const;
  size_t shard_count() const { return shard_count_; }

  // Writes every session (token hashes only) atomically to `path`, one shard at a time: each
  // session is written consistently, the file as a whole is not a single instant.
  SnapshotStatus save_snapshot(const std::string& path) const;
  // Adds the sessions from `path` that are still valid at now_ms and not already present. A
  // missing file is kMissing (a first start); a damaged one is kCorrupt and the sessions read
  // before the damage are kept (each is covered by its own checksum).
  SnapshotStatus load_snapshot(const std::string& path, int64_t now_ms);

 private:
  struct Shard;
  enum class Removal { kExpiredIdle, kExpiredAbsolute, kEvicted, kDestroyed, kRotated };

  Shard& shard_for(const TokenHash& key) const;
  size_t shard_index(const TokenHash& key) const;
  ExpiryKind expiry_of(int64_t created_ms, int64_t last_seen_ms, int64_t now_ms) const;
  void count_removal(Removal why);
  // Under the shard's lock: makes room for one more session, evicting the LRU tail.
  void make_room(Shard& shard, int64_t now_ms);
  void insert_loaded(const TokenHash& key, SessionRecord&& record, int64_t now_ms,
                     uint64_t& loaded);

  const int64_t idle_ms_;
  const int64_t absolute_ms_;
  size_t shard_count_ = 1;
  std::unique_ptr<Shard[]> shards_;
  std::atomic<size_t> reclaim_cursor_{0};

  std::atomic<uint64_t> created_{0};
  std::atomic<uint64_t> expired_idle_{0};
  std::atomic<uint64_t> expired_absolute_{0};
  std::atomic<uint64_t> rotated_{0};
  std::atomic<uint64_t> destroyed_{0};
  std::atomic<uint64_t> evicted_{0};
  std::atomic<int64_t> active_{0};
};

}  // namespace sg
