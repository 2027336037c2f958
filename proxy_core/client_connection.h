// ClientConnection: one accepted client socket speaking HTTP/1.1, and the exchanges (request ->
// upstream -> response) that run on it, one at a time, in order (pipelined requests wait in
// the unparsed bytes). Each request is an Exchange (exchange.h), borrowed from the worker's
// ExchangePool at the first byte of the request and given back when the connection goes idle;
// this class is its Downstream (downstream.h). The request parser, the unparsed bytes and the
// output scratch (Http1State, http1_state.h) are borrowed with it: an idle keep-alive connection
// holds only its socket, a link in its worker's deadline lists and a few words (issue 17: memory
// per idle connection).
//
// Two concerns, in separate files so that another protocol handler can sit on the same
// transport later:
// - the transport (client_connection.cc, client_output.cc): the socket, TLS, corked writes and
//   write backpressure, reading on/off, the timers, and the closing sequence (flush, FIN,
//   linger, close);
// - HTTP/1.1 (client_http1.cc): the request parser, pipelining, framing of the response
//   (Content-Length, chunked re-framing, close-delimited for HTTP/1.0 clients, Connection:
//   close), the keep-alive decision, and the raw WebSocket tunnel.
//
// Owner: its Worker (loop thread only). Freed in the close callback of its last handle, never
// inside one of its own callbacks; its exchange goes back to the pool there too. Bytes flow with
// backpressure both ways: when the receiving side's write queue passes kWriteHighWater, reading
// from the sending side stops until it drains below kWriteLowWater.
#pragma once

#include <uv.h>

#include <memory>
#include <string>
#include <vector>

#include "proxy_core/config/config.h"
#include "proxy_core/downstream.h"
#include "proxy_core/h2_connection.h"
#include "proxy_core/http1_state.h"
#include "proxy_core/net/deadline_list.h"
#include "proxy_core/session/token.h"
#include "proxy_core/tls/tls_engine.h"

namespace sg {

class Worker;
class Exchange;
class TlsServerContext;

class ClientConnection final : public Downstream, private H2Transport {
 public:
  explicit ClientConnection(Worker* worker);
  // Accepts from `server` and starts reading. Returns false (and closes) on failure.
  // `tls`: speak TLS with this context (nullptr: plain HTTP). `redirect_only`: the plain
  // redirect listener (308 to https for everything but health checks).
  bool accept_from(uv_stream_t* server, std::shared_ptr<const TlsServerContext> tls,
                   bool redirect_only);

  // Drain: an idle connection closes now; a busy one closes after its current exchange.
  void drain();
  // Drain deadline passed: close now, whatever is in flight.
  void abort() override;
  // The exchange's session ended (Downstream::cancel): close now, nothing queued goes out.
  void cancel() override;

  // The worker's deadline lists call this when a connection's deadline passes.
  static void deadline_expired(DeadlineLink* link);
  // Which of the worker's deadline lists a timer kind goes in: one per timeout, so that each list
  // stays in order by appending (deadline_list.h).
  enum DeadlineListIndex : size_t { kIdleList, kHeaderList, kLingerList, kHandshakeList, kLists };

 private:
  enum class State {
    kIdle,     // waiting for the first byte of a request
    kHead,     // reading a request head
    kWaiting,  // the exchange decides (session store, policy, upstream connect); reading only
               // after a whole request
    kForward,  // request body and/or response in flight
    kTunnel,   // WebSocket: raw bytes both ways
    kClosing,  // flushing and closing
  };
  enum class TimerKind { kNone, kIdle, kHeader, kActivity, kLinger, kHandshake };

  ~ClientConnection();

  // ---- transport (client_connection.cc, client_output.cc) ----
  static void on_alloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf);
  static void on_write_done(uv_stream_t* s, int status);
  static void on_shutdown(uv_shutdown_t* req, int status);
  static void on_closed(ClientConnection* c);  // the socket closed (close_now())
  void on_client_eof(int status);
  void set_reading(bool want);
  void arm_timer(TimerKind kind);
  bool write_client(std::string_view data);
  // `stable`: the bytes stay valid until the cork ends (upstream read buffer, constants), so a
  // corked write need not copy them.
  bool write_client(const uv_buf_t* bufs, unsigned count, bool stable = false);
  int write_raw(std::string_view bytes);  // bytes as they go on the wire (ciphertext with TLS)
  void flush_cork();
  static constexpr size_t kMaxCorked = 64;  // pieces per writev (IOV_MAX is 1024)
  void close_after_flush();
  void close_now();

  // ---- HTTP/2 (client_h2.cc) ----
  // Every plaintext byte from the client: to the H2Connection once HTTP/2 is chosen, to the
  // h2c preface check while it may still be (server.http2_cleartext), else to HTTP/1.1.
  void on_client_bytes(const char* data, size_t len);
  void start_h2();
  bool h2_write(std::string_view bytes) override;
  size_t h2_write_queued() const override;
  void h2_set_reading(bool on) override;
  void h2_finished() override;

