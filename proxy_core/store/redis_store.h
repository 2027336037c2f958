// The Redis session store: sessions shared by every gateway instance behind a load balancer.
//
// Ownership and threading: one RedisStore per worker, created, used and closed on that worker's
// loop thread only. It owns one hiredis asynchronous connection attached to the loop through
// hiredis/adapters/libuv.h, plus a few uv handles (timers, an idle handle); nothing blocks on
// Redis. Commands are pipelined on the one connection; replies come back in order.
//
// Callbacks run on the loop, never synchronously inside lookup/create/modify/rotate/destroy:
// a reply, a timeout, or (while disconnected) the next loop iteration completes them. Every
// callback runs exactly once; close() completes the ones still waiting, with kUnavailable,
// synchronously inside close().
//
// Failure handling:
// - A command without a reply within `timeout` completes with kUnavailable. Its connection is
//   then suspect: usable() turns false until the next reply; when the oldest unanswered command
//   has waited `patience` (max(4 x timeout, 200 ms)) the connection is dropped and re-opened.
// - While not connected, commands fail at once (next loop iteration) with kUnavailable: nothing
//   queues. At most kMaxInFlight commands wait for replies; beyond that they fail too.
// - A lookup's HGETALL whose connection dropped before its reply (not one that timed out) is
//   sent once more on the next connection, if that is ready before the lookup's deadline: a
//   read is idempotent. Writes (the scripts) are never retried: the connection may have dropped
//   after the script ran, and a second run could apply a change twice or fail a rotation that
//   in fact succeeded (the new key now taken).
// - Reconnects use capped exponential backoff with jitter (50 ms doubling to 2 s); a connection
//   counts only after AUTH (password_file, read at each attempt so a rotated secret is picked up)
//   and SELECT (database) succeeded, within `patience`.
// - With sentinels, each attempt asks the sentinels in turn for master_name's address
//   (SENTINEL get-master-addr-by-name), connects there and checks ROLE is master; a lost
//   connection, or a READONLY reply after a failover, starts a new discovery.
//
// Data: one hash per session (redis_codec.h), changed only by Lua scripts (redis_scripts.h) that
// check and write in one atomic step. Commands per operation:
// - lookup: HGETALL key (one command per returning visit). A rotation marker is followed with
//   one more HGETALL per hop (at most kMaxMarkerHops), only on that rare path.
// - create: EVALSHA create (the key must not exist: HSET of the fields, PEXPIRE).
// - modify: EVALSHA modify (only a live session hash: HDEL/HSET of the changed fields, last seen
//   forward only, bounds on the result, PEXPIRE to min(s + idle, c + absolute) - now). Never
//   re-creates a destroyed or expired session: it writes nothing to a key that is not live.
// - rotate: EVALSHA rotate, touching two keys (old and new, as it always did; the store talks
//   to one master, not to Redis Cluster): old must be live and new absent; the change is
//   applied, the hash RENAMEd to new, and old becomes a marker {r, g} with PEXPIRE
//   max(idle_timeout, grace), so it expires by itself.
// - destroy: EVALSHA destroy (DEL, unless the key is a marker). kOk only on a reply that says the
//   key is gone; an error reply (READONLY, LOADING, ...), a timeout or a lost connection is
//   kUnavailable.
// Every script is SCRIPT LOADed at connect; a NOSCRIPT reply is retried once with EVAL.
// Everything read back passes read_session_hash (check_session_record with the configured
// bounds): a record that fails, or a key of another type, is not found, counted in
// sessiongate_store_records_rejected_total and logged at warn with a digest prefix only, at
// most one line per second per worker (whoever can write keys could otherwise flood the log).
// The TTL is the smaller of the remaining idle and absolute time, so Redis itself drops expired
// sessions; lookup re-checks both timeouts on the client with the caller's clock.
//
// Lifetime: call close() before destroying the store (the destructor does if you did not).
// After close() the store holds no open uv handle, so the worker's loop can finish; the handle
// memory is freed by the close callbacks, so the store object may be destroyed at once.
#pragma once

