#include "proxy_core/session/session_status.h"

#include <algorithm>

#include "proxy_core/ops/access_log.h"

namespace sg {
namespace {

int64_t whole_seconds_left(int64_t until_ms, int64_t now_ms) {
  return std::max<int64_t>(0, until_ms - now_ms) / 1000;
}

}  // namespace

std::string render_session_status(int64_t now_ms, int64_t created_ms, int64_t last_seen_ms,
                                  int64_t idle_timeout_ms, int64_t absolute_timeout_ms,
                                  const std::string* user) {
  std::string out = "{\"idle_remaining_s\":";
  out += std::to_string(whole_seconds_left(last_seen_ms + idle_timeout_ms, now_ms));
  out += ",\"absolute_remaining_s\":";
  out += std::to_string(whole_seconds_left(created_ms + absolute_timeout_ms, now_ms));
  out += ",\"user\":";
  if (user == nullptr) {
    out += "null";
  } else {
    out += '"';
    append_json_escaped(out, *user);
    out += '"';
  }
  out += "}\n";
  return out;
}

}  // namespace sg
