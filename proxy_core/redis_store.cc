#include "proxy_core/redis_store.h"

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <fstream>
#include <iterator>
#include <utility>

#include "proxy_core/gateway_state.h"
#include "proxy_core/log.h"
#include "proxy_core/redis_codec.h"

namespace sg {
namespace {

// KEYS[1] old, KEYS[2] new; ARGV[1] the value after its fixed prefix, ARGV[2] the TTL in ms.
// Returns 1 when moved, 0 when the old key is gone (expired, destroyed or rotated elsewhere), -1
// when the new key is taken. The stored prefix (version, handle, created) is kept, so the handle
// survives rotation whatever the caller's record says. Scripts run atomically: no other client
// sees both keys, or neither.
static_assert(kValueFixedBytes == 25, "the rotate script splices the value at byte 25");
constexpr const char* kRotateScript =
    "local v = redis.call('GET', KEYS[1]) "
    "if not v then return 0 end "
    "if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end "
    "redis.call('DEL', KEYS[1]) "
    "redis.call('SET', KEYS[2], string.sub(v, 1, 25) .. ARGV[1], 'PX', ARGV[2]) "
    "return 1";

bool is_status_ok(const redisReply* r) {
  return r != nullptr && r->type == REDIS_REPLY_STATUS && r->len == 2 &&
         std::memcmp(r->str, "OK", 2) == 0;
}

bool starts_with(const redisReply* r, const char* prefix) {
  const size_t n = std::strlen(prefix);
  return r->len >= n && std::memcmp(r->str, prefix, n) == 0;
}

// Errors after which this connection cannot serve us: a replica after a failover (READONLY), a
// replica cut off from its master, a server loading its data set, a restarted server that now
// wants a password. A fresh connection (and discovery, with sentinels) is the remedy.
bool error_needs_reconnect(const redisReply* r) {
  return starts_with(r, "READONLY") || starts_with(r, "MASTERDOWN") || starts_with(r, "LOADING") ||
         starts_with(r, "NOAUTH");
}

// "host:port", "[v6]:port".
bool split_host_port(const std::string& address, std::string& host, int& port) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  const char* first = address.data() + colon + 1;
  const char* last = address.data() + address.size();
  auto [ptr, ec] = std::from_chars(first, last, port);
  return ec == std::errc() && ptr == last && port > 0 && port < 65536 && !host.empty();
}

bool read_password(const std::string& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  const char* ws = " \t\r\n";
  const size_t begin = out.find_first_not_of(ws);
  if (begin == std::string::npos) {
    out.clear();
    return true;
  }
  out = out.substr(begin, out.find_last_not_of(ws) - begin + 1);
  return true;
}

// Milliseconds from a monotonic clock. Not uv_now(): the loop's cached time is stale by however
// long the current iteration has run, and deadlines must count from the moment of sending.
uint64_t monotonic_ms() {
  return uv_hrtime() / 1'000'000;
}

// hiredis 0.14's libuv adapter ignores a poll error status, and libuv reports a socket error
// (a refused connect, a reset) to uv_poll only as UV_EBADF with the handle stopped: hiredis would
// never learn of it, and the connection would hang until our timeouts. These hooks replace the
// adapter's add/del functions (same struct, same handle) with a poll callback that hands an error
// to hiredis as readable, where the read (or the pending connect's SO_ERROR) reports it.
void poll_cb(uv_poll_t* handle, int status, int events) {
  auto* p = static_cast<redisLibuvEvents*>(handle->data);
  if (status < 0) events = UV_READABLE;
  if (p->context != nullptr && (events & UV_READABLE)) redisAsyncHandleRead(p->context);
  if (p->context != nullptr && (events & UV_WRITABLE)) redisAsyncHandleWrite(p->context);
}

void poll_update(void* privdata, int add, int remove) {
  auto* p = static_cast<redisLibuvEvents*>(privdata);
  p->events = (p->events | add) & ~remove;
  if (p->events != 0) {
    uv_poll_start(&p->handle, p->events, poll_cb);
  } else {
    uv_poll_stop(&p->handle);
  }
}

// redisLibuvAttach plus the hooks above.
bool attach(redisAsyncContext* ac, uv_loop_t* loop) {
  if (redisLibuvAttach(ac, loop) != REDIS_OK) return false;
  ac->ev.addRead = [](void* p) { poll_update(p, UV_READABLE, 0); };
  ac->ev.delRead = [](void* p) { poll_update(p, 0, UV_READABLE); };
  ac->ev.addWrite = [](void* p) { poll_update(p, UV_WRITABLE, 0); };
  ac->ev.delWrite = [](void* p) { poll_update(p, 0, UV_WRITABLE); };
  return true;
}

template <typename Handle>
void close_and_free(Handle* h) {
  uv_close(reinterpret_cast<uv_handle_t*>(h),
           [](uv_handle_t* handle) { delete reinterpret_cast<Handle*>(handle); });
}

}  // namespace

