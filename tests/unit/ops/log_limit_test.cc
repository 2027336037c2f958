// LogLimiter: one line per interval, the held-back count reported with the next line.
#include "proxy_core/ops/log_limit.h"

#include <doctest/doctest.h>

namespace sg {
namespace {

TEST_CASE("log limit: one line per second, the lines held back counted on the next") {
  LogLimiter limit(1000);
  uint64_t suppressed = 99;
  CHECK(limit.allow(5'000, suppressed));
  CHECK(suppressed == 0);
  for (int i = 0; i < 50; ++i)
    CHECK_FALSE(limit.allow(5'000 + i * 10, suppressed));
  CHECK_FALSE(limit.allow(5'999, suppressed));
  CHECK(limit.allow(6'000, suppressed));
  CHECK(suppressed == 51);
  CHECK_FALSE(limit.allow(6'500, suppressed));
  CHECK(limit.allow(60'000, suppressed));  // a quiet stretch: the next line at once
  CHECK(suppressed == 1);
  CHECK(limit.allow(61'000, suppressed));
  CHECK(suppressed == 0);
}

}  // namespace
}  // namespace sg
