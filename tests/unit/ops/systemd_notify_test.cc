#include "proxy_core/ops/systemd_notify.h"

#include <doctest/doctest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <string>

namespace {

std::string path_of(const sockaddr_un& a, socklen_t length) {
  return std::string(a.sun_path, length - offsetof(sockaddr_un, sun_path));
}

// A receiving datagram socket bound to a fresh abstract name; closed by the destructor.
struct Receiver {
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  std::string name = "@sg-notify-test-" + std::to_string(::getpid());
  Receiver() {
    sockaddr_un a{};
    socklen_t len = 0;
    std::string error;
    REQUIRE(sg::parse_notify_socket(name, a, len, error));
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), len) == 0);
  }
  ~Receiver() { ::close(fd); }
  std::string receive() {
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    return n < 0 ? std::string() : std::string(buf, static_cast<size_t>(n));
  }
};

}  // namespace

TEST_CASE("a filesystem NOTIFY_SOCKET is a NUL-terminated path") {
  sockaddr_un a{};
  socklen_t len = 0;
  std::string error;
  REQUIRE(sg::parse_notify_socket("/run/systemd/notify", a, len, error));
  CHECK(a.sun_family == AF_UNIX);
  CHECK(path_of(a, len) == std::string("/run/systemd/notify\0", 20));
}

TEST_CASE("an abstract NOTIFY_SOCKET starts with a NUL byte and has no terminator") {
  sockaddr_un a{};
  socklen_t len = 0;
  std::string error;
  REQUIRE(sg::parse_notify_socket("@sd-notify/42", a, len, error));
  CHECK(path_of(a, len) == std::string("\0sd-notify/42", 13));
}

TEST_CASE("an unusable NOTIFY_SOCKET is refused with a reason") {
  sockaddr_un a{};
  socklen_t len = 0;
  for (const char* bad : {"", "relative/path", "vsock:2:1234", "@"}) {
    std::string error;
    CHECK_MESSAGE(!sg::parse_notify_socket(bad, a, len, error), bad);
    CHECK(!error.empty());
  }
  std::string error;
  std::string longest_path = "/" + std::string(sizeof a.sun_path - 2, 'p');  // + NUL = fits
  CHECK(sg::parse_notify_socket(longest_path, a, len, error));
  CHECK(!sg::parse_notify_socket(longest_path + "p", a, len, error));
  std::string longest_abstract = "@" + std::string(sizeof a.sun_path - 1, 'a');  // no NUL needed
  CHECK(sg::parse_notify_socket(longest_abstract, a, len, error));
  CHECK(!sg::parse_notify_socket(longest_abstract + "a", a, len, error));
  CHECK(!sg::parse_notify_socket(std::string("/a\0b", 4), a, len, error));
}

TEST_CASE("the watchdog is on only for a positive interval meant for this process") {
  CHECK(sg::watchdog_interval_usec("30000000", nullptr, 100) == 30000000u);
  CHECK(sg::watchdog_interval_usec("30000000", "100", 100) == 30000000u);
  CHECK(sg::watchdog_interval_usec("30000000", "", 100) == 30000000u);
  CHECK(sg::watchdog_interval_usec("30000000", "101", 100) == 0u);  // inherited by a child
  CHECK(sg::watchdog_interval_usec(nullptr, "100", 100) == 0u);
  CHECK(sg::watchdog_interval_usec("", nullptr, 100) == 0u);
  CHECK(sg::watchdog_interval_usec("0", nullptr, 100) == 0u);
  CHECK(sg::watchdog_interval_usec("-5", nullptr, 100) == 0u);
  CHECK(sg::watchdog_interval_usec("12s", nullptr, 100) == 0u);
  CHECK(sg::watchdog_interval_usec("30000000", "1x", 100) == 0u);
}

TEST_CASE("a STATUS line cannot start another assignment and is bounded") {
  CHECK(sg::status_message("serving on 127.0.0.1:8080") == "STATUS=serving on 127.0.0.1:8080");
  CHECK(sg::status_message("bad\nREADY=1\r\tx\x7f") == "STATUS=bad READY=1  x ");
  std::string longest = sg::status_message(std::string(10000, 'x'));
  CHECK(longest.size() == 7 + sg::kMaxStatusBytes);
}

TEST_CASE("RELOADING=1 carries the monotonic time of the reload") {
  CHECK(sg::reloading_message(1234567) == "RELOADING=1\nMONOTONIC_USEC=1234567");
  uint64_t a = sg::monotonic_usec(), b = sg::monotonic_usec();
  CHECK(a > 0);
  CHECK(b >= a);
}

TEST_CASE("the notifier sends datagrams to NOTIFY_SOCKET and unsets the variables") {
  Receiver r;
  ::setenv("NOTIFY_SOCKET", r.name.c_str(), 1);
  ::setenv("WATCHDOG_USEC", "2000000", 1);
  ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
  sg::SystemdNotifier n;
  std::string warning;
  n.init_from_environment(warning);
  CHECK(warning.empty());
  CHECK(n.enabled());
  CHECK(n.watchdog_usec() == 2000000u);
  CHECK(std::getenv("NOTIFY_SOCKET") == nullptr);
  CHECK(std::getenv("WATCHDOG_USEC") == nullptr);
  CHECK(std::getenv("WATCHDOG_PID") == nullptr);
  CHECK(n.send("READY=1\nSTATUS=up"));
  CHECK(r.receive() == "READY=1\nSTATUS=up");
}

TEST_CASE("without NOTIFY_SOCKET the notifier is off, and so is the watchdog") {
  ::unsetenv("NOTIFY_SOCKET");
  ::setenv("WATCHDOG_USEC", "2000000", 1);
  sg::SystemdNotifier n;
  std::string warning;
  n.init_from_environment(warning);
  CHECK(warning.empty());
  CHECK(!n.enabled());
  CHECK(n.watchdog_usec() == 0u);
  CHECK(!n.send("READY=1"));
  CHECK(std::getenv("WATCHDOG_USEC") == nullptr);
}

TEST_CASE("a malformed NOTIFY_SOCKET is a warning, not a failure") {
  ::setenv("NOTIFY_SOCKET", "vsock:2:999", 1);
  sg::SystemdNotifier n;
  std::string warning;
  n.init_from_environment(warning);
  CHECK(!warning.empty());
  CHECK(!n.enabled());
  CHECK(std::getenv("NOTIFY_SOCKET") == nullptr);
}

TEST_CASE("a send to a socket nobody listens on reports the error") {
  ::setenv("NOTIFY_SOCKET", "@sg-notify-test-nobody-listens", 1);
  sg::SystemdNotifier n;
  std::string warning;
  n.init_from_environment(warning);
  REQUIRE(n.enabled());
  std::string error;
  CHECK(!n.send("READY=1", &error));
  CHECK(!error.empty());
}
