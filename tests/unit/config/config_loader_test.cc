#include "proxy_core/config/config_loader.h"

#include <doctest/doctest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <toml++/toml.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

using sg::ConfigLoadResult;
using namespace std::chrono_literals;

namespace {

ConfigLoadResult load(std::string_view text) {
  return sg::load_config_string(text, "test.toml");
}

// The formatted errors of `text`, in order.
std::vector<std::string> errors_of(std::string_view text) {
  std::vector<std::string> out;
  for (const auto& e : load(text).errors)
    out.push_back(e.format());
  return out;
}

// The one formatted error of `text`; fails the test unless there is exactly one.
std::string error_of(std::string_view text) {
  const auto errors = errors_of(text);
  CAPTURE(text);
  REQUIRE(errors.size() == 1);
  return errors[0];
}

sg::Config loaded(std::string_view text) {
  const ConfigLoadResult result = load(text);
  std::string all;
  for (const auto& e : result.errors)
    all += e.format() + "\n";
  CAPTURE(all);
  REQUIRE(result.errors.empty());
  REQUIRE(result.config.has_value());
  return *result.config;
}

// A fresh directory under the system temp directory, removed with the object.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "sgcfgXXXXXX").string();
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string write(const std::string& name, const std::string& text, mode_t mode = 0600) {
    const std::filesystem::path file = path / name;
    std::ofstream(file) << text;
    chmod(file.c_str(), mode);
    return file.string();
  }
};

const std::string kShipped = SG_SOURCE_DIR "/gateway.toml";

}  // namespace

// ---- The shipped gateway.toml ----

TEST_CASE("the shipped gateway.toml loads with no errors and no warnings") {
  const ConfigLoadResult result = sg::load_config_file(kShipped);
  for (const auto& e : result.errors)
    FAIL_CHECK(e.format());
  for (const auto& w : result.warnings)
    FAIL_CHECK(w.format());
  CHECK(result.config.has_value());
}

TEST_CASE("the shipped gateway.toml holds exactly the compiled-in defaults") {
  const ConfigLoadResult result = sg::load_config_file(kShipped);
  REQUIRE(result.config.has_value());
  CHECK(sg::render_effective_config(*result.config) == sg::render_effective_config(sg::Config{}));
  CHECK(result.config->server.listen == std::vector<std::string>{"127.0.0.1:8080"});
  CHECK(result.config->upstream.servers == std::vector<std::string>{"127.0.0.1:9000"});
  CHECK(result.config->session.store == sg::StoreKind::kMemory);
}

TEST_CASE("every known key appears in the shipped gateway.toml under a comment") {
  // Rule of the file: every key is set to its default, uncommented, under a comment saying what it
  // does. The exceptions are [[tls.certificates]], whose example block is commented out because
  // an entry cannot exist without real certificate files, and [[access.rules]], because one rule
  // turns the feature on (every feature is off by default).
  std::ifstream in(kShipped);
  REQUIRE(in.good());
  const std::regex header(R"(^(#\s*)?\[\[?([a-z0-9_.]+)\]\]?\s*$)");
  const std::regex assignment(R"(^(#\s*)?([a-z0-9_]+)\s*=)");
  std::string section, line, previous;
  bool section_commented = false;
  std::set<std::string> active, commented;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_match(line, m, header)) {
      section = m[2];
      section_commented = m[1].matched;
    } else if (std::regex_search(line, m, assignment) && (!m[1].matched || section_commented)) {
      const std::string key = section + "." + m[2].str();
      CAPTURE(key);
      CHECK(previous.rfind("#", 0) == 0);  // the comment above says what it does
      (m[1].matched ? commented : active).insert(key);
    }
    previous = line;
  }
  const toml::table document = toml::parse_file(kShipped);
  for (const std::string& key : sg::known_config_keys()) {
    CAPTURE(key);
    if (key.rfind("tls.certificates.", 0) == 0 || key.rfind("access.rules.", 0) == 0) {
      CHECK(commented.count(key) == 1);
    } else {
      CHECK(active.count(key) == 1);
      CHECK(document.at_path(key).node() != nullptr);
    }
  }
}

TEST_CASE("every comment of gateway.toml names the key's default") {
  std::ifstream in(kShipped);
  std::string line, comment;
  const std::regex assignment(R"(^([a-z0-9_]+)\s*=)");
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_search(line, m, assignment)) {
      CAPTURE(line);
      CHECK(comment.find("Default: ") != std::string::npos);
      comment.clear();
    } else if (line.rfind("#", 0) == 0) {
      comment += line;
    } else {
      comment.clear();
    }
  }
}

// ---- known keys and rendering ----

TEST_CASE("known config keys are dotted and unique") {
  const auto keys = sg::known_config_keys();
  CHECK(std::set<std::string>(keys.begin(), keys.end()).size() == keys.size());
  CHECK(std::count(keys.begin(), keys.end(), "server.listen") == 1);
  CHECK(std::count(keys.begin(), keys.end(), "tls.certificates.server_names") == 1);
  CHECK(std::count(keys.begin(), keys.end(), "store.redis.password_file") == 1);
  for (const auto& key : keys)
    CHECK(key.find('.') != std::string::npos);
}

