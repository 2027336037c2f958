// Exchange: one request and its response, whatever protocol carries them. It runs the
// request-head checks that are not framing (validate_request, limits.max_body_bytes, Expect, the
// WebSocket rule, health answers, the redirect listener, the logout guard), the session gate, the
// request policy (exchange_policy.cc), the upstream request (build, connect, one retry), the
// response head and the application's directives, the tunnel decision and the access record.
//
// Contract
// - Threading: one worker's loop thread.
// - Ownership: an ExchangePool (one per worker) owns idle exchanges; a Downstream (downstream.h)
//   borrows one for one request, from begin() until it gives it back (ExchangePool::release).
//   Objects are reused as they are: reset() keeps every string's capacity, so a busy keep-alive
//   path allocates nothing per request. An idle keep-alive connection holds no exchange.
// - The exchange reaches its worker only through ExchangeServices (exchange_services.h) and its
//   upstream only through UpstreamChannel / UpstreamSource (upstream_channel.h): tests run it
//   with fakes (tests/unit/exchange_test.cc), without sockets or a loop.
// - The head given to on_request_head stays valid and unchanged until the exchange ends (the
//   HTTP/1.1 parser is paused at it; an HTTP/2 stream keeps its head). What the access record
//   and the error paths need of it (method, target, version) is copied at that time.
// - Re-entrancy: see downstream.h. Calls to the downstream that may start the next request
//   (finish, deliver_request_body) are the last thing a method does.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "proxy_core/base/free_list_bound.h"
#include "proxy_core/config/config.h"
#include "proxy_core/downstream.h"
#include "proxy_core/exchange_services.h"
#include "proxy_core/http/header_rewrite.h"
#include "proxy_core/http/set_cookie.h"
#include "proxy_core/policy/form_field_scanner.h"
#include "proxy_core/session/session_gate.h"
#include "proxy_core/upstream_channel.h"

namespace sg {

class Exchange final : public UpstreamUser, public SessionWatcher {
 public:
  explicit Exchange(ExchangeServices* services)
      : services_(services), session_watch_(services->session_watch()) {}
  ~Exchange() override;
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  // ---- called by the downstream ----
  // The first byte of a request arrived: a new exchange, reset as a whole (nothing of a previous
  // request can leak into this one's answer or log line). Takes a request id.
  void begin(Downstream* downstream);
  // The request head. `complete`: the request has no body (its end is already known).
  // `request` may be normalised in place by validate_request.
  void on_request_head(MessageHead& request, bool complete);
  void on_request_body(const char* data, size_t len);
  void on_request_end();
  // A malformed request (parse error, header timeout) or a request over a limit. `partial`, when
  // known, names the method and target for the access log.
  void reject(int status, const char* reason, const MessageHead* partial = nullptr);
  // Request-body backpressure: false while the upstream's write queue is over the high water.
  bool wants_request_body() const;
  // The client's write queue passed the high water mark / fell under the low one: stop / resume
  // reading the upstream (and its response timeout: its silence is the client's doing).
  void client_output_full();
  void client_output_drained();
  // Tunnel bytes from the client; false: the upstream is gone (the downstream closes).
  bool tunnel_from_client(std::string_view bytes);
  // The downstream closes: the upstream is given up (not reusable), the record written if due,
  // and nothing more is sent. Idempotent.
  void downstream_closed();

  // ---- a spliced request body (exchange_splice.cc, issue 17 item 4): the HTTP/1.1 connection
  // moves the rest of a Content-Length body client socket -> pipe -> upstream socket ----
  // The upstream socket to splice into now, or -1 (the copy path: TLS, chunked, a held body,
  // upstream.splice off, no upstream any more).
  int request_splice_target();
  // `n` body bytes left the client's socket: `forwarded` into the upstream's, else dropped (the
  // upstream went away while they were in the pipe).
  void on_request_spliced(size_t n, bool forwarded);
  // The upstream socket is full: wants_request_body() says false until it takes more, then
  // Downstream::request_flow_changed.
  void on_request_splice_blocked();
  // Writing into the upstream's socket failed (a libuv error): the upstream is broken.
  void on_request_splice_failed(int status);

