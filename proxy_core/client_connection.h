// ClientConnection: one accepted client socket and the exchanges (request -> upstream ->
// response) that run on it, one at a time, in order (pipelined requests wait in `pending_`).
//
// Owner: its Worker (loop thread only). Freed in the close callback of its last handle, never
// inside one of its own callbacks. Bytes flow with backpressure both ways: when the receiving
// side's write queue passes kWriteHighWater, reading from the sending side stops until it drains
// below kWriteLowWater.
#pragma once

#include <uv.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "proxy_core/config/config.h"
#include "proxy_core/http/header_rewrite.h"
#include "proxy_core/http/http_parser.h"
#include "proxy_core/http/set_cookie.h"
#include "proxy_core/net/lazy_deadline.h"
#include "proxy_core/policy/form_field_scanner.h"
#include "proxy_core/policy_keys.h"
#include "proxy_core/session/session_gate.h"
#include "proxy_core/tls/tls_engine.h"
#include "proxy_core/upstream.h"

namespace sg {

class Worker;

class ClientConnection final : public UpstreamUser {
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
  void abort();

 private:
  enum class State {
    kIdle,          // waiting for the first byte of a request
    kHead,          // reading a request head
    kSession,       // waiting for the session store
    kUpstreamWait,  // connecting to the upstream
    kForward,       // request body and/or response in flight
    kTunnel,        // WebSocket: raw bytes both ways
    kClosing,       // flushing and closing
  };
  enum class TimerKind { kNone, kIdle, kHeader, kActivity, kLinger, kHandshake };

  ~ClientConnection() override = default;

  // Reading and parsing.
  static void on_alloc(uv_handle_t* h, size_t suggested, uv_buf_t* buf);
  static void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf);
  static void on_write_done(uv_stream_t* s, int status);
  static void on_timer(uv_timer_t* t);
  static void on_shutdown(uv_shutdown_t* req, int status);
  static void on_closed(ClientConnection* c);  // both handles closed (close_now())
  void on_plaintext(const char* data, size_t len);
  void on_client_eof(int status);
  void process(const char* data, size_t len);
  void process_pending();
  void update_reading();
  void arm_timer(TimerKind kind);

  // The request.
  void on_request_head(bool complete);  // complete: the message had no body
  void on_session_ready(SessionGate::Outcome outcome);
  // client_policy.cc: issue 15's request policy between the session gate and the upstream.
  void run_policy();
  bool access_allowed(const MessageHead& req);
  void check_csrf_then_forward(const MessageHead& req);
  void refuse_csrf(int reason);  // a CsrfReason
  void hold_body(const char* data, size_t len);
  void form_scanned();
  bool send_held_body();
  const HeaderList* policy_headers(const MessageHead& req);
  void forward_request();
  void connect_upstream();
  void send_upstream_head();
  void on_request_body(const char* data, size_t len);
  void on_request_complete();
  bool answer_locally(const MessageHead& req);
  ClientScheme request_scheme(const MessageHead& req);
  bool refuse_logout(const MessageHead& req, bool https);
  void redirect_to_https(const MessageHead& req);

  // The response.
  void on_upstream_connected(UpstreamConnection* c, int status) override;
  bool on_upstream_head(UpstreamConnection* c, const MessageHead& head) override;
  void on_upstream_body(UpstreamConnection* c, const char* data, size_t len) override;
  void on_upstream_complete(UpstreamConnection* c) override;
  void on_upstream_upgrade(UpstreamConnection* c, const MessageHead& head, const char* rest,
                           size_t len) override;
  void on_upstream_bad_response(UpstreamConnection* c, const char* why) override;
  void on_upstream_read_begin() override { ++cork_depth_; }
  void on_upstream_read_end() override { uncork(); }
  void on_upstream_tunnel_data(UpstreamConnection* c, const char* data, size_t len) override;
  void on_upstream_closed(UpstreamConnection* c, int status) override;
  void on_upstream_drained(UpstreamConnection* c) override;
  void on_upstream_timeout(UpstreamConnection* c) override;
  bool apply_directives(const MessageHead& response);
  void after_directives();
  void on_response_head(const MessageHead& resp);
  void on_response_body(const char* data, size_t len);
  void on_response_complete();
  void upstream_failed(int status, UpstreamError kind, const char* why);
  void finish_exchange();
  void start_tunnel();