TEST_CASE("the rendered configuration has every known key and loads back unchanged") {
  TempDir dir;
  const std::string cert = dir.write("c.pem", "cert");
  const std::string key = dir.write("c.key", "key");
  sg::Config c;
  c.server.workers = 4;
  c.server.listen = {"0.0.0.0:443", "[::1]:8443"};
  c.server.trusted_proxies = {*sg::CidrBlock::parse("10.0.0.0/8")};
  c.server.redirect_listen = "0.0.0.0:80";
  c.tls.certificate = cert;
  c.tls.private_key = key;
  c.tls.certificates.push_back({{"a.example", "*.b.example"}, cert, key});
  c.tls.strict_transport_security = "max-age=60";
  c.session.cookie_name = "__Host-sid";
  c.session.cookie_secure = sg::CookieSecure::kAlways;
  c.session.cookie_samesite = "Strict";
  c.session.idle_timeout = 90min;
  c.session.logout_path = "/logout";
  c.session.status_path = "/session/status";
  c.session.exclude = {};
  c.limits.max_body_bytes = 0;
  c.log.level = sg::LogLevel::kWarn;
  c.log.format = sg::AccessLogFormat::kCombined;
  c.redis_store.on_unavailable = sg::OnUnavailable::kFailOpen;
  c.access.login_url = "/login?from=gate";
  c.access.api_paths = {"/api/*"};
  c.access.rules.push_back(
      {{"/admin/*"}, {"POST"}, {{"role", "admin", false}, {"user", "", true}}});
  c.csrf.mode = sg::CsrfMode::kFetchMetadata;
  c.csrf.trusted_origins = {"https://idp.example"};
  c.csrf.exempt = {"/hooks/*"};
  c.upstream.sign = true;
  c.upstream.sign_key_file = {dir.write("sign.key", std::string(32, 'k'))};
  const std::string text = sg::render_effective_config(c);
  CAPTURE(text);

  const toml::table document = toml::parse(text);
  for (std::string k : sg::known_config_keys()) {
    if (k.rfind("tls.certificates.", 0) == 0) k.insert(16, "[0]");
    if (k.rfind("access.rules.", 0) == 0) k.insert(12, "[0]");
    CAPTURE(k);
    CHECK(document.at_path(k).node() != nullptr);
  }
  const sg::Config back = loaded(text);
  CHECK(sg::render_effective_config(back) == text);
  CHECK(back.server.workers == 4);
  CHECK(back.session.idle_timeout == 90min);
  CHECK(back.tls.certificates.size() == 1);
  REQUIRE(back.access.rules.size() == 1);
  CHECK(back.access.rules[0].require.size() == 2);
}

// ---- syntax, unknown keys, types ----

TEST_CASE("a TOML syntax error is reported at the parser's line and column") {
  CHECK(error_of("[server]\nlisten = [\"127.0.0.1:8080\"\nworkers = 2\n") ==
        "test.toml:3:1: invalid TOML: error while parsing array: expected comma or closing ']', "
        "saw 'w'");
  const std::string duplicate = error_of("[server]\nworkers = 2\nworkers = 3\n");
  CHECK(duplicate.rfind("test.toml:3:", 0) == 0);
  CHECK(duplicate.find("invalid TOML: ") != std::string::npos);
  CHECK(duplicate.find("'workers'") != std::string::npos);
}

TEST_CASE("an unknown key is an error that suggests the nearest known key") {
  CHECK(
      error_of("[session]\ncookie_nmae = \"sid\"\n") ==
      "test.toml:2:1: unknown key \"session.cookie_nmae\"; did you mean \"session.cookie_name\"?");
  CHECK(error_of("[server]\nlisen = []\n") ==
        "test.toml:2:1: unknown key \"server.lisen\"; did you mean \"server.listen\"?");
  CHECK(error_of("[server]\ncolour = \"blue\"\n") ==
        "test.toml:2:1: unknown key \"server.colour\"");
}

TEST_CASE("a known key in the wrong section names the section it belongs to") {
  CHECK(error_of("[server]\ncookie_name = \"sid\"\n") ==
        "test.toml:2:1: unknown key \"server.cookie_name\"; did you mean \"session.cookie_name\"?");
  CHECK(error_of("workers = 4\n") ==
        "test.toml:1:1: unknown key \"workers\"; did you mean \"server.workers\"?");
}

TEST_CASE("an unknown section is an error that suggests the nearest known section") {
  CHECK(error_of("[sesion]\ncookie_name = \"sid\"\n") ==
        "test.toml:1:2: unknown section \"sesion\"; did you mean \"session\"?");
  CHECK(error_of("[store.memroy]\nmax_sessions = 5\n") ==
        "test.toml:1:8: unknown section \"store.memroy\"; did you mean \"store.memory\"?");
  CHECK(error_of("[metrics]\n") == "test.toml:1:2: unknown section \"metrics\"");
}

TEST_CASE("unknown keys inside a tls.certificates entry name the entry") {
  TempDir dir;
  const std::string text =
      "[tls]\ncertificate = \"" + dir.write("a", "") + "\"\nprivate_key = \"" + dir.write("b", "") +
      "\"\n[[tls.certificates]]\nserver_names = [\"a.example\"]\n"
      "certificate = \"" +
      dir.write("c", "") + "\"\nprivate_key = \"" + dir.write("d", "") + "\"\nsever_name = 1\n";
  CHECK(error_of(text) ==
        "test.toml:8:1: unknown key \"tls.certificates[0].sever_name\"; did "
        "you mean \"tls.certificates[0].server_names\"?");
}

