// /metrics rendering of the HTTP/2 and per-protocol figures: every worker's block summed.
#include "proxy_core/ops/metrics.h"

#include <doctest/doctest.h>

#include <string>

namespace sg {
namespace {

bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos;
}

TEST_CASE("metrics render the HTTP/2 counters and the requests by protocol, summed over workers") {
  WorkerMetrics a, b;
  a.requests_by_protocol[static_cast<int>(ProtocolLabel::kHttp1)].add(3);
  b.requests_by_protocol[static_cast<int>(ProtocolLabel::kHttp2)].add(4);
  a.requests_by_protocol[static_cast<int>(ProtocolLabel::kHttp2)].add(1);
  a.h2.connections.add(2);
  b.h2.connections.add(1);
  b.h2.streams.add(7);
  a.h2.peer_resets.add(9);
  b.h2.goaway[static_cast<int>(H2Goaway::kRapidReset)].add();
  a.h2.goaway[static_cast<int>(H2Goaway::kWindowUpdateFlood)].add(2);
  std::string text = render_prometheus({&a, &b}, ProcessMetrics{}, SessionFigures{}, true, false);
  CHECK(has_line(text, "sessiongate_requests_by_protocol_total{protocol=\"http1\"} 3"));
  CHECK(has_line(text, "sessiongate_requests_by_protocol_total{protocol=\"http2\"} 5"));
  CHECK(has_line(text, "sessiongate_http2_connections_total 3"));
  CHECK(has_line(text, "sessiongate_http2_streams_total 7"));
  CHECK(has_line(text, "sessiongate_http2_peer_resets_total 9"));
  CHECK(has_line(text, "sessiongate_http2_streams_refused_total 0"));
  CHECK(has_line(text, "sessiongate_http2_goaway_total{reason=\"rapid_reset\"} 1"));
  CHECK(has_line(text, "sessiongate_http2_goaway_total{reason=\"window_update_flood\"} 2"));
  CHECK(has_line(text, "sessiongate_http2_goaway_total{reason=\"protocol_error\"} 0"));
  CHECK(text.find("# TYPE sessiongate_http2_goaway_total counter") != std::string::npos);
}

}  // namespace
}  // namespace sg
