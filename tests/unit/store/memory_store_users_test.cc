// The memory store's per-user index (session_store.h, "The user index"; memory_store_users.h).
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "proxy_core/session/token.h"
#include "proxy_core/store/memory_store.h"
#include "tests/unit/memory_store_test_util.h"

namespace sg {
namespace {

using namespace test;  // NOLINT: the helpers are this file's vocabulary

SessionChange set_user(const std::string& user, uint32_t cap = 0,
                       OnUserLimit on_limit = OnUserLimit::kEvictOldest) {
  SessionChange c;
  c.set.emplace_back("user", user);
  c.max_per_user = cap;
  c.on_limit = on_limit;
  return c;
}

std::vector<UserSession> list(MemoryStore& store, const std::string& user, int64_t now_ms) {
  std::vector<UserSession> out;
  int calls = 0;
  store.list_user(user, now_ms, [&](StoreStatus s, std::vector<UserSession> v) {
    REQUIRE(s == StoreStatus::kOk);
    out = std::move(v);
    ++calls;
  });
  REQUIRE(calls == 1);
  return out;
}

std::vector<uint8_t> tags(const std::vector<UserSession>& v) {
  std::vector<uint8_t> out;
  for (const UserSession& s : v)
    out.push_back(s.handle[0]);
  return out;
}

// Sessions 1..n created at kT0 + i with handle tag i, the user set on each.
void sign_in(MemoryStore& store, const std::string& user, int from, int to, uint32_t cap = 0) {
  for (int i = from; i <= to; ++i) {
    SessionRecord r = record_at(kT0 + i, static_cast<uint8_t>(i));
    r.client_address = "192.0.2." + std::to_string(i);
    r.user_agent = "agent " + std::to_string(i);
    REQUIRE(create(store, key(i), r) == StoreStatus::kOk);
    REQUIRE(modify(store, key(i), set_user(user, cap), kT0 + i) == StoreStatus::kOk);
  }
}

TEST_CASE("setting the user attribute lists the session under that user with its origin") {
  MemoryStore store(kIdle, kAbsolute, 100);
  sign_in(store, "alice", 1, 3);
  sign_in(store, "bob", 4, 4);
  std::vector<UserSession> a = list(store, "alice", kT0 + 10);
  CHECK(tags(a) == std::vector<uint8_t>{1, 2, 3});  // oldest first
  CHECK(a[1].client_address == "192.0.2.2");
  CHECK(a[1].user_agent == "agent 2");
  CHECK(a[1].created_ms == kT0 + 2);
  CHECK(tags(list(store, "bob", kT0 + 10)) == std::vector<uint8_t>{4});
  CHECK(list(store, "carol", kT0 + 10).empty());
  CHECK(store.stats().indexed == 4);
  CHECK(store.stats().users == 2);
}

TEST_CASE("changing or removing the user moves or removes the session from the index") {
  MemoryStore store(kIdle, kAbsolute, 100);
  sign_in(store, "alice", 1, 2);
  REQUIRE(modify(store, key(1), set_user("bob"), kT0 + 5) == StoreStatus::kOk);
  CHECK(tags(list(store, "alice", kT0 + 6)) == std::vector<uint8_t>{2});
  CHECK(tags(list(store, "bob", kT0 + 6)) == std::vector<uint8_t>{1});
  SessionChange clear;
  clear.remove.push_back("user");
  REQUIRE(modify(store, key(2), clear, kT0 + 7) == StoreStatus::kOk);
  CHECK(list(store, "alice", kT0 + 8).empty());
  CHECK(store.stats().indexed == 1);
  CHECK(store.stats().users == 1);  // a user without sessions leaves the index
}

TEST_CASE("a rotation keeps the session in its user's index under the new key") {
  MemoryStore store(kIdle, kAbsolute, 100);
  sign_in(store, "alice", 1, 1);
  REQUIRE(rotate(store, key(1), key(50), SessionChange{}, 0, kT0 + 5) == StoreStatus::kOk);
  CHECK(tags(list(store, "alice", kT0 + 6)) == std::vector<uint8_t>{1});
  // The origin recorded at creation survives the rotation.
  CHECK(list(store, "alice", kT0 + 6)[0].user_agent == "agent 1");
  // A login: rotate and set the user in one step.
  REQUIRE(create(store, key(2), record_at(kT0, 2)) == StoreStatus::kOk);
  REQUIRE(rotate(store, key(2), key(51), set_user("alice"), 0, kT0 + 7) == StoreStatus::kOk);
  CHECK(tags(list(store, "alice", kT0 + 8)) == std::vector<uint8_t>{2, 1});
  // destroy_user finds the session by its new key.
  int ended = 0;
  store.destroy_user("alice", nullptr, kT0 + 9, [&](StoreStatus s, std::vector<UserSession> v) {
    CHECK(s == StoreStatus::kOk);
    ended = static_cast<int>(v.size());
  });
  CHECK(ended == 2);
  CHECK_FALSE(found(store, key(50), kT0 + 10));
  CHECK_FALSE(found(store, key(51), kT0 + 10));
}

TEST_CASE("destroy_user ends every session of the user except the one given") {
  MemoryStore store(kIdle, kAbsolute, 100);
  sign_in(store, "alice", 1, 3);
  sign_in(store, "bob", 4, 4);
  const TokenHash keep = key(2);
  std::vector<UserSession> ended;
  store.destroy_user("alice", &keep, kT0 + 10,
                     [&](StoreStatus, std::vector<UserSession> v) { ended = std::move(v); });
  CHECK(tags(ended) == std::vector<uint8_t>{1, 3});
  CHECK_FALSE(found(store, key(1), kT0 + 11));
  CHECK(found(store, key(2), kT0 + 11));
  CHECK_FALSE(found(store, key(3), kT0 + 11));
  CHECK(found(store, key(4), kT0 + 11));
  CHECK(tags(list(store, "alice", kT0 + 12)) == std::vector<uint8_t>{2});
  CHECK(store.stats().destroyed == 2);
}

TEST_CASE("destroy_handle ends the indexed session with that handle only") {
  MemoryStore store(kIdle, kAbsolute, 100);
  sign_in(store, "alice", 1, 2);
  REQUIRE(create(store, key(9), record_at(kT0, 9)) == StoreStatus::kOk);  // no user
  SessionHandle h;
  h.fill(2);
  StoreStatus status = StoreStatus::kUnavailable;
  store.destroy_handle(h, kT0 + 5, [&](StoreStatus s, std::vector<UserSession>) { status = s; });
  CHECK(status == StoreStatus::kOk);
  CHECK_FALSE(found(store, key(2), kT0 + 6));
  CHECK(found(store, key(1), kT0 + 6));
  store.destroy_handle(h, kT0 + 7, [&](StoreStatus s, std::vector<UserSession>) { status = s; });
  CHECK(status == StoreStatus::kNotFound);
  h.fill(9);  // a session without a user is not reachable by handle
  store.destroy_handle(h, kT0 + 7, [&](StoreStatus s, std::vector<UserSession>) { status = s; });
  CHECK(status == StoreStatus::kNotFound);
  CHECK(found(store, key(9), kT0 + 8));
}

TEST_CASE("destroy, expiry, reclaim and eviction take sessions out of the index") {
  MemoryStore store(kIdle, kAbsolute, 3);  // one shard of three sessions
  sign_in(store, "alice", 1, 3);
  REQUIRE(destroy(store, key(1)) == StoreStatus::kOk);
  CHECK(store.stats().indexed == 2);
  // A listing never shows an expired session, even before reclaim frees it.
  CHECK(list(store, "alice", kT0 + 2 + kIdle.count() + 1).size() == 1);
  CHECK(store.stats().indexed == 1);
  // Reclaim frees the rest when idle-expired.
  store.reclaim_some(kT0 + 3 + kIdle.count() + 1, 100);
  CHECK(store.stats().indexed == 0);
  CHECK(store.stats().users == 0);
  // Eviction: a full store pushes out the least recently seen session and its entry.
  sign_in(store, "bob", 10, 12);
  REQUIRE(create(store, key(13), record_at(kT0 + 13, 13)) == StoreStatus::kOk);
  CHECK(store.stats().evicted == 1);
  CHECK(list(store, "bob", kT0 + 14).size() == 2);
  CHECK(store.stats().indexed == 2);
}

TEST_CASE("the cap with evict_oldest ends the user's oldest session") {
  MemoryStore store(kIdle, kAbsolute, 100);
  sign_in(store, "alice", 1, 3, /*cap=*/2);
  CHECK(tags(list(store, "alice", kT0 + 10)) == std::vector<uint8_t>{2, 3});
  CHECK_FALSE(found(store, key(1), kT0 + 10));
  CHECK(store.stats().evicted_user_cap == 1);
  // Setting the same user again is not a join: nothing is evicted.
  REQUIRE(modify(store, key(3), set_user("alice", 2), kT0 + 11) == StoreStatus::kOk);
  CHECK(tags(list(store, "alice", kT0 + 12)) == std::vector<uint8_t>{2, 3});
}

TEST_CASE("the cap with reject refuses the join and writes nothing") {
  MemoryStore store(kIdle, kAbsolute, 100);
  sign_in(store, "alice", 1, 2, /*cap=*/2);
  REQUIRE(create(store, key(3), record_at(kT0 + 3, 3)) == StoreStatus::kOk);
  SessionChange c = set_user("alice", 2, OnUserLimit::kReject);
  c.set.emplace_back("theme", "dark");
  CHECK(modify(store, key(3), c, kT0 + 4) == StoreStatus::kLimitReached);
  CHECK(lookup(store, key(3), kT0 + 5).record->attributes.empty());
  CHECK(rotate(store, key(3), key(30), c, 0, kT0 + 5) == StoreStatus::kLimitReached);
  CHECK(found(store, key(3), kT0 + 6));  // not rotated
  // Once one of alice's sessions has expired, the join succeeds (expired ones do not count).
  const int64_t later = kT0 + 1 + kIdle.count() + 1;
  SessionChange refresh;
  refresh.last_seen_ms = later - 10;
  REQUIRE(modify(store, key(2), refresh, later - 10) == StoreStatus::kOk);
  REQUIRE(modify(store, key(3), refresh, later - 10) == StoreStatus::kOk);
  CHECK(modify(store, key(3), c, later) == StoreStatus::kOk);
  CHECK(tags(list(store, "alice", later)) == std::vector<uint8_t>{2, 3});
}

TEST_CASE("a snapshot keeps the origin and rebuilds the user index") {
  TempDir dir;
  const std::string path = (dir.path / "snap").string();
  MemoryStore store(kIdle, kAbsolute, 100);
  sign_in(store, "alice", 1, 2);
  REQUIRE(store.save_snapshot(path).ok());
  MemoryStore loaded(kIdle, kAbsolute, 100);
  REQUIRE(loaded.load_snapshot(path, kT0 + 5, 32, 4096).ok());
  std::vector<UserSession> a = list(loaded, "alice", kT0 + 6);
  REQUIRE(tags(a) == std::vector<uint8_t>{1, 2});
  CHECK(a[0].client_address == "192.0.2.1");
  CHECK(a[0].user_agent == "agent 1");
}

TEST_CASE("concurrent logins of one user on many threads keep the cap and the index exact") {
  MemoryStore store(Millis{60000}, Millis{600000}, 100000);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 500;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&store, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const int n = t * kPerThread + i;
        SessionRecord r = record_at(kT0 + n, static_cast<uint8_t>(n));
        store.create(key(n), r, nullptr);
        SessionChange c = set_user(n % 2 ? "alice" : "bob", 5);
        if (n % 3 == 0) {
          store.rotate(key(n), key(100000 + n), c, 0, kT0 + n, nullptr);
        } else {
          store.modify(key(n), c, kT0 + n, nullptr);
        }
        if (n % 7 == 0) store.destroy_user("bob", nullptr, kT0 + n, nullptr);
      }
    });
  }
  for (std::thread& t : threads)
    t.join();
  const size_t alice = list(store, "alice", kT0 + 5000).size();
  const size_t bob = list(store, "bob", kT0 + 5000).size();
  CHECK(alice == 5);
  CHECK(bob <= 5);
  CHECK(store.stats().indexed == alice + bob);
}

}  // namespace
}  // namespace sg
