// Exchange and issue 14: a WebSocket tunnel follows its session (session_follower.h), and
// session.status_path is answered here. See exchange.h.
#include "proxy_core/base/clock.h"
#include "proxy_core/exchange.h"
#include "proxy_core/http/websocket_close.h"
#include "proxy_core/ops/audit_log.h"
#include "proxy_core/session/session_status.h"

namespace sg {

// A tunnel of a stored session is watched from its start to the downstream's close; a first
// visit that is not stored (create = "on_return") has nothing to revoke.
void Exchange::watch_tunnel() {
  SessionWatch* watch = services_->session_watch();
  const SessionHandle* handle = session_.stored_handle();
  if (watch == nullptr || handle == nullptr || closed_ || watching()) return;
  const TokenHash* key = session_.live_key();
  if (key != nullptr) watch->add(this, *handle, *key);
}

void Exchange::unwatch_tunnel() {
  if (!watching()) return;
  if (SessionWatch* watch = services_->session_watch()) watch->remove(this);
}

// The session ended: the client gets a close frame 1008 (RFC 6455 §7.4.1, policy violation; a
// server's frame is unmasked) and the connection closes after it; the application's side closes
// at once. Called by the worker's SessionWatch (this watcher already removed), never from inside
// this exchange's own callbacks. finish() is the last call: it may give the exchange back.
void Exchange::session_ended() {
  if (closed_ || phase_ != Phase::kTunnel) return;
  services_->metrics().tunnels_closed_session_ended.add();
  if (AuditLog* log = process_audit_log(); log != nullptr && log->enabled()) {
    const std::string* user = session_.session_user();
    AuditEvent e;
    e.event = "tunnel-closed";
    e.reason = "session-ended";
    e.session = session_.handle();
    e.user = user != nullptr ? std::string_view(*user) : std::string_view();
    e.client = downstream_->client().peer_ip;
    e.request_id = request_id_;
    log->write(e);
  }
  release_upstream(false);
  const std::string frame = build_ws_close_frame(kWsClosePolicyViolation, "session ended");
  downstream_->send_body(frame.data(), frame.size(), /*stable=*/false);
  if (closed_) return;  // the write failed: the downstream closed
  downstream_->finish(/*keep_alive=*/false);
}

// session.status_path (session_status.h): GET or HEAD, answered from the record the gate read;
// nothing was written. 401 without a live session; other methods 405.
bool Exchange::answer_status() {
  if (!session_.status_request()) return false;
  HeaderList extra{{"Cache-Control", "no-store"}};
  if (request_->method_id != HTTP_GET && request_->method_id != HTTP_HEAD) {
    extra.emplace_back("Allow", "GET, HEAD");
    send_local(405, "method not allowed\n", close_after_, &extra);
    return true;
  }
  if (session_.stored_handle() == nullptr) {
    send_local(401, kNoSessionBody, close_after_, &extra, "application/json");
    return true;
  }
  const std::string body = session_.status_body(unix_now_ms());
  send_local(200, body, close_after_, &extra, "application/json");
  return true;
}

}  // namespace sg
