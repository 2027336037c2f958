// The audit log ([log] audit): one JSON line per session event, for security review. Never a token
// or a key: the handle (X-Session-Id), the user, the client address and the request id only.
//
//   {"time":"2026-12-02T06:00:00.000Z","event":"destroyed","reason":"directive",
//    "session":"<handle hex>","user":"alice","client":"192.0.2.1","request_id":"..."}
//
// Events and reasons: created; rotated; destroyed with reason logout, directive, user-revoke
// (destroy-others / destroy-user), admin (the /sessions API) or replay (on_rotated_replay =
// "destroy"); expired with reason idle or absolute; evicted (max_sessions) or evicted with reason
// user-cap (max_per_user); replay (a rotated token after its grace window); limit (a login
// refused by max_per_user). Fields that are unknown are empty strings.
//
// Thread-safe like the access log: one write(2) per line on an O_APPEND descriptor, under a mutex
// that open() also takes to swap descriptors (SIGUSR1 reopens it for logrotate). The mutex is a
// leaf: write() takes no other lock, so a store may call it under its own locks.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

namespace sg {

struct AuditEvent {
  std::string_view event;    // "created", "rotated", "destroyed", "expired", "evicted", ...
  std::string_view reason;   // may be empty
  std::string_view session;  // handle hex
  std::string_view user;
  std::string_view client;
  std::string_view request_id;
};

class AuditLog {
 public:
  // target: "off", "stderr" or a file path (O_APPEND, created 0640).
  bool open(const std::string& target, std::string& error);
  bool reopen(std::string& error);
  bool enabled() const { return fd_.load(std::memory_order_relaxed) >= 0; }
  void write(const AuditEvent& event);  // stamped with the wall clock now
  ~AuditLog();

  static std::string format(const AuditEvent& event, int64_t now_ms);

 private:
  std::string target_ = "off";  // main thread only
  std::atomic<int> fd_{-1};
  std::mutex write_mutex_;
};

// The process's audit log, for code that has no GatewayState at hand (the session gate, the
// memory store): set once by Server::start before any worker runs; null in unit tests (no
// events written).
void set_process_audit_log(AuditLog* log);
AuditLog* process_audit_log();
// Writes `event` to the process's audit log when one is set and enabled.
void audit(const AuditEvent& event);

}  // namespace sg
