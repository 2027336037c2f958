// Connections to the application and each worker's keep-alive pool of them.
//
// Thread: everything here belongs to one worker's loop; no locks. An UpstreamConnection is owned
// by the pool while idle and lent to one client exchange (its UpstreamUser) while active. It is
// freed only in its close callback (libuv rule), never from inside one of its own callbacks.
#pragma once

#include <uv.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>
#include <vector>

#include "proxy_core/config/config.h"
#include "proxy_core/http/http_parser.h"
#include "proxy_core/http/response_reader.h"
#include "proxy_core/net/lazy_deadline.h"
#include "proxy_core/net/socket_address.h"
#include "proxy_core/net/splice_pipe.h"
#include "proxy_core/net/upstream_socket.h"
#include "proxy_core/ops/metrics.h"
#include "proxy_core/tls/tls_context.h"
#include "proxy_core/tls/tls_engine.h"
#include "proxy_core/upstream_channel.h"

namespace sg {

class UpstreamPool;

class UpstreamConnection final : public UpstreamChannel, private ResponseReader::Events {
 public:
  UpstreamConnection(UpstreamPool* pool, std::string server, HttpParser::Limits limits);

  int connect(const SocketAddress& addr, Millis timeout);
  void attach(UpstreamUser* user) override { user_ = user; }
  int write(const uv_buf_t* bufs, unsigned count) override;
  int write(std::string_view data) override;
  size_t queued() const override;
  void pause_reading() override;
  void resume_reading() override;
  void start_timer(Millis timeout) override;
  void stop_timer() override;
  // Closes the socket; the object is freed in the close callback.
  void close() override;
  // Closes and tells the user (on_upstream_closed) with `status`.
  void fail(int status) override;

  // Starts one exchange's response: the parser starts over (a HEAD request's response has no
  // body) and, once a final head has been reported, every read restarts `response_timeout`.
  void begin_response(bool head_request, Millis response_timeout) override;
  // Goes on after on_upstream_head returned false.
  void resume_response() override;
  // From now on, bytes go to on_upstream_tunnel_data unparsed.
  void start_tunnel() override { tunnel_ = true; }
  // The response completed in step: the connection may carry the next request (keep-alive, no
  // stray bytes after the response).
  bool reusable() const override { return !tunnel_ && reader_.reusable(); }
  const MessageHead& response_head() const override { return reader_.head(); }

  const std::string& server() const override { return server_; }
  bool reused() const override { return reused_; }
  bool closing() const override { return closing_; }

 private:
  friend class UpstreamPool;
  static void on_connect(uv_connect_t* req, int status);
  static void on_alloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf);
  static void on_write_done(uv_stream_t* s, int status);
  static void on_timer(uv_timer_t* t);
  // Closes the socket and the timer; on_closed() once both are closed.
  void close_handles();
  static void on_closed(UpstreamConnection* c);
  void on_ciphertext(const char* data, size_t len);
  void on_plaintext(const char* data, size_t len);
  // ResponseReader::Events, passed on to the user.
  bool on_head(const MessageHead& head) override { return user_->on_upstream_head(this, head); }
  void on_body(const char* data, size_t len) override;
  void on_complete() override;
  void on_upgrade(const MessageHead& head, const char* rest, size_t len) override {
    user_->on_upstream_upgrade(this, head, rest, len);
  }
  void on_bad_response(const char* why) override { user_->on_upstream_bad_response(this, why); }
  void hold_reading(bool held) override;
  bool still_reading() const override { return user_ != nullptr && !closing_; }
  void ack_partial_response(size_t nread);
  static constexpr size_t kQuickAckBelow = 4096;  // bytes in a read: "small"
  void handshake_failed();
  int write_raw(std::string_view bytes);
  // ---- splice (upstream_splice.cc): upstream socket -> pipe -> client socket ----
  // After a read that left a long enough Content-Length body unfinished, when the user names a
  // client socket: the rest goes through a pipe, libuv reads nothing more (on_alloc hands out
  // an empty buffer, so a readable socket reaches on_read as UV_ENOBUFS: readiness only).
  void maybe_splice();
  void pump_splice();  // moves bytes until a side would block or the body is done
  void end_splice();   // the pipe goes back to the pool (closed if it still holds bytes)
  // A request body spliced into this socket by the client connection (upstream_splice.cc).
  int raw_request_fd() override;
  void await_writable() override;
  static void on_writable(uv_poll_t* p, int status, int events);

