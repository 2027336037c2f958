#include "proxy_core/session/logout_guard.h"

#include <string>

#include "proxy_core/base/ascii.h"
#include "proxy_core/http/http_message.h"
#include "proxy_core/http/request_validation.h"
#include "proxy_core/net/host_port.h"

namespace sg {
namespace {

struct Origin {
  std::string scheme;  // lower case
  std::string host;    // lower case, brackets kept for IPv6
  std::string port;    // always explicit
};

// scheme + a uri-host[:port] authority -> the origin tuple (RFC 6454 §4), or nothing.
std::optional<Origin> make_origin(std::string_view scheme, std::string_view authority) {
  if (!is_valid_host(authority)) return std::nullopt;
  Origin o{ascii_lowercase(scheme), "", ""};
  if (o.scheme != "http" && o.scheme != "https") return std::nullopt;
  const std::optional<HostPort> split = split_authority(authority);
  if (!split) return std::nullopt;  // is_valid_host accepted it, so not reached
  o.host = ascii_lowercase(bracket_host(split->host));
  o.port =
      split->has_port ? std::string(split->port) : std::string(o.scheme == "https" ? "443" : "80");
  // "080" and "80" are the same port.
  o.port.erase(0, std::min(o.port.find_first_not_of('0'), o.port.size() - 1));
  return o;
}

}  // namespace

bool same_origin(std::string_view url, std::string_view scheme, std::string_view host) {
  size_t sep = url.find("://");
  if (sep == std::string_view::npos) return false;
  std::string_view rest = url.substr(sep + 3);
  std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
  std::optional<Origin> theirs = make_origin(url.substr(0, sep), authority);
  std::optional<Origin> ours = make_origin(scheme, host);
  return theirs && ours && theirs->scheme == ours->scheme && theirs->host == ours->host &&
         theirs->port == ours->port;
}

LogoutVerdict logout_allowed(const LogoutRequest& r) {
  if (r.post) return LogoutVerdict::kAllowed;
  if (!r.get) return LogoutVerdict::kMethodNotAllowed;
  // Fetch Metadata (W3C): sent by every current browser, and not settable by page scripts.
  if (r.sec_fetch_site) {
    std::string_view site = trim_ows(*r.sec_fetch_site);
    return iequals(site, "same-origin") || iequals(site, "none") ? LogoutVerdict::kAllowed
                                                                 : LogoutVerdict::kCrossSite;
  }
  if (r.origin)
    return same_origin(trim_ows(*r.origin), r.scheme, r.host) ? LogoutVerdict::kAllowed
                                                              : LogoutVerdict::kCrossSite;
  if (r.referer)
    return same_origin(trim_ows(*r.referer), r.scheme, r.host) ? LogoutVerdict::kAllowed
                                                               : LogoutVerdict::kCrossSite;
  return LogoutVerdict::kCrossSite;
}

}  // namespace sg
