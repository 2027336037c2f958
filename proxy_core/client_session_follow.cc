// ClientConnection and issue 14: a WebSocket tunnel follows its session (session_follower.h),
// and session.status_path is answered here. See client_connection.h.
// (Wired into today's ClientConnection; with the Exchange split these few hooks move there.)
#include "proxy_core/base/clock.h"
#include "proxy_core/client_connection.h"
#include "proxy_core/http/websocket_close.h"
#include "proxy_core/ops/audit_log.h"
#include "proxy_core/session/session_status.h"
#include "proxy_core/worker.h"

namespace sg {

// A tunnel of a stored session is watched from its start to its close; a first visit that is not
// stored (create = "on_return") has nothing to revoke.
void ClientConnection::watch_tunnel() {
  const SessionHandle* handle = session_.stored_handle();
  const TokenHash* key = session_.live_key();
  if (handle == nullptr || key == nullptr || watching()) return;
  worker_->session_watch().add(this, *handle, *key);
}

void ClientConnection::unwatch_tunnel() {
  if (watching()) worker_->session_watch().remove(this);
}

// The session ended: the client gets a close frame 1008 (RFC 6455 §7.4.1, policy violation; a
// server's frame is unmasked), then the connection closes after it; the application's side
// closes at once. Called by the worker's SessionWatch, never from inside this connection's own
// callbacks.
void ClientConnection::session_ended() {
  if (closing_ || state_ != State::kTunnel) return;
  worker_->metrics().tunnels_closed_session_ended.add();
  if (AuditLog* log = process_audit_log(); log != nullptr && log->enabled()) {
    const std::string* user = session_.session_user();
    AuditEvent e;
    e.event = "tunnel-closed";
    e.reason = "session-ended";
    e.session = session_.handle();
    e.user = user != nullptr ? std::string_view(*user) : std::string_view();
    e.client = peer_ip_;
    e.request_id = request_id_;
    log->write(e);
  }
  release_upstream(false);
  write_client(build_ws_close_frame(kWsClosePolicyViolation, "session ended"));
  close_after_flush();
}

// session.status_path (session_status.h): GET or HEAD, answered from the record the gate read;
// nothing was written. 401 without a live session; other methods 405.
bool ClientConnection::answer_status() {
  if (!session_.status_request()) return false;
  const MessageHead& req = request_parser_.head();
  HeaderList extra{{"Cache-Control", "no-store"}};
  if (req.method_id != HTTP_GET && req.method_id != HTTP_HEAD) {
    extra.emplace_back("Allow", "GET, HEAD");
    send_local(405, "method not allowed\n", ex_.close_after, &extra);
    return true;
  }
  if (session_.stored_handle() == nullptr) {
    send_local(401, kNoSessionBody, ex_.close_after, &extra, "application/json");
    return true;
  }
  const std::string body = session_.status_body(unix_now_ms());
  send_local(200, body, ex_.close_after, &extra, "application/json");
  return true;
}

}  // namespace sg
