// The admin listener's /sessions API (issue 14): list and end a user's sessions.
//
//   GET    /sessions?user=alice   200 {"user":"alice","sessions":[{"handle":..,"created_ms":..,
//                                 "last_seen_ms":..,"client_address":..,"user_agent":..}]}
//   DELETE /sessions?user=alice   200 {"user":"alice","destroyed":N}
//   DELETE /sessions/<handle>     200 {"destroyed":1}, 404 when no indexed session has it
//
// It exists only when admin.token_file is set (404 otherwise, like any unknown path), and every
// request needs "Authorization: Bearer <the file's token>", compared in constant time (digests of
// both, so not even the length leaks); 401 otherwise. The file is read at each request, so a
// rotated token applies at once; an unreadable or empty file refuses everything (503). The user
// is percent-decoded (%XX; '+' stays '+'). Never a token or a key in an answer.
//
// Threading: main loop (AdminServer). `store` must be callable there: the memory store is
// thread-safe, and with Redis the AdminServer has a RedisStore on that loop (null: 503). `reply`
// may run inside the call or later.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "proxy_core/http/http_message.h"
#include "proxy_core/session/session_store.h"

namespace sg {

struct AdminReply {
  int status = 200;
  std::string body;  // application/json, or text/plain for errors
  bool json = true;
};

// True when `path` belongs to the sessions API ("/sessions" or "/sessions/...").
bool is_sessions_path(std::string_view path);

// Answers one request of the API. REQUIRES: is_sessions_path(path of req.target).
void handle_sessions_request(const MessageHead& req, const std::string& token_file,
                             SessionStore* store, int64_t now_ms,
                             std::function<void(AdminReply)> reply);

// For tests: the JSON of a user's session list.
std::string sessions_json(std::string_view user, const std::vector<UserSession>& sessions);

}  // namespace sg
