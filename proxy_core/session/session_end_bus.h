// SessionEndBus: delivers "this session ended" to every worker of the process that watches it
// (session_watch.h), from whichever thread learnt it: the memory store removing a session under
// a shard lock (destroy, expiry found, eviction, user cap), or the Redis subscriber on worker 0.
//
// Each worker has an inbox: a queue under its own mutex, bounded (kInboxBound), and a wake-up
// (the worker's uv_async_send) called when the queue goes from empty to not empty. publish()
// skips a worker with one atomic load when it watches nothing, and otherwise asks its
// SessionWatch whether it watches that session, so removals of unwatched sessions (nearly all of
// them) queue nothing. A full inbox drops the handle and raises `overflowed`: the worker then
// checks every session it watches against the store (the periodic check, all of it at once), so
// an end is delayed, never lost.
//
// Threading: publish() from any thread; its locks (the watch's, the inbox's) are leaves, so a
// store may publish under its own locks. take() on the inbox's worker loop. attach() before the
// threads start; detach() on the worker's loop before it closes the async handle (no wake-up
// reaches a closed handle).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "proxy_core/session/session_store.h"
#include "proxy_core/session/session_watch.h"

namespace sg {

// One end as queued: by handle (the memory store, a Redis revocation by handle) or by the store
// key a Redis destroy removed.
struct SessionEnd {
  bool by_key = false;
  SessionHandle handle{};
  TokenHash key{};
};

class SessionEndBus final : public SessionEndSink {
 public:
  static constexpr size_t kInboxBound = 4096;

  explicit SessionEndBus(size_t inboxes, size_t bound = kInboxBound);
  void attach(size_t inbox, const SessionWatch* watch, std::function<void()> wake);
  void detach(size_t inbox);
  // Any thread.
  void session_ended(const SessionHandle& handle) override { publish(handle); }
  void session_key_ended(const TokenHash& key) override { publish_key(key); }
  void publish(const SessionHandle& handle);
  void publish_key(const TokenHash& key);
  // The inbox's loop: moves the queued ends into `out` (cleared first). True when some were
  // dropped since the last take (check every watched session).
  bool take(size_t inbox, std::vector<SessionEnd>& out);

 private:
  struct Inbox {
    std::mutex mutex;
    // Set by attach() and cleared by detach(); read without the lock for the fast path (the
    // watch is a member of a Worker, which outlives the bus's use).
    std::atomic<const SessionWatch*> watch{nullptr};
    std::function<void()> wake;
    std::vector<SessionEnd> queue;
    bool overflowed = false;
  };
  void deliver(const SessionEnd& end);

  const size_t bound_;
  std::vector<std::unique_ptr<Inbox>> inboxes_;
};

}  // namespace sg
