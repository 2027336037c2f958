// The Lua scripts of the Redis store (redis_store.h), run by its client (redis_client.h). Each
// runs atomically in Redis, so a session is checked and changed in one step that no other client
// can interleave with. They are loaded
// with SCRIPT LOAD when a connection opens and called with EVALSHA; a NOSCRIPT reply (after a
// failover or SCRIPT FLUSH) is answered by sending the script itself with EVAL, which runs it and
// caches it again.
//
// Arguments common to the session scripts: ARGV[1] now (ms), ARGV[2] idle timeout (ms), ARGV[3]
// absolute timeout (ms). A session is live when its key is a hash with c and s and no r, and
// neither timeout has passed at `now`. Scripts never write to a key that is not a live session,
// except create (only to a key that does not exist) and rotate (the old key becomes a marker).
#pragma once

#include <string>
#include <vector>

#include "proxy_core/session/session_store.h"
#include "proxy_core/store/redis_client.h"

namespace sg {

// KEYS[1]; ARGV[1] TTL ms, then the hash's field/value pairs. 1 = created, 0 = key taken.
const RedisScript& redis_create_script();
// KEYS[1]; ARGV[1..3] as above, then the change (append_change_args). 1 = done, 0 = no live
// session, 2 = the result would break the bounds (nothing written).
const RedisScript& redis_modify_script();
// KEYS[1] old, KEYS[2] new; ARGV[1..3] as above, ARGV[4] new key's digest hex, ARGV[5] grace
// until (ms), then the change. 1 = moved (old is now a marker with TTL max(idle, grace)), 0 = old
// is not a live session, -1 = new key taken, 2 = bounds (nothing written).
const RedisScript& redis_rotate_script();
// KEYS[1]. 1 = deleted, 0 = was absent, -1 = a rotation marker (left alone: not a live key).
const RedisScript& redis_destroy_script();
// All of the above, for SCRIPT LOAD.
std::vector<const RedisScript*> redis_scripts();

// Appends a change's arguments: last seen, max attributes, max bytes, the number of attributes
// set, the set pairs (an empty value removes the attribute), then the names removed.
void append_change_args(std::vector<std::string>& args, const SessionChange& change);

}  // namespace sg
