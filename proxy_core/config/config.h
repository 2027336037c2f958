// The gateway's configuration: every section and key of gateway.toml, typed, with defaults.
//
// A Config is immutable once loaded; workers hold it through a shared_ptr<const Config> so that a
// reload swaps the pointer for new connections while in-flight requests finish on the old one.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "proxy_core/http/underscore_policy.h"
#include "proxy_core/net/cidr.h"

namespace sg {

using Millis = std::chrono::milliseconds;

enum class CookieSecure { kAuto, kAlways, kNever };
enum class StoreKind { kMemory, kRedis };
enum class OnUnavailable { kFailClosed, kFailOpen };
enum class OnRotatedReplay { kIgnore, kDestroy };
// session.on_limit: what joining a user at session.max_per_user does.
enum class UserLimitPolicy { kEvictOldest, kReject };
enum class SessionCreate { kAlways, kOnReturn };
enum class AccessLogFormat { kJson, kCombined };
enum class LogLevel { kDebug, kInfo, kWarn, kError };
enum class CsrfMode { kOff, kFetchMetadata, kToken };
enum class CsrfMissing { kAllow, kDeny };

struct ServerConfig {
  std::vector<std::string> listen = {"127.0.0.1:8080"};  // "host:port", "[v6]:port"
  unsigned workers = 0;                                  // 0 = "auto" (one per core)
  Millis drain_delay{0};  // after SIGTERM: accept and serve with /readyz 503, then drain
  Millis drain_timeout{30000};
  uint32_t max_connections = 10000;  // whole process; each worker gets its share
  std::vector<CidrBlock> trusted_proxies;
  std::string redirect_listen;  // empty = off
  std::string canonical_host;   // uri-host[:port] the HTTPS redirect uses; empty = the request's
  UnderscorePolicy underscore_headers = UnderscorePolicy::kReject;
  bool http2 = true;             // TLS listeners offer ALPN "h2" (then "http/1.1")
  bool http2_cleartext = false;  // plain listeners take HTTP/2 with prior knowledge (h2c)
};

struct TlsCertificate {
  std::vector<std::string> server_names;
  std::string certificate;
  std::string private_key;
};

struct TlsConfig {
  std::string certificate;
  std::string private_key;
  std::string min_version = "1.2";  // "1.2" | "1.3"
  std::string ciphers;              // empty = the built-in modern list
  std::vector<TlsCertificate> certificates;
  std::string strict_transport_security;  // header value; empty = no HSTS header
  Millis handshake_timeout{10000};
  bool enabled() const { return !certificate.empty() && !private_key.empty(); }
};

struct UpstreamConfig {
  std::vector<std::string> servers = {"127.0.0.1:9000"};
  Millis connect_timeout{5000};
  Millis response_timeout{60000};      // from request sent to response head, and between body reads
  Millis idle_timeout{60000};          // pooled idle connections are closed after this
  uint32_t max_idle_connections = 64;  // per worker
  bool websocket = true;
  // Content-Length response bodies from a plain upstream to a plain HTTP/1.1 client move with
  // splice(2) through a pipe, not through user space (upstream_splice.cc).
  bool splice = true;
  std::string health_path;  // empty = no active probe
  Millis health_interval{5000};
  bool tls = false;
  std::string ca_file;
  std::string server_name;
  bool verify = true;
  std::string certificate;
  std::string private_key;
  // Signed identity header (proxy_core/policy/identity_signature.h): <prefix>Signature over the
  // method, target and every injected header, with the first key; the others are listed so that
  // a rotation can announce them before use.
  bool sign = false;
  std::vector<std::string> sign_key_file;  // files of 32+ random bytes; the first signs
};

// One [[access.rules]] entry (proxy_core/policy/access_policy.h).
struct AttributeCondition {
  std::string name;   // folded (lowercase, '_' as '-'), as the session stores it
  std::string value;  // the value it must equal; empty with any_value
  bool any_value = false;
};
struct AccessRule {
  std::vector<std::string> paths;    // path_match.h patterns
  std::vector<std::string> methods;  // upper case; empty = every method
  std::vector<AttributeCondition> require;
};

struct AccessConfig {
  std::string login_url;  // a path or an http(s) URL; where a browser is sent to sign in
  std::string return_param = "next";
  std::vector<std::string> api_paths;  // requests here get 401 JSON, never a redirect
  // The attribute that says "signed in": a session with it that fails a rule gets 403, one
  // without it is sent to sign in.
  std::string signed_in_attribute = "user";
  std::vector<AccessRule> rules;  // first match wins; none = the feature is off
};

struct CsrfConfig {
  CsrfMode mode = CsrfMode::kOff;
  bool allow_same_site = false;               // fetch-metadata: accept Sec-Fetch-Site: same-site
  std::vector<std::string> trusted_origins;   // "https://host[:port]" also accepted
  CsrfMissing missing = CsrfMissing::kAllow;  // neither Sec-Fetch-Site, Origin nor Referer
  std::string form_field = "csrf_token";      // token: the urlencoded body field
  uint64_t max_form_bytes = 64 * 1024;        // token: body bytes held while looking for it
  std::vector<std::string> exempt;            // path patterns never checked (webhooks)
  std::string secret_file;                    // token key; empty = random per process
};

struct SessionConfig {
  std::string cookie_name = "session_id";
  std::string cookie_path = "/";
  std::string cookie_domain;  // empty = host-only cookie
  CookieSecure cookie_secure = CookieSecure::kAuto;
  std::string cookie_samesite = "Lax";  // "Strict" | "Lax" | "None"
  Millis idle_timeout{3600 * 1000};
  Millis absolute_timeout{12 * 3600 * 1000};
  std::string header_prefix = "X-Session-";
  std::vector<std::string> exclude = {"/static/*"};
  std::string logout_path;  // empty = off
  std::string logout_redirect = "/";
  uint32_t max_attributes = 32;
  uint32_t max_attribute_bytes = 4096;  // names + values of one session
  StoreKind store = StoreKind::kMemory;
  // After a rotation the old token still resolves to the session this long (a page's parallel
  // requests that left with it); 0 = off.
  Millis rotation_grace{10000};
  OnRotatedReplay on_rotated_replay = OnRotatedReplay::kIgnore;
  // kOnReturn: a first visit gets a self-certifying token and is stored only when it comes back.
  SessionCreate create = SessionCreate::kAlways;
  std::string secret_file;  // key of the self-certifying tokens; empty = random per process
  // The attribute whose value names the session's user (the per-user index, issue 14).
  std::string user_attribute = "User";
  uint32_t max_per_user = 0;  // sessions per user; 0 = no cap
  UserLimitPolicy on_limit = UserLimitPolicy::kEvictOldest;
  // Requests that do not extend the idle timeout (polling, heartbeats); path_match.h patterns.
  std::vector<std::string> passive_paths;
  // GET here answers the session's remaining idle and absolute time as JSON without extending
  // it (session_status.h); never forwarded. Empty = off.
  std::string status_path;
};

struct MemoryStoreConfig {
  uint64_t max_sessions = 1000000;
  std::string snapshot_path;  // empty = no snapshot
  Millis snapshot_interval{300000};
};

struct RedisStoreConfig {
  std::string address = "127.0.0.1:6379";  // host:port or a unix socket path
  std::string password_file;
  uint32_t database = 0;
  std::string key_prefix = "sessiongate:";
  Millis timeout{500};  // rides out a fork for BGSAVE (measured 57-172 ms at 1M sessions)
  // How long a worker may answer a returning visit from its own copy of the record, which Redis
  // invalidates the moment it changes (CLIENT TRACKING; redis_store.h). 0 = ask Redis every time.
  Millis local_cache{1000};
  OnUnavailable on_unavailable = OnUnavailable::kFailClosed;
  std::vector<std::string> sentinels;
  std::string master_name;
  // Destroys the store did not confirm, refused on this instance while they are retried (whole
  // process); at the bound a logout the store does not confirm answers 503. 0 = no queue.
  uint32_t max_pending_destroys = 10000;
};

struct HealthConfig {
  std::string path = "/healthz";
  std::string ready_path = "/readyz";
};

struct AdminConfig {
  std::string listen;      // empty = off
  std::string token_file;  // bearer token of the /sessions API; empty = no /sessions API
};

struct LimitsConfig {
  uint64_t max_header_bytes = 32 * 1024;
  uint32_t max_headers = 100;
  uint64_t max_body_bytes = 100ull * 1024 * 1024;  // 0 = unlimited
  Millis header_timeout{10000};
  Millis client_idle_timeout{60000};
};

// HTTP/2 sessions (proxy_core/http2/h2_settings.h says what each limit does).
struct Http2Config {
  uint32_t max_concurrent_streams = 128;
  uint64_t max_header_list_bytes = 0;  // 0 = limits.max_header_bytes
  uint64_t stream_window_bytes = 64 * 1024;
  uint64_t connection_window_bytes = 1024 * 1024;
  uint64_t response_buffer_bytes = 64 * 1024;
  Millis flood_window{10000};
  uint32_t max_resets = 500;
  uint32_t max_control_frames = 1000;
  uint32_t max_empty_frames = 100;
  uint32_t max_continuations = 8;
};

struct LogConfig {
  LogLevel level = LogLevel::kInfo;
  std::string access = "stdout";  // "stdout" | "off" | a file path
  std::string audit = "off";      // session events (ops/audit_log.h): "stderr" | "off" | a path
  AccessLogFormat format = AccessLogFormat::kJson;
};

struct Config {
  ServerConfig server;
  TlsConfig tls;
  UpstreamConfig upstream;
  SessionConfig session;
  MemoryStoreConfig memory_store;
  RedisStoreConfig redis_store;
  HealthConfig health;
  AdminConfig admin;
  LimitsConfig limits;
  Http2Config http2;
  LogConfig log;
  AccessConfig access;
  CsrfConfig csrf;
  std::string source_path;  // the file it came from, for messages
};

}  // namespace sg
