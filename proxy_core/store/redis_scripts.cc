#include "proxy_core/store/redis_scripts.h"

#include <openssl/evp.h>

#include "proxy_core/session/session_record_check.h"

namespace sg {

// Shared by the session scripts. live(k) returns c, s, u (its user index id, or nil) and h (its
// handle) of the live session under k, or nil.
// HMGET on a key of another type would fail the script, hence TYPE first. The time checks repeat
// the ones lookup makes (session_record_check.h), so that a crafted hash is never extended, and
// int(v) takes only what the C++ decoder takes (redis_codec.cc: '-'? digits, at most 20 chars):
// tonumber alone would read "1e12", "0x10", "1.5" or " 7" that lookup refuses.
// change(k, c, s, i) applies the change whose arguments start at ARGV[i]; it returns false, having
// written nothing, when the result would break the bounds. Removals are applied before sets, and
// bounds are checked only when something is set (a change that only removes cannot make it
// worse). An empty value in the set pairs removes, as in the memory store (never stores ''). Last
// seen only moves forward; the TTL is min(s + idle, c + absolute) - now, which change() returns
// (false when refused), and the key keeps kRedisExpiryGraceMs more (redis_scripts.h, "The expiry
// schedule"). The index and schedule helpers follow (redis_user_scripts.cc).
std::string redis_script_prelude() {
  return "local now, idle, abs = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]) "
         "local grace = " +
         std::to_string(kRedisExpiryGraceMs) +
         " "
         "local function int(v) "
         "  if type(v) ~= 'string' or #v > 20 or not string.match(v, '^%-?%d+$') then return nil "
         "end "
         "  return tonumber(v) "
         "end "
         "local function live(k) "
         "  if redis.call('TYPE', k)['ok'] ~= 'hash' then return nil end "
         "  local f = redis.call('HMGET', k, 'c', 's', 'r', 'u', 'h') "
         "  if f[3] then return nil end "
         "  local c, s = int(f[1]), int(f[2]) "
         "  if not c or not s or c < 0 or s < c or s > now + " +
         std::to_string(kRecordClockSkewMs) +
         " then return nil end "
         "  if now - c > abs or now - s > idle then return nil end "
         "  return c, s, f[4], f[5] "
         "end "
         "local function change(k, c, s, i) "
         "  local seen, maxn, maxb = tonumber(ARGV[i]), tonumber(ARGV[i + 1]), "
         "tonumber(ARGV[i + 2]) "
         "  local nset = tonumber(ARGV[i + 5]) "
         "  local first_set, first_remove = i + 6, i + 6 + 2 * nset "
         "  local attrs, dels, sets = {}, {}, {} "
         "  if nset > 0 then "
         "    local all = redis.call('HGETALL', k) "
         "    for j = 1, #all, 2 do "
         "      if string.sub(all[j], 1, 2) == 'a:' then attrs[string.sub(all[j], 3)] = all[j + 1] "
         "end "
         "    end "
         "  end "
         "  for j = first_remove, #ARGV do "
         "    attrs[ARGV[j]] = nil "
         "    dels[#dels + 1] = 'a:' .. ARGV[j] "
         "  end "
         "  for j = first_set, first_remove - 1, 2 do "
         "    if ARGV[j + 1] == '' then "
         "      attrs[ARGV[j]] = nil "
         "      dels[#dels + 1] = 'a:' .. ARGV[j] "
         "    else "
         "      attrs[ARGV[j]] = ARGV[j + 1] "
         "      sets[#sets + 1] = 'a:' .. ARGV[j] "
         "      sets[#sets + 1] = ARGV[j + 1] "
         "    end "
         "  end "
         "  if nset > 0 then "
         "    local n, b = 0, 0 "
         "    for name, v in pairs(attrs) do n = n + 1 b = b + #name + #v end "
         "    if (maxn > 0 and n > maxn) or (maxb > 0 and b > maxb) then return false end "
         "  end "
         "  if #dels > 0 then redis.call('HDEL', k, unpack(dels)) end "
         "  if seen > s then "
         "    s = seen "
         "    sets[#sets + 1] = 's' "
         "    sets[#sets + 1] = ARGV[i] "
         "  end "
         "  if #sets > 0 then redis.call('HSET', k, unpack(sets)) end "
         "  local ttl = math.min(s + idle, c + abs) - now "
         "  if ttl < 1 then ttl = 1 end "
         "  redis.call('PEXPIRE', k, string.format('%d', ttl + grace)) "
         "  return ttl "
         "end " +
         redis_index_lua();
}

namespace {

std::string sha1_hex(const std::string& text) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(text.data(), text.size(), md, &n, EVP_sha1(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < n; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 0xf]);
  }
  return out;
}

}  // namespace

RedisScript make_redis_script(const char* name, std::string body) {
  RedisScript s{name, std::move(body), {}};
  s.sha1 = sha1_hex(s.body);
  return s;
}

