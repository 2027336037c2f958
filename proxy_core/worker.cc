#include "proxy_core/worker.h"

#include <unistd.h>

#include <cstring>

#include "proxy_core/client_connection.h"
#include "proxy_core/health_probe.h"
#include "proxy_core/log.h"
#include "proxy_core/memory_store.h"
#include "proxy_core/socket_address.h"

namespace sg {

namespace {
// How often the worker looks for idle pooled connections and other housekeeping.
constexpr uint64_t kSweepIntervalMs = 1000;
constexpr int kListenBacklog = 511;
// Sessions examined per worker per sweep: 4 workers reclaim up to ~160k expired sessions a
// minute while spending well under a millisecond a second on it.
constexpr size_t kReclaimBudget = 1024;  // nginx's default; the kernel caps it at somaxconn
}  // namespace

Worker::Worker(unsigned index, std::shared_ptr<const Config> config, GatewayState* state)
    : index_(index), config_(std::move(config)), state_(state) {
  uv_loop_init(&loop_);
  read_buffer_ = std::make_unique<char[]>(kReadBufferSize);
  pool_ =
      std::make_unique<UpstreamPool>(&loop_, read_buffer_.get(), kReadBufferSize, metrics_.get());
  uv_async_init(&loop_, &async_, &Worker::on_async);
  async_.data = this;
  uv_timer_init(&loop_, &sweep_);
  sweep_.data = this;
}

Worker::~Worker() {
  join();
  for (auto& l : listeners_)
    if (l->fd >= 0 && !l->tcp.data) ::close(l->fd);
  uv_loop_close(&loop_);
}

bool Worker::open_listeners(std::string& error) {
  for (const std::string& text : config_->server.listen) {
    auto addr = resolve_host_port(text);
    if (!addr) {
      error = "server.listen: cannot resolve \"" + text + "\"";
      return false;
    }
    int fd = open_reuseport_listener(*addr);
    if (fd < 0) {
      error = "server.listen: cannot bind " + text + ": " + strerror(-fd);
      return false;
    }
    auto l = std::make_unique<Listener>();
    l->fd = fd;
    l->worker = this;
    l->tcp.data = nullptr;
    listeners_.push_back(std::move(l));
  }
  return true;
}

void Worker::start() {
  unsigned workers = static_cast<unsigned>(config_->server.workers);
  if (workers == 0) workers = 1;
  max_connections_ = (config_->server.max_connections + workers - 1) / workers;
  thread_ = std::thread([this] { run(); });
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::run() {
  for (auto& l : listeners_) {
    uv_tcp_init(&loop_, &l->tcp);
    l->tcp.data = l.get();
    int r = uv_tcp_open(&l->tcp, l->fd);
    if (r == 0)
      r = uv_listen(reinterpret_cast<uv_stream_t*>(&l->tcp), kListenBacklog,
                    &Worker::on_connection);
    if (r != 0) SG_LOG_ERROR("worker %u: listen failed: %s", index_, uv_strerror(r));
  }
  if (index_ == 0) {
    probe_ = std::make_unique<HealthProbe>(&loop_, state_);
    probe_->start(config_);
  }
  uv_timer_start(&sweep_, &Worker::on_sweep, kSweepIntervalMs, kSweepIntervalMs);
  uv_run(&loop_, UV_RUN_DEFAULT);
  probe_.reset();
  finished_.store(true);
}

void Worker::on_connection(uv_stream_t* server, int status) {
  auto* l = static_cast<Listener*>(server->data);
  if (status < 0) {
    SG_LOG_WARN("accept: %s", uv_strerror(status));
    return;
  }
  Worker* w = l->worker;
  if (w->draining_) return;
  if (w->connections_.size() >= w->max_connections_) {
    // Not accepting leaves the connection in libuv's hands: it stops polling this listener
    // until we accept, so the kernel backlog holds further clients (server.max_connections).
    l->paused = true;
    return;
  }
  w->accept_one(l);
}

void Worker::accept_one(Listener* l) {
  auto* c = new ClientConnection(this);
  connections_.insert(c);
  metrics_->connections_accepted.add();
  metrics_->connections_open.fetch_add(1, std::memory_order_relaxed);
  c->accept_from(reinterpret_cast<uv_stream_t*>(&l->tcp));
}

void Worker::connection_closed(ClientConnection* c) {
  connections_.erase(c);
  metrics_->connections_open.fetch_sub(1, std::memory_order_relaxed);
  if (!draining_) {
    for (auto& l : listeners_) {
      if (l->paused && connections_.size() < max_connections_) {
        l->paused = false;
        accept_one(l.get());
      }
    }
  }
  maybe_finish();
}

void Worker::post_config(std::shared_ptr<const Config> config) {
  {
    std::lock_guard<std::mutex> lock(mailbox_mutex_);
    mailbox_config_ = std::move(config);
    if (!async_closed_) uv_async_send(&async_);
  }
}

void Worker::post_drain() {
  {
    std::lock_guard<std::mutex> lock(mailbox_mutex_);
    mailbox_drain_ = true;
    if (!async_closed_) uv_async_send(&async_);
  }
}

void Worker::post_stop() {
  {
    std::lock_guard<std::mutex> lock(mailbox_mutex_);
    mailbox_stop_ = true;
    if (!async_closed_) uv_async_send(&async_);
  }
}

void Worker::on_async(uv_async_t* a) {
  auto* w = static_cast<Worker*>(a->data);
  std::shared_ptr<const Config> config;
  bool drain, stop;
  {
    std::lock_guard<std::mutex> lock(w->mailbox_mutex_);
    config = std::move(w->mailbox_config_);
    drain = w->mailbox_drain_;
    stop = w->mailbox_stop_;
    w->mailbox_drain_ = w->mailbox_stop_ = false;
  }
  if (config) {
    // New requests and connections take the new configuration; in-flight ones keep theirs.
    w->config_ = std::move(config);
    if (w->probe_) w->probe_->set_config(w->config_);
  }
  if (drain || stop) w->begin_drain();
  if (stop) {
    w->stopping_ = true;
    std::vector<ClientConnection*> all(w->connections_.begin(), w->connections_.end());
    for (ClientConnection* c : all)
      c->abort();
  }
  w->maybe_finish();
}

void Worker::on_sweep(uv_timer_t* t) {
  auto* w = static_cast<Worker*>(t->data);
  // Expired sessions are reclaimed a bounded batch at a time, never by a full scan on the request
  // path. Every worker takes a share; the store walks its shards round robin.
  if (MemoryStore* store = w->state_->memory_store)
    store->reclaim_some(unix_now_ms(), kReclaimBudget);
}

void Worker::begin_drain() {
  if (draining_) return;
  draining_ = true;
  for (auto& l : listeners_)
    if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&l->tcp)))
      uv_close(reinterpret_cast<uv_handle_t*>(&l->tcp), nullptr);
  std::vector<ClientConnection*> all(connections_.begin(), connections_.end());
  for (ClientConnection* c : all)
    c->drain();
}

void Worker::maybe_finish() {
  if (!draining_ || !connections_.empty() || closed_) return;
  close_everything();
}

void Worker::close_everything() {
  closed_ = true;
  pool_->close_idle();
  if (probe_) probe_->stop();
  uv_close(reinterpret_cast<uv_handle_t*>(&sweep_), nullptr);
  // Under the mailbox lock: the main thread never sends to a closed async handle.
  std::lock_guard<std::mutex> lock(mailbox_mutex_);
  async_closed_ = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&async_), nullptr);
}

}  // namespace sg
