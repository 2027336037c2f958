#include "proxy_core/session_follower.h"

#include "proxy_core/base/clock.h"

namespace sg {

SessionFollower::SessionFollower(uv_loop_t* loop, SessionEndBus* bus, size_t inbox,
                                 WorkerMetrics* metrics)
    : loop_(loop), bus_(bus), inbox_(inbox), metrics_(metrics) {
  uv_async_init(loop_, &async_, &SessionFollower::on_async);
  async_.data = this;
  uv_timer_init(loop_, &timer_);
  timer_.data = this;
}

void SessionFollower::start(std::function<SessionStore*()> store) {
  store_ = std::move(store);
  if (bus_ != nullptr) bus_->attach(inbox_, &watch_, [this] { uv_async_send(&async_); });
  uv_timer_start(&timer_, &SessionFollower::on_timer, kCheckIntervalMs, kCheckIntervalMs);
}

void SessionFollower::close() {
  if (closed_) return;
  closed_ = true;
  // Detached under the inbox lock first: no publisher sends to the async handle once it closes.
  if (bus_ != nullptr) bus_->detach(inbox_);
  uv_close(reinterpret_cast<uv_handle_t*>(&async_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), nullptr);
}

void SessionFollower::close_unstarted() {
  close();
}

void SessionFollower::on_async(uv_async_t* a) {
  auto* f = static_cast<SessionFollower*>(a->data);
  if (f->closed_ || f->bus_ == nullptr) return;
  const bool overflowed = f->bus_->take(f->inbox_, f->ended_);
  for (const SessionEnd& e : f->ended_) {
    if (e.by_key) {
      f->watch_.end_key(e.key);
    } else {
      f->end(e.handle);
    }
  }
  // Some ends were dropped: look every watched session up now rather than within a round.
  if (overflowed) f->check(f->watch_.sessions());
}

void SessionFollower::on_timer(uv_timer_t* t) {
  auto* f = static_cast<SessionFollower*>(t->data);
  if (f->closed_) return;
  // uv_now: the clock of ExchangeServices::now_ms, which stamped the pending exchanges.
  f->watch_.promote_due(static_cast<int64_t>(uv_now(f->loop_)), kResponseGraceMs);
  f->check(kCheckBatch);
}

void SessionFollower::check(size_t n) {
  if (closed_ || in_flight_ > 0 || watch_.sessions() == 0 || !store_) return;
  SessionStore* store = store_();
  if (store == nullptr) return;
  watch_.next_batch(n, batch_);
  // Copied out: a memory store answers inside lookup(), and the answer may end tunnels, which
  // changes the watch (and batch_ must not be refilled meanwhile: in_flight_ guards it).
  std::vector<SessionWatch::Watched> batch;
  batch.swap(batch_);
  in_flight_ = batch.size();
  const int64_t now = unix_now_ms();
  for (const SessionWatch::Watched& w : batch) {
    metrics_->watched_session_checks.add();
    const SessionHandle handle = w.handle;
    const TokenHash key = w.key;
    store->lookup(key, now, [this, handle, key](LookupResult r) {
      --in_flight_;
      if (!closed_) on_checked(handle, key, r);
    });
  }
  batch.clear();
  if (batch_.empty()) batch_.swap(batch);  // keep the capacity for the next tick
}

// The session is alive when the lookup finds it (under this key or, after a rotation, through
// the marker: in grace, or a replay that still names the live session) with the same handle.
void SessionFollower::on_checked(const SessionHandle& handle, const TokenHash& key,
                                 const LookupResult& r) {
  if (r.status == StoreStatus::kUnavailable) return;  // unknown: the next round asks again
  const bool same = r.record.has_value() && r.record->handle == handle;
  if (same && r.status == StoreStatus::kOk && r.rotated == RotatedKey::kNo) return;
  if (same && r.rotated != RotatedKey::kNo) {
    if (r.live_key != key) watch_.update_key(handle, r.live_key);
    return;
  }
  end(handle);
}

}  // namespace sg
