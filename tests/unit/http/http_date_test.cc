#include "proxy_core/http/http_date.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <cstdio>
#include <ctime>
#include <string>

namespace sg {
namespace {

int64_t fake_wall_ms = 0;
int wall_reads = 0;
int64_t fake_wall() {
  ++wall_reads;
  return fake_wall_ms;
}

TEST_CASE("the Date value is IMF-fixdate of the wall clock's current second") {
  fake_wall_ms = 784111777000;  // Sun, 06 Nov 1994 08:49:37 GMT (RFC 9110 5.6.7)
  HttpDateCache cache(&fake_wall);
  CHECK(cache.get(5) == "Sun, 06 Nov 1994 08:49:37 GMT");
}

TEST_CASE("the Date value is formatted at most once per second, and the clock read rarely") {
  fake_wall_ms = 784111777250;
  wall_reads = 0;
  HttpDateCache cache(&fake_wall);
  uint64_t loop_ms = 1000;
  CHECK(cache.get(loop_ms) == "Sun, 06 Nov 1994 08:49:37 GMT");
  // 1000 responses within the same second: no reformat, no clock read.
  for (int i = 0; i < 1000; ++i) {
    CHECK(cache.get(loop_ms + 749 * static_cast<uint64_t>(i) / 1000) ==
          "Sun, 06 Nov 1994 08:49:37 GMT");
  }
  CHECK(cache.formats() == 1);
  CHECK(wall_reads == 1);
  // The second ends 750 ms later on both clocks.
  fake_wall_ms += 750;
  CHECK(cache.get(loop_ms + 750) == "Sun, 06 Nov 1994 08:49:38 GMT");
  CHECK(cache.formats() == 2);
  // A long idle loop: the next response sees the current second.
  fake_wall_ms += 3600 * 1000;
  CHECK(cache.get(loop_ms + 750 + 3600 * 1000) == "Sun, 06 Nov 1994 09:49:38 GMT");
  CHECK(cache.formats() == 3);
}

TEST_CASE("a wall clock that lags the loop clock is read again but not reformatted") {
  fake_wall_ms = 784111777900;
  HttpDateCache cache(&fake_wall);
  CHECK(cache.get(0) == "Sun, 06 Nov 1994 08:49:37 GMT");
  fake_wall_ms = 784111777990;  // the loop clock ran ahead: same second still
  CHECK(cache.get(100) == "Sun, 06 Nov 1994 08:49:37 GMT");
  CHECK(cache.formats() == 1);
  fake_wall_ms = 784111778000;
  CHECK(cache.get(110) == "Sun, 06 Nov 1994 08:49:38 GMT");
}

TEST_CASE("IMF-fixdate matches RFC 9110 and known calendar dates") {
  CHECK(format_imf_fixdate(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT");  // RFC 9110 §5.6.7
  CHECK(format_imf_fixdate(0) == "Thu, 01 Jan 1970 00:00:00 GMT");
  CHECK(format_imf_fixdate(951782400) == "Tue, 29 Feb 2000 00:00:00 GMT");  // 400-year leap
  CHECK(format_imf_fixdate(1709164800) == "Thu, 29 Feb 2024 00:00:00 GMT");
  CHECK(format_imf_fixdate(4102444800) == "Fri, 01 Jan 2100 00:00:00 GMT");  // 2100 not leap
  CHECK(format_imf_fixdate(253402300799) == "Fri, 31 Dec 9999 23:59:59 GMT");
}

TEST_CASE("IMF-fixdate clamps what four-digit years cannot show") {
  CHECK(format_imf_fixdate(-1) == "Thu, 01 Jan 1970 00:00:00 GMT");
  CHECK(format_imf_fixdate(253402300800) == "Fri, 31 Dec 9999 23:59:59 GMT");
  CHECK(format_imf_fixdate(INT64_MAX) == "Fri, 31 Dec 9999 23:59:59 GMT");
}

TEST_CASE("IMF-fixdate agrees with gmtime over a spread of instants") {
  static const char* const kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char* const kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  for (int64_t t = 0; t < 5000000000; t += 7777777) {
    const time_t tt = static_cast<time_t>(t);
    struct tm tm;
    REQUIRE(gmtime_r(&tt, &tm) != nullptr);
    char expected[64];
    std::snprintf(expected, sizeof expected, "%s, %02d %s %04d %02d:%02d:%02d GMT",
                  kDays[tm.tm_wday], tm.tm_mday, kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour,
                  tm.tm_min, tm.tm_sec);
    CHECK(format_imf_fixdate(t) == expected);
  }
}

}  // namespace
}  // namespace sg
