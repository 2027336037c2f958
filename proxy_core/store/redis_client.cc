// RedisClient's command machinery: sending, replies in order, deadlines, EVALSHA and close. The
// contract is in redis_client.h.
#include "proxy_core/store/redis_client.h"

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <utility>

#include "proxy_core/ops/log.h"

namespace sg {
namespace {

bool starts_with(const redisReply* r, const char* prefix) {
  const size_t n = std::strlen(prefix);
  return r->len >= n && std::memcmp(r->str, prefix, n) == 0;
}

bool is_error(const redisReply* r, const char* prefix) {
  return r != nullptr && r->type == REDIS_REPLY_ERROR && starts_with(r, prefix);
}

// Errors after which this connection cannot serve us: a replica after a failover (READONLY), a
// replica cut off from its master, a server loading its data set, a restarted server that now
// wants a password. A fresh connection (and discovery, with sentinels) is the remedy.
bool error_needs_reconnect(const redisReply* r) {
  return starts_with(r, "READONLY") || starts_with(r, "MASTERDOWN") || starts_with(r, "LOADING") ||
         starts_with(r, "NOAUTH");
}

// Errors the caller handles itself: NOSCRIPT (eval sends the script body), WRONGTYPE (lookup:
// something else under a session key is no session). Neither says anything about the connection.
bool error_is_for_caller(const redisReply* r) {
  return starts_with(r, "NOSCRIPT") || starts_with(r, "WRONGTYPE");
}

// Milliseconds from a monotonic clock. Not uv_now(): the loop's cached time is stale by however
// long the current iteration has run, and deadlines must count from the moment of sending.
uint64_t monotonic_ms() {
  return uv_hrtime() / 1'000'000;
}

size_t decimal_digits(size_t n) {
  size_t d = 1;
  while (n >= 10) {
    n /= 10;
    ++d;
  }
  return d;
}

void append_decimal(std::string& out, char kind, size_t n) {
  char digits[24];
  const auto [end, ec] = std::to_chars(digits, digits + sizeof digits, n);
  (void)ec;
  out.push_back(kind);
  out.append(digits, end);
  out.append("\r\n");
}

// The command in RESP, as hiredis formats it (an array of bulk strings), in one allocation:
// hiredis's own formatting (redisAsyncCommandArgv) costs several times more per command.
// Into `out` (cleared first), whose capacity the client reuses from command to command.
template <typename Args>
void format_command(const Args& args, std::string& out) {
  size_t size = 1 + decimal_digits(args.size()) + 2;
  for (const auto& a : args)
    size += 1 + decimal_digits(a.size()) + 2 + a.size() + 2;
  out.clear();
  out.reserve(size);
  append_decimal(out, '*', args.size());
  for (const auto& a : args) {
    append_decimal(out, '$', a.size());
    out.append(a.data(), a.size());
    out.append("\r\n");
  }
}

template <typename Handle>
void close_and_free(Handle* h) {
  uv_close(reinterpret_cast<uv_handle_t*>(h),
           [](uv_handle_t* handle) { delete reinterpret_cast<Handle*>(handle); });
}

}  // namespace

struct RedisClient::Pending {
  RedisClient* client;
  redisAsyncContext* ctx;  // the connection it went out on
  ReplyHandler on_reply;
  uint64_t sent_ns;      // uv_hrtime(), for the latency histogram
  uint64_t sent_ms;      // monotonic_ms(), for patience
  uint64_t deadline_ms;  // monotonic_ms() based; 0 = none (handshake commands)
  bool finished;         // on_reply already ran (timed out); the reply is awaited and dropped
  bool internal;         // handshake: sees error replies itself
  bool retry_on_drop;    // a read: sent once more if the connection drops before the reply
  std::string command;   // the formatted command, kept only when retry_on_drop
};

RedisClient::RedisClient(uv_loop_t* loop, RedisClientOptions options, WorkerMetrics* metrics,
                         std::vector<const RedisScript*> scripts)
    : loop_(loop),
      opts_(std::move(options)),
      timeout_ms_(static_cast<uint64_t>(std::max<int64_t>(1, opts_.timeout.count()))),
      patience_ms_(std::max<uint64_t>(4 * timeout_ms_, kMinPatience.count())),
      metrics_(metrics),
      scripts_(std::move(scripts)),
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

RedisClient::~RedisClient() {
  close();
}

void RedisClient::start() {
  if (started_ || state_ == State::kClosed) return;
  started_ = true;
  connect_next();
  if (!opts_.sentinels.empty()) {
    uv_timer_start(
        watch_timer_, [](uv_timer_t* t) { static_cast<RedisClient*>(t->data)->watch_master(); },
        kSentinelWatchInterval.count(), kSentinelWatchInterval.count());
  }
}

void RedisClient::close() {
  if (state_ == State::kClosed) return;
  state_ = State::kClosed;
  link_up_ = false;  // no on_link_(false): the owner is closing
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
  for (Retry& r : std::exchange(retries_, {}))
    r.on_reply(nullptr);
  for (Pending* p : std::exchange(in_flight_, {})) {  // none expected: freeing drained them
    ReplyHandler h = p->finished ? nullptr : std::move(p->on_reply);
    delete p;
    if (h) h(nullptr);
  }
  for (Pending* p : std::exchange(spare_, {}))
    delete p;
  close_and_free(command_timer_);
  close_and_free(phase_timer_);
  close_and_free(watch_timer_);
  watch_timer_ = nullptr;
  close_and_free(deferred_idle_);
  command_timer_ = phase_timer_ = nullptr;
  deferred_idle_ = nullptr;
}

bool RedisClient::read_now() {
  // One redisAsyncHandleRead is one read() of at most 16 KiB: a burst of messages bigger than
  // that would leave the later ones (the one that matters, perhaps) in the socket. A peek first:
  // with nothing waiting (the usual case) it is the only system call, as the read was.
  for (int reads = 0; reads < kMaxReadsNow; ++reads) {
    if (ctx_ == nullptr || state_ != State::kReady) return false;
    char byte;
    if (recv(ctx_->c.fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) < 0 &&
        (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return true;
    }
    // Data, the peer's close or an error: hiredis reads it (and reports a close or an error).
    redisAsyncHandleRead(ctx_);
  }
  return false;
}

bool RedisClient::usable() const {
  return state_ == State::kReady && !stalled_;
}

// ---- commands -------------------------------------------------------------------------------

// The formatted command is only read until send_command has handed it to hiredis (which copies
// it): format_buf_ is free again before any handler can run and send another command.
void RedisClient::send(std::initializer_list<std::string_view> args, ReplyHandler on_reply,
                       OnDrop on_drop) {
  format_command(args, format_buf_);
  send_command(format_buf_, std::move(on_reply), /*internal=*/false, on_drop);
}

void RedisClient::send(const std::vector<std::string>& args, ReplyHandler on_reply,
                       OnDrop on_drop) {
  format_command(args, format_buf_);
  send_command(format_buf_, std::move(on_reply), /*internal=*/false, on_drop);
}

void RedisClient::send_formatted(std::string_view command, ReplyHandler on_reply, OnDrop on_drop) {
  send_command(command, std::move(on_reply), /*internal=*/false, on_drop);
}

void RedisClient::send_internal(std::initializer_list<std::string_view> args,
                                ReplyHandler on_reply) {
  format_command(args, format_buf_);
  send_command(format_buf_, std::move(on_reply), /*internal=*/true, OnDrop::kFail);
}

RedisClient::Pending* RedisClient::new_pending() {
  if (spare_.empty()) return new Pending{};
  Pending* p = spare_.back();
  spare_.pop_back();
  return p;
}

void RedisClient::release(Pending* p) {
  if (spare_.size() >= kMaxSparePending) {
    delete p;
    return;
  }
  p->on_reply = nullptr;
  p->command.clear();  // keeps its capacity for the next read's copy
  spare_.push_back(p);
}

void RedisClient::send_command(std::string_view command, ReplyHandler on_reply, bool internal,
                               OnDrop on_drop) {
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
  const uint64_t sent_ns = uv_hrtime();
  const uint64_t now = sent_ns / 1'000'000;  // monotonic_ms(), without a second clock read
  Pending* p = new_pending();
  p->client = this;
  p->ctx = ctx_;
  p->on_reply = std::move(on_reply);
  p->sent_ns = sent_ns;
  p->sent_ms = now;
  p->deadline_ms = internal ? 0 : now + timeout_ms_;
  p->finished = false;
  p->internal = internal;
  p->retry_on_drop = !internal && on_drop == OnDrop::kRetryOnce;
  // Appends to hiredis's output buffer; the reply callback never runs inside this call.
  if (redisAsyncFormattedCommand(ctx_, reply_trampoline, p, command.data(), command.size()) !=
      REDIS_OK) {
    // The connection is going away (a pending callback of a dying connection sent this).
    if (metrics_ != nullptr) metrics_->redis_rejected.add();
    defer([h = std::move(p->on_reply)] { h(nullptr); });
    release(p);
    return;
  }
  if (metrics_ != nullptr) metrics_->redis_commands.add();
  if (p->retry_on_drop) p->command.assign(command);  // hiredis copied it; ours for a resend
  in_flight_.push_back(p);
  // The timer runs whenever commands are in flight, set for the earliest deadline or patience.
  if (!uv_is_active(reinterpret_cast<uv_handle_t*>(command_timer_)) ||
      (p->deadline_ms != 0 && p->deadline_ms < timer_wake_ms_)) {
    arm_command_timer();
  }
}

void RedisClient::reply_trampoline(redisAsyncContext* ac, void* r, void* privdata) {
  auto* p = static_cast<Pending*>(privdata);
  p->client->complete(p, static_cast<const redisReply*>(r));
  (void)ac;
}

void RedisClient::complete(Pending* p, const redisReply* reply) {
  // Replies come in send order, so this is nearly always the front.
  if (!in_flight_.empty() && in_flight_.front() == p) {
    in_flight_.pop_front();
  } else if (auto it = std::find(in_flight_.begin(), in_flight_.end(), p); it != in_flight_.end()) {
    in_flight_.erase(it);
  }
  if (reply == nullptr) {
    lose_context(p->ctx);  // a null reply means hiredis is freeing that connection
  } else if (p->ctx == ctx_) {
    stalled_ = false;
  }
  ReplyHandler handler = p->finished ? nullptr : std::move(p->on_reply);
  if (reply == nullptr && handler && p->retry_on_drop && state_ != State::kClosed) {
    // The connection dropped under a read: wait for the next one (send_retries), not past the
    // read's deadline (on_command_timer). The lost attempt counts as an error either way.
    if (metrics_ != nullptr) metrics_->redis_errors.add();
    retries_.push_back(Retry{p->command, std::move(handler), p->deadline_ms});
    release(p);
    arm_command_timer();
    return;
  }
  const uint64_t sent_ns = p->sent_ns;
  redisAsyncContext* ctx = p->ctx;
  const bool internal = p->internal;
  release(p);
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
  if (reply->type == REDIS_REPLY_ERROR && error_is_for_caller(reply)) {
    handler(reply);
    return;
  }
  if (reply->type == REDIS_REPLY_ERROR) {
    if (metrics_ != nullptr) metrics_->redis_errors.add();
    SG_LOG_DEBUG("%s: error reply: %.*s", opts_.log_name.c_str(), static_cast<int>(reply->len),
                 reply->str);
    if (error_needs_reconnect(reply) && ctx == ctx_) {
      // Inside hiredis's callback: the free is deferred until it returns.
      drop_connection(std::string(reply->str, std::min<size_t>(reply->len, 120)).c_str());
    }
    handler(nullptr);
    return;
  }
  handler(reply);
}

void RedisClient::send_retries() {
  // Sent at most once more, on this new connection, without a second retry.
  for (Retry& r : std::exchange(retries_, {}))
    send_command(r.command, std::move(r.on_reply), /*internal=*/false, OnDrop::kFail);
}

void RedisClient::defer(std::function<void()> fn) {
  deferred_.push_back(std::move(fn));
  if (deferred_idle_ != nullptr && !uv_is_active(reinterpret_cast<uv_handle_t*>(deferred_idle_))) {
    uv_idle_start(deferred_idle_, [](uv_idle_t* h) {
      auto* self = static_cast<RedisClient*>(h->data);
      uv_idle_stop(h);
      self->run_deferred();
    });
  }
}

void RedisClient::run_deferred() {
  // Callbacks may defer more work: that runs on the next iteration (or in this loop, when
  // closing, so that nothing is left behind).
  while (!deferred_.empty()) {
    std::vector<std::function<void()>> batch = std::exchange(deferred_, {});
    for (auto& fn : batch)
      fn();
    if (state_ != State::kClosed) break;
  }
}

void RedisClient::eval(const RedisScript& script, std::vector<std::string> args,
                       ReplyHandler on_reply) {
  args.insert(args.begin(), {"EVALSHA", script.sha1});
  std::vector<std::string> fallback = args;  // kept for a NOSCRIPT reply
  send(std::move(args), [this, &script, fallback = std::move(fallback),
                         on_reply = std::move(on_reply)](const redisReply* r) mutable {
    if (!is_error(r, "NOSCRIPT")) {
      on_reply(r);
      return;
    }
    // The server lost its script cache (a failover to a replica, SCRIPT FLUSH, a restart).
    // Nothing ran: send the body, which also caches it again.
    SG_LOG_DEBUG("%s: NOSCRIPT for the %s script: sending it with EVAL", opts_.log_name.c_str(),
                 script.name);
    fallback[0] = "EVAL";
    fallback[1] = script.body;
    send(std::move(fallback), [on_reply = std::move(on_reply)](const redisReply* again) {
      on_reply(is_error(again, "NOSCRIPT") ? nullptr : again);
    });
  });
}

// ---- timeouts -------------------------------------------------------------------------------

void RedisClient::arm_command_timer() {
  if (command_timer_ == nullptr) return;
  if (in_flight_.empty() && retries_.empty()) {
    uv_timer_stop(command_timer_);
    return;
  }
  uint64_t wake = UINT64_MAX;
  for (const Retry& r : retries_)
    wake = std::min(wake, r.deadline_ms);
  if (!in_flight_.empty()) wake = std::min(wake, in_flight_.front()->sent_ms + patience_ms_);
  for (const Pending* p : in_flight_) {
    if (p->finished || p->deadline_ms == 0) continue;
    wake = std::min(wake, p->deadline_ms);  // deadlines grow in send order: the first is it
    break;
  }
  const uint64_t now = monotonic_ms();
  timer_wake_ms_ = wake;
  // The loop's clock may lag ours: then the timer fires early and on_command_timer re-arms.
  uv_timer_start(
      command_timer_, [](uv_timer_t* t) { static_cast<RedisClient*>(t->data)->on_command_timer(); },
      wake > now ? wake - now : 0, 0);
}

void RedisClient::on_command_timer() {
  const uint64_t now = monotonic_ms();
  std::vector<ReplyHandler> expired;
  for (Pending* p : in_flight_) {
    if (p->finished || p->deadline_ms == 0) continue;
    if (p->deadline_ms > now) break;
    p->finished = true;  // the reply, if it ever comes, is dropped
    expired.push_back(std::move(p->on_reply));
  }
  const size_t timed_out = expired.size();
  // Reads that waited for a new connection until their deadline (counted as errors already).
  for (auto it = retries_.begin(); it != retries_.end();) {
    if (it->deadline_ms > now) {
      ++it;
      continue;
    }
    expired.push_back(std::move(it->on_reply));
    it = retries_.erase(it);
  }
  if (timed_out != 0) {
    if (metrics_ != nullptr) metrics_->redis_timeouts.add(timed_out);
    if (!stalled_) {
      SG_LOG_WARN("%s: no reply from %s within %llu ms", opts_.log_name.c_str(), server_.c_str(),
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

}  // namespace sg