  // Output.
  bool write_client(std::string_view data);
  // `stable`: the bytes stay valid until the cork ends (upstream read buffer, constants), so a
  // corked write need not copy them.
  bool write_client(const uv_buf_t* bufs, unsigned count, bool stable = false);
  int write_raw(std::string_view bytes);  // bytes as they go on the wire (ciphertext with TLS)
  const HeaderList& response_extra(const HeaderList* more);
  void flush_cork();
  void uncork();
  struct CorkGuard {
    explicit CorkGuard(ClientConnection* c) : c(c) { ++c->cork_depth_; }
    ~CorkGuard() { c->uncork(); }
    ClientConnection* c;
  };
  struct CorkedPiece {
    const char* external;  // stable bytes, or nullptr: `offset` into corked_bytes_
    size_t offset;
    size_t length;
  };
  static constexpr size_t kMaxCorked = 64;  // pieces per writev (IOV_MAX is 1024)
  void send_local(int status, std::string_view body, bool close, const HeaderList* extra = nullptr,
                  std::string_view content_type = kPlainText);
  void reject(int status, const char* reason);
  void log_exchange();

  // Closing.
  void close_after_flush();
  void close_now();
  void release_upstream(bool reusable);

  Worker* worker_;
  std::shared_ptr<const Config> config_;    // taken at each request: reloads apply to new requests
  std::shared_ptr<const PolicyKeys> keys_;  // taken with config_
  uv_tcp_t tcp_;
  uv_timer_t timer_;
  uv_shutdown_t shutdown_req_;
  int handles_open_ = 0;
  State state_ = State::kIdle;
  TimerKind timer_kind_ = TimerKind::kNone;
  LazyDeadline deadline_;  // when timer_kind_ expires
  bool reading_ = false;
  bool closing_ = false;
  bool draining_ = false;
  bool lingering_ = false;
  bool linger_ = false;  // decided in close_after_flush()

  std::shared_ptr<const TlsServerContext> tls_context_;  // keeps the context alive for tls_
  std::unique_ptr<TlsEngine> tls_;
  bool redirect_only_ = false;
  HeaderList extra_;  // scratch for response_extra()
  HttpParser request_parser_;
  std::string pending_;  // client bytes read but not yet parsed (pipelining, upstream connect)
  std::string out_;      // scratch for heads and chunk framing
  std::string peer_ip_;
  std::string request_id_;
  bool peer_trusted_ = false;
  // Issue 15 (client_policy.cc), per exchange; the strings keep their capacity.
  std::string csrf_token_;  // token mode: this request's session's CSRF token (empty: none)
  HeaderList policy_headers_;
  std::optional<FormFieldScanner> form_scan_;
  std::string held_body_;  // decoded request body held while the CSRF token is looked for

  bool client_eof_ = false;  // the client half-closed after a complete request
  int cork_depth_ = 0;
  std::vector<CorkedPiece> corked_;
  std::string corked_bytes_;

  // The current exchange: one request and its response. Reset as a whole when the first byte of
  // a request arrives (process()), so nothing of the previous exchange can leak into this one's
  // answer or access-log line.
  struct ExchangeState {
    enum class Response : uint8_t {
      kNotStarted,
      kStarted,  // a response head went to the client
      kDone,
    };
    UpstreamConnection* upstream = nullptr;
    int64_t started_ms = 0;
    uint64_t started_hr = 0;  // 0 once the exchange is logged
    uint64_t upstream_started_hr = 0;
    double upstream_ms = -1;
    uint64_t request_body_bytes = 0;
    uint64_t response_body_bytes = 0;
    int status = 0;
    BodyFraming request_framing = BodyFraming::kNone;
    BodyFraming response_framing = BodyFraming::kNone;
    Response response = Response::kNotStarted;
    bool request_done = false;
    bool close_after = false;  // no keep-alive after this exchange
    bool head_request = false;
    bool client_http11 = false;
    bool tunnel_requested = false;
    bool expect_continue = false;
    bool retried = false;
    bool upstream_paused = false;  // reading from the upstream stopped for client backpressure
    bool in_directives_call = false;
    bool directives_answered = false;
    // CSRF token mode, a form body without the header (client_policy.cc): kScanning, the body is
    // held (at most csrf.max_form_bytes) while the field is looked for; kHolding, it passed and
    // the held bytes wait for the upstream connection.
    enum class Hold : uint8_t { kNone, kScanning, kHolding } hold = Hold::kNone;
  };
  using Response = ExchangeState::Response;
  ExchangeState ex_;
  std::string
      upstream_head_;  // kept until a response head arrives, for one retry (capacity reused)
  SessionGate session_;
};

}  // namespace sg
