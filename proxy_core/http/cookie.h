// Parsing of request Cookie header fields (RFC 6265 §4.2 and §5.4), for finding the session
// cookie and removing it before the request is forwarded. Pure logic, no I/O.
//
// The parse is deliberately lenient where browsers are (RFC 6265 §5.4 is what user agents send,
// §4.2.1 is only a SHOULD for them): pairs are split on ';' only, SP and HTAB are trimmed around
// names and values, a pair without '=' is kept for forwarding but names no cookie. Names are
// matched byte for byte: "Session_ID" is not "session_id" (cookie names are case-sensitive).
//
// All string_views returned point into the caller's field values.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace sg {

// The values of every cookie-pair named `name`, in order, across all fields. Several Cookie
// fields are read as if joined with "; " (RFC 9113 §8.2.3 splits them in HTTP/2; some HTTP/1.1
// clients send several). A quoted value keeps its quotes: it is never token-shaped.
std::vector<std::string_view> find_cookie_values(const std::vector<std::string_view>& cookie_fields,
                                                 std::string_view name);
// The same into `values` (cleared first): lets the request path reuse one vector.
void find_cookie_values(const std::vector<std::string_view>& cookie_fields, std::string_view name,
                        std::vector<std::string_view>& values);

// The single Cookie field value to forward: every pair except those named `name`, trimmed, empty
// pairs dropped, joined with "; " (RFC 6265 §5.4 step 4). Empty string: drop the Cookie header.
std::string remove_cookie(const std::vector<std::string_view>& cookie_fields,
                          std::string_view name);

}  // namespace sg
