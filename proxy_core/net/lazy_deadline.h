// LazyDeadline: the deadline of a libuv timer that moves on every read and write, kept cheap.
// Like nginx, moving the deadline later touches no timer heap: libuv's timer is started again only
// when the new deadline is earlier than the one it is set for, and a timer that fires early
// re-arms itself for the rest. Loop thread only; the owner keeps the uv_timer_t.
#pragma once

#include <uv.h>

#include <cstdint>

namespace sg {

class LazyDeadline {
 public:
  // The deadline is `timeout_ms` from the loop's now.
  void set(uv_timer_t* timer, uv_timer_cb cb, uint64_t timeout_ms) {
    uint64_t now = uv_now(timer->loop);
    deadline_ = now + timeout_ms;
    if (armed_ && armed_due_ <= deadline_) return;
    arm(timer, cb, now);
  }
  // First thing in the timer's callback: libuv's timer is no longer running.
  void fired() { armed_ = false; }
  // Then, if the deadline is still wanted: true when it has passed; false when it was moved
  // later (the timer runs again for the rest).
  bool passed(uv_timer_t* timer, uv_timer_cb cb) {
    uint64_t now = uv_now(timer->loop);
    if (now >= deadline_) return true;
    arm(timer, cb, now);
    return false;
  }

 private:
  void arm(uv_timer_t* timer, uv_timer_cb cb, uint64_t now) {
    uv_timer_start(timer, cb, deadline_ - now, 0);
    armed_ = true;
    armed_due_ = deadline_;
  }

  uint64_t deadline_ = 0;   // loop time when the owner's timeout expires
  uint64_t armed_due_ = 0;  // when libuv's timer is set to fire
  bool armed_ = false;
};

}  // namespace sg
