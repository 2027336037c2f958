#include "proxy_core/config/config_reader.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "proxy_core/base/ascii.h"

namespace sg::config_detail {
namespace {

constexpr std::string_view kDurationWhat = "a duration such as \"30m\"";
constexpr std::string_view kSizeWhat =
    "a size such as \"16KiB\" or \"10MiB\" (units B, KiB, MiB, GiB, TiB)";

// "tls.certificates[0]" -> "tls.certificates": the form known_config_keys() uses.
std::string generic_name(std::string_view name) {
  std::string out;
  bool in_index = false;
  for (char c : name) {
    if (c == '[') in_index = true;
    if (!in_index) out += c;
    if (c == ']') in_index = false;
  }
  return out;
}

std::optional<uint64_t> digits_value(std::string_view s) {
  // 19 digits always fit in 64 bits; longer is out of any range here anyway.
  if (s.empty() || s.size() > 19) return std::nullopt;
  uint64_t value = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  return value;
}

// "16KB", "16k" -> `; did you mean "16KiB"?`: only the IEC spelling is accepted, since "KB" means
// 1000 bytes to some readers and 1024 to others.
std::string size_unit_hint(std::string_view s) {
  size_t n = 0;
  while (n < s.size() && s[n] >= '0' && s[n] <= '9')
    ++n;
  if (n == 0) return "";
  static constexpr std::pair<std::string_view, std::string_view> kHints[] = {
      {"k", "KiB"},   {"kb", "KiB"},  {"kib", "KiB"}, {"m", "MiB"},   {"mb", "MiB"},
      {"mib", "MiB"}, {"g", "GiB"},   {"gb", "GiB"},  {"gib", "GiB"}, {"t", "TiB"},
      {"tb", "TiB"},  {"tib", "TiB"}, {"b", "B"},     {"bytes", "B"}};
  for (const auto& [typed, unit] : kHints) {
    if (iequals(s.substr(n), typed)) {
      return "; did you mean " + toml_quote(std::string(s.substr(0, n)) + std::string(unit)) + "?";
    }
  }
  return "";
}

}  // namespace

SourcePos pos_of(const toml::source_region& region) {
  return {static_cast<int>(region.begin.line), static_cast<int>(region.begin.column)};
}

std::string describe(const toml::node& node) {
  if (const auto* s = node.as_string()) return toml_quote(s->get());
  if (const auto* i = node.as_integer()) return "the number " + std::to_string(i->get());
  if (const auto* f = node.as_floating_point()) {
    std::ostringstream out;
    out << f->get();
    return "the number " + out.str();
  }
  if (const auto* b = node.as_boolean()) return b->get() ? "true" : "false";
  if (node.is_array()) return "an array";
  if (node.is_table()) return "a table";
  return "a date or time";
}

std::string expected(std::string_view what, const std::string& got) {
  return "expected " + std::string(what) + ", got " + toml_quote(got);
}

bool has_control(std::string_view text) {
  return std::any_of(text.begin(), text.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

bool expand_env(std::string_view raw, std::string& out, std::string& error) {
  out.clear();
  for (size_t i = 0; i < raw.size();) {
    if (raw.compare(i, 3, "$${") == 0) {
      out += "${";
      i += 3;
      continue;
    }
    if (raw.compare(i, 2, "${") != 0) {
      out += raw[i++];
      continue;
    }
    const size_t close = raw.find('}', i + 2);
    if (close == std::string_view::npos) {
      error = "unterminated \"${\" (write \"$${\" for a literal \"${\")";
      return false;
    }
    const std::string name(raw.substr(i + 2, close - i - 2));
    // POSIX shell names: what an operator can actually export.
    const bool valid = !name.empty() && !is_ascii_digit(name[0]) &&
                       std::all_of(name.begin(), name.end(), [](char c) {
                         return c == '_' || is_ascii_alpha(c) || is_ascii_digit(c);
                       });
    if (!valid) {
      error = "invalid environment variable name " + toml_quote(name);
      return false;
    }
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) {
      error = "environment variable " + toml_quote(name) + " is not set";
      return false;
    }
    out += value;
    i = close + 1;
  }
  return true;
}

std::string TableReader::key_name(std::string_view key) const {
  return name_.empty() ? std::string(key) : name_ + "." + std::string(key);
}

const toml::node* TableReader::take(std::string_view key) {
  if (table_ == nullptr) return nullptr;
  const toml::node* node = table_->get(key);
  if (node == nullptr) return nullptr;
  consumed_.emplace(key);
  context_.positions.set(key_name(key), pos_of(node->source()));
  return node;
}

void TableReader::error(const toml::node& node, std::string_view key, const std::string& message) {
  context_.diagnostics.error(pos_of(node.source()), key_name(key) + ": " + message);
}

void TableReader::warning(const toml::node& node, std::string_view key,
                          const std::string& message) {
  context_.diagnostics.warning(pos_of(node.source()), key_name(key) + ": " + message);
}

bool TableReader::text(const toml::node& node, std::string_view key, std::string_view what,
                       std::string& out) {
  const auto* s = node.as_string();
  if (s == nullptr) {
    error(node, key, "expected " + std::string(what) + ", got " + describe(node));
    return false;
  }
  std::string problem;
  if (!expand_env(s->get(), out, problem)) {
    error(node, key, problem);
    return false;
  }
  return true;
}

TableReader TableReader::section(std::string_view key) {
  const toml::node* node = take(key);
  if (node != nullptr && !node->is_table()) {
    error(*node, key, "expected a table ([" + key_name(key) + "]), got " + describe(*node));
  }
  return TableReader(context_, node != nullptr ? node->as_table() : nullptr, key_name(key));
}

void TableReader::string(std::string_view key, std::string& out, const Check& check) {
  const toml::node* node = take(key);
  std::string value;
  if (node == nullptr || !text(*node, key, "a string", value)) return;
  std::string problem;
  if (check) {
    problem = check(value);
  } else if (has_control(value)) {
    problem = "control characters are not allowed, got " + toml_quote(value);
  }
  if (!problem.empty()) {
    error(*node, key, problem);
    return;
  }
  out = std::move(value);
}

void TableReader::path(std::string_view key, std::string& out) {
  std::string value = out;
  string(key, value);
  out = resolve(value);
}

std::string TableReader::resolve(const std::string& value) const {
  if (value.empty() || context_.base_dir.empty()) return value;
  const std::filesystem::path p(value);
  return p.is_absolute() ? value : (context_.base_dir / p).lexically_normal().string();
}

std::vector<TableReader> TableReader::table_array(std::string_view key) {
  std::vector<TableReader> entries;
  const toml::node* node = take(key);
  if (node == nullptr) return entries;
  const auto* array = node->as_array();
  if (array == nullptr || !std::all_of(array->begin(), array->end(),
                                       [](const toml::node& n) { return n.is_table(); })) {
    error(*node, key,
          "expected an array of tables ([[" + key_name(key) + "]]), got " + describe(*node));
    return entries;
  }
  for (size_t i = 0; i < array->size(); ++i) {
    const toml::table* table = array->get(i)->as_table();
    const std::string name = key_name(key) + "[" + std::to_string(i) + "]";
    context_.positions.set(name, pos_of(table->source()));
    entries.emplace_back(context_, table, name);
  }
  return entries;
}

std::vector<const toml::node*> TableReader::string_list(std::string_view key,
                                                        std::vector<std::string>& out,
                                                        const Check& check, bool allow_empty) {
  const toml::node* node = take(key);
  if (node == nullptr) return {};
  std::vector<const toml::node*> elements;
  if (const auto* array = node->as_array()) {
    for (const toml::node& element : *array)
      elements.push_back(&element);
  } else if (node->is_string()) {
    elements.push_back(node);
  } else {
    error(*node, key, "expected an array of strings, got " + describe(*node));
    return {};
  }
  if (elements.empty() && !allow_empty) {
    error(*node, key, "must list at least one value");
    return {};
  }
  std::vector<std::string> values;
  bool ok = true;
  for (size_t i = 0; i < elements.size(); ++i) {
    context_.positions.set(key_name(key) + "[" + std::to_string(i) + "]",
                           pos_of(elements[i]->source()));
    std::string value;
    if (!text(*elements[i], key, "a string", value)) {
      ok = false;
    } else if (const std::string problem = check(value); !problem.empty()) {
      error(*elements[i], key, problem);
      ok = false;
    }
    values.push_back(std::move(value));
  }
  if (!ok) return {};
  out = std::move(values);
  return elements;
}

void TableReader::duration(std::string_view key, Millis& out, Millis min) {
  const toml::node* node = take(key);
  std::string value;
  if (node == nullptr || !text(*node, key, kDurationWhat, value)) return;
  const std::optional<Millis> parsed = parse_duration(value);
  if (!parsed) {
    error(*node, key, expected(kDurationWhat, value));
  } else if (*parsed < min) {
    error(*node, key, "must be at least " + format_duration(min) + ", got " + toml_quote(value));
  } else {
    out = *parsed;
  }
}

void TableReader::boolean(std::string_view key, bool& out) {
  const toml::node* node = take(key);
  if (node == nullptr) return;
  if (const auto* b = node->as_boolean()) {
    out = b->get();
    return;
  }
  std::string value;
  if (node->is_string() && !text(*node, key, "true or false", value)) return;
  if (node->is_string() && (value == "true" || value == "false")) {
    out = value == "true";
    return;
  }
  error(*node, key, "expected true or false, got " + describe(*node));
}

std::optional<uint64_t> TableReader::unsigned_value(std::string_view key, uint64_t min,
                                                    uint64_t max, bool is_size) {
  const toml::node* node = take(key);
  if (node == nullptr) return std::nullopt;
  const std::string what =
      is_size ? std::string(kSizeWhat)
              : "an integer from " + std::to_string(min) + " to " + std::to_string(max);
  std::optional<uint64_t> value;
  if (const auto* i = node->as_integer()) {
    if (i->get() >= 0) value = static_cast<uint64_t>(i->get());
  } else if (node->is_string()) {
    std::string s;
    if (!text(*node, key, what, s)) return std::nullopt;
    value = is_size ? parse_size(s) : digits_value(s);
    if (!value && is_size) {
      error(*node, key, expected(what, s) + size_unit_hint(s));
      return std::nullopt;
    }
  }
  if (!value) {
    error(*node, key, "expected " + what + ", got " + describe(*node));
    return std::nullopt;
  }
  if (*value < min || *value > max) {
    const std::string range = is_size ? format_size(min) + " to " + format_size(max)
                                      : std::to_string(min) + " to " + std::to_string(max);
    error(*node, key, "must be from " + range + ", got " + describe(*node));
    return std::nullopt;
  }
  return value;
}

std::optional<size_t> TableReader::choice_index(std::string_view key,
                                                const std::vector<std::string>& names) {
  std::string what = "one of";
  for (size_t i = 0; i < names.size(); ++i)
    what += (i == 0 ? " " : ", ") + toml_quote(names[i]);
  const toml::node* node = take(key);
  std::string value;
  if (node == nullptr || !text(*node, key, what, value)) return std::nullopt;
  for (size_t i = 0; i < names.size(); ++i) {
    if (iequals(names[i], value)) return i;
  }
  std::string message = expected(what, value);
  // Spelling help only: "1.1" is near "1.2" but is another version, not a typo of it.
  const bool is_word = std::any_of(value.begin(), value.end(), is_ascii_alpha);
  if (const auto match = is_word ? closest_match(value, names) : std::nullopt) {
    message += "; did you mean " + toml_quote(*match) + "?";
  }
  error(*node, key, message);
  return std::nullopt;
}

void TableReader::finish() {
  if (table_ == nullptr) return;
  for (const auto& [key, node] : *table_) {
    if (consumed_.count(key.str()) != 0) continue;
    context_.diagnostics.error(pos_of(key.source()),
                               unknown_key_message(key.str(), node.is_table()));
  }
}

std::string TableReader::unknown_key_message(std::string_view leaf, bool is_table) const {
  const std::string generic_parent = generic_name(name_);
  const std::string sibling_prefix = generic_parent.empty() ? "" : generic_parent + ".";
  std::vector<std::string> siblings;
  std::vector<std::string> same_leaf_elsewhere;
  for (std::string_view known : context_.known) {
    if (known.substr(0, sibling_prefix.size()) == sibling_prefix) {
      const std::string_view rest = known.substr(sibling_prefix.size());
      const std::string next(rest.substr(0, rest.find('.')));
      if (std::find(siblings.begin(), siblings.end(), next) == siblings.end()) {
        siblings.push_back(next);
      }
    }
    if (known.substr(known.rfind('.') + 1) == leaf) same_leaf_elsewhere.emplace_back(known);
  }
  std::string message =
      (is_table ? "unknown section " : "unknown key ") + toml_quote(key_name(leaf));
  if (const auto match = closest_match(leaf, siblings)) {
    return message + "; did you mean " + toml_quote(key_name(*match)) + "?";
  }
  // A key written under the wrong section: name its home when it has only one.
  if (same_leaf_elsewhere.size() == 1) {
    return message + "; did you mean " + toml_quote(same_leaf_elsewhere[0]) + "?";
  }
  return message;
}

}  // namespace sg::config_detail