#include <uv.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "proxy_core/config/config.h"
#include "proxy_core/ops/log_limit.h"
#include "proxy_core/ops/metrics.h"
#include "proxy_core/session/session_store.h"

struct redisAsyncContext;
struct redisReply;

namespace sg {

struct RedisScript;

class RedisStore final : public SessionStore {
 public:
  // Bounds the replies one worker waits for: 50 ms of a very busy worker, far from normal use.
  static constexpr size_t kMaxInFlight = 8192;
  static constexpr Millis kMinBackoff{50};
  static constexpr Millis kMaxBackoff{2000};
  static constexpr Millis kMinPatience{200};
  // With sentinels: how often a connected worker asks where the master is (see watch_master).
  static constexpr Millis kSentinelWatchInterval{1000};

  // A lookup follows at most this many rotation markers (a session rotated that often within
  // one idle timeout is a loop or an attack).
  static constexpr int kMaxMarkerHops = 4;

  // REQUIRES: timeouts > 0, cfg.timeout > 0. `metrics` may be null; it must outlive the store.
  // max_attributes/max_attribute_bytes bound the records read back (0 = unbounded).
  RedisStore(uv_loop_t* loop, const RedisStoreConfig& cfg, Millis idle_timeout,
             Millis absolute_timeout, WorkerMetrics* metrics, uint32_t max_attributes,
             uint32_t max_attribute_bytes);
  ~RedisStore() override;
  RedisStore(const RedisStore&) = delete;
  RedisStore& operator=(const RedisStore&) = delete;

  // Starts connecting (returns at once; usable() turns true when connected). Call once.
  void start();
  // Drops the connection, completes waiting callbacks with kUnavailable and closes every handle.
  // Later calls to the store complete synchronously with kUnavailable. Idempotent.
  // REQUIRES: not called from inside one of this store's completion callbacks.
  void close();

  void lookup(const TokenHash& key, int64_t now_ms, LookupCallback done) override;
  void create(const TokenHash& key, const SessionRecord& record, DoneCallback done) override;
  void modify(const TokenHash& key, const SessionChange& change, int64_t now_ms,
              DoneCallback done) override;
  void rotate(const TokenHash& old_key, const TokenHash& new_key, const SessionChange& change,
              int64_t grace_ms, int64_t now_ms, DoneCallback done) override;
  void destroy(const TokenHash& key, DoneCallback done) override;
  // True while connected, handshake done, and no command has timed out since the last reply.
  // The one method that may be called from any thread.
  bool usable() const override;

  // "host:port" or socket path of the server currently connected to (sentinel: the master).
  const std::string& server() const { return server_; }

 private:
  // kIdle: waiting for the next attempt. kDiscovering: asking a sentinel. kHandshake: connecting
  // and AUTH/SELECT/ROLE-or-PING queued. kReady: commands flow. kClosed: close() was called.
  enum class State { kIdle, kDiscovering, kHandshake, kReady, kClosed };
  // Receives the reply, or nullptr for any failure (error reply, timeout, connection lost).
  using ReplyHandler = std::function<void(const redisReply*)>;
  struct Pending;
  // Where a lookup is along a chain of rotation markers.
  struct Follow {
    int hops = 0;           // markers followed so far
    bool in_grace = false;  // the first marker's grace window was still open
  };

  // Sends one command; `on_reply` runs exactly once, later. `internal` marks handshake commands,
  // which are sent before kReady and have no per-command deadline (patience covers them).
  // kRetryOnce: idempotent reads only (see "Failure handling" above).
  enum class OnDrop { kFail, kRetryOnce };
  void send(std::vector<std::string> args, ReplyHandler on_reply, bool internal = false,
            OnDrop on_drop = OnDrop::kFail);
  void defer(std::function<void()> fn);
  void run_deferred();

