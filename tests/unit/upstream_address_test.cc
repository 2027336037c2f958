// "unix:" upstream servers: parsing into an AF_UNIX address and the configuration checks.
#include <doctest/doctest.h>
#include <sys/un.h>

#include <string>

#include "proxy_core/config/config_loader.h"
#include "proxy_core/net/socket_address.h"

namespace {

std::vector<std::string> errors_of(std::string_view text) {
  std::vector<std::string> out;
  for (const auto& e : sg::load_config_string(text, "test.toml").errors)
    out.push_back(e.format());
  return out;
}

}  // namespace

TEST_CASE("a unix: server resolves to an AF_UNIX address holding its path") {
  const auto addr = sg::resolve_upstream_server("unix:/run/app/app.sock");
  REQUIRE(addr.has_value());
  CHECK(addr->storage.ss_family == AF_UNIX);
  CHECK(std::string(sg::unix_address_path(*addr)) == "/run/app/app.sock");
  CHECK(addr->length == offsetof(sockaddr_un, sun_path) + sizeof "/run/app/app.sock");
  CHECK(sg::is_unix_server("unix:/x"));
  CHECK_FALSE(sg::is_unix_server("127.0.0.1:9000"));
  CHECK(sg::unix_server_path("127.0.0.1:9000").empty());
  // A TCP server still resolves as before.
  const auto tcp = sg::resolve_upstream_server("127.0.0.1:9000");
  REQUIRE(tcp.has_value());
  CHECK(tcp->storage.ss_family == AF_INET);
}

TEST_CASE("a unix: path must be absolute, fit sun_path and hold no control characters") {
  CHECK(sg::kMaxUnixPathBytes == 107);
  const std::string longest = "/" + std::string(106, 'a');
  CHECK(sg::unix_server_problem("unix:" + longest).empty());
  CHECK(sg::resolve_upstream_server("unix:" + longest).has_value());
  const std::string too_long = longest + "b";
  CHECK(sg::unix_server_problem("unix:" + too_long).find("at most 107 bytes") != std::string::npos);
  CHECK_FALSE(sg::resolve_upstream_server("unix:" + too_long).has_value());
  for (const char* bad :
       {"unix:", "unix:app.sock", "unix:./app.sock", "unix:/a\nb", "unix:/a\tb"}) {
    CAPTURE(bad);
    CHECK_FALSE(sg::unix_server_problem(bad).empty());
    CHECK_FALSE(sg::resolve_upstream_server(bad).has_value());
  }
}

TEST_CASE("upstream.servers accepts unix: paths next to HOST:PORT servers") {
  const auto result = sg::load_config_string(
      "[upstream]\nservers = [\"127.0.0.1:9000\", \"unix:/run/app/app.sock\"]\n", "test.toml");
  REQUIRE(result.errors.empty());
  CHECK(result.config->upstream.servers ==
        std::vector<std::string>{"127.0.0.1:9000", "unix:/run/app/app.sock"});
}

TEST_CASE("a bad unix: server is an error at the list element") {
  auto errors = errors_of("[upstream]\nservers = [\"127.0.0.1:9000\", \"unix:app.sock\"]\n");
  REQUIRE(errors.size() == 1);
  CHECK(errors[0] ==
        "test.toml:2:30: upstream.servers: expected an absolute socket path after \"unix:\", got "
        "\"unix:app.sock\"");
  errors = errors_of("[upstream]\nservers = [\"unix:/" + std::string(107, 'a') + "\"]\n");
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].find("test.toml:2:12: upstream.servers: expected a socket path of at most 107 "
                       "bytes (sun_path; this one has 108)") == 0);
  // Neither HOST:PORT nor unix: names both forms in the message.
  errors = errors_of("[upstream]\nservers = [\"/run/app.sock\"]\n");
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].find("expected \"unix:/path/to/app.sock\" or \"HOST:PORT\"") !=
        std::string::npos);
}

TEST_CASE("upstream.tls with a unix: server is an error at that server") {
  const auto errors =
      errors_of("[upstream]\ntls = true\nservers = [\"10.0.0.1:443\", \"unix:/run/app.sock\"]\n");
  REQUIRE(errors.size() == 1);
  CHECK(errors[0] ==
        "test.toml:3:28: upstream.servers: \"unix:/run/app.sock\" is a Unix socket, but "
        "upstream.tls is true: TLS is only spoken to HOST:PORT servers");
  CHECK(errors_of("[upstream]\ntls = true\nservers = [\"10.0.0.1:443\"]\n").empty());
}
