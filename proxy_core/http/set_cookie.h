// HTTP-level cookie rules around Set-Cookie: which scheme the client used (for Secure), whether a
// cookie Path covers a request path, and recognising an application's Set-Cookie for a cookie
// name. Pure logic, no I/O. Building the gateway's own session cookie is session/session_cookie.h.
#pragma once

#include <optional>
#include <string_view>

namespace sg {

// The scheme the client used to reach us, for Secure under cookie_secure = "auto" and for the
// logout origin check: https over our TLS listener; otherwise what a trusted proxy says in
// X-Forwarded-Proto (its first element: the proxy nearest the client). kUnknown: a trusted peer
// sent no (usable) X-Forwarded-Proto, so plain HTTP on our side says nothing about the client's.
enum class ClientScheme { kHttp, kHttps, kUnknown };
ClientScheme client_scheme(bool tls_on, bool peer_trusted,
                           std::optional<std::string_view> forwarded_proto);

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
