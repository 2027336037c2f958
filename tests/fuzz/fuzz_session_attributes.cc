// Fuzz target: the application's X-Session-Set-<Name>: <value> directives applied to a session's
// attributes (session_attributes.h). The attributes come back as X-Session-<Name> request headers
// on every later request, so what is stored must be a valid header name and value.
//
// Input: byte 0 is max_attributes (0-15), byte 1 a quarter of max_bytes; the rest is one
// directive per line, "<name>:<value>" (a line without ':' is a name with an empty value).
//
// Invariants after every directive:
// - the list is sorted by name, names unique, folded (lowercase, no '_'), tokens, never "id";
// - values are non-empty, visible ASCII or SP, without leading or trailing SP/HTAB;
// - at most max_attributes entries, at most max_bytes of names and values;
// - a refused directive changes nothing; an accepted one leaves exactly the folded name with the
//   trimmed value (or removes it for an empty value);
// - the error matches the name and value: kBadName exactly for a non-token or "id".
#include <string>
#include <string_view>

#include "proxy_core/session/session_attributes.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

void check_attributes(const sg::SessionAttributes& attrs, uint32_t max_attributes,
                      uint32_t max_bytes) {
  SG_FUZZ_CHECK(attrs.size() <= max_attributes);
  size_t bytes = 0;
  for (size_t i = 0; i < attrs.size(); ++i) {
    const auto& [name, value] = attrs[i];
    if (i > 0) SG_FUZZ_CHECK(attrs[i - 1].first < name);
    SG_FUZZ_CHECK(sg::is_http_token(name));
    SG_FUZZ_CHECK(sg_fuzz::fold_name(name) == name);
    SG_FUZZ_CHECK(name != "id");
    SG_FUZZ_CHECK(!value.empty());
    SG_FUZZ_CHECK(value.front() != ' ' && value.back() != ' ');
    for (char c : value) {
      const auto u = static_cast<unsigned char>(c);
      SG_FUZZ_CHECK(u >= 0x20 && u <= 0x7e);
    }
    bytes += name.size() + value.size();
  }
  SG_FUZZ_CHECK(bytes <= max_bytes);
}

const std::string* find(const sg::SessionAttributes& attrs, const std::string& name) {
  for (const auto& [n, v] : attrs)
    if (n == name) return &v;
  return nullptr;
}

}  // namespace

SG_FUZZ_ENTRY(session_attributes) {
  if (size < 2) return 0;
  const uint32_t max_attributes = data[0] % 16;
  const uint32_t max_bytes = 4u * data[1];
  std::string_view rest = sg_fuzz::as_text(data + 2, size - 2);
  sg::SessionAttributes attrs;
  for (int directives = 0; directives < 64 && !rest.empty(); ++directives) {
    const size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
    const size_t colon = line.find(':');
    const std::string_view name = line.substr(0, colon);
    const std::string_view value =
        colon == std::string_view::npos ? std::string_view() : line.substr(colon + 1);

    const sg::SessionAttributes before = attrs;
    const sg::AttributeError error =
        sg::apply_attribute(attrs, name, value, max_attributes, max_bytes);
    SG_FUZZ_CHECK(*sg::attribute_error_text(error) != '\0');
    check_attributes(attrs, max_attributes, max_bytes);

    const std::string folded = sg_fuzz::fold_name(name);
    const bool bad_name = !sg::is_http_token(name) || folded == "id";
    SG_FUZZ_CHECK((error == sg::AttributeError::kBadName) == bad_name);
    if (error != sg::AttributeError::kOk) {
      SG_FUZZ_CHECK(attrs == before);
      continue;
    }
    const std::string_view trimmed = sg::trim_ows(value);
    const std::string* stored = find(attrs, folded);
    // Every other attribute is untouched.
    const bool was_present = find(before, folded) != nullptr;
    for (const auto& [n, v] : before) {
      if (n == folded) continue;
      const std::string* kept = find(attrs, n);
      SG_FUZZ_CHECK(kept != nullptr && *kept == v);
    }
    SG_FUZZ_CHECK(attrs.size() + (was_present && trimmed.empty()) ==
                  before.size() + (!was_present && !trimmed.empty()));
    if (trimmed.empty()) {
      SG_FUZZ_CHECK(stored == nullptr);
    } else {
      SG_FUZZ_CHECK(stored != nullptr && *stored == trimmed);
    }
  }
  return 0;
}
