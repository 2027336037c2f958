// RedisStore: what each session operation sends through the Redis client and how its reply maps
// to the store contract (session_store.h). The commands are listed in redis_store.h.
#include "proxy_core/store/redis_store.h"

#include <hiredis/hiredis.h>

#include <cstring>
#include <string_view>
#include <utility>

#include "proxy_core/base/clock.h"
#include "proxy_core/ops/log.h"
#include "proxy_core/store/redis_codec.h"
#include "proxy_core/store/redis_scripts.h"

namespace sg {
namespace {

bool is_error(const redisReply* r, const char* prefix) {
  const size_t n = std::strlen(prefix);
  return r != nullptr && r->type == REDIS_REPLY_ERROR && r->len >= n &&
         std::memcmp(r->str, prefix, n) == 0;
}

// The script replies: an integer, or nothing usable (kUnavailable).
bool integer_reply(const redisReply* r, long long& out) {
  if (r == nullptr || r->type != REDIS_REPLY_INTEGER) return false;
  out = r->integer;
  return true;
}

}  // namespace

// HGETALL's field/value list. False when the reply is not one (a misbehaving server or proxy).
bool RedisStore::hash_fields(const redisReply* r, HashFields& out) {
  if (r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 0) return false;
  out.reserve(r->elements / 2);
  for (size_t i = 0; i < r->elements; i += 2) {
    const redisReply* f = r->element[i];
    const redisReply* v = r->element[i + 1];
    if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) return false;
    out.emplace_back(std::string_view(f->str, f->len), std::string_view(v->str, v->len));
  }
  return true;
}

RedisClientOptions redis_client_options(const RedisStoreConfig& cfg) {
  RedisClientOptions o;
  o.address = cfg.address;
  o.sentinels = cfg.sentinels;
  o.master_name = cfg.master_name;
  o.password_file = cfg.password_file;
  o.database = cfg.database;
  o.timeout = cfg.timeout;
  return o;
}

RedisStore::RedisStore(uv_loop_t* loop, const RedisStoreConfig& cfg, Millis idle_timeout,
                       Millis absolute_timeout, WorkerMetrics* metrics, uint32_t max_attributes,
                       uint32_t max_attribute_bytes, std::string user_attribute, bool own_cache)
    : loop_(loop),
      key_prefix_(cfg.key_prefix),
      events_channel_(redis_events_channel(cfg.key_prefix)),
      schedule_key_(redis_expiry_schedule_key(cfg.key_prefix)),
      idle_ms_(idle_timeout.count()),
      absolute_ms_(absolute_timeout.count()),
      metrics_(metrics),
      max_attributes_(max_attributes),
      max_attribute_bytes_(max_attribute_bytes),
      user_attribute_(std::move(user_attribute)),
      client_(loop, redis_client_options(cfg), metrics, redis_scripts()) {
  // "*2\r\n$7\r\nHGETALL\r\n$<key length>\r\n<prefix><64 hex digits>\r\n", as RedisClient::send
  // formats {"HGETALL", key_of(key)}.
  const size_t key_size = key_prefix_.size() + 2 * TokenHash{}.size();
  lookup_command_ = "*2\r\n$7\r\nHGETALL\r\n$" + std::to_string(key_size) + "\r\n" + key_prefix_;
  lookup_hex_at_ = lookup_command_.size();
  lookup_command_.append(2 * TokenHash{}.size(), '0').append("\r\n");
  wait_for_reports_ = cfg.local_cache.count() > 0;
  if (wait_for_reports_ && own_cache) start_local_cache(cfg);
}

RedisStore::~RedisStore() {
  close();
}

std::string RedisStore::key_of(const TokenHash& key) const {
  return redis_session_key(key_prefix_, key);
}

void RedisStore::count_rejected(const TokenHash& key, const char* why) {
  if (metrics_ != nullptr) metrics_->store_records_rejected.add();
  // Whoever can write keys can make every lookup meet such a record: one line per second per
  // worker at most (the metric above counts them all). A prefix of the digest identifies the key
  // for an operator (SCAN MATCH prefix*) without writing a whole key into the log.
  uint64_t suppressed = 0;
  if (!rejected_log_.allow(static_cast<int64_t>(uv_now(loop_)), suppressed)) return;
  if (suppressed == 0) {
    SG_LOG_WARN("redis store: record under %s%.8s... refused: %s", key_prefix_.c_str(),
                digest_hex(key).c_str(), why);
  } else {
    SG_LOG_WARN(
        "redis store: record under %s%.8s... refused: %s (and %llu more since the last "
        "such line)",
        key_prefix_.c_str(), digest_hex(key).c_str(), why,
        static_cast<unsigned long long>(suppressed));
  }
}

RedisStore::LookupWait* RedisStore::new_lookup_wait() {
  if (spare_lookups_.empty()) return new LookupWait;
  LookupWait* w = spare_lookups_.back().release();
  spare_lookups_.pop_back();
  return w;
}

