// The error log: leveled lines on stderr, one write(2) per line so that lines from several
// worker threads never interleave. The access log is separate (access_log.h).
#pragma once

#include <atomic>
#include <string_view>

#include "proxy_core/config/config.h"

namespace sg {

void set_log_level(LogLevel level);
LogLevel log_level();
bool log_enabled(LogLevel level);

// printf-style; the message must never contain a session token (callers pass handles only).
void log_message(LogLevel level, const char* format, ...) __attribute__((format(printf, 2, 3)));

#define SG_LOG_DEBUG(...)                                     \
  do {                                                        \
    if (::sg::log_enabled(::sg::LogLevel::kDebug))            \
      ::sg::log_message(::sg::LogLevel::kDebug, __VA_ARGS__); \
  } while (0)
#define SG_LOG_INFO(...) ::sg::log_message(::sg::LogLevel::kInfo, __VA_ARGS__)
#define SG_LOG_WARN(...) ::sg::log_message(::sg::LogLevel::kWarn, __VA_ARGS__)
#define SG_LOG_ERROR(...) ::sg::log_message(::sg::LogLevel::kError, __VA_ARGS__)

std::string_view log_level_name(LogLevel level);

}  // namespace sg
