// RedisEndSubscriber: this instance's ear on the session-end channel (issue 14). Every instance
// PUBLISHes a session end after Redis confirmed it (redis_store.h: destroy by key, revocations
// by handle); this subscriber hears them all, its own included, and hands each to a
// SessionEndSink (the process's SessionEndBus, which wakes the workers that watch the session).
//
// One per process, not per worker: a worker's tunnels are reached through the bus anyway (it
// fans out across threads), and one subscriber connection per instance keeps Redis's fan-out at
// one message per instance. It runs on worker 0's loop, beside that worker's store connection.
// The connection is a RedisClient in subscriber mode (redis_client.h): it reconnects with the
// client's backoff, follows a Sentinel failover through the client's master watch, and
// subscribes again on every new connection. A message published while it was not subscribed is
// lost; the workers' periodic check of watched sessions (session_follower.h) catches that end
// within a few seconds.
//
// Messages are untrusted input (anyone who may PUBLISH on that Redis): a malformed one is
// ignored, and a well-formed one can only close tunnels of the session it names, which the
// publisher could end anyway by deleting its key.
//
// Threading: worker 0's loop only; the sink is thread-safe.
#pragma once

#include <uv.h>

#include <memory>

#include "proxy_core/config/config.h"
#include "proxy_core/session/session_store.h"
#include "proxy_core/store/redis_client.h"

namespace sg {

class RedisEndSubscriber {
 public:
  // `sink` must outlive the subscriber.
  RedisEndSubscriber(uv_loop_t* loop, const RedisStoreConfig& cfg, SessionEndSink* sink);
  void start() { client_.start(); }
  void close() { client_.close(); }
  bool usable() const { return client_.usable(); }

 private:
  void on_message(std::string_view payload);

  SessionEndSink* sink_;
  RedisClient client_;
};

}  // namespace sg
