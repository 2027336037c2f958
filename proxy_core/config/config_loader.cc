// Loads gateway.toml: parses it, reads each section with per-value checks, then runs the checks
// that span several keys (config_validate.cc).
#include "proxy_core/config/config_loader.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>

#include "proxy_core/base/ascii.h"
#include "proxy_core/config/config_policy.h"
#include "proxy_core/config/config_reader.h"
#include "proxy_core/http/request_validation.h"
#include "proxy_core/net/socket_address.h"

namespace sg {
namespace {

using config_detail::Diagnostics;
using config_detail::has_control;
using config_detail::KeyPositions;
using config_detail::LoadContext;
using config_detail::TableReader;
using config_detail::toml_quote;

// The single list of accepted keys: unknown-key errors suggest from it and known_config_keys()
// returns it. Unit tests hold the readers below, gateway.toml and the renderer to it.
// One group of lines per section. clang-format would put one key per line.
// clang-format off
constexpr std::string_view kKnownKeys[] = {
    "server.listen", "server.workers", "server.drain_delay", "server.drain_timeout",
    "server.max_connections", "server.trusted_proxies", "server.redirect_listen",
    "server.canonical_host",
    "server.underscore_headers", "server.http2", "server.http2_cleartext",
    "tls.certificate", "tls.private_key", "tls.min_version", "tls.ciphers",
    "tls.strict_transport_security", "tls.handshake_timeout",
    "tls.certificates.server_names", "tls.certificates.certificate",
    "tls.certificates.private_key",
    "upstream.servers", "upstream.connect_timeout", "upstream.response_timeout",
    "upstream.idle_timeout", "upstream.max_idle_connections", "upstream.websocket", "upstream.splice",
    "upstream.health_path", "upstream.health_interval", "upstream.tls", "upstream.ca_file",
    "upstream.server_name", "upstream.verify", "upstream.certificate", "upstream.private_key",
    "upstream.sign", "upstream.sign_key_file",
    "session.cookie_name", "session.cookie_path", "session.cookie_domain", "session.cookie_secure",
    "session.cookie_samesite", "session.idle_timeout", "session.absolute_timeout",
    "session.header_prefix", "session.exclude", "session.logout_path", "session.logout_redirect",
    "session.max_attributes", "session.max_attribute_bytes", "session.store",
    "session.rotation_grace", "session.on_rotated_replay", "session.create",
    "session.secret_file", "session.user_attribute", "session.max_per_user", "session.on_limit",
    "session.passive_paths", "session.status_path",
    "store.memory.max_sessions", "store.memory.snapshot_path", "store.memory.snapshot_interval",
    "store.redis.address", "store.redis.password_file", "store.redis.database",
    "store.redis.key_prefix", "store.redis.timeout", "store.redis.on_unavailable",
    "store.redis.sentinels", "store.redis.master_name", "store.redis.max_pending_destroys",
    "store.redis.local_cache",
    "health.path", "health.ready_path",
    "admin.listen", "admin.token_file",
    "limits.max_header_bytes", "limits.max_headers", "limits.max_body_bytes",
    "limits.header_timeout", "limits.client_idle_timeout",
    "http2.max_concurrent_streams", "http2.max_header_list_bytes", "http2.stream_window_bytes",
    "http2.connection_window_bytes", "http2.response_buffer_bytes", "http2.flood_window",
    "http2.max_resets", "http2.max_control_frames", "http2.max_empty_frames",
    "http2.max_continuations",
    "log.level", "log.access", "log.format", "log.audit",
        "access.login_url", "access.return_param", "access.api_paths", "access.signed_in_attribute",
    "access.rules.paths", "access.rules.methods", "access.rules.require",
    "csrf.mode", "csrf.allow_same_site", "csrf.trusted_origins", "csrf.missing", "csrf.form_field",
    "csrf.max_form_bytes", "csrf.exempt", "csrf.secret_file",
};
// clang-format on

constexpr uint64_t kMaxU32 = UINT32_MAX;
constexpr Millis kOneMs{1};
// Cookie Max-Age counts whole seconds (RFC 6265 §5.2.2): a shorter session would expire at once.
constexpr Millis kOneSecond{1000};

std::string check_listen(const std::string& v) {
  if (parse_listen_address(v)) return "";
  return config_detail::expected(
      "\"IP:PORT\" such as \"127.0.0.1:8080\", \"[::1]:8080\" or \"*:8080\" (a numeric address)",
      v);
}
std::string check_optional_listen(const std::string& v) {
  return v.empty() ? "" : check_listen(v);
}
std::string check_host_port(const std::string& v) {
  if (parse_host_port(v)) return "";
  return config_detail::expected("\"HOST:PORT\" such as \"127.0.0.1:9000\" (port 1-65535)", v);
}
// An upstream server: "HOST:PORT" or "unix:/absolute/socket/path".
std::string check_upstream_server(const std::string& v) {
  if (!is_unix_server(v)) {
    if (parse_host_port(v)) return "";
    return config_detail::expected(
        "\"unix:/path/to/app.sock\" or \"HOST:PORT\" such as \"127.0.0.1:9000\" (port 1-65535)", v);
  }
  const std::string problem = unix_server_problem(v);
  return problem.empty() ? "" : config_detail::expected(problem, v);
}
std::string check_path_prefix(const std::string& v) {
  if (!v.empty() && v[0] == '/' && !has_control(v) && v.find(' ') == std::string::npos) return "";
  return config_detail::expected("a path starting with \"/\"", v);
}
std::string check_optional_path_prefix(const std::string& v) {
  return v.empty() ? "" : check_path_prefix(v);
}

void read_server(TableReader t, ServerConfig& s) {
  t.string_list("listen", s.listen, check_listen, false);
  if (const toml::node* node = t.take("workers")) {
    // "auto" (one worker per core) or a count; 1024 is far past any useful core count.
    std::string text;
    const std::string what = "\"auto\" or an integer from 1 to 1024";
    const auto in_range = [](int64_t n) { return n >= 1 && n <= 1024; };
    if (const auto* integer = node->as_integer(); integer && in_range(integer->get())) {
      s.workers = static_cast<unsigned>(integer->get());
    } else if (node->is_string() && t.text(*node, "workers", what, text)) {
      int64_t n = 0;
      const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
      if (iequals(text, "auto")) {
        s.workers = 0;
      } else if (ec == std::errc() && end == text.data() + text.size() && in_range(n)) {
        s.workers = static_cast<unsigned>(n);
      } else {
        t.error(*node, "workers", config_detail::expected(what, text));
      }
    } else if (!node->is_string()) {
      t.error(*node, "workers", "expected " + what + ", got " + config_detail::describe(*node));
    }
  }
  t.duration("drain_delay", s.drain_delay, Millis{0});
  t.duration("drain_timeout", s.drain_timeout, Millis{0});
  t.integer("max_connections", s.max_connections, 1, kMaxU32);
  std::vector<std::string> proxies;
  const auto nodes = t.string_list(
      "trusted_proxies", proxies,
      [](const std::string& v) {
        return CidrBlock::parse(v) ? ""
                                   : config_detail::expected(
                                         "a CIDR block such as \"10.0.0.0/8\" or \"::1/128\"", v);
      },
      true);
  if (t.take("trusted_proxies") != nullptr) {
    // Empty when any element was invalid; that error already fails the load.
    s.trusted_proxies.clear();
    for (size_t i = 0; i < nodes.size(); ++i) {
      const CidrBlock block = *CidrBlock::parse(proxies[i]);
      // "10.0.0.1/8" means 10.0.0.0/8; likely a typo for a /32, so say what it means.
      const std::string address = proxies[i].substr(0, proxies[i].find('/'));
      if (CidrBlock::parse(address)->address != block.address) {
        t.warning(*nodes[i], "trusted_proxies",
                  toml_quote(proxies[i]) + " has host bits set; it means " +
                      toml_quote(block.to_string()));
      }
      s.trusted_proxies.push_back(block);
    }
  }
  t.string("redirect_listen", s.redirect_listen, check_optional_listen);
  t.string("canonical_host", s.canonical_host, [](const std::string& v) {
    return v.empty() || is_valid_host(v)
               ? std::string()
               : config_detail::expected(
                     "a host name with an optional port, such as \"example.com\" or "
                     "\"example.com:8443\" (no scheme, no path)",
                     v);
  });
  t.choice("underscore_headers", s.underscore_headers,
           {{"reject", UnderscorePolicy::kReject}, {"drop", UnderscorePolicy::kDrop}});
  t.boolean("http2", s.http2);
  t.boolean("http2_cleartext", s.http2_cleartext);
  t.finish();
}

void read_tls_certificates(TableReader& t, TlsConfig& tls) {
  for (TableReader& entry : t.table_array("certificates")) {
    TlsCertificate cert;
    entry.string_list(
        "server_names", cert.server_names,
        [](const std::string& v) {
          // "*.example.com" covers one label, as in certificates (RFC 6125 §6.4.3).
          const std::string host = v.rfind("*.", 0) == 0 ? v.substr(2) : v;
          return parse_host_port(host + ":1") && host.find(':') == std::string::npos
                     ? ""
                     : config_detail::expected("a host name such as \"example.com\"", v);
        },
        false);
    entry.path("certificate", cert.certificate);
    entry.path("private_key", cert.private_key);
    entry.finish();
    tls.certificates.push_back(std::move(cert));
  }
}

void read_tls(TableReader t, TlsConfig& tls) {
  t.path("certificate", tls.certificate);
  t.path("private_key", tls.private_key);
  t.choice<std::string>("min_version", tls.min_version, {{"1.2", "1.2"}, {"1.3", "1.3"}});
  t.string("ciphers", tls.ciphers);
  t.string("strict_transport_security", tls.strict_transport_security, [](const std::string& v) {
    // RFC 6797 §6.1.1: max-age is the one required directive.
    if (v.empty() || (!has_control(v) && ascii_lowercase(v).find("max-age=") != std::string::npos))
      return std::string();
    return config_detail::expected("a header value such as \"max-age=31536000\"", v);
  });
  t.duration("handshake_timeout", tls.handshake_timeout, kOneMs);
  read_tls_certificates(t, tls);
  t.finish();
}

void read_upstream(TableReader t, UpstreamConfig& u) {
  t.string_list("servers", u.servers, check_upstream_server, false);
  t.duration("connect_timeout", u.connect_timeout, kOneMs);
  t.duration("response_timeout", u.response_timeout, kOneMs);
  t.duration("idle_timeout", u.idle_timeout, kOneMs);
  t.integer("max_idle_connections", u.max_idle_connections, 0, kMaxU32);
  t.boolean("websocket", u.websocket);
  t.boolean("splice", u.splice);
  t.string("health_path", u.health_path, check_optional_path_prefix);
  t.duration("health_interval", u.health_interval, kOneMs);
  t.boolean("tls", u.tls);
  t.path("ca_file", u.ca_file);
  t.string("server_name", u.server_name, [](const std::string& v) {
    return v.empty() || parse_host_port(v + ":1") ? "" : config_detail::expected("a host name", v);
  });
  t.boolean("verify", u.verify);
  t.path("certificate", u.certificate);
  t.path("private_key", u.private_key);
  config_detail::read_upstream_signing(t, u);
  t.finish();
}

void read_session(TableReader t, SessionConfig& s) {
  t.string("cookie_name", s.cookie_name, [](const std::string& v) {
    // RFC 6265 §4.1.1: cookie-name is a token.
    return is_token(v) ? "" : config_detail::expected("a cookie name (an RFC 6265 token)", v);
  });
  t.string("cookie_path", s.cookie_path, [](const std::string& v) {
    // RFC 6265 §4.1.1 path-value: no CTLs and no ";".
    return v.find(';') == std::string::npos ? check_path_prefix(v)
                                            : config_detail::expected("a path without \";\"", v);
  });
  t.string("cookie_domain", s.cookie_domain, [](const std::string& v) {
    const std::string host = v.rfind('.', 0) == 0 ? v.substr(1) : v;  // a leading dot is ignored
    return v.empty() || (parse_host_port(host + ":1") && host.find(':') == std::string::npos)
               ? ""
               : config_detail::expected("a domain such as \"example.com\"", v);
  });
  if (const toml::node* node = t.take("cookie_secure")) {
    const std::string what = "\"auto\", true or false";
    std::string text;
    if (const auto* b = node->as_boolean()) {
      s.cookie_secure = b->get() ? CookieSecure::kAlways : CookieSecure::kNever;
    } else if (node->is_string() && t.text(*node, "cookie_secure", what, text)) {
      if (iequals(text, "auto")) {
        s.cookie_secure = CookieSecure::kAuto;
      } else if (text == "true" || text == "false") {
        s.cookie_secure = text == "true" ? CookieSecure::kAlways : CookieSecure::kNever;
      } else {
        t.error(*node, "cookie_secure", config_detail::expected(what, text));
      }
    } else if (!node->is_string()) {
      t.error(*node, "cookie_secure",
              "expected " + what + ", got " + config_detail::describe(*node));
    }
  }
  t.choice<std::string>("cookie_samesite", s.cookie_samesite,
                        {{"Strict", "Strict"}, {"Lax", "Lax"}, {"None", "None"}});
  t.duration("idle_timeout", s.idle_timeout, kOneSecond);
  t.duration("absolute_timeout", s.absolute_timeout, kOneSecond);
  t.string("header_prefix", s.header_prefix, [](const std::string& v) {
    // The prefix starts header names, so it must be a token; the "-" keeps "X-Session-Id" from
    // reading as "X-SessionId" and makes prefix matching unambiguous.
    return is_token(v) && v.size() >= 2 && v.back() == '-'
               ? ""
               : config_detail::expected(
                     "a header name prefix ending in \"-\", such as \"X-Session-\"", v);
  });
  t.string_list("exclude", s.exclude, check_path_prefix, true);
  t.string("logout_path", s.logout_path, check_optional_path_prefix);
  t.string("logout_redirect", s.logout_redirect, [](const std::string& v) {
    const bool ok =
        (v.rfind('/', 0) == 0 || v.rfind("https://", 0) == 0 || v.rfind("http://", 0) == 0) &&
        !has_control(v) && v.find(' ') == std::string::npos;
    return ok ? "" : config_detail::expected("a path (\"/\") or an http(s) URL", v);
  });
  t.integer("max_attributes", s.max_attributes, 0, 10000);
  // Every attribute travels to the application as a request header on every request.
  t.size("max_attribute_bytes", s.max_attribute_bytes, 0, 1u << 20);
  t.choice("store", s.store, {{"memory", StoreKind::kMemory}, {"redis", StoreKind::kRedis}});
  t.duration("rotation_grace", s.rotation_grace, Millis{0});
  t.choice("on_rotated_replay", s.on_rotated_replay,
           {{"ignore", OnRotatedReplay::kIgnore}, {"destroy", OnRotatedReplay::kDestroy}});
  t.choice("create", s.create,
           {{"always", SessionCreate::kAlways}, {"on_return", SessionCreate::kOnReturn}});
  t.path("secret_file", s.secret_file);
  t.string("user_attribute", s.user_attribute, [](const std::string& v) {
    const bool id = v.size() == 2 && (v[0] | 0x20) == 'i' && (v[1] | 0x20) == 'd';
    return is_token(v) && !id
               ? ""
               : config_detail::expected("an attribute name (a header token, not \"Id\")", v);
  });
  t.integer("max_per_user", s.max_per_user, 0, 1000000);
  t.string_list("passive_paths", s.passive_paths, check_path_prefix, true);
  t.string("status_path", s.status_path, check_optional_path_prefix);
  t.choice("on_limit", s.on_limit,
           {{"evict_oldest", UserLimitPolicy::kEvictOldest}, {"reject", UserLimitPolicy::kReject}});
  t.finish();
}

void read_store(TableReader t, Config& c) {
  TableReader memory = t.section("memory");
  memory.integer("max_sessions", c.memory_store.max_sessions, 1, uint64_t{1} << 40);
  memory.path("snapshot_path", c.memory_store.snapshot_path);
  memory.duration("snapshot_interval", c.memory_store.snapshot_interval, kOneSecond);
  memory.finish();

  TableReader redis = t.section("redis");
  RedisStoreConfig& r = c.redis_store;
  redis.string("address", r.address, [](const std::string& v) {
    if (v.find('@') != std::string::npos || v.find("://") != std::string::npos) {
      // Keeps credentials out of Config (and so out of /config and logs).
      return "expected \"HOST:PORT\" or a unix socket path without credentials or scheme, got " +
             toml_quote(v) + "; put the password in store.redis.password_file";
    }
    return v.rfind('/', 0) == 0 ? std::string() : check_host_port(v);
  });
  redis.path("password_file", r.password_file);
  redis.integer("database", r.database, 0, kMaxU32);
  redis.string("key_prefix", r.key_prefix);
  redis.duration("timeout", r.timeout, kOneMs);
  redis.duration("local_cache", r.local_cache, Millis{0});
  redis.choice(
      "on_unavailable", r.on_unavailable,
      {{"fail_closed", OnUnavailable::kFailClosed}, {"fail_open", OnUnavailable::kFailOpen}});
  redis.string_list("sentinels", r.sentinels, check_host_port, true);
  redis.string("master_name", r.master_name);
  // Each entry costs ~100 bytes; a million covers any realistic logout rate over a long outage.
  redis.integer("max_pending_destroys", r.max_pending_destroys, 0, 1000000);
  redis.finish();
  t.finish();
}

void read_log(TableReader t, LogConfig& log) {
  t.choice("level", log.level,
           {{"debug", LogLevel::kDebug},
            {"info", LogLevel::kInfo},
            {"warn", LogLevel::kWarn},
            {"error", LogLevel::kError}});
  std::string access = log.access;
  t.string("access", access);
  log.access = (access == "stdout" || access == "off") ? access : t.resolve(access);
  if (log.access.empty()) log.access = "off";  // an empty path would fail at open; say "off"
  t.choice("format", log.format,
           {{"json", AccessLogFormat::kJson}, {"combined", AccessLogFormat::kCombined}});
  std::string audit = log.audit;
  t.string("audit", audit);
  log.audit = (audit == "stderr" || audit == "off") ? audit : t.resolve(audit);
  if (log.audit.empty()) log.audit = "off";
  t.finish();
}

void read_http2(TableReader t, Http2Config& h) {
  t.integer("max_concurrent_streams", h.max_concurrent_streams, 1, 10000);
  t.size("max_header_list_bytes", h.max_header_list_bytes, 0, 1u << 20);
  // RFC 9113 §6.5.2/§6.9.1: a window is at most 2^31-1; below 16 KiB no full DATA frame fits.
  constexpr uint64_t kMaxWindow = (1u << 31) - 1;
  t.size("stream_window_bytes", h.stream_window_bytes, 16 * 1024, kMaxWindow);
  t.size("connection_window_bytes", h.connection_window_bytes, 64 * 1024, kMaxWindow);
  t.size("response_buffer_bytes", h.response_buffer_bytes, 16 * 1024, 64u << 20);
  t.duration("flood_window", h.flood_window, kOneSecond);
  t.integer("max_resets", h.max_resets, 1, kMaxU32 / 4);
  t.integer("max_control_frames", h.max_control_frames, 1, kMaxU32 - 1);
  t.integer("max_empty_frames", h.max_empty_frames, 1, kMaxU32 - 1);
  t.integer("max_continuations", h.max_continuations, 1, 1000);
  t.finish();
}

void read_all(TableReader root, Config& c) {
  read_server(root.section("server"), c.server);
  read_tls(root.section("tls"), c.tls);
  read_upstream(root.section("upstream"), c.upstream);
  read_session(root.section("session"), c.session);
  read_store(root.section("store"), c);
  TableReader health = root.section("health");
  health.string("path", c.health.path, check_path_prefix);
  health.string("ready_path", c.health.ready_path, check_path_prefix);
  health.finish();
  TableReader admin = root.section("admin");
  admin.string("listen", c.admin.listen, check_optional_listen);
  admin.path("token_file", c.admin.token_file);
  admin.finish();
  TableReader limits = root.section("limits");
  // 256 bytes still fits a request line and a Host header; past 1 MiB one slow client could
  // pin that much memory per connection.
  limits.size("max_header_bytes", c.limits.max_header_bytes, 256, 1u << 20);
  limits.integer("max_headers", c.limits.max_headers, 1, 10000);
  limits.size("max_body_bytes", c.limits.max_body_bytes, 0, UINT64_MAX);
  limits.duration("header_timeout", c.limits.header_timeout, kOneMs);
  limits.duration("client_idle_timeout", c.limits.client_idle_timeout, kOneMs);
  limits.finish();
  read_http2(root.section("http2"), c.http2);
  read_log(root.section("log"), c.log);
  config_detail::read_access(root.section("access"), c.access);
  config_detail::read_csrf(root.section("csrf"), c.csrf);
  root.finish();
}

ConfigLoadResult load(std::string_view text, const std::string& source_name,
                      const std::filesystem::path& base_dir) {
  ConfigLoadResult result;
  Diagnostics diagnostics(source_name);
  toml::table document;
  try {
    document = toml::parse(text, source_name);
  } catch (const toml::parse_error& e) {
    // toml++ says "Error while parsing ..."; lower-cased it reads as the rest of the sentence.
    std::string description(e.description());
    if (!description.empty()) description[0] = ascii_lower(description[0]);
    diagnostics.error(config_detail::pos_of(e.source()), "invalid TOML: " + description);
    diagnostics.move_into(result);
    return result;
  }
  KeyPositions positions;
  LoadContext context{diagnostics, positions, base_dir, kKnownKeys};
  Config config;
  config.source_path = source_name;
  read_all(TableReader(context, &document, ""), config);
  config_detail::validate_config(config, positions, diagnostics);
  if (!diagnostics.has_errors()) result.config = std::move(config);
  diagnostics.move_into(result);
  return result;
}

}  // namespace

ConfigLoadResult load_config_string(std::string_view toml_text, const std::string& source_name) {
  return load(toml_text, source_name, {});
}

ConfigLoadResult load_config_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ConfigLoadResult result;
    result.errors.push_back(
        {path, 0, 0, "cannot read the configuration file: " + std::string(std::strerror(errno))});
    return result;
  }
  std::ostringstream text;
  text << in.rdbuf();
  return load(text.str(), path, std::filesystem::path(path).parent_path());
}

std::vector<std::string> known_config_keys() {
  return std::vector<std::string>(std::begin(kKnownKeys), std::end(kKnownKeys));
}

}  // namespace sg
