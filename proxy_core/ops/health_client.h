// The `sessiongate --health-check` probe: one GET of the liveness path on the gateway's own
// listener, for container HEALTHCHECKs and other local supervisors. It reads the same
// configuration file as the gateway, so the address and path follow the configuration instead of
// being repeated in a Dockerfile, and the image needs no HTTP client (curl) of its own.
//
// Blocking sockets, no libuv; the main thread of a short-lived process only.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "proxy_core/config/config.h"

namespace sg {

struct HealthClientTarget {
  std::string address;  // "IP:PORT" to connect to
  std::string path;     // the liveness path there
};

// Where to probe: the admin listener if there is one (it is plain HTTP and has /healthz);
// otherwise the first server.listen address with health.path, when TLS is off. A wildcard
// address ("0.0.0.0", "*", "[::]", "") is probed on loopback. nullopt, with `error`, when the
// only listeners speak TLS (the probe speaks plain HTTP: configure [admin] listen).
std::optional<HealthClientTarget> health_client_target(const Config& config, std::string& error);

// The status code of an HTTP/1.x status line ("HTTP/1.1 200 OK"), or 0 if it is not one.
int parse_status_line(std::string_view line);

// GET target.path on target.address with Connection: close; the response's status code, or 0
// with `error` (connect refused, timeout, not HTTP). `timeout` bounds the whole exchange.
int run_health_client(const HealthClientTarget& target, std::chrono::milliseconds timeout,
                      std::string& error);

}  // namespace sg
