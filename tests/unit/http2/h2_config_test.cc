// The [http2] keys and server.http2/http2_cleartext: parsed, checked, rendered, and mapped onto
// the codec's H2Settings.
#include <doctest/doctest.h>

#include "proxy_core/config/config_loader.h"
#include "proxy_core/http2/h2_settings.h"

namespace sg {
namespace {

ConfigLoadResult load(std::string_view text) {
  return load_config_string(text, "test.toml");
}

TEST_CASE("h2 config defaults map onto the codec settings") {
  Config c;
  CHECK(c.server.http2);
  CHECK_FALSE(c.server.http2_cleartext);
  H2Settings s = h2_settings_from(c);
  CHECK(s.max_concurrent_streams == 128);
  CHECK(s.max_header_list_bytes == c.limits.max_header_bytes);  // 0 = limits.max_header_bytes
  CHECK(s.stream_window_bytes == 64 * 1024);
  CHECK(s.connection_window_bytes == 1024 * 1024);
  CHECK(s.flood_window_ms == 10000);
  CHECK(s.max_continuations == 8);
  CHECK(s.max_header_fields == c.limits.max_headers);
}

TEST_CASE("h2 config keys are read, rendered and read back") {
  ConfigLoadResult r = load(
      "[server]\nhttp2 = false\nhttp2_cleartext = true\n"
      "[http2]\nmax_concurrent_streams = 10\nmax_header_list_bytes = \"8KiB\"\n"
      "stream_window_bytes = \"32KiB\"\nconnection_window_bytes = \"256KiB\"\n"
      "response_buffer_bytes = \"128KiB\"\nflood_window = \"2s\"\nmax_resets = 7\n"
      "max_control_frames = 9\nmax_empty_frames = 11\nmax_continuations = 3\n");
  REQUIRE(r.errors.empty());
  REQUIRE(r.config.has_value());
  const Config& c = *r.config;
  CHECK_FALSE(c.server.http2);
  CHECK(c.server.http2_cleartext);
  H2Settings s = h2_settings_from(c);
  CHECK(s.max_concurrent_streams == 10);
  CHECK(s.max_header_list_bytes == 8192);
  CHECK(s.stream_window_bytes == 32768);
  CHECK(s.connection_window_bytes == 262144);
  CHECK(s.response_buffer_bytes == 131072);
  CHECK(s.flood_window_ms == 2000);
  CHECK(s.max_resets_per_window == 7);
  CHECK(s.max_control_frames_per_window == 9);
  CHECK(s.max_empty_frames_per_window == 11);
  CHECK(s.max_continuations == 3);
  std::string rendered = render_effective_config(c);
  ConfigLoadResult again = load(rendered);
  REQUIRE(again.config.has_value());
  CHECK(render_effective_config(*again.config) == rendered);
}

TEST_CASE("h2 config refuses windows out of range and a connection window under the stream one") {
  CHECK_FALSE(load("[http2]\nstream_window_bytes = \"1KiB\"\n").config.has_value());
  CHECK_FALSE(load("[http2]\nstream_window_bytes = \"4GiB\"\n").config.has_value());
  CHECK_FALSE(load("[http2]\nmax_concurrent_streams = 0\n").config.has_value());
  CHECK_FALSE(load("[http2]\nflood_window = \"2h\"\n").config.has_value());
  ConfigLoadResult r =
      load("[http2]\nstream_window_bytes = \"2MiB\"\nconnection_window_bytes = \"1MiB\"\n");
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].format().find("http2.connection_window_bytes") != std::string::npos);
  CHECK_FALSE(load("[server]\nhttp2 = \"yes\"\n").config.has_value());
}

}  // namespace
}  // namespace sg
