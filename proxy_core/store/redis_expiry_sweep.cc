// The Redis expiry sweep: its script (redis_scripts.h, "The expiry schedule"), the store's call
// and reply, and RedisExpirySweep, which runs it from worker 0's tick (redis_expiry_sweep.h).
#include "proxy_core/store/redis_expiry_sweep.h"

#include <hiredis/hiredis.h>

#include <string_view>
#include <utility>

#include "proxy_core/base/clock.h"
#include "proxy_core/ops/audit_log.h"
#include "proxy_core/store/redis_codec.h"
#include "proxy_core/store/redis_scripts.h"

namespace sg {
namespace {

// After the prelude (live(), int(), the index helpers: sched, entry(), ikey(), hkey(), ms()).
// visit(d, h) follows at most 4 rotation markers (left by gateways older than the schedule, whose
// rotations did not move the member) to the session, and reschedules, ends or drops it.
// A live session's key also gets its grace back (an older gateway's refresh set its TTL without
// one), so that its expiry is seen as one.
std::string sweep_lua() {
  return "local chan, out = prefix .. 'events', {0} "
         "local function ended(ev, why, h, user, ip) "
         "  out[#out + 1] = ev out[#out + 1] = why out[#out + 1] = h "
         "  out[#out + 1] = user or '' out[#out + 1] = ip or '' "
         "  redis.call('PUBLISH', chan, 'h:' .. h) "
         "end "
         "local function visit(d, h) "
         "  for hop = 0, 4 do "
         "    local k = prefix .. d "
         "    local t = redis.call('TYPE', k)['ok'] "
         "    if t == 'none' then return ended('evicted', '', h) end "
         "    if t ~= 'hash' then return end "
         "    local f = redis.call('HMGET', k, 'c', 's', 'r', 'u', 'h', 'ip', 'a:' .. uattr) "
         "    if f[3] then "
         "      if #f[3] ~= 64 or not string.match(f[3], '^%x+$') then return end "
         "      d = f[3] "
         "    else "
         "      if f[5] ~= h then return end "
         "      local c, s = int(f[1]), int(f[2]) "
         "      if not c or not s or c < 0 or s < c or s > now + " +
         std::to_string(kRecordClockSkewMs) +
         " then return end "
         "      local due = math.min(s + idle, c + abs) "
         "      if now <= due then "
         "        redis.call('ZADD', sched, ms(due), entry(d, h)) "
         "        redis.call('PEXPIRE', k, ms(due - now + grace)) "
         "        return "
         "      end "
         "      redis.call('DEL', k) "
         "      if f[4] then redis.call('ZREM', ikey(f[4]), d) end "
         "      local hk = hkey(h) "
         "      if redis.call('TYPE', hk)['ok'] == 'string' and redis.call('GET', hk) == d then "
         "        redis.call('DEL', hk) "
         "      end "
         "      return ended('expired', c + abs <= s + idle and 'absolute' or 'idle', h, f[7], "
         "f[6]) "
         "    end "
         "  end "
         "end "
         "local due = redis.call('ZRANGEBYSCORE', sched, '-inf', ms(now), 'LIMIT', 0, "
         "tonumber(ARGV[6])) "
         "for _, m in ipairs(due) do "
         "  redis.call('ZREM', sched, m) "
         "  local d, h = string.match(m, '^(%x+):(%x+)$') "
         "  if d and #d == 64 and #h == 32 then visit(d, h) end "
         "end "
         "out[1] = #due "
         "return out";
}

constexpr size_t kEndFields = 5;  // event, reason, handle, user, client

std::string text_of(const redisReply* r) {
  return r->type == REDIS_REPLY_STRING ? std::string(r->str, r->len) : std::string();
}

}  // namespace

const RedisScript& redis_sweep_script() {
  static const RedisScript s = make_redis_script("sweep", redis_script_prelude() + sweep_lua());
  return s;
}

void RedisStore::sweep_expiries(int64_t now_ms, size_t limit, SweepCallback done) {
  std::vector<std::string> args = common_args({schedule_key_}, now_ms);
  args.push_back(std::to_string(limit));
  client_.eval(
      redis_sweep_script(), std::move(args), [done = std::move(done)](const redisReply* r) {
        std::vector<SweptEnd> ends;
        if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements == 0 ||
            r->element[0]->type != REDIS_REPLY_INTEGER || (r->elements - 1) % kEndFields != 0) {
          done(false, 0, {});
          return;
        }
        for (size_t i = 1; i < r->elements; i += kEndFields) {
          SweptEnd e;
          e.event = text_of(r->element[i]);
          e.reason = text_of(r->element[i + 1]);
          e.session = text_of(r->element[i + 2]);
          e.user = text_of(r->element[i + 3]);
          e.client = text_of(r->element[i + 4]);
          ends.push_back(std::move(e));
        }
        done(true, static_cast<size_t>(r->element[0]->integer), std::move(ends));
      });
}

void RedisExpirySweep::sweep(int64_t now_ms) {
  if (closed_ || in_flight_ || !store_->usable()) return;
  in_flight_ = true;
  store_->sweep_expiries(
      now_ms, kRedisSweepBatch,
      [self = shared_from_this()](bool ok, size_t taken, std::vector<RedisStore::SweptEnd> ends) {
        self->on_swept(ok, taken, std::move(ends));
      });
}

void RedisExpirySweep::on_swept(bool ok, size_t taken, std::vector<RedisStore::SweptEnd> ends) {
  in_flight_ = false;
  ++sweeps_;
  ended_ += ends.size();
  for (const RedisStore::SweptEnd& e : ends) {
    AuditEvent a{e.event, e.reason, e.session, e.user, e.client, ""};
    audit(a);
    if (metrics_ == nullptr) continue;
    if (e.event == "evicted") {
      metrics_->redis_swept_evicted.add();
    } else if (e.reason == "absolute") {
      metrics_->redis_swept_expired_absolute.add();
    } else {
      metrics_->redis_swept_expired_idle.add();
    }
  }
  // A full batch: more may be due; go on now rather than a second later.
  if (ok && taken >= kRedisSweepBatch) sweep(unix_now_ms());
}

}  // namespace sg
