#include "proxy_core/worker.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "proxy_core/client_connection.h"
#include "proxy_core/health_probe.h"
#include "proxy_core/net/socket_address.h"
#include "proxy_core/ops/log.h"
#include "proxy_core/session_follower.h"
#include "proxy_core/store/memory_store.h"

namespace sg {

namespace {
// How often the worker looks for idle pooled connections and other housekeeping.
constexpr uint64_t kSweepIntervalMs = 1000;
constexpr int kListenBacklog = 511;  // nginx's default; the kernel caps it at somaxconn
// Sessions examined per worker per sweep: 4 workers reclaim up to ~160k expired sessions a
// minute while spending well under a millisecond a second on it.
constexpr size_t kReclaimBudget = 1024;
}  // namespace

Worker::Worker(unsigned index, std::shared_ptr<const Config> config, GatewayState* state)
    : index_(index), config_(std::move(config)), state_(state) {
  uv_loop_init(&loop_);
  read_buffer_ = std::make_unique<char[]>(kReadBufferSize);
  pool_ =
      std::make_unique<UpstreamPool>(&loop_, read_buffer_.get(), kReadBufferSize, metrics_.get());
  pool_->set_tls_source(&tls_.upstream);
  uv_async_init(&loop_, &async_, &Worker::on_async);
  async_.data = this;
  uv_timer_init(&loop_, &sweep_);
  sweep_.data = this;
  for (size_t i = 0; i < ClientConnection::kLists; ++i)
    client_deadlines_.push_back(
        std::make_unique<DeadlineList>(&loop_, &ClientConnection::deadline_expired));
  follower_ =
      std::make_unique<SessionFollower>(&loop_, state_->session_end_bus, index_, metrics_.get());
  // Not a secret: only needs to differ between workers and runs.
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&request_id_prefix_),
                 sizeof request_id_prefix_) != 1)
    request_id_prefix_ = (static_cast<uint64_t>(getpid()) << 32) ^ uv_hrtime() ^ index_;
  static constexpr char kHex[] = "0123456789abcdef";
  uint64_t v = request_id_prefix_;
  for (int i = 15; i >= 0; --i, v >>= 4)
    request_id_[i] = kHex[v & 0xf];
  std::fill(request_id_ + 16, request_id_ + 32, '0');  // the sequence, 0 so far
}

SessionWatch* Worker::session_watch() {
  return &follower_->watch();
}

// The prefix in hex, then the sequence number in hex, counted up in place like an odometer (one
// digit changes in 15 of 16 requests): no formatting per request.
void Worker::next_request_id(std::string& out) {
  for (int i = 31; i >= 16; --i) {
    char& d = request_id_[i];
    if (d == 'f') {
      d = '0';  // carry (past the last digit the sequence wraps to 0, as a uint64_t would)
      continue;
    }
    d = d == '9' ? 'a' : static_cast<char>(d + 1);
    break;
  }
  out.assign(request_id_, sizeof request_id_);
}

Worker::~Worker() {
  join();
  // A listener never started or suspended has its descriptor here, with no handle owning it.
  for (auto& l : listeners_)
    if (l->fd >= 0) ::close(l->fd);
  if (!started_) {
    // A start that failed after this worker was built (a later listen address would not bind):
    // its loop still holds the handles the constructor made. Close them, or the loop leaks.
    uv_close(reinterpret_cast<uv_handle_t*>(&async_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&sweep_), nullptr);
    for (auto& d : client_deadlines_)
      d->close();
    follower_->close_unstarted();
    uv_run(&loop_, UV_RUN_DEFAULT);
  }
  uv_loop_close(&loop_);
}

bool Worker::open_sockets(const std::vector<std::string>& addresses, bool redirect,
                          std::vector<OpenedListener>& out, std::string& error) {
  size_t first = out.size();
  for (const std::string& text : addresses) {
    auto addr = resolve_host_port(text);
    int fd = addr ? open_reuseport_listener(*addr) : -EINVAL;
    if (fd < 0) {
      error = std::string(redirect ? "server.redirect_listen" : "server.listen") +
              ": cannot bind " + text + ": " + strerror(-fd);
      for (size_t i = first; i < out.size(); ++i)
        ::close(out[i].fd);
      out.resize(first);
      return false;
    }
    out.push_back({text, fd, redirect});
  }
  return true;
}

void Worker::set_listeners(std::vector<OpenedListener> sockets) {
  for (OpenedListener& s : sockets) {
    auto l = std::make_unique<Listener>();
    l->address = std::move(s.address);
    l->redirect = s.redirect;
    l->fd = s.fd;
    l->worker = this;
    l->tcp.data = nullptr;
    listeners_.push_back(std::move(l));
  }
}

