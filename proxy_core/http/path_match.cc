#include "proxy_core/http/path_match.h"

#include <cstddef>

namespace sg {

bool path_matches(std::string_view pattern, std::string_view path) {
  // Greedy matching with one backtrack point: on a mismatch, let the most recent '*' swallow one
  // more byte. Earlier stars never need revisiting, so the cost is O(pattern * path) at worst and
  // linear for the usual single trailing '*'. No recursion: the path comes from the client.
  size_t p = 0;
  size_t s = 0;
  size_t star = std::string_view::npos;
  size_t star_s = 0;
  while (s < path.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      star_s = s;
    } else if (p < pattern.size() && pattern[p] == path[s]) {
      ++p;
      ++s;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      s = ++star_s;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*')
    ++p;
  return p == pattern.size();
}

std::string_view path_without_query(std::string_view target) {
  std::string_view rest = target;
  if (!rest.empty() && rest.front() != '/') {
    // absolute-form: scheme "://" authority path-abempty [ "?" query ]
    size_t sep = rest.find("://");
    if (sep == std::string_view::npos) return target;  // authority-form or "*"
    rest = rest.substr(sep + 3);
    size_t slash = rest.find_first_of("/?#");
    if (slash == std::string_view::npos || rest[slash] != '/') return "/";
    rest = rest.substr(slash);
  }
  return rest.substr(0, rest.find_first_of("?#"));
}

}  // namespace sg
