#include "proxy_core/ops/health_client.h"

#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>

TEST_CASE("the health check probes the admin listener when there is one") {
  sg::Config c;
  c.server.listen = {"0.0.0.0:8080"};
  c.admin.listen = "0.0.0.0:9901";
  c.health.path = "/live";
  std::string error;
  auto t = sg::health_client_target(c, error);
  REQUIRE(t);
  CHECK(t->address == "127.0.0.1:9901");
  CHECK(t->path == "/healthz");  // the admin listener's path is fixed
}

TEST_CASE("without an admin listener the first client listener and health.path are probed") {
  sg::Config c;
  c.health.path = "/live";
  std::string error;
  for (auto [listen, expect] : {std::pair{"*:8080", "127.0.0.1:8080"},
                                {":8080", "127.0.0.1:8080"},
                                {"[::]:8080", "[::1]:8080"},
                                {"10.1.2.3:80", "10.1.2.3:80"}}) {
    c.server.listen = {listen, "127.0.0.1:7000"};
    auto t = sg::health_client_target(c, error);
    REQUIRE(t);
    CHECK(t->address == expect);
    CHECK(t->path == "/live");
  }
}

TEST_CASE("a TLS-only gateway needs an admin listener for the plain-HTTP probe") {
  sg::Config c;
  c.tls.certificate = "cert.pem";
  c.tls.private_key = "key.pem";
  std::string error;
  CHECK(!sg::health_client_target(c, error));
  CHECK(error.find("[admin] listen") != std::string::npos);
  c.admin.listen = "127.0.0.1:9901";
  CHECK(sg::health_client_target(c, error));
}

TEST_CASE("status lines are parsed strictly") {
  CHECK(sg::parse_status_line("HTTP/1.1 200 OK") == 200);
  CHECK(sg::parse_status_line("HTTP/1.0 503 Service Unavailable") == 503);
  CHECK(sg::parse_status_line("HTTP/1.1 204") == 204);
  CHECK(sg::parse_status_line("HTTP/1.1 200OK") == 0);
  CHECK(sg::parse_status_line("HTTP/2 200 OK") == 0);
  CHECK(sg::parse_status_line("HTTP/1.1 20") == 0);
  CHECK(sg::parse_status_line("HTTP/1.1 2x0 OK") == 0);
  CHECK(sg::parse_status_line("HTTP/1.1 099 Low") == 0);
  CHECK(sg::parse_status_line("SSH-2.0-OpenSSH") == 0);
  CHECK(sg::parse_status_line("") == 0);
}

namespace {
// A one-shot server on a loopback port: answers the first connection with `response`.
struct OneShotServer {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int port = 0;
  std::thread thread;
  std::string request;
  explicit OneShotServer(std::string response) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
    REQUIRE(::listen(fd, 1) == 0);
    thread = std::thread([this, response] {
      int c = ::accept(fd, nullptr, nullptr);
      if (c < 0) return;
      char buf[1024];
      while (request.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = ::recv(c, buf, sizeof buf, 0);
        if (n <= 0) break;
        request.append(buf, static_cast<size_t>(n));
      }
      ::send(c, response.data(), response.size(), MSG_NOSIGNAL);
      ::close(c);
    });
  }
  ~OneShotServer() {
    if (thread.joinable()) thread.join();
    ::close(fd);
  }
};
}  // namespace

TEST_CASE("the probe returns the status the listener answered") {
  OneShotServer s("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
  std::string error;
  int status = sg::run_health_client({"127.0.0.1:" + std::to_string(s.port), "/healthz"},
                                     std::chrono::milliseconds(5000), error);
  s.thread.join();
  CHECK(status == 503);
  CHECK(s.request.rfind("GET /healthz HTTP/1.1\r\n", 0) == 0);
  CHECK(s.request.find("Connection: close\r\n") != std::string::npos);
}

TEST_CASE("the probe fails on a refused connection and on a non-HTTP answer") {
  int port;
  {
    OneShotServer s("SSH-2.0-OpenSSH_9.2\r\n");
    port = s.port;
    std::string error;
    CHECK(sg::run_health_client({"127.0.0.1:" + std::to_string(port), "/healthz"},
                                std::chrono::milliseconds(5000), error) == 0);
    CHECK(error.find("not an HTTP response") != std::string::npos);
  }
  std::string error;  // the server is gone: nobody listens on its port any more
  CHECK(sg::run_health_client({"127.0.0.1:" + std::to_string(port), "/healthz"},
                              std::chrono::milliseconds(5000), error) == 0);
  CHECK(!error.empty());
}
