#include "proxy_core/http/http_date.h"

namespace sg {

std::string_view HttpDateCache::get(uint64_t loop_now_ms) {
  if (!valid_ || loop_now_ms >= next_check_) {
    const int64_t now_ms = wall_ms_();
    const int64_t second = now_ms >= 0 ? now_ms / 1000 : 0;
    if (!valid_ || second != second_) {
      format_imf_fixdate(second, std::span<char, kImfFixdateChars>(text_, kImfFixdateChars));
      second_ = second;
      valid_ = true;
      ++formats_;
    }
    // The loop clock and the wall clock advance together: look again when this second ends. (A
    // wall clock stepped back only repeats a second; one stepped forward is seen within 1 s.)
    const int64_t left_ms = 1000 - (now_ms >= 0 ? now_ms % 1000 : 0);
    next_check_ = loop_now_ms + static_cast<uint64_t>(left_ms);
  }
  return std::string_view(text_, kImfFixdateChars);
}

}  // namespace sg
