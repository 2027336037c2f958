// Logout CSRF: may this request to session.logout_path end the session? A logout answered for a
// GET from any page lets every other site log our users out with an <img> tag. Pure logic: no I/O.
#pragma once

#include <optional>
#include <string_view>

namespace sg {

enum class LogoutVerdict {
  kAllowed,
  kCrossSite,         // a GET we cannot tie to our own origin: 403
  kMethodNotAllowed,  // neither GET nor POST: 405 with Allow
};

// The Allow value of the 405 (RFC 9110 §15.5.6).
inline constexpr std::string_view kLogoutAllow = "GET, POST";

struct LogoutRequest {
  bool get = false;   // method GET
  bool post = false;  // method POST
  std::optional<std::string_view> sec_fetch_site;
  std::optional<std::string_view> origin;
  std::optional<std::string_view> referer;
  std::string_view scheme;  // the scheme the client used: "http" or "https"
  std::string_view host;    // the request's Host (validated, uri-host[:port])
};

// POST is always accepted: browsers send SameSite=Lax/Strict cookies only with same-site POSTs,
// and front-channel logout (an identity provider's auto-submitted form) is a cross-site POST.
// GET is accepted when the browser says it came from our own origin or from the user
// (Sec-Fetch-Site "same-origin" or "none"), or, without Sec-Fetch-Site (older browsers, other
// clients), when Origin or else Referer names our own origin: scheme, host and port of this
// request (default ports made explicit, case-insensitive). Anything else is kCrossSite, so is a GET
// that carries none of the three headers ("same-site" too: a sibling subdomain is another origin).
LogoutVerdict logout_allowed(const LogoutRequest& request);

// Does `url` (an Origin value, or a Referer URL) have the origin scheme://host? The path, query
// and fragment of a Referer are ignored; userinfo or an opaque origin ("null") never matches.
bool same_origin(std::string_view url, std::string_view scheme, std::string_view host);

}  // namespace sg