  // ---- HTTP/1.1 (client_http1.cc) ----
  static HttpParser::Limits request_limits(const Config& c);
  void on_plaintext(const char* data, size_t len);
  void process(const char* data, size_t len);
  void process_pending();
  void update_reading();
  void on_request_head(bool complete);  // complete: the message had no body
  void on_request_complete();
  void reject(int status, const char* reason);
  void release_exchange();
  // The HTTP/1.1 state of the request in progress (http1_state.h): borrowed at its first byte.
  Http1State& h1();
  void release_h1();
  size_t pending_size() const { return h1_ != nullptr ? h1_->pending.size() : 0; }
  bool has_pending() const { return pending_size() != 0; }

  // Downstream, for the current exchange (client_http1.cc).
  const ClientFacts& client() const override { return facts_; }
  bool draining() const override { return draining_; }
  void start_response(const ResponseHead& head) override;
  void send_body(const char* data, size_t len, bool stable) override;
  void end_response() override;
  void send_local(const LocalResponse& response) override;
  void send_continue() override;
  void deliver_request_body() override;
  void request_flow_changed() override;  // client_splice.cc
  void set_client_timer(ClientTimer timer) override;
  void touch_client_timer() override;
  void cork() override { ++cork_depth_; }
  void uncork() override {
    if (--cork_depth_ == 0) flush_cork();
  }
  void finish(bool keep_alive) override;
  void start_tunnel() override;
  // Splice (client_output.cc): the socket, when a Content-Length body may go to it raw now.
  int raw_body_fd() override;
  void await_writable() override;
  static void on_writable(uv_poll_t* p, int status, int events);

  // ---- a spliced request body (client_splice.cc, issue 17 item 4) ----
  // After an early response, the most of a Content-Length body's rest read to keep the
  // connection (forwarded to a still usable upstream, else dropped); a larger rest closes it.
  static constexpr uint64_t kRequestRestBound = 1 << 20;
  uint64_t request_rest_bound() const override { return kRequestRestBound; }
  bool splicing_request() const { return h1_ != nullptr && h1_->body_pipe != nullptr; }
  // After a parse that left a Content-Length body at least kSpliceMinBytes short: a pipe, when
  // the exchange names an upstream socket. The pump then runs on the socket's readiness.
  void maybe_splice_request();
  void pump_request_body();   // moves bytes until a side would block or the body is done
  void end_request_splice();  // the pipe goes back to the pool (closed if it holds bytes)
  void end_spliced_body();    // every byte went around the parser: the request ends

  Worker* worker_;
  std::shared_ptr<const Config> config_;  // taken at each request: reloads apply to new requests
  uv_tcp_t tcp_;
  std::unique_ptr<uv_shutdown_t> shutdown_req_;  // made by close_after_flush(): rare, and big
  int handles_open_ = 0;
  State state_ = State::kIdle;
  TimerKind timer_kind_ = TimerKind::kNone;
  // When timer_kind_ expires: a link in one of the worker's deadline lists, not a uv_timer_t
  // (152 bytes) of its own.
  DeadlineLink deadline_;
  bool reading_ = false;
  bool closing_ = false;
  bool draining_ = false;
  bool lingering_ = false;
  bool linger_ = false;           // decided in close_after_flush()
  bool client_eof_ = false;       // the client half-closed after a complete request
  bool pumping_request_ = false;  // pump_request_body() is on the stack
  // The current request, as HTTP/1.1 sees it (the exchange has the rest).
  bool request_done_ = false;      // the parser saw the end of the request
  bool response_started_ = false;  // a response head (or a local answer) went out
  bool close_after_ = false;       // HTTP/1.1's own reasons not to reuse the connection
  bool client_http11_ = false;
  BodyFraming response_framing_ = BodyFraming::kNone;

  std::shared_ptr<const TlsServerContext> tls_context_;  // keeps the context alive for tls_
  std::unique_ptr<TlsEngine> tls_;
  ClientFacts facts_;
  TokenDigestCache token_digests_;  // facts_.token_digests points here
  std::string peer_ip_;             // facts_.peer_ip views it
  Exchange* exchange_ = nullptr;    // the current request's, from the worker's ExchangePool
  // HTTP/2, once chosen: owns the streams and their exchanges; released by close_now().
  H2Connection* h2_ = nullptr;
  bool sniff_h2c_ = false;  // a plain listener with http2_cleartext, no byte seen yet
  // The request in progress's parser, unparsed bytes, output scratch and corked writes; null
  // while idle (and on HTTP/2). Borrowed from the worker's Http1StatePool.
  Http1State* h1_ = nullptr;
  int cork_depth_ = 0;
  // Write readiness for spliced bodies, made at the first full socket: libuv watches a
  // descriptor once, so the poll watches a dup() of the socket (closed in on_closed).
  struct WritableWatch {
    uv_poll_t poll;
    int fd = -1;
  };
  std::unique_ptr<WritableWatch> writable_;
};

}  // namespace sg
