// SessionWatch: one worker's live connections that must end with their session (issue 14, "Live
// connections follow the session"): WebSocket tunnels, and exchanges (HTTP/1.1 or HTTP/2 streams)
// whose response runs long (server-sent events, a long poll, a big download). Such a connection
// outlives the request that opened it, so nothing else would notice its session being destroyed,
// revoked, evicted or expiring while it stays open.
//
// Pending watchers (responses). Most responses end within milliseconds: watching each would put
// two map inserts on every request. So an exchange is only *pending* while it runs: linked in O(1)
// into an intrusive list (add_pending / remove_pending, links in the watcher, nothing allocated),
// and the follower's 1 s timer calls promote_due, which makes every pending watcher older than
// the grace call watch_due() (the exchange then add()s itself). A response is watched between 1
// and 2 s after its request went upstream; one that ends before costs a link and an unlink.
//
// A watcher is added when its tunnel starts and removed when it ends, both O(1): watchers of one
// session form an intrusive list (the links live in the watcher, nothing is allocated for the
// second tunnel of a session), and sessions are a hash map plus a dense array for the periodic
// check's round robin (swap-remove), plus a map from each session's latest known store key to its
// handle (ends published by key). Nothing here runs on the request path: only tunnels are
// watched. Memory per watched session: two map nodes and one array slot (session_watch.cc).
//
// Threading: the owner is one worker's loop: add, remove, end, next_batch and update_key run
// there only. watches() may be called from any thread (a store removing a session, the bus
// fanning out an end to every worker): it takes the mutex that add and remove take only when
// they change the set of watched sessions. The owner reads the map without it (it is the only
// writer).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "proxy_core/session/session_store.h"

namespace sg {

class SessionWatcher {
 public:
  // The session ended (destroyed, revoked, expired, evicted): close the connection. Called on
  // the owner's loop, after the watcher was removed (the call may end the watcher's life).
  virtual void session_ended() = 0;
  // Pending for longer than the grace (promote_due): start watching now, or not. Called on the
  // owner's loop after the watcher left the pending list.
  virtual void watch_due() {}
  bool watching() const { return watched_; }
  bool pending() const { return pending_; }
  // When add_pending was last called (the caller's clock, milliseconds); kept after removal.
  int64_t pending_since_ms() const { return pending_since_ms_; }

 protected:
  SessionWatcher() = default;
  ~SessionWatcher() = default;
  SessionWatcher(const SessionWatcher&) = delete;
  SessionWatcher& operator=(const SessionWatcher&) = delete;

 private:
  friend class SessionWatch;
  SessionWatcher* prev_ = nullptr;
  SessionWatcher* next_ = nullptr;
  SessionHandle handle_{};
  bool watched_ = false;
  bool pending_ = false;
  SessionWatcher* pending_prev_ = nullptr;  // the pending list (SessionWatch::add_pending)
  SessionWatcher* pending_next_ = nullptr;
  int64_t pending_since_ms_ = 0;
};

// Handles are random and keys are SHA-256 digests: their bytes are hash values already.
struct SessionHandleHash {
  size_t operator()(const SessionHandle& h) const;
};
struct TokenHashHash {
  size_t operator()(const TokenHash& k) const;
};

class SessionWatch {
 public:
  // One watched session, for the periodic check: its handle and the store key to look up.
  struct Watched {
    SessionHandle handle{};
    TokenHash key{};
  };

  // `w` must not be watching. `key` is the session's live key when the tunnel started; a later
  // add for the same session replaces the key (the newer one is the likelier live key).
  void add(SessionWatcher* w, const SessionHandle& handle, const TokenHash& key);
  // Does nothing when `w` is not watching.
  void remove(SessionWatcher* w);
  // Ends every watcher of `handle`: removes them, then calls session_ended() on each. Returns how
  // many were told.
  size_t end(const SessionHandle& handle);
  // Up to `n` watched sessions, round robin from where the previous call stopped (each session
  // once per call at most).
  void next_batch(size_t n, std::vector<Watched>& out);
  // The session was found under another live key (rotated since the tunnel started).
  void update_key(const SessionHandle& handle, const TokenHash& key);

  // Ends the watchers of the session whose latest known key is `key` (a Redis destroy names the
  // key it removed, not the handle). Returns how many were told.
  size_t end_key(const TokenHash& key);

  // Pending watchers (see above). add_pending: `w` must not be pending; `since_ms` is its start on
  // the clock promote_due is given. remove_pending does nothing when `w` is not pending.
  void add_pending(SessionWatcher* w, int64_t since_ms);
  void remove_pending(SessionWatcher* w);
  // Calls watch_due() on every pending watcher whose since_ms <= now_ms - grace_ms, after
  // unlinking it. Walks the whole list (it holds the worker's running exchanges of stored
  // sessions: bounded by its connections). Returns how many were due.
  size_t promote_due(int64_t now_ms, int64_t grace_ms);
  size_t pending_count() const { return pending_count_; }  // owner only

  // Any thread.
  bool watches(const SessionHandle& handle) const;
  bool watches_key(const TokenHash& key) const;
  // Any thread, no lock: zero lets a publisher skip this worker with one atomic load.
  size_t sessions() const { return sessions_.load(std::memory_order_relaxed); }

  size_t watchers() const { return watchers_; }  // owner only

 private:
  struct Entry {
    SessionWatcher* head = nullptr;
    TokenHash key{};
    size_t slot = 0;  // index in order_
  };
  void erase_entry(const SessionHandle& handle, Entry& e);
  void set_key(const SessionHandle& handle, Entry& e, const TokenHash& key);

  mutable std::mutex mutex_;  // guards changes to map_'s membership against watches()
  std::unordered_map<SessionHandle, Entry, SessionHandleHash> map_;
  std::unordered_map<TokenHash, SessionHandle, TokenHashHash> by_key_;  // each entry's key
  std::vector<SessionHandle> order_;  // the watched sessions, dense, for next_batch
  size_t cursor_ = 0;
  size_t watchers_ = 0;
  SessionWatcher* pending_head_ = nullptr;
  size_t pending_count_ = 0;
  std::atomic<size_t> sessions_{0};
};

// Inline: on every forwarded request of a stored session (exchange_session_follow.cc).
inline void SessionWatch::add_pending(SessionWatcher* w, int64_t since_ms) {
  w->pending_ = true;
  w->pending_since_ms_ = since_ms;
  w->pending_prev_ = nullptr;
  w->pending_next_ = pending_head_;
  if (pending_head_ != nullptr) pending_head_->pending_prev_ = w;
  pending_head_ = w;
  ++pending_count_;
}

inline void SessionWatch::remove_pending(SessionWatcher* w) {
  if (!w->pending_) return;
  w->pending_ = false;
  --pending_count_;
  if (w->pending_prev_ != nullptr) w->pending_prev_->pending_next_ = w->pending_next_;
  if (w->pending_next_ != nullptr) w->pending_next_->pending_prev_ = w->pending_prev_;
  if (pending_head_ == w) pending_head_ = w->pending_next_;
  w->pending_prev_ = w->pending_next_ = nullptr;
}

}  // namespace sg
