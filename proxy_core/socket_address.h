// Address parsing and formatting for listeners and upstream servers, plus the SO_REUSEPORT
// listening socket each worker opens for itself.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

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
// The IP of a peer as text, without port ("127.0.0.1", "::1"); v4-mapped v6 shown as v4.
std::string address_ip_string(const sockaddr* addr);

// A non-blocking listening socket with SO_REUSEADDR and SO_REUSEPORT set, bound to `addr`.
// libuv 1.44 has no UV_TCP_REUSEPORT, so we build the socket ourselves and hand it to
// uv_tcp_open. Returns the fd or -errno.
int open_reuseport_listener(const SocketAddress& addr);

}  // namespace sg
