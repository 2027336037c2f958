// CSRF defence for unsafe methods ([csrf]). Pure logic: no I/O, no libuv.
//
// CONTRACT for the exchange (the caller):
// - Skip everything when config.mode is kOff (the feature is off and must cost nothing).
// - After the session gate (token mode needs the session's CSRF token, csrf_token.h) and the
//   access check, before anything is sent upstream, call check_csrf(config, head, https, token).
//   kAllow: forward. kRefuse: answer 403 (count it by `reason`, log csrf_reason_name(reason) with
//   the request id and the session handle, never a token), forward nothing.
//   kScanBody (token mode, an urlencoded body without the header): do not connect upstream yet;
//   feed the body to a FormFieldScanner (form_field_scanner.h) made with form_field and
//   max_form_bytes while holding the bytes (never more than max_form_bytes), then call
//   check_form_token() with the scanner's result: kAllow forwards the held bytes and streams the
//   rest of the body as usual; kRefuse answers 403, kTooLarge 413, and neither forwards anything.
// - In token mode, inject the session's token upstream as <prefix>Csrf (after the gate's headers;
//   it is signed with them when [upstream] sign is on) so the application can render it.
//
// Decisions (issue 15):
// - Safe methods (GET, HEAD, OPTIONS, TRACE; RFC 9110 §9.2.1) are never checked; every other
//   method is (POST, PUT, PATCH, DELETE and any extension method). `exempt` paths are never
//   checked (webhooks posting from elsewhere).
// - fetch-metadata: Sec-Fetch-Site "same-origin" and "none" (typed, bookmarked) pass; "same-site"
//   passes only with allow_same_site; "cross-site" (and any other value) is refused unless Origin
//   names a trusted origin. Without Sec-Fetch-Site, Origin (else Referer) must be the request's own
//   origin (scheme, host, port: logout_guard.h same_origin) or a trusted one; "null" never is.
//   With neither of the three headers: `missing` (allow: non-browser clients; every current
//   browser sends Origin on a POST, so a forged browser request always has one).
// - token: the token must come in X-CSRF-Token or, for an application/x-www-form-urlencoded
//   body, in the form_field field; compared in constant time with the session's token. A request
//   without a session has no token, so it is refused.
#pragma once

#include <optional>
#include <string_view>

#include "proxy_core/config/config.h"
#include "proxy_core/http/http_message.h"

namespace sg {

// The request header that carries the token in token mode.
inline constexpr std::string_view kCsrfTokenHeader = "X-CSRF-Token";

enum class CsrfVerdict {
  kAllow,
  kRefuse,    // 403
  kScanBody,  // token mode: look for the token in the urlencoded body first
  kTooLarge,  // 413: no token within max_form_bytes of the body
};

// Why a request was refused (or allowed), for counters and logs.
enum class CsrfReason {
  kNotChecked,      // safe method, exempt path, or mode off
  kSameOrigin,      // fetch-metadata: passed
  kCrossSite,       // Sec-Fetch-Site cross-site (or an unknown value)
  kSameSite,        // Sec-Fetch-Site same-site without allow_same_site
  kOriginMismatch,  // Origin or Referer names another origin
  kNoMetadata,      // none of Sec-Fetch-Site, Origin, Referer (missing = "allow" or "deny")
  kTokenValid,
  kTokenMissing,  // no header and no form field (or not a form body)
  kTokenMismatch,
  kFormTooLarge,  // no token within max_form_bytes
};
const char* csrf_reason_name(CsrfReason reason);

struct CsrfRequest {
  std::string_view method;
  std::string_view path;    // without the query (path_match.h path_without_query)
  std::string_view scheme;  // the scheme the client used: "http" or "https"
  std::string_view host;    // the request's validated Host
  std::optional<std::string_view> sec_fetch_site;
  std::optional<std::string_view> origin;
  std::optional<std::string_view> referer;
  std::optional<std::string_view> token_header;  // X-CSRF-Token
  std::string_view content_type;
};

struct CsrfDecision {
  CsrfVerdict verdict = CsrfVerdict::kAllow;
  CsrfReason reason = CsrfReason::kNotChecked;
};

bool is_safe_method(std::string_view method);

// `session_token`: the session's CSRF token (csrf_token.h), empty when the request has no session.
CsrfDecision check_csrf(const CsrfConfig& config, const CsrfRequest& request,
                        std::string_view session_token);

// The CsrfRequest of a parsed request head; `https`: the scheme the client used (request_scheme,
// exchange_request.cc). Views into `request`, which must outlive the result.
CsrfRequest csrf_request_of(const MessageHead& request, bool https);

// check_csrf(config, csrf_request_of(request, https), session_token): the exchange's entry.
CsrfDecision check_csrf(const CsrfConfig& config, const MessageHead& request, bool https,
                        std::string_view session_token);

// Token mode after a body scan: `found` is the field's value when the scanner found it.
CsrfDecision check_form_token(std::optional<std::string_view> found, bool too_large,
                              std::string_view session_token);

// Is `content_type` application/x-www-form-urlencoded (parameters ignored)?
bool is_urlencoded_form(std::string_view content_type);

}  // namespace sg