TEST_CASE("a value of the wrong type is an error at the value") {
  CHECK(error_of("[server]\nmax_connections = \"many\"\n") ==
        "test.toml:2:19: server.max_connections: expected an integer from 1 to 4294967295, got "
        "\"many\"");
  CHECK(error_of("[upstream]\nwebsocket = \"yes\"\n") ==
        "test.toml:2:13: upstream.websocket: expected true or false, got \"yes\"");
  CHECK(error_of("[upstream]\nservers = 9000\n") ==
        "test.toml:2:11: upstream.servers: expected an array of strings, got the number 9000");
  CHECK(error_of("[upstream]\nservers = [\"127.0.0.1:9000\", 9001]\n") ==
        "test.toml:2:30: upstream.servers: expected a string, got the number 9001");
  CHECK(error_of("server = 1\n") ==
        "test.toml:1:10: server: expected a table ([server]), got the number 1");
  CHECK(error_of("[tls.certificates]\nserver_names = []\n") ==
        "test.toml:1:1: tls.certificates: expected an array of tables ([[tls.certificates]]), "
        "got a table");
}

TEST_CASE("a malformed duration is reported with the key, the expectation and the value") {
  CHECK(error_of("[session]\nidle_timeout = \"30 minutes\"\n") ==
        "test.toml:2:16: session.idle_timeout: expected a duration such as \"30m\", got "
        "\"30 minutes\"");
  CHECK(error_of("[session]\nidle_timeout = 30\n") ==
        "test.toml:2:16: session.idle_timeout: expected a duration such as \"30m\", got the "
        "number 30");
  CHECK(error_of("[session]\nidle_timeout = \"500ms\"\n") ==
        "test.toml:2:16: session.idle_timeout: must be at least 1s, got \"500ms\"");
}

TEST_CASE("malformed sizes are refused and decimal units get the IEC spelling as a hint") {
  CHECK(error_of("[limits]\nmax_header_bytes = \"16KB\"\n") ==
        "test.toml:2:20: limits.max_header_bytes: expected a size such as \"16KiB\" or \"10MiB\" "
        "(units B, KiB, MiB, GiB, TiB), got \"16KB\"; did you mean \"16KiB\"?");
  CHECK(error_of("[limits]\nmax_header_bytes = \"2MiB\"\n") ==
        "test.toml:2:20: limits.max_header_bytes: must be from 256B to 1MiB, got \"2MiB\"");
  CHECK(error_of("[limits]\nmax_body_bytes = -1\n").find("got the number -1") != std::string::npos);
  CHECK(loaded("[limits]\nmax_header_bytes = 4096\nmax_body_bytes = \"1GiB\"\n")
            .limits.max_body_bytes == (1ull << 30));
}

TEST_CASE("server.drain_delay is a duration from 0s, off by default") {
  CHECK(loaded("").server.drain_delay == sg::Millis{0});
  CHECK(loaded("[server]\ndrain_delay = \"15s\"\n").server.drain_delay == sg::Millis{15000});
  CHECK(error_of("[server]\ndrain_delay = 15\n") ==
        "test.toml:2:15: server.drain_delay: expected a duration such as \"30m\", got the "
        "number 15");
}

// ---- ranges and choices ----

TEST_CASE("workers accepts auto or a count from 1 to 1024") {
  CHECK(loaded("[server]\nworkers = \"auto\"\n").server.workers == 0);
  CHECK(loaded("[server]\nworkers = \"AUTO\"\n").server.workers == 0);
  CHECK(loaded("[server]\nworkers = 8\n").server.workers == 8);
  CHECK(loaded("[server]\nworkers = \"16\"\n").server.workers == 16);
  CHECK(loaded("[server]\nworkers = 1024\n").server.workers == 1024);
  for (const char* bad : {"0", "1025", "-1", "\"many\"", "2.5", "\"\"", "\"8 \""}) {
    const std::string error = error_of(std::string("[server]\nworkers = ") + bad + "\n");
    CAPTURE(error);
    CHECK(error.rfind("test.toml:2:11: server.workers: expected \"auto\" or an integer from 1 to "
                      "1024, got ",
                      0) == 0);
  }
}

TEST_CASE("listen addresses and ports out of range are errors at the element") {
  CHECK(error_of("[server]\nlisten = [\"127.0.0.1:8080\", \"127.0.0.1:70000\"]\n") ==
        "test.toml:2:29: server.listen: expected \"IP:PORT\" such as \"127.0.0.1:8080\", "
        "\"[::1]:8080\" or \"*:8080\" (a numeric address), got \"127.0.0.1:70000\"");
  CHECK(error_of("[server]\nlisten = []\n") ==
        "test.toml:2:10: server.listen: must list at least one value");
  CHECK(error_of("[upstream]\nservers = [\"app:0\"]\n").find("(port 1-65535), got \"app:0\"") !=
        std::string::npos);
  CHECK(loaded("[upstream]\nservers = [\"app.internal:9000\", \"[::1]:9001\"]\n")
            .upstream.servers.size() == 2);
  CHECK(loaded("[server]\nlisten = \"*:8080\"\n").server.listen ==
        std::vector<std::string>{"*:8080"});
}

TEST_CASE("max_connections must be positive") {
  CHECK(error_of("[server]\nmax_connections = 0\n") ==
        "test.toml:2:19: server.max_connections: must be from 1 to 4294967295, got the number 0");
  CHECK(error_of("[server]\nmax_connections = 4294967296\n").rfind("test.toml:2:19: ", 0) == 0);
}

