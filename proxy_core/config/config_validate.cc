// Checks that span several keys, or look at the file system. Each reports at the position of the
// key an operator should change.
#include "proxy_core/config/config_validate.h"

#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "proxy_core/base/ascii.h"
#include "proxy_core/config/config_policy.h"
#include "proxy_core/http/set_cookie.h"
#include "proxy_core/net/socket_address.h"

namespace sg::config_detail {
namespace {

// Two listeners clash when one would take the other's connections (or fail to bind): same port,
// and the same address or a wildcard. "::" takes IPv4 too on a dual-stack host. Port 0 never
// clashes: the kernel picks a distinct port for each.
bool listeners_clash(const ListenEndpoint& a, const ListenEndpoint& b) {
  if (a.port != b.port || a.port == 0) return false;
  const auto bytes = [](const std::string& host) {
    std::array<uint8_t, 16> out{};
    inet_pton(host.find(':') == std::string::npos ? AF_INET : AF_INET6, host.c_str(), out.data());
    return out;
  };
  const bool a6 = a.host.find(':') != std::string::npos;
  const bool b6 = b.host.find(':') != std::string::npos;
  if (a.host == "::" || b.host == "::") return true;
  if (a6 != b6) return false;
  if (a.host == "0.0.0.0" || b.host == "0.0.0.0") return true;
  return bytes(a.host) == bytes(b.host);
}

// Loopback (127/8, ::1), private (10/8, 172.16/12, 192.168/16, fc00::/7) or link-local
// (169.254/16, fe80::/10) addresses. The wildcards ("0.0.0.0", "::") are every address: not.
bool is_loopback_or_private(const std::string& host) {
  uint8_t a[16] = {};
  if (inet_pton(AF_INET, host.c_str(), a) == 1) {
    return a[0] == 127 || a[0] == 10 || (a[0] == 172 && (a[1] & 0xf0) == 16) ||
           (a[0] == 192 && a[1] == 168) || (a[0] == 169 && a[1] == 254);
  }
  if (inet_pton(AF_INET6, host.c_str(), a) != 1) return false;
  static constexpr uint8_t kLoopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  if (std::memcmp(a, kLoopback, 16) == 0) return true;
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(a, kMapped, 12) == 0) {  // ::ffff:10.0.0.1
    char v4[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, a + 12, v4, sizeof v4);
    return is_loopback_or_private(v4);
  }
  return (a[0] & 0xfe) == 0xfc || (a[0] == 0xfe && (a[1] & 0xc0) == 0x80);
}

class Validator {
 public:
  Validator(const Config& config, const KeyPositions& positions, Diagnostics& diagnostics)
      : c_(config), positions_(positions), diagnostics_(diagnostics) {}

  void run() {
    check_listeners();
    check_tls();
    check_upstream();
    check_session();
    check_store();
    check_paths();
    check_http2();
  }

 private:
  void error(std::initializer_list<std::string> keys, const std::string& message) {
    diagnostics_.error(positions_.of(keys), *keys.begin() + ": " + message);
  }
  void warning(std::initializer_list<std::string> keys, const std::string& message) {
    diagnostics_.warning(positions_.of(keys), *keys.begin() + ": " + message);
  }

  void check_http2() {
    const Http2Config& h = c_.http2;
    // All streams share the connection window: below one stream's window, one stream fills it.
    if (h.connection_window_bytes < h.stream_window_bytes)
      error({"http2.connection_window_bytes", "http2.stream_window_bytes"},
            "must be at least http2.stream_window_bytes");
    if (h.flood_window > Millis{3600 * 1000})
      error({"http2.flood_window"}, "at most \"1h\": the counters are meant for bursts");
  }

  bool cookie_secure() const {
    return c_.session.cookie_secure == CookieSecure::kAlways ||
           (c_.session.cookie_secure == CookieSecure::kAuto && c_.tls.enabled());
  }

