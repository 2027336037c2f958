// Fuzz target: the Cookie-header helpers of cookie.h (and the Set-Cookie name test of
// set_cookie.h), against a second, deliberately naive reading of RFC 6265 written here.
//
// Input: byte 0 picks the cookie name (session_id, sid, __Host-s, a name with '.', or the empty
// name); the rest is split on '\n' into Cookie field values (at most 16).
//
// Invariants:
// - remove_cookie's output has no pair named the cookie name, no empty pair, no ';' but as the
//   "; " separator, keeps every other pair in order, and is a fixed point of remove_cookie;
// - find_cookie_values finds exactly the pairs remove_cookie removes, each trimmed;
// - token_candidates are distinct, token-shaped (43 base64url characters, canonical last one),
//   drawn from the values, and all of them when there are at most kMaxTokenCandidates;
// - is_token_shaped agrees with the naive check on every value;
// - set_cookie_names_cookie agrees with the naive RFC 6265 §5.2 reading on every field.
#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "proxy_core/cookie.h"
#include "proxy_core/set_cookie.h"
#include "proxy_core/token.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

constexpr std::string_view kNames[] = {"session_id", "sid", "__Host-s", "a.b", ""};

std::string_view trim_wsp(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

struct Pair {
  std::string_view text;
  std::string_view name;
  std::string_view value;
  bool has_equals;
};

// Every non-empty pair of every field: split on ';', trimmed.
std::vector<Pair> naive_pairs(const std::vector<std::string_view>& fields) {
  std::vector<Pair> pairs;
  for (std::string_view field : fields) {
    size_t start = 0;
    for (;;) {
      size_t semi = field.find(';', start);
      std::string_view text =
          trim_wsp(field.substr(start, semi == std::string_view::npos ? semi : semi - start));
      if (!text.empty()) {
        const size_t eq = text.find('=');
        Pair p{text, {}, {}, eq != std::string_view::npos};
        if (p.has_equals) {
          p.name = trim_wsp(text.substr(0, eq));
          p.value = trim_wsp(text.substr(eq + 1));
        }
        pairs.push_back(p);
      }
      if (semi == std::string_view::npos) break;
      start = semi + 1;
    }
  }
  return pairs;
}

bool naive_token_shaped(std::string_view v) {
  static constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  if (v.size() != 43) return false;
  size_t last = 0;
  for (char c : v) {
    last = kAlphabet.find(c);
    if (last == std::string_view::npos) return false;
  }
  // 43 * 6 = 258 bits for 256: the last character's two low bits are padding, zero (RFC 4648).
  return last % 4 == 0;
}

bool naive_set_cookie_names(std::string_view value, std::string_view name) {
  std::string_view pair = value.substr(0, value.find(';'));
  const size_t eq = pair.find('=');
  return eq != std::string_view::npos && !name.empty() && trim_wsp(pair.substr(0, eq)) == name;
}

}  // namespace

SG_FUZZ_ENTRY(cookie) {
  if (size < 1) return 0;
  const std::string_view name = kNames[data[0] % std::size(kNames)];
  std::string_view rest = sg_fuzz::as_text(data + 1, size - 1);
  std::vector<std::string_view> fields;
  while (fields.size() < 16) {
    const size_t nl = rest.find('\n');
    fields.push_back(rest.substr(0, nl));
    if (nl == std::string_view::npos) break;
    rest.remove_prefix(nl + 1);
  }

  const std::vector<Pair> pairs = naive_pairs(fields);
  std::vector<std::string_view> expected_values;
  std::vector<std::string_view> expected_kept;
  for (const Pair& p : pairs) {
    if (p.has_equals && !name.empty() && p.name == name) {
      expected_values.push_back(p.value);
    } else {
      expected_kept.push_back(p.text);
    }
  }

  const std::vector<std::string_view> values = sg::find_cookie_values(fields, name);
  SG_FUZZ_CHECK(values == expected_values);
  for (std::string_view v : values)
    SG_FUZZ_CHECK(trim_wsp(v) == v);

  const std::string forwarded = sg::remove_cookie(fields, name);
  std::string expected_forwarded;
  for (std::string_view text : expected_kept) {
    if (!expected_forwarded.empty()) expected_forwarded += "; ";
    expected_forwarded += text;
  }
  SG_FUZZ_CHECK(forwarded == expected_forwarded);
  const std::vector<std::string_view> forwarded_fields = {forwarded};
  for (const Pair& p : naive_pairs(forwarded_fields))
    SG_FUZZ_CHECK(!(p.has_equals && !name.empty() && p.name == name));
  SG_FUZZ_CHECK(sg::find_cookie_values(forwarded_fields, name).empty());
  SG_FUZZ_CHECK(sg::remove_cookie(forwarded_fields, name) == forwarded);

  const std::vector<std::string_view> candidates = sg::token_candidates(values);
  std::vector<std::string_view> distinct;
  for (std::string_view v : values) {
    SG_FUZZ_CHECK(sg::is_token_shaped(v) == naive_token_shaped(v));
    if (naive_token_shaped(v) && std::find(distinct.begin(), distinct.end(), v) == distinct.end())
      distinct.push_back(v);
  }
  if (distinct.size() <= sg::kMaxTokenCandidates) {
    SG_FUZZ_CHECK(candidates == distinct);
  } else {
    SG_FUZZ_CHECK(candidates.empty());
  }

  for (std::string_view field : fields)
    SG_FUZZ_CHECK(sg::set_cookie_names_cookie(field, name) == naive_set_cookie_names(field, name));
  return 0;
}