  void connect_next();  // from kIdle: discovery or direct connect
  void ask_sentinel();
  void connect_to(const std::string& address);
  void handshake(const std::string& password);
  void on_handshake_step(const redisReply* reply, const char* what, bool last);
  void connection_ready();
  // Abandons the current connection (or discovery) and schedules the next attempt.
  void drop_connection(const char* why);
  void lose_context(redisAsyncContext* ac);
  void schedule_reconnect();
  void arm_command_timer();
  void on_command_timer();
  void on_phase_timeout();
  void complete(Pending* p, const redisReply* reply);
  std::string key_of(const TokenHash& key) const;

  // Session operations (redis_store_ops.cc).
  // EVALSHA `script` with args (KEYS count, keys, ARGV); on NOSCRIPT, once more as EVAL.
  void eval(const RedisScript& script, std::vector<std::string> args, ReplyHandler on_reply);
  void on_lookup_reply(const TokenHash& key, const redisReply* reply, int64_t now_ms, Follow follow,
                       LookupCallback done);
  void change(const TokenHash& key, const SessionChange& change, int64_t now_ms, DoneCallback done);
  void move(const TokenHash& old_key, const TokenHash& new_key, const SessionChange& change,
            int64_t grace_ms, int64_t now_ms, DoneCallback done);
  void count_rejected(const TokenHash& key, const char* why);

  static void reply_trampoline(redisAsyncContext* ac, void* reply, void* privdata);
  static void sentinel_trampoline(redisAsyncContext* ac, void* reply, void* privdata);
  static void watch_trampoline(redisAsyncContext* ac, void* reply, void* privdata);
  void watch_master();
  static void connect_trampoline(const redisAsyncContext* ac, int status);
  static void disconnect_trampoline(const redisAsyncContext* ac, int status);

  uv_loop_t* loop_;
  RedisStoreConfig cfg_;
  int64_t idle_ms_;
  int64_t absolute_ms_;
  uint64_t timeout_ms_;
  uint64_t patience_ms_;
  WorkerMetrics* metrics_;
  uint32_t max_attributes_;
  uint32_t max_attribute_bytes_;

  // Atomic only so that usable() may be read from another thread (readiness on the admin
  // listener); everything else touches them on the loop thread.
  std::atomic<State> state_{State::kIdle};
  std::atomic<bool> stalled_{false};  // a command timed out and no reply came since
  bool started_ = false;
  bool was_ready_ = false;    // for the reconnect counter and recovery logs
  bool logged_down_ = false;  // one warning per outage, not one per attempt
  LogLimiter rejected_log_;   // crafted records: one warning per second (count_rejected)
  redisAsyncContext* ctx_ = nullptr;
  redisAsyncContext* sentinel_ctx_ = nullptr;
  redisAsyncContext* watch_ctx_ = nullptr;  // the master watch's question to a sentinel
  size_t watch_index_ = 0;
  size_t sentinel_index_ = 0;
  size_t sentinels_tried_ = 0;
  std::string server_;
  uint64_t backoff_ms_;
  std::minstd_rand jitter_;

  uint64_t timer_wake_ms_ = 0;      // when command_timer_ fires, while it is active
  std::deque<Pending*> in_flight_;  // in send order, which is reply order
  // Reads whose connection dropped, waiting for the next one until their deadline.
  struct Retry {
    std::vector<std::string> args;
    ReplyHandler on_reply;
    uint64_t deadline_ms;
  };
  std::vector<Retry> retries_;
  void send_retries();
  std::vector<std::function<void()>> deferred_;

  // Heap-allocated so that they may outlive the store until their close callbacks ran.
  uv_timer_t* command_timer_ = nullptr;  // the oldest command's deadline, or patience
  uv_timer_t* phase_timer_ = nullptr;    // backoff wait, or the connect/handshake deadline
  uv_timer_t* watch_timer_ = nullptr;    // the sentinel master watch
  uv_idle_t* deferred_idle_ = nullptr;   // runs deferred_ on the next loop iteration
};

}  // namespace sg
