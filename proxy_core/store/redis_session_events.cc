#include "proxy_core/store/redis_session_events.h"

#include <hiredis/hiredis.h>

#include "proxy_core/store/redis_codec.h"
#include "proxy_core/store/redis_store.h"

namespace sg {
namespace {

RedisClientOptions subscriber_options(const RedisStoreConfig& cfg) {
  RedisClientOptions o = redis_client_options(cfg);
  o.log_name = "redis events";  // tests and operators count the store's connections by name
  return o;
}

}  // namespace

RedisEndSubscriber::RedisEndSubscriber(uv_loop_t* loop, const RedisStoreConfig& cfg,
                                       SessionEndSink* sink)
    // No metrics: the redis_* figures describe the store's command connections.
    : sink_(sink), client_(loop, subscriber_options(cfg), nullptr, {}) {
  client_.subscribe(redis_events_channel(cfg.key_prefix), [this](const redisReply* payload) {
    if (payload->type == REDIS_REPLY_STRING)
      on_message(std::string_view(payload->str, payload->len));
  });
}

void RedisEndSubscriber::on_message(std::string_view payload) {
  bool by_key = false;
  TokenHash key{};
  SessionHandle handle{};
  if (!parse_end_event(payload, by_key, key, handle)) return;
  if (by_key) {
    sink_->session_key_ended(key);
  } else {
    sink_->session_ended(handle);
  }
}

}  // namespace sg
