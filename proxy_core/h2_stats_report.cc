#include "proxy_core/h2_stats_report.h"

#include <cstring>
#include <iterator>
#include <type_traits>
#include <utility>

namespace sg {

void report_h2_stats(const H2Stats& now, H2Stats& reported, H2Metrics& m) {
  // Called after every batch of I/O: most of the time nothing changed.
  static_assert(std::is_trivially_copyable_v<H2Stats> && sizeof(H2Stats) % sizeof(uint64_t) == 0);
  if (std::memcmp(&now, &reported, sizeof(H2Stats)) == 0) return;
  static constexpr std::pair<uint64_t H2Stats::*, Counter H2Metrics::*> kPlain[] = {
      {&H2Stats::streams, &H2Metrics::streams},
      {&H2Stats::streams_refused, &H2Metrics::streams_refused},
      {&H2Stats::malformed_requests, &H2Metrics::malformed_requests},
      {&H2Stats::header_lists_too_large, &H2Metrics::header_lists_too_large},
      {&H2Stats::peer_resets, &H2Metrics::peer_resets},
      {&H2Stats::response_pauses, &H2Metrics::response_pauses},
  };
  // In the order of H2Goaway.
  static constexpr uint64_t H2Stats::*kGoaways[] = {
      &H2Stats::goaway_rapid_reset,         &H2Stats::goaway_control_flood,
      &H2Stats::goaway_empty_frame_flood,   &H2Stats::goaway_continuation_flood,
      &H2Stats::goaway_window_update_flood, &H2Stats::goaway_flooded,
      &H2Stats::goaway_protocol_error};
  static_assert(std::size(kGoaways) == static_cast<size_t>(H2Goaway::kCount));
  for (const auto& field : kPlain) {
    uint64_t H2Stats::*stat = field.first;
    if (now.*stat != reported.*stat) (m.*(field.second)).add(now.*stat - reported.*stat);
  }
  for (size_t g = 0; g < std::size(kGoaways); ++g) {
    uint64_t H2Stats::*stat = kGoaways[g];
    if (now.*stat != reported.*stat) m.goaway[g].add(now.*stat - reported.*stat);
  }
  reported = now;
}

}  // namespace sg
