// The gateway's session cookie: picking the candidate tokens out of the values a request sent
// under our cookie name, and building the Set-Cookie values that set or clear it from the
// [session] configuration. Pure logic, no I/O. The HTTP-level cookie parsing is http/cookie.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "proxy_core/config/config.h"

namespace sg {

// More session-cookie candidates than this in one request are treated as none: it bounds the
// store lookups a single request can cause (a client may send any number of cookies).
inline constexpr size_t kMaxTokenCandidates = 4;

// From the values of our cookie, the distinct token-shaped ones (is_token_shaped). The design
// rule "several cookies with our name: accept only if exactly one is valid, else none" is applied
// by the caller with the store: look each candidate up, accept when exactly one is a live session.
// Returns empty (= no session) when there are more than kMaxTokenCandidates distinct candidates.
std::vector<std::string_view> token_candidates(const std::vector<std::string_view>& values);
void token_candidates(const std::vector<std::string_view>& values,
                      std::vector<std::string_view>& out);

// Secure is set when cookie_secure = "always", or "auto" and the client used https (`https`: TLS
// on our listener, or X-Forwarded-Proto: https from a trusted proxy; see client_scheme).
bool cookie_secure_effective(const SessionConfig& config, bool https);

// "<name>=<token>; Path=<path>[; Domain=<domain>]; Max-Age=<idle s>; Expires=<now + idle>
//  [; Secure]; HttpOnly; SameSite=<samesite>". Max-Age and Expires both carry idle_timeout:
// Max-Age wins where understood (RFC 6265 §5.3 step 3), Expires serves older clients.
// REQUIRES: token is token-shaped (it goes into the header unescaped).
std::string build_session_cookie(const SessionConfig& config, std::string_view token, bool secure,
                                 int64_t now_unix_seconds);

// The same attributes with an empty value, Max-Age=0 and Expires at the epoch: the browser
// deletes the cookie (RFC 6265 §5.3 steps 11-12: an expired cookie evicts the stored one).
std::string build_expired_cookie(const SessionConfig& config, bool secure);

}  // namespace sg
