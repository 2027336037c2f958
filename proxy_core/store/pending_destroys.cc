#include "proxy_core/store/pending_destroys.h"

#include <algorithm>
#include <cstring>
#include <mutex>
#include <utility>

#include "proxy_core/base/clock.h"
#include "proxy_core/ops/log.h"

namespace sg {

// ---- RefusedKeys ------------------------------------------------------------------------------

size_t RefusedKeys::KeyHash::operator()(const TokenHash& k) const {
  size_t h;  // the key is a SHA-256 digest: any 8 of its bytes are uniformly distributed
  std::memcpy(&h, k.data(), sizeof h);
  return h;
}

RefusedKeys::Added RefusedKeys::add(const TokenHash& key) {
  std::unique_lock lock(mu_);
  if (keys_.count(key) != 0) return Added::kAlready;
  if (keys_.size() >= capacity_) return Added::kFull;
  keys_.insert(key);
  size_.store(keys_.size(), std::memory_order_release);
  return Added::kAdded;
}

void RefusedKeys::remove(const TokenHash& key) {
  std::unique_lock lock(mu_);
  keys_.erase(key);
  size_.store(keys_.size(), std::memory_order_release);
}

bool RefusedKeys::contains(const TokenHash& key) const {
  if (size_.load(std::memory_order_acquire) == 0) return false;
  std::shared_lock lock(mu_);
  return keys_.count(key) != 0;
}

std::string key_digest_prefix(const TokenHash& key) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < 6; ++i) {
    out += kHex[key[i] >> 4];
    out += kHex[key[i] & 0xf];
  }
  return out;
}

// ---- PendingDestroyStore ----------------------------------------------------------------------

PendingDestroyStore::PendingDestroyStore(uv_loop_t* loop, std::unique_ptr<SessionStore> inner,
                                         RefusedKeys* refused, WorkerMetrics* metrics)
    : loop_(loop), refused_(refused), metrics_(metrics), inner_(std::move(inner)) {}

PendingDestroyStore::~PendingDestroyStore() {
  // Callbacks the inner store completes while it is destroyed (RedisStore closes itself) must not
  // queue anything or touch the loop: mark the wrapper closed first.
  closing_ = closed_ = true;
  inner_.reset();
  // timer_ is closed by finish_close() on the loop; a wrapper destroyed without close() (a worker
  // that never ran) never created it, since nothing was queued.
}

void PendingDestroyStore::lookup(const TokenHash& key, int64_t now_ms, LookupCallback done) {
  if (refused_->contains(key)) {
    done(LookupResult{});  // kNotFound, without asking the store
    return;
  }
  // Nothing refused (the normal case): the answer goes straight to the caller, with no wrapper
  // (one allocation and ~600 instructions less per Redis lookup). A key refused while this lookup
  // is in flight was refused by a logout that raced this request, like any request already past
  // its lookup; its writes are refused (modify/rotate below).
  if (refused_->size() == 0) {
    inner_->lookup(key, now_ms, std::move(done));
    return;
  }
  // Checked again on the answer: the key may have been refused while the lookup was in flight,
  // and a rotation marker leads to the live key, which may be the refused one.
  inner_->lookup(key, now_ms, [refused = refused_, key, done = std::move(done)](LookupResult r) {
    if (r.status == StoreStatus::kOk || r.record) {
      bool gone = refused->contains(key) ||
                  (r.rotated != RotatedKey::kNo && r.record && refused->contains(r.live_key));
      if (gone) r = LookupResult{};
    }
    done(std::move(r));
  });
}

bool PendingDestroyStore::lookup_now(const TokenHash& key, int64_t now_ms, LookupResult& out) {
  if (refused_->contains(key)) return true;  // `out` stays kNotFound, as lookup() answers
  // The local cache answers only a live key read directly (never through a marker), and this
  // worker forgot the key before it sent the destroy that refused it; checked anyway.
  if (!inner_->lookup_now(key, now_ms, out)) return false;
  if (refused_->size() != 0 && out.rotated != RotatedKey::kNo && out.record &&
      refused_->contains(out.live_key))
    out = LookupResult{};
  return true;
}

void PendingDestroyStore::create(const TokenHash& key, const SessionRecord& record,
                                 DoneCallback done) {
  // A key this instance refused is not written again until the store confirmed its destroy: a
  // first-visit token's retirement (create, rotate away, destroy) must not recreate it meanwhile.
  if (refused_->contains(key)) {
    done(StoreStatus::kUnavailable);
    return;
  }
  inner_->create(key, record, std::move(done));
}

