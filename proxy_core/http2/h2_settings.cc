#include "proxy_core/http2/h2_settings.h"

#include "proxy_core/config/config.h"

namespace sg {

H2Settings h2_settings_from(const Config& config) {
  const Http2Config& h = config.http2;
  H2Settings s;
  s.max_concurrent_streams = h.max_concurrent_streams;
  uint64_t list =
      h.max_header_list_bytes != 0 ? h.max_header_list_bytes : config.limits.max_header_bytes;
  s.max_header_list_bytes = static_cast<uint32_t>(list);
  s.max_header_fields = config.limits.max_headers;
  s.stream_window_bytes = static_cast<uint32_t>(h.stream_window_bytes);
  s.connection_window_bytes = static_cast<uint32_t>(h.connection_window_bytes);
  s.response_buffer_bytes = h.response_buffer_bytes;
  s.flood_window_ms = static_cast<uint32_t>(h.flood_window.count());
  s.max_resets_per_window = h.max_resets;
  s.max_control_frames_per_window = h.max_control_frames;
  s.max_empty_frames_per_window = h.max_empty_frames;
  s.max_continuations = h.max_continuations;
  return s;
}

}  // namespace sg
