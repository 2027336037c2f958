#include "proxy_core/ops/audit_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "proxy_core/ops/access_log.h"

namespace sg {

namespace {

int open_target(const std::string& target) {
  if (target == "off" || target.empty()) return -1;
  if (target == "stderr") return dup(STDERR_FILENO);
  return ::open(target.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

void field(std::string& out, const char* name, std::string_view value) {
  out.append(",\"");
  out.append(name);
  out.append("\":\"");
  append_json_escaped(out, value);
  out.push_back('"');
}

}  // namespace

bool AuditLog::open(const std::string& target, std::string& error) {
  const int fd = open_target(target);
  if (fd < 0 && target != "off" && !target.empty()) {
    error = "cannot open audit log " + target + ": " + strerror(errno);
    return false;
  }
  target_ = target;
  int old;
  {
    std::lock_guard<std::mutex> lock(write_mutex_);  // as AccessLog::open: no writer in between
    old = fd_.exchange(fd, std::memory_order_relaxed);
  }
  if (old >= 0) ::close(old);
  return true;
}

bool AuditLog::reopen(std::string& error) {
  return open(target_, error);
}

AuditLog::~AuditLog() {
  const int fd = fd_.exchange(-1);
  if (fd >= 0) ::close(fd);
}

std::string AuditLog::format(const AuditEvent& e, int64_t now_ms) {
  const time_t secs = static_cast<time_t>(now_ms / 1000);
  tm utc;
  gmtime_r(&secs, &utc);
  char time_text[96];
  snprintf(time_text, sizeof time_text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
           utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
           static_cast<int>(now_ms % 1000));
  std::string out = "{\"time\":\"";
  out.append(time_text);
  out.push_back('"');
  field(out, "event", e.event);
  field(out, "reason", e.reason);
  field(out, "session", e.session);
  field(out, "user", e.user);
  field(out, "client", e.client);
  field(out, "request_id", e.request_id);
  out.append("}\n");
  return out;
}

void AuditLog::write(const AuditEvent& event) {
  if (!enabled()) return;
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  const std::string line = format(event, now_ms);
  std::lock_guard<std::mutex> lock(write_mutex_);
  const int fd = fd_.load(std::memory_order_relaxed);
  if (fd < 0) return;
  // One write(2) of one line: O_APPEND keeps lines from several threads whole.
  ssize_t n;
  do {
    n = ::write(fd, line.data(), line.size());
  } while (n < 0 && errno == EINTR);
}

namespace {
std::atomic<AuditLog*> g_audit_log{nullptr};
}  // namespace

void set_process_audit_log(AuditLog* log) {
  g_audit_log.store(log, std::memory_order_release);
}

AuditLog* process_audit_log() {
  return g_audit_log.load(std::memory_order_acquire);
}

void audit(const AuditEvent& event) {
  AuditLog* log = process_audit_log();
  if (log != nullptr && log->enabled()) log->write(event);
}

}  // namespace sg
