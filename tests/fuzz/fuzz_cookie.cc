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
// And the token codec (token.h), on every field and value and on the input's first 32 bytes:
// - a token-shaped text decodes (naive base64url, RFC 4648 §5) to 32 bytes that encode back to
//   the same text (one spelling per token), and the naive encoding of any 32 bytes is accepted;
// - hash_token is the SHA-256 of the text, computed here with OpenSSL's one-shot EVP_Digest;
// - constant_time_equal agrees with ==; handle_to_hex with a naive lowercase hex;
// - generate_token gives token-shaped text and generate_handle a handle.
#include <openssl/evp.h>

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "proxy_core/http/cookie.h"
#include "proxy_core/http/set_cookie.h"
#include "proxy_core/session/session_cookie.h"
#include "proxy_core/session/token.h"
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

constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string naive_encode(const uint8_t* bytes, size_t n) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; ++i) {
    acc = (acc << 8) | bytes[i];
    bits += 8;
    while (bits >= 6) {
      out.push_back(kAlphabet[(acc >> (bits - 6)) & 63]);
      bits -= 6;
    }
  }
  if (bits > 0) out.push_back(kAlphabet[(acc << (6 - bits)) & 63]);
  return out;
}

// Decodes 43 characters to 32 bytes; false when a character is outside the alphabet.
bool naive_decode(std::string_view text, std::vector<uint8_t>& out) {
  out.clear();
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    const size_t v = kAlphabet.find(c);
    if (v == std::string_view::npos) return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      out.push_back(static_cast<uint8_t>(acc >> (bits - 8)));
      bits -= 8;
    }
  }
  return true;
}

void check_token_codec(std::string_view text) {
  const bool shaped = sg::is_token_shaped(text);
  SG_FUZZ_CHECK(shaped == naive_token_shaped(text));
  std::vector<uint8_t> raw;
  if (text.size() == sg::kTokenChars && naive_decode(text, raw)) {
    SG_FUZZ_CHECK(raw.size() == sg::kTokenBytes);
    // Canonical exactly when re-encoding gives the same text back.
    SG_FUZZ_CHECK((naive_encode(raw.data(), raw.size()) == text) == shaped);
  }
  const sg::TokenHash hash = sg::hash_token(text);
  unsigned char expected[EVP_MAX_MD_SIZE];
  unsigned int expected_len = 0;
  SG_FUZZ_CHECK(
      EVP_Digest(text.data(), text.size(), expected, &expected_len, EVP_sha256(), nullptr) == 1);
  SG_FUZZ_CHECK(expected_len == hash.size());
  SG_FUZZ_CHECK(std::equal(hash.begin(), hash.end(), expected));
  SG_FUZZ_CHECK(sg::constant_time_equal(hash, sg::hash_token(text)));
  SG_FUZZ_CHECK(sg::constant_time_equal(text, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA") ==
                (text == "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
}

void check_token_bytes(const uint8_t* data, size_t size) {
  uint8_t raw[sg::kTokenBytes] = {};
  std::copy(data, data + std::min(size, sizeof raw), raw);
  const std::string text = naive_encode(raw, sizeof raw);
  SG_FUZZ_CHECK(text.size() == sg::kTokenChars);
  SG_FUZZ_CHECK(sg::is_token_shaped(text));
  std::vector<uint8_t> back;
  SG_FUZZ_CHECK(naive_decode(text, back) && std::equal(back.begin(), back.end(), raw));
  // The 43rd character carries 4 data bits and 2 padding bits: only those with zero padding
  // bits are accepted, so each 32 bytes have one accepted spelling.
  std::string other = text;
  for (char c : kAlphabet) {
    other.back() = c;
    SG_FUZZ_CHECK(sg::is_token_shaped(other) == (kAlphabet.find(c) % 4 == 0));
  }

  sg::SessionHandle handle{};
  std::copy(raw, raw + handle.size(), handle.begin());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (uint8_t b : handle) {
    hex.push_back(kHex[b >> 4]);
    hex.push_back(kHex[b & 15]);
  }
  SG_FUZZ_CHECK(sg::handle_to_hex(handle) == hex);
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

  for (std::string_view field : fields)
    check_token_codec(field);
  for (std::string_view v : values)
    check_token_codec(v);
  check_token_bytes(data + 1, size - 1);
  std::string fresh;
  SG_FUZZ_CHECK(sg::generate_token(fresh) && sg::is_token_shaped(fresh));
  sg::SessionHandle handle{};
  SG_FUZZ_CHECK(sg::generate_handle(handle));
  return 0;
}
