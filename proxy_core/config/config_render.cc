// render_effective_config: the Config back as TOML, for `/config` on the admin listener and for
// operators comparing what runs with what they wrote. Loading the output yields the same Config.
#include <sstream>

#include "proxy_core/config/config_loader.h"
#include "proxy_core/config/config_validate.h"

namespace sg {
namespace {

using config_detail::toml_quote;

class TomlWriter {
 public:
  void section(std::string_view name) {
    out_ << (first_ ? "" : "\n") << "[" << name << "]\n", first_ = false;
  }
  void array_section(std::string_view name) { out_ << "\n[[" << name << "]]\n"; }
  void raw(std::string_view key, const std::string& value) {
    out_ << key << " = " << value << "\n";
  }
  void str(std::string_view key, std::string_view value) { raw(key, toml_quote(value)); }
  void num(std::string_view key, uint64_t value) { raw(key, std::to_string(value)); }
  void boolean(std::string_view key, bool value) { raw(key, value ? "true" : "false"); }
  void duration(std::string_view key, Millis value) { str(key, format_duration(value)); }
  void size(std::string_view key, uint64_t value) { str(key, format_size(value)); }
  void list(std::string_view key, const std::vector<std::string>& values) {
    std::string text = "[";
    for (size_t i = 0; i < values.size(); ++i)
      text += (i ? ", " : "") + toml_quote(values[i]);
    raw(key, text + "]");
  }
  std::string text() const { return out_.str(); }