struct RedisStore::Pending {
  RedisStore* store;
  redisAsyncContext* ctx;  // the connection it went out on
  ReplyHandler on_reply;
  uint64_t sent_ns;      // uv_hrtime(), for the latency histogram
  uint64_t sent_ms;      // monotonic_ms(), for patience
  uint64_t deadline_ms;  // monotonic_ms() based; 0 = none (handshake commands)
  bool finished;         // on_reply already ran (timed out); the reply is awaited and dropped
  bool internal;         // handshake: sees error replies itself
};

RedisStore::RedisStore(uv_loop_t* loop, const RedisStoreConfig& cfg, Millis idle_timeout,
                       Millis absolute_timeout, WorkerMetrics* metrics)
    : loop_(loop),
      cfg_(cfg),
      idle_ms_(idle_timeout.count()),
      absolute_ms_(absolute_timeout.count()),
      timeout_ms_(static_cast<uint64_t>(std::max<int64_t>(1, cfg.timeout.count()))),
      patience_ms_(std::max<uint64_t>(4 * timeout_ms_, kMinPatience.count())),
      metrics_(metrics),
      backoff_ms_(kMinBackoff.count()),
      jitter_(static_cast<uint32_t>(uv_hrtime() ^ reinterpret_cast<uintptr_t>(this))) {
  command_timer_ = new uv_timer_t;
  phase_timer_ = new uv_timer_t;
  watch_timer_ = new uv_timer_t;
  deferred_idle_ = new uv_idle_t;
  uv_timer_init(loop_, command_timer_);
  uv_timer_init(loop_, phase_timer_);
  uv_timer_init(loop_, watch_timer_);
  uv_idle_init(loop_, deferred_idle_);
  command_timer_->data = phase_timer_->data = watch_timer_->data = deferred_idle_->data = this;
}

RedisStore::~RedisStore() {
  close();
}

void RedisStore::start() {
  if (started_ || state_ == State::kClosed) return;
  started_ = true;
  connect_next();
  if (!cfg_.sentinels.empty()) {
    uv_timer_start(
        watch_timer_, [](uv_timer_t* t) { static_cast<RedisStore*>(t->data)->watch_master(); },
        kSentinelWatchInterval.count(), kSentinelWatchInterval.count());
  }
}

// A failover with the old master still up leaves it accepting writes until Sentinel demotes it
// (about ten seconds), and those writes are lost when it resyncs. So while connected we keep
// asking the sentinels, in turn, where the master is, and move as soon as the answer changes.
void RedisStore::watch_master() {
  if (state_ != State::kReady) return;
  if (watch_ctx_ != nullptr) {
    // The previous question went unanswered for a whole interval: give up on that sentinel.
    redisAsyncContext* stuck = std::exchange(watch_ctx_, nullptr);
    stuck->data = nullptr;
    redisAsyncFree(stuck);
  }
  const std::string& address = cfg_.sentinels[watch_index_++ % cfg_.sentinels.size()];
  std::string host;
  int port = 0;
  redisAsyncContext* ac = nullptr;
  if (split_host_port(address, host, port)) ac = redisAsyncConnect(host.c_str(), port);
  if (ac == nullptr || ac->err != 0 || !attach(ac, loop_)) {
    if (ac != nullptr) redisAsyncFree(ac);
    return;
  }
  ac->data = this;
  const char* argv[] = {"SENTINEL", "get-master-addr-by-name", cfg_.master_name.c_str()};
  const size_t lengths[] = {8, 23, cfg_.master_name.size()};
  if (redisAsyncCommandArgv(ac, watch_trampoline, this, 3, argv, lengths) != REDIS_OK) {
    redisAsyncFree(ac);
    return;
  }
  watch_ctx_ = ac;
}

