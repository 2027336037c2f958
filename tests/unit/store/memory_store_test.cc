#include "proxy_core/store/memory_store.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "proxy_core/session/token.h"
#include "tests/unit/memory_store_test_util.h"

namespace sg {
namespace {

using namespace test;  // NOLINT: the helpers are this file's vocabulary

TEST_CASE("a created session is found with its handle, times and attributes") {
  MemoryStore store(kIdle, kAbsolute, 100);
  REQUIRE(create(store, key(1), record_at(kT0, 7, {{"user", "alice"}})) == StoreStatus::kOk);
  LookupResult r = lookup(store, key(1), kT0 + 10);
  REQUIRE(r.status == StoreStatus::kOk);
  REQUIRE(r.record.has_value());
  CHECK(r.record->handle[0] == 7);
  CHECK(r.record->created_ms == kT0);
  CHECK(r.record->last_seen_ms == kT0);
  CHECK(r.record->attributes == SessionAttributes{{"user", "alice"}});
  CHECK(r.expired == ExpiryKind::kNone);
  CHECK(store.stats().created == 1);
  CHECK(store.stats().active == 1);
}

TEST_CASE("an unknown key finds nothing") {
  MemoryStore store(kIdle, kAbsolute, 100);
  LookupResult r = lookup(store, key(1), kT0);
  CHECK(r.status == StoreStatus::kNotFound);
  CHECK_FALSE(r.record.has_value());
  CHECK(r.expired == ExpiryKind::kNone);
  SessionChange change;
  change.last_seen_ms = kT0;
  change.set = {{"user", "mallory"}};
  CHECK(modify(store, key(1), change, kT0) == StoreStatus::kNotFound);
  CHECK(destroy(store, key(1)) == StoreStatus::kOk);  // already gone: confirmed
  CHECK_FALSE(found(store, key(1), kT0));             // and nothing was created by the writes
  CHECK(store.stats().active == 0);
  CHECK(store.stats().created == 0);
}

TEST_CASE("creating over an existing key fails closed and keeps the first session") {
  MemoryStore store(kIdle, kAbsolute, 100);
  REQUIRE(create(store, key(1), record_at(kT0, 1)) == StoreStatus::kOk);
  CHECK(create(store, key(1), record_at(kT0, 2)) == StoreStatus::kUnavailable);
  CHECK(lookup(store, key(1), kT0).record->handle[0] == 1);
}

TEST_CASE("a session idle for longer than idle_timeout expires on lookup") {
  MemoryStore store(kIdle, kAbsolute, 100);
  REQUIRE(create(store, key(1), record_at(kT0)) == StoreStatus::kOk);
  CHECK(found(store, key(1), kT0 + kIdle.count()));  // exactly idle_timeout is still valid
  LookupResult r = lookup(store, key(1), kT0 + kIdle.count() + 1);
  CHECK(r.status == StoreStatus::kNotFound);
  CHECK(r.expired == ExpiryKind::kIdle);
  CHECK(lookup(store, key(1), kT0).expired == ExpiryKind::kNone);  // removed, not just hidden
  CHECK(store.stats().expired_idle == 1);
  CHECK(store.stats().active == 0);
}

TEST_CASE("refreshing last-seen keeps a session alive until the absolute timeout") {
  MemoryStore store(kIdle, kAbsolute, 100);
  REQUIRE(create(store, key(1), record_at(kT0)) == StoreStatus::kOk);
  int64_t now = kT0;
  while (now + 900 <= kT0 + kAbsolute.count()) {
    now += 900;
    REQUIRE(found(store, key(1), now));
    SessionChange refresh;
    refresh.last_seen_ms = now;
    REQUIRE(modify(store, key(1), refresh, now) == StoreStatus::kOk);
  }
  LookupResult r = lookup(store, key(1), kT0 + kAbsolute.count() + 1);
  CHECK(r.status == StoreStatus::kNotFound);
  CHECK(r.expired == ExpiryKind::kAbsolute);
  CHECK(store.stats().expired_absolute == 1);
}

TEST_CASE("a small store uses one shard and a large one is sharded") {
  CHECK(MemoryStore(kIdle, kAbsolute, 3).shard_count() == 1);
  CHECK(MemoryStore(kIdle, kAbsolute, 0).shard_count() == 1);
  CHECK(MemoryStore(kIdle, kAbsolute, 4096).shard_count() == 4);
  CHECK(MemoryStore(kIdle, kAbsolute, 1000000).shard_count() == MemoryStore::kMaxShards);
}

TEST_CASE("when full, the least recently seen session is evicted first") {
  MemoryStore store(kIdle, kAbsolute, 3);
  REQUIRE(create(store, key(1), record_at(kT0)) == StoreStatus::kOk);
  REQUIRE(create(store, key(2), record_at(kT0 + 1)) == StoreStatus::kOk);
  REQUIRE(create(store, key(3), record_at(kT0 + 2)) == StoreStatus::kOk);
  SessionChange seen;
  seen.last_seen_ms = kT0 + 3;
  REQUIRE(modify(store, key(1), seen, kT0 + 3) == StoreStatus::kOk);  // 1 is now the most recent
  REQUIRE(create(store, key(4), record_at(kT0 + 4)) == StoreStatus::kOk);
  // Checked through stats, not lookup(): a lookup is a return and would protect the session.
  CHECK(store.stats().evicted == 1);
  REQUIRE(create(store, key(5), record_at(kT0 + 5)) == StoreStatus::kOk);
  CHECK(store.stats().evicted == 2);
  CHECK(store.stats().active == 3);
  CHECK(found(store, key(1), kT0 + 6));
  CHECK_FALSE(found(store, key(2), kT0 + 6));
  CHECK_FALSE(found(store, key(3), kT0 + 6));
  CHECK(found(store, key(4), kT0 + 6));
  CHECK(found(store, key(5), kT0 + 6));
  CHECK(store.stats().evicted_protected == 0);
}

TEST_CASE("a sharded store never holds more than max_sessions") {
  MemoryStore store(Millis(3600000), Millis(3600000), 4096);
  for (int i = 0; i < 10000; ++i)
    REQUIRE(create(store, key(i), record_at(kT0 + i)) == StoreStatus::kOk);
  const auto s = store.stats();
  CHECK(s.active == 4096);
  CHECK(s.created == 10000);
  CHECK(s.evicted == 10000 - 4096);
  CHECK(found(store, key(9999), kT0 + 9999));
}

TEST_CASE("a full store counts an already expired victim as expired, not evicted") {
  MemoryStore store(kIdle, kAbsolute, 1);
  REQUIRE(create(store, key(1), record_at(kT0)) == StoreStatus::kOk);
  REQUIRE(create(store, key(2), record_at(kT0 + 5000)) == StoreStatus::kOk);
  CHECK(store.stats().evicted == 0);
  CHECK(store.stats().expired_idle == 1);
}

TEST_CASE("rotation moves the session to the new key and the old key stops working") {
  MemoryStore store(kIdle, kAbsolute, 100);
  REQUIRE(create(store, key(1), record_at(kT0, 5, {{"a", "1"}})) == StoreStatus::kOk);
  SessionChange login;
  login.last_seen_ms = kT0 + 100;
  login.set = {{"user", "bob"}};
  login.remove = {"a"};
  REQUIRE(rotate(store, key(1), key(2), login, /*grace_ms=*/0, kT0 + 100) == StoreStatus::kOk);
  CHECK(lookup(store, key(1), kT0 + 200).status == StoreStatus::kNotFound);
  LookupResult got = lookup(store, key(2), kT0 + 200);
  REQUIRE(got.status == StoreStatus::kOk);
  CHECK(got.record->handle[0] == 5);  // the handle survives rotation
  CHECK(got.record->created_ms == kT0);
  CHECK(got.record->last_seen_ms == kT0 + 100);
  CHECK(got.record->attributes == SessionAttributes{{"user", "bob"}});
  const auto s = store.stats();
  CHECK(s.rotated == 1);
  CHECK(s.active == 1);
  CHECK(s.destroyed == 0);
}

TEST_CASE("rotation of an unknown key or onto a taken key changes nothing") {
  MemoryStore store(kIdle, kAbsolute, 100);
  CHECK(rotate(store, key(1), key(2), SessionChange{}, 0, kT0) == StoreStatus::kNotFound);
  CHECK_FALSE(found(store, key(2), kT0));
  REQUIRE(create(store, key(1), record_at(kT0, 1)) == StoreStatus::kOk);
  REQUIRE(create(store, key(2), record_at(kT0, 2)) == StoreStatus::kOk);
  CHECK(rotate(store, key(1), key(2), SessionChange{}, 0, kT0) == StoreStatus::kUnavailable);
  CHECK(lookup(store, key(1), kT0).record->handle[0] == 1);
  CHECK(lookup(store, key(2), kT0).record->handle[0] == 2);
}

TEST_CASE("lookup_now answers at once what lookup's callback is given") {
  // The session gate uses lookup_now on the memory store (no callback on the keep-alive path):
  // found, in grace behind a marker, replayed, unknown and expired keys answer as lookup does.
  // (A lookup removes what it finds expired: each way is asked of its own, identical, store.)
  auto make = [] {
    auto store = std::make_unique<MemoryStore>(kIdle, kAbsolute, 100);
    REQUIRE(create(*store, key(1), record_at(kT0, 5, {{"user", "bob"}})) == StoreStatus::kOk);
    REQUIRE(create(*store, key(3), record_at(kT0, 6)) == StoreStatus::kOk);
    REQUIRE(create(*store, key(5), record_at(kT0, 8)) == StoreStatus::kOk);
    SessionChange c;
    c.last_seen_ms = kT0 + 10;
    REQUIRE(rotate(*store, key(1), key(2), c, /*grace_ms=*/1000, kT0 + 10) == StoreStatus::kOk);
    REQUIRE(rotate(*store, key(5), key(6), c, /*grace_ms=*/0, kT0 + 10) == StoreStatus::kOk);
    return store;
  };
  for (int k : {1, 2, 3, 4, 5}) {
    for (int64_t now : {kT0 + 20, kT0 + 20 + kIdle.count() + 1}) {
      CAPTURE(k);
      CAPTURE(now);
      LookupResult direct;
      REQUIRE(make()->lookup_now(key(k), now, direct));
      LookupResult called = lookup(*make(), key(k), now);
      CHECK(direct.status == called.status);
      CHECK(direct.rotated == called.rotated);
      CHECK(direct.expired == called.expired);
      CHECK(direct.live_key == called.live_key);
      REQUIRE(direct.record.has_value() == called.record.has_value());
      if (direct.record) {
        CHECK(direct.record->handle == called.record->handle);
        CHECK(direct.record->attributes == called.record->attributes);
      }
    }
  }
  auto store = make();
  LookupResult grace;
  REQUIRE(store->lookup_now(key(1), kT0 + 20, grace));
  CHECK(grace.status == StoreStatus::kOk);
  CHECK(grace.rotated == RotatedKey::kInGrace);
  CHECK(grace.live_key == key(2));
  LookupResult replay;
  REQUIRE(store->lookup_now(key(5), kT0 + 20, replay));
  CHECK(replay.rotated == RotatedKey::kReplay);
  LookupResult expired;
  REQUIRE(store->lookup_now(key(3), kT0 + 20 + kIdle.count() + 1, expired));
  CHECK(expired.status == StoreStatus::kNotFound);
  CHECK(expired.expired == ExpiryKind::kIdle);
}

TEST_CASE("destroy removes the session") {
  MemoryStore store(kIdle, kAbsolute, 100);
  REQUIRE(create(store, key(1), record_at(kT0)) == StoreStatus::kOk);
  CHECK(destroy(store, key(1)) == StoreStatus::kOk);
  CHECK_FALSE(found(store, key(1), kT0));
  CHECK(store.stats().destroyed == 1);
  CHECK(store.stats().active == 0);
}

TEST_CASE("a callback may call the store again") {
  MemoryStore store(kIdle, kAbsolute, 100);
  bool inner = false;
  store.create(key(1), record_at(kT0), [&](StoreStatus) {
    store.lookup(key(1), kT0, [&](LookupResult r) { inner = r.status == StoreStatus::kOk; });
  });
  CHECK(inner);
}

TEST_CASE("reclaim frees idle sessions from the least recently seen end within its budget") {
  MemoryStore store(kIdle, kAbsolute, 100);
  for (int i = 0; i < 10; ++i)
    REQUIRE(create(store, key(i), record_at(kT0 + i * 100)) == StoreStatus::kOk);
  // At kT0 + 1450, sessions 0..4 (last seen <= kT0 + 400) are idle-expired.
  CHECK(store.reclaim_some(kT0 + 1450, 2) == 2);
  CHECK(store.reclaim_some(kT0 + 1450, 100) == 3);
  CHECK(store.reclaim_some(kT0 + 1450, 100) == 0);
  CHECK(store.stats().expired_idle == 5);
  CHECK(store.stats().active == 5);
  CHECK(found(store, key(5), kT0 + 1450));
}

TEST_CASE("a snapshot round trip restores valid sessions and skips expired ones") {
  TempDir dir;
  const std::string path = (dir.path / "sessions.snap").string();
  MemoryStore store(kIdle, kAbsolute, 100);
  REQUIRE(create(store, key(1), record_at(kT0, 1, {{"user", "alice"}, {"z", "1"}})) ==
          StoreStatus::kOk);
  REQUIRE(create(store, key(2), record_at(kT0 + 900, 2)) == StoreStatus::kOk);
  SnapshotStatus saved = store.save_snapshot(path);
  REQUIRE_MESSAGE(saved.ok(), saved.message);
  CHECK(saved.records == 2);

  struct stat st;
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK(std::distance(std::filesystem::directory_iterator(dir.path),
                      std::filesystem::directory_iterator()) == 1);  // no temp file left
  // Keyed by the token's hash, and the token itself is nowhere (key(1) = hash_token("token-1")).
  const std::string bytes = read_file(path);
  const TokenHash k1 = key(1);
  CHECK(bytes.find(std::string(k1.begin(), k1.end())) != std::string::npos);
  CHECK(bytes.find("token-1") == std::string::npos);

  MemoryStore loaded(kIdle, kAbsolute, 100);
  SnapshotStatus st2 = loaded.load_snapshot(path, kT0 + 500, 0, 0);
  REQUIRE_MESSAGE(st2.ok(), st2.message);
  CHECK(st2.records == 2);
  LookupResult r = lookup(loaded, key(1), kT0 + 500);
  REQUIRE(r.status == StoreStatus::kOk);
  CHECK(r.record->handle[0] == 1);
  CHECK(r.record->attributes == SessionAttributes{{"user", "alice"}, {"z", "1"}});

  MemoryStore later(kIdle, kAbsolute, 100);
  REQUIRE(later.load_snapshot(path, kT0 + 1500, 0, 0).ok());  // session 1 is idle-expired by then
  CHECK(later.stats().active == 1);
  CHECK_FALSE(found(later, key(1), kT0 + 1500));
  CHECK(found(later, key(2), kT0 + 1500));
}

TEST_CASE("a missing snapshot is a first start") {
  MemoryStore store(kIdle, kAbsolute, 100);
  SnapshotStatus st = store.load_snapshot("/nonexistent-dir-sg/none.snap", kT0, 0, 0);
  CHECK(st.code == SnapshotStatus::Code::kMissing);
  CHECK(store.stats().active == 0);
}

TEST_CASE("a snapshot into a missing directory reports an I/O error") {
  MemoryStore store(kIdle, kAbsolute, 100);
  SnapshotStatus st = store.save_snapshot("/nonexistent-dir-sg/none.snap");
  CHECK(st.code == SnapshotStatus::Code::kIoError);
  CHECK(st.message.find("/nonexistent-dir-sg/") != std::string::npos);
}

// Saves 8 sessions and returns the file's bytes.
std::string saved_snapshot(const std::string& path) {
  MemoryStore store(kIdle, kAbsolute, 100);
  for (int i = 0; i < 8; ++i) {
    REQUIRE(create(store, key(i),
                   record_at(kT0, static_cast<uint8_t>(i), {{"n", std::to_string(i)}})) ==
            StoreStatus::kOk);
  }
  REQUIRE(store.save_snapshot(path).ok());
  return read_file(path);
}

// Every session in `store` must be one of the genuine eight, intact.
void check_only_genuine(MemoryStore& store, uint64_t expected_count) {
  uint64_t seen = 0;
  for (int i = 0; i < 8; ++i) {
    LookupResult r = lookup(store, key(i), kT0);
    if (r.status != StoreStatus::kOk) continue;
    ++seen;
    CHECK(r.record->handle[0] == i);
    CHECK(r.record->attributes == SessionAttributes{{"n", std::to_string(i)}});
  }
  CHECK(seen == expected_count);
  CHECK(store.stats().active == expected_count);
}

// The number of whole session records before byte `at` of a saved_snapshot() file: a 20-byte
// header, eight records of one size, a 17-byte end record.
uint64_t records_before(const std::string& bytes, size_t at) {
  const size_t record = (bytes.size() - 20 - 17) / 8;
  REQUIRE(20 + 8 * record + 17 == bytes.size());
  return at < 20 ? 0 : std::min<uint64_t>(8, (at - 20) / record);
}

TEST_CASE("a snapshot cut short at any byte is reported and keeps only whole records") {
  TempDir dir;
  const std::string path = (dir.path / "s.snap").string();
  const std::string bytes = saved_snapshot(path);
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    write_file(path, bytes.substr(0, cut));
    MemoryStore store(kIdle, kAbsolute, 100);
    SnapshotStatus st = store.load_snapshot(path, kT0, 0, 0);
    CHECK(st.code == SnapshotStatus::Code::kCorrupt);
    CHECK_FALSE(st.message.empty());
    CHECK(st.records == records_before(bytes, cut));  // every whole record before the cut
    check_only_genuine(store, st.records);
  }
}

TEST_CASE("a corrupt byte anywhere in a snapshot is detected") {
  TempDir dir;
  const std::string path = (dir.path / "s.snap").string();
  const std::string bytes = saved_snapshot(path);
  for (size_t at = 0; at < bytes.size(); ++at) {
    std::string damaged = bytes;
    damaged[at] = static_cast<char>(damaged[at] ^ 0x20);
    write_file(path, damaged);
    MemoryStore store(kIdle, kAbsolute, 100);
    SnapshotStatus st = store.load_snapshot(path, kT0, 0, 0);
    CHECK(st.code == SnapshotStatus::Code::kCorrupt);
    CHECK(st.records == records_before(bytes, at));  // every record before the damaged one
    check_only_genuine(store, st.records);
  }
  write_file(path, bytes + "x");
  MemoryStore store(kIdle, kAbsolute, 100);
  CHECK(store.load_snapshot(path, kT0, 0, 0).code == SnapshotStatus::Code::kCorrupt);
}

TEST_CASE("four threads create, look up, rotate and destroy concurrently") {
  MemoryStore store(Millis(3600000), Millis(3600000), 1000000);
  constexpr int kPerThread = 20000;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const int id = t * 1'000'000 + i;
        const int64_t now = kT0 + i;
        if (create(store, key(id), record_at(now)) != StoreStatus::kOk) ++failures;
        if (!found(store, key(id), now)) ++failures;
        if (i % 3 == 0 && rotate(store, key(id), key(id + 500'000), SessionChange{}, 0, now) !=
                              StoreStatus::kOk) {
          ++failures;
        }
        if (i % 5 == 0) {
          const TokenHash& k = i % 3 == 0 ? key(id + 500'000) : key(id);
          if (destroy(store, k) != StoreStatus::kOk) ++failures;
        }
        // Another thread's keys: a session is either found whole or not at all.
        LookupResult other = lookup(store, key((t + 1) % 4 * 1'000'000 + i), now);
        if (other.status == StoreStatus::kOk && other.record->created_ms != now) ++failures;
        if (i % 1000 == 0) store.reclaim_some(now, 16);
      }
    });
  }
  for (auto& th : threads)
    th.join();
  CHECK(failures == 0);
  const auto s = store.stats();
  CHECK(s.created == 4 * kPerThread);
  CHECK(s.destroyed == 4 * (kPerThread / 5));
  CHECK(s.rotated == 4 * ((kPerThread + 2) / 3));
  CHECK(s.active == s.created - s.destroyed);
}

}  // namespace
}  // namespace sg
