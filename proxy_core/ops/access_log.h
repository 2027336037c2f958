// The access log: one line per request, JSON (one object a line) or combined. Never the token,
// never the Cookie header: only what is listed in AccessRecord goes out.
//
// Thread-safe: each line is one write(2) to an O_APPEND descriptor (or stdout), so lines from
// several workers never interleave. reopen() swaps the descriptor for logrotate (SIGUSR1) and
// closes the old one at once: a mutex keeps the swap apart from every write(2).
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

#include "proxy_core/config/config.h"

namespace sg {

struct AccessRecord {
  int64_t time_ms = 0;  // when the request head arrived (unix epoch ms)
  std::string_view request_id;
  std::string_view client;
  std::string_view method;
  std::string_view target;      // only its path is logged: query strings often carry secrets
  int version_major = 1;        // 2: the request came over HTTP/2 (logged as HTTP/2.0)
  int version_minor = 1;        // HTTP/1.x of the request
  std::string_view referer;     // combined format only; logged without its query string
  std::string_view user_agent;  // combined format only
  int status = 0;
  uint64_t bytes_sent = 0;      // response body bytes sent to the client
  uint64_t bytes_received = 0;  // request body bytes read from the client
  double duration_ms = 0;
  double upstream_ms = -1;         // -1 = not forwarded
  std::string_view session;        // handle, never the token
  std::string_view session_event;  // "new", "rotated", "destroyed" or empty
};

class AccessLog {
 public:
  // target: "stdout", "off" or a file path (opened O_APPEND, created 0640).
  bool open(const std::string& target, AccessLogFormat format, std::string& error);
  bool reopen(std::string& error);
  void write(const AccessRecord& record);
  bool enabled() const { return fd_.load(std::memory_order_relaxed) >= 0; }
  bool combined() const {
    return format_.load(std::memory_order_relaxed) == AccessLogFormat::kCombined;
  }
  ~AccessLog();

 private:
  std::string target_;  // main thread only
  // Written by the main thread (open at start and reload), read by every worker. fd_ is read
  // without the lock only to skip a disabled log; the descriptor written to is loaded under it.
  std::atomic<AccessLogFormat> format_{AccessLogFormat::kJson};
  std::atomic<int> fd_{-1};
  std::mutex write_mutex_;
};

// Appends `s` as the inside of a JSON string (quotes not included).
void append_json_escaped(std::string& out, std::string_view s);

}  // namespace sg
