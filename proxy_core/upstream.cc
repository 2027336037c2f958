#include "proxy_core/upstream.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#include "proxy_core/net/handle_closer.h"
#include "proxy_core/net/host_port.h"
#include "proxy_core/net/stream_io.h"
#include "proxy_core/ops/log.h"
#include "proxy_core/tls/tls_pump.h"

namespace sg {

UpstreamConnection::UpstreamConnection(UpstreamPool* pool, std::string server,
                                       HttpParser::Limits limits)
    : pool_(pool), server_(std::move(server)), reader_(this, limits) {
  socket_.init(pool_->loop(), is_unix_server(server_), this);
  uv_timer_init(pool_->loop(), &timer_);
  timer_.data = this;
  handles_open_ = 2;
  ++pool_->open_;
  pool_->metrics_->upstream_open.fetch_add(1, std::memory_order_relaxed);
}

int UpstreamConnection::connect(const SocketAddress& addr, Millis timeout) {
  connect_req_.data = this;
  int r = socket_.connect(&connect_req_, addr, &UpstreamConnection::on_connect);
  if (r == 0) start_timer(timeout);
  return r;
}

void UpstreamConnection::on_connect(uv_connect_t* req, int status) {
  auto* c = static_cast<UpstreamConnection*>(req->data);
  if (c->closing_) return;
  if (status == 0) {
    c->connected_ = true;
    c->resume_reading();
    if (c->tls_context_ != nullptr) {
      // The connect timeout also covers the TLS handshake; the user hears "connected" only
      // once the upstream's certificate has been verified.
      c->tls_ = std::make_unique<TlsEngine>(*c->tls_context_, c->tls_host_);
      c->tls_net_.clear();
      if (c->tls_->start_handshake(c->tls_net_) == TlsStatus::kError) {
        c->handshake_failed();
        return;
      }
      if (c->write_raw(c->tls_net_) != 0) c->handshake_failed();
      return;
    }
  }
  c->stop_timer();
  if (c->user_ != nullptr) c->user_->on_upstream_connected(c, status);
  if (status != 0) c->close();
}

void UpstreamConnection::handshake_failed() {
  SG_LOG_WARN("upstream %s: TLS: %s", server_.c_str(),
              tls_ ? std::string(tls_->error_text()).c_str() : "setup failed");
  stop_timer();
  UpstreamUser* user = user_;
  close();
  if (user != nullptr) user->on_upstream_connected(this, UV_EPROTO);
}

int UpstreamConnection::write_raw(std::string_view bytes) {
  return stream_write(socket_.stream(), bytes, &UpstreamConnection::on_write_done);
}

void UpstreamConnection::on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) {
  auto* c = static_cast<UpstreamConnection*>(h->data);
  if (c->pipe_ != nullptr) {
    *buf = uv_buf_init(nullptr, 0);  // splicing: libuv reports readiness as UV_ENOBUFS
    return;
  }
  *buf = uv_buf_init(c->pool_->read_buffer_, static_cast<unsigned>(c->pool_->read_buffer_size_));
}

void UpstreamConnection::on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
  auto* c = static_cast<UpstreamConnection*>(s->data);
  if (nread == 0) return;
  if (nread == UV_ENOBUFS && c->pipe_ != nullptr) {
    c->pump_splice();  // the upstream socket is readable
    return;
  }
  if (nread < 0) {
    if (c->tls_ != nullptr && !c->tls_->handshake_done()) {
      c->handshake_failed();
      return;
    }
    c->fail(static_cast<int>(nread));
    return;
  }
  if (c->tls_ != nullptr) {
    c->on_ciphertext(buf->base, static_cast<size_t>(nread));
    return;
  }
  if (c->user_ == nullptr) {
    // Bytes on an idle pooled connection: the upstream is out of step; never reuse it.
    c->fail(UV_EPROTO);
    return;
  }
  c->on_plaintext(buf->base, static_cast<size_t>(nread));
  c->ack_partial_response(static_cast<size_t>(nread));
}

