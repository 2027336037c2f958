// Address parsing and formatting for listeners and upstream servers, plus the SO_REUSEPORT
// listening socket each worker opens for itself.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <optional>
#include <string>
#include <string_view>

namespace sg {

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

// "127.0.0.1:8080", "[::1]:8080", "*:8080" / ":8080" (all IPv4 interfaces), "localhost:8080".
std::optional<SocketAddress> resolve_host_port(std::string_view text);
// An upstream server is "HOST:PORT" or "unix:" and an absolute socket path ("unix:/run/app.sock").
inline constexpr std::string_view kUnixServerPrefix = "unix:";
// sun_path holds the path and its terminating NUL: 107 bytes of path on Linux.
inline constexpr size_t kMaxUnixPathBytes = sizeof(sockaddr_un::sun_path) - 1;
inline bool is_unix_server(std::string_view server) {
  return server.substr(0, kUnixServerPrefix.size()) == kUnixServerPrefix;
}
// The socket path of a "unix:" server; empty for a TCP server.
std::string_view unix_server_path(std::string_view server);
// Why a "unix:" server cannot be used ("" when it can): the path must be absolute (a relative one
// would depend on the working directory the gateway happens to start in), fit sun_path, and hold
// no control characters.
std::string unix_server_problem(std::string_view server);
// A "unix:" server as an AF_UNIX address, else resolve_host_port.
std::optional<SocketAddress> resolve_upstream_server(std::string_view server);
// The path inside an AF_UNIX address (NUL-terminated).
inline const char* unix_address_path(const SocketAddress& addr) {
  return reinterpret_cast<const sockaddr_un*>(&addr.storage)->sun_path;
}

// The IP of a peer as text, without port ("127.0.0.1", "::1"); v4-mapped v6 shown as v4.
std::string address_ip_string(const sockaddr* addr);

// A non-blocking listening socket with SO_REUSEADDR and SO_REUSEPORT set, bound to `addr`.
// libuv 1.44 has no UV_TCP_REUSEPORT, so we build the socket ourselves and hand it to
// uv_tcp_open. Returns the fd or -errno.
int open_reuseport_listener(const SocketAddress& addr);

}  // namespace sg
