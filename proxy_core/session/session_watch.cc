// Memory: a watched session costs one map_ node (handle 16 + Entry 48 + next pointer and cached
// hash 16 = 80 bytes, 96 with malloc's header and rounding), one by_key_ node (32 + 16 + 16 = 64,
// 80 with malloc's), two bucket pointers (16 at load factor 1) and one 16-byte slot in order_:
// about 210 bytes. A second tunnel of the same session costs nothing here (its links are in the
// watcher: 2 pointers, a handle and a flag, 40 bytes).
#include "proxy_core/session/session_watch.h"

#include <cstring>

namespace sg {

size_t SessionHandleHash::operator()(const SessionHandle& h) const {
  size_t v;
  std::memcpy(&v, h.data(), sizeof v);
  return v;
}

size_t TokenHashHash::operator()(const TokenHash& k) const {
  size_t v;
  std::memcpy(&v, k.data(), sizeof v);
  return v;
}

// Under mutex_ (membership of by_key_ changes).
void SessionWatch::set_key(const SessionHandle& handle, Entry& e, const TokenHash& key) {
  auto old = by_key_.find(e.key);
  if (old != by_key_.end() && old->second == handle) by_key_.erase(old);
  e.key = key;
  by_key_[key] = handle;
}

void SessionWatch::add(SessionWatcher* w, const SessionHandle& handle, const TokenHash& key) {
  auto it = map_.find(handle);
  if (it == map_.end()) {
    std::lock_guard<std::mutex> lock(mutex_);
    it = map_.emplace(handle, Entry{nullptr, key, order_.size()}).first;
    order_.push_back(handle);
    by_key_[key] = handle;
    sessions_.store(map_.size(), std::memory_order_relaxed);
  }
  Entry& e = it->second;
  if (e.key != key) {
    std::lock_guard<std::mutex> lock(mutex_);
    set_key(handle, e, key);
  }
  w->handle_ = handle;
  w->prev_ = nullptr;
  w->next_ = e.head;
  if (e.head != nullptr) e.head->prev_ = w;
  e.head = w;
  w->watched_ = true;
  ++watchers_;
}

void SessionWatch::remove(SessionWatcher* w) {
  if (!w->watched_) return;
  w->watched_ = false;
  --watchers_;
  auto it = map_.find(w->handle_);
  if (it == map_.end()) return;  // not reachable: a watched watcher's session is in the map
  Entry& e = it->second;
  if (w->prev_ != nullptr) w->prev_->next_ = w->next_;
  if (w->next_ != nullptr) w->next_->prev_ = w->prev_;
  if (e.head == w) e.head = w->next_;
  w->prev_ = w->next_ = nullptr;
  if (e.head == nullptr) erase_entry(w->handle_, e);
}

// Swap-remove from order_, so that removal stays O(1); the cursor may then skip or repeat one
// session in the current round, which the periodic check tolerates.
void SessionWatch::erase_entry(const SessionHandle& handle, Entry& e) {
  const size_t slot = e.slot;
  std::lock_guard<std::mutex> lock(mutex_);
  if (slot + 1 != order_.size()) {
    order_[slot] = order_.back();
    map_.find(order_[slot])->second.slot = slot;
  }
  order_.pop_back();
  auto k = by_key_.find(e.key);
  if (k != by_key_.end() && k->second == handle) by_key_.erase(k);
  map_.erase(handle);
  sessions_.store(map_.size(), std::memory_order_relaxed);
}

size_t SessionWatch::end(const SessionHandle& handle) {
  auto it = map_.find(handle);
  if (it == map_.end()) return 0;
  SessionWatcher* w = it->second.head;
  erase_entry(handle, it->second);
  size_t told = 0;
  while (w != nullptr) {
    SessionWatcher* next = w->next_;
    w->prev_ = w->next_ = nullptr;
    w->watched_ = false;
    --watchers_;
    w->session_ended();
    ++told;
    w = next;
  }
  return told;
}

void SessionWatch::next_batch(size_t n, std::vector<Watched>& out) {
  out.clear();
  const size_t count = std::min(n, order_.size());
  for (size_t i = 0; i < count; ++i) {
    if (cursor_ >= order_.size()) cursor_ = 0;
    const SessionHandle& h = order_[cursor_++];
    out.push_back(Watched{h, map_.find(h)->second.key});
  }
}

void SessionWatch::update_key(const SessionHandle& handle, const TokenHash& key) {
  auto it = map_.find(handle);
  if (it == map_.end() || it->second.key == key) return;
  std::lock_guard<std::mutex> lock(mutex_);
  set_key(handle, it->second, key);
}

size_t SessionWatch::end_key(const TokenHash& key) {
  auto it = by_key_.find(key);
  if (it == by_key_.end()) return 0;
  const SessionHandle handle = it->second;
  return end(handle);
}

// watch_due() only add()s its own watcher: the saved `next` stays linked.
size_t SessionWatch::promote_due(int64_t now_ms, int64_t grace_ms) {
  size_t due = 0;
  for (SessionWatcher* w = pending_head_; w != nullptr;) {
    SessionWatcher* next = w->pending_next_;
    if (now_ms - w->pending_since_ms_ >= grace_ms) {
      remove_pending(w);
      ++due;
      w->watch_due();
    }
    w = next;
  }
  return due;
}

bool SessionWatch::watches_key(const TokenHash& key) const {
  if (sessions() == 0) return false;
  std::lock_guard<std::mutex> lock(mutex_);
  return by_key_.count(key) != 0;
}

bool SessionWatch::watches(const SessionHandle& handle) const {
  if (sessions() == 0) return false;
  std::lock_guard<std::mutex> lock(mutex_);
  return map_.count(handle) != 0;
}

}  // namespace sg