TEST_CASE("choices are matched case-insensitively and stored in canonical case") {
  CHECK(loaded("[session]\ncookie_samesite = \"strict\"\n").session.cookie_samesite == "Strict");
  CHECK(loaded("[session]\ncookie_samesite = \"LAX\"\n").session.cookie_samesite == "Lax");
  CHECK(loaded("[log]\nlevel = \"DEBUG\"\n").log.level == sg::LogLevel::kDebug);
  CHECK(loaded("[log]\nlevel = \"warn\"\n").log.level == sg::LogLevel::kWarn);
  CHECK(loaded("[log]\nlevel = \"error\"\n").log.level == sg::LogLevel::kError);
  CHECK(loaded("[server]\nunderscore_headers = \"drop\"\n").server.underscore_headers ==
        sg::UnderscorePolicy::kDrop);
  CHECK(error_of("[session]\ncookie_samesite = \"Laxx\"\n") ==
        "test.toml:2:19: session.cookie_samesite: expected one of \"Strict\", \"Lax\", \"None\", "
        "got \"Laxx\"; did you mean \"Lax\"?");
  CHECK(error_of("[log]\nlevel = \"verbose\"\n") ==
        "test.toml:2:9: log.level: expected one of \"debug\", \"info\", \"warn\", \"error\", got "
        "\"verbose\"");
}

// ---- combinations ----

TEST_CASE("SameSite=None requires a Secure cookie") {
  CHECK(error_of("[session]\ncookie_samesite = \"None\"\n") ==
        "test.toml:2:19: session.cookie_samesite: SameSite=None requires a Secure cookie (set "
        "session.cookie_secure = true, or turn TLS on with cookie_secure = \"auto\")");
  CHECK(loaded("[session]\ncookie_samesite = \"none\"\ncookie_secure = true\n")
            .session.cookie_secure == sg::CookieSecure::kAlways);
}

TEST_CASE("a __Host- cookie must be Secure, on Path=/ and without a Domain") {
  const auto errors = errors_of(
      "[session]\ncookie_name = \"__Host-sid\"\ncookie_path = \"/app\"\n"
      "cookie_domain = \"example.com\"\n");
  REQUIRE(errors.size() == 3);
  CHECK(errors[0].rfind("test.toml:2:15: session.cookie_name: a \"__Host-\" cookie must be Secure",
                        0) == 0);
  CHECK(errors[1] ==
        "test.toml:2:15: session.cookie_name: a \"__Host-\" cookie must have "
        "session.cookie_path = \"/\", got \"/app\"");
  CHECK(errors[2] ==
        "test.toml:2:15: session.cookie_name: a \"__Host-\" cookie must not have a "
        "session.cookie_domain, got \"example.com\"");
  CHECK(loaded("[session]\ncookie_name = \"__Host-sid\"\ncookie_secure = true\n")
            .session.cookie_name == "__Host-sid");
}

TEST_CASE("a __Host- cookie is Secure with cookie_secure auto when TLS is on") {
  TempDir dir;
  const std::string text = "[tls]\ncertificate = \"" + dir.write("c.pem", "") +
                           "\"\nprivate_key = \"" + dir.write("c.key", "") +
                           "\"\n[session]\ncookie_name = \"__Host-sid\"\n";
  CHECK(loaded(text).session.cookie_name == "__Host-sid");
}

TEST_CASE("a __Secure- cookie must be Secure") {
  CHECK(error_of("[session]\ncookie_name = \"__Secure-sid\"\ncookie_secure = false\n")
            .rfind("test.toml:2:15: session.cookie_name: a \"__Secure-\" cookie must be Secure",
                   0) == 0);
}

TEST_CASE("absolute_timeout may not be shorter than idle_timeout") {
  CHECK(error_of("[session]\nidle_timeout = \"2h\"\nabsolute_timeout = \"1h\"\n") ==
        "test.toml:3:20: session.absolute_timeout: \"1h\" is shorter than session.idle_timeout "
        "\"2h\"");
  // With absolute_timeout left at its default, the error points at the key that was written.
  CHECK(error_of("[session]\nidle_timeout = \"1d\"\n").rfind("test.toml:2:16: ", 0) == 0);
}

TEST_CASE("admin.listen may not overlap a server.listen address") {
  CHECK(
      error_of("[server]\nlisten = [\"127.0.0.1:8080\"]\n[admin]\nlisten = \"127.0.0.1:8080\"\n") ==
      "test.toml:4:10: admin.listen: \"127.0.0.1:8080\" overlaps server.listen "
      "\"127.0.0.1:8080\"; the admin listener needs its own address or port");
  CHECK(error_of("[server]\nlisten = [\"*:8080\"]\n[admin]\nlisten = \"127.0.0.1:8080\"\n")
            .find("overlaps server.listen \"*:8080\"") != std::string::npos);
  CHECK(loaded("[admin]\nlisten = \"127.0.0.1:9901\"\n").admin.listen == "127.0.0.1:9901");
  CHECK(loaded("[server]\nlisten = [\"127.0.0.1:0\"]\n[admin]\nlisten = \"127.0.0.1:0\"\n")
            .admin.listen == "127.0.0.1:0");
}