  void check_listeners() {
    std::vector<ListenEndpoint> listen;
    for (size_t i = 0; i < c_.server.listen.size(); ++i) {
      const auto endpoint = parse_listen_address(c_.server.listen[i]);
      if (!endpoint) return;  // already reported by the reader
      for (size_t j = 0; j < listen.size(); ++j) {
        if (listeners_clash(listen[j], *endpoint)) {
          const std::string key = "server.listen[" + std::to_string(i) + "]";
          diagnostics_.error(positions_.of({key, "server.listen"}),
                             "server.listen: " + toml_quote(c_.server.listen[i]) + " overlaps " +
                                 toml_quote(c_.server.listen[j]));
        }
      }
      listen.push_back(*endpoint);
    }
    const auto clashes_with_listen = [&](const std::string& address) -> std::string {
      const auto endpoint = parse_listen_address(address);
      if (!endpoint) return "";
      for (size_t j = 0; j < listen.size(); ++j) {
        if (listeners_clash(listen[j], *endpoint)) return c_.server.listen[j];
      }
      return "";
    };
    if (!c_.server.redirect_listen.empty()) {
      if (const std::string other = clashes_with_listen(c_.server.redirect_listen);
          !other.empty()) {
        error({"server.redirect_listen"}, toml_quote(c_.server.redirect_listen) +
                                              " overlaps server.listen " + toml_quote(other) +
                                              "; the redirect needs its own port");
      }
      if (!c_.tls.enabled()) {
        error({"server.redirect_listen"},
              "redirects to https, but TLS is off (set tls.certificate and tls.private_key)");
      }
    }
    if (!c_.admin.listen.empty()) {
      if (const std::string other = clashes_with_listen(c_.admin.listen); !other.empty()) {
        error({"admin.listen"}, toml_quote(c_.admin.listen) + " overlaps server.listen " +
                                    toml_quote(other) +
                                    "; the admin listener needs its own address or port");
      }
      const auto admin = parse_listen_address(c_.admin.listen);
      // A warning: a private network may be exactly where the scraper lives, but the operator
      // should know that /config and /metrics answer anyone who can reach the address.
      if (admin && !is_loopback_or_private(admin->host)) {
        warning({"admin.listen"},
                toml_quote(c_.admin.listen) +
                    " is not a loopback or private address: /config and /metrics answer without "
                    "authentication to anyone who can reach it");
      }
      const auto redirect = parse_listen_address(c_.server.redirect_listen);
      if (admin && redirect && listeners_clash(*admin, *redirect)) {
        error({"admin.listen"}, toml_quote(c_.admin.listen) + " overlaps server.redirect_listen");
      }
    }
  }

  void check_key_pair(const std::string& prefix, const std::string& certificate,
                      const std::string& private_key) {
    if (!certificate.empty() && private_key.empty()) {
      error({prefix + "certificate", prefix.substr(0, prefix.size() - 1)},
            "is set but " + prefix + "private_key is not; both are needed");
    } else if (certificate.empty() && !private_key.empty()) {
      error({prefix + "private_key", prefix.substr(0, prefix.size() - 1)},
            "is set but " + prefix + "certificate is not; both are needed");
    }
  }

