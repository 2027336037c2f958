// The signed identity header of [upstream] sign = true. Pure logic over OpenSSL; no I/O.
//
//   <prefix>Signature: v1; kid=<16 hex>; t=<unix seconds>; sig=<base64url HMAC-SHA256, 43 chars>
//
// The MAC is over the canonical string, lines joined by "\n" (no trailing newline):
//   v1
//   <method>
//   <request-target as sent to the application: path and query>
//   <name>:<value>      one line per injected header under the prefix (<prefix>Id and every
//                       other one the gateway adds, <prefix>Csrf included), the name lowercased,
//                       sorted by name (bytewise), the value exactly as sent; the signature
//                       header itself is not in it
//   <t>
// Header values cannot hold CR, LF or NUL (session_attributes.h), so "\n" cannot be forged into a
// line. The kid is the first 8 bytes (16 hex digits) of SHA-256("sessiongate-kid-v1" | key): an
// application that knows several keys picks the one named, and the kid says nothing of the key.
//
// Security model: a valid signature proves that the request passed through a gateway holding the
// key, recently (within the application's allowed skew on t), with exactly these identity headers,
// this method and target. It is a second line of defence for an application that others can reach
// too; it does not replace binding the application to a private address, and it does not cover the
// body or other headers, nor stop a replay of the same request within the skew.
//
// CONTRACT for the exchange (the caller): with config.upstream.sign, after every other injected
// header is known, call sign_identity() with the first key of upstream.sign_key_file, the method
// and target as forwarded, the gate's injected() list and injected_count(), the exchange's own
// headers (<prefix>Csrf) as `extra`, and the current unix time; add the result as the last header
// <prefix>Signature. Client copies of any <prefix>* header are already dropped by
// build_upstream_request, so the application never sees a client-made signature.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proxy_core/session/hmac_key.h"

namespace sg {

// The header name after the prefix: <prefix>Signature.
inline constexpr std::string_view kSignatureHeaderSuffix = "Signature";

class SigningKey {
 public:
  explicit SigningKey(std::string_view key);
  const std::string& kid() const { return kid_; }
  HmacSha256Key::Mac mac(std::string_view message) const { return key_.mac({message}); }

 private:
  HmacSha256Key key_;
  std::string kid_;
};

using SignedHeaders = std::vector<std::pair<std::string, std::string>>;

// The canonical string above, over the first `header_count` entries of `headers` (the gate's
// injected list keeps spare entries) and every entry of `extra` (the exchange's own, such as
// <prefix>Csrf). Other headers may be there too: only those whose name starts with `prefix`
// (case-insensitive) and is not <prefix>Signature are taken.
std::string canonical_identity_string(std::string_view method, std::string_view target,
                                      const SignedHeaders& headers, size_t header_count,
                                      std::string_view prefix, int64_t unix_seconds,
                                      const SignedHeaders* extra = nullptr);

// The <prefix>Signature value over those headers.
std::string sign_identity(const SigningKey& key, std::string_view method, std::string_view target,
                          const SignedHeaders& headers, size_t header_count,
                          std::string_view prefix, int64_t unix_seconds,
                          const SignedHeaders* extra = nullptr);

}  // namespace sg
