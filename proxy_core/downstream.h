// Downstream: the client side of one exchange, as the exchange (exchange.h) sees it. An HTTP/1.1
// connection (ClientConnection) implements it, and so does an HTTP/2 stream (H2Stream). The calls
// are semantic (a response head, a piece of body, the end), never wire bytes: framing (chunked
// re-framing, close-delimited bodies for HTTP/1.0 clients, Connection: close, HTTP/2 frames)
// is the downstream's business.
//
// Contract
// - Threading: one worker's loop thread; every call on both sides runs on it.
// - Ownership: the downstream owns the Exchange it runs (taken from the worker's ExchangePool
//   for one request, given back after it) and outlives it. The exchange holds a plain pointer to
//   its downstream from Exchange::begin until it is given back.
// - Who calls what, when. The downstream calls the exchange: begin (first byte of a request),
//   on_request_head, on_request_body / on_request_end (only after deliver_request_body), reject
//   (a malformed request or a header timeout), client_output_full / client_output_drained
//   (its write queue went over the high / under the low water mark), tunnel_from_client, and
//   downstream_closed when it closes (after which the exchange writes nothing more).
//   The exchange calls the methods below. Any of them may re-enter the exchange synchronously
//   (deliver_request_body parses bytes already read; finish may start the next request on the
//   same object): the exchange makes such a call last and touches nothing of itself after it.
// - Ending: every exchange ends with exactly one of finish(keep_alive) (the response went out
//   and the exchange is logged), abort() (a started response cannot be completed: the client
//   must not take a truncated response for a whole one) or cancel() (its session ended: issue
//   14), unless the downstream closed first.
// - Lifetimes: pointers in ResponseHead and LocalResponse are valid during the call only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "proxy_core/http/header_rewrite.h"
#include "proxy_core/http/http_message.h"

namespace sg {

class TokenDigestCache;

// Facts about the client side, fixed for the downstream's life.
struct ClientFacts {
  std::string_view peer_ip;    // the TCP peer, textual
  bool trusted = false;        // the peer is in server.trusted_proxies
  bool tls = false;            // the client speaks TLS to us (https; HSTS applies)
  bool redirect_only = false;  // the plain redirect listener: 308 to https
  bool can_tunnel = true;      // a WebSocket upgrade can become a byte tunnel (HTTP/1.1 only)
  // The connection's session token digest cache (session/token.h): a keep-alive connection's
  // cookie is hashed once, whichever pooled exchange serves it. May be null.
  TokenDigestCache* token_digests = nullptr;
};

// The client's activity timer: kActivity while the client must make progress (sending a body,
// reading a response), kNone while the upstream's own timers govern.
enum class ClientTimer : uint8_t { kNone, kActivity };

// A response head from the application, for the downstream to render. The downstream drops the
// hop-by-hop fields, every field under header_prefix and the application's Set-Cookie for
// cookie_name (build_client_response does it for HTTP/1.1), then adds `extra`.
struct ResponseHead {
  const MessageHead* upstream = nullptr;  // status and fields as the application sent them
  bool has_body = true;                   // false: HEAD request, 204, 304
  bool upgrade = false;                   // a 101 for a WebSocket tunnel (keep Upgrade/Connection)
  bool close = false;                     // the exchange wants no reuse of the connection after it
  bool force_no_store = false;  // our Set-Cookie is in `extra`: the response must not be cached
  std::string_view header_prefix;
  std::string_view cookie_name;
  const HeaderList* extra = nullptr;  // our Set-Cookie, HSTS, ...
};

// An answer the gateway writes itself (errors, health, redirects, refusals).
struct LocalResponse {
  int status = 0;
  std::string_view body;
  std::string_view content_type = kPlainText;
  const HeaderList* extra = nullptr;  // Set-Cookie, HSTS, Location, Retry-After...
  bool head_only = false;             // a HEAD request: the head without the body
  bool close = false;                 // the exchange wants no reuse of the connection
  bool discard_input = false;         // a malformed request: drop what was read after it
};

class Downstream {
 public:
  virtual const ClientFacts& client() const = 0;
  virtual bool draining() const = 0;  // the gateway drains: no reuse after this exchange

  // ---- the response ----
  virtual void start_response(const ResponseHead& head) = 0;
  // `stable`: the bytes stay valid until uncork() (the upstream's read buffer), so a corked
  // write need not copy them. Body bytes as decoded; the downstream frames them.
  virtual void send_body(const char* data, size_t len, bool stable) = 0;
  virtual void end_response() = 0;
  // The whole answer in one call; the exchange then calls finish, or deliver_request_body to
  // read (and discard) the rest of the request first.
  virtual void send_local(const LocalResponse& response) = 0;
  virtual void send_continue() = 0;  // 100 Continue, the exchange is ready for the body
  // A started response cannot be completed (upstream failure after the head, tunnel timeout):
  // close (HTTP/1.1) or reset the stream (HTTP/2) after what was already produced.
  virtual void abort() = 0;
  // The exchange's session ended while it ran (issue 14, session_follower.h): stop it now, the
  // client must see it cut, never a well-formed end. HTTP/1.1 closes the connection at once
  // (what is queued and not yet written is dropped; no last chunk); HTTP/2 resets this stream
  // with CANCEL and the connection's other streams go on. The exchange is closed before the
  // call (it sends nothing more) and may be given back inside it.
  virtual void cancel() = 0;

  // ---- the request body ----
  // Deliver the request body (and its end) from now on; before this call the downstream holds
  // it. Called once the upstream has the head (also for a complete request: nothing is left to
  // deliver, but the request is now in flight), or to read a body the exchange holds or
  // discards.
  virtual void deliver_request_body() = 0;
  // Exchange::wants_request_body() may have changed (the upstream drained): ask again.
  virtual void request_flow_changed() = 0;
  // An early response (the application answered before it had the whole Content-Length body):
  // the most of the body's rest this downstream reads after the response to keep its connection
  // (the exchange forwards it while the upstream connection stays usable, else drops it). 0 (the
  // default): none, the connection is not reused (HTTP/2 resets the rest of the stream instead).
  virtual uint64_t request_rest_bound() const { return 0; }

  // ---- timers and writes ----
  virtual void set_client_timer(ClientTimer timer) = 0;
  virtual void touch_client_timer() = 0;  // progress: restart the activity timer if it runs
  // Gather the writes between cork() and uncork() (nested) into one write.
  virtual void cork() = 0;
  virtual void uncork() = 0;

  // ---- the end ----
  // The exchange is over and logged. keep_alive false: close after what is queued. The
  // downstream may give the exchange back (or begin the next request on it) inside this call.
  virtual void finish(bool keep_alive) = 0;
  // The 101 went out: from now on bytes flow raw both ways (tunnel_from_client and send_body).
  // Only called when client().can_tunnel.
  virtual void start_tunnel() = 0;

  // ---- splice (issue 17 item 4) ----
  // The socket the rest of the current response body may be written to raw, now: plain TCP,
  // HTTP/1.1, Content-Length framing (the bytes go out as they come), nothing queued or corked
  // ahead of them. -1 otherwise (the default: TLS, HTTP/2, chunked re-framing).
  virtual int raw_body_fd() { return -1; }
  // That socket was full: call Exchange::client_output_drained once it is writable again (the
  // exchange paused its upstream with client_output_full first).
  virtual void await_writable() {}

 protected:
  ~Downstream() = default;
};

}  // namespace sg
