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
// before writing anything), destroy leaves. Idle expiry and Redis's own eviction drop a session
// silently; its entry is stale until a reader meets it: every join prunes (the 8 oldest entries,
// all of them up to cap + 64 with a cap), listing prunes what it examines, entries older than the
// absolute timeout leave at once, and the index key expires `absolute` after its last join.
// Every reader checks that an entry is a live session of that index and of that user.
//
// Keys and Redis Cluster: the index keys of one user share the hash tag {u:<id>}, but a script
// that moves a session touches the session's key (its slot follows the token) and one or two
// index keys, and the index and session keys are computed in the script (the old index is read
// from the session): these scripts need one Redis node (master, or Sentinel), not Cluster. Cluster
// would need the write split in two steps (the session script, then an index script on the
// user's slot, the index tolerating the stale entries it already tolerates) and the cap decided on
// the user's slot first.
#pragma once

#include <string>
#include <vector>

#include "proxy_core/session/session_store.h"
#include "proxy_core/store/redis_client.h"

namespace sg {

// KEYS[1]; ARGV[1] TTL ms, then the hash's field/value pairs. 1 = created, 0 = key taken.
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