void Worker::start_listener(Listener* l) {
  // libuv gets a duplicate: closing its handle (suspend_listener) leaves the socket with us.
  // dup(2) rather than fcntl(F_DUPFD_CLOEXEC): ThreadSanitizer intercepts dup but not fcntl, so
  // its report about a reused descriptor number lands here, in one suppressible frame (see
  // tests/tsan.supp). The process never forks: the moment before FD_CLOEXEC is harmless.
  int fd = ::dup(l->fd);
  if (fd >= 0) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  if (fd < 0) {
    if (l->state == Listener::State::kNew)
      SG_LOG_ERROR("worker %u: listen on %s: %s; retrying", index_, l->address.c_str(),
                   strerror(errno));
    l->state = Listener::State::kSuspended;  // the sweep timer tries again
    return;
  }
  uv_tcp_init(&loop_, &l->tcp);
  l->tcp.data = l;
  l->state = Listener::State::kListening;
  int r = uv_tcp_open(&l->tcp, fd);
  if (r != 0) ::close(fd);
  if (r == 0)
    r = uv_listen(reinterpret_cast<uv_stream_t*>(&l->tcp), kListenBacklog, &Worker::on_connection);
  if (r != 0)
    SG_LOG_ERROR("worker %u: listen on %s failed: %s", index_, l->address.c_str(), uv_strerror(r));
}

void Worker::close_listener(Listener* l) {
  auto* h = reinterpret_cast<uv_handle_t*>(&l->tcp);
  switch (l->state) {
    case Listener::State::kNew:
      return;  // never started: the destructor closes its socket
    case Listener::State::kListening:
      if (!uv_is_closing(h)) uv_close(h, &Worker::on_listener_closed);
      return;
    case Listener::State::kSuspending:
      l->remove = true;
      return;
    case Listener::State::kSuspended:
      ::close(l->fd);
      erase_listener(l);
      return;
  }
}

// The Listener is freed only once libuv is done with its handle.
void Worker::on_listener_closed(uv_handle_t* h) {
  auto* l = static_cast<Listener*>(h->data);
  ::close(l->fd);
  l->worker->erase_listener(l);
}

void Worker::erase_listener(Listener* l) {
  for (auto it = listeners_.begin(); it != listeners_.end(); ++it) {
    if (it->get() == l) {
      listeners_.erase(it);
      break;
    }
  }
}

// Called from libuv's accept loop: closing the handle ends that loop (nginx likewise stops
// accepting for a while when accept(2) fails with EMFILE).
void Worker::suspend_listener(Listener* l) {
  if (l->state != Listener::State::kListening) return;
  SG_LOG_WARN("worker %u: out of file descriptors: not accepting on %s for about %llu ms", index_,
              l->address.c_str(), static_cast<unsigned long long>(kSweepIntervalMs));
  l->state = Listener::State::kSuspending;
  l->paused = false;
  uv_close(reinterpret_cast<uv_handle_t*>(&l->tcp), &Worker::on_listener_suspended);
}

void Worker::on_listener_suspended(uv_handle_t* h) {
  auto* l = static_cast<Listener*>(h->data);
  if (l->remove) {
    ::close(l->fd);
    l->worker->erase_listener(l);
    return;
  }
  l->state = Listener::State::kSuspended;
}

void Worker::set_own_store(std::unique_ptr<SessionStore> store, std::function<void()> close_store,
                           std::function<void()> store_tick) {
  own_store_ = std::move(store);
  close_store_ = std::move(close_store);
  store_tick_ = std::move(store_tick);
}

void Worker::start() {
  unsigned workers = static_cast<unsigned>(config_->server.workers);
  if (workers == 0) workers = 1;
  max_connections_ = (config_->server.max_connections + workers - 1) / workers;
  started_ = true;
  std::promise<void> listening;
  std::future<void> listening_done = listening.get_future();
  thread_ = std::thread([this, &listening] { run(&listening); });
  // Readiness (sd_notify READY=1) may be announced only once every listener accepts.
  listening_done.wait();
}

void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

void Worker::run(std::promise<void>* listening) {
  for (auto& l : listeners_)
    start_listener(l.get());
  if (index_ == 0) {
    probe_ = std::make_unique<HealthProbe>(&loop_, state_);
    probe_->start(config_);
  }
  applied_config_.store(config_.get());
  listening->set_value();  // start() returns: `listening` is gone after this line
  uv_timer_start(&sweep_, &Worker::on_sweep, kSweepIntervalMs, kSweepIntervalMs);
  follower_->start([this] { return store(); });
  uv_run(&loop_, UV_RUN_DEFAULT);
  probe_.reset();
  finished_.store(true);
}

