#include "proxy_core/ops/access_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "proxy_core/http/request_validation.h"

namespace sg {

namespace {

int open_target(const std::string& target) {
  if (target == "off") return -1;
  if (target == "stdout" || target.empty()) return dup(STDOUT_FILENO);
  return ::open(target.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

void append_time(std::string& out, int64_t ms, AccessLogFormat format) {
  time_t secs = static_cast<time_t>(ms / 1000);
  tm utc;
  gmtime_r(&secs, &utc);
  char buf[64];
  if (format == AccessLogFormat::kJson) {
    snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
             utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
             static_cast<int>(ms % 1000));
  } else {
    static const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    snprintf(buf, sizeof buf, "%02d/%s/%04d:%02d:%02d:%02d +0000", utc.tm_mday, kMonths[utc.tm_mon],
             utc.tm_year + 1900, utc.tm_hour, utc.tm_min, utc.tm_sec);
  }
  out.append(buf);
}

// "HTTP/2.0", "HTTP/1.1" or "HTTP/1.0": the request line's version as combined logs print it.
const char* protocol_name(const AccessRecord& r) {
  if (r.version_major == 2) return "HTTP/2.0";
  return r.version_minor == 0 ? "HTTP/1.0" : "HTTP/1.1";
}

}  // namespace

void append_json_escaped(std::string& out, std::string_view s) {
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      snprintf(buf, sizeof buf, "\\u%04x", c);
      out.append(buf);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
}

bool AccessLog::open(const std::string& target, AccessLogFormat format, std::string& error) {
  int fd = open_target(target);
  if (fd < 0 && target != "off") {
    error = "cannot open access log " + target + ": " + strerror(errno);
    return false;
  }
  target_ = target;
  format_.store(format, std::memory_order_relaxed);
  int old;
  {
    // No worker is inside write() while we hold the lock, and every later write() loads the new
    // descriptor: the old one can be closed at once without its number being reused under a
    // writer (which would send log lines into whatever file or socket got that number next).
    std::lock_guard<std::mutex> lock(write_mutex_);
    old = fd_.exchange(fd, std::memory_order_relaxed);
  }
  if (old >= 0) ::close(old);
  return true;
}

bool AccessLog::reopen(std::string& error) {
  return open(target_, format_.load(std::memory_order_relaxed), error);
}

AccessLog::~AccessLog() {
  int fd = fd_.exchange(-1);
  if (fd >= 0) ::close(fd);
}

void AccessLog::write(const AccessRecord& r) {
  if (fd_.load(std::memory_order_relaxed) < 0) return;  // off: no line built, no lock taken
  const AccessLogFormat format = format_.load(std::memory_order_relaxed);
  std::string line;
  line.reserve(256);
  std::string_view path = target_path(r.target);
  char num[64];
  if (format == AccessLogFormat::kJson) {
    line.append("{\"time\":\"");
    append_time(line, r.time_ms, format);
    line.append("\",\"request_id\":\"");
    append_json_escaped(line, r.request_id);
    line.append("\",\"client\":\"");
    append_json_escaped(line, r.client);
    line.append("\",\"method\":\"");
    append_json_escaped(line, r.method);
    line.append("\",\"path\":\"");
    append_json_escaped(line, path);
    line.append("\",\"protocol\":\"");
    line.append(protocol_name(r));
    snprintf(num, sizeof num, "\",\"status\":%d,\"bytes_sent\":%llu,\"bytes_received\":%llu",
             r.status, static_cast<unsigned long long>(r.bytes_sent),
             static_cast<unsigned long long>(r.bytes_received));
    line.append(num);
    snprintf(num, sizeof num, ",\"duration_ms\":%.3f", r.duration_ms);
    line.append(num);
    if (r.upstream_ms >= 0) {
      snprintf(num, sizeof num, ",\"upstream_ms\":%.3f", r.upstream_ms);
      line.append(num);
    }
    line.append(",\"session\":\"");
    append_json_escaped(line, r.session);
    line.append("\",\"session_event\":\"");
    append_json_escaped(line, r.session_event);
    line.append("\"}\n");
  } else {
    // Combined log format, with the session handle in place of the remote user.
    line.append(r.client.empty() ? "-" : r.client);
    line.append(" - ");
    line.append(r.session.empty() ? "-" : r.session);
    line.append(" [");
    append_time(line, r.time_ms, format);
    line.append("] \"");
    append_json_escaped(line, r.method);
    line.push_back(' ');
    append_json_escaped(line, path);
    snprintf(num, sizeof num, " %s\" %d %llu \"", protocol_name(r), r.status,
             static_cast<unsigned long long>(r.bytes_sent));
    line.append(num);
    std::string_view referer = r.referer.substr(0, r.referer.find_first_of("?#"));
    if (referer.empty()) line.push_back('-');
    append_json_escaped(line, referer);
    line.append("\" \"");
    if (r.user_agent.empty()) line.push_back('-');
    append_json_escaped(line, r.user_agent);
    line.append("\"\n");
  }
  // One write(2) per line under the lock that open() takes to swap descriptors. Lines to one
  // descriptor are serialised by the kernel anyway (O_APPEND, pipe), so the lock adds little.
  std::lock_guard<std::mutex> lock(write_mutex_);
  int fd = fd_.load(std::memory_order_relaxed);
  if (fd < 0) return;
  ssize_t ignored = ::write(fd, line.data(), line.size());
  (void)ignored;
}

}  // namespace sg
