// Internal to the configuration loader (config_loader.cc, config_validate.cc, config_render.cc):
// the diagnostics collector, where each key sat in the file, and the checks that span several keys.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "proxy_core/config/config.h"
#include "proxy_core/config/config_loader.h"

namespace sg::config_detail {

struct SourcePos {
  int line = 0;  // 0: not in the file (a default, or the file as a whole)
  int column = 0;
};

// Collects every error and warning of one load; nothing stops at the first.
class Diagnostics {
 public:
  explicit Diagnostics(std::string file) : file_(std::move(file)) {}
  void error(SourcePos where, std::string message);
  void warning(SourcePos where, std::string message);
  // Moves the collected diagnostics into `result`, errors in file order.
  void move_into(ConfigLoadResult& result);
  bool has_errors() const { return !errors_.empty(); }

 private:
  std::string file_;
  std::vector<ConfigDiagnostic> errors_;
  std::vector<ConfigDiagnostic> warnings_;
};

// Where each key present in the file had its value, by its name in messages:
// "session.cookie_name", "server.listen[1]", "tls.certificates[0].private_key". A key absent from
// the file has no entry.
class KeyPositions {
 public:
  void set(std::string key, SourcePos where) { positions_[std::move(key)] = where; }
  bool has(const std::string& key) const { return positions_.count(key) != 0; }
  // The position of the first of `keys` present in the file; {0, 0} when none is.
  SourcePos of(std::initializer_list<std::string> keys) const;

 private:
  std::map<std::string, SourcePos> positions_;
};

// `text` as a TOML basic string, quotes included. Control characters are escaped, so a hostile
// value cannot forge lines in a --check report or a log.
std::string toml_quote(std::string_view text);

// Checks that need several keys, or the file system: TLS pairs, cookie prefix rules, listener
// clashes, timeouts, store settings, files that must exist.
void validate_config(const Config& config, const KeyPositions& positions, Diagnostics& diagnostics);

}  // namespace sg::config_detail
