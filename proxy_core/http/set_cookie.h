// Building the gateway's Set-Cookie values and recognising the application's Set-Cookie for our
// cookie name. Pure logic, no I/O, no locale: dates are formatted by hand (RFC 9110 §5.6.7).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "proxy_core/config/config.h"

namespace sg {

inline constexpr size_t kImfFixdateChars = 29;  // "Sun, 06 Nov 1994 08:49:37 GMT"

// IMF-fixdate (RFC 9110 §5.6.7) of a unix time in seconds, always GMT. Times before 1970 or after
// 9999-12-31T23:59:59 are clamped to those bounds (the format has four-digit years).
void format_imf_fixdate(int64_t unix_seconds, std::span<char, kImfFixdateChars> out);
std::string format_imf_fixdate(int64_t unix_seconds);

// The scheme the client used to reach us, for Secure under cookie_secure = "auto" and for the
// logout origin check: https over our TLS listener; otherwise what a trusted proxy says in
// X-Forwarded-Proto (its first element: the proxy nearest the client). kUnknown: a trusted peer
// sent no (usable) X-Forwarded-Proto, so plain HTTP on our side says nothing about the client's.
enum class ClientScheme { kHttp, kHttps, kUnknown };
ClientScheme client_scheme(bool tls_on, bool peer_trusted,
                           std::optional<std::string_view> forwarded_proto);

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

// RFC 6265 §5.1.4 path-match: does a browser send a cookie with Path=`cookie_path` to a request
// for `request_path`? Equal paths, or `cookie_path` a prefix that ends in '/' or is followed by
// '/' in `request_path` ("/app" matches "/app/x", not "/apple").
bool cookie_path_matches(std::string_view cookie_path, std::string_view request_path);

// True when an application's Set-Cookie field value sets the cookie `our_name` (RFC 6265 §5.2:
// the name is the trimmed text before the first '=' of the part before the first ';'). Names are
// compared byte for byte, as browsers store them. Such a field is dropped so the application can
// neither read, replace nor clear the gateway's session cookie.
bool set_cookie_names_cookie(std::string_view set_cookie_value, std::string_view our_name);

}  // namespace sg
