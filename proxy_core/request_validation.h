// Checks on a parsed request head that llhttp leaves to us (RFC 9112), applied before anything is
// forwarded. Pure logic: no I/O. A failed check names the status to answer; the connection is
// closed after it and nothing more is read from it.
#pragma once

#include "proxy_core/config.h"
#include "proxy_core/http_message.h"

namespace sg {

struct RequestVerdict {
  int status = 0;  // 0 = acceptable
  const char* reason = "";
  bool ok() const { return status == 0; }
};

// May modify `head`: drops headers whose names contain '_' under UnderscorePolicy::kDrop, and
// turns an absolute-form target into origin-form (RFC 9112 §3.2.2) once its authority matched Host.
RequestVerdict validate_request(MessageHead& head, UnderscorePolicy underscore_policy);

// The path of a request target, without query (for health, logout and exclude matching).
std::string_view target_path(std::string_view target);

}  // namespace sg
