// The Redis client under the Redis session store: one hiredis asynchronous connection on a
// worker's libuv loop, with deadlines per command, reconnects, Sentinel discovery and failover,
// and Lua scripts by EVALSHA. It knows nothing of sessions: RedisStore (redis_store.h) maps
// sessions onto the commands it sends.
//
// Ownership and threading: one RedisClient per worker, created, used and closed on that worker's
// loop thread only (usable() excepted). It owns one hiredis asynchronous connection attached to
// the loop (redis_dial.h), plus a few uv handles (timers, an idle handle); nothing blocks on
// Redis. Commands are pipelined on the one connection; replies come back in order. The commands
// queued in one loop turn leave in that turn, together in one write (redis_dial.h).
//
// Reply handlers run on the loop, never synchronously inside send/eval: a reply, a timeout, or
// (while disconnected) the next loop iteration completes them. Every handler runs exactly once;
// close() completes the ones still waiting, with a null reply, synchronously inside close().
// A handler receives the reply, or nullptr for any failure: an error reply (except NOSCRIPT and
// WRONGTYPE, which say something about the command and not the connection: the caller reads
// those), a timeout, a lost connection, a closed client.
//
// Failure handling:
// - A command without a reply within `timeout` completes with nullptr. Its connection is then
//   suspect: usable() turns false until the next reply; when the oldest unanswered command has
//   waited `patience` (max(4 x timeout, 200 ms)) the connection is dropped and re-opened.
// - While not connected, commands fail at once (next loop iteration): nothing queues. At most
//   kMaxInFlight commands wait for replies; beyond that they fail too.
// - A command sent with OnDrop::kRetryOnce whose connection dropped before its reply (not one
//   that timed out) is sent once more on the next connection, if that is ready before the
//   command's deadline. For idempotent reads only: a write may have run before the drop.
// - Reconnects use capped exponential backoff with jitter (50 ms doubling to 2 s); a connection
//   counts only after AUTH (password_file, read at each attempt so a rotated secret is picked up)
//   and SELECT (database) succeeded, within `patience`.
// - With sentinels, each attempt asks the sentinels in turn for master_name's address
//   (SENTINEL get-master-addr-by-name), connects there and checks ROLE is master; a lost
//   connection, or a READONLY reply after a failover, starts a new discovery. While connected,
//   the sentinels are asked again every kSentinelWatchInterval, and a new answer moves the
//   client to the new master.
// - Scripts: every script given to the constructor is SCRIPT LOADed at connect; eval() sends
//   EVALSHA, and a NOSCRIPT reply is retried once with EVAL (the body).
//
// Metrics (WorkerMetrics, may be null): redis_commands, redis_errors, redis_timeouts,
// redis_rejected, redis_reconnects, redis_connected, redis_command_duration. Logs are prefixed
// with RedisClientOptions::log_name: "redis store:" (the store's connection, as operators know
// it), or "redis events:" for the session-end subscriber (redis_session_events.h).
//
// Lifetime: call close() before destroying the client (the destructor does if you did not).
// After close() the client holds no open uv handle, so the worker's loop can finish; the handle
// memory is freed by the close callbacks, so the client may be destroyed at once.
#pragma once

#include <uv.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <initializer_list>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "proxy_core/config/config.h"
#include "proxy_core/ops/metrics.h"

struct redisAsyncContext;
struct redisReply;

namespace sg {

// A Lua script the client loads at connect and runs with eval().
struct RedisScript {
  const char* name;  // for logs
  std::string body;
  std::string sha1;  // lowercase hex, as EVALSHA wants it
};

// Where and how to connect (the [store.redis] keys that are about the connection).
struct RedisClientOptions {
  std::string address;  // host:port or a unix socket path (without sentinels)
  std::vector<std::string> sentinels;
  std::string master_name;
  std::string password_file;
  uint32_t database = 0;
  Millis timeout{500};  // per command; > 0
  // What the logs call this connection ("redis store: connected to ..."): the store's
  // connections, or the session-end subscriber ("redis events").
  std::string log_name = "redis store";
};

class RedisClient {
 public:
  // Bounds the replies one worker waits for: 50 ms of a very busy worker, far from normal use.
  static constexpr size_t kMaxInFlight = 8192;
  static constexpr Millis kMinBackoff{50};
  static constexpr Millis kMaxBackoff{2000};
  static constexpr Millis kMinPatience{200};
  // With sentinels: how often a connected worker asks where the master is (see watch_master).
  static constexpr Millis kSentinelWatchInterval{1000};
  // Free command records kept for reuse: more than a loop turn's commands in usual traffic.
  static constexpr size_t kMaxSparePending = 256;