// Many small applications (Python's http.server, CGI wrappers) write a response's head and body
// separately with Nagle's algorithm on: the body waits until the head is acknowledged, and on a
// pooled connection Linux delays that ACK by 40 ms or more, on every response (nginx shows the same
// stall). After a small read that left the response unfinished, acknowledge at once. A response
// that arrives whole, or in large reads, costs no extra system call.
void UpstreamConnection::ack_partial_response(size_t nread) {
  if (closing_ || user_ == nullptr || nread >= kQuickAckBelow || !socket_.is_tcp()) return;
  uv_os_fd_t fd;
  if (uv_fileno(socket_.handle(), &fd) != 0) return;
  int one = 1;
  (void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
}

void UpstreamConnection::fail(int status) {
  if (closing_) return;
  UpstreamUser* user = user_;
  close();
  if (user == nullptr) return;
  if (status == UV_EOF && !tunnel_ && reader_.finish_at_close()) {
    user->on_upstream_complete(this);  // a close-delimited body ends here
    return;
  }
  user->on_upstream_closed(this, status);
}

void UpstreamConnection::begin_response(bool head_request, Millis response_timeout) {
  reader_.begin(head_request);
  response_timeout_ = response_timeout;
  tunnel_ = false;
}

void UpstreamConnection::resume_response() {
  if (!closing_ && user_ != nullptr) reader_.resume();
}

void UpstreamConnection::on_plaintext(const char* data, size_t len) {
  UpstreamUser* user = user_;
  user->on_upstream_read_begin();
  if (tunnel_) {
    user->on_upstream_tunnel_data(this, data, len);
  } else {
    if (reader_.head_taken()) start_timer(response_timeout_);
    reader_.feed(data, len);
  }
  user->on_upstream_read_end();
  // After the uncork: the head and the body read so far are on their way first.
  if (user_ == user && !closing_ && !tunnel_) maybe_splice();
}

void UpstreamConnection::on_body(const char* data, size_t len) {
  if (user_ != nullptr) user_->on_upstream_body(this, data, len);
}

void UpstreamConnection::on_complete() {
  stop_timer();
  user_->on_upstream_complete(this);
}

void UpstreamConnection::hold_reading(bool held) {
  if (held) {
    pause_reading();
  } else {
    resume_reading();
  }
}

void UpstreamConnection::on_ciphertext(const char* data, size_t len) {
  auto [st, handshake_completed] = tls_feed(*tls_, data, len, tls_plain_, tls_net_);
  if (!tls_net_.empty() && write_raw(tls_net_) != 0) {
    fail(UV_EPIPE);
    return;
  }
  if (st == TlsStatus::kError) {
    if (!tls_->handshake_done() || handshake_completed) {  // it failed during the handshake
      handshake_failed();
    } else {
      fail(UV_EPROTO);
    }
    return;
  }
  if (handshake_completed) {
    stop_timer();
    if (user_ != nullptr) user_->on_upstream_connected(this, 0);
    if (closing_) return;
  }
  if (!tls_plain_.empty()) {
    if (user_ == nullptr) {
      fail(UV_EPROTO);  // application bytes on an idle pooled connection: out of step
      return;
    }
    // The user may re-enter (and even close us); the scratch is not touched again here.
    std::string plain;
    plain.swap(tls_plain_);
    on_plaintext(plain.data(), plain.size());
    if (tls_plain_.empty()) {
      plain.clear();
      tls_plain_.swap(plain);  // keep the capacity
    }
    ack_partial_response(len);
  }
  if (st == TlsStatus::kClosed && !closing_) fail(UV_EOF);
}

int UpstreamConnection::write(const uv_buf_t* bufs, unsigned count) {
  if (closing_) return UV_ECANCELED;
  if (tls_ != nullptr) {
    // stream_write copies what the kernel does not take at once, so one scratch per worker
    // thread serves every connection (no allocation per write).
    thread_local std::string net;
    net.clear();
    if (!tls_encrypt_all(*tls_, bufs, count, net)) return UV_EPROTO;
    return write_raw(net);
  }
  return stream_write(socket_.stream(), bufs, count, &UpstreamConnection::on_write_done);
}

int UpstreamConnection::write(std::string_view data) {
  uv_buf_t buf = uv_buf_init(const_cast<char*>(data.data()), static_cast<unsigned>(data.size()));
  return write(&buf, 1);
}

void UpstreamConnection::on_write_done(uv_stream_t* s, int status) {
  auto* c = static_cast<UpstreamConnection*>(s->data);
  if (c->closing_) return;
  if (status < 0) {
    c->fail(status);
    return;
  }
  if (c->user_ != nullptr && c->queued() < kWriteLowWater) c->user_->on_upstream_drained(c);
}

size_t UpstreamConnection::queued() const {
  return queued_bytes(socket_.stream());
}

void UpstreamConnection::pause_reading() {
  if (reading_ && !closing_) uv_read_stop(socket_.stream());
  reading_ = false;
}

void UpstreamConnection::resume_reading() {
  if (reading_ || closing_ || !connected_) return;
  if (uv_read_start(socket_.stream(), &UpstreamConnection::on_alloc,
                    &UpstreamConnection::on_read) == 0)
    reading_ = true;
  // A spliced body paused on a full client socket: the pipe's bytes go first. Last: the body may
  // end (and the user hand this connection back) inside this call.
  if (pipe_ != nullptr && pipe_->held() > 0) pump_splice();
}

// Restarted on every read of a response: LazyDeadline makes moving it later cheap.
void UpstreamConnection::start_timer(Millis timeout) {
  if (closing_) return;
  timer_on_ = true;
  deadline_.set(&timer_, &UpstreamConnection::on_timer, static_cast<uint64_t>(timeout.count()));
}

void UpstreamConnection::stop_timer() {
  timer_on_ = false;
}

void UpstreamConnection::on_timer(uv_timer_t* t) {
  auto* c = static_cast<UpstreamConnection*>(t->data);
  c->deadline_.fired();
  if (c->closing_ || !c->timer_on_) return;
  if (!c->deadline_.passed(&c->timer_, &UpstreamConnection::on_timer)) return;
  c->timer_on_ = false;
  if (c->user_ == nullptr) {
    c->close();  // idle too long in the pool
    return;
  }
  c->user_->on_upstream_timeout(c);
}

void UpstreamConnection::close() {
  if (closing_) return;
  closing_ = true;
  end_splice();
  if (user_ == nullptr) pool_->forget_idle(this);
  user_ = nullptr;
  close_handles();
}

void UpstreamConnection::close_handles() {
  using Closer = HandleCloser<UpstreamConnection, &UpstreamConnection::handles_open_,
                              &UpstreamConnection::on_closed>;
  Closer::close({socket_.handle(), reinterpret_cast<uv_handle_t*>(&timer_)});
  if (writable_ != nullptr) Closer::close({reinterpret_cast<uv_handle_t*>(&writable_->poll)});
}

void UpstreamConnection::on_closed(UpstreamConnection* c) {
  if (c->writable_ != nullptr) ::close(c->writable_->fd);  // the dup(): the socket's last reference
  --c->pool_->open_;
  c->pool_->metrics_->upstream_open.fetch_sub(1, std::memory_order_relaxed);
  delete c;
}

UpstreamPool::UpstreamPool(uv_loop_t* loop, char* read_buffer, size_t read_buffer_size,
                           WorkerMetrics* metrics)
    : loop_(loop),
      metrics_(metrics),
      read_buffer_(read_buffer),
      read_buffer_size_(read_buffer_size) {}

UpstreamPool::~UpstreamPool() = default;

const std::string& UpstreamPool::pick_server(const std::vector<std::string>& servers) {
  uint64_t now = uv_now(loop_);
  for (size_t tries = 0; tries < servers.size(); ++tries) {
    const std::string& s = servers[next_++ % servers.size()];
    auto it = refused_until_ms_.find(s);
    if (it == refused_until_ms_.end() || it->second <= now) return s;
  }
  return servers[next_++ % servers.size()];  // all backing off: try anyway
}

UpstreamConnection* UpstreamPool::take_idle(const std::string& server) {
  // Most recently used first: it is the least likely to have been closed by the upstream.
  for (auto it = idle_.rbegin(); it != idle_.rend(); ++it) {
    UpstreamConnection* c = *it;
    if (c->server_ != server) continue;
    // Nearly always the last one: pop_back() costs a tenth of the general erase (~90
    // instructions a request).
    if (it == idle_.rbegin()) {
      idle_.pop_back();
    } else {
      idle_.erase(std::next(it).base());
    }
    metrics_->upstream_idle.fetch_sub(1, std::memory_order_relaxed);
    c->stop_timer();
    c->reused_ = true;
    note_busy();
    return c;
  }
  return nullptr;
}

const SocketAddress* UpstreamPool::address_of(const std::string& server) {
  auto it = addresses_.find(server);
  if (it != addresses_.end()) return &it->second;
  auto addr = resolve_upstream_server(server);
  if (!addr) return nullptr;
  return &addresses_.emplace(server, *addr).first->second;
}

UpstreamConnection* UpstreamPool::open(const std::string& server, const UpstreamConfig& config,
                                       HttpParser::Limits limits, UpstreamUser* user,
                                       std::shared_ptr<const TlsClientContext> tls) {
  const SocketAddress* addr = address_of(server);
  if (addr == nullptr) return nullptr;
  auto* c = new UpstreamConnection(this, server, limits);
  c->attach(user);
  note_busy();
  if (tls != nullptr) {
    c->tls_context_ = std::move(tls);
    // The name to verify: upstream.server_name, else the host part of the server address.
    if (!config.server_name.empty()) {
      c->tls_host_ = config.server_name;
    } else {
      std::optional<HostPort> hp = split_host_port(server);
      c->tls_host_ = hp ? std::string(hp->host) : server;
    }
  }
  int r = c->connect(*addr, config.connect_timeout);
  if (r != 0) {
    SG_LOG_WARN("upstream %s: connect: %s", server.c_str(), uv_strerror(r));
    c->attach(nullptr);
    c->closing_ = true;  // never entered the idle list
    c->close_handles();
    return nullptr;
  }
  return c;
}

void UpstreamPool::note_busy() {
  peak_busy_ = std::max(peak_busy_, busy_count());
}

size_t UpstreamPool::idle_limit(Millis idle_timeout, size_t max_idle) {
  if (max_idle == 0) return 0;
  // Two windows of idle_timeout each: the peak is remembered for between one and two of them, so
  // a connection pooled for a burst is kept as long as it may be needed again and no longer than
  // the idle timer would let it live anyway.
  uint64_t now = uv_now(loop_);
  uint64_t window = std::max<uint64_t>(1, static_cast<uint64_t>(idle_timeout.count()));
  if (now - window_start_ms_ >= window) {
    previous_peak_busy_ = now - window_start_ms_ >= 2 * window ? 0 : peak_busy_;
    peak_busy_ = busy_count();
    window_start_ms_ = now;
  }
  size_t from_load = std::min(std::max(peak_busy_, previous_peak_busy_), kMaxIdleFromLoad);
  return std::max(max_idle, from_load);
}

void UpstreamPool::put_idle(UpstreamConnection* c, Millis idle_timeout, size_t max_idle) {
  c->attach(nullptr);
  if (c->closing_) return;
  if (idle_.size() >= idle_limit(idle_timeout, max_idle)) {
    c->close();
    return;
  }
  // The reader keeps the last response until begin_response resets it: an idle connection's
  // reader is never read (bytes or a close while idle drop the connection, user_ being null), and
  // the one who takes it calls begin_response before anything else. One parser reset per request.
  idle_.push_back(c);
  metrics_->upstream_idle.fetch_add(1, std::memory_order_relaxed);
  // Keep reading: an upstream that closes its side is noticed and dropped at once.
  c->resume_reading();
  c->start_timer(idle_timeout);
}

void UpstreamPool::forget_idle(UpstreamConnection* c) {
  auto it = std::find(idle_.begin(), idle_.end(), c);
  if (it != idle_.end()) {
    idle_.erase(it);
    metrics_->upstream_idle.fetch_sub(1, std::memory_order_relaxed);
  }
}

void UpstreamPool::mark_refused(const std::string& server) {
  refused_until_ms_[server] = uv_now(loop_) + kRefusedBackoffMs;
}

void UpstreamPool::close_idle() {
  while (!idle_.empty())
    idle_.back()->close();
}

}  // namespace sg