TEST_CASE("a TLS certificate without its private key, or the reverse, is an error") {
  TempDir dir;
  const std::string cert = dir.write("c.pem", "");
  CHECK(error_of("[tls]\ncertificate = \"" + cert + "\"\n") ==
        "test.toml:2:15: tls.certificate: is set but tls.private_key is not; both are needed");
  CHECK(error_of("[tls]\nprivate_key = \"" + cert + "\"\n") ==
        "test.toml:2:15: tls.private_key: is set but tls.certificate is not; both are needed");
  CHECK(error_of("[upstream]\ntls = true\ncertificate = \"" + cert + "\"\n") ==
        "test.toml:3:15: upstream.certificate: is set but upstream.private_key is not; both are "
        "needed");
}

TEST_CASE("SNI certificates need a default certificate and complete entries") {
  TempDir dir;
  const std::string cert = dir.write("c.pem", "");
  const auto errors = errors_of(
      "[[tls.certificates]]\nserver_names = [\"a.example\"]\n"
      "certificate = \"" +
      cert + "\"\n");
  REQUIRE(errors.size() == 2);
  CHECK(errors[0].rfind("test.toml:1:1: tls.certificates[0]: needs a default tls.certificate", 0) ==
        0);
  CHECK(errors[1] ==
        "test.toml:3:15: tls.certificates[0].certificate: is set but "
        "tls.certificates[0].private_key is not; both are needed");
  CHECK(error_of("[tls]\ncertificate = \"" + cert + "\"\nprivate_key = \"" + cert +
                 "\"\n[[tls.certificates]]\nserver_names = [\"a.example\"]\n") ==
        "test.toml:4:1: tls.certificates[0]: certificate and private_key are required");
}

TEST_CASE("redis sentinels without a master name are an error when the store is redis") {
  const std::string text =
      "[session]\nstore = \"redis\"\n[store.redis]\n"
      "sentinels = [\"10.0.0.1:26379\"]\n";
  CHECK(error_of(text) ==
        "test.toml:4:13: store.redis.sentinels: needs store.redis.master_name, "
        "the name of the master the sentinels watch");
  CHECK(loaded(text + "master_name = \"mymaster\"\n").redis_store.master_name == "mymaster");
}

TEST_CASE("the per-user cap and the sessions API load with the redis store, without a warning") {
  CHECK(loaded("[session]\nstore = \"redis\"\nmax_per_user = 3\non_limit = \"reject\"\n")
            .session.max_per_user == 3);
  ConfigLoadResult api = load("[session]\nstore = \"redis\"\n[admin]\ntoken_file = \"/t\"\n");
  REQUIRE(api.config.has_value());
  CHECK(api.warnings.empty());
}

TEST_CASE("redis.address refuses credentials so that Config holds no secret") {
  CHECK(error_of("[store.redis]\naddress = \"redis://:pw@host:6379\"\n")
            .find("put the password in store.redis.password_file") != std::string::npos);
  CHECK(loaded("[store.redis]\naddress = \"/run/redis.sock\"\n").redis_store.address ==
        "/run/redis.sock");
}

TEST_CASE("string formats: header prefix, cookie name, logout path and exclude patterns") {
  CHECK(error_of("[session]\nheader_prefix = \"X-Session\"\n") ==
        "test.toml:2:17: session.header_prefix: expected a header name prefix ending in \"-\", "
        "such as \"X-Session-\", got \"X-Session\"");
  CHECK(error_of("[session]\nheader_prefix = \"X Session-\"\n").find("got \"X Session-\"") !=
        std::string::npos);
  CHECK(error_of("[session]\ncookie_name = \"sid;x\"\n") ==
        "test.toml:2:15: session.cookie_name: expected a cookie name (an RFC 6265 token), got "
        "\"sid;x\"");
  CHECK(error_of("[session]\ncookie_name = \"\"\n").rfind("test.toml:2:15: ", 0) == 0);
  CHECK(error_of("[session]\nlogout_path = \"logout\"\n") ==
        "test.toml:2:15: session.logout_path: expected a path starting with \"/\", got \"logout\"");
  CHECK(error_of("[session]\nexclude = [\"/static/*\", \"*.css\"]\n") ==
        "test.toml:2:25: session.exclude: expected a path starting with \"/\", got \"*.css\"");
  CHECK(loaded("[session]\nexclude = []\n").session.exclude.empty());
}

// ---- every error at once ----

TEST_CASE("every error of a file is reported, in file order, not just the first") {
  const auto errors = errors_of(R"([server]
workers = 0
listn = ["127.0.0.1:8080"]
[session]
idle_timeout = "30 minutes"
cookie_samesite = "Sometimes"
header_prefix = "X-Session"
[limits]
max_headers = 0
[logging]
level = "info"
)");
  REQUIRE(errors.size() == 7);
  CHECK(errors[0].rfind("test.toml:2:11: server.workers:", 0) == 0);
  CHECK(errors[1].rfind("test.toml:3:1: unknown key \"server.listn\"", 0) == 0);
  CHECK(errors[2].rfind("test.toml:5:16: session.idle_timeout:", 0) == 0);
  CHECK(errors[3].rfind("test.toml:6:19: session.cookie_samesite:", 0) == 0);
  CHECK(errors[4].rfind("test.toml:7:17: session.header_prefix:", 0) == 0);
  CHECK(errors[5].rfind("test.toml:9:15: limits.max_headers:", 0) == 0);
  CHECK(errors[6].rfind("test.toml:10:2: unknown section \"logging\"", 0) == 0);
  CHECK_FALSE(load("[server]\nworkers = 0\n").config.has_value());
}

