// Exchange and issue 14: a WebSocket tunnel, and a response that runs long, follow their session
// (session_follower.h); and session.status_path is answered here. See exchange.h.
//
// When an exchange is followed. A tunnel is watched from its start. A forwarded request is
// followed from the moment it goes upstream (send_upstream_head) until its upstream is released
// (release_upstream: the end of every forwarded exchange): it is first only *pending* in the
// worker's SessionWatch (an O(1) link into an intrusive list, no timer, no map insert), and the
// follower's 1 s sweep watches the ones that went upstream at least kResponseGraceMs ago. Why a
// sweep and not a check of the age when body bytes flow: a long poll that sends only its head,
// or a stream that still waits for its head, sends nothing to check on; and the sweep costs
// nothing per body piece. So a response is watched 1 to 2 s after its request went upstream, and
// one that ends before costs a link and an unlink. A session ended while the exchange is only
// pending is not missed: the periodic check looks every watched session up (the end of a
// session before the sweep watches it reaches nobody through the bus).
//
// Following covers the wait for the response head too: an HTTP/2 stream (or HTTP/1.1 request)
// whose response has not started when its session ends is cancelled like a running one
// (RST_STREAM CANCEL / the connection closes): the application was already asked, a local answer
// would pass for its own, and the client retries on a new session anyway.
//
// The response's own directives: X-Session-Control: destroy (or destroy-user) on a response ends
// its own session and the end comes back through the bus (or a Redis subscriber, which may even
// run before the store's reply). An end that arrives while the directives run puts the exchange
// back to pending (the sweep and the periodic check decide again), and once they are applied a
// response that destroyed its own session is no longer followed: it must reach the client.
#include "proxy_core/base/clock.h"
#include "proxy_core/exchange.h"
#include "proxy_core/http/websocket_close.h"
#include "proxy_core/ops/audit_log.h"
#include "proxy_core/session/session_status.h"

namespace sg {

// The request goes upstream. A first visit that is not stored (create = "on_return") has
// nothing to revoke. Once per exchange (a retry on a fresh connection keeps the first time).
void Exchange::follow_response() {
  if (pending() || watching()) return;
  SessionWatch* watch = session_watch_;
  if (watch == nullptr || session_.stored_handle() == nullptr) return;
  follow_since_ms_ = services_->now_ms();
  watch->add_pending(this, follow_since_ms_);
}

// A tunnel starts, or a pending exchange is due (watch_due): watched under the session's live
// key (after a rotation by its own directive, the new one).
void Exchange::watch_session() {
  SessionWatch* watch = session_watch_;
  const SessionHandle* handle = session_.stored_handle();
  if (watch == nullptr || handle == nullptr || closed_) return;
  watch->remove_pending(this);
  if (watching()) return;
  const TokenHash* key = session_.live_key();
  if (key != nullptr) watch->add(this, *handle, *key);
}

void Exchange::unfollow() {
  if (!pending() && !watching()) return;
  SessionWatch* watch = session_watch_;
  if (watch == nullptr) return;
  watch->remove_pending(this);
  if (watching()) watch->remove(this);
}

// The follower's sweep: pending for kResponseGraceMs (already unlinked from the pending list).
void Exchange::watch_due() {
  watch_session();
}

// The session ended: called by the worker's SessionWatch (this watcher already removed), never
// from inside this exchange's own callbacks. The downstream's call is the last one: it may give
// the exchange back.
void Exchange::session_ended() {
  if (closed_) return;
  if (phase_ == Phase::kTunnel) {
    end_tunnel();
    return;
  }
  if (directives_running_) {
    // Maybe this response's own destroy: decide again once the directives are applied.
    if (SessionWatch* watch = session_watch_) watch->add_pending(this, follow_since_ms_);
    return;
  }
  end_response();
}

// A tunnel: the client gets a close frame 1008 (RFC 6455 §7.4.1, policy violation; a server's
// frame is unmasked) and the connection closes after it; the application's side closes at once.
void Exchange::end_tunnel() {
  services_->metrics().tunnels_closed_session_ended.add();
  audit_session_end("tunnel-closed");
  release_upstream(false);
  const std::string frame = build_ws_close_frame(kWsClosePolicyViolation, "session ended");
  downstream_->send_body(frame.data(), frame.size(), /*stable=*/false);
  if (closed_) return;  // the write failed: the downstream closed
  downstream_->finish(/*keep_alive=*/false);
}

// A request or response in flight: the upstream connection is closed (its response is cut, it
// cannot be reused), the record written with the response's status if it had started (a
// response that had not is logged like a request whose client went away: not at all), and the
// client side cancelled.
void Exchange::end_response() {
  services_->metrics().responses_ended_session_ended.add();
  audit_session_end("response-ended");
  release_upstream(false);
  log_exchange();
  closed_ = true;
  downstream_->cancel();
}

void Exchange::audit_session_end(const char* event) {
  AuditLog* log = process_audit_log();
  if (log == nullptr || !log->enabled()) return;
  const std::string* user = session_.session_user();
  AuditEvent e;
  e.event = event;
  e.reason = "session-ended";
  e.session = session_.handle();
  e.user = user != nullptr ? std::string_view(*user) : std::string_view();
  e.client = downstream_->client().peer_ip;
  e.request_id = request_id_;
  log->write(e);
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
