// Server: the whole gateway process minus main(): the shared state, the workers, reload and
// drain. gateway/main.cc owns one, feeds it signals, and exits when it says it is done.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "proxy_core/config/config.h"
#include "proxy_core/gateway_state.h"
#include "proxy_core/session/session_end_bus.h"
#include "proxy_core/store/pending_destroys.h"
#include "proxy_core/worker.h"

namespace sg {

class Worker;
class SessionStore;

// Loads the TLS contexts `config` asks for (certificates parse, keys match): what --check runs
// beyond the loader, so that a key that would fail at start-up fails the check too.
bool check_tls(const Config& config, std::string& error);
bool load_tls(const Config& config, const TlsServerContext* previous, Worker::TlsContexts& out,
              std::string& error);

class Server {
 public:
  Server();
  ~Server();

  // Opens listeners and starts the workers. On failure `error` says why and nothing runs.
  bool start(std::shared_ptr<const Config> config, std::string& error);
  // Applies a validated configuration to new requests and connections: opens listeners for
  // added addresses, closes removed ones. False (nothing changed) when a new address cannot be
  // bound. server.workers and the session store cannot change without a restart (logged).
  bool apply(std::shared_ptr<const Config> config, std::string& error);
  // True once every worker has taken up the configuration of the last start() or apply(),
  // listeners included (a worker that has finished counts as done). Polled by main to announce
  // the end of a reload (sd_notify READY=1).
  bool config_applied() const;
  // server.drain_delay: readiness turns to 503 while the workers go on accepting and serving.
  void announce_drain() { state_.draining.store(true); }
  // Stops accepting, turns readiness to 503, lets in-flight requests finish.
  void begin_drain();
  // Drain deadline passed: close whatever is still open.
  void force_stop();
  bool all_finished() const;
  void join();
  // Writes the memory store's snapshot when snapshot_path is set (periodically and at exit).
  void save_snapshot();
  // Any thread: the Prometheus text of every worker's and the store's figures.
  std::string render_metrics() const;
  GatewayState& state() { return state_; }
  // The memory store for the admin listener's /sessions API (it is thread-safe); null with Redis,
  // where the AdminServer keeps a RedisStore of its own on the main loop.
  SessionStore* admin_store();
  const std::shared_ptr<const Config>& config() const { return config_; }
  static unsigned effective_workers(const Config& config);

 private:
  GatewayState state_;
  std::shared_ptr<const Config> config_;
  std::unique_ptr<SessionStore> store_;
  // Redis: keys whose destroy is not confirmed yet, refused by every worker (declared before
  // workers_: their stores use it until they are destroyed).
  std::unique_ptr<RefusedKeys> refused_keys_;
  // Session ends for every worker's tunnels (issue 14), one inbox per worker: declared before
  // workers_, which attach to it, and after store_, which publishes to it.
  std::unique_ptr<SessionEndBus> end_bus_;
  Worker::TlsContexts tls_;
  std::shared_ptr<const PolicyKeys> keys_;  // loaded with config_ (policy_keys.h)
  std::vector<std::unique_ptr<Worker>> workers_;
};

}  // namespace sg