void RedisStore::lookup(const TokenHash& key, int64_t now_ms, LookupCallback done) {
  LookupWait* w = new_lookup_wait();
  w->key = key;
  w->now_ms = now_ms;
  w->done = std::move(done);
  // The client has copied the command when send_formatted returns: the buffer is free again.
  write_digest_hex(key, lookup_command_.data() + lookup_hex_at_);
  client_.send_formatted(
      lookup_command_,
      // A handler runs exactly once (redis_client.h): it always gives `w` back.
      [this, w](const redisReply* r) {
        std::unique_ptr<LookupWait> owned(w);
        LookupCallback callback = std::move(owned->done);
        const TokenHash read_key = owned->key;
        const int64_t when = owned->now_ms;
        if (spare_lookups_.size() < RedisClient::kMaxSparePending)
          spare_lookups_.push_back(std::move(owned));
        on_lookup_reply(read_key, r, when, Follow{}, std::move(callback));
      },
      RedisClient::OnDrop::kRetryOnce);
}

// One HGETALL reply along the chain that started at a lookup's key. `key` is the key read.
void RedisStore::on_lookup_reply(const TokenHash& key, const redisReply* r, int64_t now_ms,
                                 Follow follow, LookupCallback done) {
  LookupResult result;
  // Behind a marker: in grace the session is served; after it, the lookup is a replay.
  if (follow.hops > 0) result.rotated = follow.in_grace ? RotatedKey::kNo : RotatedKey::kReplay;
  if (r == nullptr) {
    result.status = StoreStatus::kUnavailable;
    result.rotated = RotatedKey::kNo;
    if (done) done(std::move(result));
    return;
  }
  StoredEntry e;
  // Views into the reply, done with before `done` runs (which may start another lookup).
  HashFields& fields = fields_;
  fields.clear();
  if (is_error(r, "WRONGTYPE")) {
    e.kind = StoredKind::kMalformed;  // a value of another type under a session key
  } else if (!hash_fields(r, fields)) {
    result.status = StoreStatus::kUnavailable;
    result.rotated = RotatedKey::kNo;
    if (done) done(std::move(result));
    return;
  } else {
    e = read_session_hash(fields, now_ms, max_attributes_, max_attribute_bytes_);
  }
  fields.clear();
  switch (e.kind) {
    case StoredKind::kAbsent:
      break;
    case StoredKind::kMalformed:
      count_rejected(key, "not a session hash");
      break;
    case StoredKind::kInvalid:
      count_rejected(key, record_error_text(e.error));
      break;
    case StoredKind::kMarker:
      if (follow.hops == kMaxMarkerHops) {
        count_rejected(key, "too many rotation markers in a row");
        break;
      }
      if (follow.hops == 0) {
        follow.in_grace = now_ms < e.marker.grace_until_ms;
        result.rotated = follow.in_grace ? RotatedKey::kNo : RotatedKey::kReplay;
      }
      ++follow.hops;
      client_.send({"HGETALL", key_of(e.marker.next)},
                   [this, next = e.marker.next, now_ms, follow,
                    done = std::move(done)](const redisReply* r2) mutable {
                     on_lookup_reply(next, r2, now_ms, follow, std::move(done));
                   });
      return;
    case StoredKind::kSession:
      // The key outlives its deadline by kRedisExpiryGraceMs (the expiry sweep reads it then):
      // here the session is expired. The sweep deletes it and audits the expiry.
      result.expired = session_expiry(e.record, now_ms, idle_ms_, absolute_ms_);
      if (result.expired != ExpiryKind::kNone) break;
      result.record = std::move(e.record);
      if (follow.hops == 0) {
        result.status = StoreStatus::kOk;
        // A live session under its own key: the local cache reads it again, tracked.
        if (cache_) cache_refill(key);
      } else {
        result.live_key = key;
        result.status = follow.in_grace ? StoreStatus::kOk : StoreStatus::kNotFound;
        result.rotated = follow.in_grace ? RotatedKey::kInGrace : RotatedKey::kReplay;
      }
      break;
  }
  if (done) done(std::move(result));
}

void RedisStore::create(const TokenHash& key, const SessionRecord& record, DoneCallback done) {
  const int64_t now = unix_now_ms();
  const int64_t ttl = session_ttl_ms(record, now, idle_ms_, absolute_ms_);
  // The key outlives its deadline by the grace, and the session enters the expiry schedule at
  // that deadline (redis_scripts.h, "The expiry schedule").
  // Built by moves (an initializer list would copy every string): a new visitor's path.
  std::vector<std::string> fields = session_hash_fields(record);
  std::vector<std::string> args;
  args.reserve(6 + fields.size());
  args.emplace_back("2");
  args.push_back(key_of(key));
  args.push_back(schedule_key_);
  args.push_back(std::to_string(ttl + kRedisExpiryGraceMs));
  args.push_back(std::to_string(now + ttl));
  args.push_back(redis_schedule_member(key, record.handle));
  for (std::string& f : fields)
    args.push_back(std::move(f));
  client_.eval(
      redis_create_script(), std::move(args), [done = std::move(done)](const redisReply* r) {
        long long n = 0;
        // 0 means the key exists: a 256-bit collision. Fail closed, replace nothing.
        if (done)
          done(integer_reply(r, n) && n == 1 ? StoreStatus::kOk : StoreStatus::kUnavailable);
      });
}

