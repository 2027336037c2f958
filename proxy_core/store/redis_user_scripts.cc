// The Redis store's user index in Lua (redis_scripts.h, "The user index"): the helpers the session
// scripts share, and the scripts that read the index (list, destroy-user, destroy by handle).
#include <string>

#include "proxy_core/store/redis_scripts.h"

namespace sg {
namespace {

// ikey(), hkey(), the schedule's sched and entry(), member(), scan(), kill() and describe() (see
// redis_index_lua).
std::string index_readers_lua() {
  return "local prefix, uattr = ARGV[4], ARGV[5] "
         "local function ikey(id) return prefix .. '{u:' .. id .. '}' end "
         "local function hkey(h) return prefix .. 'h:' .. h end "
         "local function ms(v) return string.format('%d', v) end "
         "local sched = prefix .. 'expiries' "
         "local function entry(d, h) return d .. ':' .. h end "
         "local function member(d, id, user) "
         "  local c, s, u, h = live(prefix .. d) "
         "  if not c or u ~= id then return nil end "
         "  local f = redis.call('HMGET', prefix .. d, 'ip', 'ua', 'a:' .. uattr) "
         "  if user and f[3] ~= user then return false end "
         "  return {d = d, h = h or '', c = c, s = s, ip = f[1] or '', ua = f[2] or ''} "
         "end "
         "local function scan(id, user, limit) "
         "  local ik = ikey(id) "
         "  redis.call('ZREMRANGEBYSCORE', ik, '-inf', '(' .. ms(now - abs)) "
         "  local ds = redis.call('ZRANGE', ik, 0, limit - 1) "
         "  local out, stayed = {}, 0 "
         "  for _, d in ipairs(ds) do "
         "    local m = member(d, id, user) "
         "    if m == nil then redis.call('ZREM', ik, d) else stayed = stayed + 1 end "
         "    if m then out[#out + 1] = m end "
         "  end "
         "  return out, redis.call('ZCARD', ik) - stayed "
         "end "
         "local function kill(m, id) "
         "  redis.call('DEL', prefix .. m.d) "
         "  if m.h ~= '' then "
         "    redis.call('DEL', hkey(m.h)) "
         "    redis.call('ZREM', sched, entry(m.d, m.h)) "
         "  end "
         "  redis.call('ZREM', ikey(id), m.d) "
         "end "
         "local function describe(list) "
         "  local out = {} "
         "  for _, m in ipairs(list) do "
         "    out[#out + 1] = m.h out[#out + 1] = ms(m.c) out[#out + 1] = ms(m.s) "
         "    out[#out + 1] = m.ip out[#out + 1] = m.ua "
         "  end "
         "  return out "
         "end ";
}

// plan() and settle() (see redis_index_lua).
std::string index_writers_lua() {
  return "local function plan(u, i, x) "
         "  local want = ARGV[x] "
         "  if uattr == '' or want == '' or want == u then return {keep = true} end "
         "  if want == '-' then return {leave = true} end "
         "  local cap, p = tonumber(ARGV[i + 3]), {join = want, victims = {}} "
         "  if cap == 0 then scan(want, ARGV[x + 1], 8) return p end "
         "  local lv, rest = scan(want, ARGV[x + 1], cap + 64) "
         "  local n = #lv + rest "
         "  if n < cap then return p end "
         "  if ARGV[i + 4] == 'reject' then return nil end "
         "  for j = 1, math.min(#lv, n - cap + 1) do p.victims[j] = lv[j] end "
         "  return p "
         "end "
         "local function settle(p, k, d, od, u, h, c, ttl) "
         "  local ev = {} "
         "  if p.keep then "
         "    if u and h and od ~= d then "
         "      redis.call('ZADD', ikey(u), redis.call('ZSCORE', ikey(u), od) or ms(c), d) "
         "      redis.call('ZREM', ikey(u), od) "
         "      redis.call('SET', hkey(h), d, 'PX', ms(ttl)) "
         "    elseif u and h then "
         "      redis.call('PEXPIRE', hkey(h), ms(ttl)) "
         "    end "
         "    return ev "
         "  end "
         "  if u then "
         "    redis.call('ZREM', ikey(u), od) "
         "    if h then redis.call('DEL', hkey(h)) end "
         "    redis.call('HDEL', k, 'u') "
         "  end "
         "  if p.leave then return ev end "
         "  for _, m in ipairs(p.victims) do "
         "    kill(m, p.join) "
         "    ev[#ev + 1] = m.h ev[#ev + 1] = m.ip "
         "  end "
         "  local late = 0 "
         "  local top = redis.call('ZREVRANGEBYSCORE', ikey(p.join), string.format('%d.999', c), "
         "    string.format('%d', c), 'WITHSCORES', 'LIMIT', 0, 1) "
         "  if top[2] then late = math.min(999, math.floor((tonumber(top[2]) - c) * 1000 + 0.5) + "
         "1) end "
         "  redis.call('ZADD', ikey(p.join), string.format('%d.%03d', c, late), d) "
         "  redis.call('PEXPIRE', ikey(p.join), ms(abs)) "
         "  redis.call('HSET', k, 'u', p.join) "
         "  if h then redis.call('SET', hkey(h), d, 'PX', ms(ttl)) end "
         "  return ev "
         "end ";
}

}  // namespace

// Shared by the session scripts, after prelude()'s live() and change(). ARGV[4] is the key
// prefix, ARGV[5] the user attribute ('' = no index).
// member(d, id, user): the session under prefix..d as an entry of index `id`: nil when the entry
// is stale (no live session there, or the session is in no or another index: it leaves), false
// when it is live in that index but its user is not `user` (two users whose ids collide share an
// index; the entry stays, it is not ours to show or count), else what a listing shows.
// scan(id, user, limit): the live entries of `user` among the `limit` oldest, oldest first; the
// stale ones met leave the index, and every entry created more than `abs` ago leaves at once (its
// session is dead by the absolute timeout). Also returns how many entries were not examined.
// sched is the expiry schedule's key, entry(d, h) a session's member in it (redis_scripts.h);
// kill() takes the session out of it (destroyed, not expired).
// plan(u, i, x): what a change does to the index, decided before anything is written: ARGV[x] is
// '' (user untouched), '-' (user cleared) or the id of the user set, ARGV[x + 1] that user, the
// cap is ARGV[i + 3] with ARGV[i + 4] 'reject' or 'evict'. nil = refused by the cap. A join
// without a cap looks at the 8 oldest entries (pruning bounded per call); with a cap it counts
// the live ones exactly (up to cap + 64 entries examined; an entry not examined counts as live).
// settle(p, k, d, od, u, h, c, ttl): carries the plan out once the change is written: the
// session (key k, digest d, before od, index u, handle h, created c, TTL ttl) stays, leaves or
// joins; the evicted die. Returns the evicted's handle/client pairs. The score is the created time
// with the join's rank among the index's sessions created in that same millisecond as the
// fraction (.000, .001, ...): sessions created at once (devices opened together) are ordered by
// their logins, as the memory store does, however late the logins come (a delay as the fraction
// saturated after 999 ms and tied, then ZSET order fell back to the digests). A
// re-keyed entry is added before the old one leaves: a set that became empty would vanish and come
// back without its TTL.
std::string redis_index_lua() {
  return index_readers_lua() + index_writers_lua();
}

namespace {

// The index scripts: KEYS[1] the index key, ARGV[1..5] as the session scripts, ARGV[6] the index
// id, ARGV[7] the user, ARGV[8] a digest to spare ('' = none). At most kRedisMaxListed entries are
// examined per call.
std::string users_script(const char* tail) {
  return redis_script_prelude() + "local lv = scan(ARGV[6], ARGV[7], " +
         std::to_string(kRedisMaxListed) + ") " + tail;
}

}  // namespace

const RedisScript& redis_list_user_script() {
  static const RedisScript s = make_redis_script("list_user", users_script("return describe(lv)"));
  return s;
}

const RedisScript& redis_destroy_user_script() {
  static const RedisScript s =
      make_redis_script("destroy_user", users_script("local out = {} "
                                                     "for _, m in ipairs(lv) do "
                                                     "  if m.d ~= ARGV[8] then "
                                                     "    kill(m, ARGV[6]) "
                                                     "    out[#out + 1] = m "
                                                     "  end "
                                                     "end "
                                                     "return describe(out)"));
  return s;
}

const RedisScript& redis_destroy_handle_script() {
  // The handle key may name a session that has gone (idle expiry drops both together, but a
  // crafted or half-evicted pair may not): such a key is removed and nothing is reported.
  static const RedisScript s = make_redis_script(
      "destroy_handle", redis_script_prelude() +
                            "if redis.call('TYPE', KEYS[1])['ok'] ~= 'string' then return {} end "
                            "local d = redis.call('GET', KEYS[1]) "
                            "local c, s, u, h = live(prefix .. d) "
                            "local m = c and u and h == ARGV[6] and member(d, u, nil) "
                            "if not m then redis.call('DEL', KEYS[1]) return {} end "
                            "kill(m, u) "
                            "return describe({m})");
  return s;
}

}  // namespace sg