void RedisStore::watch_trampoline(redisAsyncContext* ac, void* r, void* privdata) {
  auto* self = static_cast<RedisStore*>(privdata);
  if (ac != self->watch_ctx_) return;  // abandoned
  self->watch_ctx_ = nullptr;
  ac->data = nullptr;
  const auto* reply = static_cast<const redisReply*>(r);
  std::string address;
  if (reply != nullptr && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
      reply->element[0]->type == REDIS_REPLY_STRING &&
      reply->element[1]->type == REDIS_REPLY_STRING) {
    std::string host(reply->element[0]->str, reply->element[0]->len);
    address = host.find(':') != std::string::npos ? "[" + host + "]" : host;
    address.append(":").append(reply->element[1]->str, reply->element[1]->len);
  }
  if (reply != nullptr) redisAsyncFree(ac);  // deferred by hiredis until this callback returns
  if (!address.empty() && self->state_ == State::kReady && address != self->server_) {
    SG_LOG_WARN("redis store: sentinels now name %s as master '%s' (was %s): moving",
                address.c_str(), self->cfg_.master_name.c_str(), self->server_.c_str());
    self->drop_connection("the master moved");
  }
}

void RedisStore::close() {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  if (metrics_ != nullptr) metrics_->redis_connected.store(0, std::memory_order_relaxed);
  if (redisAsyncContext* w = std::exchange(watch_ctx_, nullptr)) {
    w->data = nullptr;
    redisAsyncFree(w);
  }
  redisAsyncContext* c = std::exchange(ctx_, nullptr);
  redisAsyncContext* s = std::exchange(sentinel_ctx_, nullptr);
  // Freeing runs every waiting reply callback with a null reply: each completes kUnavailable.
  if (c != nullptr) {
    c->data = nullptr;
    redisAsyncFree(c);
  }
  if (s != nullptr) {
    s->data = nullptr;
    redisAsyncFree(s);
  }
  run_deferred();
  for (Pending* p : std::exchange(in_flight_, {})) {  // none expected: freeing drained them
    ReplyHandler h = p->finished ? nullptr : std::move(p->on_reply);
    delete p;
    if (h) h(nullptr);
  }
  close_and_free(command_timer_);
  close_and_free(phase_timer_);
  close_and_free(watch_timer_);
  watch_timer_ = nullptr;
  close_and_free(deferred_idle_);
  command_timer_ = phase_timer_ = nullptr;
  deferred_idle_ = nullptr;
}

bool RedisStore::usable() const {
  return state_ == State::kReady && !stalled_;
}

std::string RedisStore::key_of(const TokenHash& key) const {
  return redis_session_key(cfg_.key_prefix, key);
}

// ---- commands -------------------------------------------------------------------------------

void RedisStore::send(std::vector<std::string> args, ReplyHandler on_reply, bool internal) {
  if (state_ == State::kClosed) {
    if (metrics_ != nullptr) metrics_->redis_rejected.add();
    on_reply(nullptr);
    return;
  }
  const bool open = internal ? ctx_ != nullptr : state_ == State::kReady;
  if (!open || in_flight_.size() >= kMaxInFlight) {
    if (metrics_ != nullptr) metrics_->redis_rejected.add();
    defer([h = std::move(on_reply)] { h(nullptr); });
    return;
  }
  std::vector<const char*> argv;
  std::vector<size_t> lengths;
  argv.reserve(args.size());
  lengths.reserve(args.size());
  for (const std::string& a : args) {
    argv.push_back(a.data());
    lengths.push_back(a.size());
  }
  const uint64_t now = monotonic_ms();
  auto* p = new Pending{this,        ctx_,    std::move(on_reply),
                        uv_hrtime(), now,     internal ? 0 : now + timeout_ms_,
                        false,       internal};
  // Appends to hiredis's output buffer; the reply callback never runs inside this call.
  if (redisAsyncCommandArgv(ctx_, reply_trampoline, p, static_cast<int>(argv.size()), argv.data(),
                            lengths.data()) != REDIS_OK) {
    // The connection is going away (a pending callback of a dying connection sent this).
    if (metrics_ != nullptr) metrics_->redis_rejected.add();
    defer([h = std::move(p->on_reply)] { h(nullptr); });
    delete p;
    return;
  }
  if (metrics_ != nullptr) metrics_->redis_commands.add();
  in_flight_.push_back(p);
  // The timer runs whenever commands are in flight, set for the earliest deadline or patience.
  if (!uv_is_active(reinterpret_cast<uv_handle_t*>(command_timer_)) ||
      (p->deadline_ms != 0 && p->deadline_ms < timer_wake_ms_)) {
    arm_command_timer();
  }
}

