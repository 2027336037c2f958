// RedisStore and the user index (issue 14): the arguments the session scripts take for it, the
// replies of the writes that move sessions between indexes, and the three index operations.
// Keys and scripts: redis_codec.h, redis_scripts.h.
#include <hiredis/hiredis.h>

#include <algorithm>
#include <charconv>
#include <string_view>
#include <utility>

#include "proxy_core/ops/audit_log.h"
#include "proxy_core/store/redis_codec.h"
#include "proxy_core/store/redis_scripts.h"
#include "proxy_core/store/redis_store.h"

namespace sg {
namespace {

constexpr size_t kSessionFields = 5;  // handle, created, last seen, client, agent

std::string_view text(const redisReply* r) {
  return r->type == REDIS_REPLY_STRING ? std::string_view(r->str, r->len) : std::string_view();
}

bool parse_ms(std::string_view v, int64_t& out) {
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  return ec == std::errc() && ptr == v.data() + v.size();
}

}  // namespace

std::vector<std::string> RedisStore::common_args(std::vector<std::string> keys,
                                                 int64_t now_ms) const {
  std::vector<std::string> args;
  args.reserve(keys.size() + 24);
  args.push_back(std::to_string(keys.size()));
  for (std::string& k : keys)
    args.push_back(std::move(k));
  args.push_back(std::to_string(now_ms));
  args.push_back(std::to_string(idle_ms_));
  args.push_back(std::to_string(absolute_ms_));
  args.push_back(key_prefix_);
  args.push_back(user_attribute_);
  return args;
}

std::string RedisStore::joined_user(const SessionChange& change) const {
  if (user_attribute_.empty()) return {};
  for (const auto& [name, value] : change.set)
    if (name == user_attribute_) return value;
  return {};
}

// Removals apply before sets (redis_scripts.cc change()), so a set wins over a removal.
void RedisStore::append_index_args(std::vector<std::string>& args,
                                   const SessionChange& change) const {
  const std::string user = joined_user(change);
  if (!user.empty()) {
    args.push_back(redis_user_index_id(key_prefix_, user));
  } else if (user_attribute_.empty()) {
    args.emplace_back();
  } else {
    auto named = [this](const auto& kv) { return kv.first == user_attribute_; };
    const bool cleared = std::any_of(change.set.begin(), change.set.end(), named) ||
                         std::find(change.remove.begin(), change.remove.end(), user_attribute_) !=
                             change.remove.end();
    args.emplace_back(cleared ? "-" : "");
  }
  args.push_back(user);
}

StoreStatus RedisStore::write_reply(const redisReply* r, const std::string& user) const {
  if (r == nullptr) return StoreStatus::kUnavailable;
  if (r->type == REDIS_REPLY_ARRAY && r->elements % 2 == 1 &&
      r->element[0]->type == REDIS_REPLY_INTEGER && r->element[0]->integer == 1) {
    // Sessions the cap pushed out of the user's index: already destroyed by the script.
    for (size_t i = 1; i + 1 < r->elements; i += 2) {
      AuditEvent e{"evicted", "user-cap", text(r->element[i]), user, text(r->element[i + 1]), ""};
      audit(e);
    }
    return StoreStatus::kOk;
  }
  if (r->type != REDIS_REPLY_INTEGER) return StoreStatus::kUnavailable;
  switch (r->integer) {
    case 1:
      return StoreStatus::kOk;
    case 0:
      return StoreStatus::kNotFound;  // destroyed, expired, rotated away: nothing written
    case 2:
      return StoreStatus::kRejected;
    case 3:
      return StoreStatus::kLimitReached;
    default:
      return StoreStatus::kUnavailable;  // rotate's -1: the new key is taken
  }
}

bool RedisStore::user_sessions(const redisReply* r, std::vector<UserSession>& out) {
  if (r == nullptr || r->type != REDIS_REPLY_ARRAY || r->elements % kSessionFields != 0)
    return false;
  for (size_t i = 0; i < r->elements; i += kSessionFields) {
    UserSession s;
    for (size_t j = 0; j < kSessionFields; ++j)
      if (r->element[i + j]->type != REDIS_REPLY_STRING) return false;
    if (!parse_handle_hex(text(r->element[i]), s.handle) ||
        !parse_ms(text(r->element[i + 1]), s.created_ms) ||
        !parse_ms(text(r->element[i + 2]), s.last_seen_ms))
      return false;
    s.client_address = std::string(text(r->element[i + 3]));
    s.user_agent = std::string(text(r->element[i + 4]));
    out.push_back(std::move(s));
  }
  return true;
}

// Every instance closes the ended sessions' tunnels (issue 14). With local caches the answer waits
// for the last PUBLISH's reply: Redis wrote the caches' reports of the script's DELs before it
// read the PUBLISHes (after_reports in redis_store.cc).
void RedisStore::publish_ends(StoreStatus s, std::vector<UserSession> ended, UsersCallback done) {
  if (ended.empty() || !wait_for_reports_) {
    for (const UserSession& u : ended)
      publish_end(u.handle);
    done(s, std::move(ended));
    return;
  }
  for (size_t i = 0; i + 1 < ended.size(); ++i)
    publish_end(ended[i].handle);
  const SessionHandle last = ended.back().handle;
  publish_end(
      end_event_by_handle(last),
      [done = std::move(done), ended = std::move(ended)](StoreStatus st) mutable {
        done(st, std::move(ended));
      },
      s);
}

void RedisStore::list_user(const std::string& user, int64_t now_ms, UsersCallback done) {
  destroy_user_or_list(user, nullptr, now_ms, /*destroy=*/false, std::move(done));
}

void RedisStore::destroy_user(const std::string& user, const TokenHash* except, int64_t now_ms,
                              UsersCallback done) {
  destroy_user_or_list(user, except, now_ms, /*destroy=*/true, std::move(done));
}

void RedisStore::destroy_user_or_list(const std::string& user, const TokenHash* except,
                                      int64_t now_ms, bool destroy, UsersCallback done) {
  if (user_attribute_.empty()) {
    done(StoreStatus::kUnavailable, {});
    return;
  }
  const std::string id = redis_user_index_id(key_prefix_, user);
  std::vector<std::string> args = common_args({redis_user_index_key(key_prefix_, id)}, now_ms);
  args.push_back(id);
  args.push_back(user);
  args.push_back(except != nullptr ? digest_hex(*except) : std::string());
  client_.eval(destroy ? redis_destroy_user_script() : redis_list_user_script(), std::move(args),
               [this, destroy, done = std::move(done)](const redisReply* r) {
                 std::vector<UserSession> out;
                 if (!user_sessions(r, out)) {
                   done(StoreStatus::kUnavailable, {});
                   return;
                 }
                 if (!destroy) {
                   done(StoreStatus::kOk, std::move(out));
                   return;
                 }
                 cache_drain_before_next_hit();  // their keys' invalidations are on the way
                 publish_ends(StoreStatus::kOk, std::move(out), std::move(done));
               });
}

void RedisStore::destroy_handle(const SessionHandle& handle, int64_t now_ms, UsersCallback done) {
  std::vector<std::string> args = common_args({redis_handle_key(key_prefix_, handle)}, now_ms);
  args.push_back(handle_hex(handle));
  client_.eval(redis_destroy_handle_script(), std::move(args),
               [this, done = std::move(done)](const redisReply* r) {
                 std::vector<UserSession> out;
                 if (!user_sessions(r, out)) {
                   done(StoreStatus::kUnavailable, {});
                   return;
                 }
                 cache_drain_before_next_hit();  // the key's invalidation is on the way
                 const StoreStatus s = out.empty() ? StoreStatus::kNotFound : StoreStatus::kOk;
                 publish_ends(s, std::move(out), std::move(done));
               });
}

}  // namespace sg