  void check_tls() {
    const TlsConfig& tls = c_.tls;
    check_key_pair("tls.", tls.certificate, tls.private_key);
    std::vector<std::string> names;
    for (size_t i = 0; i < tls.certificates.size(); ++i) {
      const TlsCertificate& entry = tls.certificates[i];
      const std::string key = "tls.certificates[" + std::to_string(i) + "]";
      if (entry.certificate.empty() && entry.private_key.empty()) {
        error({key}, "certificate and private_key are required");
      } else {
        check_key_pair(key + ".", entry.certificate, entry.private_key);
      }
      if (entry.server_names.empty() && !positions_.has(key + ".server_names")) {
        error({key}, "server_names is required");
      }
      for (const std::string& name : entry.server_names) {
        if (std::find(names.begin(), names.end(), name) != names.end()) {
          error({key + ".server_names", key}, toml_quote(name) + " is listed in another entry");
        }
        names.push_back(name);
      }
    }
    if (!tls.certificates.empty() && !tls.enabled() && tls.certificate.empty() &&
        tls.private_key.empty()) {
      error({"tls.certificates[0]"},
            "needs a default tls.certificate and tls.private_key, for clients that send no "
            "server name (SNI)");
    }
    if (!tls.strict_transport_security.empty() && !tls.enabled()) {
      warning({"tls.strict_transport_security"},
              "has no effect while TLS is off: browsers ignore HSTS over plain HTTP");
    }
  }

  void check_upstream() {
    const UpstreamConfig& u = c_.upstream;
    check_key_pair("upstream.", u.certificate, u.private_key);
    if (!u.tls) {
      for (const auto& [key, value] : {std::pair{"upstream.ca_file", &u.ca_file},
                                       {"upstream.server_name", &u.server_name},
                                       {"upstream.certificate", &u.certificate},
                                       {"upstream.private_key", &u.private_key}}) {
        if (!value->empty()) warning({key}, "has no effect while upstream.tls is false");
      }
    } else {
      // TLS over a Unix socket protects nothing the file permissions do not, and there is no host
      // name to verify: refuse rather than silently send plain text to a "tls" server.
      for (size_t i = 0; i < u.servers.size(); ++i) {
        if (!is_unix_server(u.servers[i])) continue;
        const std::string key = "upstream.servers[" + std::to_string(i) + "]";
        diagnostics_.error(positions_.of({key, "upstream.servers", "upstream.tls"}),
                           "upstream.servers: " + toml_quote(u.servers[i]) +
                               " is a Unix socket, but upstream.tls is true: TLS is only spoken "
                               "to HOST:PORT servers");
      }
    }
    if (u.tls && !u.verify) {
      warning({"upstream.verify"},
              "upstream certificates are not verified: anyone on the network path can pose as "
              "the application");
    }
  }

  void check_session() {
    const SessionConfig& s = c_.session;
    const std::string secure_how =
        "(set session.cookie_secure = true, or turn TLS on with cookie_secure = \"auto\")";
    // RFC 6265bis §4.1.3: browsers match the prefixes case-insensitively.
    if (istarts_with(s.cookie_name, "__Host-")) {
      if (!cookie_secure()) {
        error({"session.cookie_name"}, "a \"__Host-\" cookie must be Secure " + secure_how);
      }
      if (s.cookie_path != "/") {
        error({"session.cookie_name", "session.cookie_path"},
              "a \"__Host-\" cookie must have session.cookie_path = \"/\", got " +
                  toml_quote(s.cookie_path));
      }
      if (!s.cookie_domain.empty()) {
        error({"session.cookie_name", "session.cookie_domain"},
              "a \"__Host-\" cookie must not have a session.cookie_domain, got " +
                  toml_quote(s.cookie_domain));
      }
    } else if (istarts_with(s.cookie_name, "__Secure-") && !cookie_secure()) {
      error({"session.cookie_name"}, "a \"__Secure-\" cookie must be Secure " + secure_how);
    }
    if (s.cookie_samesite == "None" && !cookie_secure()) {
      // Browsers reject SameSite=None cookies without Secure.
      error({"session.cookie_samesite"}, "SameSite=None requires a Secure cookie " + secure_how);
    }
    if (s.absolute_timeout < s.idle_timeout) {
      error({"session.absolute_timeout", "session.idle_timeout"},
            toml_quote(format_duration(s.absolute_timeout)) +
                " is shorter than session.idle_timeout " +
                toml_quote(format_duration(s.idle_timeout)));
    }
    if (c_.health.path == c_.health.ready_path) {
      error({"health.ready_path", "health.path"},
            "must differ from health.path " + toml_quote(c_.health.path));
    }
    check_status_path();
    if (s.logout_path == c_.health.path || s.logout_path == c_.health.ready_path) {
      error({"session.logout_path"}, toml_quote(s.logout_path) + " is also a health check path");
    }
    // An error, not a warning: the browser never sends the cookie there (RFC 6265 §5.1.4), so
    // logout would only ever expire a cookie it never saw and leave the session alive.
    if (!s.logout_path.empty() && !cookie_path_matches(s.cookie_path, s.logout_path)) {
      error({"session.logout_path", "session.cookie_path"},
            toml_quote(s.logout_path) + " is outside session.cookie_path " +
                toml_quote(s.cookie_path) +
                ": browsers do not send the session cookie there, so logout could not end the "
                "session");
    }
  }

