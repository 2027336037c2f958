// RedisClient as a subscriber (redis_client.h, subscribe()): SUBSCRIBE on every ready connection
// and the messages to the caller. The connection life (reconnect with backoff, Sentinel
// discovery and the master watch) is the client's own, so a subscriber follows a failover the way
// the store's connections do: the watch moves it to the new master, connection_ready()
// subscribes again there.
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <string_view>

#include "proxy_core/ops/log.h"
#include "proxy_core/store/redis_client.h"

namespace sg {

void RedisClient::subscribe(std::string channel, MessageHandler on_message) {
  subscribe_channel_ = std::move(channel);
  on_message_ = std::move(on_message);
}

// hiredis keeps this callback for the channel and calls it for the SUBSCRIBE confirmation and for
// every message; not through send_command: a subscription has no single reply and no deadline.
// With on_subscribed_, CLIENT ID goes first (a subscribed connection takes no other command).
void RedisClient::send_subscribe() {
  if (ctx_ == nullptr) return;
  if (on_subscribed_ && client_id_ == 0) {
    if (!subscriber_name_.empty()) {  // pipelined: its reply comes before CLIENT ID's
      send_internal({"CLIENT", "SETNAME", subscriber_name_}, [this](const redisReply* r) {
        if (state_ != State::kReady) return;
        if (r == nullptr || r->type != REDIS_REPLY_STATUS)
          drop_connection("CLIENT SETNAME refused");
      });
    }
    send_internal({"CLIENT", "ID"}, [this](const redisReply* r) {
      if (state_ != State::kReady) return;  // lost meanwhile: the next connection asks again
      if (r == nullptr || r->type != REDIS_REPLY_INTEGER || r->integer <= 0) {
        drop_connection("CLIENT ID refused");
        return;
      }
      client_id_ = r->integer;
      send_subscribe();
    });
    return;
  }
  if (redisAsyncCommand(ctx_, message_trampoline, this, "SUBSCRIBE %b", subscribe_channel_.data(),
                        subscribe_channel_.size()) != REDIS_OK) {
    drop_connection("SUBSCRIBE refused");
    return;
  }
  if (metrics_ != nullptr) metrics_->redis_commands.add();
}

void RedisClient::confirm_subscription() {
  if (on_subscribed_) on_subscribed_(client_id_);
  if (!link_up_) {
    link_up_ = true;
    if (on_link_) on_link_(true);
  }
}

void RedisClient::message_trampoline(redisAsyncContext* ac, void* r, void* privdata) {
  auto* self = static_cast<RedisClient*>(privdata);
  const auto* reply = static_cast<const redisReply*>(r);
  // A null reply: hiredis is freeing the connection; the disconnect callback handles that (and
  // close() may be freeing it, when `self` must not be touched beyond this check).
  if (reply == nullptr || ac->data != self || ac != self->ctx_) return;
  if (reply->type == REDIS_REPLY_ERROR) {
    SG_LOG_WARN("%s: SUBSCRIBE %s: %.*s", self->opts_.log_name.c_str(),
                self->subscribe_channel_.c_str(), static_cast<int>(reply->len), reply->str);
    return;
  }
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3) return;
  const redisReply* kind = reply->element[0];
  if (kind->type != REDIS_REPLY_STRING) return;
  const std::string_view what(kind->str, kind->len);
  if (what == "subscribe") {
    self->confirm_subscription();
  } else if (what == "message") {
    self->on_message_(reply->element[2]);
  }
}

}  // namespace sg
