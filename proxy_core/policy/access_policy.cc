#include "proxy_core/policy/access_policy.h"

#include <algorithm>

#include "proxy_core/http/path_match.h"

namespace sg {
namespace {

// The q-value (RFC 9110 §12.4.2) in thousandths that `accept` gives the exact media type `type`;
// 0 when it is not listed. Wildcards are ignored on purpose: "*/*" (curl, fetch()) says nothing
// about what the client renders.
int accept_quality(std::string_view accept, std::string_view type) {
  int best = 0;
  while (!accept.empty()) {
    const size_t comma = accept.find(',');
    std::string_view element = accept.substr(0, comma);
    accept = comma == std::string_view::npos ? std::string_view() : accept.substr(comma + 1);
    const size_t semi = element.find(';');
    if (!iequals(trim_ows(element.substr(0, semi)), type)) continue;
    int q = 1000;
    std::string_view params = semi == std::string_view::npos ? "" : element.substr(semi + 1);
    while (!params.empty()) {
      const size_t next = params.find(';');
      std::string_view param = trim_ows(params.substr(0, next));
      params = next == std::string_view::npos ? std::string_view() : params.substr(next + 1);
      if (param.size() < 2 || (param[0] != 'q' && param[0] != 'Q') || param[1] != '=') continue;
      // qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ); anything else reads as 0.
      std::string_view digits = param.substr(2);
      q = 0;
      if (!digits.empty() && digits[0] == '1') {
        q = 1000;
      } else if (digits.size() >= 3 && digits[0] == '0' && digits[1] == '.') {
        int scale = 100;
        for (size_t i = 2; i < digits.size() && i < 5 && digits[i] >= '0' && digits[i] <= '9'; ++i)
          q += (digits[i] - '0') * scale, scale /= 10;
      }
    }
    best = std::max(best, q);
  }
  return best;
}

std::string_view header_value(const MessageHead& request, std::string_view name) {
  const HeaderField* field = request.find(name);
  return field == nullptr ? std::string_view() : std::string_view(field->value);
}

bool any_path_matches(const std::vector<std::string>& patterns, std::string_view path) {
  return std::any_of(patterns.begin(), patterns.end(),
                     [&](const std::string& p) { return path_matches(p, path); });
}

const std::string* find_attribute(const SessionView& session, std::string_view name) {
  if (session.attributes == nullptr) return nullptr;
  for (const auto& [key, value] : *session.attributes)
    if (key == name) return &value;
  return nullptr;
}

bool rule_applies(const AccessRule& rule, std::string_view method, std::string_view path) {
  if (!rule.methods.empty() &&
      std::none_of(rule.methods.begin(), rule.methods.end(),
                   [&](const std::string& m) { return iequals(m, method); })) {
    return false;
  }
  return any_path_matches(rule.paths, path);
}

bool rule_met(const AccessRule& rule, const SessionView& session) {
  return std::all_of(rule.require.begin(), rule.require.end(), [&](const AttributeCondition& c) {
    const std::string* value = find_attribute(session, c.name);
    return value != nullptr && (c.any_value || *value == c.value);
  });
}

void append_json_string(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\', out += c;
    } else if (u < 0x20 || u == 0x7f || c == '<' || c == '>') {  // no markup if sniffed as HTML
      out += "\\u00", out += kHex[u >> 4], out += kHex[u & 0xf];
    } else {
      out += c;
    }
  }
  out += '"';
}

bool is_unreserved(char c) {  // RFC 3986 §2.3
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

}  // namespace

const char* access_outcome_name(AccessOutcome outcome) {
  switch (outcome) {
    case AccessOutcome::kAllow:
      return "allow";
    case AccessOutcome::kLoginRedirect:
      return "login_redirect";
    case AccessOutcome::kUnauthorized:
      return "unauthorized";
    case AccessOutcome::kForbidden:
      return "forbidden";
  }
  return "allow";
}

std::string return_path_value(std::string_view target) {
  if (target.empty() || target[0] != '/' ||
      (target.size() > 1 && (target[1] == '/' || target[1] == '\\'))) {
    return "";
  }
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(target.size() + 16);
  for (char c : target) {
    if (is_unreserved(c) || c == '/') {
      out += c;
    } else {
      const auto u = static_cast<unsigned char>(c);
      out += '%', out += kHex[u >> 4], out += kHex[u & 0xf];
    }
  }
  return out;
}

bool is_api_request(const AccessConfig& config, const MessageHead& request, std::string_view path) {
  if (any_path_matches(config.api_paths, path)) return true;
  if (iequals(trim_ows(header_value(request, "Sec-Fetch-Mode")), "navigate")) return false;
  if (request.find("X-Requested-With") != nullptr) return true;
  const std::string_view accept = header_value(request, "Accept");
  const int html = accept_quality(accept, "text/html");
  return html == 0 || accept_quality(accept, "application/json") > html;
}

PolicyDecision decide_access(const AccessConfig& config, const MessageHead& request,
                             const SessionView& session) {
  PolicyDecision d;
  const std::string_view path = path_without_query(request.target);
  for (size_t i = 0; i < config.rules.size(); ++i) {
    if (!rule_applies(config.rules[i], request.method, path)) continue;
    d.rule = static_cast<int>(i);
    if (rule_met(config.rules[i], session)) return d;
    break;
  }
  if (d.rule < 0) return d;
  if (find_attribute(session, config.signed_in_attribute) != nullptr) {
    d.outcome = AccessOutcome::kForbidden;
    d.status = 403;
    const bool api = is_api_request(config, request, path);
    d.content_type = api ? "application/json" : "text/plain; charset=utf-8";
    d.body = api ? "{\"error\":\"forbidden\"}\n" : "403 Forbidden\n";
    return d;
  }
  if (is_api_request(config, request, path)) {
    d.outcome = AccessOutcome::kUnauthorized;
    d.status = 401;
    d.content_type = "application/json";
    d.body = "{\"error\":\"sign-in required\",\"login_url\":";
    append_json_string(d.body, config.login_url);
    d.body += "}\n";
    return d;
  }
  d.outcome = AccessOutcome::kLoginRedirect;
  d.status = 303;
  d.location = config.login_url;
  if (const std::string back = return_path_value(request.target); !back.empty()) {
    d.location += config.login_url.find('?') == std::string::npos ? '?' : '&';
    d.location += config.return_param;
    d.location += '=';
    d.location += back;
  }
  d.content_type = "text/plain; charset=utf-8";
  d.body = "sign-in required\n";
  return d;
}

}  // namespace sg
