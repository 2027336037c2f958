// SystemdNotifier: the sd_notify(3) readiness protocol, without a libsystemd dependency.
//
// The service manager passes NOTIFY_SOCKET (an AF_UNIX datagram socket: a filesystem path, or an
// abstract name written with a leading '@') and, with WatchdogSec=, WATCHDOG_USEC (and
// WATCHDOG_PID). Each message is one datagram of newline-separated KEY=VALUE assignments
// (READY=1, RELOADING=1, STOPPING=1, STATUS=..., WATCHDOG=1, MONOTONIC_USEC=...); systemd
// identifies the sender from the kernel's SCM_CREDENTIALS, so the unit's NotifyAccess=main
// accepts them only from the main process. Documented in sd_notify(3) and systemd.service(5).
//
// Thread: the main thread only (from_environment() must run before any other thread starts,
// because it calls unsetenv). Sending never blocks: a datagram the manager cannot take is dropped.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace sg {

// Parses a NOTIFY_SOCKET value into a socket address. "/path" is a filesystem socket; "@name" an
// abstract one (the '@' becomes a NUL byte, and the length excludes any trailing NUL). False, with
// `error`, for an empty, relative, over-long or otherwise unsupported value (e.g. "vsock:...").
bool parse_notify_socket(std::string_view value, sockaddr_un& out, socklen_t& length,
                         std::string& error);

// The watchdog interval asked for by WATCHDOG_USEC / WATCHDOG_PID, in microseconds; 0 when off:
// unset, not a positive number, or WATCHDOG_PID names another process (the variables were
// inherited by a child).
uint64_t watchdog_interval_usec(const char* watchdog_usec, const char* watchdog_pid, pid_t self);

// "RELOADING=1\nMONOTONIC_USEC=<usec>": systemd.service(5) asks for the monotonic timestamp with
// RELOADING=1 so that a reload started before an older one finished is told apart.
std::string reloading_message(uint64_t monotonic_usec);

// "STATUS=<text>" with every control byte (newline included: it would start a new assignment)
// replaced by a space, and the text cut to kMaxStatusBytes.
std::string status_message(std::string_view text);
inline constexpr size_t kMaxStatusBytes =
    512;  // a status line, not a log: systemctl shows one line

// CLOCK_MONOTONIC in microseconds, the clock systemd uses for MONOTONIC_USEC.
uint64_t monotonic_usec();

class SystemdNotifier {
 public:
  SystemdNotifier() = default;
  ~SystemdNotifier();
  SystemdNotifier(const SystemdNotifier&) = delete;
  SystemdNotifier& operator=(const SystemdNotifier&) = delete;

  // Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID, then unsets all three so that processes
  // we start do not inherit them. Not under systemd (no NOTIFY_SOCKET): every send is a no-op.
  // A malformed NOTIFY_SOCKET is reported in `warning` and also disables sending.
  // REQUIRES: no other thread is running (unsetenv).
  void init_from_environment(std::string& warning);

  bool enabled() const { return fd_ >= 0; }
  // Microseconds between two WATCHDOG=1 messages as systemd expects them (0 = no watchdog);
  // send every half of it.
  uint64_t watchdog_usec() const { return watchdog_usec_; }

  // One datagram. False when disabled or the send failed (errno-style text in `error` if given).
  bool send(std::string_view message, std::string* error = nullptr) const;

 private:
  int fd_ = -1;
  sockaddr_un address_{};
  socklen_t address_length_ = 0;
  uint64_t watchdog_usec_ = 0;
};

}  // namespace sg
