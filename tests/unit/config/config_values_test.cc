#include "proxy_core/config/config_loader.h"

#include <doctest/doctest.h>

using namespace std::chrono_literals;

TEST_CASE("durations accept single units and descending sums") {
  CHECK(sg::parse_duration("250ms") == 250ms);
  CHECK(sg::parse_duration("10s") == 10s);
  CHECK(sg::parse_duration("5m") == 5min);
  CHECK(sg::parse_duration("1h") == 1h);
  CHECK(sg::parse_duration("1d") == 24h);
  CHECK(sg::parse_duration("1h30m") == 90min);
  CHECK(sg::parse_duration("1d2h3m4s5ms") == 93784005ms);
  CHECK(sg::parse_duration("0s") == 0ms);
  CHECK(sg::parse_duration("1m30ms") == 60030ms);
}

TEST_CASE("malformed durations are refused") {
  for (const char* text :
       {"", "0", "30", "s", "30 minutes", "30 s", " 30s", "30s ", "1.5h", "-1s", "+1s", "30m1h",
        "1h1h", "1H", "10sec", "1w", "1h30", "99999999999999999999s", "106751991167301d"}) {
    CAPTURE(text);
    CHECK_FALSE(sg::parse_duration(text).has_value());
  }
}

TEST_CASE("durations format to their shortest spelling and parse back") {
  CHECK(sg::format_duration(0ms) == "0s");
  CHECK(sg::format_duration(250ms) == "250ms");
  CHECK(sg::format_duration(90min) == "1h30m");
  CHECK(sg::format_duration(24h) == "1d");
  CHECK(sg::format_duration(1500ms) == "1s500ms");
  for (const sg::Millis value :
       std::initializer_list<sg::Millis>{1ms, 999ms, 61s, 12h, 100h, 86400001ms}) {
    CHECK(sg::parse_duration(sg::format_duration(value)) == value);
  }
}

TEST_CASE("sizes accept bytes and IEC units only") {
  CHECK(sg::parse_size("512") == 512u);
  CHECK(sg::parse_size("512B") == 512u);
  CHECK(sg::parse_size("16KiB") == 16384u);
  CHECK(sg::parse_size("10MiB") == 10u << 20);
  CHECK(sg::parse_size("1GiB") == 1u << 30);
  CHECK(sg::parse_size("2TiB") == 2ull << 40);
  CHECK(sg::parse_size("0") == 0u);
  for (const char* text : {"", "KiB", "16KB", "16kb", "16k", "16kib", "16 KiB", "1.5MiB", "-1",
                           "16PiB", "99999999999999999999", "20000000TiB"}) {
    CAPTURE(text);
    CHECK_FALSE(sg::parse_size(text).has_value());
  }
  CHECK(sg::format_size(16384) == "16KiB");
  CHECK(sg::format_size(1000) == "1000B");
  CHECK(sg::format_size(0) == "0B");
  CHECK(sg::format_size(100ull << 20) == "100MiB");
}

TEST_CASE("listen addresses are numeric IPv4, bracketed IPv6 or a wildcard") {
  const auto v4 = sg::parse_listen_address("127.0.0.1:8080");
  REQUIRE(v4.has_value());
  CHECK(v4->host == "127.0.0.1");
  CHECK(v4->port == 8080);
  const auto v6 = sg::parse_listen_address("[::1]:8443");
  REQUIRE(v6.has_value());
  CHECK(v6->host == "::1");
  CHECK(v6->port == 8443);
  CHECK(sg::parse_listen_address("*:80")->host == "0.0.0.0");
  CHECK(sg::parse_listen_address(":80")->host == "0.0.0.0");
  CHECK(sg::parse_listen_address("0.0.0.0:80")->host == "0.0.0.0");
  CHECK(sg::parse_listen_address("[::]:80")->host == "::");
  CHECK(sg::parse_listen_address("127.0.0.1:0")->port == 0);
  CHECK(sg::parse_listen_address("127.0.0.1:65535")->port == 65535);
  for (const char* text :
       {"", "8080", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:80x",
        "localhost:8080", "::1:8080", "[::1]8080", "[::1]", "[127.0.0.1]:80", "300.0.0.1:80",
        "127.0.0.1:000080", "[fe80::1%eth0]:80"}) {
    CAPTURE(text);
    CHECK_FALSE(sg::parse_listen_address(text).has_value());
  }
}

TEST_CASE("connect addresses also take host names but never port 0") {
  CHECK(sg::parse_host_port("app.internal:9000")->host == "app.internal");
  CHECK(sg::parse_host_port("localhost:6379")->port == 6379);
  CHECK(sg::parse_host_port("[2001:db8::1]:443")->host == "2001:db8::1");
  for (const char* text :
       {"app:0", "-app:80", "app-:80", "a..b:80", "300.1.1.1:80", "*:80", "app_1:80", "app"}) {
    CAPTURE(text);
    CHECK_FALSE(sg::parse_host_port(text).has_value());
  }
}

TEST_CASE("a diagnostic formats as FILE:LINE:COL and leaves out a missing position") {
  CHECK(sg::ConfigDiagnostic{"gw.toml", 3, 7, "bad"}.format() == "gw.toml:3:7: bad");
  CHECK(sg::ConfigDiagnostic{"gw.toml", 0, 0, "bad"}.format() == "gw.toml: bad");
}
