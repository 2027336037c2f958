// Internal to the configuration loader: reads one TOML table's keys into typed values.
//
// Each getter leaves the Config default in place when the key is absent, and reports (leaving the
// default) when the value is invalid, so one pass collects every error of the file. finish()
// reports the keys no getter asked for. Borrows the table and the LoadContext; single-threaded.
#pragma once

#include <toml++/toml.h>

#include <filesystem>
#include <functional>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proxy_core/config/config_validate.h"
#include "proxy_core/config/edit_distance.h"

namespace sg::config_detail {

// State shared by every table of one load.
struct LoadContext {
  Diagnostics& diagnostics;
  KeyPositions& positions;
  std::filesystem::path base_dir;           // relative paths resolve here; empty = as written
  std::span<const std::string_view> known;  // every accepted dotted key, for suggestions
};

// A check on one string value: an error text without the key name, or "" when it is fine.
using Check = std::function<std::string(const std::string&)>;

SourcePos pos_of(const toml::source_region& region);
// How a value reads after "got": "\"30 minutes\"", "the number 30", "an array".
std::string describe(const toml::node& node);
// `expected WHAT, got "VALUE"`.
std::string expected(std::string_view what, const std::string& got);
bool has_control(std::string_view text);
// Replaces ${NAME} with the environment variable NAME ("$${" is a literal "${"). On failure
// returns false with `error` set.
bool expand_env(std::string_view raw, std::string& out, std::string& error);

class TableReader {
 public:
  TableReader(LoadContext& context, const toml::table* table, std::string name)
      : context_(context), table_(table), name_(std::move(name)) {}

  bool present() const { return table_ != nullptr; }
  const toml::table* table() const { return table_; }
  LoadContext& context() { return context_; }
  const std::string& name() const { return name_; }  // "tls.certificates[0]", "" for the root
  // "server.listen" for key "listen" of [server].
  std::string key_name(std::string_view key) const;

  // The raw node of `key`, or nullptr; marks the key as known and records its position.
  const toml::node* take(std::string_view key);
  void error(const toml::node& node, std::string_view key, const std::string& message);
  void warning(const toml::node& node, std::string_view key, const std::string& message);
  // The text of a string node after ${ENV} substitution; reports and returns false otherwise.
  bool text(const toml::node& node, std::string_view key, std::string_view what, std::string& out);

  // A sub-table ([store.memory] of [store]); reports a value of another type.
  TableReader section(std::string_view key);
  // An array of tables ([[tls.certificates]]): a reader per entry, named "key[i]" in messages;
  // reports a value of another type (and returns none).
  std::vector<TableReader> table_array(std::string_view key);
  // Without a `check`, control characters are refused.
  void string(std::string_view key, std::string& out, const Check& check = {});
  // A file path; relative paths resolve against the configuration file's directory.
  void path(std::string_view key, std::string& out);
  std::string resolve(const std::string& value) const;
  // An array of strings (a lone string reads as a one-element list). Returns the element nodes
  // when every element is valid, so callers can report on one; `out` is unchanged otherwise.
  std::vector<const toml::node*> string_list(std::string_view key, std::vector<std::string>& out,
                                             const Check& check, bool allow_empty);
  void duration(std::string_view key, Millis& out, Millis min);
  void boolean(std::string_view key, bool& out);

  // An unsigned integer: a TOML integer, or a string of digits (so ${ENV} can supply it).
  template <typename T>
  void integer(std::string_view key, T& out, uint64_t min, uint64_t max) {
    if (const auto value = unsigned_value(key, min, max, false)) out = static_cast<T>(*value);
  }
  // A size: a TOML integer (bytes) or a string such as "16KiB".
  template <typename T>
  void size(std::string_view key, T& out, uint64_t min, uint64_t max) {
    if (const auto value = unsigned_value(key, min, max, true)) out = static_cast<T>(*value);
  }

  // One of a fixed set of words, matched case-insensitively; `out` gets the option's value.
  template <typename E>
  void choice(std::string_view key, E& out,
              std::initializer_list<std::pair<std::string_view, E>> options) {
    std::vector<std::string> names;
    for (const auto& option : options)
      names.emplace_back(option.first);
    if (const auto index = choice_index(key, names)) out = std::data(options)[*index].second;
  }

  // Reports every key of the table that no getter asked for.
  void finish();

 private:
  std::optional<uint64_t> unsigned_value(std::string_view key, uint64_t min, uint64_t max,
                                         bool is_size);
  std::optional<size_t> choice_index(std::string_view key, const std::vector<std::string>& names);
  std::string unknown_key_message(std::string_view leaf, bool is_table) const;

  LoadContext& context_;
  const toml::table* table_;
  std::string name_;
  std::set<std::string, std::less<>> consumed_;
};

}  // namespace sg::config_detail