void RedisStore::reply_trampoline(redisAsyncContext* ac, void* r, void* privdata) {
  auto* p = static_cast<Pending*>(privdata);
  p->store->complete(p, static_cast<const redisReply*>(r));
  (void)ac;
}

void RedisStore::complete(Pending* p, const redisReply* reply) {
  // Replies come in send order, so this is nearly always the front.
  if (auto it = std::find(in_flight_.begin(), in_flight_.end(), p); it != in_flight_.end())
    in_flight_.erase(it);
  if (reply == nullptr) {
    lose_context(p->ctx);  // a null reply means hiredis is freeing that connection
  } else if (p->ctx == ctx_) {
    stalled_ = false;
  }
  ReplyHandler handler = p->finished ? nullptr : std::move(p->on_reply);
  const uint64_t sent_ns = p->sent_ns;
  redisAsyncContext* ctx = p->ctx;
  const bool internal = p->internal;
  delete p;
  if (!handler) return;
  if (internal) {
    handler(reply);
    return;
  }

  if (reply == nullptr) {
    if (metrics_ != nullptr) metrics_->redis_errors.add();
    handler(nullptr);
    return;
  }
  if (metrics_ != nullptr) {
    metrics_->redis_command_duration.observe(static_cast<double>(uv_hrtime() - sent_ns) / 1e9);
  }
  if (reply->type == REDIS_REPLY_ERROR) {
    if (metrics_ != nullptr) metrics_->redis_errors.add();
    SG_LOG_DEBUG("redis store: error reply: %.*s", static_cast<int>(reply->len), reply->str);
    if (error_needs_reconnect(reply) && ctx == ctx_) {
      // Inside hiredis's callback: the free is deferred until it returns.
      drop_connection(std::string(reply->str, std::min<size_t>(reply->len, 120)).c_str());
    }
    handler(nullptr);
    return;
  }
  handler(reply);
}

void RedisStore::defer(std::function<void()> fn) {
  deferred_.push_back(std::move(fn));
  if (deferred_idle_ != nullptr && !uv_is_active(reinterpret_cast<uv_handle_t*>(deferred_idle_))) {
    uv_idle_start(deferred_idle_, [](uv_idle_t* h) {
      auto* self = static_cast<RedisStore*>(h->data);
      uv_idle_stop(h);
      self->run_deferred();
    });
  }
}

void RedisStore::run_deferred() {
  // Callbacks may defer more work: that runs on the next iteration (or in this loop, when
  // closing, so that nothing is left behind).
  while (!deferred_.empty()) {
    std::vector<std::function<void()>> batch = std::exchange(deferred_, {});
    for (auto& fn : batch)
      fn();
    if (state_ != State::kClosed) break;
  }
}

// ---- timeouts -------------------------------------------------------------------------------

void RedisStore::arm_command_timer() {
  if (command_timer_ == nullptr) return;
  if (in_flight_.empty()) {
    uv_timer_stop(command_timer_);
    return;
  }
  uint64_t wake = in_flight_.front()->sent_ms + patience_ms_;
  for (const Pending* p : in_flight_) {
    if (p->finished || p->deadline_ms == 0) continue;
    wake = std::min(wake, p->deadline_ms);  // deadlines grow in send order: the first is it
    break;
  }
  const uint64_t now = monotonic_ms();
  timer_wake_ms_ = wake;
  // The loop's clock may lag ours: then the timer fires early and on_command_timer re-arms.
  uv_timer_start(
      command_timer_, [](uv_timer_t* t) { static_cast<RedisStore*>(t->data)->on_command_timer(); },
      wake > now ? wake - now : 0, 0);
}