// ---- ${ENV} substitution ----

TEST_CASE("${NAME} in a string value is replaced by the environment variable") {
  setenv("SG_TEST_UPSTREAM", "10.1.2.3:9000", 1);
  setenv("SG_TEST_WORKERS", "6", 1);
  setenv("SG_TEST_PREFIX", "app", 1);
  const sg::Config c = loaded(
      "[server]\nworkers = \"${SG_TEST_WORKERS}\"\n[upstream]\nservers = "
      "[\"${SG_TEST_UPSTREAM}\"]\n"
      "[store.redis]\nkey_prefix = \"${SG_TEST_PREFIX}:${SG_TEST_PREFIX}:\"\n");
  CHECK(c.upstream.servers == std::vector<std::string>{"10.1.2.3:9000"});
  CHECK(c.server.workers == 6);
  CHECK(c.redis_store.key_prefix == "app:app:");
}

TEST_CASE("an unset environment variable is an error naming it") {
  unsetenv("SG_TEST_UNSET");
  CHECK(
      error_of("[store.redis]\nkey_prefix = \"${SG_TEST_UNSET}\"\n") ==
      "test.toml:2:14: store.redis.key_prefix: environment variable \"SG_TEST_UNSET\" is not set");
  CHECK(error_of("[store.redis]\nkey_prefix = \"${SG_TEST\"\n").find("unterminated \"${\"") !=
        std::string::npos);
  CHECK(error_of("[store.redis]\nkey_prefix = \"${1BAD}\"\n")
            .find("invalid environment variable name \"1BAD\"") != std::string::npos);
}

TEST_CASE("$${ is a literal ${ and a lone $ is kept") {
  CHECK(loaded("[store.redis]\nkey_prefix = \"$${HOME}$x\"\n").redis_store.key_prefix ==
        "${HOME}$x");
}

// ---- files ----

TEST_CASE("a missing password_file is an error and a world-readable one a warning") {
  TempDir dir;
  const std::string redis = "[session]\nstore = \"redis\"\n[store.redis]\npassword_file = \"";
  const std::string missing = (dir.path / "nope").string();
  CHECK(error_of(redis + missing + "\"\n") ==
        "test.toml:4:17: store.redis.password_file: cannot "
        "open \"" +
            missing + "\": No such file or directory");

  const std::string open = dir.write("open", "pw", 0644);
  const ConfigLoadResult loose = load(redis + open + "\"\n");
  CHECK(loose.errors.empty());
  REQUIRE(loose.warnings.size() == 1);
  CHECK(loose.warnings[0].format() == "test.toml:4:17: store.redis.password_file: \"" + open +
                                          "\" is readable by every user; run chmod o-r on it");

  const std::string closed = dir.write("closed", "pw", 0600);
  const ConfigLoadResult tight = load(redis + closed + "\"\n");
  CHECK(tight.errors.empty());
  CHECK(tight.warnings.empty());
}

TEST_CASE("relative paths resolve against the directory of the configuration file") {
  TempDir dir;
  std::filesystem::create_directory(dir.path / "certs");
  dir.write("certs/c.pem", "");
  dir.write("certs/c.key", "");
  const std::string file = dir.write(
      "gw.toml", "[tls]\ncertificate = \"certs/c.pem\"\nprivate_key = \"./certs/c.key\"\n");
  const ConfigLoadResult result = sg::load_config_file(file);
  REQUIRE(result.config.has_value());
  CHECK(result.config->tls.certificate == (dir.path / "certs/c.pem").string());
  CHECK(result.config->tls.private_key == (dir.path / "certs/c.key").string());
  CHECK(result.config->source_path == file);
}

TEST_CASE("a configuration file that cannot be read is one error without a position") {
  const ConfigLoadResult result = sg::load_config_file("/nonexistent/gateway.toml");
  REQUIRE(result.errors.size() == 1);
  CHECK(result.errors[0].format() ==
        "/nonexistent/gateway.toml: cannot read the configuration file: No such file or "
        "directory");
}

TEST_CASE("trusted proxies are parsed and host bits get a warning") {
  const ConfigLoadResult result = load("[server]\ntrusted_proxies = [\"10.0.0.1/8\", \"::1\"]\n");
  REQUIRE(result.config.has_value());
  REQUIRE(result.config->server.trusted_proxies.size() == 2);
  CHECK(result.config->server.trusted_proxies[0].to_string() == "10.0.0.0/8");
  REQUIRE(result.warnings.size() == 1);
  CHECK(result.warnings[0].format() ==
        "test.toml:2:20: server.trusted_proxies: \"10.0.0.1/8\" has "
        "host bits set; it means \"10.0.0.0/8\"");
  CHECK(error_of("[server]\ntrusted_proxies = [\"10.0.0.0/33\"]\n").find("got \"10.0.0.0/33\"") !=
        std::string::npos);
}

