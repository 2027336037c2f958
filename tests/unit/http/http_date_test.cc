#include "proxy_core/http/http_date.h"

#include <doctest/doctest.h>

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

}  // namespace
}  // namespace sg
