// ClientConnection, what is decided about a request before the session gate sees it: the scheme
// the client used (TLS, or a trusted proxy's X-Forwarded-Proto) and the logout CSRF guard. The
// logic is in set_cookie.h (client_scheme) and logout_guard.h; this is the glue. See
// client_connection.h.
#include "proxy_core/client_connection.h"

#include <llhttp.h>

#include <atomic>
#include <optional>

#include "proxy_core/http/request_validation.h"
#include "proxy_core/http/set_cookie.h"
#include "proxy_core/ops/log.h"
#include "proxy_core/session/logout_guard.h"
#include "proxy_core/worker.h"

namespace sg {

// The scheme the client used (Secure under cookie_secure = "auto", the logout origin check).
ClientScheme ClientConnection::request_scheme(const MessageHead& req) {
  const HeaderField* proto = peer_trusted_ ? req.find("x-forwarded-proto") : nullptr;
  ClientScheme scheme =
      client_scheme(tls_ != nullptr, peer_trusted_,
                    proto ? std::optional<std::string_view>(proto->value) : std::nullopt);
  if (scheme == ClientScheme::kUnknown && config_->session.cookie_secure == CookieSecure::kAuto) {
    // Cannot be decided: the cookie goes without Secure. Once per process, not per request.
    static std::atomic<bool> warned{false};
    if (!warned.exchange(true))
      SG_LOG_WARN(
          "trusted proxy %s sent a request without X-Forwarded-Proto: with cookie_secure = "
          "\"auto\" and TLS off its session cookie is not Secure (have the proxy send "
          "X-Forwarded-Proto, or set cookie_secure)",
          peer_ip_.c_str());
  }
  return scheme;
}

// logout_path ends the session only for a POST, or a GET from our own origin (logout CSRF);
// decided before the session gate can destroy anything. True when answered here.
bool ClientConnection::refuse_logout(const MessageHead& req, bool https) {
  const std::string& logout = config_->session.logout_path;
  if (logout.empty() || target_path(req.target) != logout) return false;
  const auto field = [&req](std::string_view name) -> std::optional<std::string_view> {
    const HeaderField* f = req.find(name);
    return f ? std::optional<std::string_view>(f->value) : std::nullopt;
  };
  const HeaderField* host = req.find("host");
  LogoutRequest r{req.method_id == HTTP_GET,
                  req.method_id == HTTP_POST,
                  field("sec-fetch-site"),
                  field("origin"),
                  field("referer"),
                  https ? "https" : "http",
                  host ? trim_ows(host->value) : std::string_view()};
  switch (logout_allowed(r)) {
    case LogoutVerdict::kAllowed:
      return false;
    case LogoutVerdict::kMethodNotAllowed: {
      HeaderList extra{{"Allow", std::string(kLogoutAllow)}};
      send_local(405, "method not allowed\n", ex_.close_after, &extra);
      return true;
    }
    case LogoutVerdict::kCrossSite:
      worker_->metrics().logout_refused.add();
      SG_LOG_INFO("client %s: %s %s refused: not from this site's own pages (logout CSRF)",
                  peer_ip_.c_str(), req.method.c_str(), logout.c_str());
      send_local(403, "logout refused: use POST, or a link on this site\n", ex_.close_after);
      return true;
  }
  return false;
}

}  // namespace sg
