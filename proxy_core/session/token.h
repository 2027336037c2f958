// Session tokens, their SHA-256 store keys and session handles. Pure logic over OpenSSL's CSPRNG
// and digest; no I/O, no allocation on the hot paths (encode into a caller buffer, hash_token).
//
// A token is 32 bytes from RAND_bytes, base64url without padding (RFC 4648 §5): 43 characters.
// The store only ever sees hash_token(token), so a store dump holds no usable token.
#pragma once

#include <array>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>

#include "proxy_core/session/session_store.h"

namespace sg {

inline constexpr size_t kTokenBytes = 32;  // 256 bits of entropy: no guessing, no collisions
inline constexpr size_t kTokenChars = 43;  // ceil(32 * 8 / 6), no '=' padding

// Writes a fresh token into `out`. Returns false (and leaves `out` unspecified) when the CSPRNG
// fails: the caller must fail closed (no session, 503), never fall back to a weaker source.
bool generate_token(std::span<char, kTokenChars> out);
// As above into a std::string (resized to 43). On failure `out` is cleared.
bool generate_token(std::string& out);

// The token spelling of 32 given bytes (first-visit tokens, first_visit_token.h), and back:
// decode_token is false for anything is_token_shaped refuses.
void encode_token_bytes(const std::array<uint8_t, kTokenBytes>& raw,
                        std::span<char, kTokenChars> out);
bool decode_token(std::string_view text, std::array<uint8_t, kTokenBytes>& raw);

// True for exactly 43 characters of the base64url alphabet whose last character carries no stray
// low bits, i.e. the canonical encoding of some 32 bytes. Anything else is "no cookie": it gets
// no store lookup (design.md, Sessions).
bool is_token_shaped(std::string_view text);

// SHA-256 of the token text (its 43 characters, not the decoded bytes). No heap allocation.
TokenHash hash_token(std::string_view token);

// The digest of the last token one client connection sent. A keep-alive connection sends the same
// cookie with every request, so its SHA-256 is computed once per connection instead of once per
// request. It belongs to the connection, not to the (pooled) exchange, so that a connection keeps
// its hit under concurrency; the token it holds is compared in constant time all the same.
class TokenDigestCache {
 public:
  TokenHash digest_of(std::string_view token);

 private:
  std::string token_;
  TokenHash digest_{};
  bool filled_ = false;
};

// A fresh random handle. Returns false when the CSPRNG fails (fail closed, as for tokens).
bool generate_handle(SessionHandle& out);
// Lowercase hex, 32 characters: the X-Session-Id value.
std::string handle_to_hex(const SessionHandle& handle);
void handle_to_hex(const SessionHandle& handle, std::span<char, 32> out);

// Comparison whose time does not depend on where the inputs differ (CRYPTO_memcmp). Different
// lengths compare unequal immediately: lengths are not secret here.
bool constant_time_equal(std::string_view a, std::string_view b);
bool constant_time_equal(const TokenHash& a, const TokenHash& b);

}  // namespace sg