void RedisStore::on_command_timer() {
  const uint64_t now = monotonic_ms();
  std::vector<ReplyHandler> expired;
  for (Pending* p : in_flight_) {
    if (p->finished || p->deadline_ms == 0) continue;
    if (p->deadline_ms > now) break;
    p->finished = true;  // the reply, if it ever comes, is dropped
    expired.push_back(std::move(p->on_reply));
  }
  if (!expired.empty()) {
    if (metrics_ != nullptr) metrics_->redis_timeouts.add(expired.size());
    if (!stalled_) {
      SG_LOG_WARN("redis store: no reply from %s within %llu ms", server_.c_str(),
                  static_cast<unsigned long long>(timeout_ms_));
    }
    stalled_ = true;
  }
  if (!in_flight_.empty() && ctx_ != nullptr && in_flight_.front()->sent_ms + patience_ms_ <= now) {
    drop_connection("no reply within patience");
  }
  for (ReplyHandler& h : expired)
    h(nullptr);
  arm_command_timer();
}

// ---- connection life ------------------------------------------------------------------------

void RedisStore::schedule_reconnect() {
  if (state_ == State::kClosed) return;
  state_ = State::kIdle;
  // Jitter (x0.75 .. x1.25) keeps the workers of several gateways from reconnecting in step.
  std::uniform_int_distribution<uint64_t> spread(backoff_ms_ * 3 / 4, backoff_ms_ * 5 / 4);
  const uint64_t delay = std::min<uint64_t>(spread(jitter_), kMaxBackoff.count());
  backoff_ms_ = std::min<uint64_t>(backoff_ms_ * 2, kMaxBackoff.count());
  uv_timer_start(
      phase_timer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<RedisStore*>(t->data);
        if (self->state_ == State::kIdle) {
          self->connect_next();
        } else {
          self->on_phase_timeout();
        }
      },
      delay, 0);
}

void RedisStore::connect_next() {
  if (state_ != State::kIdle) return;
  if (cfg_.sentinels.empty()) {
    connect_to(cfg_.address);
  } else {
    sentinels_tried_ = 0;
    ask_sentinel();
  }
}

void RedisStore::ask_sentinel() {
  while (sentinels_tried_ < cfg_.sentinels.size()) {
    const std::string& address = cfg_.sentinels[sentinel_index_ % cfg_.sentinels.size()];
    std::string host;
    int port = 0;
    redisAsyncContext* ac = nullptr;
    if (split_host_port(address, host, port)) ac = redisAsyncConnect(host.c_str(), port);
    if (ac != nullptr && ac->err == 0 && attach(ac, loop_)) {
      ac->data = this;
      const char* argv[] = {"SENTINEL", "get-master-addr-by-name", cfg_.master_name.c_str()};
      const size_t lengths[] = {8, 23, cfg_.master_name.size()};
      if (redisAsyncCommandArgv(ac, sentinel_trampoline, this, 3, argv, lengths) == REDIS_OK) {
        state_ = State::kDiscovering;
        sentinel_ctx_ = ac;
        uv_timer_start(
            phase_timer_,
            [](uv_timer_t* t) { static_cast<RedisStore*>(t->data)->on_phase_timeout(); },
            patience_ms_, 0);
        return;
      }
    }
    if (!logged_down_) {
      SG_LOG_WARN("redis store: sentinel %s unreachable%s%s", address.c_str(),
                  ac != nullptr && ac->err != 0 ? ": " : "",
                  ac != nullptr && ac->err != 0 ? ac->errstr : "");
    }
    if (ac != nullptr) redisAsyncFree(ac);
    ++sentinel_index_;
    ++sentinels_tried_;
  }
  if (!logged_down_) {
    SG_LOG_WARN("redis store: no sentinel gave the address of master '%s'",
                cfg_.master_name.c_str());
    logged_down_ = true;
  }
  schedule_reconnect();
}

