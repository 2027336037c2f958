// Worker: one thread, one libuv loop, its own SO_REUSEPORT listeners and its own upstream pool.
// Connections never move between workers, so nothing on the request path takes a lock.
//
// The main thread talks to a worker only through post_*(), which hand a message over an uv_async
// handle. Listener sockets are opened on the main thread (so that a bind error stops start-up
// with a clear message) and adopted by the worker's loop.
#pragma once

#include <uv.h>

#include <atomic>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "proxy_core/config/config.h"
#include "proxy_core/exchange.h"
#include "proxy_core/exchange_services.h"
#include "proxy_core/gateway_state.h"
#include "proxy_core/http/http_date.h"
#include "proxy_core/http1_state.h"
#include "proxy_core/net/deadline_list.h"
#include "proxy_core/ops/metrics.h"
#include "proxy_core/policy_keys.h"
#include "proxy_core/session/session_store.h"
#include "proxy_core/tls/tls_context.h"
#include "proxy_core/upstream.h"

namespace sg {

class ClientConnection;
class HealthProbe;
class SessionFollower;
class SessionWatch;

class Worker final : public ExchangeServices {
 public:
  Worker(unsigned index, std::shared_ptr<const Config> config, GatewayState* state);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // A listening socket opened on the main thread for this worker.
  struct OpenedListener {
    std::string address;
    int fd = -1;
    bool redirect = false;  // server.redirect_listen: plain HTTP answering 308 to https
  };
  // Main thread: open one SO_REUSEPORT socket per address (closing them all on failure).
  static bool open_sockets(const std::vector<std::string>& addresses, bool redirect,
                           std::vector<OpenedListener>& out, std::string& error);
  // The TLS contexts in force: the listener's (nullptr = plain HTTP) and the upstream's.
  struct TlsContexts {
    std::shared_ptr<const TlsServerContext> server;
    std::shared_ptr<const TlsClientContext> upstream;
  };
  // Main thread, before start(): adopt this worker's listening sockets.
  void set_listeners(std::vector<OpenedListener> sockets);
  // Starts the thread and returns once its listeners listen (the port accepts connections).
  void start();
  void join();
  bool finished() const { return finished_.load(); }

  // Main thread, any time after start(). `added` are new listening sockets for this worker;
  // listeners whose address is not in the new config's server.listen are closed.
  // `keys`: the policy keys loaded with `config` (policy_keys.h), taken up with it.
  void post_config(std::shared_ptr<const Config> config, TlsContexts tls,
                   std::shared_ptr<const PolicyKeys> keys, std::vector<OpenedListener> added = {});
  // Any thread: the configuration this worker's loop has taken up, listeners included (the last
  // post_config() is in force once this equals it). Compared, never dereferenced.
  const Config* applied_config() const { return applied_config_.load(); }
  // Main thread, before start().
  void set_tls(TlsContexts tls) { tls_ = std::move(tls); }
  // Main thread, before start(): the policy keys loaded with the first configuration.
  void set_policy_keys(std::shared_ptr<const PolicyKeys> keys) { keys_ = std::move(keys); }
  // Main thread, before start(): this worker's own store (Redis), started on its loop.
  // `store_tick`, when set, runs on the loop once a second until the worker closes (worker 0:
  // the Redis expiry sweep, store/redis_expiry_sweep.h).
  void set_own_store(std::unique_ptr<SessionStore> store, std::function<void()> close_store,
                     std::function<void()> store_tick = {});
  // The store this worker's requests use: its own, or the shared one.
  SessionStore* store() const override { return own_store_ ? own_store_.get() : state_->store; }
  void post_drain();
  void post_stop();  // drain deadline passed: close everything now

