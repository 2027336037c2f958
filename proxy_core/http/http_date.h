// HttpDateCache: the Date header value (IMF-fixdate, RFC 9110 §5.6.7) for responses the gateway
// writes itself, formatted at most once per wall-clock second rather than once per response.
//
// Owner: one per event loop (each worker, the admin listener); that loop's thread only. Pure
// logic: the caller passes the loop's cached clock (uv_now) and the cache reads the wall clock
// through `wall_ms` only when the second it formatted may have passed.
#pragma once

#include <cstdint>
#include <string_view>

#include "proxy_core/http/set_cookie.h"

namespace sg {

class HttpDateCache {
 public:
  using WallClockMs = int64_t (*)();
  // `wall_ms`: unix time in milliseconds (unix_now_ms in production, a fake in tests).
  explicit HttpDateCache(WallClockMs wall_ms) : wall_ms_(wall_ms) {}

  // The value for a response written at loop time `loop_now_ms` (uv_now: cached once per loop
  // iteration, monotonic). Valid until the next call.
  std::string_view get(uint64_t loop_now_ms);
  // How many times the value was formatted (for tests: at most once per second).
  uint64_t formats() const { return formats_; }

 private:
  WallClockMs wall_ms_;
  uint64_t next_check_ = 0;  // loop time when the formatted second may be over
  bool valid_ = false;
  int64_t second_ = 0;
  uint64_t formats_ = 0;
  char text_[kImfFixdateChars] = {};
};

}  // namespace sg