  // Receives the reply, or nullptr for any failure (see above).
  using ReplyHandler = std::function<void(const redisReply*)>;
  enum class OnDrop { kFail, kRetryOnce };

  // `metrics` may be null; it and the scripts must outlive the client.
  RedisClient(uv_loop_t* loop, RedisClientOptions options, WorkerMetrics* metrics,
              std::vector<const RedisScript*> scripts);
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // Before start(): makes this client a subscriber (redis_client_subscribe.cc). Every time a
  // connection is ready (the first, after a reconnect, after a Sentinel failover) it sends
  // SUBSCRIBE `channel`, and each message's payload goes to `on_message` on the loop. A
  // subscribed connection takes no other command (Redis refuses them): send nothing else on it.
  // Messages published while no connection was subscribed are lost (the caller has its own
  // catch-up: session_follower.h's periodic check).
  // `payload` is the message's third element as Redis sent it: a string for PUBLISH, an array of
  // keys (or a null) for tracking invalidations.
  using MessageHandler = std::function<void(const redisReply* payload)>;
  void subscribe(std::string channel, MessageHandler on_message);
  // Before start(), with subscribe(): each new connection first asks its CLIENT ID, then
  // subscribes, and `on_subscribed(id)` runs when Redis confirmed the subscription (the id is
  // what another connection's CLIENT TRACKING ... REDIRECT names).
  // `name` (not empty: no spaces) is set by CLIENT SETNAME before CLIENT ID, so that another
  // connection can check with CLIENT LIST ID that the id names this very connection.
  void on_subscribed(std::function<void(long long client_id)> fn, std::string name = {}) {
    on_subscribed_ = std::move(fn);
    subscriber_name_ = std::move(name);
  }
  // Before start(): `fn(true)` when a connection became ready (after the handshake; for a
  // subscriber, after the subscription is confirmed), `fn(false)` when a ready connection is
  // lost or dropped (not on close()). Runs on the loop, possibly inside a reply handler or
  // inside read_now().
  void on_link(std::function<void(bool up)> fn) { on_link_ = std::move(fn); }
  // Reads what the server has sent so far and runs its handlers now, instead of when the loop
  // next polls the socket (the store's local cache: an invalidation already here is applied
  // before a cached record is served). True when the socket was read to its end; false while
  // not ready, when the connection was found lost, or when more than kMaxReadsNow reads of
  // hiredis's 16 KiB were waiting (the rest is read later: the caller must not rely on it).
  // REQUIRES: not called from inside one of this client's own handlers.
  bool read_now();
  static constexpr int kMaxReadsNow = 64;
  // Starts connecting (returns at once; usable() turns true when connected). Call once.
  void start();
  // Drops the connection, completes waiting handlers with nullptr and closes every handle. Later
  // commands complete synchronously with nullptr. Idempotent.
  // REQUIRES: not called from inside one of this client's reply handlers.
  void close();

  // Sends one command (its arguments); `on_reply` runs exactly once, later.
  void send(std::initializer_list<std::string_view> args, ReplyHandler on_reply,
            OnDrop on_drop = OnDrop::kFail);
  void send(const std::vector<std::string>& args, ReplyHandler on_reply,
            OnDrop on_drop = OnDrop::kFail);
  // The same with the command already in RESP, as format_command makes it (an array of bulk
  // strings): for a hot command whose fixed part the caller formats once (the store's HGETALL).
  void send_formatted(std::string_view command, ReplyHandler on_reply,
                      OnDrop on_drop = OnDrop::kFail);
  // EVALSHA `script` with args (KEYS count, keys, ARGV); on NOSCRIPT, once more as EVAL.
  void eval(const RedisScript& script, std::vector<std::string> args, ReplyHandler on_reply);