TEST_CASE("tls handshake_timeout, ciphers, min_version and HSTS are loaded") {
  TempDir dir;
  const sg::Config c = loaded("[tls]\ncertificate = \"" + dir.write("c.pem", "") +
                              "\"\nprivate_key = \"" + dir.write("c.key", "") +
                              "\"\nmin_version = \"1.3\"\nciphers = \"ECDHE+AESGCM\"\n"
                              "handshake_timeout = \"3s\"\n"
                              "strict_transport_security = \"max-age=63072000; preload\"\n");
  CHECK(c.tls.enabled());
  CHECK(c.tls.min_version == "1.3");
  CHECK(c.tls.ciphers == "ECDHE+AESGCM");
  CHECK(c.tls.handshake_timeout == 3s);
  CHECK(c.tls.strict_transport_security == "max-age=63072000; preload");
  CHECK(error_of("[tls]\nmin_version = \"1.1\"\n") ==
        "test.toml:2:15: tls.min_version: expected one of \"1.2\", \"1.3\", got \"1.1\"");
  CHECK(error_of("[tls]\nstrict_transport_security = \"includeSubDomains\"\n")
            .find("expected a header value such as \"max-age=31536000\"") != std::string::npos);
}

TEST_CASE("settings that cannot take effect are warnings, or errors when they break a promise") {
  const ConfigLoadResult hsts = load("[tls]\nstrict_transport_security = \"max-age=60\"\n");
  CHECK(hsts.errors.empty());
  REQUIRE(hsts.warnings.size() == 1);
  CHECK(hsts.warnings[0].format() ==
        "test.toml:2:29: tls.strict_transport_security: has no effect while TLS is off: browsers "
        "ignore HSTS over plain HTTP");

  const ConfigLoadResult verify = load("[upstream]\ntls = true\nverify = false\n");
  CHECK(verify.errors.empty());
  REQUIRE(verify.warnings.size() == 1);
  CHECK(verify.warnings[0].format().rfind("test.toml:3:10: upstream.verify: ", 0) == 0);

  CHECK(error_of("[server]\nredirect_listen = \"0.0.0.0:80\"\n") ==
        "test.toml:2:19: server.redirect_listen: redirects to https, but TLS is off (set "
        "tls.certificate and tls.private_key)");
  CHECK(error_of("[health]\nready_path = \"/healthz\"\n") ==
        "test.toml:2:14: health.ready_path: must differ from health.path \"/healthz\"");
  CHECK(error_of("[session]\nlogout_path = \"/readyz\"\n") ==
        "test.toml:2:15: session.logout_path: \"/readyz\" is also a health check path");
  CHECK(error_of("[session]\nstatus_path = \"/healthz\"\n") ==
        "test.toml:2:15: session.status_path: \"/healthz\" is also a health check path or "
        "session.logout_path");
  CHECK(error_of("[session]\ncookie_path = \"/app\"\nstatus_path = \"/status\"\n") ==
        "test.toml:3:15: session.status_path: \"/status\" is outside session.cookie_path "
        "\"/app\": browsers do not send the session cookie there");
  CHECK(error_of("[session]\nstatus_path = \"status\"\n") ==
        "test.toml:2:15: session.status_path: expected a path starting with \"/\", got \"status\"");
}

TEST_CASE("an admin listener outside loopback and private networks is a warning") {
  for (const char* address : {"0.0.0.0:9901", "*:9901", "[::]:9901", "203.0.113.5:9901",
                              "[2001:db8::1]:9901", "172.32.0.1:9901", "[::ffff:8.8.8.8]:9901"}) {
    CAPTURE(address);
    const ConfigLoadResult r = load(std::string("[admin]\nlisten = \"") + address + "\"\n");
    CHECK(r.errors.empty());
    REQUIRE(r.warnings.size() == 1);
    CHECK(r.warnings[0].format().rfind("test.toml:2:10: admin.listen: ", 0) == 0);
    CHECK(r.warnings[0].format().find("/config and /metrics answer without authentication") !=
          std::string::npos);
  }
  for (const char* address :
       {"127.0.0.1:9901", "127.1.2.3:9901", "[::1]:9901", "10.1.2.3:9901", "172.16.0.1:9901",
        "172.31.255.1:9901", "192.168.1.1:9901", "169.254.1.1:9901", "[fd00::1]:9901",
        "[fe80::1]:9901", "[::ffff:10.0.0.1]:9901"}) {
    CAPTURE(address);
    const ConfigLoadResult r = load(std::string("[admin]\nlisten = \"") + address + "\"\n");
    CHECK(r.errors.empty());
    CHECK(r.warnings.empty());
  }
}

TEST_CASE("a logout_path outside cookie_path is an error: the browser never sends the cookie") {
  CHECK(error_of("[session]\ncookie_path = \"/app\"\nlogout_path = \"/logout\"\n") ==
        "test.toml:3:15: session.logout_path: \"/logout\" is outside session.cookie_path "
        "\"/app\": browsers do not send the session cookie there, so logout could not end the "
        "session");
  CHECK(error_of("[session]\ncookie_path = \"/app\"\nlogout_path = \"/apple/logout\"\n")
            .find("is outside session.cookie_path") != std::string::npos);
  CHECK(load("[session]\ncookie_path = \"/app\"\nlogout_path = \"/app/logout\"\n").errors.empty());
  CHECK(load("[session]\ncookie_path = \"/app\"\nlogout_path = \"/app\"\n").errors.empty());
  CHECK(load("[session]\nlogout_path = \"/logout\"\n").errors.empty());
}

TEST_CASE("cookie_secure auto with TLS off behind trusted proxies loads without a warning") {
  // Secure is decided per request from the proxy's X-Forwarded-Proto (logged once when a
  // trusted proxy leaves it out), so the configuration itself is not a mistake.
  const ConfigLoadResult r = load("[server]\ntrusted_proxies = [\"10.0.0.0/8\"]\n");
  CHECK(r.errors.empty());
  CHECK(r.warnings.empty());
}