void PendingDestroyStore::modify(const TokenHash& key, const SessionChange& change, int64_t now_ms,
                                 DoneCallback done) {
  if (refused_->contains(key)) {
    done(StoreStatus::kNotFound);  // no write to a session this instance has logged out
    return;
  }
  inner_->modify(key, change, now_ms, std::move(done));
}

void PendingDestroyStore::rotate(const TokenHash& old_key, const TokenHash& new_key,
                                 const SessionChange& change, int64_t grace_ms, int64_t now_ms,
                                 DoneCallback done) {
  // A logged-out session is not moved to a fresh token. Not kNotFound: the key is not known to
  // be a rotation marker (what a first-visit retirement reads kNotFound as) until the store has
  // confirmed the destroy; the caller learns that nothing is settled yet.
  if (refused_->contains(old_key)) {
    done(StoreStatus::kUnavailable);
    return;
  }
  inner_->rotate(old_key, new_key, change, grace_ms, now_ms, std::move(done));
}

void PendingDestroyStore::destroy(const TokenHash& key, DoneCallback done) {
  if (refused_->contains(key)) {
    done(StoreStatus::kOk);  // already refused here, its retry already queued
    return;
  }
  inner_->destroy(key, [this, key, done = std::move(done)](StoreStatus s) {
    if (s == StoreStatus::kUnavailable) s = defer_destroy(key);
    if (done) done(s);
  });
}

StoreStatus PendingDestroyStore::defer_destroy(const TokenHash& key) {
  if (closed_) return StoreStatus::kUnavailable;  // inside our destructor: nothing else is alive
  if (metrics_ != nullptr) metrics_->session_destroy_unconfirmed.add();
  const std::string digest = key_digest_prefix(key);
  if (closing_) {
    SG_LOG_WARN(
        "session store did not confirm the destroy of session key %s... (shutting down: "
        "not retried)",
        digest.c_str());
    return StoreStatus::kUnavailable;
  }
  const RefusedKeys::Added added = refused_->add(key);
  if (added == RefusedKeys::Added::kAlready) return StoreStatus::kOk;  // another worker retries it
  if (added == RefusedKeys::Added::kFull) {
    if (metrics_ != nullptr) metrics_->session_destroy_queue_full.add();
    SG_LOG_WARN(
        "session store did not confirm the destroy of session key %s... and %zu destroys "
        "already wait for a retry (store.redis.max_pending_destroys): answering 503",
        digest.c_str(), refused_->capacity());
    return StoreStatus::kUnavailable;
  }
  SG_LOG_WARN(
      "session store did not confirm the destroy of session key %s...: refused on this "
      "instance, retrying in the background",
      digest.c_str());
  queue_.push_back(key);
  set_pending_gauge();
  if (in_flight_ == 0) arm_timer(backoff_ms_);  // a round in flight re-arms when it is over
  return StoreStatus::kOk;
}

void PendingDestroyStore::arm_timer(uint64_t delay_ms) {
  if (timer_ == nullptr) {
    timer_ = new uv_timer_t;
    uv_timer_init(loop_, timer_);
    timer_->data = this;
  }
  // Re-arming keeps the earlier deadline: a new entry must not postpone waiting ones.
  if (uv_is_active(reinterpret_cast<uv_handle_t*>(timer_))) return;
  uv_timer_start(timer_, &PendingDestroyStore::on_timer, delay_ms, 0);
}

void PendingDestroyStore::on_timer(uv_timer_t* t) {
  static_cast<PendingDestroyStore*>(t->data)->start_round(/*final_attempt=*/false);
}

// Sends one batch (the drain's last attempt: everything). The batch leaves queue_ before the first
// destroy goes out, because the inner store may answer synchronously (and re-queue).
void PendingDestroyStore::start_round(bool final_attempt) {
  if (queue_.empty() || in_flight_ != 0) return;
  const size_t n = final_attempt ? queue_.size() : std::min(queue_.size(), kRetryBatch);
  std::vector<TokenHash> batch(queue_.begin(), queue_.begin() + static_cast<ptrdiff_t>(n));
  queue_.erase(queue_.begin(), queue_.begin() + static_cast<ptrdiff_t>(n));
  in_flight_ = n;
  round_failed_ = false;
  if (final_attempt) final_sent_ = true;
  for (const TokenHash& key : batch)
    retry_one(key);
}

