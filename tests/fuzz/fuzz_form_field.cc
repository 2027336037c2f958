// Fuzz target: the streaming urlencoded field scanner (proxy_core/policy/form_field_scanner.h),
// against a naive whole-body reading written here.
//
// Input: byte 0 picks the piece size (1 + byte % 16) the body is fed in; byte 1 the byte bound
// (255: none); byte 2's low bit the field name ("csrf_token" or "a"); the rest is the body.
//
// Invariants:
// - the result and value are those of the naive reading: split on '&', then on the first '=',
//   '+' as a space, %XX decoded, a malformed escape spoils its pair; the first pair named the field
//   decides; a value over max_value is kTooLong; the bound counts the bytes up to the one that
//   decides (the field's '&', or the end of the body);
// - the value kept is never longer than max_value (memory is bounded by it, not by the body).
#include <string>
#include <string_view>

#include "proxy_core/policy/form_field_scanner.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using Result = sg::FormFieldScanner::Result;
constexpr size_t kMaxValue = 8;

int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// WHATWG-style decoding; false on a malformed escape.
bool decode(std::string_view in, std::string& out) {
  out.clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '+') {
      out += ' ';
    } else if (in[i] == '%') {
      if (i + 2 >= in.size()) return false;
      const int hi = hex(in[i + 1]), lo = hex(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out += in[i];
    }
  }
  return true;
}

struct Expected {
  Result result;
  std::string value;
};

Expected naive(std::string_view body, std::string_view field, uint64_t max_bytes) {
  size_t start = 0;
  while (start <= body.size()) {
    size_t end = body.find('&', start);
    const bool last = end == std::string_view::npos;
    if (last) end = body.size();
    const std::string_view pair = body.substr(start, end - start);
    const size_t eq = pair.find('=');
    std::string name, value;
    const bool name_ok = decode(pair.substr(0, eq), name);
    if (name_ok && name == field) {
      // Decided at the '&' (byte `end` must be within the bound) or at the end of the body.
      if (last ? body.size() > max_bytes : end >= max_bytes) return {Result::kTooLarge, ""};
      if (eq == std::string_view::npos) return {Result::kFound, ""};
      if (!decode(pair.substr(eq + 1), value)) return {Result::kMalformed, ""};
      if (value.size() > kMaxValue) return {Result::kTooLong, ""};
      return {Result::kFound, value};
    }
    if (last) break;
    start = end + 1;
  }
  return {body.size() > max_bytes ? Result::kTooLarge : Result::kNotFound, ""};
}

}  // namespace

SG_FUZZ_ENTRY(form_field) {
  if (size < 3) return 0;
  const size_t step = 1 + data[0] % 16;
  const uint64_t max_bytes = data[1] == 255 ? UINT64_MAX : data[1];
  const std::string_view field = (data[2] & 1) ? "a" : "csrf_token";
  const std::string_view body(reinterpret_cast<const char*>(data + 3), size - 3);

  sg::FormFieldScanner scanner(field, max_bytes, kMaxValue);
  for (size_t i = 0; i < body.size(); i += step) {
    scanner.feed(body.substr(i, step));
    SG_FUZZ_CHECK(scanner.value().size() <= kMaxValue);
  }
  const Result got = scanner.finish();
  const Expected want = naive(body, field, max_bytes);
  SG_FUZZ_CHECK(got == want.result);
  if (got == Result::kFound) SG_FUZZ_CHECK(scanner.value() == want.value);
  return 0;
}
