// The per-session CSRF token of [csrf] mode = "token". Pure logic over OpenSSL; no I/O.
//
// token = base64url(HMAC-SHA256(key, "sg-csrf-1" | live key)), where the live key is the SHA-256
// of the session's current token (the store key, SessionGate's live key; for a request inside a
// rotation's grace window the live session's key, not the old token's). Why this derivation:
// - it rotates with the session: a login's X-Session-Control: rotate changes the live key, so a
//   token rendered before the login stops working (as the session token does), while the handle
//   would stay the same for the session's whole life;
// - it is not the session token and cannot be turned into it: it is a MAC over a SHA-256 of the
//   token, so even with the key one would have to invert SHA-256; the application, which sees the
//   CSRF token in <prefix>Csrf and renders it into pages, learns nothing that opens the session;
// - it costs the store nothing (no attribute to write at every login), and every instance that
//   shares csrf.secret_file derives the same token (a random key per process otherwise, so a
//   restart invalidates rendered forms, not sessions).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "proxy_core/session/hmac_key.h"
#include "proxy_core/session/session_store.h"

namespace sg {

// The header that carries the token to the application: <prefix>Csrf (X-Session-Csrf).
inline constexpr std::string_view kCsrfHeaderSuffix = "Csrf";

class CsrfKey {
 public:
  // `key`: the bytes of csrf.secret_file (at least kMinPolicyKeyBytes).
  explicit CsrfKey(std::string_view key) : key_(key) {}
  // A random key for this process; nullopt when the CSPRNG fails (fail closed: no token mode).
  static std::optional<CsrfKey> random();
  // The token of the session whose live store key is `live_key`: 43 base64url characters.
  std::string token_for(const TokenHash& live_key) const;

 private:
  HmacSha256Key key_;
};

}  // namespace sg
