// The Redis session store: sessions shared by every gateway instance behind a load balancer.
//
// Two layers. RedisClient (redis_client.h) is the connection: hiredis on the worker's loop,
// deadlines per command, reconnects, Sentinel, scripts; it knows nothing of sessions. RedisStore
// (this file) is the mapping of the SessionStore contract (session_store.h) onto that client:
// which keys and commands each operation uses (redis_codec.h, redis_scripts.h), and how a reply
// becomes a store status. To add keys (an index, say): a codec function for the key, a script
// or command per operation here, and the reply's mapping; the client needs no change.
//
// Ownership and threading: one RedisStore per worker, created, used and closed on that worker's
// loop thread only (usable() excepted). Callbacks run on the loop, never synchronously inside
// lookup/create/modify/rotate/destroy: a reply, a timeout, or (while disconnected) the next loop
// iteration completes them. Every callback runs exactly once; close() completes the ones still
// waiting, with kUnavailable, synchronously inside close(). Any client failure (timeout, lost
// connection, error reply, not connected: redis_client.h) is kUnavailable.
//
// Data: one hash per session (redis_codec.h), changed only by Lua scripts (redis_scripts.h) that
// check and write in one atomic step. Commands per operation:
// - lookup: HGETALL key (one command per returning visit), sent with OnDrop::kRetryOnce (a read
//   is idempotent). A rotation marker is followed with one more HGETALL per hop (at most
//   kMaxMarkerHops), only on that rare path.
// - create: EVALSHA create (the key must not exist: HSET of the fields, PEXPIRE).
// - modify: EVALSHA modify (only a live session hash: HDEL/HSET of the changed fields, last seen
//   forward only, bounds on the result, PEXPIRE to min(s + idle, c + absolute) - now). Never
//   re-creates a destroyed or expired session: it writes nothing to a key that is not live.
// - rotate: EVALSHA rotate, touching two keys (old and new, as it always did; the store talks
//   to one master, not to Redis Cluster): old must be live and new absent; the change is
//   applied, the hash RENAMEd to new, and old becomes a marker {r, g} with PEXPIRE
//   max(idle_timeout, grace), so it expires by itself.
// - The user index (redis_scripts.h): modify and rotate carry the session's index moves and the
//   cap in their one script; list_user, destroy_user and destroy_handle are one EVALSHA each.
//   A returning visit stays one HGETALL; a refresh of an indexed session adds one PEXPIRE (of
//   its handle key) inside the modify script.
// - The expiry schedule (redis_scripts.h): create, rotate and destroy keep it in their one
//   EVALSHA; sweep_expiries is one EVALSHA per second per instance (more only with a backlog).
// - destroy: EVALSHA destroy (DEL, unless the key is a marker; the session leaves its index). kOk
// only on a reply that says the
//   key is gone; an error reply (READONLY, LOADING, ...), a timeout or a lost connection is
//   kUnavailable. When the script removed a session, PUBLISH <prefix>events "k:<digest hex>"
//   (one more command, only on a destroy) so that every instance closes that session's tunnels.
// Writes (the scripts) are never retried: the connection may have dropped after the script ran,
// and a second run could apply a change twice or fail a rotation that in fact succeeded (the new
// key now taken).
// Everything read back passes read_session_hash (check_session_record with the configured
// bounds): a record that fails, or a key of another type, is not found, counted in
// sessiongate_store_records_rejected_total and logged at warn with a digest prefix only, at
// most one line per second per worker (whoever can write keys could otherwise flood the log).
// The TTL is the smaller of the remaining idle and absolute time plus kRedisExpiryGraceMs
// (redis_scripts.h): lookup checks both timeouts on the client with the caller's clock, and the
// expiry sweep removes and audits the expired sessions before Redis would drop them.
//
// The local cache (store.redis.local_cache > 0; redis_local_cache.h; redis_store_cache.cc): a
// returning visit whose record this worker read less than local_cache ago is answered by
// lookup_now() without a command. A second connection per worker names itself (CLIENT SETNAME,
// random), asks its CLIENT ID and SUBSCRIBEs to __redis__:invalidate; once both are up, the
// command connection checks with CLIENT LIST ID that the id is that connection on its own server
// (one address can reach several servers; ids are per server, and Redis sends the invalidations
// to any subscribed client of that id), then sends CLIENT TRACKING on REDIRECT <id> OPTIN. A
// lookup that finds a live session under its own key (not through a rotation marker) is followed
// by one more read of it, tracked (CLIENT CACHING yes, HGETALL: cache_refill), whose answer is
// kept: OPTIN, so that an unknown token's lookup leaves no key in Redis's tracking table (random
// cookies would fill it). Redis then tells that connection of every change to such a key (a
// write by any client, this one included: a modify, a rotation, a destroy, a script of the user
// index, the expiry sweep, an expiry or eviction, a FLUSHDB), and the entry goes. This worker's own
// writes also drop the entry before they are sent. Before a cached record is served, the
// invalidation connection is read to its end (once per loop turn): a change whose invalidation has
// already reached this machine is never missed, so a logout on another instance, answered to the
// browser before its next request, is seen by that request here. A lost connection (either), a
// refused CLIENT TRACKING (Redis before 6.2, a proxy in front of it) or the two connections on
// different servers (a Sentinel failover under way) empties the cache and keeps it off until
// tracking is confirmed again. Every entry also expires local_cache after its read: the bound on
// serving a session changed elsewhere while the invalidation connection is silently cut. Metrics:
// redis_cache_hits, redis_cache_invalidations.
//
// Lifetime: call close() before destroying the store (the destructor does if you did not).
// After close() the store holds no open uv handle, so the worker's loop can finish.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "proxy_core/config/config.h"
#include "proxy_core/ops/log_limit.h"
#include "proxy_core/ops/metrics.h"
#include "proxy_core/session/session_store.h"
#include "proxy_core/store/redis_client.h"
#include "proxy_core/store/redis_codec.h"
#include "proxy_core/store/redis_local_cache.h"

