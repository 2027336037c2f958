// [access], [[access.rules]], [csrf] and the signing keys of [upstream] (issue 15).
#include <doctest/doctest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "proxy_core/config/config_loader.h"

namespace {

sg::ConfigLoadResult load(const std::string& text) {
  return sg::load_config_string(text, "test.toml");
}

std::vector<std::string> errors_of(const std::string& text) {
  std::vector<std::string> out;
  for (const auto& e : load(text).errors)
    out.push_back(e.format());
  return out;
}

std::vector<std::string> warnings_of(const std::string& text) {
  std::vector<std::string> out;
  for (const auto& e : load(text).warnings)
    out.push_back(e.format());
  return out;
}

sg::Config loaded(const std::string& text) {
  const sg::ConfigLoadResult result = load(text);
  std::string all;
  for (const auto& e : result.errors)
    all += e.format() + "\n";
  CAPTURE(all);
  REQUIRE(result.config.has_value());
  return *result.config;
}

bool has(const std::vector<std::string>& messages, const std::string& part) {
  for (const auto& m : messages)
    if (m.find(part) != std::string::npos) return true;
  return false;
}

TEST_CASE("policy features are off by default") {
  const sg::Config c = loaded("");
  CHECK(c.access.rules.empty());
  CHECK(c.access.return_param == "next");
  CHECK(c.access.signed_in_attribute == "user");
  CHECK(c.csrf.mode == sg::CsrfMode::kOff);
  CHECK(c.csrf.missing == sg::CsrfMissing::kAllow);
  CHECK(c.csrf.max_form_bytes == 64 * 1024);
  CHECK_FALSE(c.upstream.sign);
}

TEST_CASE("access rules read paths, methods and the three forms of require") {
  const sg::Config c = loaded(R"(
[access]
login_url = "/login"
api_paths = ["/api/*"]
signed_in_attribute = "User_Name"
[[access.rules]]
paths = ["/admin/*"]
require = { Role = "admin", Email = true }
[[access.rules]]
paths = ["/account/*", "/cart"]
methods = ["POST"]
require = "User"
[[access.rules]]
paths = "/x"
require = ["A", "B"]
)");
  REQUIRE(c.access.rules.size() == 3);
  CHECK(c.access.signed_in_attribute == "user-name");
  const auto& admin = c.access.rules[0].require;
  REQUIRE(admin.size() == 2);
  // toml++ keeps a table's keys sorted.
  CHECK(admin[0].name == "email");
  CHECK(admin[0].any_value);
  CHECK(admin[1].name == "role");
  CHECK(admin[1].value == "admin");
  CHECK_FALSE(admin[1].any_value);
  CHECK(c.access.rules[1].methods == std::vector<std::string>{"POST"});
  CHECK(c.access.rules[1].require.size() == 1);
  CHECK(c.access.rules[1].require[0].name == "user");
  CHECK(c.access.rules[2].paths == std::vector<std::string>{"/x"});
  CHECK(c.access.rules[2].require.size() == 2);
}

TEST_CASE("access rules are refused without paths, require or login_url") {
  CHECK(errors_of("[[access.rules]]\npaths = [\"/a\"]\nrequire = \"User\"\n") ==
        std::vector<std::string>{
            "test.toml:1:1: access.rules: needs access.login_url, where browsers are sent to sign "
            "in"});
  CHECK(has(errors_of("[access]\nlogin_url = \"/l\"\n[[access.rules]]\nrequire = \"User\"\n"),
            "test.toml:3:1: access.rules[0].paths: is required"));
  CHECK(has(errors_of("[access]\nlogin_url = \"/l\"\n[[access.rules]]\npaths = [\"/a\"]\n"),
            "access.rules[0].require: is required"));
  CHECK(has(errors_of("[access]\nlogin_url = \"/l\"\n[[access.rules]]\npaths = [\"/a\"]\n"
                      "require = {}\n"),
            "access.rules[0].require: must name at least one attribute"));
  CHECK(has(errors_of("[access]\nlogin_url = \"/l\"\n[[access.rules]]\npaths = [\"/a\"]\n"
                      "require = { Role = 3 }\n"),
            "test.toml:5:20: access.rules[0].require: expected \"value\" or true for Role, got the "
            "number 3"));
  CHECK(has(errors_of("[access]\nlogin_url = \"/l\"\n[[access.rules]]\npaths = [\"/a\"]\n"
                      "require = \"Id\"\n"),
            "access.rules[0].require: expected an attribute name"));
  CHECK(has(errors_of("[access]\nlogin_url = \"/l\"\n[[access.rules]]\npaths = [\"a\"]\n"
                      "require = \"User\"\n"),
            "test.toml:4:10: access.rules[0].paths: expected a path pattern"));
  CHECK(has(errors_of("[access]\nlogin_url = \"/l\"\n[[access.rules]]\npaths = [\"/a\"]\n"
                      "require = \"User\"\nnope = 1\n"),
            "test.toml:6:1: unknown key \"access.rules[0].nope\""));
}

TEST_CASE("access.login_url must be a path or an http(s) URL, never protocol-relative") {
  CHECK(loaded("[access]\nlogin_url = \"https://sso.example/in?app=1\"\n").access.login_url ==
        "https://sso.example/in?app=1");
  for (const char* bad : {"//evil.example/", "javascript:alert(1)", "login", "/a b", "/l#f"}) {
    CAPTURE(bad);
    CHECK(has(errors_of(std::string("[access]\nlogin_url = \"") + bad + "\"\n"),
              "access.login_url: expected a path"));
  }
  CHECK(has(errors_of("[access]\nreturn_param = \"a&b\"\n"), "access.return_param: expected"));
}

TEST_CASE("a rule that covers the login page is a warning") {
  CHECK(has(warnings_of("[access]\nlogin_url = \"/login?x=1\"\n[[access.rules]]\npaths = "
                        "[\"/*\"]\nrequire = \"User\"\n"),
            "test.toml:3:1: access.rules[0]: covers access.login_url \"/login?x=1\""));
}

TEST_CASE("csrf keys are read and checked") {
  const sg::Config c = loaded(R"(
[csrf]
mode = "fetch-metadata"
allow_same_site = true
trusted_origins = ["https://idp.example", "http://localhost:3000"]
missing = "deny"
exempt = ["/hooks/*"]
max_form_bytes = "1MiB"
form_field = "_csrf"
)");
  CHECK(c.csrf.mode == sg::CsrfMode::kFetchMetadata);
  CHECK(c.csrf.allow_same_site);
  CHECK(c.csrf.trusted_origins.size() == 2);
  CHECK(c.csrf.missing == sg::CsrfMissing::kDeny);
  CHECK(c.csrf.max_form_bytes == 1024 * 1024);
  CHECK(c.csrf.form_field == "_csrf");
  CHECK(loaded("[csrf]\nmode = \"token\"\n").csrf.mode == sg::CsrfMode::kToken);
  CHECK(has(errors_of("[csrf]\nmode = \"on\"\n"), "csrf.mode"));
  for (const char* bad : {"https://idp.example/", "idp.example", "ftp://x", "https://u@x"}) {
    CAPTURE(bad);
    CHECK(has(errors_of(std::string("[csrf]\ntrusted_origins = [\"") + bad + "\"]\n"),
              "expected an origin"));
  }
  CHECK(has(errors_of("[csrf]\nmax_form_bytes = 10\n"), "csrf.max_form_bytes"));
  CHECK(has(errors_of("[csrf]\nform_field = \"a b\"\n"), "csrf.form_field"));
}

TEST_CASE("upstream.sign needs key files of 32 or more bytes") {
  CHECK(has(errors_of("[upstream]\nsign = true\n"), "upstream.sign: needs upstream.sign_key_file"));
  std::string dir = (std::filesystem::temp_directory_path() / "sgsignXXXXXX").string();
  REQUIRE(mkdtemp(dir.data()) != nullptr);
  const std::string good = dir + "/good.key", short_key = dir + "/short.key";
  std::ofstream(good) << std::string(32, 'k');
  std::ofstream(short_key) << std::string(31, 'k');
  chmod(good.c_str(), 0600);
  chmod(short_key.c_str(), 0600);
  const sg::Config c =
      loaded("[upstream]\nsign = true\nsign_key_file = [\"" + good + "\", \"" + good + "\"]\n");
  CHECK(c.upstream.sign);
  CHECK(c.upstream.sign_key_file.size() == 2);
  CHECK(loaded("[upstream]\nsign_key_file = \"" + good + "\"\n").upstream.sign_key_file.size() ==
        1);
  CHECK(has(errors_of("[upstream]\nsign = true\nsign_key_file = [\"" + short_key + "\"]\n"),
            "upstream.sign_key_file[0]: \"" + short_key + "\" holds 31 bytes"));
  CHECK(has(errors_of("[csrf]\nsecret_file = \"" + short_key + "\"\n"),
            "csrf.secret_file: \"" + short_key + "\" holds 31 bytes"));
  std::filesystem::remove_all(dir);
}

}  // namespace
