// RedisStore's local cache: the tracking handshake over two connections, invalidations, and the
// lookups it answers (the rules are in redis_store.h, "The local cache", and
// redis_local_cache.h).
#include <hiredis/hiredis.h>

#include <memory>
#include <string>
#include <string_view>

#include "proxy_core/base/clock.h"
#include "proxy_core/ops/log.h"
#include "proxy_core/session/token.h"
#include "proxy_core/store/redis_codec.h"
#include "proxy_core/store/redis_store.h"

namespace sg {
namespace {

// Redis publishes tracking invalidations (RESP2, REDIRECT mode) on this channel.
constexpr const char* kInvalidationChannel = "__redis__:invalidate";

RedisClientOptions invalidation_options(const RedisStoreConfig& cfg) {
  RedisClientOptions o = redis_client_options(cfg);
  o.log_name = "redis cache";
  return o;
}

}  // namespace

void RedisStore::start_local_cache(const RedisStoreConfig& cfg) {
  cache_ = std::make_unique<RedisLocalCache>(cfg.local_cache.count());
  // No metrics: the redis_* command figures describe the store's command connection.
  invalidations_ = std::make_unique<RedisClient>(loop_, invalidation_options(cfg), nullptr,
                                                 std::vector<const RedisScript*>{});
  invalidations_->subscribe(kInvalidationChannel,
                            [this](const redisReply* payload) { on_invalidation(payload); });
  // A name of this listener's own, so that the command connection can check that the CLIENT ID
  // it redirects to is this listener on its own server (cache_link_changed).
  std::string nonce;
  listener_name_ = "sg-cache-";
  listener_name_.append(generate_token(nonce) ? nonce.substr(0, 22) : std::to_string(uv_hrtime()));
  invalidations_->on_subscribed(
      [this](long long id) {
        listener_id_ = id;
        cache_link_changed();
      },
      listener_name_);
  invalidations_->on_link([this](bool up) {
    if (up) return;  // on_subscribed says when it is usable
    listener_id_ = 0;
    cache_link_changed();
  });
  client_.on_link([this](bool up) {
    command_link_up_ = up;
    cache_link_changed();
  });
  turn_ = new uv_prepare_t;
  uv_prepare_init(loop_, turn_);
  turn_->data = this;
  uv_prepare_start(turn_,
                   [](uv_prepare_t* h) { ++static_cast<RedisStore*>(h->data)->turn_count_; });
  uv_unref(reinterpret_cast<uv_handle_t*>(turn_));  // a counter keeps no loop alive
}

void RedisStore::start() {
  client_.start();
  if (invalidations_) invalidations_->start();
}

void RedisStore::close() {
  ++link_gen_;  // the answers close() completes (null) belong to no link: nothing to log
  client_.close();
  if (invalidations_) invalidations_->close();
  if (turn_ != nullptr) {
    uv_close(reinterpret_cast<uv_handle_t*>(std::exchange(turn_, nullptr)),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_prepare_t*>(h); });
  }
  tracking_on_ = false;
}

void RedisStore::cache_link_changed() {
  ++link_gen_;
  tracking_on_ = false;
  tracking_gen_ = 0;
  cache_->clear();
  if (!command_link_up_ || listener_id_ == 0) return;
  // Invalidations come only from the server that tracks: both on the same one, or no cache (a
  // failover moves the connections one after the other; the second move calls here again).
  if (client_.server() != invalidations_->server()) return;
  // The same address is not the same server (a DNS name or a proxy in front of several): CLIENT
  // IDs are numbered per server, and another server's client of that id (any subscriber) would
  // get the invalidations. The id must name this listener, by its name, on the command's server.
  const std::string id = std::to_string(listener_id_);
  client_.send({"CLIENT", "LIST", "ID", id}, [this, gen = link_gen_, id](const redisReply* r) {
    if (gen != link_gen_) return;  // a connection changed meanwhile: asked again
    if (r != nullptr && r->type == REDIS_REPLY_STRING &&
        names_listener(std::string_view(r->str, r->len), id)) {
      start_tracking();
      return;
    }
    tracking_not_confirmed("its invalidation connection is not on the same server");
  });
}

// CLIENT LIST's line of `id`: "id=<id> addr=... name=<name> ...".
bool RedisStore::names_listener(std::string_view line, const std::string& id) const {
  const std::string want_id = "id=" + id + " ";
  const std::string want_name = " name=" + listener_name_ + " ";
  return line.starts_with(want_id) && line.find(want_name) != std::string_view::npos;
}

void RedisStore::tracking_not_confirmed(const char* why) {
  if (tracking_refused_logged_) return;
  SG_LOG_WARN(
      "redis store: CLIENT TRACKING was not confirmed by %s (%s): the local cache "
      "(store.redis.local_cache) stays off on this connection (it needs Redis 6.2 or later, "
      "without a proxy that refuses the command)",
      client_.server().c_str(), why);
  tracking_refused_logged_ = true;
}

