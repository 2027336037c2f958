// Loads gateway.toml into a Config: every key typed and validated, every problem reported.
//
// Pure logic apart from reading the file itself and checking the files it names (existence,
// permissions); no libuv. Errors are values, never exceptions: `sessiongate --check` prints every
// error of a file at once, and SIGHUP keeps the running Config when a reload has any error.
//
// Conventions the loader enforces (gateway.toml documents them for operators):
// - Unknown sections and keys are errors, with a "did you mean" suggestion for near misses.
// - `${NAME}` inside any string value is replaced by the environment variable NAME; an unset NAME
//   is an error. `$${` yields a literal `${`. Integer and boolean keys also accept a string of
//   their value ("8", "true"), so that they too can come from the environment.
// - Durations are strings: "250ms", "10s", "5m", "1h", "1d" or a sum in descending units, "1h30m".
// - Sizes are an integer (bytes) or a string with an IEC unit: "512", "512B", "16KiB", "10MiB",
//   "1GiB", "1TiB". "16KB"/"16k" are refused (with a suggestion): "KB" means 1000 to some readers
//   and 1024 to others, and a limit must not depend on which.
// - Relative file paths are resolved against the directory of the configuration file, so the
//   gateway finds them whatever its working directory. Config holds the resolved paths.
// - Every file path that is set must name a readable file (a missing one is an error, even where
//   the setting is unused); private keys and redis.password_file readable by every user get a
//   warning. Files the gateway creates (snapshot_path, log.access) need an existing directory.
// - Config never holds secret material, only paths to it (redis.password_file, private keys), so
//   render_effective_config() redacts nothing; redis.address is refused when it embeds
//   credentials ("user:pass@host") to keep it that way.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy_core/config/config.h"

namespace sg {

struct ConfigDiagnostic {
  std::string file;
  int line = 0, column = 0;  // 1-based; 0 when the problem has no single place in the file
  std::string message;

  // "FILE:LINE:COL: message"; ":LINE:COL" is left out when line is 0.
  std::string format() const;
};

struct ConfigLoadResult {
  std::optional<Config> config;  // set only when errors is empty
  std::vector<ConfigDiagnostic> errors;
  std::vector<ConfigDiagnostic> warnings;
};

ConfigLoadResult load_config_file(const std::string& path);
// `source_name` names the text in diagnostics; relative paths in the text stay relative (to the
// working directory).
ConfigLoadResult load_config_string(std::string_view toml_text, const std::string& source_name);

// TOML text with every key and its effective value, in gateway.toml's order; loading it gives
// back the same Config. Redacts nothing: see the header comment.
std::string render_effective_config(const Config& config);

// Every key the loader accepts, dotted: "server.listen", "tls.certificates.server_names", ...
std::vector<std::string> known_config_keys();

// "250ms", "10s", "5m", "1h", "1d", "1h30m" (units strictly descending, each at most once).
// nullopt when malformed, negative, fractional, without a unit, or beyond ~292 million years.
std::optional<Millis> parse_duration(std::string_view text);
// The shortest spelling parse_duration reads back as `value`: 5400000ms -> "1h30m", 0 -> "0s".
std::string format_duration(Millis value);

// "512", "512B", "16KiB", "10MiB", "1GiB", "1TiB"; nullopt when malformed or over 2^64-1.
std::optional<uint64_t> parse_size(std::string_view text);
// The largest whole IEC unit: 16384 -> "16KiB", 1000 -> "1000B".
std::string format_size(uint64_t bytes);

struct ListenEndpoint {
  std::string host;  // a numeric IPv4 or IPv6 address, without brackets
  uint16_t port = 0;
};

// "127.0.0.1:8080", "[::1]:8080", "0.0.0.0:80", "*:80" or ":80" (host "0.0.0.0"; use "[::]:80"
// for all IPv6 and, on a dual-stack host, IPv4 addresses). Port 0 asks the kernel for a free port.
// Host names are refused: a listener binds addresses, and DNS at bind time is a trap.
std::optional<ListenEndpoint> parse_listen_address(std::string_view text);

// An address to connect to (upstream.servers, store.redis.address, sentinels): like
// parse_listen_address, but the host may also be a DNS name and the port must be 1..65535.
std::optional<ListenEndpoint> parse_host_port(std::string_view text);

}  // namespace sg