  UpstreamPool* pool_;
  std::string server_;
  UpstreamSocket socket_;  // TCP or Unix-domain, by the server's address
  uv_timer_t timer_;
  uv_connect_t connect_req_;
  ResponseReader reader_;
  UpstreamUser* user_ = nullptr;  // nullptr while idle in the pool
  std::shared_ptr<const TlsClientContext> tls_context_;
  std::string tls_host_;
  std::unique_ptr<TlsEngine> tls_;
  std::string tls_plain_, tls_net_;
  int handles_open_ = 0;
  LazyDeadline deadline_;  // when the running timeout expires
  bool timer_on_ = false;  // a timeout is running (stop_timer() only clears this)
  bool connected_ = false;
  bool reading_ = false;
  bool closing_ = false;
  bool reused_ = false;
  bool tunnel_ = false;
  Millis response_timeout_{0};        // restarted by every read once the response has begun
  std::unique_ptr<SplicePipe> pipe_;  // while a body is spliced
  int splice_to_ = -1;                // the client socket (the user's, valid while it holds us)
  uint64_t splice_left_ = 0;          // body bytes not yet moved into the pipe
  uint64_t splice_total_ = 0;         // body bytes the relay took from the parser
  bool pumping_ = false;              // pump_splice() is on the stack
  // Write readiness for a spliced request body, made at the first full socket: libuv watches a
  // descriptor once, so the poll watches a dup() of the socket (closed in on_closed).
  struct WritableWatch {
    uv_poll_t poll;
    int fd = -1;
  };
  std::unique_ptr<WritableWatch> writable_;
};

class UpstreamPool final : public UpstreamSource {
 public:
  UpstreamPool(uv_loop_t* loop, char* read_buffer, size_t read_buffer_size, WorkerMetrics* metrics);
  ~UpstreamPool();

  uv_loop_t* loop() const { return loop_; }
  // Round robin over `servers`, skipping any still in its refusal back-off while another is not.
  const std::string& pick_server(const std::vector<std::string>& servers) override;
  // An idle connection to `server`, or nullptr.
  UpstreamConnection* take_idle(const std::string& server) override;
  // Opens a new connection to a "HOST:PORT" or "unix:/path" server; nullptr when the address does
  // not resolve.
  // `tls`: the upstream's TLS context when upstream.tls is on (nullptr: plain TCP).
  UpstreamConnection* open(const std::string& server, const UpstreamConfig& config,
                           HttpParser::Limits limits, UpstreamUser* user,
                           std::shared_ptr<const TlsClientContext> tls);
  // UpstreamSource: `tls` uses the context set_tls_source() points at.
  UpstreamConnection* open(const std::string& server, const UpstreamConfig& config,
                           HttpParser::Limits limits, UpstreamUser* user, bool tls) override {
    return open(server, config, limits, user, tls && tls_source_ ? *tls_source_ : nullptr);
  }
  // The worker's upstream TLS context (replaced in place on reload); read at each open().
  void set_tls_source(const std::shared_ptr<const TlsClientContext>* tls) { tls_source_ = tls; }
  // Returns a healthy connection whose response completed. It stays pooled while the pool holds
  // fewer than idle_limit(): `max_idle` (upstream.max_idle_connections), or more when the load
  // needs more (see idle_limit). max_idle == 0 turns pooling off.
  void put_idle(UpstreamConnection* c, Millis idle_timeout, size_t max_idle);
  // UpstreamSource: only connections this pool lent come back here.
  void put_idle(UpstreamChannel* c, Millis idle_timeout, size_t max_idle) override {
    put_idle(static_cast<UpstreamConnection*>(c), idle_timeout, max_idle);
  }
  // How many idle connections the pool keeps: at least `max_idle`; above it, as many as were in
  // use at once within the last `idle_timeout` (up to kMaxIdleFromLoad). A burst of N concurrent
  // requests then finds N connections on its next round instead of opening N - max_idle anew;
  // idle_timeout reclaims them once the load falls.
  size_t idle_limit(Millis idle_timeout, size_t max_idle);
  void mark_refused(const std::string& server) override;
  void close_idle();
  SplicePipePool& pipes() { return pipes_; }

  size_t idle_count() const { return idle_.size(); }
  size_t open_count() const { return open_; }
  // Connections lent to exchanges (or connecting, or closing): open but not idle.
  size_t busy_count() const { return open_ - idle_.size(); }

 private:
  friend class UpstreamConnection;
  void forget_idle(UpstreamConnection* c);
  void note_busy();  // a connection was just lent: the load peak may have risen
  const SocketAddress* address_of(const std::string& server);

  uv_loop_t* loop_;
  WorkerMetrics* metrics_;
  char* read_buffer_;
  size_t read_buffer_size_;
  size_t next_ = 0;
  size_t open_ = 0;
  std::deque<UpstreamConnection*> idle_;  // most recently used at the back
  // Peak of busy_count() in the current load window and in the one before it (see idle_limit).
  uint64_t window_start_ms_ = 0;
  size_t peak_busy_ = 0;
  size_t previous_peak_busy_ = 0;
  std::unordered_map<std::string, SocketAddress> addresses_;
  std::unordered_map<std::string, uint64_t> refused_until_ms_;
  const std::shared_ptr<const TlsClientContext>* tls_source_ = nullptr;
  SplicePipePool pipes_;  // empty pipes for spliced bodies
};

// Back-off after a refused connection: long enough to stop hammering a dead server, short enough
// that a restarted application is used again within a second.
inline constexpr uint64_t kRefusedBackoffMs = 1000;

// Per-worker bound on the idle connections the load alone may keep (an explicit, larger
// upstream.max_idle_connections still wins). Each costs a descriptor, its object and parser, and
// the kernel's socket; the number in use is already bounded by the worker's share of
// server.max_connections, this only caps what a past burst leaves behind.
inline constexpr size_t kMaxIdleFromLoad = 4096;

}  // namespace sg
