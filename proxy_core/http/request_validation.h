// Checks on a parsed request head that llhttp leaves to us (RFC 9112), applied before anything is
// forwarded. Pure logic: no I/O. A failed check names the status to answer; the connection is
// closed after it and nothing more is read from it.
#pragma once

#include "proxy_core/http/http_message.h"
#include "proxy_core/http/underscore_policy.h"

namespace sg {

struct RequestVerdict {
  int status = 0;  // 0 = acceptable
  const char* reason = "";
  bool ok() const { return status == 0; }
};

// May modify `head`: drops headers whose names contain '_' under UnderscorePolicy::kDrop, and
// turns an absolute-form target into origin-form, its authority replacing Host (RFC 9112 §3.2.2).
// Host must be a valid authority (is_valid_host); RFC 9112 §3.2 makes an invalid one a 400.
RequestVerdict validate_request(MessageHead& head, UnderscorePolicy underscore_policy);

// Is `authority` a `uri-host [ ":" port ]` (RFC 9112 §3.2, RFC 3986 §3.2.2) we accept as a Host?
// uri-host: an IP-literal "[v6]" (no zone, no IPvFuture), or a reg-name of ALPHA DIGIT "-" "."
// "_" "~" (IPv4 dotted quads are reg-names too). Stricter than RFC 3986 on purpose: reg-name's
// sub-delims (",", ";", "=", "&", ...) and percent-encoding have no use in a host name and
// would let a Host be read as a list, a parameter or a path by whoever uses it next. Port: 1 to 5
// digits, at most 65535. Empty, over 255 bytes, userinfo ("a@b"), a path or spaces: invalid.
bool is_valid_host(std::string_view authority);

// The path of a request target, without query (for health, logout and exclude matching).
std::string_view target_path(std::string_view target);

}  // namespace sg
