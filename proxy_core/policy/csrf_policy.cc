#include "proxy_core/policy/csrf_policy.h"

#include <algorithm>

#include "proxy_core/http/http_message.h"
#include "proxy_core/http/path_match.h"
#include "proxy_core/session/logout_guard.h"
#include "proxy_core/session/token.h"

namespace sg {
namespace {

// Is `url` (an Origin value or a Referer) one of `trusted` ("https://host[:port]")?
bool trusted_origin(const std::vector<std::string>& trusted, std::string_view url) {
  return std::any_of(trusted.begin(), trusted.end(), [&](const std::string& origin) {
    const size_t sep = origin.find("://");
    return sep != std::string::npos && same_origin(url, std::string_view(origin).substr(0, sep),
                                                   std::string_view(origin).substr(sep + 3));
  });
}

CsrfDecision refuse(CsrfReason reason) {
  return {CsrfVerdict::kRefuse, reason};
}

CsrfDecision check_fetch_metadata(const CsrfConfig& config, const CsrfRequest& r) {
  const CsrfDecision pass{CsrfVerdict::kAllow, CsrfReason::kSameOrigin};
  if (r.sec_fetch_site) {
    const std::string_view site = trim_ows(*r.sec_fetch_site);
    if (iequals(site, "same-origin") || iequals(site, "none")) return pass;
    if (r.origin && trusted_origin(config.trusted_origins, trim_ows(*r.origin))) return pass;
    if (iequals(site, "same-site"))
      return config.allow_same_site ? pass : refuse(CsrfReason::kSameSite);
    return refuse(CsrfReason::kCrossSite);
  }
  // Older browsers: the Origin a browser sends with every POST, else the Referer.
  const std::optional<std::string_view> source = r.origin ? r.origin : r.referer;
  if (!source) {
    return config.missing == CsrfMissing::kAllow
               ? CsrfDecision{CsrfVerdict::kAllow, CsrfReason::kNoMetadata}
               : refuse(CsrfReason::kNoMetadata);
  }
  const std::string_view url = trim_ows(*source);
  if (same_origin(url, r.scheme, r.host) || trusted_origin(config.trusted_origins, url))
    return pass;
  return refuse(CsrfReason::kOriginMismatch);
}

CsrfDecision compare_token(std::string_view presented, std::string_view session_token) {
  if (session_token.empty() || !constant_time_equal(trim_ows(presented), session_token))
    return refuse(CsrfReason::kTokenMismatch);
  return {CsrfVerdict::kAllow, CsrfReason::kTokenValid};
}

}  // namespace

const char* csrf_reason_name(CsrfReason reason) {
  switch (reason) {
    case CsrfReason::kNotChecked:
      return "not_checked";
    case CsrfReason::kSameOrigin:
      return "same_origin";
    case CsrfReason::kCrossSite:
      return "cross_site";
    case CsrfReason::kSameSite:
      return "same_site";
    case CsrfReason::kOriginMismatch:
      return "origin_mismatch";
    case CsrfReason::kNoMetadata:
      return "no_metadata";
    case CsrfReason::kTokenValid:
      return "token_valid";
    case CsrfReason::kTokenMissing:
      return "token_missing";
    case CsrfReason::kTokenMismatch:
      return "token_mismatch";
    case CsrfReason::kFormTooLarge:
      return "form_too_large";
  }
  return "not_checked";
}

bool is_safe_method(std::string_view method) {
  // Method names are case-sensitive (RFC 9110 §9.1): "get" is an unknown, unsafe method.
  return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "TRACE";
}

bool is_urlencoded_form(std::string_view content_type) {
  return iequals(trim_ows(content_type.substr(0, content_type.find(';'))),
                 "application/x-www-form-urlencoded");
}

CsrfDecision check_csrf(const CsrfConfig& config, const CsrfRequest& r,
                        std::string_view session_token) {
  if (config.mode == CsrfMode::kOff || is_safe_method(r.method)) return {};
  if (std::any_of(config.exempt.begin(), config.exempt.end(),
                  [&](const std::string& p) { return path_matches(p, r.path); })) {
    return {};
  }
  if (config.mode == CsrfMode::kFetchMetadata) return check_fetch_metadata(config, r);
  if (r.token_header) return compare_token(*r.token_header, session_token);
  if (is_urlencoded_form(r.content_type))
    return {CsrfVerdict::kScanBody, CsrfReason::kTokenMissing};
  return refuse(CsrfReason::kTokenMissing);
}

CsrfRequest csrf_request_of(const MessageHead& request, bool https) {
  const auto field = [&request](std::string_view name) -> std::optional<std::string_view> {
    const HeaderField* f = request.find(name);
    return f ? std::optional<std::string_view>(f->value) : std::nullopt;
  };
  CsrfRequest r;
  r.method = request.method;
  r.path = path_without_query(request.target);
  r.scheme = https ? "https" : "http";
  r.host = trim_ows(field("Host").value_or(""));
  r.sec_fetch_site = field("Sec-Fetch-Site");
  r.origin = field("Origin");
  r.referer = field("Referer");
  r.token_header = field(kCsrfTokenHeader);
  r.content_type = field("Content-Type").value_or("");
  return r;
}

CsrfDecision check_csrf(const CsrfConfig& config, const MessageHead& request, bool https,
                        std::string_view session_token) {
  if (config.mode == CsrfMode::kOff) return {};
  return check_csrf(config, csrf_request_of(request, https), session_token);
}

CsrfDecision check_form_token(std::optional<std::string_view> found, bool too_large,
                              std::string_view session_token) {
  if (found) return compare_token(*found, session_token);
  if (too_large) return {CsrfVerdict::kTooLarge, CsrfReason::kFormTooLarge};
  return refuse(CsrfReason::kTokenMissing);
}

}  // namespace sg