  // True while connected, handshake done, and no command has timed out since the last reply.
  // The one method that may be called from any thread.
  bool usable() const;
  // "host:port" or socket path of the server currently connected to (sentinel: the master).
  const std::string& server() const { return server_; }

 private:
  // kIdle: waiting for the next attempt. kDiscovering: asking a sentinel. kHandshake: connecting
  // and AUTH/SELECT/ROLE-or-PING queued. kReady: commands flow. kClosed: close() was called.
  enum class State { kIdle, kDiscovering, kHandshake, kReady, kClosed };
  struct Pending;
  struct Retry {
    std::string command;  // formatted
    ReplyHandler on_reply;
    uint64_t deadline_ms;
  };

  // Commands (redis_client.cc), formatted in RESP. `internal` marks handshake commands, which are
  // sent before kReady, see error replies themselves and have no per-command deadline (patience
  // covers them).
  void send_command(std::string_view command, ReplyHandler on_reply, bool internal, OnDrop on_drop);
  void send_internal(std::initializer_list<std::string_view> args, ReplyHandler on_reply);
  void complete(Pending* p, const redisReply* reply);
  // Pending records are reused (one per command on the returning-visit path): spare_ keeps the
  // free ones, up to kMaxSparePending.
  Pending* new_pending();
  void release(Pending* p);
  void send_retries();
  void defer(std::function<void()> fn);
  void run_deferred();
  void arm_command_timer();
  void on_command_timer();
  static void reply_trampoline(redisAsyncContext* ac, void* reply, void* privdata);

  // Connection life (redis_client_connection.cc).
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
  void on_phase_timeout();
  void watch_master();
  static void sentinel_trampoline(redisAsyncContext* ac, void* reply, void* privdata);
  static void watch_trampoline(redisAsyncContext* ac, void* reply, void* privdata);
  static void connect_trampoline(const redisAsyncContext* ac, int status);
  static void disconnect_trampoline(const redisAsyncContext* ac, int status);
  // Subscriber mode (redis_client_subscribe.cc).
  void send_subscribe();
  static void message_trampoline(redisAsyncContext* ac, void* reply, void* privdata);

  uv_loop_t* loop_;
  RedisClientOptions opts_;
  uint64_t timeout_ms_;
  uint64_t patience_ms_;
  WorkerMetrics* metrics_;
  std::vector<const RedisScript*> scripts_;

  // Atomic only so that usable() may be read from another thread (readiness on the admin
  // listener); everything else touches them on the loop thread.
  std::atomic<State> state_{State::kIdle};
  std::atomic<bool> stalled_{false};  // a command timed out and no reply came since
  bool started_ = false;
  bool was_ready_ = false;    // for the reconnect counter and recovery logs
  bool logged_down_ = false;  // one warning per outage, not one per attempt
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
  std::vector<Retry> retries_;      // reads whose connection dropped, until their deadline
  std::vector<Pending*> spare_;     // free Pending records (new_pending)
  std::string format_buf_;          // the command being sent (send), capacity reused
  std::vector<std::function<void()>> deferred_;

  // Heap-allocated so that they may outlive the client until their close callbacks ran.
  uv_timer_t* command_timer_ = nullptr;  // the oldest command's deadline, or patience
  uv_timer_t* phase_timer_ = nullptr;    // backoff wait, or the connect/handshake deadline
  uv_timer_t* watch_timer_ = nullptr;    // the sentinel master watch
  uv_idle_t* deferred_idle_ = nullptr;   // runs deferred_ on the next loop iteration

  // Tells on_link_ of a lost ready connection (once).
  void link_lost();
  void confirm_subscription();

  std::string subscribe_channel_;  // empty: not a subscriber
  MessageHandler on_message_;
  std::function<void(long long)> on_subscribed_;
  std::string subscriber_name_;  // CLIENT SETNAME of each subscribed connection, empty: none
  long long client_id_ = 0;  // CLIENT ID of the current connection (subscriber with on_subscribed_)
  std::function<void(bool)> on_link_;
  bool link_up_ = false;  // on_link_(true) ran for the current connection
};

}  // namespace sg