void RedisStore::sentinel_trampoline(redisAsyncContext* ac, void* r, void* privdata) {
  auto* self = static_cast<RedisStore*>(privdata);
  if (ac != self->sentinel_ctx_) return;  // abandoned (timeout, close)
  self->sentinel_ctx_ = nullptr;
  ac->data = nullptr;
  const auto* reply = static_cast<const redisReply*>(r);
  const std::string& sentinel =
      self->cfg_.sentinels[self->sentinel_index_ % self->cfg_.sentinels.size()];
  if (reply != nullptr) redisAsyncFree(ac);  // deferred by hiredis until this callback returns
  if (reply != nullptr && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
      reply->element[0]->type == REDIS_REPLY_STRING &&
      reply->element[1]->type == REDIS_REPLY_STRING) {
    std::string host(reply->element[0]->str, reply->element[0]->len);
    std::string address = host.find(':') != std::string::npos ? "[" + host + "]" : host;
    address.append(":").append(reply->element[1]->str, reply->element[1]->len);
    SG_LOG_DEBUG("redis store: sentinel %s names %s as master '%s'", sentinel.c_str(),
                 address.c_str(), self->cfg_.master_name.c_str());
    self->state_ = State::kIdle;
    self->connect_to(address);
    return;
  }
  if (!self->logged_down_) {
    if (reply == nullptr) {
      SG_LOG_WARN("redis store: sentinel %s unreachable: %s", sentinel.c_str(), ac->errstr);
    } else {
      SG_LOG_WARN("redis store: sentinel %s does not know master '%s'", sentinel.c_str(),
                  self->cfg_.master_name.c_str());
    }
  }
  ++self->sentinel_index_;
  ++self->sentinels_tried_;
  self->ask_sentinel();
}

void RedisStore::connect_to(const std::string& address) {
  server_ = address;
  redisAsyncContext* ac = nullptr;
  const char* problem = nullptr;
  std::string password;
  if (!cfg_.password_file.empty() &&
      (!read_password(cfg_.password_file, password) || password.empty())) {
    problem = "store.redis.password_file is unreadable or empty";
  } else if (!address.empty() && address.front() == '/') {
    ac = redisAsyncConnectUnix(address.c_str());
  } else {
    std::string host;
    int port = 0;
    if (split_host_port(address, host, port)) {
      ac = redisAsyncConnect(host.c_str(), port);
    } else {
      problem = "not host:port or a socket path";
    }
  }
  if (ac == nullptr && problem == nullptr) problem = "out of memory";
  if (ac != nullptr && ac->err != 0) problem = ac->errstr;
  if (problem == nullptr && !attach(ac, loop_)) problem = "cannot watch socket";
  if (problem != nullptr) {
    if (!logged_down_) {
      SG_LOG_WARN("redis store: cannot connect to %s: %s", address.c_str(), problem);
      logged_down_ = true;
    }
    if (ac != nullptr) redisAsyncFree(ac);
    schedule_reconnect();
    return;
  }
  ac->data = this;
  redisAsyncSetConnectCallback(ac, connect_trampoline);
  redisAsyncSetDisconnectCallback(ac, disconnect_trampoline);
  ctx_ = ac;
  state_ = State::kHandshake;
  uv_timer_start(
      phase_timer_, [](uv_timer_t* t) { static_cast<RedisStore*>(t->data)->on_phase_timeout(); },
      patience_ms_, 0);
  handshake(password);
}

// Queued at once, ahead of any command; hiredis writes it when the socket connects. The last
// step's reply makes the connection ready: ROLE (must be "master") with sentinels, else PING.
void RedisStore::handshake(const std::string& password) {
  if (!password.empty()) {
    send(
        {"AUTH", password},
        [this](const redisReply* r) { on_handshake_step(r, "AUTH", /*last=*/false); }, true);
  }
  if (cfg_.database != 0) {
    send(
        {"SELECT", std::to_string(cfg_.database)},
        [this](const redisReply* r) { on_handshake_step(r, "SELECT", /*last=*/false); }, true);
  }
  if (cfg_.sentinels.empty()) {
    send(
        {"PING"}, [this](const redisReply* r) { on_handshake_step(r, "PING", /*last=*/true); },
        true);
  } else {
    send(
        {"ROLE"}, [this](const redisReply* r) { on_handshake_step(r, "ROLE", /*last=*/true); },
        true);
  }
}

