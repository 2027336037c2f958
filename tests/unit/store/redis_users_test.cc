// RedisStore's user index (issue 14) against a real redis-server (redis_test_support.h): the
// sessions of a user listed, moved, re-keyed, destroyed by user and by handle, the cap in both
// modes, and the index kept free of dead entries (pruned on every join and listing, bounded).
#include <doctest/doctest.h>

#include <algorithm>

#include "proxy_core/store/redis_codec.h"
#include "tests/unit/redis_test_support.h"

namespace sg {
namespace {

using namespace redis_test;

const std::string kPrefix = "sgtest:";

SessionChange set_user(std::string user, uint32_t cap = 0,
                       OnUserLimit on_limit = OnUserLimit::kEvictOldest) {
  SessionChange c;
  c.set = {{"user", std::move(user)}};
  c.max_per_user = cap;
  c.on_limit = on_limit;
  return c;
}

std::string name(int i) {
  return "device-" + std::to_string(i);
}

std::string index_key(const std::string& user) {
  return redis_user_index_key(kPrefix, redis_user_index_id(kPrefix, user));
}

struct Users {
  Fixture& f;

  std::pair<StoreStatus, std::vector<UserSession>> wait(
      const std::function<void(SessionStore::UsersCallback)>& op) {
    std::optional<std::pair<StoreStatus, std::vector<UserSession>>> out;
    op([&](StoreStatus s, std::vector<UserSession> v) { out.emplace(s, std::move(v)); });
    REQUIRE(f.loop.run_until([&] { return out.has_value(); }, 3000));
    return *out;
  }
  std::vector<UserSession> list(const std::string& user, int64_t now_ms = 0) {
    auto r = wait([&](auto done) {
      f.store->list_user(user, now_ms != 0 ? now_ms : unix_now_ms(), std::move(done));
    });
    CHECK(r.first == StoreStatus::kOk);
    return r.second;
  }
  std::vector<UserSession> destroy_user(const std::string& user, const TokenHash* except) {
    auto r = wait(
        [&](auto done) { f.store->destroy_user(user, except, unix_now_ms(), std::move(done)); });
    CHECK(r.first == StoreStatus::kOk);
    return r.second;
  }
  StoreStatus destroy_handle(const SessionHandle& handle, std::vector<UserSession>* out = nullptr) {
    auto r =
        wait([&](auto done) { f.store->destroy_handle(handle, unix_now_ms(), std::move(done)); });
    if (out != nullptr) *out = r.second;
    return r.first;
  }
  // Sessions from..to, created a second apart in that order (handle tag i), each then signed in.
  void sign_in(const std::string& user, int from, int to, uint32_t cap = 0) {
    const int64_t t0 = unix_now_ms() - 50'000;  // the last within the idle timeout
    for (int i = from; i <= to; ++i) {
      SessionRecord r = new_record(static_cast<uint8_t>(i));
      r.created_ms = r.last_seen_ms = t0 + 1000 * i;
      r.client_address = "192.0.2." + std::to_string(i);
      r.user_agent = "agent " + std::to_string(i);
      REQUIRE(f.h->create(key(name(i)), r) == StoreStatus::kOk);
      REQUIRE(f.h->modify(key(name(i)), set_user(user, cap)) == StoreStatus::kOk);
    }
  }
  long zcard(const std::string& user) const { return std::stol(f.cmd({"ZCARD", index_key(user)})); }
};

std::vector<int> tags(const std::vector<UserSession>& v) {
  std::vector<int> out;
  for (const UserSession& s : v)
    out.push_back(s.handle[0]);
  return out;
}

TEST_CASE("redis users: a user's sessions are listed oldest first with their origin") {
  Fixture f;
  Users u{f};
  u.sign_in("alice", 1, 3);
  u.sign_in("bob", 4, 4);
  const std::vector<UserSession> v = u.list("alice");
  CHECK(tags(v) == std::vector<int>{1, 2, 3});
  REQUIRE(v.size() == 3);
  CHECK(v[0].client_address == "192.0.2.1");
  CHECK(v[0].user_agent == "agent 1");
  CHECK(v[0].created_ms < v[1].created_ms);
  CHECK(v[0].last_seen_ms >= v[0].created_ms);
  CHECK(tags(u.list("bob")) == std::vector<int>{4});
  CHECK(u.list("carol").empty());
  // The index is a sorted set under the user's hash tag; no key holds the user's name.
  const std::string ik = index_key("alice");
  CHECK(ik.find("{u:") != std::string::npos);
  CHECK(f.cmd({"TYPE", ik}) == "zset");
  CHECK(u.zcard("alice") == 3);
  CHECK(f.cmd({"EXISTS", kPrefix + "alice"}) == "0");
  CHECK(std::stol(f.cmd({"PTTL", ik})) <= kAbsolute.count());
  const std::string hk = redis_handle_key(kPrefix, new_record(2).handle);
  CHECK(f.cmd({"GET", hk}) == digest_hex(key(name(2))));
  CHECK(std::stol(f.cmd({"PTTL", hk})) > 0);
}

TEST_CASE("redis users: changing or clearing the user moves or removes the session") {
  Fixture f;
  Users u{f};
  u.sign_in("alice", 1, 2);
  REQUIRE(f.h->modify(key(name(1)), set_user("bob")) == StoreStatus::kOk);
  CHECK(tags(u.list("alice")) == std::vector<int>{2});
  CHECK(tags(u.list("bob")) == std::vector<int>{1});
  CHECK(u.zcard("alice") == 1);  // left at once, not left for the pruning
  SessionChange clear;
  clear.remove = {"user"};
  REQUIRE(f.h->modify(key(name(2)), clear) == StoreStatus::kOk);
  CHECK(u.list("alice").empty());
  CHECK(f.cmd({"EXISTS", index_key("alice")}) == "0");
  CHECK(f.cmd({"EXISTS", redis_handle_key(kPrefix, new_record(2).handle)}) == "0");
  CHECK(f.cmd({"HEXISTS", Fixture::rkey(name(2)), "u"}) == "0");
  // An empty value clears too, and the session is still found by its token.
  REQUIRE(f.h->modify(key(name(1)), set_user("")) == StoreStatus::kOk);
  CHECK(u.list("bob").empty());
  CHECK(f.h->lookup(key(name(1))).status == StoreStatus::kOk);
}

TEST_CASE("redis users: a rotation keeps the session indexed under its new key") {
  Fixture f;
  Users u{f};
  u.sign_in("alice", 1, 1);
  REQUIRE(f.h->rotate(key(name(1)), key("rotated"), SessionChange{}, 0) == StoreStatus::kOk);
  const std::vector<UserSession> v = u.list("alice");
  CHECK(tags(v) == std::vector<int>{1});
  CHECK(f.cmd({"ZSCORE", index_key("alice"), digest_hex(key("rotated"))}) != "(nil)");
  CHECK(f.cmd({"ZSCORE", index_key("alice"), digest_hex(key(name(1)))}) == "(nil)");
  // The index keeps its expiry through the re-keying of its only entry.
  CHECK(std::stol(f.cmd({"PTTL", index_key("alice")})) > 0);
  CHECK(f.cmd({"GET", redis_handle_key(kPrefix, new_record(1).handle)}) ==
        digest_hex(key("rotated")));
  // A login is a rotation that sets the user: the new key joins in the same step.
  REQUIRE(f.h->create(key("anon"), new_record(9)) == StoreStatus::kOk);
  REQUIRE(f.h->rotate(key("anon"), key("login"), set_user("alice"), 0) == StoreStatus::kOk);
  CHECK(tags(u.list("alice")) == std::vector<int>{1, 9});
  CHECK(f.cmd({"HGET", Fixture::rkey("anon"), "u"}) == "(nil)");  // the marker is in no index
  // A rotation that changes the user moves the session.
  REQUIRE(f.h->rotate(key("login"), key("as-bob"), set_user("bob"), 0) == StoreStatus::kOk);
  CHECK(tags(u.list("alice")) == std::vector<int>{1});
  CHECK(tags(u.list("bob")) == std::vector<int>{9});
}

TEST_CASE("redis users: destroy_user ends every session but the one spared") {
  Fixture f;
  Users u{f};
  u.sign_in("alice", 1, 3);
  u.sign_in("bob", 4, 4);
  const TokenHash spared = key(name(2));
  CHECK(tags(u.destroy_user("alice", &spared)) == std::vector<int>{1, 3});
  CHECK(f.h->lookup(key(name(1))).status == StoreStatus::kNotFound);
  CHECK(f.h->lookup(key(name(3))).status == StoreStatus::kNotFound);
  CHECK(f.h->lookup(key(name(2))).status == StoreStatus::kOk);
  CHECK(f.cmd({"EXISTS", redis_handle_key(kPrefix, new_record(1).handle)}) == "0");
  CHECK(tags(u.list("alice")) == std::vector<int>{2});
  CHECK(tags(u.destroy_user("alice", nullptr)) == std::vector<int>{2});
  CHECK(u.list("alice").empty());
  CHECK(f.cmd({"EXISTS", index_key("alice")}) == "0");
  CHECK(tags(u.list("bob")) == std::vector<int>{4});
}

TEST_CASE("redis users: destroy_handle ends the indexed session with that handle only") {
  Fixture f;
  Users u{f};
  u.sign_in("alice", 1, 2);
  REQUIRE(f.h->create(key("anon"), new_record(7)) == StoreStatus::kOk);
  std::vector<UserSession> ended;
  CHECK(u.destroy_handle(new_record(2).handle, &ended) == StoreStatus::kOk);
  CHECK(tags(ended) == std::vector<int>{2});
  CHECK(ended[0].client_address == "192.0.2.2");
  CHECK(f.h->lookup(key(name(2))).status == StoreStatus::kNotFound);
  CHECK(tags(u.list("alice")) == std::vector<int>{1});
  CHECK(u.zcard("alice") == 1);
  CHECK(u.destroy_handle(new_record(2).handle) == StoreStatus::kNotFound);
  // A session that belongs to no user is not found by its handle.
  CHECK(u.destroy_handle(new_record(7).handle) == StoreStatus::kNotFound);
  CHECK(f.h->lookup(key("anon")).status == StoreStatus::kOk);
}

TEST_CASE("redis users: destroy and expiry take sessions out, a listing never shows a dead one") {
  Fixture f;
  Users u{f};
  u.sign_in("alice", 1, 4);
  REQUIRE(f.h->destroy(key(name(1))) == StoreStatus::kOk);
  CHECK(u.zcard("alice") == 3);  // destroy leaves the index in its own script
  CHECK(f.cmd({"EXISTS", redis_handle_key(kPrefix, new_record(1).handle)}) == "0");
  // Redis drops a session by its TTL (or evicts it) without telling anyone: its entry stays
  // until a reader meets it, and the listing neither shows it nor keeps it.
  REQUIRE(f.cmd({"DEL", Fixture::rkey(name(2))}) == "1");
  CHECK(u.zcard("alice") == 3);
  CHECK(tags(u.list("alice")) == std::vector<int>{3, 4});
  CHECK(u.zcard("alice") == 2);
  // Idle-expired by the clock (before Redis's TTL fires): not listed, and pruned.
  CHECK(u.list("alice", unix_now_ms() + kIdle.count() + 1).empty());
  CHECK(f.cmd({"EXISTS", index_key("alice")}) == "0");
}

TEST_CASE("redis users: every join prunes dead entries, so the index stays bounded") {
  Fixture f;
  Users u{f};
  u.sign_in("alice", 1, 40);
  for (int i = 1; i <= 40; ++i)
    REQUIRE(f.cmd({"DEL", Fixture::rkey(name(i))}) == "1");  // all expired silently
  CHECK(u.zcard("alice") == 40);
  // Each join examines the 8 oldest entries: five joins clear the forty dead ones.
  u.sign_in("alice", 41, 45);
  CHECK(u.zcard("alice") == 5);
  CHECK(tags(u.list("alice")) == std::vector<int>{41, 42, 43, 44, 45});
  // Entries older than the absolute timeout leave at once, whatever their number.
  for (int i = 0; i < 100; ++i)
    f.cmd({"ZADD", index_key("alice"), "1000", "stale" + std::to_string(i)});
  CHECK(u.zcard("alice") == 105);
  u.sign_in("alice", 46, 46);
  CHECK(u.zcard("alice") == 6);
}

TEST_CASE("redis users: the cap with evict_oldest destroys the oldest in the same step") {
  Fixture f;
  Users u{f};
  u.sign_in("alice", 1, 2, /*cap=*/2);
  u.sign_in("alice", 3, 3, /*cap=*/2);
  CHECK(tags(u.list("alice")) == std::vector<int>{2, 3});
  CHECK(f.h->lookup(key(name(1))).status == StoreStatus::kNotFound);
  CHECK(f.cmd({"EXISTS", redis_handle_key(kPrefix, new_record(1).handle)}) == "0");
  // Dead sessions do not count: with one expired the next login evicts nobody.
  REQUIRE(f.cmd({"DEL", Fixture::rkey(name(2))}) == "1");
  u.sign_in("alice", 4, 4, /*cap=*/2);
  CHECK(tags(u.list("alice")) == std::vector<int>{3, 4});
  CHECK(u.zcard("alice") == 2);
}

TEST_CASE("redis users: sessions created in the same millisecond are ordered by their logins") {
  Fixture f;
  Users u{f};
  const int64_t created = unix_now_ms() - 1000;
  for (int i : {1, 2, 3}) {
    SessionRecord r = new_record(static_cast<uint8_t>(i));
    r.created_ms = r.last_seen_ms = created;
    REQUIRE(f.h->create(key(name(i)), r) == StoreStatus::kOk);
  }
  // Logins in the order 2, 1 (a few milliseconds after the sessions were made), then 3.
  REQUIRE(f.h->modify(key(name(2)), set_user("alice", 2), created + 3) == StoreStatus::kOk);
  REQUIRE(f.h->modify(key(name(1)), set_user("alice", 2), created + 5) == StoreStatus::kOk);
  CHECK(tags(u.list("alice")) == std::vector<int>{2, 1});
  REQUIRE(f.h->modify(key(name(3)), set_user("alice", 2), created + 7) == StoreStatus::kOk);
  CHECK(tags(u.list("alice")) == std::vector<int>{1, 3});  // the first login was evicted
  CHECK(f.h->lookup(key(name(2))).status == StoreStatus::kNotFound);
}

TEST_CASE("redis users: same-millisecond sessions keep their login order however late the logins") {
  // Logins more than a second after creation (a slow sign-in form): the order is still the
  // logins', in both orders, never the digests'.
  for (bool two_first : {true, false}) {
    CAPTURE(two_first);
    Fixture f;
    Users u{f};
    const int64_t created = unix_now_ms() - 10000;
    for (int i : {1, 2, 3}) {
      SessionRecord r = new_record(static_cast<uint8_t>(i));
      r.created_ms = r.last_seen_ms = created;
      REQUIRE(f.h->create(key(name(i)), r) == StoreStatus::kOk);
    }
    const int first = two_first ? 2 : 1;
    const int second = two_first ? 1 : 2;
    REQUIRE(f.h->modify(key(name(first)), set_user("bob", 2), created + 2000) == StoreStatus::kOk);
    REQUIRE(f.h->modify(key(name(second)), set_user("bob", 2), created + 2500) == StoreStatus::kOk);
    CHECK(tags(u.list("bob")) == std::vector<int>{first, second});
    REQUIRE(f.h->modify(key(name(3)), set_user("bob", 2), created + 3000) == StoreStatus::kOk);
    CHECK(tags(u.list("bob")) == std::vector<int>{second, 3});  // the first login was evicted
    CHECK(f.h->lookup(key(name(first))).status == StoreStatus::kNotFound);
  }
}

TEST_CASE("redis users: the cap with reject refuses the join and writes nothing") {
  Fixture f;
  Users u{f};
  u.sign_in("alice", 1, 2, /*cap=*/2);
  REQUIRE(f.h->create(key("third"), new_record(3)) == StoreStatus::kOk);
  SessionChange login = set_user("alice", 2, OnUserLimit::kReject);
  login.last_seen_ms = unix_now_ms();
  CHECK(f.h->modify(key("third"), login) == StoreStatus::kLimitReached);
  CHECK(f.cmd({"HEXISTS", Fixture::rkey("third"), "a:user"}) == "0");
  CHECK(f.cmd({"HEXISTS", Fixture::rkey("third"), "u"}) == "0");
  CHECK(f.h->rotate(key("third"), key("third-new"), login, 0) == StoreStatus::kLimitReached);
  CHECK(f.cmd({"EXISTS", Fixture::rkey("third-new")}) == "0");  // no rotation either
  CHECK(tags(u.list("alice")) == std::vector<int>{1, 2});
  // Once one of them has ended, the same login passes.
  REQUIRE(f.h->destroy(key(name(1))) == StoreStatus::kOk);
  CHECK(f.h->modify(key("third"), login) == StoreStatus::kOk);
  CHECK(tags(u.list("alice")) == std::vector<int>{2, 3});
}

TEST_CASE("redis users: a returning visit is one command, a login or a refresh one script") {
  Fixture f;
  Users u{f};
  u.sign_in("alice", 1, 1);
  REQUIRE(f.h->create(key("anon"), new_record(5)) == StoreStatus::kOk);
  uint64_t before = f.metrics.redis_commands.get();
  CHECK(f.h->lookup(key(name(1))).status == StoreStatus::kOk);
  CHECK(f.metrics.redis_commands.get() - before == 1);
  before = f.metrics.redis_commands.get();
  CHECK(f.h->rotate(key("anon"), key("login"), set_user("alice", 3), 0) == StoreStatus::kOk);
  CHECK(f.metrics.redis_commands.get() - before == 1);
  // A refresh of an indexed session moves its handle key's expiry with the session's.
  f.cmd({"PEXPIRE", redis_handle_key(kPrefix, new_record(1).handle), "5000"});
  SessionChange refresh;
  refresh.last_seen_ms = unix_now_ms();
  before = f.metrics.redis_commands.get();
  REQUIRE(f.h->modify(key(name(1)), refresh) == StoreStatus::kOk);
  CHECK(f.metrics.redis_commands.get() - before == 1);
  CHECK(std::stol(f.cmd({"PTTL", redis_handle_key(kPrefix, new_record(1).handle)})) > 5000);
}

}  // namespace
}  // namespace sg