namespace sg {

// The connection options of [store.redis] (the keys that are about the connection).
RedisClientOptions redis_client_options(const RedisStoreConfig& cfg);

class RedisStore final : public SessionStore {
 public:
  // A lookup follows at most this many rotation markers (a session rotated that often within
  // one idle timeout is a loop or an attack).
  static constexpr int kMaxMarkerHops = 4;

  // REQUIRES: timeouts > 0, cfg.timeout > 0. `metrics` may be null; it must outlive the store.
  // max_attributes/max_attribute_bytes bound the records read back (0 = unbounded).
  // `user_attribute` names the user (folded; UserIndexPolicy, empty = no user index).
  // `own_cache` false: no local cache of its own even with cfg.local_cache > 0 (a store that
  // looks up no tokens: the admin API's), while its writes still wait for the reports that the
  // other stores' caches need (after_reports).
  RedisStore(uv_loop_t* loop, const RedisStoreConfig& cfg, Millis idle_timeout,
             Millis absolute_timeout, WorkerMetrics* metrics, uint32_t max_attributes,
             uint32_t max_attribute_bytes, std::string user_attribute = UserIndexPolicy{}.attribute,
             bool own_cache = true);
  ~RedisStore() override;
  RedisStore(const RedisStore&) = delete;
  RedisStore& operator=(const RedisStore&) = delete;

  // Starts connecting (returns at once; usable() turns true when connected). Call once.
  void start();
  // Drops the connection, completes waiting callbacks with kUnavailable and closes every handle.
  // Later calls to the store complete synchronously with kUnavailable. Idempotent.
  // REQUIRES: not called from inside one of this store's completion callbacks.
  void close();

