#include "proxy_core/ops/systemd_notify.h"

#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace sg {

bool parse_notify_socket(std::string_view value, sockaddr_un& out, socklen_t& length,
                         std::string& error) {
  out = {};
  out.sun_family = AF_UNIX;
  if (value.empty()) {
    error = "NOTIFY_SOCKET is empty";
    return false;
  }
  if (value[0] != '/' && value[0] != '@') {
    // systemd 254+ also passes "vsock:CID:PORT" to virtual machines; a gateway never runs as one.
    error = "NOTIFY_SOCKET is neither an absolute path nor an abstract socket (@name)";
    return false;
  }
  if (value.find('\0') != std::string_view::npos) {
    error = "NOTIFY_SOCKET contains a NUL byte";
    return false;
  }
  // A path needs room for its terminating NUL; an abstract name does not have one.
  size_t room = sizeof out.sun_path - (value[0] == '/' ? 1 : 0);
  if (value.size() > room || (value[0] == '@' && value.size() < 2)) {
    error = "NOTIFY_SOCKET is too long or too short for a unix socket address";
    return false;
  }
  std::memcpy(out.sun_path, value.data(), value.size());
  if (value[0] == '@') out.sun_path[0] = '\0';
  length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + value.size() +
                                  (value[0] == '/' ? 1 : 0));
  return true;
}

uint64_t watchdog_interval_usec(const char* watchdog_usec, const char* watchdog_pid, pid_t self) {
  if (watchdog_usec == nullptr || *watchdog_usec == '\0') return 0;
  uint64_t usec = 0;
  const char* end = watchdog_usec + std::strlen(watchdog_usec);
  auto [p, ec] = std::from_chars(watchdog_usec, end, usec);
  if (ec != std::errc() || p != end || usec == 0) return 0;
  if (watchdog_pid != nullptr && *watchdog_pid != '\0') {
    long long pid = 0;
    const char* pend = watchdog_pid + std::strlen(watchdog_pid);
    auto [pp, pec] = std::from_chars(watchdog_pid, pend, pid);
    if (pec != std::errc() || pp != pend || pid != static_cast<long long>(self)) return 0;
  }
  return usec;
}

std::string reloading_message(uint64_t monotonic) {
  return "RELOADING=1\nMONOTONIC_USEC=" + std::to_string(monotonic);
}

std::string status_message(std::string_view text) {
  std::string out = "STATUS=";
  size_t n = text.size() < kMaxStatusBytes ? text.size() : kMaxStatusBytes;
  for (size_t i = 0; i < n; ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    out.push_back(c < 0x20 || c == 0x7f ? ' ' : static_cast<char>(c));
  }
  return out;
}

uint64_t monotonic_usec() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
}

SystemdNotifier::~SystemdNotifier() {
  if (fd_ >= 0) ::close(fd_);
}

void SystemdNotifier::init_from_environment(std::string& warning) {
  const char* socket_env = std::getenv("NOTIFY_SOCKET");
  if (socket_env != nullptr) {
    std::string value = socket_env;
    ::unsetenv("NOTIFY_SOCKET");
    std::string error;
    if (!parse_notify_socket(value, address_, address_length_, error)) {
      warning = error + ": no readiness notifications";
    } else {
      fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
      if (fd_ < 0) warning = std::string("notify socket: ") + std::strerror(errno);
    }
  }
  watchdog_usec_ = fd_ >= 0 ? watchdog_interval_usec(std::getenv("WATCHDOG_USEC"),
                                                     std::getenv("WATCHDOG_PID"), ::getpid())
                            : 0;
  ::unsetenv("WATCHDOG_USEC");
  ::unsetenv("WATCHDOG_PID");
}

bool SystemdNotifier::send(std::string_view message, std::string* error) const {
  if (fd_ < 0) return false;
  ssize_t n;
  do {
    n = ::sendto(fd_, message.data(), message.size(), MSG_NOSIGNAL,
                 reinterpret_cast<const sockaddr*>(&address_), address_length_);
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(message.size())) return true;
  if (error != nullptr) *error = n < 0 ? std::strerror(errno) : "short datagram";
  return false;
}

}  // namespace sg
