#include "proxy_core/http/cookie.h"
#include "proxy_core/http/http_message.h"

#include <algorithm>

namespace sg {
namespace {

struct CookiePair {
  std::string_view text;   // the whole trimmed pair, as forwarded
  std::string_view name;   // trimmed; empty when the pair has no '='
  std::string_view value;  // trimmed
  bool has_equals = false;
};

CookiePair split_pair(std::string_view pair) {
  CookiePair p;
  p.text = trim_ows(pair);
  size_t eq = p.text.find('=');
  if (eq == std::string_view::npos) return p;
  // The name ends at the first '='; a value may itself contain '=' (base64 padding, JSON...).
  p.has_equals = true;
  p.name = trim_ows(p.text.substr(0, eq));
  p.value = trim_ows(p.text.substr(eq + 1));
  return p;
}

// Calls fn(CookiePair) for every non-empty pair of every field, in order.
template <typename Fn>
void for_each_pair(const std::vector<std::string_view>& fields, Fn&& fn) {
  for (std::string_view field : fields) {
    size_t start = 0;
    while (start <= field.size()) {
      size_t semi = field.find(';', start);
      if (semi == std::string_view::npos) semi = field.size();
      CookiePair p = split_pair(field.substr(start, semi - start));
      if (!p.text.empty()) fn(p);
      start = semi + 1;
    }
  }
}

}  // namespace

void find_cookie_values(const std::vector<std::string_view>& cookie_fields, std::string_view name,
                        std::vector<std::string_view>& values) {
  values.clear();
  if (name.empty()) return;
  for_each_pair(cookie_fields, [&](const CookiePair& p) {
    if (p.has_equals && p.name == name) values.push_back(p.value);
  });
}

std::vector<std::string_view> find_cookie_values(const std::vector<std::string_view>& cookie_fields,
                                                 std::string_view name) {
  std::vector<std::string_view> values;
  find_cookie_values(cookie_fields, name, values);
  return values;
}

std::string remove_cookie(const std::vector<std::string_view>& cookie_fields,
                          std::string_view name) {
  std::string out;
  for_each_pair(cookie_fields, [&](const CookiePair& p) {
    if (p.has_equals && !name.empty() && p.name == name) return;
    if (!out.empty()) out += "; ";
    out += p.text;
  });
  return out;
}

}  // namespace sg
