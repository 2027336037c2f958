// The upstream as an exchange sees it: one borrowed HTTP/1.1 client connection to the
// application (UpstreamChannel), the place that lends them (UpstreamSource), and what the channel
// reports back (UpstreamUser). UpstreamConnection and UpstreamPool (upstream.h) implement the two
// first; the exchange (exchange.h) implements the third. Tests fake all three without sockets.
//
// Threading: one worker's loop; no locks. A channel is lent to one user at a time (attach); the
// user gives it back with UpstreamSource::put_idle (reusable) or close(). A channel is never
// freed inside one of its user's callbacks, and a user is never freed inside a callback of a
// channel it holds, so on_upstream_read_end is always safe to call.
// Cost: these are virtual calls, a handful per request (write, timers, begin/reusable); the body
// path is one call per upstream read.
#pragma once

#include <uv.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "proxy_core/config/config.h"
#include "proxy_core/http/http_message.h"
#include "proxy_core/http/http_parser.h"

namespace sg {

class UpstreamUser;

class UpstreamChannel {
 public:
  virtual void attach(UpstreamUser* user) = 0;  // nullptr: nobody listens any more
  // Writes (queued by the socket); non-zero is a libuv error: the caller calls fail(status).
  virtual int write(const uv_buf_t* bufs, unsigned count) = 0;
  virtual int write(std::string_view data) = 0;
  virtual size_t queued() const = 0;  // bytes waiting in the write queue
  virtual void pause_reading() = 0;
  virtual void resume_reading() = 0;
  // The running timeout (connect, then response): on_upstream_timeout when it passes.
  virtual void start_timer(Millis timeout) = 0;
  virtual void stop_timer() = 0;
  // Closes; the object frees itself later. The user is not told.
  virtual void close() = 0;
  // Closes and tells the user (on_upstream_closed) with `status`.
  virtual void fail(int status) = 0;
  // Starts one response: the reader starts over (a HEAD request's response has no body). Called
  // before anything else on a channel just taken from the pool: its reader still holds the last
  // response (put_idle does not reset it).
  virtual void begin_response(bool head_request, Millis response_timeout) = 0;
  // Goes on after on_upstream_head returned false.
  virtual void resume_response() = 0;
  // From now on, bytes go to on_upstream_tunnel_data unparsed.
  virtual void start_tunnel() = 0;
  // The response completed in step and the connection may carry the next request.
  virtual bool reusable() const = 0;
  // The final head last reported (valid while the channel is held).
  virtual const MessageHead& response_head() const = 0;
  virtual const std::string& server() const = 0;
  virtual bool reused() const = 0;   // taken from the idle pool (it may have been closed under us)
  virtual bool closing() const = 0;  // closed or closing

  // ---- a spliced request body (issue 17 item 4): client socket -> pipe -> this socket ----
  // The socket the rest of a Content-Length request body may be written to raw, now: plain (no
  // TLS), connected, not closing, nothing queued ahead of the bytes. -1 otherwise (the default).
  virtual int raw_request_fd() { return -1; }
  // That socket was full (splice said EAGAIN): tell the user on_upstream_drained once it is
  // writable again.
  virtual void await_writable() {}

 protected:
  ~UpstreamChannel() = default;  // never deleted through this interface
};

// What an exchange hears from the channel it borrowed. The channel parses the response
// (HttpParser, strict) and reports its head, body and end; it decides whether it can be reused.
class UpstreamUser {
 public:
  virtual ~UpstreamUser() = default;
  virtual void on_upstream_connected(UpstreamChannel* c, int status) = 0;
  // A final response head (1xx interim heads are skipped; 101 comes with on_upstream_upgrade).
  // False holds the response: the connection stops reading, keeps what it has not parsed, and
  // goes on when the user calls resume_response().
  virtual bool on_upstream_head(UpstreamChannel* c, const MessageHead& head) = 0;
  // Body bytes, decoded from chunked framing; valid until on_upstream_read_end.
  virtual void on_upstream_body(UpstreamChannel* c, const char* data, size_t len) = 0;
  // The response is complete. c->closing() when it was delimited by the upstream's close.
  virtual void on_upstream_complete(UpstreamChannel* c) = 0;
  // A 101 head; `rest` is what followed it (tunnel bytes). The user calls start_tunnel() or
  // gives the connection up.
  virtual void on_upstream_upgrade(UpstreamChannel* c, const MessageHead& head, const char* rest,
                                   size_t len) = 0;
  // The response broke the protocol (`why` names how); the user gives the connection up.
  virtual void on_upstream_bad_response(UpstreamChannel* c, const char* why) = 0;
  // Everything one read produces is reported between these two calls (the user may gather its
  // writes into one).
  virtual void on_upstream_read_begin() = 0;
  virtual void on_upstream_read_end() = 0;
  // Raw bytes after start_tunnel().
  virtual void on_upstream_tunnel_data(UpstreamChannel* c, const char* data, size_t len) = 0;
  // The upstream closed (UV_EOF) or failed; the connection is already closing.
  virtual void on_upstream_closed(UpstreamChannel* c, int status) = 0;
  virtual void on_upstream_drained(UpstreamChannel* c) = 0;  // write queue fell below low water
  virtual void on_upstream_timeout(UpstreamChannel* c) = 0;

  // ---- splice (issue 17 item 4): the rest of a Content-Length body straight to the client ----
  // Asked after a read that left a Content-Length body unfinished: the client socket the rest
  // may be spliced to now, or -1 (the default: the body goes through on_upstream_body).
  virtual int upstream_splice_target(UpstreamChannel*) { return -1; }
  // `n` body bytes reached the client's socket without passing through the user.
  virtual void on_upstream_spliced(UpstreamChannel*, size_t) {}
  // The client's socket is full: the user pauses the channel (pause_reading) and calls
  // resume_reading() once that socket is writable again; the relay goes on from there.
  virtual void on_upstream_splice_blocked(UpstreamChannel*) {}
  // Writing to the client's socket failed (a libuv error): the client is gone or broken.
  virtual void on_upstream_splice_failed(UpstreamChannel*, int) {}
};

// Where an exchange gets its channel: the worker's UpstreamPool.
class UpstreamSource {
 public:
  // Round robin over `servers`, skipping any still in its refusal back-off while another is not.
  virtual const std::string& pick_server(const std::vector<std::string>& servers) = 0;
  // An idle connection to `server`, or nullptr.
  virtual UpstreamChannel* take_idle(const std::string& server) = 0;
  // Opens a new connection (on_upstream_connected follows); nullptr when the address is unusable.
  // `tls`: connect with TLS (the worker's upstream context).
  virtual UpstreamChannel* open(const std::string& server, const UpstreamConfig& config,
                                HttpParser::Limits limits, UpstreamUser* user, bool tls) = 0;
  // Gives back a channel this source lent whose response completed and that is reusable().
  virtual void put_idle(UpstreamChannel* c, Millis idle_timeout, size_t max_idle) = 0;
  virtual void mark_refused(const std::string& server) = 0;

 protected:
  ~UpstreamSource() = default;
};

}  // namespace sg
