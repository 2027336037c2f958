// The Redis store's expiry schedule (issue 14: expiry and eviction are audited with Redis too)
// against a real redis-server (redis_test_support.h): a session past its deadline is swept once as
// expired idle or absolute, with its user and client; a refreshed one is rescheduled, not
// reported; a key removed behind the store's back is reported as evicted; two sweepers racing
// report each session once; rotate, destroy and the user revocations leave no stale member; and
// sessions from before the schedule (no member, or a rotation that did not move it) still work;
// each end is published on the events channel.
// The sweep is given its clock: "later" is now plus a timeout, inside the keys' grace.
#include <doctest/doctest.h>

#include <algorithm>
#include <set>

#include "proxy_core/store/redis_codec.h"
#include "proxy_core/store/redis_expiry_sweep.h"
#include "proxy_core/store/redis_scripts.h"
#include "proxy_core/store/redis_session_events.h"
#include "tests/unit/redis_test_support.h"

namespace sg {
namespace {

using namespace redis_test;

const std::string kPrefix = "sgtest:";
const std::string kSchedule = kPrefix + "expiries";

struct Swept {
  bool ok = false;
  size_t taken = 0;
  std::vector<RedisStore::SweptEnd> ends;
};

Swept sweep(Fixture& f, int64_t now_ms, RedisStore* store = nullptr) {
  std::optional<Swept> out;
  (store != nullptr ? store : f.store.get())
      ->sweep_expiries(now_ms, kRedisSweepBatch,
                       [&](bool ok, size_t taken, std::vector<RedisStore::SweptEnd> ends) {
                         out = Swept{ok, taken, std::move(ends)};
                       });
  REQUIRE(f.loop.run_until([&] { return out.has_value(); }, 3000));
  return *out;
}

std::string member(const std::string& name, uint8_t tag) {
  return redis_schedule_member(key(name), new_record(tag).handle);
}

// A session `name` (handle tag) created at `at`, from 192.0.2.<tag>, signed in as `user`.
void signed_in(Fixture& f, const std::string& name, uint8_t tag, int64_t at,
               const std::string& user = "alice") {
  SessionRecord r = new_record(tag);
  r.created_ms = r.last_seen_ms = at;
  r.client_address = "192.0.2." + std::to_string(tag);
  REQUIRE(f.h->create(key(name), r) == StoreStatus::kOk);
  if (user.empty()) return;
  SessionChange c;
  c.set = {{"user", user}};
  REQUIRE(f.h->modify(key(name), c, at) == StoreStatus::kOk);
}

long card(Fixture& f) {
  return std::stol(f.cmd({"ZCARD", kSchedule}));
}

TEST_CASE("redis expiry: a session past its idle deadline is swept once, as expired idle") {
  Fixture f;
  const int64_t t0 = unix_now_ms();
  signed_in(f, "a", 1, t0);
  // Scheduled at its deadline; the key outlives it by the grace.
  CHECK(f.cmd({"ZSCORE", kSchedule, member("a", 1)}) == std::to_string(t0 + kIdle.count()));
  CHECK(std::stol(f.cmd({"PTTL", Fixture::rkey("a")})) > kIdle.count());
  // Not due yet: nothing taken.
  Swept s = sweep(f, t0 + kIdle.count() - 1);
  CHECK(s.ok);
  CHECK(s.taken == 0);
  // Past the deadline: the lookup already says expired (the key is in its grace), the sweep ends
  // it.
  CHECK(f.h->lookup(key("a"), t0 + kIdle.count() + 1).expired == ExpiryKind::kIdle);
  s = sweep(f, t0 + kIdle.count() + 1000);
  CHECK(s.taken == 1);
  REQUIRE(s.ends.size() == 1);
  CHECK(s.ends[0].event == "expired");
  CHECK(s.ends[0].reason == "idle");
  CHECK(s.ends[0].session == handle_hex(new_record(1).handle));
  CHECK(s.ends[0].user == "alice");
  CHECK(s.ends[0].client == "192.0.2.1");
  // Gone with its index entry and handle key, and out of the schedule: reported once.
  CHECK(f.cmd({"EXISTS", Fixture::rkey("a")}) == "0");
  CHECK(f.cmd({"EXISTS", redis_user_index_key(kPrefix, redis_user_index_id(kPrefix, "alice"))}) ==
        "0");
  CHECK(f.cmd({"EXISTS", redis_handle_key(kPrefix, new_record(1).handle)}) == "0");
  CHECK(card(f) == 0);
  CHECK(sweep(f, t0 + kIdle.count() + 2000).ends.empty());
}

TEST_CASE("redis expiry: the absolute deadline is reported as absolute") {
  Fixture f(Millis{60'000}, Millis{30'000});
  const int64_t t0 = unix_now_ms();
  signed_in(f, "a", 1, t0, "");
  CHECK(f.cmd({"ZSCORE", kSchedule, member("a", 1)}) == std::to_string(t0 + 30'000));
  const Swept s = sweep(f, t0 + 31'000);
  REQUIRE(s.ends.size() == 1);
  CHECK(s.ends[0].event == "expired");
  CHECK(s.ends[0].reason == "absolute");
  CHECK(s.ends[0].user == "");  // never signed in
}

TEST_CASE("redis expiry: a refreshed session is rescheduled at its real deadline, not reported") {
  Fixture f;
  const int64_t t0 = unix_now_ms();
  signed_in(f, "a", 1, t0);
  SessionChange refresh;
  refresh.last_seen_ms = t0 + 30'000;
  REQUIRE(f.h->modify(key("a"), refresh, t0 + 30'000) == StoreStatus::kOk);
  // The refresh did not move the member (no extra work per refresh) ...
  CHECK(f.cmd({"ZSCORE", kSchedule, member("a", 1)}) == std::to_string(t0 + kIdle.count()));
  // ... the sweep does, when it comes due.
  Swept s = sweep(f, t0 + kIdle.count() + 1);
  CHECK(s.taken == 1);
  CHECK(s.ends.empty());
  CHECK(f.cmd({"ZSCORE", kSchedule, member("a", 1)}) ==
        std::to_string(t0 + 30'000 + kIdle.count()));
  CHECK(f.h->lookup(key("a"), t0 + kIdle.count() + 1).status == StoreStatus::kOk);
  s = sweep(f, t0 + 30'000 + kIdle.count() + 1);
  REQUIRE(s.ends.size() == 1);
  CHECK(s.ends[0].reason == "idle");
}

TEST_CASE("redis expiry: a key removed before its deadline is reported as evicted") {
  Fixture f;
  const int64_t t0 = unix_now_ms();
  signed_in(f, "a", 1, t0);
  signed_in(f, "b", 2, t0);
  REQUIRE(f.cmd({"DEL", Fixture::rkey("a")}) == "1");  // what maxmemory eviction does
  Swept s = sweep(f, t0 + kIdle.count() + 1);
  CHECK(s.taken == 2);
  REQUIRE(s.ends.size() == 2);
  std::sort(s.ends.begin(), s.ends.end(),
            [](const auto& x, const auto& y) { return x.event < y.event; });
  CHECK(s.ends[0].event == "evicted");
  CHECK(s.ends[0].reason == "");
  CHECK(s.ends[0].session == handle_hex(new_record(1).handle));
  CHECK(s.ends[0].user == "");  // the record went with the key
  CHECK(s.ends[1].event == "expired");
  CHECK(card(f) == 0);
}

TEST_CASE("redis expiry: two sweepers racing report each session once") {
  Fixture f;
  RedisStore other(f.loop.get(), config_for(f.server.address()), kIdle, kAbsolute, nullptr, 0, 0);
  other.start();
  REQUIRE(f.loop.run_until([&] { return other.usable(); }, 3000));
  const int64_t t0 = unix_now_ms();
  for (int i = 1; i <= 40; ++i)
    signed_in(f, "s" + std::to_string(i), static_cast<uint8_t>(i), t0, i % 2 ? "alice" : "");
  std::vector<RedisStore::SweptEnd> all;
  size_t answers = 0;
  auto collect = [&](bool ok, size_t, std::vector<RedisStore::SweptEnd> ends) {
    CHECK(ok);
    ++answers;
    all.insert(all.end(), ends.begin(), ends.end());
  };
  // Small batches, interleaved on two connections, until both find nothing.
  for (int round = 0; round < 20 && card(f) > 0; ++round) {
    const size_t want = answers + 2;
    f.store->sweep_expiries(t0 + kIdle.count() + 1, 3, collect);
    other.sweep_expiries(t0 + kIdle.count() + 1, 3, collect);
    REQUIRE(f.loop.run_until([&] { return answers == want; }, 3000));
  }
  CHECK(card(f) == 0);
  std::set<std::string> handles;
  for (const auto& e : all)
    handles.insert(e.session);
  CHECK(all.size() == 40);
  CHECK(handles.size() == 40);
  other.close();
}

TEST_CASE("redis expiry: rotate moves the member, destroy and revocations take it out") {
  Fixture f;
  const int64_t t0 = unix_now_ms();
  signed_in(f, "a", 1, t0);
  REQUIRE(f.h->rotate(key("a"), key("a2"), SessionChange{}, 5000) == StoreStatus::kOk);
  CHECK(card(f) == 1);
  CHECK(f.cmd({"ZSCORE", kSchedule, member("a2", 1)}) != "(nil)");
  REQUIRE(f.h->destroy(key("a2")) == StoreStatus::kOk);
  CHECK(card(f) == 0);

  signed_in(f, "b", 2, t0);
  signed_in(f, "c", 3, t0);
  signed_in(f, "d", 4, t0, "bob");
  CHECK(card(f) == 3);
  std::optional<StoreStatus> done;
  f.store->destroy_user("alice", nullptr, unix_now_ms(),
                        [&](StoreStatus s, std::vector<UserSession>) { done = s; });
  REQUIRE(f.loop.run_until([&] { return done.has_value(); }, 3000));
  CHECK(card(f) == 1);
  done.reset();
  f.store->destroy_handle(new_record(4).handle, unix_now_ms(),
                          [&](StoreStatus s, std::vector<UserSession>) { done = s; });
  REQUIRE(f.loop.run_until([&] { return done.has_value(); }, 3000));
  CHECK(*done == StoreStatus::kOk);
  CHECK(card(f) == 0);
  // Nothing left to report as evicted later.
  CHECK(sweep(f, t0 + kAbsolute.count() + 1).ends.empty());
}

TEST_CASE("redis expiry: the per-user cap's victims leave the schedule") {
  Fixture f;
  const int64_t t0 = unix_now_ms();
  signed_in(f, "a", 1, t0);
  SessionRecord r = new_record(2);
  REQUIRE(f.h->create(key("b"), r) == StoreStatus::kOk);
  SessionChange c;
  c.set = {{"user", "alice"}};
  c.max_per_user = 1;
  REQUIRE(f.h->modify(key("b"), c) == StoreStatus::kOk);  // "a" is evicted by the cap
  CHECK(f.cmd({"ZSCORE", kSchedule, member("a", 1)}) == "(nil)");
  CHECK(card(f) == 1);
}

TEST_CASE("redis expiry: sessions from before the schedule join it and are followed") {
  Fixture f;
  const int64_t t0 = unix_now_ms();
  // An older gateway's session: no member, a TTL without grace. Its first refresh schedules it.
  SessionRecord r = new_record(1);
  r.created_ms = r.last_seen_ms = t0;
  std::vector<std::string> hset = {"HSET", Fixture::rkey("old")};
  for (std::string& x : session_hash_fields(r))
    hset.push_back(std::move(x));
  f.cmd(hset);
  f.cmd({"PEXPIRE", Fixture::rkey("old"), std::to_string(kIdle.count())});
  CHECK(card(f) == 0);
  SessionChange refresh;
  refresh.last_seen_ms = t0 + 1000;
  REQUIRE(f.h->modify(key("old"), refresh, t0 + 1000) == StoreStatus::kOk);
  CHECK(f.cmd({"ZSCORE", kSchedule, member("old", 1)}) ==
        std::to_string(t0 + 1000 + kIdle.count()));
  CHECK(std::stol(f.cmd({"PTTL", Fixture::rkey("old")})) > kIdle.count());

  // An older gateway's rotation: the key became a marker, the member stayed. The sweep follows
  // the marker and reschedules the session under its live key, reporting nothing.
  signed_in(f, "b", 2, t0, "");
  f.cmd({"RENAME", Fixture::rkey("b"), Fixture::rkey("b2")});
  f.cmd({"HSET", Fixture::rkey("b"), "r", digest_hex(key("b2")), "g", std::to_string(t0)});
  SessionChange seen;
  seen.last_seen_ms = t0 + 5000;
  REQUIRE(f.h->modify(key("b2"), seen, t0 + 5000) == StoreStatus::kOk);
  f.cmd({"ZREM", kSchedule, member("b2", 2)});  // as if the older gateway had refreshed it
  const Swept s = sweep(f, t0 + kIdle.count() + 1);
  CHECK(s.ends.empty());
  CHECK(f.cmd({"ZSCORE", kSchedule, member("b", 2)}) == "(nil)");
  CHECK(f.cmd({"ZSCORE", kSchedule, member("b2", 2)}) == std::to_string(t0 + 5000 + kIdle.count()));
}

// Records what the events subscriber hands on.
struct Ends final : SessionEndSink {
  std::vector<SessionHandle> handles;
  void session_ended(const SessionHandle& h) override { handles.push_back(h); }
  void session_key_ended(const TokenHash&) override {}
};

TEST_CASE(
    "redis expiry: each end the sweep finds is published, so every instance's tunnels close") {
  Fixture f;
  Ends sink;
  RedisEndSubscriber events(f.loop.get(), config_for(f.server.address()), &sink);
  events.start();
  // Subscribed once a PUBLISH reaches one receiver (a malformed payload, ignored).
  REQUIRE(f.loop.run_until(
      [&] {
        return f.cmd({"PUBLISH", kPrefix + "events", "-"}) == "1";
      },
      3000));
  const int64_t t0 = unix_now_ms();
  signed_in(f, "a", 1, t0);
  signed_in(f, "b", 2, t0);
  REQUIRE(f.cmd({"DEL", Fixture::rkey("b")}) == "1");
  CHECK(sweep(f, t0 + kIdle.count() + 1).ends.size() == 2);
  REQUIRE(f.loop.run_until([&] { return sink.handles.size() == 2; }, 3000));
  std::set<SessionHandle> got(sink.handles.begin(), sink.handles.end());
  CHECK(got == std::set<SessionHandle>{new_record(1).handle, new_record(2).handle});
  events.close();
}

TEST_CASE("redis expiry: the sweep runs from its tick and repeats at once while batches are full") {
  Fixture f(Millis{1000}, kAbsolute);
  const int64_t t0 = unix_now_ms() - 5000;  // created 5 s ago, expired 4 s ago, key in its grace
  const size_t n = kRedisSweepBatch + 10;
  for (size_t i = 0; i < n; ++i) {
    SessionRecord r = new_record(static_cast<uint8_t>(i % 251));
    r.handle[1] = static_cast<uint8_t>(i / 251);
    r.created_ms = r.last_seen_ms = t0;
    REQUIRE(f.h->create(key("m" + std::to_string(i)), r) == StoreStatus::kOk);
  }
  // An expired record is created with a TTL of 1 ms, so its member is due 1 ms after its create:
  // let that millisecond pass for the last one.
  const int64_t created_by = unix_now_ms();
  REQUIRE(f.loop.run_until([&] { return unix_now_ms() > created_by + 1; }, 1000));
  auto sweeper = std::make_shared<RedisExpirySweep>(f.store.get(), &f.metrics);
  sweeper->sweep(unix_now_ms());
  const bool two = f.loop.run_until([&] { return sweeper->sweeps() == 2; }, 5000);
  INFO("sweeps " << sweeper->sweeps() << " ended " << sweeper->ended() << " left " << card(f));
  REQUIRE(two);
  CHECK(sweeper->ended() == n);
  CHECK(card(f) == 0);
  CHECK(f.metrics.redis_swept_expired_idle.get() == n);  // sessions_expired_total{timeout="idle"}
  CHECK(f.metrics.redis_swept_evicted.get() == 0);
  sweeper->close();
  sweeper->sweep(unix_now_ms());  // closed: nothing sent
  f.loop.run_for(50);
  CHECK(sweeper->sweeps() == 2);
}

}  // namespace
}  // namespace sg
