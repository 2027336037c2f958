#include "proxy_core/net/socket_address.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "proxy_core/net/host_port.h"

namespace sg {

std::optional<SocketAddress> resolve_host_port(std::string_view text) {
  const std::optional<HostPort> split = split_host_port(text);
  if (!split) return std::nullopt;
  const std::optional<uint16_t> port = parse_port(split->port);
  if (!port) return std::nullopt;
  std::string host(split->host);
  if (host.empty() || host == "*") host = "0.0.0.0";

  SocketAddress out;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out.storage);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out.storage);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(*port);
    out.length = sizeof(sockaddr_in);
    return out;
  }
  if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(*port);
    out.length = sizeof(sockaddr_in6);
    return out;
  }
  // A name: resolved once, at configuration time, never on the request path.
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0 || res == nullptr) return std::nullopt;
  std::memcpy(&out.storage, res->ai_addr, res->ai_addrlen);
  out.length = res->ai_addrlen;
  freeaddrinfo(res);
  if (out.storage.ss_family == AF_INET) {
    v4->sin_port = htons(*port);
  } else {
    v6->sin6_port = htons(*port);
  }
  return out;
}

std::string_view unix_server_path(std::string_view server) {
  if (!is_unix_server(server)) return {};
  return server.substr(kUnixServerPrefix.size());
}

std::string unix_server_problem(std::string_view server) {
  const std::string_view path = unix_server_path(server);
  if (path.empty() || path.front() != '/') return "an absolute socket path after \"unix:\"";
  if (path.size() > kMaxUnixPathBytes)
    return "a socket path of at most " + std::to_string(kMaxUnixPathBytes) +
           " bytes (sun_path; this one has " + std::to_string(path.size()) + ")";
  for (char c : path) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      return "a socket path without control characters";
  }
  return "";
}

std::optional<SocketAddress> resolve_upstream_server(std::string_view server) {
  if (!is_unix_server(server)) return resolve_host_port(server);
  if (!unix_server_problem(server).empty()) return std::nullopt;
  const std::string_view path = unix_server_path(server);
  SocketAddress out;
  auto* un = reinterpret_cast<sockaddr_un*>(&out.storage);
  un->sun_family = AF_UNIX;
  std::memcpy(un->sun_path, path.data(), path.size());  // storage is zeroed: NUL-terminated
  out.length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  return out;
}

std::string address_ip_string(const sockaddr* addr) {
  char buf[INET6_ADDRSTRLEN] = "";
  if (addr->sa_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(addr)->sin_addr, buf, sizeof buf);
  } else if (addr->sa_family == AF_INET6) {
    const in6_addr& a = reinterpret_cast<const sockaddr_in6*>(addr)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(&a)) {
      inet_ntop(AF_INET, &a.s6_addr[12], buf, sizeof buf);
    } else {
      inet_ntop(AF_INET6, &a, buf, sizeof buf);
    }
  }
  return buf;
}

int open_reuseport_listener(const SocketAddress& addr) {
  int fd = socket(addr.storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
      bind(fd, addr.get(), addr.length) != 0) {
    int err = errno;
    close(fd);
    return -err;
  }
  return fd;
}

}  // namespace sg
