// HTTP dates (IMF-fixdate, RFC 9110 §5.6.7), formatted by hand: no locale, no allocation in the
// span form. HttpDateCache: the Date header value for responses the gateway writes itself,
// formatted at most once per wall-clock second rather than once per response.
//
// Owner: one per event loop (each worker, the admin listener); that loop's thread only. Pure
// logic: the caller passes the loop's cached clock (uv_now) and the cache reads the wall clock
// through `wall_ms` only when the second it formatted may have passed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace sg {

inline constexpr size_t kImfFixdateChars = 29;  // "Sun, 06 Nov 1994 08:49:37 GMT"

// IMF-fixdate (RFC 9110 §5.6.7) of a unix time in seconds, always GMT. Times before 1970 or after
// 9999-12-31T23:59:59 are clamped to those bounds (the format has four-digit years).
void format_imf_fixdate(int64_t unix_seconds, std::span<char, kImfFixdateChars> out);
std::string format_imf_fixdate(int64_t unix_seconds);

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
