// FreeListBound: how many idle objects a per-worker free list keeps, sized from the load (issue
// 17 item 2). A fixed bound below the number of requests in progress at once makes a busy worker
// free objects in one loop turn and allocate them again in the next: measured under callgrind at
// 200 keep-alive connections on one worker, with the bound of 64, 38% of the requests built a new
// Exchange and Http1State (and grew their strings again), 4,000 more instructions per request
// (+25%) than at 50 connections, nearly all of it in malloc and free.
//
// Contract
// - Pure logic, no clock, one thread (the owner's). The owner calls taken() when it hands out an
//   object and given_back() when one comes back, and keeps at most limit() free objects.
// - limit() is at least `floor`, and at least the peak number in use at once during the current
//   window and the one before it, a window being kWindow hand-outs: objects a burst needed stay
//   pooled while such bursts recur; two windows without one, the bound falls back and each
//   give-back frees the excess. The load alone raises it to at most kMaxFromLoad (what a past
//   burst may leave behind; the number in use is bounded by the worker's connections anyway).
// - given_back() of an object not counted by taken() (built elsewhere) is harmless.
#pragma once

#include <algorithm>
#include <cstddef>

namespace sg {

class FreeListBound {
 public:
  // Hand-outs per window: at 60,000 requests/s about 70 ms, many turns of every connection.
  static constexpr size_t kWindow = 4096;
  static constexpr size_t kMaxFromLoad = 4096;

  explicit FreeListBound(size_t floor) : floor_(floor) {}

  void taken() {
    ++in_use_;
    peak_ = std::max(peak_, in_use_);
    if (++taken_in_window_ < kWindow) return;
    previous_peak_ = peak_;
    peak_ = in_use_;
    taken_in_window_ = 0;
  }
  void given_back() {
    if (in_use_ > 0) --in_use_;
  }
  size_t limit() const {
    return std::max(floor_, std::min(std::max(peak_, previous_peak_), kMaxFromLoad));
  }
  size_t in_use() const { return in_use_; }

 private:
  size_t floor_;
  size_t in_use_ = 0;
  size_t peak_ = 0;           // in use at once, the current window
  size_t previous_peak_ = 0;  // the window before
  size_t taken_in_window_ = 0;
};

}  // namespace sg
