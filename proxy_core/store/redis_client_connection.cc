// RedisClient's connection life: direct connect or Sentinel discovery, the handshake (AUTH,
// SELECT, SCRIPT LOAD, PING or ROLE), reconnects with backoff, and the master watch. The
// contract is in redis_client.h.
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string_view>
#include <utility>

#include "proxy_core/ops/log.h"
#include "proxy_core/store/redis_client.h"
#include "proxy_core/store/redis_dial.h"

namespace sg {
namespace {
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

}  // namespace

// A failover with the old master still up leaves it accepting writes until Sentinel demotes it
// (about ten seconds), and those writes are lost when it resyncs. So while connected we keep
// asking the sentinels, in turn, where the master is, and move as soon as the answer changes.
void RedisClient::watch_master() {
  if (state_ != State::kReady) return;
  if (watch_ctx_ != nullptr) {
    // The previous question went unanswered for a whole interval: give up on that sentinel.
    redisAsyncContext* stuck = std::exchange(watch_ctx_, nullptr);
    stuck->data = nullptr;
    redisAsyncFree(stuck);
  }
  const std::string& sentinel = opts_.sentinels[watch_index_++ % opts_.sentinels.size()];
  std::string error;
  redisAsyncContext* ac =
      ask_sentinel_for_master(loop_, sentinel, opts_.master_name, watch_trampoline, this, error);
  if (ac == nullptr) return;
  ac->data = this;
  watch_ctx_ = ac;
}

void RedisClient::watch_trampoline(redisAsyncContext* ac, void* r, void* privdata) {
  auto* self = static_cast<RedisClient*>(privdata);
  if (ac != self->watch_ctx_) return;  // abandoned
  self->watch_ctx_ = nullptr;
  ac->data = nullptr;
  const auto* reply = static_cast<const redisReply*>(r);
  const std::string address = master_address_of(reply);
  if (reply != nullptr) redisAsyncFree(ac);  // deferred by hiredis until this callback returns
  if (!address.empty() && self->state_ == State::kReady && address != self->server_) {
    SG_LOG_WARN("%s: sentinels now name %s as master '%s' (was %s): moving",
                self->opts_.log_name.c_str(), address.c_str(), self->opts_.master_name.c_str(),
                self->server_.c_str());
    self->drop_connection("the master moved");
  }
}

// ---- connection life ------------------------------------------------------------------------

void RedisClient::schedule_reconnect() {
  if (state_ == State::kClosed) return;
  state_ = State::kIdle;
  // Jitter (x0.75 .. x1.25) keeps the workers of several gateways from reconnecting in step.
  std::uniform_int_distribution<uint64_t> spread(backoff_ms_ * 3 / 4, backoff_ms_ * 5 / 4);
  const uint64_t delay = std::min<uint64_t>(spread(jitter_), kMaxBackoff.count());
  backoff_ms_ = std::min<uint64_t>(backoff_ms_ * 2, kMaxBackoff.count());
  uv_timer_start(
      phase_timer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<RedisClient*>(t->data);
        if (self->state_ == State::kIdle) {
          self->connect_next();
        } else {
          self->on_phase_timeout();
        }
      },
      delay, 0);
}

void RedisClient::connect_next() {
  if (state_ != State::kIdle) return;
  if (opts_.sentinels.empty()) {
    connect_to(opts_.address);
  } else {
    sentinels_tried_ = 0;
    ask_sentinel();
  }
}

void RedisClient::ask_sentinel() {
  while (sentinels_tried_ < opts_.sentinels.size()) {
    const std::string& address = opts_.sentinels[sentinel_index_ % opts_.sentinels.size()];
    std::string error;
    redisAsyncContext* ac = ask_sentinel_for_master(loop_, address, opts_.master_name,
                                                    sentinel_trampoline, this, error);
    if (ac != nullptr) {
      ac->data = this;
      state_ = State::kDiscovering;
      sentinel_ctx_ = ac;
      uv_timer_start(
          phase_timer_,
          [](uv_timer_t* t) { static_cast<RedisClient*>(t->data)->on_phase_timeout(); },
          patience_ms_, 0);
      return;
    }
    if (!logged_down_) {
      SG_LOG_WARN("%s: sentinel %s unreachable%s%s", opts_.log_name.c_str(), address.c_str(),
                  error.empty() ? "" : ": ", error.c_str());
    }
    ++sentinel_index_;
    ++sentinels_tried_;
  }
  if (!logged_down_) {
    SG_LOG_WARN("%s: no sentinel gave the address of master '%s'", opts_.log_name.c_str(),
                opts_.master_name.c_str());
    logged_down_ = true;
  }
  schedule_reconnect();
}

