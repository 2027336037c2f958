// Shared pieces of the fuzz targets in tests/fuzz/.
//
// Each target defines its entry point with SG_FUZZ_ENTRY(name). Built for libFuzzer (SG_LIBFUZZER
// defined, one binary per target) that is LLVMFuzzerTestOneInput; otherwise it is fuzz_<name>, so
// that fuzz_regression can link every target into one binary and replay the corpus through each.
//
// Invariants are checked with SG_FUZZ_CHECK, which aborts in every build type (assert() is
// compiled out in RelWithDebInfo): libFuzzer then saves the input, fuzz_regression writes it to
// fuzz-regression-crash-<target>.bin.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proxy_core/http/http_message.h"
#include "proxy_core/http/http_parser.h"
#include "proxy_core/session/session_attributes.h"

#ifdef SG_LIBFUZZER
#define SG_FUZZ_ENTRY(name) extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
#else
#define SG_FUZZ_ENTRY(name) extern "C" int fuzz_##name(const uint8_t* data, size_t size)
#endif

#define SG_FUZZ_CHECK(cond) \
  ((cond) ? static_cast<void>(0) : ::sg_fuzz::check_failed(#cond, __FILE__, __LINE__))

namespace sg_fuzz {

[[noreturn]] inline void check_failed(const char* what, const char* file, int line) {
  std::fprintf(stderr, "%s:%d: fuzz invariant violated: %s\n", file, line, what);
  std::abort();
}

inline std::string_view as_text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// A message head as written on the wire by header_rewrite.cc, split into its lines.
struct WireHead {
  std::string_view start_line;
  std::vector<std::pair<std::string_view, std::string_view>> fields;  // name, value

  size_t count(std::string_view name) const {
    size_t n = 0;
    for (const auto& f : fields)
      if (sg::iequals(f.first, name)) ++n;
    return n;
  }
  std::vector<std::string_view> values(std::string_view name) const {
    std::vector<std::string_view> v;
    for (const auto& f : fields)
      if (sg::iequals(f.first, name)) v.push_back(f.second);
    return v;
  }
};

// Checks the syntax of a head we built and splits it. Independent of header_rewrite.cc on
// purpose: the head ends with the only empty line; every line is free of CR, LF and NUL (RFC 9110
// §5.5: those are never valid in a field value, and forwarding them is how responses are split)
// and of every other control byte but HTAB;
// every field line is `token ": " value`.
inline WireHead split_wire_head(std::string_view out) {
  SG_FUZZ_CHECK(out.size() >= 4 && out.substr(out.size() - 4) == "\r\n\r\n");
  SG_FUZZ_CHECK(out.find("\r\n\r\n") == out.size() - 4);
  WireHead head;
  std::string_view rest = out.substr(0, out.size() - 2);  // every line, each with its CRLF
  bool first = true;
  while (!rest.empty()) {
    size_t eol = rest.find("\r\n");
    SG_FUZZ_CHECK(eol != std::string_view::npos);
    std::string_view line = rest.substr(0, eol);
    rest.remove_prefix(eol + 2);
    SG_FUZZ_CHECK(!line.empty());
    SG_FUZZ_CHECK(line.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos);
    // Nor any other control byte but HTAB (RFC 9110 §5.5: VCHAR, obs-text, SP and HTAB only).
    for (char c : line) {
      const auto u = static_cast<unsigned char>(c);
      SG_FUZZ_CHECK(u == '\t' || (u >= 0x20 && u != 0x7f));
    }
    if (first) {
      head.start_line = line;
      first = false;
      continue;
    }
    size_t colon = line.find(':');
    SG_FUZZ_CHECK(colon != std::string_view::npos);
    std::string_view name = line.substr(0, colon);
    SG_FUZZ_CHECK(sg::is_http_token(name));
    std::string_view value = line.substr(colon + 1);
    // The builder writes ": " then the value (possibly empty).
    SG_FUZZ_CHECK(!value.empty() && value[0] == ' ');
    value.remove_prefix(1);
    head.fields.emplace_back(name, value);
  }
  SG_FUZZ_CHECK(!first);
  return head;
}

// Lowercase with '_' read as '-': how CGI-style applications see a header name.
inline std::string fold_name(std::string_view name) {
  std::string s(name);
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
    if (c == '_') c = '-';
  }
  return s;
}

// Feeds `reads` to `parser` one after another, as the connection code does. `on_event` runs for
// every event but kNeedMore and returns false to stop (then feed_reads returns false); it calls
// resume() itself where a pause must be lifted. Checks what every harness relies on: no livelock
// (at most `max_steps` calls), never more bytes used than given, kNeedMore only when a read is used
// up.
template <class OnEvent>
bool feed_reads(sg::HttpParser& parser, std::span<const std::string_view> reads, size_t max_steps,
                OnEvent&& on_event) {
  size_t steps = 0;
  for (std::string_view pending : reads) {
    while (!pending.empty()) {
      SG_FUZZ_CHECK(++steps <= max_steps);
      size_t used = 0;
      const sg::HttpParser::Event ev = parser.execute(pending.data(), pending.size(), used);
      SG_FUZZ_CHECK(used <= pending.size());
      pending.remove_prefix(used);
      if (ev == sg::HttpParser::Event::kNeedMore) {
        SG_FUZZ_CHECK(pending.empty());
        continue;
      }
      if (!on_event(ev)) return false;
    }
  }
  return true;
}

// RFC 6265 §5.2, written apart from set_cookie.cc: does this Set-Cookie value set `name`? (A
// value without '=' in its name-value pair is ignored by user agents: it sets nothing.)
inline bool sets_cookie_named(std::string_view value, std::string_view name) {
  std::string_view pair = value.substr(0, value.find(';'));
  const size_t eq = pair.find('=');
  if (eq == std::string_view::npos) return false;
  std::string_view n = pair.substr(0, eq);
  while (!n.empty() && (n.front() == ' ' || n.front() == '\t'))
    n.remove_prefix(1);
  while (!n.empty() && (n.back() == ' ' || n.back() == '\t'))
    n.remove_suffix(1);
  return n == name;
}

}  // namespace sg_fuzz
