// Carries an HTTP/2 session's counters (http2/h2_settings.h H2Stats) into its worker's metrics
// (ops/metrics.h H2Metrics). It lives at the root because ops/ cannot include http2/. Worker loop
// only, like every WorkerMetrics write.
#pragma once

#include "proxy_core/http2/h2_settings.h"
#include "proxy_core/ops/metrics.h"

namespace sg {

// Adds to `m` what `now` counted since `reported`, then sets `reported` to `now`. The counters
// are monotonic; a connection calls this after each batch of input and once when it closes.
void report_h2_stats(const H2Stats& now, H2Stats& reported, H2Metrics& m);

}  // namespace sg