void RedisClient::sentinel_trampoline(redisAsyncContext* ac, void* r, void* privdata) {
  auto* self = static_cast<RedisClient*>(privdata);
  if (ac != self->sentinel_ctx_) return;  // abandoned (timeout, close)
  self->sentinel_ctx_ = nullptr;
  ac->data = nullptr;
  const auto* reply = static_cast<const redisReply*>(r);
  const std::string& sentinel =
      self->opts_.sentinels[self->sentinel_index_ % self->opts_.sentinels.size()];
  if (reply != nullptr) redisAsyncFree(ac);  // deferred by hiredis until this callback returns
  if (const std::string address = master_address_of(reply); !address.empty()) {
    SG_LOG_DEBUG("%s: sentinel %s names %s as master '%s'", self->opts_.log_name.c_str(),
                 sentinel.c_str(), address.c_str(), self->opts_.master_name.c_str());
    self->state_ = State::kIdle;
    self->connect_to(address);
    return;
  }
  if (!self->logged_down_) {
    if (reply == nullptr) {
      SG_LOG_WARN("%s: sentinel %s unreachable: %s", self->opts_.log_name.c_str(), sentinel.c_str(),
                  ac->errstr);
    } else {
      SG_LOG_WARN("%s: sentinel %s does not know master '%s'", self->opts_.log_name.c_str(),
                  sentinel.c_str(), self->opts_.master_name.c_str());
    }
  }
  ++self->sentinel_index_;
  ++self->sentinels_tried_;
  self->ask_sentinel();
}

void RedisClient::connect_to(const std::string& address) {
  server_ = address;
  client_id_ = 0;
  redisAsyncContext* ac = nullptr;
  std::string problem;
  std::string password;
  if (!opts_.password_file.empty() &&
      (!read_password(opts_.password_file, password) || password.empty())) {
    problem = "store.redis.password_file is unreadable or empty";
  } else {
    ac = redis_dial(loop_, address, /*allow_unix=*/true, problem);
  }
  if (ac == nullptr) {
    if (!logged_down_) {
      SG_LOG_WARN("%s: cannot connect to %s: %s", opts_.log_name.c_str(), address.c_str(),
                  problem.c_str());
      logged_down_ = true;
    }
    schedule_reconnect();
    return;
  }
  ac->data = this;
  redisAsyncSetConnectCallback(ac, connect_trampoline);
  redisAsyncSetDisconnectCallback(ac, disconnect_trampoline);
  ctx_ = ac;
  state_ = State::kHandshake;
  uv_timer_start(
      phase_timer_, [](uv_timer_t* t) { static_cast<RedisClient*>(t->data)->on_phase_timeout(); },
      patience_ms_, 0);
  handshake(password);
}

// Queued at once, ahead of any command; hiredis writes it when the socket connects. The last
// step's reply makes the connection ready: ROLE (must be "master") with sentinels, else PING.
void RedisClient::handshake(const std::string& password) {
  if (!password.empty()) {
    send_internal({"AUTH", password},
                  [this](const redisReply* r) { on_handshake_step(r, "AUTH", /*last=*/false); });
  }
  if (opts_.database != 0) {
    send_internal({"SELECT", std::to_string(opts_.database)},
                  [this](const redisReply* r) { on_handshake_step(r, "SELECT", /*last=*/false); });
  }
  // Loaded ahead, so that EVALSHA finds them; a refusal is not fatal (eval falls back to EVAL).
  for (const RedisScript* script : scripts_) {
    send_internal({"SCRIPT", "LOAD", script->body}, [this, script](const redisReply* r) {
      if (r == nullptr || r->type != REDIS_REPLY_STRING ||
          std::string_view(r->str, r->len) != script->sha1) {
        SG_LOG_DEBUG("%s: SCRIPT LOAD of the %s script failed", opts_.log_name.c_str(),
                     script->name);
      }
    });
  }
  if (opts_.sentinels.empty()) {
    send_internal({"PING"},
                  [this](const redisReply* r) { on_handshake_step(r, "PING", /*last=*/true); });
  } else {
    send_internal({"ROLE"},
                  [this](const redisReply* r) { on_handshake_step(r, "ROLE", /*last=*/true); });
  }
}