void RedisStore::start_tracking() {
  tracking_gen_ = link_gen_;
  // OPTIN: only the reads that ask for it are tracked (cache_refill), so that a lookup of an
  // unknown token (a random cookie) leaves nothing in Redis's tracking table.
  client_.send({"CLIENT", "TRACKING", "on", "REDIRECT", std::to_string(listener_id_), "OPTIN"},
               [this, gen = link_gen_](const redisReply* r) {
                 if (gen != link_gen_) return;  // a connection changed meanwhile: asked again
                 if (r != nullptr && r->type == REDIS_REPLY_STATUS &&
                     std::string_view(r->str, r->len) == "OK") {
                   tracking_on_ = true;
                   return;
                 }
                 // The only error reply that reaches here is none (the client reports error
                 // replies as null): a refusal and a timeout look alike.
                 tracking_not_confirmed("refused or no answer");
               });
}

// The payload of a tracking message: an array of the keys that changed, or a null when the
// database was flushed. Keys not of a session (the schedule, the user index) are ignored, and so
// is anything else (a string PUBLISHed on the channel by some client: Redis sends none).
void RedisStore::on_invalidation(const redisReply* payload) {
  if (payload->type == REDIS_REPLY_NIL) {
    cache_->clear();
    return;
  }
  if (payload->type != REDIS_REPLY_ARRAY) return;
  TokenHash key{};
  for (size_t i = 0; i < payload->elements; ++i) {
    const redisReply* k = payload->element[i];
    if (k->type != REDIS_REPLY_STRING) continue;
    const std::string_view name(k->str, k->len);
    if (name.size() != key_prefix_.size() + 2 * key.size() ||
        name.compare(0, key_prefix_.size(), key_prefix_) != 0 ||
        !parse_digest_hex(name.substr(key_prefix_.size()), key)) {
      continue;
    }
    cache_->invalidate(key);
    if (metrics_ != nullptr) metrics_->redis_cache_invalidations.add();
  }
}

bool RedisStore::lookup_now(const TokenHash& key, int64_t now_ms, LookupResult& out) {
  if (!tracking_on_ || !client_.usable()) return false;
  // What Redis sent us since the last read of the invalidation socket is applied first. Once per
  // loop turn: the requests of this turn were read after this turn's poll, and the change a
  // request depends on (a logout answered to its browser) reached us before it did.
  if (drained_turn_ != turn_count_ || force_drain_) {
    // Not all read (a burst bigger than read_now takes, or the connection gone): Redis answers.
    if (!invalidations_->read_now() || !tracking_on_) return false;
    drained_turn_ = turn_count_;
    force_drain_ = false;
  }
  const SessionRecord* record = cache_->find(key, now_ms);
  if (record == nullptr) return false;
  // An expired session goes the long way: Redis's answer is the same, and the sweep audits it.
  if (session_expiry(*record, now_ms, idle_ms_, absolute_ms_) != ExpiryKind::kNone) return false;
  out.status = StoreStatus::kOk;
  out.record = *record;
  if (metrics_ != nullptr) metrics_->redis_cache_hits.add();
  return true;
}

void RedisStore::cache_refill(const TokenHash& key) {
  // Tracking asked on these connections (its answer comes before this read's, in order), and no
  // read of this key already on its way.
  if (tracking_gen_ != link_gen_ || tracking_gen_ == 0 || cache_->read_in_flight(key)) return;
  const RedisLocalCache::ReadTicket ticket = cache_->begin_read(key);
  // OPTIN: only the command right after CLIENT CACHING yes is tracked. Its reply comes first;
  // without an OK the read after it is not tracked, and what it returns is not kept.
  auto tracked = std::make_shared<bool>(false);
  client_.send({"CLIENT", "CACHING", "yes"}, [tracked](const redisReply* r) {
    *tracked = r != nullptr && r->type == REDIS_REPLY_STATUS;
  });
  write_digest_hex(key, lookup_command_.data() + lookup_hex_at_);
  client_.send_formatted(lookup_command_, [this, key, ticket, tracked, gen = link_gen_,
                                           sent = unix_now_ms()](const redisReply* r) {
    on_refill_reply(key, r, *tracked, ticket, gen, sent);
  });
}

void RedisStore::on_refill_reply(const TokenHash& key, const redisReply* r, bool tracked,
                                 RedisLocalCache::ReadTicket ticket, uint64_t link_gen,
                                 int64_t sent_ms) {
  // Always first: every begin_read gets its finish_read.
  const bool unspoiled = cache_->finish_read(ticket, key);
  if (!unspoiled || !tracked || r == nullptr || link_gen != link_gen_ || !tracking_on_) return;
  HashFields& fields = fields_;
  fields.clear();
  // Only a live session is kept; anything else was counted by the lookup that asked for it. Its
  // age counts from the send (the copy is at least as new as that).
  if (hash_fields(r, fields)) {
    StoredEntry e = read_session_hash(fields, sent_ms, max_attributes_, max_attribute_bytes_);
    if (e.kind == StoredKind::kSession &&
        session_expiry(e.record, sent_ms, idle_ms_, absolute_ms_) == ExpiryKind::kNone)
      cache_->insert(key, e.record, sent_ms);
  }
  fields.clear();
}

}  // namespace sg
