// A per-worker limit on a warning that outside input can repeat at will (a crafted record in a
// shared store, read back on every request that carries its key): one line per interval at most,
// and the line that is written says how many were held back since the previous one. The metric
// that goes with such a warning still counts every occurrence; only the log is thinned.
#pragma once

#include <cstdint>
#include <utility>

namespace sg {

class LogLimiter {
 public:
  explicit LogLimiter(int64_t interval_ms = 1000) : interval_ms_(interval_ms) {}

  // True when a line may be written at `now_ms` (a monotonic clock); `suppressed` is then the
  // number of lines held back since the last one written. Not thread-safe: one per worker.
  bool allow(int64_t now_ms, uint64_t& suppressed) {
    if (written_ && now_ms - last_ms_ < interval_ms_) {
      ++held_back_;
      return false;
    }
    written_ = true;
    last_ms_ = now_ms;
    suppressed = std::exchange(held_back_, 0);
    return true;
  }

 private:
  int64_t interval_ms_;
  int64_t last_ms_ = 0;
  bool written_ = false;
  uint64_t held_back_ = 0;
};

}  // namespace sg