void RedisStore::modify(const TokenHash& key, const SessionChange& change, int64_t now_ms,
                        DoneCallback done) {
  cache_forget(key);
  std::vector<std::string> args = common_args({key_of(key)}, now_ms);
  append_index_args(args, change);
  append_change_args(args, change);
  // A refresh (last-seen only) changes nothing another instance's copy shows that matters: a
  // copy with an older last-seen can only look idle sooner, and then Redis is asked.
  const bool shown = !change.set.empty() || !change.remove.empty();
  client_.eval(
      redis_modify_script(), std::move(args),
      [this, shown, user = joined_user(change), done = std::move(done)](const redisReply* r) {
        const StoreStatus s = write_reply(r, user);
        if (s == StoreStatus::kOk && shown) {
          after_reports(StoreStatus::kOk, std::move(done));
        } else if (done) {
          done(s);
        }
      });
}

void RedisStore::rotate(const TokenHash& old_key, const TokenHash& new_key,
                        const SessionChange& change, int64_t grace_ms, int64_t now_ms,
                        DoneCallback done) {
  cache_forget(old_key);
  cache_forget(new_key);
  std::vector<std::string> args = common_args({key_of(old_key), key_of(new_key)}, now_ms);
  append_index_args(args, change);
  args.push_back(digest_hex(new_key));
  args.push_back(std::to_string(now_ms + std::max<int64_t>(0, grace_ms)));
  append_change_args(args, change);
  client_.eval(redis_rotate_script(), std::move(args),
               [this, user = joined_user(change), done = std::move(done)](const redisReply* r) {
                 // -1 (the new key is taken) is kUnavailable, like no reply.
                 const StoreStatus s = write_reply(r, user);
                 if (s == StoreStatus::kOk) {
                   after_reports(s, std::move(done));
                 } else if (done) {
                   done(s);
                 }
               });
}

void RedisStore::destroy(const TokenHash& key, DoneCallback done) {
  cache_forget(key);
  client_.eval(redis_destroy_script(), {"1", key_of(key), key_prefix_},
               [this, key, done = std::move(done)](const redisReply* r) {
                 long long n = -2;
                 StoreStatus s = StoreStatus::kUnavailable;  // an error, a timeout, a lost link
                 if (integer_reply(r, n) && n >= 0) s = StoreStatus::kOk;  // gone now, or already
                 if (n == -1) s = StoreStatus::kNotFound;  // a marker is no live key
                 // Confirmed gone: every instance's tunnels of it close (issue 14). With local
                 // caches, the logout is answered once the PUBLISH is: Redis wrote the caches'
                 // reports of the DEL before it read the PUBLISH (after_reports).
                 if (n == 1 && wait_for_reports_) {
                   publish_end(end_event_by_key(key), std::move(done), s);
                   return;
                 }
                 if (n == 1) publish_end(end_event_by_key(key));
                 if (done) done(s);
               });
}

// Redis queues the tracking reports of a change while it runs the command and writes them in the
// same pass as the writer's reply, but after it (its pending writes go newest first): a Redis
// preempted between the two would let another instance serve its copy to a request sent after
// this one was answered. One more command, sent after the reply arrived, is read by Redis after
// that pass: its reply says the reports were written. Only where local_cache is on (instances
// sharing a Redis agree on it); a refresh needs none (modify).
void RedisStore::after_reports(StoreStatus s, DoneCallback done) {
  if (!wait_for_reports_) {
    if (done) done(s);
    return;
  }
  // Whatever the PING's fate: the change is made; a lost connection empties the caches anyway.
  // This worker's own copies of sessions the change ended (a user cap's evictions) go by their
  // reports too: read before the next hit, even within this loop turn.
  client_.send({"PING"}, [this, s, done = std::move(done)](const redisReply*) {
    cache_drain_before_next_hit();
    if (done) done(s);
  });
}

// Fire and forget: a lost message is caught by the instances' periodic check of watched
// sessions (session_follower.h). PUBLISH is one command on the connection already open.
void RedisStore::publish_end(std::string payload, DoneCallback then, StoreStatus s) {
  client_.send({"PUBLISH", events_channel_, payload},
               [s, then = std::move(then)](const redisReply*) {
                 if (then) then(s);
               });
}

void RedisStore::publish_end(const SessionHandle& handle) {
  publish_end(end_event_by_handle(handle));
}

}  // namespace sg
