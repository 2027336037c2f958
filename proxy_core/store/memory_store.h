// The embedded session store: a sharded hash table in this process, shared by all workers.
//
// Threading: every method is thread-safe. Keys are spread over up to 64 shards, each with its own
// mutex, so workers rarely contend; a call holds at most one shard lock (rotate: two, taken in
// shard order). Callbacks run synchronously inside the call, after the lock is released, so a
// callback may call the store again.
//
// Expiry: lookup() checks both timeouts and removes what it finds expired. reclaim_some(), called
// from a worker's timer, walks each shard's least-recently-seen ends and frees idle-expired
// sessions and forgotten rotation markers a bounded number at a time; the request path never
// scans. The lists are kept in last-seen order except that a session promoted by a lookup enters
// the protected list with its last-seen of then; the gate refreshes last-seen at least every
// tenth of idle_timeout, so reclaim finds such a session at most that much later.
//
// Bound: at most max_sessions sessions. Each shard owns an equal share; a create in a full shard
// evicts one of that shard's sessions (leveldb's ShardedLRUCache shards the same way). With
// random keys the shards fill evenly, so eviction starts within a fraction of a percent of
// max_sessions. Small bounds use fewer shards (at least kMinSessionsPerShard each), so the LRU
// order is exact for tiny stores.
//
// Eviction is a segmented LRU, so that a flood of new visitors cannot log anyone out. A session
// starts in probation. It becomes protected when it comes back (a lookup() that finds it: the gate
// looks up only a token a client sent back, never the one it has just created) or holds
// attributes after a create, modify or rotate. A full shard evicts, in this order: an expired
// protected session at the protected tail, the least recently seen probation session, and only
// when the shard holds no probation session at all, the least recently seen protected one
// (counted as evicted_protected and logged at warn at most once per kProtectedEvictionWarnMs).
//
// Rotation markers (session_store.h): rotate() leaves {new key, grace_until = now + grace_ms} at
// the old key, forgotten at now + idle_timeout. Markers live beside the sessions in each shard and
// do NOT count toward max_sessions (a login must never evict a session); they are bounded on their
// own, per shard: max(the shard's share of max_sessions, kMinMarkersPerShard). About 150 bytes
// each, so the floor costs at most 64 x 1024 x 150 bytes = about 10 MB, and only while that many
// rotations happened within idle_timeout. The floor is there because markers are what keeps a
// logged-out first-visit token (create = "on_return") from being stored again, and anyone can
// make one with two requests (a first visit, then a logout): with a tiny max_sessions a handful
// of requests would push out a victim's marker. With the floor, an attacker has to keep about
// max(max_sessions, 1024 x shards) markers' worth of requests going within every idle_timeout
// (markers spread evenly over the shards, like keys), which /metrics shows. A full shard never
// refuses a marker (refusing would block logins and logouts): it forgets the marker closest to its
// forget_at, which is the oldest one since every marker lives the same idle_timeout. Such a drop
// is counted (markers_dropped) and logged at warn at most once per kProtectedEvictionWarnMs; the
// dropped old token is then unknown instead of a replay, and a dropped first-visit token would be
// accepted again (README "Session integrity", known limits).
// lookup() follows at most kMaxMarkerHops markers (a session rotated twice in a row). A marker
// holds only a key: a destroyed session's key is never reused, so a marker never reaches it again.
// In the grace window a chain that reaches no live session is plain kNotFound (rotated = kNo);
// after it, kNotFound with rotated = kReplay, and `record`/`live_key` when the session lives.
//
// Snapshot: sessions only. Rotation markers are not saved: a restart ends every grace window early
// (the old tokens are then unknown, not replays). The segment is not saved either: a loaded
// session is protected when it holds attributes. Every record read back is checked with
// check_session_record (session_record_check.h) and skipped and counted when it fails. The
// records carry no keyed MAC (a decision, for now): the file is 0600 in the gateway's own state
// directory, so only the gateway's user or root can write it, and either could as well read a MAC
// key file beside it; the check above already refuses everything a forged record could do to
// others (inject headers, split requests, live forever). What a MAC would add, refusing a forged
// but well-formed session, is left for a shared-directory deployment if one ever appears.
//
// Memory: a session without attributes costs one 80-byte node plus 8-byte index slots at a load
// factor of at most 3/4 (about 100 bytes); attributes live behind a pointer that is null when
// there are none. The client address and user agent recorded at creation live behind the same
// pointer (SessionExtra, memory_store_shard.h), the agent interned per shard: about 104 more bytes
// a session with an IPv4 address and a shared browser agent (tests/bench/session_store_bench).
// A session in a user index costs its entry there, about 83 bytes with four sessions per user
// (memory_store_users.h), beyond its user attribute (80 bytes for "user" = a short name).
//
// The user index (session_store.h, "The user index"): memory_store_users.h explains its locks.
// Session shard locks are taken before user shard locks, never after; the operations that read
// an index first copy its entries, release its lock, then visit each session under its own
// shard's lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "proxy_core/config/config.h"
#include "proxy_core/session/session_store.h"
#include "proxy_core/store/session_snapshot.h"

