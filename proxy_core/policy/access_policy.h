// Sign-in required paths ([access], [[access.rules]]): may this request reach the application,
// given its session? Pure logic: no I/O, no libuv, no allocation when no rule matches.
//
// CONTRACT for the exchange (the caller):
// - Call decide_access() once per request, after the session gate resolved the session (the
//   attributes are the ones read at request time) and before anything is sent upstream. Skip the
//   call entirely when config.rules is empty (the feature is off and must cost nothing).
// - kAllow: forward as usual. Any other outcome: answer `status` locally with `location` (303
//   only) and `body` of `content_type`, count the outcome (AccessOutcome), and never forward the
//   request or any of its body (drain or close as for every local answer).
// - Requests to session.exclude paths have no session: a rule there refuses everybody. The login
//   page itself must not match a rule (config_validate warns).
//
// Decisions (issue 15):
// - Rules are tried in order; the first whose `paths` (path_match.h, on the path without the
//   query) and `methods` (when given) match decides. No match: allowed.
// - A rule is met when every `require` condition holds on the session's attributes (names are
//   folded as stored: "User" and "user" are one attribute). Met: allowed.
// - Not met, and the session holds `signed_in_attribute`: 403 (signed in, not allowed).
// - Not met, not signed in: an API call gets 401 with a JSON body; a browser navigation gets 303
//   to `login_url` with the original path and query in `return_param`. API call: the path is in
//   `api_paths`, or `X-Requested-With` is present, or `Accept` prefers application/json. Browser
//   navigation: `Sec-Fetch-Mode: navigate`, or `Accept` prefers text/html. Neither: 401 (a client
//   that cannot say it renders HTML is not sent to a login form).
// - The return parameter only ever holds an origin-form target starting with exactly one "/"
//   (not "//", not "/\"), percent-encoded: an absolute-form target ("http://evil/") or a
//   protocol-relative one gets no return parameter at all, so the login page cannot be turned
//   into an open redirect through it.
#pragma once

#include <string>
#include <string_view>

#include "proxy_core/config/config.h"
#include "proxy_core/http/http_message.h"
#include "proxy_core/session/session_attributes.h"

namespace sg {

// What the session gate knows about the request's session, at request time.
struct SessionView {
  // Sorted by folded name, unique (SessionRecord::attributes); null or empty: no attributes
  // (no session, a new visitor, an excluded path).
  const SessionAttributes* attributes = nullptr;
};

enum class AccessOutcome {
  kAllow,          // no rule matched, or the matching rule is met
  kLoginRedirect,  // 303 to login_url (browser, not signed in)
  kUnauthorized,   // 401 JSON (API call, not signed in)
  kForbidden,      // 403 (signed in, a condition failed)
};
// "allow", "login_redirect", "unauthorized", "forbidden": for metrics labels and logs.
const char* access_outcome_name(AccessOutcome outcome);

struct PolicyDecision {
  AccessOutcome outcome = AccessOutcome::kAllow;
  int status = 0;        // 0 for kAllow, else 303, 401 or 403
  int rule = -1;         // index of the rule that decided, -1 when none matched
  std::string location;  // 303 only
  std::string_view content_type;
  std::string body;
  bool allowed() const { return outcome == AccessOutcome::kAllow; }
};

PolicyDecision decide_access(const AccessConfig& config, const MessageHead& request,
                             const SessionView& session);

// The value of the return parameter for `target`, percent-encoded; empty when `target` is not a
// path starting with exactly one "/" (it is then left out of the redirect).
std::string return_path_value(std::string_view target);

// Does the request say it is an API call (401) rather than a browser navigation (303)?
bool is_api_request(const AccessConfig& config, const MessageHead& request, std::string_view path);

}  // namespace sg