void RedisStore::on_handshake_step(const redisReply* reply, const char* what, bool last) {
  if (state_ != State::kHandshake) return;  // the connection was dropped meanwhile
  bool ok = reply != nullptr && reply->type != REDIS_REPLY_ERROR;
  const char* detail =
      reply == nullptr
          ? (ctx_ != nullptr && ctx_->errstr != nullptr ? ctx_->errstr : "connection failed")
          : "";
  std::string role;
  if (ok && std::strcmp(what, "ROLE") == 0) {
    ok = reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
         reply->element[0]->type == REDIS_REPLY_STRING;
    if (ok) role.assign(reply->element[0]->str, reply->element[0]->len);
    ok = ok && role == "master";
    if (!ok) detail = "not a master (a failover in progress?)";
  }
  if (!ok) {
    if (!logged_down_) {
      if (reply != nullptr && reply->type == REDIS_REPLY_ERROR) {
        SG_LOG_WARN("redis store: %s to %s failed: %.*s", what, server_.c_str(),
                    static_cast<int>(std::min<size_t>(reply->len, 120)), reply->str);
      } else {
        SG_LOG_WARN("redis store: %s to %s failed: %s", what, server_.c_str(), detail);
      }
      logged_down_ = true;
    }
    if (reply != nullptr) {
      drop_connection("handshake failed");  // inside hiredis's callback: the free is deferred
    }
    return;
  }
  if (last) connection_ready();
}

void RedisStore::connection_ready() {
  state_ = State::kReady;
  stalled_ = false;
  backoff_ms_ = kMinBackoff.count();
  sentinels_tried_ = 0;
  uv_timer_stop(phase_timer_);
  if (metrics_ != nullptr) {
    metrics_->redis_connected.store(1, std::memory_order_relaxed);
    if (was_ready_) metrics_->redis_reconnects.add();
  }
  if (logged_down_ || !was_ready_) {
    SG_LOG_INFO("redis store: connected to %s", server_.c_str());
  }
  was_ready_ = true;
  logged_down_ = false;
}

void RedisStore::connect_trampoline(const redisAsyncContext* ac, int status) {
  auto* self = static_cast<RedisStore*>(ac->data);
  if (self == nullptr || ac != self->ctx_ || status == REDIS_OK) return;
  // hiredis frees the context after this returns and fails the queued handshake: not here.
  const_cast<redisAsyncContext*>(ac)->data = nullptr;
  if (!self->logged_down_) {
    SG_LOG_WARN("redis store: cannot connect to %s: %s", self->server_.c_str(),
                ac->errstr != nullptr ? ac->errstr : "connect failed");
    self->logged_down_ = true;
  }
  self->ctx_ = nullptr;
  self->schedule_reconnect();
}

void RedisStore::disconnect_trampoline(const redisAsyncContext* ac, int /*status*/) {
  auto* self = static_cast<RedisStore*>(ac->data);
  if (self != nullptr) self->lose_context(const_cast<redisAsyncContext*>(ac));
}

// hiredis is freeing `ac` (the server closed it, or an I/O error): forget it, try again later.
void RedisStore::lose_context(redisAsyncContext* ac) {
  if (ac == nullptr || ac != ctx_) return;
  ac->data = nullptr;
  ctx_ = nullptr;
  if (metrics_ != nullptr) metrics_->redis_connected.store(0, std::memory_order_relaxed);
  if (!logged_down_) {
    SG_LOG_WARN("redis store: lost connection to %s%s%s", server_.c_str(),
                ac->errstr != nullptr ? ": " : "", ac->errstr != nullptr ? ac->errstr : "");
    logged_down_ = true;
  }
  schedule_reconnect();
}

void RedisStore::drop_connection(const char* why) {
  if (state_ == State::kClosed) return;
  if (!logged_down_) {
    SG_LOG_WARN("redis store: dropping connection to %s: %s", server_.c_str(), why);
    logged_down_ = true;
  }
  if (metrics_ != nullptr) metrics_->redis_connected.store(0, std::memory_order_relaxed);
  stalled_ = false;
  redisAsyncContext* c = std::exchange(ctx_, nullptr);
  redisAsyncContext* s = std::exchange(sentinel_ctx_, nullptr);
  schedule_reconnect();  // first: callbacks run by the frees below must see "not connected"
  if (c != nullptr) {
    c->data = nullptr;
    redisAsyncFree(c);  // fails its waiting commands (now, or after the current callback)
  }
  if (s != nullptr) {
    s->data = nullptr;
    redisAsyncFree(s);
  }
}

