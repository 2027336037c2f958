#include "proxy_core/store/redis_session_events.h"

#include "proxy_core/store/redis_codec.h"
#include "proxy_core/store/redis_store.h"

namespace sg {

RedisEndSubscriber::RedisEndSubscriber(uv_loop_t* loop, const RedisStoreConfig& cfg,
                                       SessionEndSink* sink)
    // No metrics: the redis_* figures describe the store's command connections.
    : sink_(sink), client_(loop, redis_client_options(cfg), nullptr, {}) {
  client_.subscribe(redis_events_channel(cfg.key_prefix),
                    [this](std::string_view payload) { on_message(payload); });
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