  // session.status_path is answered by the gateway from the session cookie, so the browser must
  // send the cookie there, and it must not shadow another path the gateway answers.
  void check_status_path() {
    const SessionConfig& s = c_.session;
    if (s.status_path.empty()) return;
    if (s.status_path == c_.health.path || s.status_path == c_.health.ready_path ||
        s.status_path == s.logout_path) {
      error({"session.status_path"},
            toml_quote(s.status_path) + " is also a health check path or session.logout_path");
    }
    if (!cookie_path_matches(s.cookie_path, s.status_path)) {
      error({"session.status_path", "session.cookie_path"},
            toml_quote(s.status_path) + " is outside session.cookie_path " +
                toml_quote(s.cookie_path) + ": browsers do not send the session cookie there");
    }
  }

  void check_store() {
    const RedisStoreConfig& r = c_.redis_store;
    if (c_.session.store == StoreKind::kMemory && !c_.session.secret_file.empty()) {
      // A retired first-visit token is kept out only by the rotation marker at its key, and the
      // memory store's markers do not outlive the process (nor are they in the snapshot). With a
      // key that outlives it too, a copy of a logged-out first-visit cookie (or the pre-login
      // cookie of a signed-in session, same handle) could be stored again after a restart. A
      // per-process key makes every first-visit token of an earlier run invalid instead.
      error({"session.secret_file"},
            "is for store = \"redis\" only: with the memory store the first-visit key is made "
            "at start, because rotation markers do not outlive a restart");
    }
    if (c_.session.store != StoreKind::kRedis) return;
    if (c_.session.create == SessionCreate::kOnReturn && c_.session.secret_file.empty()) {
      // Every instance must accept the first-visit tokens the others issued.
      error({"session.create", "session.secret_file"},
            "create = \"on_return\" with store = \"redis\" needs session.secret_file, a key "
            "shared by every instance");
    }
    if (!r.sentinels.empty() && r.master_name.empty()) {
      error({"store.redis.sentinels", "store.redis"},
            "needs store.redis.master_name, the name of the master the sentinels watch");
    }
    if (r.sentinels.empty() && !r.master_name.empty()) {
      warning({"store.redis.master_name"}, "has no effect without store.redis.sentinels");
    }
  }

  // Files must exist and be readable; secrets should not be readable by every user.
  void check_file(const std::string& key, const std::string& path, bool secret) {
    if (path.empty()) return;
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) {
      error({key}, "cannot open " + toml_quote(path) + ": " + std::strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
      error({key}, toml_quote(path) + " is not a regular file");
    } else if (access(path.c_str(), R_OK) != 0) {
      error({key}, "cannot read " + toml_quote(path) + ": " + std::strerror(errno));
    } else if (secret && (st.st_mode & S_IROTH) != 0) {
      warning({key}, toml_quote(path) + " is readable by every user; run chmod o-r on it");
    }
  }

