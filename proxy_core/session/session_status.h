// The body of session.status_path (issue 14, "Passive requests"): how long the caller's session
// has left, for "your session ends in 2 minutes" dialogs. No I/O, no state.
//
//   {"idle_remaining_s":1740,"absolute_remaining_s":43140,"user":"alice"}
//
// Whole seconds, rounded down, never negative; "user" is the session's user attribute
// (session.user_attribute), JSON-escaped, or null when the session has none. A request without a
// live session gets kNoSessionBody with status 401 (README, "Session status").
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace sg {

inline constexpr std::string_view kNoSessionBody = "{\"session\":null}\n";

// The remaining times follow from the record as read (lookup never writes last-seen, and the
// status request does not refresh it): idle = last_seen + idle_timeout - now, absolute = created
// + absolute_timeout - now.
std::string render_session_status(int64_t now_ms, int64_t created_ms, int64_t last_seen_ms,
                                  int64_t idle_timeout_ms, int64_t absolute_timeout_ms,
                                  const std::string* user);

}  // namespace sg
