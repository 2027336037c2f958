#include "proxy_core/session/session_cookie.h"

#include <algorithm>

#include "proxy_core/http/http_date.h"
#include "proxy_core/session/token.h"

namespace sg {
namespace {

void append_attributes(std::string& out, const SessionConfig& config) {
  out += "; Path=";
  out += config.cookie_path;
  if (!config.cookie_domain.empty()) {
    out += "; Domain=";
    out += config.cookie_domain;
  }
}

void append_tail(std::string& out, const SessionConfig& config, bool secure) {
  if (secure) out += "; Secure";
  out += "; HttpOnly; SameSite=";
  out += config.cookie_samesite;
}

}  // namespace

void token_candidates(const std::vector<std::string_view>& values,
                      std::vector<std::string_view>& out) {
  out.clear();
  for (std::string_view v : values) {
    if (!is_token_shaped(v)) continue;
    // The same token sent twice (two paths, or a duplicated header) is still one session.
    if (std::find(out.begin(), out.end(), v) != out.end()) continue;
    if (out.size() == kMaxTokenCandidates) {
      out.clear();
      return;
    }
    out.push_back(v);
  }
}

std::vector<std::string_view> token_candidates(const std::vector<std::string_view>& values) {
  std::vector<std::string_view> out;
  token_candidates(values, out);
  return out;
}

bool cookie_secure_effective(const SessionConfig& config, bool https) {
  switch (config.cookie_secure) {
    case CookieSecure::kAlways:
      return true;
    case CookieSecure::kNever:
      return false;
    case CookieSecure::kAuto:
      return https;
  }
  return true;  // unreachable; an unknown setting errs on the safe side
}

std::string build_session_cookie(const SessionConfig& config, std::string_view token, bool secure,
                                 int64_t now_unix_seconds) {
  const int64_t max_age = config.idle_timeout.count() / 1000;
  std::string out;
  out.reserve(160 + config.cookie_name.size() + config.cookie_path.size() +
              config.cookie_domain.size());
  out += config.cookie_name;
  out += '=';
  out += token;
  append_attributes(out, config);
  out += "; Max-Age=";
  out += std::to_string(max_age);
  out += "; Expires=";
  char date[kImfFixdateChars];
  format_imf_fixdate(now_unix_seconds + max_age, date);
  out.append(date, kImfFixdateChars);
  append_tail(out, config, secure);
  return out;
}

std::string build_expired_cookie(const SessionConfig& config, bool secure) {
  std::string out = config.cookie_name;
  out += '=';
  append_attributes(out, config);
  out += "; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT";
  append_tail(out, config, secure);
  return out;
}

}  // namespace sg