 private:
  std::ostringstream out_;
  bool first_ = true;
};

// require as an inline table: name = "value", or name = true for "present".
std::string render_require(const std::vector<AttributeCondition>& require) {
  std::string text = "{ ";
  for (size_t i = 0; i < require.size(); ++i) {
    text += (i ? ", " : "") + toml_quote(require[i].name) + " = " +
            (require[i].any_value ? std::string("true") : toml_quote(require[i].value));
  }
  return text + " }";
}

void render_policy(TomlWriter& w, const Config& c) {
  const AccessConfig& a = c.access;
  w.section("access");
  w.str("login_url", a.login_url);
  w.str("return_param", a.return_param);
  w.list("api_paths", a.api_paths);
  w.str("signed_in_attribute", a.signed_in_attribute);
  for (const AccessRule& rule : a.rules) {
    w.array_section("access.rules");
    w.list("paths", rule.paths);
    w.list("methods", rule.methods);
    w.raw("require", render_require(rule.require));
  }

  static constexpr const char* kModes[] = {"off", "fetch-metadata", "token"};
  const CsrfConfig& f = c.csrf;
  w.section("csrf");
  w.str("mode", kModes[static_cast<int>(f.mode)]);
  w.boolean("allow_same_site", f.allow_same_site);
  w.list("trusted_origins", f.trusted_origins);
  w.str("missing", f.missing == CsrfMissing::kAllow ? "allow" : "deny");
  w.str("form_field", f.form_field);
  w.size("max_form_bytes", f.max_form_bytes);
  w.list("exempt", f.exempt);
  w.str("secret_file", f.secret_file);
}

void render_server(TomlWriter& w, const Config& c) {
  w.section("server");
  w.list("listen", c.server.listen);
  if (c.server.workers == 0) {
    w.str("workers", "auto");
  } else {
    w.num("workers", c.server.workers);
  }
  w.duration("drain_delay", c.server.drain_delay);
  w.duration("drain_timeout", c.server.drain_timeout);
  w.num("max_connections", c.server.max_connections);
  std::vector<std::string> proxies;
  for (const CidrBlock& block : c.server.trusted_proxies)
    proxies.push_back(block.to_string());
  w.list("trusted_proxies", proxies);
  w.str("redirect_listen", c.server.redirect_listen);
  w.str("canonical_host", c.server.canonical_host);
  w.str("underscore_headers",
        c.server.underscore_headers == UnderscorePolicy::kReject ? "reject" : "drop");
  w.boolean("http2", c.server.http2);
  w.boolean("http2_cleartext", c.server.http2_cleartext);
}

void render_tls(TomlWriter& w, const Config& c) {
  w.section("tls");
  w.str("certificate", c.tls.certificate);
  w.str("private_key", c.tls.private_key);
  w.str("min_version", c.tls.min_version);
  w.str("ciphers", c.tls.ciphers);
  w.str("strict_transport_security", c.tls.strict_transport_security);
  w.duration("handshake_timeout", c.tls.handshake_timeout);
  for (const TlsCertificate& entry : c.tls.certificates) {
    w.array_section("tls.certificates");
    w.list("server_names", entry.server_names);
    w.str("certificate", entry.certificate);
    w.str("private_key", entry.private_key);
  }
}

void render_upstream(TomlWriter& w, const Config& c) {
  const UpstreamConfig& u = c.upstream;
  w.section("upstream");
  w.list("servers", u.servers);
  w.duration("connect_timeout", u.connect_timeout);
  w.duration("response_timeout", u.response_timeout);
  w.duration("idle_timeout", u.idle_timeout);
  w.num("max_idle_connections", u.max_idle_connections);
  w.boolean("websocket", u.websocket);
  w.boolean("splice", u.splice);
  w.str("health_path", u.health_path);
  w.duration("health_interval", u.health_interval);
  w.boolean("tls", u.tls);
  w.str("ca_file", u.ca_file);
  w.str("server_name", u.server_name);
  w.boolean("verify", u.verify);
  w.str("certificate", u.certificate);
  w.str("private_key", u.private_key);
  w.boolean("sign", u.sign);
  w.list("sign_key_file", u.sign_key_file);
}

void render_session(TomlWriter& w, const Config& c) {
  const SessionConfig& s = c.session;
  w.section("session");
  w.str("cookie_name", s.cookie_name);
  w.str("cookie_path", s.cookie_path);
  w.str("cookie_domain", s.cookie_domain);
  if (s.cookie_secure == CookieSecure::kAuto) {
    w.str("cookie_secure", "auto");
  } else {
    w.boolean("cookie_secure", s.cookie_secure == CookieSecure::kAlways);
  }
  w.str("cookie_samesite", s.cookie_samesite);
  w.duration("idle_timeout", s.idle_timeout);
  w.duration("absolute_timeout", s.absolute_timeout);
  w.str("header_prefix", s.header_prefix);
  w.list("exclude", s.exclude);
  w.str("logout_path", s.logout_path);
  w.str("logout_redirect", s.logout_redirect);
  w.num("max_attributes", s.max_attributes);
  w.size("max_attribute_bytes", s.max_attribute_bytes);
  w.str("store", s.store == StoreKind::kMemory ? "memory" : "redis");
  w.duration("rotation_grace", s.rotation_grace);
  w.str("on_rotated_replay",
        s.on_rotated_replay == OnRotatedReplay::kIgnore ? "ignore" : "destroy");
  w.str("create", s.create == SessionCreate::kAlways ? "always" : "on_return");
  w.str("secret_file", s.secret_file);
  w.str("user_attribute", s.user_attribute);
  w.num("max_per_user", s.max_per_user);
  w.str("on_limit", s.on_limit == UserLimitPolicy::kEvictOldest ? "evict_oldest" : "reject");
  w.list("passive_paths", s.passive_paths);
  w.str("status_path", s.status_path);
}

void render_memory_store(TomlWriter& w, const Config& c) {
  w.section("store.memory");
  w.num("max_sessions", c.memory_store.max_sessions);
  w.str("snapshot_path", c.memory_store.snapshot_path);
  w.duration("snapshot_interval", c.memory_store.snapshot_interval);
}

void render_redis_store(TomlWriter& w, const Config& c) {
  const RedisStoreConfig& r = c.redis_store;
  w.section("store.redis");
  w.str("address", r.address);
  w.str("password_file", r.password_file);
  w.num("database", r.database);
  w.str("key_prefix", r.key_prefix);
  w.duration("timeout", r.timeout);
  w.duration("local_cache", r.local_cache);
  w.str("on_unavailable",
        r.on_unavailable == OnUnavailable::kFailClosed ? "fail_closed" : "fail_open");
  w.list("sentinels", r.sentinels);
  w.str("master_name", r.master_name);
  w.num("max_pending_destroys", r.max_pending_destroys);
}

void render_health(TomlWriter& w, const Config& c) {
  w.section("health");
  w.str("path", c.health.path);
  w.str("ready_path", c.health.ready_path);
}

void render_admin(TomlWriter& w, const Config& c) {
  w.section("admin");
  w.str("listen", c.admin.listen);
  w.str("token_file", c.admin.token_file);
}

void render_limits(TomlWriter& w, const Config& c) {
  w.section("limits");
  w.size("max_header_bytes", c.limits.max_header_bytes);
  w.num("max_headers", c.limits.max_headers);
  w.size("max_body_bytes", c.limits.max_body_bytes);
  w.duration("header_timeout", c.limits.header_timeout);
  w.duration("client_idle_timeout", c.limits.client_idle_timeout);
}

void render_http2(TomlWriter& w, const Config& c) {
  const Http2Config& h2 = c.http2;
  w.section("http2");
  w.num("max_concurrent_streams", h2.max_concurrent_streams);
  w.size("max_header_list_bytes", h2.max_header_list_bytes);
  w.size("stream_window_bytes", h2.stream_window_bytes);
  w.size("connection_window_bytes", h2.connection_window_bytes);
  w.size("response_buffer_bytes", h2.response_buffer_bytes);
  w.duration("flood_window", h2.flood_window);
  w.num("max_resets", h2.max_resets);
  w.num("max_control_frames", h2.max_control_frames);
  w.num("max_empty_frames", h2.max_empty_frames);
  w.num("max_continuations", h2.max_continuations);
}

void render_log(TomlWriter& w, const Config& c) {
  static constexpr const char* kLevels[] = {"debug", "info", "warn", "error"};
  w.section("log");
  w.str("level", kLevels[static_cast<int>(c.log.level)]);
  w.str("access", c.log.access);
  w.str("audit", c.log.audit);
  w.str("format", c.log.format == AccessLogFormat::kJson ? "json" : "combined");
}

}  // namespace

std::string render_effective_config(const Config& c) {
  TomlWriter w;
  render_server(w, c);
  render_tls(w, c);
  render_upstream(w, c);
  render_session(w, c);
  render_memory_store(w, c);
  render_redis_store(w, c);
  render_health(w, c);
  render_admin(w, c);
  render_limits(w, c);
  render_http2(w, c);
  render_log(w, c);
  render_policy(w, c);
  return w.text();
}

}  // namespace sg
