#include "proxy_core/http/set_cookie.h"
#include "proxy_core/http/http_message.h"

namespace sg {

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
