// DeadlineList: the deadlines of many objects (a worker's client connections) on one libuv timer,
// instead of a uv_timer_t (152 bytes) in each: an idle keep-alive connection carries only a
// DeadlineLink (issue 17, memory per idle connection).
//
// Contract
// - Threading: one loop's thread.
// - One list per timeout (the owner keeps several): each list is in `due` order, and since its
//   links are set a fixed time from now, an insertion walks from the tail and stops at once.
// - Lazy, like LazyDeadline (nginx's way): a link keeps its place while its wanted deadline is
//   not earlier than its place's `due`, wherever it is (set() is then two stores). When a list
//   reaches a link that is wanted later, it files it again in the list of its last set() (its
//   `home`), without calling anyone. So a keep-alive connection that moves between a short
//   timeout (request head) and a long one (idle) moves between lists at most once per short
//   timeout, not per request. The libuv timer is likewise started again only when the first
//   `due` of a list becomes earlier than the one it is set for.
// - Expiry: every link wanted at the loop's now is unlinked, then `fire(link)` is called with it,
//   one at a time in order. `fire` may set or cancel any link (its own included) and close the
//   link's owner; it must not destroy the list.
// - A link is unlinked by cancel() before its owner goes; the lists outlive their links. close()
//   closes the timer handle (the loop must run for it to complete); the list must then be empty.
#pragma once

#include <uv.h>

#include <cstdint>

namespace sg {

class DeadlineList;

struct DeadlineLink {
  DeadlineLink* prev = nullptr;  // null: not in a list
  DeadlineLink* next = nullptr;
  uint64_t due = 0;     // loop time (ms) of its place in its list
  uint64_t wanted = 0;  // loop time (ms) when the owner's deadline expires: >= due when linked
  DeadlineList* home = nullptr;  // the list of the last set(): where it goes when it is early
  void* owner = nullptr;
  bool linked() const { return prev != nullptr; }
};

class DeadlineList {
 public:
  using Fire = void (*)(DeadlineLink* link);
  DeadlineList(uv_loop_t* loop, Fire fire);
  DeadlineList(const DeadlineList&) = delete;
  DeadlineList& operator=(const DeadlineList&) = delete;

  // The deadline of `link` is `timeout_ms` from the loop's now.
  void set(DeadlineLink* link, uint64_t timeout_ms) {
    uint64_t wanted = uv_now(timer_.loop) + timeout_ms;
    link->wanted = wanted;
    link->home = this;
    if (link->linked() && link->due <= wanted) return;  // its place comes first: it waits there
    file(link, wanted);
  }
  // No deadline (idempotent).
  static void cancel(DeadlineLink* link) {
    if (!link->linked()) return;
    link->prev->next = link->next;
    link->next->prev = link->prev;
    link->prev = link->next = nullptr;
  }
  bool empty() const { return head_.next == &head_; }
  void close();

 private:
  static void on_timer(uv_timer_t* t);
  void file(DeadlineLink* link, uint64_t due);  // (re)places `link` at `due` in this list
  void arm_for_first(uint64_t now);

  uv_timer_t timer_;
  Fire fire_;
  DeadlineLink head_;  // sentinel of the circular list: head_.next is the earliest
  uint64_t armed_due_ = 0;
  bool armed_ = false;
};

}  // namespace sg