  bool output_paused() const { return upstream_paused_; }
  bool response_started() const { return response_ != Response::kNotStarted; }
  bool in_tunnel() const { return phase_ == Phase::kTunnel; }
  const std::string& request_id() const { return request_id_; }
  // The request's session side, for tests and the client-side fuzz target.
  const SessionGate& session() const { return session_; }

  // Back to a clean state keeping the capacities (ExchangePool::release).
  void reset();

 private:
  enum class Phase : uint8_t {
    kHead,        // reading or checking the request head
    kSession,     // waiting for the session store
    kConnecting,  // waiting for an upstream connection
    kForward,     // request body and/or response in flight
    kTunnel,      // WebSocket: raw bytes both ways
  };
  enum class Response : uint8_t {
    kNotStarted,
    kStarted,  // a response head went to the client
    kDone,
  };
  // CSRF token mode, a form body without the header (exchange_policy.cc): kScanning, the body
  // is held (at most csrf.max_form_bytes) while the field is looked for; kHolding, it passed and
  // the held bytes wait for the upstream connection.
  enum class Hold : uint8_t { kNone, kScanning, kHolding };

  // exchange_request.cc: the request.
  bool check_request_head(MessageHead& req);
  bool answer_locally(const MessageHead& req);
  ClientScheme request_scheme(const MessageHead& req);
  bool refuse_logout(const MessageHead& req, bool https);
  void redirect_to_https(const MessageHead& req);
  void on_session_ready(SessionGate::Outcome outcome);
  void forward_request();
  void connect_upstream();
  void send_upstream_head();
  // exchange_policy.cc: issue 15's request policy between the session gate and the upstream.
  void run_policy();
  bool access_allowed(const MessageHead& req);
  void check_csrf_then_forward(const MessageHead& req);
  void refuse_csrf(int reason);  // a CsrfReason
  void hold_body(const char* data, size_t len);
  void form_scanned();
  bool send_held_body();
  const HeaderList* policy_headers(const MessageHead& req);

  // exchange_response.cc: UpstreamUser and the response.
  void on_upstream_connected(UpstreamChannel* c, int status) override;
  bool on_upstream_head(UpstreamChannel* c, const MessageHead& head) override;
  void on_upstream_body(UpstreamChannel* c, const char* data, size_t len) override;
  void on_upstream_complete(UpstreamChannel* c) override;
  void on_upstream_upgrade(UpstreamChannel* c, const MessageHead& head, const char* rest,
                           size_t len) override;
  void on_upstream_bad_response(UpstreamChannel* c, const char* why) override;
  void on_upstream_read_begin() override;
  void on_upstream_read_end() override;
  void on_upstream_tunnel_data(UpstreamChannel* c, const char* data, size_t len) override;
  void on_upstream_closed(UpstreamChannel* c, int status) override;
  void on_upstream_drained(UpstreamChannel* c) override;
  void on_upstream_timeout(UpstreamChannel* c) override;
  // exchange_splice.cc: a Content-Length body spliced straight to the client (issue 17 item 4).
  int upstream_splice_target(UpstreamChannel* c) override;
  void on_upstream_spliced(UpstreamChannel* c, size_t n) override;
  void on_upstream_splice_blocked(UpstreamChannel* c) override;
  void on_upstream_splice_failed(UpstreamChannel* c, int status) override;
  bool apply_directives(const MessageHead& response);
  void after_directives();
  void on_response_head(const MessageHead& resp);
  void on_response_complete();
  // An early response (the application answered before it had the whole request body): keep
  // the connection when the downstream takes the body's rest (request_rest_bound).
  bool request_rest_fits() const;
  void drop_request_rest();
  // The response is complete and the request's rest is still being read (not a tunnel, whose
  // response is "done" too).
  bool taking_request_rest() const {
    return response_ == Response::kDone && phase_ == Phase::kForward && !request_done_;
  }
  void upstream_failed(int status, UpstreamError kind, const char* why);
  void start_tunnel();
  // exchange_session_follow.cc (issue 14): a tunnel, and a response that runs long, follow their
  // session; session.status_path.
  void follow_response();
  void watch_session();
  void unfollow();
  void watch_due() override;
  void session_ended() override;
  void end_tunnel();
  void end_response();
  void audit_session_end(const char* event);
  bool answer_status();
  void finish_exchange();
  void release_upstream(bool reusable);

