#include "proxy_core/http/http_date.h"

#include <algorithm>

namespace sg {
namespace {

// The last second representable with a four-digit year: 9999-12-31T23:59:59Z.
constexpr int64_t kMaxImfSeconds = 253402300799;

struct CivilDate {
  int64_t year;
  unsigned month;  // 1..12
  unsigned day;    // 1..31
};

// Days since 1970-01-01 -> proleptic Gregorian date. Works in 400-year eras (146097 days) counted
// from 0000-03-01, so the leap day falls at the end of the shifted year and needs no special case.
CivilDate civil_from_days(int64_t days) {
  days += 719468;  // 0000-03-01 to 1970-01-01
  const int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const int64_t doe = days - era * 146097;                                    // [0, 146096]
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;  // [0, 399]
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);                // [0, 365]
  const int64_t mp = (5 * doy + 2) / 153;                                     // March = 0
  const unsigned day = static_cast<unsigned>(doy - (153 * mp + 2) / 5 + 1);
  const unsigned month = static_cast<unsigned>(mp < 10 ? mp + 3 : mp - 9);
  return {yoe + era * 400 + (month <= 2 ? 1 : 0), month, day};
}

void put2(char* p, unsigned v) {
  p[0] = static_cast<char>('0' + v / 10);
  p[1] = static_cast<char>('0' + v % 10);
}

}  // namespace

void format_imf_fixdate(int64_t unix_seconds, std::span<char, kImfFixdateChars> out) {
  static constexpr char kDays[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr char kMonths[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const int64_t t = std::clamp<int64_t>(unix_seconds, 0, kMaxImfSeconds);
  const int64_t days = t / 86400;
  const unsigned secs = static_cast<unsigned>(t % 86400);
  const CivilDate d = civil_from_days(days);
  const unsigned weekday = static_cast<unsigned>((days + 4) % 7);  // 1970-01-01 was a Thursday
  const unsigned year = static_cast<unsigned>(d.year);

  char* p = out.data();
  std::copy_n(kDays[weekday], 3, p);
  p[3] = ',';
  p[4] = ' ';
  put2(p + 5, d.day);
  p[7] = ' ';
  std::copy_n(kMonths[d.month - 1], 3, p + 8);
  p[11] = ' ';
  put2(p + 12, year / 100);
  put2(p + 14, year % 100);
  p[16] = ' ';
  put2(p + 17, secs / 3600);
  p[19] = ':';
  put2(p + 20, secs / 60 % 60);
  p[22] = ':';
  put2(p + 23, secs % 60);
  std::copy_n(" GMT", 4, p + 25);
}

std::string format_imf_fixdate(int64_t unix_seconds) {
  std::string s(kImfFixdateChars, '\0');
  format_imf_fixdate(unix_seconds, std::span<char, kImfFixdateChars>(s.data(), kImfFixdateChars));
  return s;
}

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