  // A key file (first-visit tokens, CSRF tokens, identity signatures): a short key would be
  // guessable.
  void check_secret_size(const std::string& key, const std::string& path) {
    struct stat st {};
    if (path.empty() || stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return;
    if (st.st_size < 32) {
      error({key}, toml_quote(path) + " holds " + std::to_string(st.st_size) +
                       " bytes; it needs at least 32 random bytes");
    }
  }
  void check_key_file(const std::string& key, const std::string& path) {
    check_file(key, path, true);
    check_secret_size(key, path);
  }

  // Files the gateway creates need an existing directory.
  void check_directory_of(const std::string& key, const std::string& path) {
    if (path.empty()) return;
    std::filesystem::path dir = std::filesystem::path(path).parent_path();
    if (dir.empty()) dir = ".";
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) {
      error({key}, "the directory " + toml_quote(dir.string()) + " does not exist");
    }
  }

  void check_paths() {
    check_file("tls.certificate", c_.tls.certificate, false);
    check_file("tls.private_key", c_.tls.private_key, true);
    for (size_t i = 0; i < c_.tls.certificates.size(); ++i) {
      const std::string key = "tls.certificates[" + std::to_string(i) + "]";
      check_file(key + ".certificate", c_.tls.certificates[i].certificate, false);
      check_file(key + ".private_key", c_.tls.certificates[i].private_key, true);
    }
    // Checked even where the setting is unused (upstream.tls off, the other store): a path that
    // is written down but wrong is a mistake waiting for the day the setting is switched on.
    check_file("upstream.ca_file", c_.upstream.ca_file, false);
    check_file("upstream.certificate", c_.upstream.certificate, false);
    check_file("upstream.private_key", c_.upstream.private_key, true);
    check_file("store.redis.password_file", c_.redis_store.password_file, true);
    check_key_file("session.secret_file", c_.session.secret_file);
    check_key_file("csrf.secret_file", c_.csrf.secret_file);
    for (size_t i = 0; i < c_.upstream.sign_key_file.size(); ++i) {
      check_key_file("upstream.sign_key_file[" + std::to_string(i) + "]",
                     c_.upstream.sign_key_file[i]);
    }
    check_directory_of("store.memory.snapshot_path", c_.memory_store.snapshot_path);
    if (c_.log.access != "stdout" && c_.log.access != "off") {
      check_directory_of("log.access", c_.log.access);
    }
  }

  const Config& c_;
  const KeyPositions& positions_;
  Diagnostics& diagnostics_;
};

}  // namespace

void Diagnostics::error(SourcePos where, std::string message) {
  errors_.push_back({file_, where.line, where.column, std::move(message)});
}

void Diagnostics::warning(SourcePos where, std::string message) {
  warnings_.push_back({file_, where.line, where.column, std::move(message)});
}

void Diagnostics::move_into(ConfigLoadResult& result) {
  // File order reads best in a --check report; problems with no place in the file come last.
  const auto by_place = [](const ConfigDiagnostic& a, const ConfigDiagnostic& b) {
    return std::make_tuple(a.line == 0, a.line, a.column) <
           std::make_tuple(b.line == 0, b.line, b.column);
  };
  std::stable_sort(errors_.begin(), errors_.end(), by_place);
  std::stable_sort(warnings_.begin(), warnings_.end(), by_place);
  result.errors = std::move(errors_);
  result.warnings = std::move(warnings_);
}

SourcePos KeyPositions::of(std::initializer_list<std::string> keys) const {
  for (const std::string& key : keys) {
    if (const auto it = positions_.find(key); it != positions_.end()) return it->second;
  }
  return {};
}

std::string toml_quote(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out = "\"";
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (u < 0x20 || u == 0x7f) {
          out += "\\u00";
          out += kHex[u >> 4];
          out += kHex[u & 0xf];
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

void validate_config(const Config& config, const KeyPositions& positions,
                     Diagnostics& diagnostics) {
  Validator(config, positions, diagnostics).run();
  validate_policy(config, positions, diagnostics);
}

}  // namespace sg::config_detail
