#include "proxy_core/http/set_cookie.h"
#include "proxy_core/http/http_message.h"

#include <algorithm>

namespace sg {
namespace {

// The last second representable with a four-digit year: 9999-12-31T23:59:59Z.
constexpr int64_t kMaxImfSeconds = 253402300799;

struct CivilDate {
  int64_t year;
  unsigned month;  // 1..12
  unsigned day;    // 1..31
};

// Days since 1970-01-01 -> proleptic Gregorian date. Works in 400-year eras (146097 days) counted
// from 0000-03-01, so the leap day falls at the end of the shifted year and needs no special case.
CivilDate civil_from_days(int64_t days) {
  days += 719468;  // 0000-03-01 to 1970-01-01
  const int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const int64_t doe = days - era * 146097;                                    // [0, 146096]
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;  // [0, 399]
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);                // [0, 365]
  const int64_t mp = (5 * doy + 2) / 153;                                     // March = 0
  const unsigned day = static_cast<unsigned>(doy - (153 * mp + 2) / 5 + 1);
  const unsigned month = static_cast<unsigned>(mp < 10 ? mp + 3 : mp - 9);
  return {yoe + era * 400 + (month <= 2 ? 1 : 0), month, day};
}

void put2(char* p, unsigned v) {
  p[0] = static_cast<char>('0' + v / 10);
  p[1] = static_cast<char>('0' + v % 10);
}

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

void format_imf_fixdate(int64_t unix_seconds, std::span<char, kImfFixdateChars> out) {
  static constexpr char kDays[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr char kMonths[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const int64_t t = std::clamp<int64_t>(unix_seconds, 0, kMaxImfSeconds);
  const int64_t days = t / 86400;
  const unsigned secs = static_cast<unsigned>(t % 86400);
  const CivilDate d = civil_from_days(days);
  const unsigned weekday = static_cast<unsigned>((days + 4) % 7);  // 1970-01-01 was a Thursday
  const unsigned year = static_cast<unsigned>(d.year);

  char* p = out.data();
  std::copy_n(kDays[weekday], 3, p);
  p[3] = ',';
  p[4] = ' ';
  put2(p + 5, d.day);
  p[7] = ' ';
  std::copy_n(kMonths[d.month - 1], 3, p + 8);
  p[11] = ' ';
  put2(p + 12, year / 100);
  put2(p + 14, year % 100);
  p[16] = ' ';
  put2(p + 17, secs / 3600);
  p[19] = ':';
  put2(p + 20, secs / 60 % 60);
  p[22] = ':';
  put2(p + 23, secs % 60);
  std::copy_n(" GMT", 4, p + 25);
}

std::string format_imf_fixdate(int64_t unix_seconds) {
  std::string s(kImfFixdateChars, '\0');
  format_imf_fixdate(unix_seconds, std::span<char, kImfFixdateChars>(s.data(), kImfFixdateChars));
  return s;
}

ClientScheme client_scheme(bool tls_on, bool peer_trusted,
                           std::optional<std::string_view> forwarded_proto) {
  if (tls_on) return ClientScheme::kHttps;
  if (!peer_trusted) return ClientScheme::kHttp;
  if (!forwarded_proto) return ClientScheme::kUnknown;
  std::string_view first = trim_ows(forwarded_proto->substr(0, forwarded_proto->find(',')));
  if (iequals(first, "https")) return ClientScheme::kHttps;
  if (iequals(first, "http")) return ClientScheme::kHttp;
  return ClientScheme::kUnknown;
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

bool cookie_path_matches(std::string_view cookie_path, std::string_view request_path) {
  if (request_path == cookie_path) return true;
  if (cookie_path.empty() || request_path.substr(0, cookie_path.size()) != cookie_path)
    return false;
  return cookie_path.back() == '/' || request_path[cookie_path.size()] == '/';
}

bool set_cookie_names_cookie(std::string_view set_cookie_value, std::string_view our_name) {
  std::string_view pair = set_cookie_value.substr(0, set_cookie_value.find(';'));
  size_t eq = pair.find('=');
  // RFC 6265 §5.2 step 2: without '=' the user agent ignores the whole Set-Cookie.
  // (RFC 6265bis reads it as an empty name, which is never ours either.)
  if (eq == std::string_view::npos) return false;
  return !our_name.empty() && trim_ows(pair.substr(0, eq)) == our_name;
}

}  // namespace sg