const RedisScript& redis_create_script() {
  // HSET on a missing key creates it; EXISTS first makes a 256-bit collision fail closed. The
  // session enters the expiry schedule in the same step.
  static const RedisScript s =
      make_redis_script("create",
                        "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end "
                        "redis.call('HSET', KEYS[1], unpack(ARGV, 4)) "
                        "redis.call('PEXPIRE', KEYS[1], ARGV[1]) "
                        "redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3]) "
                        "return 1");
  return s;
}

const RedisScript& redis_modify_script() {
  // The index is planned (the cap decided) before the change is written, so that a refusal by
  // either the cap or the bounds writes nothing but the pruning of dead entries.
  static const RedisScript s =
      make_redis_script("modify", redis_script_prelude() +
                                      "local c, s, u, h = live(KEYS[1]) "
                                      "if not c then return 0 end "
                                      "local p = plan(u, 8, 6) "
                                      "if not p then return 3 end "
                                      "local ttl = change(KEYS[1], c, s, 8) "
                                      "if not ttl then return 2 end "
                                      "local d = string.sub(KEYS[1], #prefix + 1) "
                                      "if h then redis.call('ZADD', sched, 'NX', ms(now + ttl), "
                                      "entry(d, h)) end "
                                      "local ev = settle(p, KEYS[1], d, d, u, h, c, ttl) "
                                      "if #ev == 0 then return 1 end "
                                      "table.insert(ev, 1, 1) "
                                      "return ev");
  return s;
}

const RedisScript& redis_rotate_script() {
  // The change is applied under the old key first (so that a refusal writes nothing), then the
  // hash is renamed (RENAME keeps the TTL just set) and the old key becomes the marker, kept for
  // the idle timeout (or the grace window, if that is longer) to tell replays from unknown keys.
  // The index entry follows the session to its new key (or leaves, or joins another user's).
  static const RedisScript s = make_redis_script(
      "rotate", redis_script_prelude() +
                    "local c, s, u, h = live(KEYS[1]) "
                    "if not c then return 0 end "
                    "if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end "
                    "local p = plan(u, 10, 6) "
                    "if not p then return 3 end "
                    "local ttl = change(KEYS[1], c, s, 10) "
                    "if not ttl then return 2 end "
                    "redis.call('RENAME', KEYS[1], KEYS[2]) "
                    "redis.call('HSET', KEYS[1], 'r', ARGV[8], 'g', ARGV[9]) "
                    "redis.call('PEXPIRE', KEYS[1], string.format('%d', math.max(idle, "
                    "tonumber(ARGV[9]) - now))) "
                    "local od = string.sub(KEYS[1], #prefix + 1) "
                    "if h then "
                    "  redis.call('ZREM', sched, entry(od, h)) "
                    "  redis.call('ZADD', sched, ms(now + ttl), entry(ARGV[8], h)) "
                    "end "
                    "local ev = settle(p, KEYS[2], ARGV[8], od, u, h, c, ttl) "
                    "if #ev == 0 then return 1 end "
                    "table.insert(ev, 1, 1) "
                    "return ev");
  return s;
}

const RedisScript& redis_destroy_script() {
  // ARGV[1] the key prefix: the session leaves its user's index with its handle key.
  // A destroyed session leaves the expiry schedule too: it ended, and not by expiry.
  static const RedisScript s = make_redis_script(
      "destroy",
      "if redis.call('TYPE', KEYS[1])['ok'] == 'hash' then "
      "  local f = redis.call('HMGET', KEYS[1], 'r', 'u', 'h') "
      "  if f[1] then return -1 end "
      "  local d = string.sub(KEYS[1], #ARGV[1] + 1) "
      "  if f[2] then "
      "    redis.call('ZREM', ARGV[1] .. '{u:' .. f[2] .. '}', d) "
      "    if f[3] then redis.call('DEL', ARGV[1] .. 'h:' .. f[3]) end "
      "  end "
      "  if f[3] then redis.call('ZREM', ARGV[1] .. 'expiries', d .. ':' .. f[3]) end "
      "end "
      "return redis.call('DEL', KEYS[1])");
  return s;
}

std::vector<const RedisScript*> redis_scripts() {
  return {&redis_create_script(),         &redis_modify_script(),    &redis_rotate_script(),
          &redis_destroy_script(),        &redis_list_user_script(), &redis_destroy_user_script(),
          &redis_destroy_handle_script(), &redis_sweep_script()};
}

void append_change_args(std::vector<std::string>& args, const SessionChange& change) {
  args.push_back(std::to_string(change.last_seen_ms));
  args.push_back(std::to_string(change.max_attributes));
  args.push_back(std::to_string(change.max_attribute_bytes));
  args.push_back(std::to_string(change.max_per_user));
  args.push_back(change.on_limit == OnUserLimit::kReject ? "reject" : "evict");
  args.push_back(std::to_string(change.set.size()));
  for (const auto& [name, value] : change.set) {
    args.push_back(name);
    args.push_back(value);
  }
  args.insert(args.end(), change.remove.begin(), change.remove.end());
}

}  // namespace sg
