#include "proxy_core/session/session_end_bus.h"

namespace sg {

SessionEndBus::SessionEndBus(size_t inboxes, size_t bound) : bound_(bound) {
  for (size_t i = 0; i < inboxes; ++i)
    inboxes_.push_back(std::make_unique<Inbox>());
}

void SessionEndBus::attach(size_t inbox, const SessionWatch* watch, std::function<void()> wake) {
  Inbox& in = *inboxes_.at(inbox);
  std::lock_guard<std::mutex> lock(in.mutex);
  in.watch.store(watch, std::memory_order_release);
  in.wake = std::move(wake);
}

void SessionEndBus::detach(size_t inbox) {
  Inbox& in = *inboxes_.at(inbox);
  std::lock_guard<std::mutex> lock(in.mutex);
  in.watch.store(nullptr, std::memory_order_release);
  in.wake = nullptr;
  in.queue.clear();
}

void SessionEndBus::publish(const SessionHandle& handle) {
  SessionEnd end;
  end.handle = handle;
  deliver(end);
}

void SessionEndBus::publish_key(const TokenHash& key) {
  SessionEnd end;
  end.by_key = true;
  end.key = key;
  deliver(end);
}

void SessionEndBus::deliver(const SessionEnd& end) {
  for (auto& p : inboxes_) {
    Inbox& in = *p;
    const SessionWatch* watch = in.watch.load(std::memory_order_acquire);
    if (watch == nullptr || watch->sessions() == 0) continue;
    if (end.by_key ? !watch->watches_key(end.key) : !watch->watches(end.handle)) continue;
    std::lock_guard<std::mutex> lock(in.mutex);
    const bool was_empty = in.queue.empty() && !in.overflowed;
    if (in.queue.size() < bound_) {
      in.queue.push_back(end);
    } else {
      in.overflowed = true;
    }
    if (was_empty && in.wake) in.wake();  // uv_async_send: thread-safe, coalesced
  }
}

bool SessionEndBus::take(size_t inbox, std::vector<SessionEnd>& out) {
  out.clear();
  Inbox& in = *inboxes_.at(inbox);
  std::lock_guard<std::mutex> lock(in.mutex);
  out.swap(in.queue);
  const bool overflowed = in.overflowed;
  in.overflowed = false;
  return overflowed;
}

}  // namespace sg
