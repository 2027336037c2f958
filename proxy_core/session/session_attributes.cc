#include "proxy_core/session/session_attributes.h"
#include "proxy_core/http/http_message.h"

#include <algorithm>

#include "proxy_core/base/ascii.h"

namespace sg {
namespace {

size_t total_bytes(const SessionAttributes& attrs) {
  size_t n = 0;
  for (const auto& [k, v] : attrs)
    n += k.size() + v.size();
  return n;
}

}  // namespace

const char* attribute_error_text(AttributeError error) {
  switch (error) {
    case AttributeError::kOk:
      return "ok";
    case AttributeError::kBadName:
      return "attribute name is not a valid header token or is reserved";
    case AttributeError::kBadValue:
      return "attribute value has a control or non-ASCII byte";
    case AttributeError::kTooMany:
      return "too many session attributes";
    case AttributeError::kTooManyBytes:
      return "session attributes too large";
  }
  return "unknown attribute error";
}

bool is_http_token(std::string_view name) {
  return is_token(name);
}

std::string fold_attribute_name(std::string_view name) {
  std::string folded(name);
  for (char& c : folded) {
    c = c == '_' ? '-' : ascii_lower(c);
  }
  return folded;
}

AttributeError apply_attribute(SessionAttributes& attrs, std::string_view name,
                               std::string_view value, uint32_t max_attributes,
                               uint32_t max_bytes) {
  if (!is_http_token(name)) return AttributeError::kBadName;
  std::string key = fold_attribute_name(name);
  if (key == "id") return AttributeError::kBadName;  // X-Session-Id carries the handle

  value = trim_ows(value);
  for (char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u > 0x7e) return AttributeError::kBadValue;
  }

  auto it =
      std::lower_bound(attrs.begin(), attrs.end(), key,
                       [](const auto& entry, const std::string& k) { return entry.first < k; });
  const bool present = it != attrs.end() && it->first == key;
  if (value.empty()) {
    if (present) attrs.erase(it);
    return AttributeError::kOk;
  }

  // Check both bounds against the would-be state before touching anything.
  const size_t count_after = attrs.size() + (present ? 0 : 1);
  if (count_after > max_attributes) return AttributeError::kTooMany;
  size_t bytes_after = total_bytes(attrs) + key.size() + value.size();
  if (present) bytes_after -= it->first.size() + it->second.size();
  if (bytes_after > max_bytes) return AttributeError::kTooManyBytes;

  if (present) {
    it->second.assign(value);
  } else {
    attrs.emplace(it, std::move(key), std::string(value));
  }
  return AttributeError::kOk;
}

}  // namespace sg
