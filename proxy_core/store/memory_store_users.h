// The memory store's per-user index (session_store.h, "The user index"): the data structure only,
// used by MemoryStore (memory_store_users.cc). Internal; not an API.
//
// Layout: user shards, each a mutex and a map user -> entries (one per indexed session, in the
// order they joined). An entry holds the session's live key, its handle (for destroy by handle)
// and its created time (the cap evicts the oldest): 56 bytes. The user itself is not stored on the
// session: it is the session's attribute, so an unindexed session pays nothing for the index.
//
// Locking: a user shard's mutex is the innermost lock of the store. It is taken while a session
// shard lock is held (joining, leaving and re-keying happen in the same critical section as the
// write that causes them, so an indexed session is never missing from its user's entries), and
// nothing else is ever locked while it is held. The operations that read an index and then touch
// sessions (list, destroy_user, destroy_handle, the cap's pruning) copy the entries under the user
// lock, release it, and only then lock each session's shard: so no thread waits for a session
// shard while holding a user lock, and the order session shard -> user shard has no cycle.
// An entry whose key no longer holds a live session of that user is skipped by every reader and
// removed when a reader meets its key gone (keys are never reused, so a gone key never returns).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "proxy_core/session/session_store.h"

namespace sg::memory_store_detail {

struct UserEntry {
  TokenHash key{};
  SessionHandle handle{};
  int64_t created_ms = 0;
};

class UserIndex {
 public:
  static constexpr size_t kShards = 16;

  // Adds `entry` to `user` (nothing when its key is there already). With cap > 0 and the user at
  // the cap: kReject refuses (false, nothing changes); kEvictOldest removes the oldest entries
  // (created time) until there is room and appends them to `evicted`, for the caller to destroy.
  bool join(const std::string& user, const UserEntry& entry, uint32_t cap, OnUserLimit on_limit,
            std::vector<UserEntry>& evicted);
  void leave(const std::string& user, const TokenHash& key);
  // The session moved from old_key to new_key (rotation) and stays the user's.
  void rekey(const std::string& user, const TokenHash& old_key, const TokenHash& new_key);
  std::vector<UserEntry> entries(const std::string& user) const;
  // The user and entry holding `handle`, scanning every user (an admin operation; O(entries)).
  bool find_handle(const SessionHandle& handle, std::string& user, UserEntry& entry) const;
  uint64_t size() const { return size_.load(std::memory_order_relaxed); }
  uint64_t users() const { return users_.load(std::memory_order_relaxed); }

 private:
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<std::string, std::vector<UserEntry>> users;
  };
  Shard& shard_for(const std::string& user) const {
    return shards_[std::hash<std::string>{}(user) % kShards];
  }
  void erase_at(Shard& shard, std::unordered_map<std::string, std::vector<UserEntry>>::iterator it,
                size_t index);

  std::unique_ptr<Shard[]> shards_ = std::make_unique<Shard[]>(kShards);
  std::atomic<uint64_t> size_{0};
  std::atomic<uint64_t> users_{0};
};

}  // namespace sg::memory_store_detail
