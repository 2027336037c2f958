// report_h2_stats: a session's monotonic counters reach the worker's metrics once each, by delta.
#include "proxy_core/h2_stats_report.h"

#include <doctest/doctest.h>

namespace sg {
namespace {

TEST_CASE("h2 session counters are added to the worker metrics by their growth only") {
  H2Metrics m;
  H2Stats reported;
  H2Stats now;
  now.streams = 5;
  now.peer_resets = 2;
  now.goaway_continuation_flood = 1;
  report_h2_stats(now, reported, m);
  CHECK(m.streams.get() == 5);
  CHECK(m.peer_resets.get() == 2);
  CHECK(m.goaway[static_cast<int>(H2Goaway::kContinuationFlood)].get() == 1);
  CHECK(reported.streams == 5);
  now.streams = 8;
  now.goaway_window_update_flood = 1;
  report_h2_stats(now, reported, m);
  report_h2_stats(now, reported, m);  // nothing new: nothing added
  CHECK(m.streams.get() == 8);
  CHECK(m.peer_resets.get() == 2);
  CHECK(m.goaway[static_cast<int>(H2Goaway::kWindowUpdateFlood)].get() == 1);
  CHECK(m.goaway[static_cast<int>(H2Goaway::kRapidReset)].get() == 0);
}

}  // namespace
}  // namespace sg
