// A logout that holds when the store fails (issue 13 item 4).
//
// When the store does not confirm a destroy (Redis refused DEL after a failover, READONLY, a
// timeout), the token must not stay usable while the client is told it logged out. Two parts:
//
// RefusedKeys: the process-wide set of session keys whose destroy is not confirmed yet. Every
//   worker's lookups consult it, so THIS INSTANCE refuses the token at once, whichever worker the
//   next request lands on. Thread-safe (any thread); bounded by `capacity`
//   (store.redis.max_pending_destroys), so a long store outage cannot grow it without limit.
//   Other instances sharing the store do not know about it: they refuse the token only once the
//   retry is confirmed (README, security model).
//
// PendingDestroyStore: a SessionStore wrapper around one worker's store (loop thread only).
//   - destroy(): kOk when the store confirmed, or when it did not but the key is now refused
//     locally and its retry queued; kUnavailable only when the set is full (the caller answers
//     503 + Retry-After). An unconfirmed destroy is counted and logged at warn with a digest
//     prefix (never the token).
//   - lookup/modify/rotate of a refused key answer kNotFound without asking the store; while any
//     key is refused, a lookup's answer is checked again (refused meanwhile, or a rotation marker
//     leading to a refused session: kNotFound). With nothing refused a lookup costs one atomic
//     load more than the inner store's.
//   - Retries: one uv timer per worker, batches of kRetryBatch, backoff from kFirstRetry doubling
//     to kMaxRetry while the store keeps failing. A confirmed retry (kOk, or kNotFound: already
//     gone) takes the key out of the refused set.
//   - close(): drain. One last attempt for every pending entry, then the timer is closed, the
//     entries still unconfirmed are logged (count), and `then` runs (it closes the inner store),
//     never from inside one of the inner store's callbacks (RedisStore::close forbids that): from
//     the timer's close callback when there is a timer. After that the wrapper holds no open uv
//     handle. The keys still pending stay refused for the rest of the process's life.
//
// Lifetime: owns the inner store. The RefusedKeys and WorkerMetrics outlive the wrapper.
// The memory store is not wrapped: its destroy is synchronous under the shard lock and always
// confirms (README).
#pragma once

#include <uv.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <shared_mutex>
#include <string>
#include <unordered_set>
#include <vector>

#include "proxy_core/ops/metrics.h"
#include "proxy_core/session/session_store.h"

namespace sg {

class RefusedKeys {
 public:
  explicit RefusedKeys(size_t capacity) : capacity_(capacity) {}
  RefusedKeys(const RefusedKeys&) = delete;
  RefusedKeys& operator=(const RefusedKeys&) = delete;

  enum class Added { kAdded, kAlready, kFull };  // kFull: nothing added
  Added add(const TokenHash& key);
  void remove(const TokenHash& key);
  // Lock-free while the set is empty (the normal case): the request path pays one atomic load.
  bool contains(const TokenHash& key) const;
  size_t size() const { return size_.load(std::memory_order_acquire); }
  size_t capacity() const { return capacity_; }

 private:
  struct KeyHash {
    size_t operator()(const TokenHash& k) const;
  };
  mutable std::shared_mutex mu_;
  std::unordered_set<TokenHash, KeyHash> keys_;
  std::atomic<size_t> size_{0};
  const size_t capacity_;
};

// The first hex digits of a session key, for logs: enough to find the key in Redis
// (key_prefix + hex), nothing that helps to forge the token (the key is its SHA-256).
std::string key_digest_prefix(const TokenHash& key);

class PendingDestroyStore final : public SessionStore {
 public:
  // Backoff while the store keeps failing: quick enough that a short failover ends the refusal
  // within a second or two, slow enough that an outage costs a few commands a second per worker.
  static constexpr uint64_t kFirstRetryMs = 100;
  static constexpr uint64_t kMaxRetryMs = 2000;
  // Destroys sent per retry round: 10,000 pending keys clear in ~40 rounds once the store is back,
  // without filling the Redis connection's in-flight bound (RedisClient::kMaxInFlight).
  static constexpr size_t kRetryBatch = 256;

  // REQUIRES: loop, inner, refused non-null. `metrics` may be null.
  PendingDestroyStore(uv_loop_t* loop, std::unique_ptr<SessionStore> inner, RefusedKeys* refused,
                      WorkerMetrics* metrics);
  ~PendingDestroyStore() override;
  PendingDestroyStore(const PendingDestroyStore&) = delete;
  PendingDestroyStore& operator=(const PendingDestroyStore&) = delete;

  void lookup(const TokenHash& key, int64_t now_ms, LookupCallback done) override;
  // The inner store's synchronous answer (the Redis store's local cache), refused keys removed.
  bool lookup_now(const TokenHash& key, int64_t now_ms, LookupResult& out) override;
  void create(const TokenHash& key, const SessionRecord& record, DoneCallback done) override;
  void modify(const TokenHash& key, const SessionChange& change, int64_t now_ms,
              DoneCallback done) override;
  void rotate(const TokenHash& old_key, const TokenHash& new_key, const SessionChange& change,
              int64_t grace_ms, int64_t now_ms, DoneCallback done) override;
  void destroy(const TokenHash& key, DoneCallback done) override;
  bool usable() const override { return inner_->usable(); }
  // The user index: forwarded (what they destroy, the store confirmed in the same script).
  void list_user(const std::string& user, int64_t now_ms, UsersCallback done) override {
    inner_->list_user(user, now_ms, std::move(done));
  }
  void destroy_user(const std::string& user, const TokenHash* except, int64_t now_ms,
                    UsersCallback done) override {
    inner_->destroy_user(user, except, now_ms, std::move(done));
  }
  void destroy_handle(const SessionHandle& handle, int64_t now_ms, UsersCallback done) override {
    inner_->destroy_handle(handle, now_ms, std::move(done));
  }

  // Drain (see the file comment). `then` runs once: before close() returns when nothing was ever
  // queued, otherwise on a later loop iteration.
  // REQUIRES: not called from inside one of this store's callbacks.
  void close(std::function<void()> then);
  // Keys this worker still has to destroy (queued or being retried).
  size_t pending() const { return queue_.size() + in_flight_; }

 private:
  StoreStatus defer_destroy(const TokenHash& key);
  void arm_timer(uint64_t delay_ms);
  static void on_timer(uv_timer_t* t);
  void start_round(bool final_attempt);
  void retry_one(const TokenHash& key);
  void on_retry(const TokenHash& key, StoreStatus s);
  void round_over();
  void finish_close();
  void set_pending_gauge();

  uv_loop_t* loop_;
  RefusedKeys* refused_;
  WorkerMetrics* metrics_;
  std::vector<TokenHash> queue_;  // refused by this worker, waiting for the next round
  size_t in_flight_ = 0;          // retries sent, not answered yet
  bool round_failed_ = false;     // some retry of the current round was not confirmed
  uint64_t backoff_ms_ = kFirstRetryMs;
  uv_timer_t* timer_ = nullptr;  // created on first need; freed by its close callback
  bool closing_ = false;         // close() was called
  bool final_sent_ = false;      // the drain's last attempt went out
  bool closed_ = false;          // finish_close() ran
  std::function<void()> then_;
  // Last: destroyed first, so that callbacks the inner store completes while it closes still find
  // every other member alive.
  std::unique_ptr<SessionStore> inner_;
};

}  // namespace sg