  // Loop thread only.
  uv_loop_t* loop() { return &loop_; }
  const std::shared_ptr<const Config>& config() const override { return config_; }
  // The keys of config()'s request policy: replaced together with it.
  const std::shared_ptr<const PolicyKeys>& policy_keys() const override { return keys_; }
  // The process-wide state every worker shares (access log, readiness, upstream liveness), not
  // this worker's: it is thread-safe by itself (gateway_state.h).
  GatewayState& gateway_state() override { return *state_; }
  UpstreamPool& pool() { return *pool_; }
  UpstreamSource& upstreams() override { return *pool_; }
  // Exchanges reused across requests and connections (exchange.h).
  ExchangePool& exchanges() { return exchanges_; }
  // HTTP/1.1 parsers and buffers, borrowed by connections for a request (http1_state.h).
  Http1StatePool& http1_states() { return http1_states_; }
  // The client connections' deadlines, one list per timeout (ClientConnection::DeadlineListIndex).
  DeadlineList& client_deadlines(size_t list) { return *client_deadlines_[list]; }
  char* read_buffer() { return read_buffer_.get(); }
  size_t read_buffer_size() const { return kReadBufferSize; }
  bool draining() const { return draining_; }
  void connection_closed(ClientConnection* c);
  unsigned index() const { return index_; }
  WorkerMetrics& metrics() override { return *metrics_; }
  const std::shared_ptr<const TlsClientContext>& upstream_tls() const { return tls_.upstream; }
  // Scratch for TLS records, reused by every connection of this worker (one callback at a time).
  std::string& tls_plain_scratch() { return tls_plain_; }
  std::string& tls_net_scratch() { return tls_net_; }
  // A fresh request id: 32 hex digits, unique across workers and restarts (random prefix).
  void next_request_id(std::string& out) override;
  // The Date value for a response the gateway writes itself, from the loop's cached clock.
  std::string_view http_date() override { return http_date_.get(uv_now(&loop_)); }
  int64_t now_ms() override { return static_cast<int64_t>(uv_now(&loop_)); }
  // Any thread: read-only for /metrics.
  const WorkerMetrics* metrics_view() const { return metrics_.get(); }
  // The tunnels and long responses that end with their session (session_follower.h). Loop
  // thread only.
  SessionWatch* session_watch() override;

  // One read buffer per worker, shared by all its connections: a connection keeps only the
  // bytes it could not consume yet, so an idle keep-alive connection holds no read buffer.
  static constexpr size_t kReadBufferSize = 64 * 1024;

 private:
  struct Listener {
    std::string address;
    bool redirect = false;
    int fd = -1;  // ours for the Listener's whole life; the libuv handle holds a duplicate
    uv_tcp_t tcp;
    bool paused = false;  // at max_connections: accepting resumes when a connection closes
    // Out of file descriptors (EMFILE/ENFILE) with libuv's reserve descriptor gone or no help
    // (another worker took it; the limit is below it), libuv retries accept(2) in a tight loop
    // that only closing the handle ends: the handle is closed then
    // (`fd` keeps the socket, its port and its backlog) and the sweep timer listens again.
    enum class State { kNew, kListening, kSuspending, kSuspended } state = State::kNew;
    bool remove = false;  // close_listener() while suspending: freed once that close completes
    Worker* worker = nullptr;
  };

  void run(std::promise<void>* listening);
  static void on_async(uv_async_t* a);
  static void on_connection(uv_stream_t* server, int status);
  static void on_sweep(uv_timer_t* t);
  void accept_one(Listener* l);
  void start_listener(Listener* l);
  void close_listener(Listener* l);
  static void on_listener_closed(uv_handle_t* h);
  void suspend_listener(Listener* l);
  static void on_listener_suspended(uv_handle_t* h);
  void erase_listener(Listener* l);
  void begin_drain();
  void maybe_finish();
  void close_everything();

  unsigned index_;
  std::shared_ptr<const Config> config_;
  std::shared_ptr<const PolicyKeys> keys_;
  GatewayState* state_;
  uv_loop_t loop_;
  uv_async_t async_;
  uv_timer_t sweep_;
  std::unique_ptr<char[]> read_buffer_;
  TlsContexts tls_;
  std::unique_ptr<SessionStore> own_store_;
  std::function<void()> close_store_;
  std::function<void()> store_tick_;
  std::string tls_plain_, tls_net_;
  std::unique_ptr<WorkerMetrics> metrics_ = std::make_unique<WorkerMetrics>();
  std::unique_ptr<UpstreamPool> pool_;
  std::unique_ptr<HealthProbe> probe_;
  std::unique_ptr<SessionFollower> follower_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::unordered_set<ClientConnection*> connections_;
  ExchangePool exchanges_{this};  // idle exchanges; the connections give theirs back on close
  Http1StatePool http1_states_;   // idle HTTP/1.1 request states, likewise
  std::vector<std::unique_ptr<DeadlineList>> client_deadlines_;
  size_t max_connections_ = 0;
  uint64_t request_id_prefix_ = 0;
  char request_id_[32];  // the last id: the prefix and the sequence, in hex
  HttpDateCache http_date_{&unix_now_ms};
  bool draining_ = false;
  bool stopping_ = false;
  bool closed_ = false;
  std::thread thread_;
  bool started_ = false;  // start() ran: the thread owns the loop's handles from then on
  std::atomic<bool> finished_{false};
  std::atomic<const Config*> applied_config_{nullptr};

  std::mutex mailbox_mutex_;
  std::shared_ptr<const Config> mailbox_config_;
  std::vector<OpenedListener> mailbox_listeners_;
  TlsContexts mailbox_tls_;
  std::shared_ptr<const PolicyKeys> mailbox_keys_;
  bool mailbox_drain_ = false;
  bool mailbox_stop_ = false;
  bool async_closed_ = false;
};

}  // namespace sg
