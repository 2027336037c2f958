#include "proxy_core/server.h"

#include <unistd.h>

#include <algorithm>

#include "proxy_core/base/clock.h"
#include "proxy_core/ops/cpu_count.h"
#include "proxy_core/ops/log.h"
#include "proxy_core/session/session_attributes.h"
#include "proxy_core/session/session_store.h"
#include "proxy_core/store/memory_store.h"
#include "proxy_core/store/pending_destroys.h"
#include "proxy_core/store/redis_expiry_sweep.h"
#include "proxy_core/store/redis_session_events.h"
#include "proxy_core/store/redis_store.h"
#include "proxy_core/worker.h"

namespace sg {

Server::Server() = default;

Server::~Server() {
  force_stop();
  join();
  if (process_audit_log() == &state_.audit_log) set_process_audit_log(nullptr);
}

unsigned Server::effective_workers(const Config& config) {
  if (config.server.workers != 0) return config.server.workers;
  return usable_cpus_here();  // "auto": the cgroup quota and the affinity mask, not host cores
}

bool check_tls(const Config& config, std::string& error) {
  Worker::TlsContexts unused;
  return load_tls(config, nullptr, unused, error);
}

// Loads the listener's and the upstream's TLS contexts for `config` (nullptr where TLS is off).
// `previous` carries session-ticket keys across a reload so that clients keep resuming.
bool load_tls(const Config& config, const TlsServerContext* previous, Worker::TlsContexts& out,
              std::string& error) {
  if (config.tls.enabled()) {
    // server.http2: ALPN offers "h2" first; the connection reads the choice after the handshake.
    AlpnPolicy alpn = config.server.http2 ? AlpnPolicy::kH2AndHttp11 : AlpnPolicy::kHttp11Only;
    out.server = TlsServerContext::load(config.tls, error, previous, alpn);
    if (!out.server) return false;
  }
  if (config.upstream.tls) {
    out.upstream = TlsClientContext::load(config.upstream, error);
    if (!out.upstream) return false;
  }
  return true;
}

SessionStore* Server::admin_store() {
  return state_.memory_store;
}

namespace {

// The embedded store for `config`, with the snapshot loaded when one is configured: a restart
// logs nobody out. A bad snapshot is reported and start-up goes on.
std::unique_ptr<MemoryStore> open_memory_store(const Config& config) {
  const SessionConfig& sc = config.session;
  // The user attribute is read at start: the index is keyed by it (a reload keeps it).
  auto memory = std::make_unique<MemoryStore>(sc.idle_timeout, sc.absolute_timeout,
                                              config.memory_store.max_sessions,
                                              fold_attribute_name(sc.user_attribute));
  if (!config.memory_store.snapshot_path.empty()) {
    SnapshotStatus s = memory->load_snapshot(config.memory_store.snapshot_path, unix_now_ms(),
                                             sc.max_attributes, sc.max_attribute_bytes);
    if (s.rejected != 0) {
      // A crafted or foreign file: its bad records were skipped, never used.
      SG_LOG_WARN("snapshot %s: %llu record(s) rejected by the record check (first: %s)",
                  config.memory_store.snapshot_path.c_str(),
                  static_cast<unsigned long long>(s.rejected), s.first_rejection.c_str());
    }
    if (s.code == SnapshotStatus::Code::kOk) {
      SG_LOG_INFO("snapshot %s: %llu session(s) loaded, %llu rejected",
                  config.memory_store.snapshot_path.c_str(),
                  static_cast<unsigned long long>(memory->stats().active),
                  static_cast<unsigned long long>(s.rejected));
    } else if (s.code != SnapshotStatus::Code::kMissing) {
      SG_LOG_ERROR("snapshot: %s (start-up continues with %llu session(s))", s.message.c_str(),
                   static_cast<unsigned long long>(memory->stats().active));
    }
  }
  return memory;
}

}  // namespace

bool Server::start(std::shared_ptr<const Config> config, std::string& error) {
  config_ = std::move(config);
  if (!state_.access_log.open(config_->log.access, config_->log.format, error)) return false;
  if (!state_.audit_log.open(config_->log.audit, error)) return false;
  set_process_audit_log(&state_.audit_log);
  if (!load_tls(*config_, nullptr, tls_, error)) return false;
  keys_ = load_policy_keys(*config_, error);
  if (keys_ == nullptr) return false;
  // Each worker learns the total from the config to size its share of max_connections.
  auto effective = std::make_shared<Config>(*config_);
  effective->server.workers = effective_workers(*config_);
  config_ = effective;
  const SessionConfig& sc = config_->session;
  end_bus_ = std::make_unique<SessionEndBus>(config_->server.workers);
  state_.session_end_bus = end_bus_.get();
  // The embedded store exists only when it is the one in use: with Redis, loading a snapshot
  // would hold sessions nobody reads.
  if (sc.store == StoreKind::kMemory) {
    std::unique_ptr<MemoryStore> memory = open_memory_store(*config_);
    state_.memory_store = memory.get();
    state_.store = memory.get();
    memory->set_end_sink(end_bus_.get());  // every removal reaches the workers' tunnels
    store_ = std::move(memory);
  }
  if (sc.store == StoreKind::kRedis)
    refused_keys_ = std::make_unique<RefusedKeys>(config_->redis_store.max_pending_destroys);
  for (unsigned i = 0; i < config_->server.workers; ++i) {
    auto w = std::make_unique<Worker>(i, config_, &state_);
    std::vector<Worker::OpenedListener> sockets;
    if (!Worker::open_sockets(config_->server.listen, false, sockets, error)) return false;
    if (!config_->server.redirect_listen.empty() &&
        !Worker::open_sockets({config_->server.redirect_listen}, true, sockets, error))
      return false;
    w->set_listeners(std::move(sockets));
    w->set_tls(tls_);
    w->set_policy_keys(keys_);
    if (sc.store == StoreKind::kRedis) {
      // One connection per worker, on the worker's own loop (created before its thread runs).
      auto redis = std::make_unique<RedisStore>(
          w->loop(), config_->redis_store, sc.idle_timeout, sc.absolute_timeout, &w->metrics(),
          sc.max_attributes, sc.max_attribute_bytes, fold_attribute_name(sc.user_attribute));
      RedisStore* r = redis.get();
      r->start();
      state_.worker_stores.push_back(r);
      // A destroy Redis does not confirm is refused here and retried (pending_destroys.h). On
      // close: one last attempt for what is pending, then the Redis connection closes.
      auto wrapped = std::make_unique<PendingDestroyStore>(w->loop(), std::move(redis),
                                                           refused_keys_.get(), &w->metrics());
      PendingDestroyStore* p = wrapped.get();
      std::shared_ptr<RedisEndSubscriber> events;
      std::shared_ptr<RedisExpirySweep> sweep;
      if (i == 0) {
        // One subscriber and one expiry sweep per process, on worker 0's loop
        // (redis_session_events.h, redis_expiry_sweep.h); the close function owns them, so they
        // live as long as the worker. The sweep stops before the store it uses closes.
        events =
            std::make_shared<RedisEndSubscriber>(w->loop(), config_->redis_store, end_bus_.get());
        events->start();
        sweep = std::make_shared<RedisExpirySweep>(r, &w->metrics());
      }
      std::function<void()> tick;
      if (sweep) tick = [sweep] { sweep->sweep(unix_now_ms()); };
      w->set_own_store(
          std::move(wrapped),
          [p, r, events, sweep] {
            if (sweep) sweep->close();
            if (events) events->close();
            p->close([r] { r->close(); });
          },
          std::move(tick));
    }
    workers_.push_back(std::move(w));
  }
  for (auto& w : workers_)
    w->start();
  SG_LOG_INFO("listening on %zu address(es) with %u worker(s)", config_->server.listen.size(),
              config_->server.workers);
  return true;
}

bool Server::apply(std::shared_ptr<const Config> config, std::string& error) {
  auto effective = std::make_shared<Config>(*config);
  // Threads and the store are fixed for the life of the process.
  if (effective_workers(*config) != workers_.size())
    SG_LOG_WARN("reload: server.workers changes need a restart; keeping %zu", workers_.size());
  effective->server.workers = static_cast<unsigned>(workers_.size());
  if (config->session.store != config_->session.store ||
      config->memory_store.max_sessions != config_->memory_store.max_sessions)
    SG_LOG_WARN("reload: session.store and store.memory.max_sessions need a restart");
  effective->session.store = config_->session.store;
  effective->memory_store.max_sessions = config_->memory_store.max_sessions;
  // The memory store's user index is keyed by the attribute named at start.
  if (fold_attribute_name(config->session.user_attribute) !=
      fold_attribute_name(config_->session.user_attribute))
    SG_LOG_WARN("reload: session.user_attribute changes need a restart");
  effective->session.user_attribute = config_->session.user_attribute;
  const RedisStoreConfig &was = config_->redis_store, &now = config->redis_store;
  if (was.address != now.address || was.database != now.database ||
      was.key_prefix != now.key_prefix || was.sentinels != now.sentinels ||
      was.master_name != now.master_name || was.password_file != now.password_file ||
      was.timeout != now.timeout || was.on_unavailable != now.on_unavailable ||
      was.max_pending_destroys != now.max_pending_destroys || was.local_cache != now.local_cache)
    SG_LOG_WARN("reload: [store.redis] changes need a restart; keeping the running settings");
  effective->redis_store = config_->redis_store;
  std::vector<std::string> added;
  for (const std::string& a : effective->server.listen)
    if (std::find(config_->server.listen.begin(), config_->server.listen.end(), a) ==
        config_->server.listen.end())
      added.push_back(a);
  // Certificates and keys are re-read; a bad one fails the whole reload and the old stay.
  Worker::TlsContexts tls;
  if (!load_tls(*effective, tls_.server.get(), tls, error)) return false;
  // The policy's key files are re-read too; one that cannot be read fails the reload.
  std::shared_ptr<const PolicyKeys> keys = load_policy_keys(*effective, error);
  if (keys == nullptr) return false;
  bool redirect_added = !effective->server.redirect_listen.empty() &&
                        effective->server.redirect_listen != config_->server.redirect_listen;
  std::vector<std::vector<Worker::OpenedListener>> sockets(workers_.size());
  auto close_all = [&] {
    for (auto& per_worker : sockets)
      for (auto& s : per_worker)
        ::close(s.fd);
  };
  for (size_t i = 0; i < workers_.size(); ++i) {
    if (!Worker::open_sockets(added, false, sockets[i], error) ||
        (redirect_added &&
         !Worker::open_sockets({effective->server.redirect_listen}, true, sockets[i], error))) {
      close_all();
      return false;
    }
  }
  if (effective->log.access != config_->log.access ||
      effective->log.format != config_->log.format) {
    if (!state_.access_log.open(effective->log.access, effective->log.format, error)) {
      close_all();
      return false;
    }
  }
  if (effective->log.audit != config_->log.audit &&
      !state_.audit_log.open(effective->log.audit, error)) {
    close_all();
    return false;
  }
  set_log_level(effective->log.level);
  config_ = effective;
  tls_ = tls;
  keys_ = keys;
  for (size_t i = 0; i < workers_.size(); ++i)
    workers_[i]->post_config(config_, tls_, keys_, std::move(sockets[i]));
  return true;
}

bool Server::config_applied() const {
  for (auto& w : workers_)
    if (!w->finished() && w->applied_config() != config_.get()) return false;
  return true;
}

void Server::begin_drain() {
  state_.draining.store(true);
  for (auto& w : workers_)
    w->post_drain();
}

void Server::force_stop() {
  for (auto& w : workers_)
    if (!w->finished()) w->post_stop();
}

bool Server::all_finished() const {
  for (auto& w : workers_)
    if (!w->finished()) return false;
  return true;
}

void Server::join() {
  for (auto& w : workers_)
    w->join();
}

std::string Server::render_metrics() const {
  std::vector<const WorkerMetrics*> views;
  for (auto& w : workers_)
    views.push_back(w->metrics_view());
  SessionFigures s;
  if (state_.memory_store != nullptr) {
    MemoryStore::Stats st = state_.memory_store->stats();
    s = {st.active,    st.created, st.expired_idle,      st.expired_absolute, st.rotated,
         st.destroyed, st.evicted, st.evicted_protected, st.records_rejected, st.markers_dropped};
  }
  return render_prometheus(views, state_.process_metrics, s,
                           readiness_problem(state_, *config_) == nullptr, state_.draining.load());
}

void Server::save_snapshot() {
  if (state_.memory_store == nullptr || config_->memory_store.snapshot_path.empty()) return;
  SnapshotStatus s = state_.memory_store->save_snapshot(config_->memory_store.snapshot_path);
  if (s.code != SnapshotStatus::Code::kOk) SG_LOG_ERROR("snapshot: %s", s.message.c_str());
}

}  // namespace sg