void Worker::on_connection(uv_stream_t* server, int status) {
  auto* l = static_cast<Listener*>(server->data);
  Worker* w = l->worker;
  if (status == UV_EMFILE || status == UV_ENFILE) {
    w->suspend_listener(l);
    return;
  }
  if (status < 0) {
    SG_LOG_WARN("accept: %s", uv_strerror(status));
    return;
  }
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
  c->accept_from(reinterpret_cast<uv_stream_t*>(&l->tcp), l->redirect ? nullptr : tls_.server,
                 l->redirect);
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

void Worker::post_config(std::shared_ptr<const Config> config, TlsContexts tls,
                         std::shared_ptr<const PolicyKeys> keys,
                         std::vector<OpenedListener> added) {
  {
    std::lock_guard<std::mutex> lock(mailbox_mutex_);
    if (async_closed_) {
      for (OpenedListener& s : added)
        ::close(s.fd);
      return;
    }
    mailbox_config_ = std::move(config);
    mailbox_tls_ = std::move(tls);
    mailbox_keys_ = std::move(keys);
    for (OpenedListener& s : added)
      mailbox_listeners_.push_back(std::move(s));
    uv_async_send(&async_);  // not closed: checked above, under the same lock
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
  std::vector<OpenedListener> added;
  TlsContexts tls;
  std::shared_ptr<const PolicyKeys> keys;
  bool drain, stop;
  {
    std::lock_guard<std::mutex> lock(w->mailbox_mutex_);
    config = std::move(w->mailbox_config_);
    tls = std::move(w->mailbox_tls_);
    keys = std::move(w->mailbox_keys_);
    added.swap(w->mailbox_listeners_);
    drain = w->mailbox_drain_;
    stop = w->mailbox_stop_;
    w->mailbox_drain_ = w->mailbox_stop_ = false;
  }
  if (config) {
    // New requests and connections take the new configuration; in-flight ones keep theirs.
    w->config_ = std::move(config);
    w->keys_ = std::move(keys);  // the keys that go with it
    // New connections take the new certificates; open ones keep the context they started with.
    w->tls_ = std::move(tls);
    if (w->probe_) w->probe_->set_config(w->config_);
    // Listeners that stay are untouched; removed addresses close, added ones open.
    const auto& keep = w->config_->server.listen;
    std::vector<Listener*> gone;
    for (auto& l : w->listeners_) {
      bool kept = l->redirect ? l->address == w->config_->server.redirect_listen
                              : std::find(keep.begin(), keep.end(), l->address) != keep.end();
      if (!kept) gone.push_back(l.get());
    }
    for (Listener* l : gone)
      w->close_listener(l);
  }
  if (w->draining_) {
    for (OpenedListener& s : added)
      ::close(s.fd);
    added.clear();
  }
  for (OpenedListener& s : added) {
    w->set_listeners({std::move(s)});
    w->start_listener(w->listeners_.back().get());
  }
  w->applied_config_.store(w->config_.get());  // a reload is complete once every worker is here
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
  if (!w->draining_) {
    for (auto& l : w->listeners_)
      if (l->state == Listener::State::kSuspended) w->start_listener(l.get());
  }
  // Expired sessions are reclaimed a bounded batch at a time, never by a full scan on the request
  // path. Every worker takes a share; the store walks its shards round robin.
  if (MemoryStore* store = w->state_->memory_store)
    store->reclaim_some(unix_now_ms(), kReclaimBudget);
  if (w->store_tick_ && !w->closed_) w->store_tick_();
}

void Worker::begin_drain() {
  if (draining_) return;
  draining_ = true;
  std::vector<Listener*> all_listeners;
  for (auto& l : listeners_)
    all_listeners.push_back(l.get());
  for (Listener* l : all_listeners)
    close_listener(l);
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
  if (close_store_) close_store_();  // closes its handles so that the loop can end
  if (probe_) probe_->stop();
  follower_->close();
  uv_close(reinterpret_cast<uv_handle_t*>(&sweep_), nullptr);
  for (auto& d : client_deadlines_)
    d->close();
  // Under the mailbox lock: the main thread never sends to a closed async handle.
  std::lock_guard<std::mutex> lock(mailbox_mutex_);
  async_closed_ = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&async_), nullptr);
}

}  // namespace sg
