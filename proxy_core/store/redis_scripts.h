// The Lua scripts of the Redis store (redis_store.h), run by its client (redis_client.h). Each
// runs atomically in Redis, so a session is checked and changed in one step that no other client
// can interleave with. They are loaded
// with SCRIPT LOAD when a connection opens and called with EVALSHA; a NOSCRIPT reply (after a
// failover or SCRIPT FLUSH) is answered by sending the script itself with EVAL, which runs it and
// caches it again.
//
// Arguments common to the session scripts: ARGV[1] now (ms), ARGV[2] idle timeout (ms), ARGV[3]
// absolute timeout (ms), ARGV[4] the key prefix, ARGV[5] the user attribute (folded; '' = no user
// index). A session is live when its key is a hash with c and s and no r, and neither timeout has
// passed at `now`. Scripts never write to a key that is not a live session, except create (only
// to a key that does not exist) and rotate (the old key becomes a marker).
//
// The user index (session_store.h, "The user index"; keys in redis_codec.h). An indexed session's
// hash holds u, its user's index id; the index is a sorted set of session digests by created time
// under prefix{u:<id>}, and prefix h:<handle> names the session's live digest (for destroy by
// handle), with the session's own TTL. The scripts keep them in step in the same atomic step as
// the write that moves a session: modify and rotate join, leave or re-key (and decide the cap
// before writing anything), destroy leaves. The expiry sweep takes an expired session out with
// its entry; one that Redis evicted (or that expired unswept) leaves its entry stale until a
// reader meets it: every join prunes (the 8 oldest entries,
// all of them up to cap + 64 with a cap), listing prunes what it examines, entries older than the
// absolute timeout leave at once, and the index key expires `absolute` after its last join.
// Every reader checks that an entry is a live session of that index and of that user.
//
// The expiry schedule (issue 14: expiry and eviction are audited, with neither keyspace
// notifications nor CONFIG, which managed Redis forbids). prefix..'expiries' is a sorted set with
// one member per session, "<digest hex>:<handle hex>" (never a token; the handle so that an
// eviction can still name the session), scored by the earliest time it can expire: min(last seen
// + idle, created + absolute) when a script last wrote it. create adds the member, rotate moves
// it to the new digest, destroy and kill() take it out, all inside their one EVALSHA; modify adds
// it only when it is missing (ZADD NX: a session made by an older gateway joins at its first
// refresh) and never moves it, so a refresh costs one O(1) member test and no command. The
// session key lives kRedisExpiryGraceMs past its deadline (readers already treat a record past
// its deadline as expired: lookup, live() in the scripts), so that the sweep can still see why it
// ended. The sweep (redis_sweep_script, run once a second by every instance: redis_expiry_sweep.h)
// takes at most kRedisSweepBatch members whose score is due, atomically (each is handled by one
// instance only), and for each:
// - the session is live (refreshed since it was scheduled): it goes back in at its real deadline;
// - it is past its deadline: deleted with its index entry and handle key, reported as expired,
//   idle or absolute by whichever deadline came first;
// - its key is gone: Redis removed it before deadline + grace, and only maxmemory eviction does
//   that (our own removals take the member out), so it is reported as evicted, with the handle
//   only (user and client went with the record). The blind spot: when no instance swept for
//   longer than the grace (every gateway down, or Redis unreachable, for over a minute), a
//   session that expired meanwhile is reported as evicted. A session destroyed by a gateway older
//   than the schedule is reported as evicted too; one it rotated is followed through its markers
//   (at most 4) and rescheduled under its live key;
// - anything else under the key (not a hash of ours, another handle): the member is dropped.
// Every session the sweep ends is PUBLISHed ("h:<handle>", redis_codec.h) in the same script, so
// that its WebSocket tunnels close on every instance at once.
//
// Keys and Redis Cluster: the index keys of one user share the hash tag {u:<id>}, but a script
// that moves a session touches the session's key (its slot follows the token) and one or two
// index keys, and the index and session keys are computed in the script (the old index is read
// from the session): these scripts need one Redis node (master, or Sentinel), not Cluster. Cluster
// would need the write split in two steps (the session script, then an index script on the
// user's slot, the index tolerating the stale entries it already tolerates) and the cap decided on
// the user's slot first.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "proxy_core/session/session_store.h"
#include "proxy_core/store/redis_client.h"

