// Limits and counters of one HTTP/2 server session (h2_session.h). Plain values: the codec has no
// I/O and no configuration reader; h2_settings_from() maps the gateway configuration onto them.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sg {

struct Config;

struct H2Settings {
  // SETTINGS_MAX_CONCURRENT_STREAMS. A stream over it is refused (RST_STREAM REFUSED_STREAM).
  uint32_t max_concurrent_streams = 128;
  // SETTINGS_MAX_HEADER_LIST_SIZE, and enforced here: a request whose decoded header list (RFC
  // 9113 §6.5.2: name + value + 32 per field) is larger is answered 431 without reaching the owner.
  uint32_t max_header_list_bytes = 32 * 1024;
  // Regular fields per request (limits.max_headers, as for HTTP/1.1): more is answered 431 too.
  uint32_t max_header_fields = 100;
  // SETTINGS_INITIAL_WINDOW_SIZE: request body bytes one stream may have delivered to its owner and
  // not yet consumed (H2Session::consume). A slow upstream holds at most this much per stream.
  uint32_t stream_window_bytes = 64 * 1024;
  // The connection's receive window: what all streams together may hold unconsumed. Larger than
  // one stream's window so that one slow stream does not stall the others.
  uint32_t connection_window_bytes = 1024 * 1024;
  // High-water mark of a stream's response buffer: above it the owner is told to pause its source.
  size_t response_buffer_bytes = 64 * 1024;
  // Flood defences, each counted over a fixed window of flood_window_ms. Beyond a threshold the
  // connection gets GOAWAY ENHANCE_YOUR_CALM and closes once its output is flushed.
  uint32_t flood_window_ms = 10'000;
  uint32_t max_resets_per_window = 500;           // RST_STREAM from the client (Rapid Reset)
  uint32_t max_control_frames_per_window = 1000;  // SETTINGS, PING and PRIORITY from the client
  uint32_t max_empty_frames_per_window = 100;     // DATA without payload and without END_STREAM
  uint32_t max_continuations = 8;                 // CONTINUATION frames after one HEADERS
  // Data dribble (CVE-2019-9511): a client that opens its windows a few bytes at a time makes the
  // server cut responses into tiny DATA frames. WINDOW_UPDATEs under this increment count as
  // control frames of their own kind, against max_control_frames_per_window. Browsers and
  // nghttp2 clients send one when half a window (kilobytes at least) was read.
  uint32_t small_window_update_bytes = 1024;
};

// Counters of one session, all monotonic; the worker sums them into its metrics. Suggested
// Prometheus names: sessiongate_http2_<field>_total.
struct H2Stats {
  uint64_t streams = 0;             // request heads delivered to the owner
  uint64_t streams_refused = 0;     // over max_concurrent_streams
  uint64_t malformed_requests = 0;  // stream errors (RST_STREAM PROTOCOL_ERROR) on request heads
  uint64_t header_lists_too_large = 0;  // answered 431
  uint64_t peer_resets = 0;             // RST_STREAM received
  uint64_t response_pauses = 0;         // owner told to pause a response source
  uint64_t goaway_rapid_reset = 0;
  uint64_t goaway_control_flood = 0;
  uint64_t goaway_empty_frame_flood = 0;
  uint64_t goaway_continuation_flood = 0;   // CONTINUATION flood (CVE-2024-27316)
  uint64_t goaway_window_update_flood = 0;  // small WINDOW_UPDATEs (data dribble, CVE-2019-9511)
  uint64_t goaway_flooded = 0;              // nghttp2's own flood detection (unread ACKs)
  uint64_t goaway_protocol_error = 0;       // any other connection error
};

// The session limits the configuration asks for: [http2] keys, and limits.max_header_bytes as the
// header list size when http2.max_header_list_bytes is 0.
H2Settings h2_settings_from(const Config& config);

}  // namespace sg