void RedisStore::on_phase_timeout() {
  if (state_ == State::kDiscovering) {
    redisAsyncContext* s = std::exchange(sentinel_ctx_, nullptr);
    if (s != nullptr) {
      s->data = nullptr;
      redisAsyncFree(s);
    }
    if (!logged_down_) {
      SG_LOG_WARN("redis store: sentinel %s did not answer within %llu ms",
                  cfg_.sentinels[sentinel_index_ % cfg_.sentinels.size()].c_str(),
                  static_cast<unsigned long long>(patience_ms_));
    }
    ++sentinel_index_;
    ++sentinels_tried_;
    ask_sentinel();
  } else if (state_ == State::kHandshake) {
    drop_connection("connect timed out");
  }
}

// ---- the store ------------------------------------------------------------------------------

void RedisStore::lookup(const TokenHash& key, int64_t now_ms, LookupCallback done) {
  send({"GET", key_of(key)}, [this, now_ms, done = std::move(done)](const redisReply* r) {
    LookupResult result;
    if (r == nullptr) {
      result.status = StoreStatus::kUnavailable;
    } else if (r->type == REDIS_REPLY_STRING) {
      SessionRecord record;
      if (!decode_session_value(std::string_view(r->str, r->len), record)) {
        // Not ours or damaged: no session (a new one replaces it), counted and logged.
        if (metrics_ != nullptr) metrics_->redis_errors.add();
        SG_LOG_WARN("redis store: undecodable session value under %s", cfg_.key_prefix.c_str());
      } else {
        // Redis's TTL already drops expired sessions; this catches clock differences between
        // gateways and the last millisecond. The key is left to its TTL.
        result.expired = session_expiry(record, now_ms, idle_ms_, absolute_ms_);
        if (result.expired == ExpiryKind::kNone) {
          result.status = StoreStatus::kOk;
          result.record = std::move(record);
        }
      }
    } else if (r->type != REDIS_REPLY_NIL) {
      result.status = StoreStatus::kUnavailable;
    }
    if (done) done(std::move(result));
  });
}

void RedisStore::create(const TokenHash& key, const SessionRecord& record, DoneCallback done) {
  const int64_t ttl = session_ttl_ms(record, unix_now_ms(), idle_ms_, absolute_ms_);
  send({"SET", key_of(key), encode_session_value(record), "NX", "PX", std::to_string(ttl)},
       [done = std::move(done)](const redisReply* r) {
         // A nil reply means the key exists: a 256-bit collision. Fail closed, replace nothing.
         if (done) done(is_status_ok(r) ? StoreStatus::kOk : StoreStatus::kUnavailable);
       });
}

void RedisStore::update(const TokenHash& key, const SessionRecord& record, DoneCallback done) {
  const int64_t ttl = session_ttl_ms(record, unix_now_ms(), idle_ms_, absolute_ms_);
  send({"SET", key_of(key), encode_session_value(record), "XX", "PX", std::to_string(ttl)},
       [done = std::move(done)](const redisReply* r) {
         StoreStatus s = StoreStatus::kUnavailable;
         if (is_status_ok(r)) {
           s = StoreStatus::kOk;
         } else if (r != nullptr && r->type == REDIS_REPLY_NIL) {
           s = StoreStatus::kNotFound;  // expired, destroyed or rotated meanwhile
         }
         if (done) done(s);
       });
}

void RedisStore::rotate(const TokenHash& old_key, const TokenHash& new_key,
                        const SessionRecord& record, DoneCallback done) {
  const int64_t ttl = session_ttl_ms(record, unix_now_ms(), idle_ms_, absolute_ms_);
  std::string value = encode_session_value(record);
  send({"EVAL", kRotateScript, "2", key_of(old_key), key_of(new_key),
        value.substr(kValueFixedBytes), std::to_string(ttl)},
       [done = std::move(done)](const redisReply* r) {
         StoreStatus s = StoreStatus::kUnavailable;
         if (r != nullptr && r->type == REDIS_REPLY_INTEGER) {
           if (r->integer == 1) s = StoreStatus::kOk;
           if (r->integer == 0) s = StoreStatus::kNotFound;
         }
         if (done) done(s);
       });
}

void RedisStore::destroy(const TokenHash& key, DoneCallback done) {
  send({"DEL", key_of(key)}, [done = std::move(done)](const redisReply* r) {
    StoreStatus s = StoreStatus::kUnavailable;
    if (r != nullptr && r->type == REDIS_REPLY_INTEGER) {
      s = r->integer > 0 ? StoreStatus::kOk : StoreStatus::kNotFound;
    }
    if (done) done(s);
  });
}

}  // namespace sg