namespace sg {

namespace memory_store_detail {
struct Shard;
struct UserEntry;
class UserIndex;
}  // namespace memory_store_detail

class MemoryStore final : public SessionStore {
 public:
  static constexpr size_t kMaxShards = 64;
  static constexpr uint64_t kMinSessionsPerShard = 1024;
  static constexpr uint64_t kMinMarkersPerShard = 1024;
  static constexpr int kMaxMarkerHops = 4;
  static constexpr int64_t kProtectedEvictionWarnMs = 60 * 1000;

  struct Stats {
    uint64_t created = 0;
    uint64_t expired_idle = 0;
    uint64_t expired_absolute = 0;
    uint64_t rotated = 0;
    uint64_t destroyed = 0;
    uint64_t evicted = 0;            // removed to make room under max_sessions (both segments)
    uint64_t evicted_protected = 0;  // of those, sessions that had come back or held attributes
    uint64_t records_rejected = 0;   // snapshot records that failed check_session_record
    uint64_t active = 0;             // sessions held now (expired ones not yet reclaimed included)
    uint64_t markers = 0;            // rotation markers held now
    uint64_t markers_dropped = 0;    // markers forgotten before their time to stay in the bound
    uint64_t evicted_user_cap = 0;   // destroyed to keep a user within max_per_user (evict_oldest)
    uint64_t indexed = 0;            // sessions in a user index now
    uint64_t users = 0;              // users with at least one indexed session
  };

  // REQUIRES: timeouts > 0. max_sessions 0 is read as 1. `user_attribute` is the folded name of
  // the attribute that names a session's user (session_store.h, "The user index"); empty = none.
  MemoryStore(Millis idle_timeout, Millis absolute_timeout, uint64_t max_sessions,
              std::string user_attribute = "user");
  ~MemoryStore() override;
  MemoryStore(const MemoryStore&) = delete;
  MemoryStore& operator=(const MemoryStore&) = delete;

  // Valid = known, now - last_seen <= idle_timeout and now - created <= absolute_timeout. When
  // both are exceeded, the absolute timeout is the one reported. A hit promotes the session to
  // protected; a rotation marker is followed as session_store.h says.
  void lookup(const TokenHash& key, int64_t now_ms, LookupCallback done) override;
  // Always answers now (lookup() is this, then the callback).
  bool lookup_now(const TokenHash& key, int64_t now_ms, LookupResult& result) override;
  // kUnavailable if `key` is already present, as a session or a marker (a 256-bit collision: fail
  // closed, replace nothing). A record with attributes starts protected.
  void create(const TokenHash& key, const SessionRecord& record, DoneCallback done) override;
  // Applies `change` under the shard lock to the live (known, unexpired) session under `key`:
  // removes, then sets, then moves last-seen forward (never back). Bounds are checked on the
  // result only when the change sets something: a change that only removes or refreshes never
  // grows a session, so it is never refused.
  void modify(const TokenHash& key, const SessionChange& change, int64_t now_ms,
              DoneCallback done) override;
  // Moves the live session to new_key with `change` applied, in one critical section over both
  // shards, and leaves a marker at old_key. The session keeps its segment, and becomes protected
  // if it holds attributes afterwards.
  void rotate(const TokenHash& old_key, const TokenHash& new_key, const SessionChange& change,
              int64_t grace_ms, int64_t now_ms, DoneCallback done) override;
  // kOk when the session is gone (memory always confirms; an unknown key is already gone).
  // kNotFound for a rotation marker's key: that is not the live key, nothing is removed.
  void destroy(const TokenHash& key, DoneCallback done) override;
  bool usable() const override { return true; }
  // The user index (memory_store_users.h says how it is locked). Callbacks run inside the call.
  void list_user(const std::string& user, int64_t now_ms, UsersCallback done) override;
  void destroy_user(const std::string& user, const TokenHash* except, int64_t now_ms,
                    UsersCallback done) override;
  void destroy_handle(const SessionHandle& handle, int64_t now_ms, UsersCallback done) override;

  // Frees up to about `budget` idle- or absolute-expired sessions and forgotten markers, starting
  // at the shard after the one the previous call ended on. Returns how many sessions were freed.
  size_t reclaim_some(int64_t now_ms, size_t budget);

  // Before the workers start: told of every session removed (destroyed, expired, evicted, user
  // cap), under the shard's lock (session_store.h, SessionEndSink). Null: nobody is told.
  void set_end_sink(SessionEndSink* sink) { end_sink_.store(sink, std::memory_order_release); }

  Stats stats() const;
  size_t shard_count() const { return shard_count_; }