void RedisClient::on_handshake_step(const redisReply* reply, const char* what, bool last) {
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
        SG_LOG_WARN("%s: %s to %s failed: %.*s", opts_.log_name.c_str(), what, server_.c_str(),
                    static_cast<int>(std::min<size_t>(reply->len, 120)), reply->str);
      } else {
        SG_LOG_WARN("%s: %s to %s failed: %s", opts_.log_name.c_str(), what, server_.c_str(),
                    detail);
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

void RedisClient::connection_ready() {
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
    SG_LOG_INFO("%s: connected to %s", opts_.log_name.c_str(), server_.c_str());
  }
  was_ready_ = true;
  logged_down_ = false;
  if (!subscribe_channel_.empty()) {
    send_subscribe();  // again on every new connection; the link is up once it is confirmed
  } else if (!link_up_) {
    link_up_ = true;
    if (on_link_) on_link_(true);
  }
  send_retries();
}

void RedisClient::link_lost() {
  if (!link_up_) return;
  link_up_ = false;
  if (on_link_) on_link_(false);
}

void RedisClient::connect_trampoline(const redisAsyncContext* ac, int status) {
  auto* self = static_cast<RedisClient*>(ac->data);
  if (self == nullptr || ac != self->ctx_ || status == REDIS_OK) return;
  // hiredis frees the context after this returns and fails the queued handshake: not here.
  const_cast<redisAsyncContext*>(ac)->data = nullptr;
  if (!self->logged_down_) {
    SG_LOG_WARN("%s: cannot connect to %s: %s", self->opts_.log_name.c_str(), self->server_.c_str(),
                ac->errstr != nullptr ? ac->errstr : "connect failed");
    self->logged_down_ = true;
  }
  self->ctx_ = nullptr;
  self->schedule_reconnect();
}

void RedisClient::disconnect_trampoline(const redisAsyncContext* ac, int /*status*/) {
  auto* self = static_cast<RedisClient*>(ac->data);
  if (self != nullptr) self->lose_context(const_cast<redisAsyncContext*>(ac));
}

// hiredis is freeing `ac` (the server closed it, or an I/O error): forget it, try again later.
void RedisClient::lose_context(redisAsyncContext* ac) {
  if (ac == nullptr || ac != ctx_) return;
  ac->data = nullptr;
  ctx_ = nullptr;
  if (metrics_ != nullptr) metrics_->redis_connected.store(0, std::memory_order_relaxed);
  if (!logged_down_) {
    SG_LOG_WARN("%s: lost connection to %s%s%s", opts_.log_name.c_str(), server_.c_str(),
                ac->errstr != nullptr ? ": " : "", ac->errstr != nullptr ? ac->errstr : "");
    logged_down_ = true;
  }
  schedule_reconnect();
  link_lost();
}

void RedisClient::drop_connection(const char* why) {
  if (state_ == State::kClosed) return;
  if (!logged_down_) {
    SG_LOG_WARN("%s: dropping connection to %s: %s", opts_.log_name.c_str(), server_.c_str(), why);
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
  link_lost();
}

void RedisClient::on_phase_timeout() {
  if (state_ == State::kDiscovering) {
    redisAsyncContext* s = std::exchange(sentinel_ctx_, nullptr);
    if (s != nullptr) {
      s->data = nullptr;
      redisAsyncFree(s);
    }
    if (!logged_down_) {
      SG_LOG_WARN("%s: sentinel %s did not answer within %llu ms", opts_.log_name.c_str(),
                  opts_.sentinels[sentinel_index_ % opts_.sentinels.size()].c_str(),
                  static_cast<unsigned long long>(patience_ms_));
    }
    ++sentinel_index_;
    ++sentinels_tried_;
    ask_sentinel();
  } else if (state_ == State::kHandshake) {
    drop_connection("connect timed out");
  }
}

}  // namespace sg
