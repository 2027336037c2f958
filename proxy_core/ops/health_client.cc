#include "proxy_core/ops/health_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "proxy_core/net/host_port.h"
#include "proxy_core/net/socket_address.h"

namespace sg {

namespace {

// "0.0.0.0:8080" -> "127.0.0.1:8080", "[::]:8080" -> "[::1]:8080": a wildcard listener is
// reachable on loopback, and connecting to the wildcard address itself is not portable.
std::string loopback_for(const std::string& address) {
  const std::optional<HostPort> split = split_host_port(address);
  if (!split) return address;
  const std::string port(split->port);
  if (split->bracketed && split->host == "::") return "[::1]:" + port;
  if (!split->bracketed && (split->host.empty() || split->host == "*" || split->host == "0.0.0.0"))
    return "127.0.0.1:" + port;
  return address;
}

// Milliseconds left until `deadline` (at least 0).
int remaining_ms(std::chrono::steady_clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

bool wait_for(int fd, short events, std::chrono::steady_clock::time_point deadline) {
  pollfd p{fd, events, 0};
  int r;
  do {
    r = ::poll(&p, 1, remaining_ms(deadline));
  } while (r < 0 && errno == EINTR);
  return r > 0;
}

}  // namespace

std::optional<HealthClientTarget> health_client_target(const Config& config, std::string& error) {
  if (!config.admin.listen.empty())
    return HealthClientTarget{loopback_for(config.admin.listen), "/healthz"};
  if (config.tls.enabled()) {
    error = "--health-check speaks plain HTTP and every listener has TLS: set [admin] listen";
    return std::nullopt;
  }
  if (config.server.listen.empty()) {
    error = "no listener to probe";
    return std::nullopt;
  }
  return HealthClientTarget{loopback_for(config.server.listen.front()), config.health.path};
}

int parse_status_line(std::string_view line) {
  // RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ]
  if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || line[8] != ' ') return 0;
  int code = 0;
  for (size_t i = 9; i < 12; ++i) {
    if (line[i] < '0' || line[i] > '9') return 0;
    code = code * 10 + (line[i] - '0');
  }
  if (line.size() > 12 && line[12] != ' ' && line[12] != '\r') return 0;
  return code >= 100 ? code : 0;
}

int run_health_client(const HealthClientTarget& target, std::chrono::milliseconds timeout,
                      std::string& error) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto addr = resolve_host_port(target.address);
  if (!addr) {
    error = "cannot resolve " + target.address;
    return 0;
  }
  int fd = ::socket(addr->storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    error = std::string("socket: ") + std::strerror(errno);
    return 0;
  }
  auto fail = [&](const std::string& what) {
    error = target.address + ": " + what;
    ::close(fd);
    return 0;
  };
  if (::connect(fd, addr->get(), addr->length) != 0 && errno != EINPROGRESS)
    return fail(std::strerror(errno));
  if (!wait_for(fd, POLLOUT, deadline)) return fail("connect timed out");
  int so_error = 0;
  socklen_t len = sizeof so_error;
  ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
  if (so_error != 0) return fail(std::strerror(so_error));
  std::string request = "GET " + target.path +
                        " HTTP/1.1\r\nHost: localhost\r\nUser-Agent: sessiongate-health-check\r\n"
                        "Connection: close\r\n\r\n";
  size_t sent = 0;
  while (sent < request.size()) {
    if (!wait_for(fd, POLLOUT, deadline)) return fail("send timed out");
    ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EINTR) return fail(std::strerror(errno));
    if (n > 0) sent += static_cast<size_t>(n);
  }
  // Only the status line matters: read until its end (or 512 bytes, far more than it needs).
  std::string head;
  while (head.find("\r\n") == std::string::npos && head.size() < 512) {
    if (!wait_for(fd, POLLIN, deadline)) return fail("no response in time");
    char buf[512];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return fail(std::strerror(errno));
    }
    head.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  int status = parse_status_line(std::string_view(head).substr(0, head.find("\r\n")));
  if (status == 0) error = target.address + ": not an HTTP response";
  return status;
}

}  // namespace sg