// kNotFound means gone, or that the key is a rotation marker now: another instance rotated the
// session (its login) before our destroy landed, and the session lives on under its new key. So
// kNotFound looks the key up once more and ends the live session the marker leads to; only then
// is the key confirmed.
void PendingDestroyStore::retry_one(const TokenHash& key) {
  inner_->destroy(key, [this, key](StoreStatus s) {
    if (closed_ || s != StoreStatus::kNotFound) {
      on_retry(key, s);
      return;
    }
    inner_->lookup(key, unix_now_ms(), [this, key](LookupResult r) {
      if (closed_ || r.status == StoreStatus::kUnavailable) {
        on_retry(key, StoreStatus::kUnavailable);
        return;
      }
      if (r.rotated == RotatedKey::kNo || !r.record || r.live_key == key) {
        on_retry(key, StoreStatus::kOk);
        return;
      }
      inner_->destroy(r.live_key, [this, key](StoreStatus d) {
        on_retry(key, d == StoreStatus::kUnavailable ? d : StoreStatus::kOk);
      });
    });
  });
}

void PendingDestroyStore::on_retry(const TokenHash& key, StoreStatus s) {
  if (closed_) return;  // the inner store is closing inside our destructor
  --in_flight_;
  if (s == StoreStatus::kUnavailable) {
    queue_.push_back(key);
    round_failed_ = true;
  } else {  // kOk, or kNotFound: gone either way (expired meanwhile, or deleted by a peer)
    refused_->remove(key);
    if (metrics_ != nullptr) metrics_->session_destroy_retried_ok.add();
    SG_LOG_INFO("session key %s...: destroy confirmed by the store on retry",
                key_digest_prefix(key).c_str());
  }
  set_pending_gauge();
  if (in_flight_ == 0) round_over();
}

void PendingDestroyStore::round_over() {
  if (closing_) {
    if (!final_sent_ && !queue_.empty()) {
      start_round(/*final_attempt=*/true);
    } else {
      finish_close();
    }
    return;
  }
  if (queue_.empty()) {
    backoff_ms_ = kFirstRetryMs;
    return;
  }
  if (round_failed_) {
    backoff_ms_ = std::min(backoff_ms_ * 2, kMaxRetryMs);
    arm_timer(backoff_ms_);
  } else {
    backoff_ms_ = kFirstRetryMs;
    arm_timer(0);  // the store answers again: the next batch at once (on the next iteration)
  }
}

void PendingDestroyStore::close(std::function<void()> then) {
  if (closing_) return;
  closing_ = true;
  then_ = std::move(then);
  if (timer_ != nullptr) uv_timer_stop(timer_);
  if (in_flight_ != 0) return;  // round_over() sends the last attempt when this round ends
  if (!queue_.empty()) {
    start_round(/*final_attempt=*/true);
    return;
  }
  finish_close();
}

void PendingDestroyStore::finish_close() {
  if (closed_) return;
  closed_ = true;
  if (!queue_.empty()) {
    SG_LOG_WARN(
        "shutdown: %zu session destroy(s) still not confirmed by the store; those sessions "
        "end at their idle timeout unless another instance destroys them",
        queue_.size());
  }
  // The keys stay refused: a worker still draining must not accept them again. They leave the
  // refused set with the process.
  queue_.clear();
  set_pending_gauge();
  if (timer_ == nullptr) {  // nothing was ever queued: close() itself got here
    if (then_) std::exchange(then_, nullptr)();
    return;
  }
  // Here from a retry's answer, inside the inner store's callback: `then` (which closes the inner
  // store) runs from the timer's close callback instead. The timer and `then` travel together, so
  // that this needs nothing of the wrapper.
  struct Closing {
    uv_timer_t* timer;
    std::function<void()> then;
  };
  auto* closing = new Closing{timer_, std::move(then_)};
  timer_->data = closing;
  timer_ = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(closing->timer), [](uv_handle_t* h) {
    auto* c = static_cast<Closing*>(h->data);
    std::function<void()> then = std::move(c->then);
    delete c->timer;
    delete c;
    if (then) then();
  });
}

void PendingDestroyStore::set_pending_gauge() {
  if (metrics_ != nullptr)
    metrics_->session_destroys_pending.store(static_cast<int64_t>(pending()),
                                             std::memory_order_relaxed);
}

}  // namespace sg