namespace sg {

// How long a session key outlives its deadline, for the sweep to tell an expiry from an
// eviction: a minute covers a Redis reconnect (backoff at most a few seconds) and a gateway
// restart with room to spare, and costs a minute more of memory per ended session (about 0.3% of
// the store with a 30 min idle timeout).
inline constexpr int64_t kRedisExpiryGraceMs = 60'000;
// Schedule members one sweep takes; a sweep that took this many runs again at once, so a backlog
// is worked through in scripts of bounded length (about 256 small commands each).
inline constexpr size_t kRedisSweepBatch = 256;

// KEYS[1] the session, KEYS[2] the expiry schedule; ARGV[1] TTL ms (grace included), ARGV[2] the
// schedule score (the deadline, epoch ms), ARGV[3] the member, then the hash's field/value pairs.
// 1 = created, 0 = key taken.
const RedisScript& redis_create_script();
// KEYS[1]; ARGV[1..5] as above, ARGV[6] the index change ('' the user is untouched, '-' it is
// cleared, else the id of the user set; redis_index_arg), ARGV[7] that user, then the change
// (append_change_args). 1 = done, 0 = no live session, 2 = the result would break the bounds,
// 3 = the cap refuses the join (on_limit reject; both write nothing), or an array {1, handle,
// client, ...} naming the sessions the cap evicted (destroyed in the same step).
const RedisScript& redis_modify_script();
// KEYS[1] old, KEYS[2] new; ARGV[1..7] as modify's, ARGV[8] new key's digest hex, ARGV[9] grace
// until (ms), then the change. 1 = moved (old is now a marker with TTL max(idle, grace)), 0 = old
// is not a live session, -1 = new key taken, 2 = bounds, 3 = cap (nothing written), or the array
// of modify.
const RedisScript& redis_rotate_script();
// KEYS[1]; ARGV[1] the key prefix. 1 = deleted (and out of its index), 0 = was absent, -1 = a
// rotation marker (left alone: not a live key).
const RedisScript& redis_destroy_script();
// KEYS[1] the user's index key; ARGV[1..5], ARGV[6] index id, ARGV[7] user. The user's live
// sessions, oldest first, as a flat array: handle, created, last seen, client, user agent.
// At most kRedisMaxListed entries are examined per call.
const RedisScript& redis_list_user_script();
// As list_user, ARGV[8] a digest to spare ('' = none): destroys them and answers those destroyed.
const RedisScript& redis_destroy_user_script();
// KEYS[1] the handle key; ARGV[1..5], ARGV[6] the handle hex. The session destroyed ({} = none).
const RedisScript& redis_destroy_handle_script();
inline constexpr int kRedisMaxListed = 10000;
// KEYS[1] the expiry schedule; ARGV[1..5], ARGV[6] at most this many members. {taken, then per
// session ended: event ("expired", "evicted"), reason ("idle", "absolute", ""), handle hex, user,
// client}.
const RedisScript& redis_sweep_script();
// All of the above, for SCRIPT LOAD.
std::vector<const RedisScript*> redis_scripts();

// Appends a change's arguments: last seen, max attributes, max bytes, max per user, on limit
// ("reject" or "evict"), the number of attributes set, the set pairs (an empty value removes the
// attribute), then the names removed.
void append_change_args(std::vector<std::string>& args, const SessionChange& change);

// Building blocks of the scripts (redis_scripts.cc, redis_user_scripts.cc).
std::string redis_script_prelude();
std::string redis_index_lua();
RedisScript make_redis_script(const char* name, std::string body);

}  // namespace sg