  // Writes every session (token hashes only) atomically to `path`, one shard at a time: each
  // session is written consistently, the file as a whole is not a single instant.
  SnapshotStatus save_snapshot(const std::string& path) const;
  // Adds the sessions from `path` that pass check_session_record with these bounds, are still
  // valid at now_ms and are not already present. A missing file is kMissing (a first start); a
  // damaged one is kCorrupt and the sessions read before the damage are kept (each is covered by
  // its own checksum). The status counts loaded and rejected records.
  SnapshotStatus load_snapshot(const std::string& path, int64_t now_ms, uint32_t max_attributes,
                               uint32_t max_attribute_bytes);

 private:
  using Shard = memory_store_detail::Shard;
  enum class Removal { kExpiredIdle, kExpiredAbsolute, kEvicted, kDestroyed, kUserCap };
  using UserEntry = memory_store_detail::UserEntry;

  Shard& shard_for(const TokenHash& key) const;
  size_t shard_index(const TokenHash& key) const;
  ExpiryKind expiry_of(int64_t created_ms, int64_t last_seen_ms, int64_t now_ms) const;
  void count_removal(Removal why);
  // Under the shard's lock: makes room for one more session (segmented LRU, see above). Returns
  // how many protected sessions it evicted, for warn_protected_evictions after the lock.
  uint64_t make_room(Shard& shard, int64_t now_ms);
  // Under the shard's lock: adds a session under a key that holds neither a session nor a
  // marker, making room first. False (nothing changed) when the key is taken.
  bool insert_new(Shard& shard, const TokenHash& key, SessionRecord&& record, int64_t now_ms,
                  uint64_t& protected_evicted);
  void warn_protected_evictions(uint64_t evicted_now, int64_t now_ms);
  void warn_markers_dropped(uint64_t dropped_now, int64_t now_ms);
  // Under the shard's lock: the slot of the live session under `key`, or kNoSlot; an expired one
  // found there is removed and reported in `expired`.
  size_t find_live(Shard& shard, const TokenHash& key, int64_t now_ms, ExpiryKind& expired);
  void insert_loaded(const TokenHash& key, SessionRecord&& record, int64_t now_ms,
                     uint64_t& loaded);
  // Under the shard's lock: removes the session in `slot` from the table and its user's index,
  // counted as `why`.
  void erase_session(Shard& shard, size_t slot, Removal why);
  void audit_removal(const SessionHandle& handle, const std::string* user, std::string_view client,
                     Removal why) const;
  // The value of the user attribute in `attrs`, or null.
  const std::string* user_of(const SessionAttributes* attrs) const;
  // Under the lock of the shard holding the session: moves its index entry from (old_user,
  // old_key) to (new_user, new_key) as a write changes them. False when joining new_user is
  // refused by the cap (nothing changed); sessions evicted by the cap are added to `evicted`.
  bool reindex(const std::string* old_user, const std::string* new_user, const TokenHash& old_key,
               const TokenHash& new_key, const UserEntry& entry, const SessionChange& change,
               std::vector<UserEntry>& evicted);
  // The user `change` makes the session join when it sets the user attribute, or null.
  const std::string* joined_user(const SessionChange& change) const;
  void visit_user(const std::string& user, int64_t now_ms, const TokenHash* except, bool destroy,
                  std::vector<UserSession>& out);
  void evict_for_cap(const std::vector<UserEntry>& evicted);
  void prune_user(const std::string& user, int64_t now_ms);

  const int64_t idle_ms_;
  const int64_t absolute_ms_;
  const std::string user_attribute_;
  std::unique_ptr<memory_store_detail::UserIndex> users_;
  size_t shard_count_ = 1;
  std::unique_ptr<Shard[]> shards_;
  std::atomic<size_t> reclaim_cursor_{0};

  std::atomic<uint64_t> created_{0};
  std::atomic<uint64_t> expired_idle_{0};
  std::atomic<uint64_t> expired_absolute_{0};
  std::atomic<uint64_t> rotated_{0};
  std::atomic<uint64_t> destroyed_{0};
  std::atomic<uint64_t> evicted_{0};
  std::atomic<uint64_t> evicted_protected_{0};
  std::atomic<uint64_t> records_rejected_{0};
  std::atomic<int64_t> active_{0};
  std::atomic<int64_t> markers_{0};
  std::atomic<uint64_t> protected_warned_at_{0};  // evicted_protected_ at the last warning
  std::atomic<int64_t> protected_warn_ms_{INT64_MIN};
  std::atomic<uint64_t> markers_dropped_{0};
  std::atomic<uint64_t> dropped_warned_at_{0};  // markers_dropped_ at the last warning
  std::atomic<int64_t> dropped_warn_ms_{INT64_MIN};
  std::atomic<uint64_t> evicted_user_cap_{0};
  std::atomic<SessionEndSink*> end_sink_{nullptr};
};

}  // namespace sg
