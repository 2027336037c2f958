// Matching request paths against session.exclude patterns. Pure logic, no I/O.
//
// A pattern is literal except '*', which matches any run of bytes, '/' included ("/static/*"
// covers "/static/css/a.css"). Matching is on the raw path, not percent-decoded: an excluded path
// only ever gets *less* (no session, no cookie), so a spelling that dodges a pattern gains nothing.
#pragma once

#include <string_view>

namespace sg {

// True when the whole of `path` matches `pattern`.
bool path_matches(std::string_view pattern, std::string_view path);

// The path of a request target (RFC 9112 §3.2): origin-form up to '?' (or '#', which a strict
// parser rejects anyway); absolute-form "http://host/p?q" gives "/p" ("/" when the path is empty);
// authority-form and asterisk-form are returned unchanged.
std::string_view path_without_query(std::string_view target);

}  // namespace sg