TEST_CASE("server.canonical_host must be a host with an optional port") {
  CHECK(loaded("[server]\ncanonical_host = \"www.example.com\"\n").server.canonical_host ==
        "www.example.com");
  CHECK(loaded("[server]\ncanonical_host = \"[::1]:8443\"\n").server.canonical_host ==
        "[::1]:8443");
  CHECK(loaded("").server.canonical_host.empty());
  for (const char* bad :
       {"https://example.com", "example.com/path", "a@example.com", "a b", "example.com:99999"}) {
    CAPTURE(bad);
    CHECK(error_of(std::string("[server]\ncanonical_host = \"") + bad + "\"\n")
              .rfind("test.toml:2:18: server.canonical_host: expected a host name", 0) == 0);
  }
}

TEST_CASE("server.listen addresses may not overlap each other") {
  CHECK(error_of("[server]\nlisten = [\"[::]:8080\", \"127.0.0.1:8080\"]\n") ==
        "test.toml:2:24: server.listen: \"127.0.0.1:8080\" overlaps \"[::]:8080\"");
  CHECK(loaded("[server]\nlisten = [\"127.0.0.1:8080\", \"127.0.0.2:8080\", \"[::1]:8080\"]\n")
            .server.listen.size() == 3);
}

TEST_CASE("the store section selects and configures the session store") {
  const sg::Config c = loaded(
      "[session]\nstore = \"redis\"\n[store.memory]\nmax_sessions = 10\n"
      "snapshot_interval = \"1m\"\n[store.redis]\naddress = \"redis.internal:6380\"\ndatabase = 3\n"
      "timeout = \"100ms\"\non_unavailable = \"fail_open\"\n");
  CHECK(c.session.store == sg::StoreKind::kRedis);
  CHECK(c.memory_store.max_sessions == 10);
  CHECK(c.memory_store.snapshot_interval == 1min);
  CHECK(c.redis_store.address == "redis.internal:6380");
  CHECK(c.redis_store.database == 3);
  CHECK(c.redis_store.timeout == 100ms);
  CHECK(c.redis_store.on_unavailable == sg::OnUnavailable::kFailOpen);
  CHECK(error_of("[store.memory]\nsnapshot_path = \"/nonexistent-dir/sessions.snap\"\n") ==
        "test.toml:2:17: store.memory.snapshot_path: the directory \"/nonexistent-dir\" does not "
        "exist");
}

TEST_CASE("rotation grace, replay policy and create mode are read and checked") {
  const sg::Config defaults = loaded("");
  CHECK(defaults.session.rotation_grace == 10s);
  CHECK(defaults.session.on_rotated_replay == sg::OnRotatedReplay::kIgnore);
  CHECK(defaults.session.create == sg::SessionCreate::kAlways);
  const sg::Config c = loaded(
      "[session]\nrotation_grace = \"0s\"\non_rotated_replay = \"destroy\"\n"
      "create = \"on_return\"\n");
  CHECK(c.session.rotation_grace == 0ms);
  CHECK(c.session.on_rotated_replay == sg::OnRotatedReplay::kDestroy);
  CHECK(c.session.create == sg::SessionCreate::kOnReturn);
  CHECK(error_of("[session]\non_rotated_replay = \"log\"\n")
            .find("test.toml:2:21: session.on_rotated_replay:") == 0);
  CHECK(error_of("[session]\ncreate = \"never\"\n").find("test.toml:2:10: session.create:") == 0);
}

TEST_CASE("create = on_return with redis needs a secret_file of at least 32 bytes") {
  TempDir dir;
  const std::string on_return = "[session]\nstore = \"redis\"\ncreate = \"on_return\"\n";
  CHECK(error_of(on_return).find("session.secret_file, a key shared by every instance") !=
        std::string::npos);
  const std::string short_key = dir.write("short", std::string(31, 'k'));
  CHECK(error_of(on_return + "secret_file = \"" + short_key + "\"\n")
            .find("it needs at least 32 random bytes") != std::string::npos);
  const std::string key = dir.write("key", std::string(32, 'k'));
  CHECK(loaded(on_return + "secret_file = \"" + key + "\"\n").session.secret_file == key);
  // The memory store makes a per-process key, and refuses one from a file: its rotation markers,
  // which keep logged-out first-visit tokens out, do not outlive a restart.
  CHECK(loaded("[session]\ncreate = \"on_return\"\n").session.secret_file.empty());
  CHECK(error_of("[session]\ncreate = \"on_return\"\nsecret_file = \"" + key + "\"\n")
            .find("session.secret_file: is for store = \"redis\" only") != std::string::npos);
}

TEST_CASE("store.redis.max_pending_destroys is a bounded integer, 0 allowed") {
  CHECK(loaded("").redis_store.max_pending_destroys == 10000);
  CHECK(loaded("[store.redis]\nmax_pending_destroys = 0\n").redis_store.max_pending_destroys == 0);
  CHECK(loaded("[store.redis]\nmax_pending_destroys = 50\n").redis_store.max_pending_destroys ==
        50);
  const std::string too_many = error_of("[store.redis]\nmax_pending_destroys = 1000001\n");
  CHECK(too_many.rfind("test.toml:2:", 0) == 0);
  CHECK(too_many.find("max_pending_destroys") != std::string::npos);
  CHECK(error_of("[store.redis]\nmax_pending_destroys = -1\n").rfind("test.toml:2:", 0) == 0);
}