  void lookup(const TokenHash& key, int64_t now_ms, LookupCallback done) override;
  // A hit of the local cache (see above); false when the cache is off or has no fresh copy.
  bool lookup_now(const TokenHash& key, int64_t now_ms, LookupResult& out) override;
  void create(const TokenHash& key, const SessionRecord& record, DoneCallback done) override;
  void modify(const TokenHash& key, const SessionChange& change, int64_t now_ms,
              DoneCallback done) override;
  void rotate(const TokenHash& old_key, const TokenHash& new_key, const SessionChange& change,
              int64_t grace_ms, int64_t now_ms, DoneCallback done) override;
  void destroy(const TokenHash& key, DoneCallback done) override;
  // The user index (redis_store_users.cc; keys and scripts in redis_scripts.h): one EVALSHA each.
  void list_user(const std::string& user, int64_t now_ms, UsersCallback done) override;
  void destroy_user(const std::string& user, const TokenHash* except, int64_t now_ms,
                    UsersCallback done) override;
  void destroy_handle(const SessionHandle& handle, int64_t now_ms, UsersCallback done) override;
  // True while the client is connected and not stalled (redis_client.h). Any thread.
  bool usable() const override { return client_.usable(); }

  // "host:port" or socket path of the server currently connected to (sentinel: the master).
  const std::string& server() const { return client_.server(); }
  // Issue 14, the expiry schedule (redis_scripts.h): one EVALSHA that takes at most `limit`
  // members due at now_ms, reschedules the live sessions and ends the others (published in the
  // script). `done` gets ok = false when Redis did not answer (the members it took, if the script
  // ran, are lost: at most `limit` unaudited ends). Run by RedisExpirySweep
  // (redis_expiry_sweep.h), which writes the audit lines.
  struct SweptEnd {
    std::string event;    // "expired" or "evicted"
    std::string reason;   // "idle", "absolute" or empty
    std::string session;  // handle hex
    std::string user;     // empty when unknown (evicted: the record is gone)
    std::string client;
  };
  using SweepCallback = std::function<void(bool ok, size_t taken, std::vector<SweptEnd> ends)>;
  void sweep_expiries(int64_t now_ms, size_t limit, SweepCallback done);

  // Issue 14: tells every instance that this session ended (PUBLISH on the events channel,
  // redis_codec.h), for a revocation that names sessions by handle. destroy() publishes by key
  // itself once Redis confirmed the key was removed.
  void publish_end(const SessionHandle& handle);

 private:
  // A lookup waiting for its first HGETALL reply. Reused (spare_lookups_): the reply handler
  // captures only the store and this, so that it fits in std::function without an allocation.
  struct LookupWait {
    TokenHash key{};
    int64_t now_ms = 0;
    LookupCallback done;
  };
  // Where a lookup is along a chain of rotation markers.
  struct Follow {
    int hops = 0;           // markers followed so far
    bool in_grace = false;  // the first marker's grace window was still open
  };

  std::string key_of(const TokenHash& key) const;
  // ARGV[1..5] of the session scripts (redis_scripts.h).
  std::vector<std::string> common_args(std::vector<std::string> keys, int64_t now_ms) const;
  // The user `change` sets (non-empty), or empty when it sets none.
  std::string joined_user(const SessionChange& change) const;
  // ARGV[6..7]: what `change` does to the session's user (redis_scripts.h, modify).
  void append_index_args(std::vector<std::string>& args, const SessionChange& change) const;
  // The reply of modify/rotate: its status; the sessions of `user` the cap evicted are audited.
  StoreStatus write_reply(const redisReply* r, const std::string& user) const;
  void destroy_user_or_list(const std::string& user, const TokenHash* except, int64_t now_ms,
                            bool destroy, UsersCallback done);
  // The reply of the index scripts (flat handle, created, last seen, client, agent).
  static bool user_sessions(const redisReply* r, std::vector<UserSession>& out);
  void on_lookup_reply(const TokenHash& key, const redisReply* reply, int64_t now_ms, Follow follow,
                       LookupCallback done);
  void count_rejected(const TokenHash& key, const char* why);
  LookupWait* new_lookup_wait();
  // PUBLISH on the events channel; `then(s)` (may be empty) runs at its reply, whatever it is.
  void publish_end(std::string payload, DoneCallback then = {}, StoreStatus s = StoreStatus::kOk);
  // `done(s)` once Redis has written the tracking reports of the change just answered (with the
  // local cache; at once without): see redis_store.cc.
  void after_reports(StoreStatus s, DoneCallback done);
  // publish_end of each ended session, then done(s, ended) (after_reports' wait with the cache).
  void publish_ends(StoreStatus s, std::vector<UserSession> ended, UsersCallback done);