  // exchange_output.cc: local answers and the access record.
  const HeaderList& response_extra(const HeaderList* more);
  void send_local(int status, std::string_view body, bool close, const HeaderList* extra = nullptr,
                  std::string_view content_type = kPlainText);
  void log_exchange();
  void note_request(const MessageHead& req);  // method, target, version for the record

  ExchangeServices* services_;
  SessionWatch* const session_watch_;  // services_->session_watch(), fixed for the worker's life
  Downstream* downstream_ = nullptr;
  std::shared_ptr<const Config> config_;    // taken at each request: reloads apply to new ones
  std::shared_ptr<const PolicyKeys> keys_;  // taken with config_
  const MessageHead* request_ = nullptr;    // the downstream's, valid until the end (see above)
  UpstreamChannel* upstream_ = nullptr;

  // Per-exchange state, reset as a whole by begin() (the strings keep their capacity).
  Phase phase_ = Phase::kHead;
  Response response_ = Response::kNotStarted;
  Hold hold_ = Hold::kNone;
  BodyFraming request_framing_ = BodyFraming::kNone;
  bool closed_ = false;        // the downstream closed: nothing more goes out
  bool request_done_ = false;  // the request's end was seen
  bool close_after_ = false;   // no keep-alive after this exchange
  bool head_request_ = false;
  bool tunnel_requested_ = false;
  bool expect_continue_ = false;
  bool retried_ = false;
  bool rejected_ = false;         // a malformed request: what was read after it is dropped
  bool upstream_paused_ = false;  // reading from the upstream stopped for client backpressure
  bool request_splice_blocked_ = false;  // a spliced request body waits for the upstream socket
  bool in_directives_call_ = false;
  bool directives_answered_ = false;
  bool directives_running_ = false;  // from apply_directives to on_response_head
  int64_t follow_since_ms_ = 0;      // services_->now_ms() when the request went upstream
  int status_ = 0;
  int version_major_ = 1;
  int version_minor_ = 1;
  int64_t started_ms_ = 0;
  uint64_t started_hr_ = 0;  // 0 once the exchange is logged
  uint64_t upstream_started_hr_ = 0;
  double upstream_ms_ = -1;
  uint64_t request_body_bytes_ = 0;
  uint64_t response_body_bytes_ = 0;
  uint64_t content_length_ = 0;
  std::string request_id_;
  std::string method_;
  std::string target_;
  std::string referer_;        // combined access log only
  std::string user_agent_;     // combined access log only
  std::string upstream_head_;  // kept until a response head arrives, for one retry
  std::string chunk_scratch_;  // chunk size lines of a re-chunked request body
  HeaderList extra_;           // scratch for response_extra()
  // Issue 15 (exchange_policy.cc).
  std::string csrf_token_;  // token mode: this request's session's CSRF token (empty: none)
  HeaderList policy_headers_;
  std::optional<FormFieldScanner> form_scan_;
  std::string held_body_;  // decoded request body held while the CSRF token is looked for
  SessionGate session_;
};

// A bounded per-worker free list of exchanges. Loop thread only. The bound is `max_free`, or
// above it as many as were in use at once lately (base/free_list_bound.h: a fixed 64 freed and
// rebuilt exchanges every loop turn at 200 connections). The most recently given back is handed
// out first (warm in the cache).
class ExchangePool {
 public:
  explicit ExchangePool(ExchangeServices* services, size_t max_free = kMaxFree)
      : services_(services), bound_(max_free) {}
  // An exchange for `downstream`, reused when one is free; begin() it next.
  Exchange* acquire();
  // Gives `e` back (reset, kept while fewer than max_free are free, else freed).
  void release(Exchange* e);
  size_t free_count() const { return free_.size(); }

  static constexpr size_t kMaxFree = 64;  // the floor: more when the load used more at once

 private:
  ExchangeServices* services_;
  FreeListBound bound_;
  std::vector<std::unique_ptr<Exchange>> free_;
};

}  // namespace sg