  // The local cache (redis_store_cache.cc).
  void start_local_cache(const RedisStoreConfig& cfg);
  // Either connection came up or went down: the cache empties; tracking is asked again when both
  // are up on the same server.
  void cache_link_changed();
  void on_invalidation(const redisReply* payload);
  // CLIENT LIST ID's `line` is this store's listener (its id and listener_name_).
  bool names_listener(std::string_view line, const std::string& id) const;
  // The listener is confirmed on the command connection's server: CLIENT TRACKING ... REDIRECT.
  void start_tracking();
  // Logged once per store: the cache stays off (why: what was not confirmed).
  void tracking_not_confirmed(const char* why);
  // Before a write of `key` is sent: the cached copy goes now, not when Redis says so.
  void cache_forget(const TokenHash& key) {
    if (cache_) cache_->invalidate(key);
  }
  // A lookup found a live session under `key`: read it again, tracked (CLIENT CACHING yes, then
  // HGETALL), and keep what that read returns unless a report or a lost link spoiled it. One
  // such read per key at a time.
  void cache_refill(const TokenHash& key);
  void on_refill_reply(const TokenHash& key, const redisReply* r, bool tracked,
                       RedisLocalCache::ReadTicket ticket, uint64_t link_gen, int64_t sent_ms);
  // HGETALL's field/value list. False when the reply is not one (a misbehaving server or proxy).
  static bool hash_fields(const redisReply* r, HashFields& out);
  // A write whose keys this worker does not know (the user index) was answered: the next hit
  // reads the invalidations first, even within this loop turn.
  void cache_drain_before_next_hit() { force_drain_ = true; }

  uv_loop_t* loop_;
  std::string key_prefix_;
  std::string events_channel_;  // key_prefix_ + "events"
  std::string schedule_key_;    // key_prefix_ + "expiries" (redis_scripts.h)
  int64_t idle_ms_;
  int64_t absolute_ms_;
  WorkerMetrics* metrics_;
  uint32_t max_attributes_;
  uint32_t max_attribute_bytes_;
  std::string user_attribute_;
  LogLimiter rejected_log_;  // crafted records: one warning per second (count_rejected)
  // The returning visit's command, HGETALL <prefix><digest hex> in RESP, formatted once: lookup
  // writes the digest's hex at lookup_hex_at_ and sends it (redis_codec.h's key, byte for byte).
  std::string lookup_command_;
  size_t lookup_hex_at_ = 0;
  std::vector<std::unique_ptr<LookupWait>> spare_lookups_;
  HashFields fields_;  // on_lookup_reply's view of a reply, capacity reused
  RedisClient client_;

  // Instances sharing this Redis cache (local_cache > 0): writes wait for the reports.
  bool wait_for_reports_ = false;
  // The local cache; all null/zero when store.redis.local_cache is 0.
  std::unique_ptr<RedisLocalCache> cache_;
  std::unique_ptr<RedisClient> invalidations_;  // subscribed to __redis__:invalidate
  uv_prepare_t* turn_ = nullptr;                // counts loop turns (turn_count_)
  uint64_t turn_count_ = 0;
  uint64_t drained_turn_ = 0;     // the turn invalidations_ was last read in by lookup_now
  bool force_drain_ = false;      // cache_drain_before_next_hit
  bool command_link_up_ = false;  // client_ is ready
  long long listener_id_ = 0;     // CLIENT ID of invalidations_' subscribed connection, 0: none
  std::string listener_name_;     // its CLIENT SETNAME, random per store (names_listener)
  uint64_t link_gen_ = 1;         // bumped on every link change of either connection
  uint64_t tracking_gen_ = 0;     // link_gen_ when CLIENT TRACKING was sent on it, 0: not sent
  bool tracking_on_ = false;      // Redis confirmed it (for tracking_gen_ == link_gen_)
  bool tracking_refused_logged_ = false;
};

}  // namespace sg
