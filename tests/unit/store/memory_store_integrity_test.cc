// The memory store's integrity rules (session_store.h): per-field modify on a live session only,
// rotation with grace markers, segmented LRU eviction. A random model test checks that no
// destroyed session ever comes back through any key.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "proxy_core/store/memory_store.h"
#include "proxy_core/store/memory_store_shard.h"
#include "tests/fuzz/store_model.h"
#include "tests/unit/memory_store_test_util.h"

namespace sg {
namespace {

using namespace test;  // NOLINT: the helpers are this file's vocabulary

SessionChange sets(std::vector<std::pair<std::string, std::string>> set,
                   std::vector<std::string> remove = {}) {
  SessionChange c;
  c.set = std::move(set);
  c.remove = std::move(remove);
  return c;
}

SessionChange seen_at(int64_t now_ms) {
  SessionChange c;
  c.last_seen_ms = now_ms;
  return c;
}

TEST_CASE("modify sets and removes single attributes and keeps the others") {
  MemoryStore store(kIdle, kAbsolute, 100);
  REQUIRE(create(store, key(1), record_at(kT0, 4, {{"a", "1"}, {"role", "admin"}})) ==
          StoreStatus::kOk);
  REQUIRE(modify(store, key(1), sets({{"user", "bob"}}, {"role"}), kT0 + 1) == StoreStatus::kOk);
  LookupResult r = lookup(store, key(1), kT0 + 2);
  REQUIRE(r.status == StoreStatus::kOk);
  CHECK(r.record->attributes == SessionAttributes{{"a", "1"}, {"user", "bob"}});
  CHECK(r.record->handle[0] == 4);
  CHECK(r.record->created_ms == kT0);
  CHECK(r.record->last_seen_ms == kT0);  // no last_seen_ms in the change: unchanged
  REQUIRE(modify(store, key(1), sets({{"a", "2"}, {"user", ""}}), kT0 + 3) == StoreStatus::kOk);
  CHECK(lookup(store, key(1), kT0 + 3).record->attributes == SessionAttributes{{"a", "2"}});
}

TEST_CASE("modify never writes to a destroyed, expired, rotated or unknown key") {
  MemoryStore store(kIdle, kAbsolute, 100);
  REQUIRE(create(store, key(1), record_at(kT0)) == StoreStatus::kOk);
  REQUIRE(destroy(store, key(1)) == StoreStatus::kOk);
  CHECK(modify(store, key(1), sets({{"role", "admin"}}), kT0) == StoreStatus::kNotFound);
  CHECK(modify(store, key(1), seen_at(kT0 + 1), kT0 + 1) == StoreStatus::kNotFound);

  REQUIRE(create(store, key(2), record_at(kT0)) == StoreStatus::kOk);
  const int64_t late = kT0 + kIdle.count() + 1;
  CHECK(modify(store, key(2), seen_at(late), late) == StoreStatus::kNotFound);  // idle-expired

  REQUIRE(create(store, key(3), record_at(kT0)) == StoreStatus::kOk);
  REQUIRE(rotate(store, key(3), key(4), {}, 1000, kT0) == StoreStatus::kOk);
  CHECK(modify(store, key(3), sets({{"role", "admin"}}), kT0) == StoreStatus::kNotFound);
  CHECK(destroy(store, key(3)) == StoreStatus::kNotFound);  // a marker is not the live key
  LookupResult live = lookup(store, key(4), kT0);
  REQUIRE(live.status == StoreStatus::kOk);
  CHECK(live.record->attributes.empty());  // the write to the old key went nowhere

  CHECK_FALSE(found(store, key(1), kT0));
  CHECK_FALSE(found(store, key(2), kT0));
  CHECK(store.stats().active == 1);
  CHECK(store.stats().created == 3);
}

TEST_CASE("modify refuses a result over the bounds and changes nothing") {
  MemoryStore store(kIdle, kAbsolute, 100);
  REQUIRE(create(store, key(1), record_at(kT0, 0, {{"a", "1"}, {"b", "2"}})) == StoreStatus::kOk);
  SessionChange c = sets({{"c", "3"}});
  c.max_attributes = 2;
  c.last_seen_ms = kT0 + 50;
  CHECK(modify(store, key(1), c, kT0 + 50) == StoreStatus::kRejected);
  LookupResult r = lookup(store, key(1), kT0 + 60);
  CHECK(r.record->attributes == SessionAttributes{{"a", "1"}, {"b", "2"}});
  CHECK(r.record->last_seen_ms == kT0);  // not even the refresh

  c = sets({{"a", "12345"}});
  c.max_attribute_bytes = 5;  // a+12345 = 6, plus b+2
  CHECK(modify(store, key(1), c, kT0) == StoreStatus::kRejected);
  c.max_attribute_bytes = 8;  // exactly the bound
  CHECK(modify(store, key(1), c, kT0) == StoreStatus::kOk);
  c = sets({{"c", "3"}}, {"a"});  // removes first: the result has two attributes
  c.max_attributes = 2;
  CHECK(modify(store, key(1), c, kT0) == StoreStatus::kOk);
  CHECK(lookup(store, key(1), kT0).record->attributes == SessionAttributes{{"b", "2"}, {"c", "3"}});
}

TEST_CASE("modify moves last-seen forward only") {
  MemoryStore store(kIdle, kAbsolute, 100);
  REQUIRE(create(store, key(1), record_at(kT0)) == StoreStatus::kOk);
  REQUIRE(modify(store, key(1), seen_at(kT0 + 500), kT0 + 500) == StoreStatus::kOk);
  REQUIRE(modify(store, key(1), seen_at(kT0 + 100), kT0 + 500) == StoreStatus::kOk);  // stale
  CHECK(lookup(store, key(1), kT0 + 600).record->last_seen_ms == kT0 + 500);
  CHECK(found(store, key(1), kT0 + 500 + kIdle.count()));  // the idle expiry moved with it
}

TEST_CASE("two threads modifying different attributes of one session lose neither change") {
  MemoryStore store(kIdle, kAbsolute, 100);
  REQUIRE(create(store, key(1), record_at(kT0)) == StoreStatus::kOk);
  constexpr int kRounds = 2000;
  auto writer = [&](const std::string& prefix) {
    for (int i = 0; i < kRounds; ++i) {
      SessionChange c = sets({{prefix + std::to_string(i % 8), std::to_string(i)}});
      c.last_seen_ms = kT0 + i;
      REQUIRE(modify(store, key(1), c, kT0 + i) == StoreStatus::kOk);
    }
  };
  std::thread a(writer, "a");
  std::thread b(writer, "b");
  a.join();
  b.join();
  LookupResult r = lookup(store, key(1), kT0 + kRounds);
  REQUIRE(r.status == StoreStatus::kOk);
  REQUIRE(r.record->attributes.size() == 16);
  for (const auto& [name, value] : r.record->attributes) {
    const int slot = name[1] - '0';
    CHECK(value == std::to_string(kRounds - 8 + slot));  // each name's last write survived
  }
}

TEST_CASE("rotate moves the session with the change applied and leaves a grace marker") {
  MemoryStore store(kIdle, kAbsolute, 100);
  REQUIRE(create(store, key(1), record_at(kT0, 5, {{"cart", "3"}})) == StoreStatus::kOk);
  SessionChange c = sets({{"user", "alice"}});
  c.last_seen_ms = kT0 + 100;
  REQUIRE(rotate(store, key(1), key(2), c, 200, kT0 + 100) == StoreStatus::kOk);
  const SessionAttributes want{{"cart", "3"}, {"user", "alice"}};

  LookupResult live = lookup(store, key(2), kT0 + 150);
  REQUIRE(live.status == StoreStatus::kOk);
  CHECK(live.rotated == RotatedKey::kNo);
  CHECK(live.record->handle[0] == 5);
  CHECK(live.record->created_ms == kT0);
  CHECK(live.record->last_seen_ms == kT0 + 100);
  CHECK(live.record->attributes == want);

  LookupResult grace = lookup(store, key(1), kT0 + 299);  // grace ends at kT0 + 300
  CHECK(grace.status == StoreStatus::kOk);
  CHECK(grace.rotated == RotatedKey::kInGrace);
  CHECK(grace.live_key == key(2));
  REQUIRE(grace.record.has_value());
  CHECK(grace.record->handle[0] == 5);
  CHECK(grace.record->attributes == want);

  LookupResult replay = lookup(store, key(1), kT0 + 300);
  CHECK(replay.status == StoreStatus::kNotFound);
  CHECK(replay.rotated == RotatedKey::kReplay);
  CHECK(replay.live_key == key(2));
  REQUIRE(replay.record.has_value());
  CHECK(replay.record->handle[0] == 5);

  // Forgotten an idle timeout after the rotation: then the old key is merely unknown.
  LookupResult gone = lookup(store, key(1), kT0 + 100 + kIdle.count());
  CHECK(gone.status == StoreStatus::kNotFound);
  CHECK(gone.rotated == RotatedKey::kNo);
  CHECK_FALSE(gone.record.has_value());
  const auto s = store.stats();
  CHECK(s.rotated == 1);
  CHECK(s.active == 1);
  CHECK(s.markers == 1);
  store.reclaim_some(kT0 + 100 + kIdle.count(), 100);
  CHECK(store.stats().markers == 0);
  CHECK(found(store, key(2), kT0 + 100 + kIdle.count()));
}

TEST_CASE("a grace of zero makes the old key a replay at once") {
  MemoryStore store(kIdle, kAbsolute, 100);
  REQUIRE(create(store, key(1), record_at(kT0)) == StoreStatus::kOk);
  REQUIRE(rotate(store, key(1), key(2), {}, 0, kT0) == StoreStatus::kOk);
  LookupResult r = lookup(store, key(1), kT0);
  CHECK(r.status == StoreStatus::kNotFound);
  CHECK(r.rotated == RotatedKey::kReplay);
}

TEST_CASE("a session rotated twice is reached from its first key in the grace window") {
  MemoryStore store(kIdle, kAbsolute, 100);
  REQUIRE(create(store, key(1), record_at(kT0, 9)) == StoreStatus::kOk);
  REQUIRE(rotate(store, key(1), key(2), {}, 500, kT0) == StoreStatus::kOk);
  REQUIRE(rotate(store, key(2), key(3), sets({{"user", "u"}}), 500, kT0 + 10) == StoreStatus::kOk);
  LookupResult r = lookup(store, key(1), kT0 + 20);
  CHECK(r.status == StoreStatus::kOk);
  CHECK(r.rotated == RotatedKey::kInGrace);
  CHECK(r.live_key == key(3));
  CHECK(r.record->attributes == SessionAttributes{{"user", "u"}});
}

TEST_CASE("a marker never reaches a destroyed session") {
  MemoryStore store(kIdle, kAbsolute, 100);
  REQUIRE(create(store, key(1), record_at(kT0, 9, {{"user", "u"}})) == StoreStatus::kOk);
  REQUIRE(rotate(store, key(1), key(2), {}, 500, kT0) == StoreStatus::kOk);
  REQUIRE(destroy(store, key(2)) == StoreStatus::kOk);
  LookupResult grace = lookup(store, key(1), kT0 + 1);
  CHECK(grace.status == StoreStatus::kNotFound);
  CHECK(grace.rotated == RotatedKey::kNo);
  CHECK_FALSE(grace.record.has_value());
  LookupResult replay = lookup(store, key(1), kT0 + 600);
  CHECK(replay.status == StoreStatus::kNotFound);
  CHECK(replay.rotated == RotatedKey::kReplay);
  CHECK_FALSE(replay.record.has_value());
  CHECK(rotate(store, key(1), key(3), {}, 500, kT0 + 2) == StoreStatus::kNotFound);
  CHECK_FALSE(found(store, key(3), kT0 + 2));
}

TEST_CASE("rotate changes nothing when refused") {
  MemoryStore store(kIdle, kAbsolute, 100);
  CHECK(rotate(store, key(1), key(2), {}, 500, kT0) == StoreStatus::kNotFound);
  REQUIRE(create(store, key(1), record_at(kT0, 1, {{"a", "1"}})) == StoreStatus::kOk);
  REQUIRE(create(store, key(2), record_at(kT0, 2)) == StoreStatus::kOk);
  CHECK(rotate(store, key(1), key(2), {}, 500, kT0) == StoreStatus::kUnavailable);
  SessionChange big = sets({{"b", "2"}});
  big.max_attributes = 1;
  CHECK(rotate(store, key(1), key(3), big, 500, kT0) == StoreStatus::kRejected);
  CHECK(lookup(store, key(1), kT0).record->attributes == SessionAttributes{{"a", "1"}});
  CHECK(lookup(store, key(1), kT0).rotated == RotatedKey::kNo);
  CHECK_FALSE(found(store, key(3), kT0));
  CHECK(store.stats().rotated == 0);
  CHECK(store.stats().markers == 0);
  // A marker's key is never a fresh key again: creating or rotating onto it fails closed.
  REQUIRE(rotate(store, key(1), key(3), {}, 500, kT0) == StoreStatus::kOk);
  CHECK(create(store, key(1), record_at(kT0)) == StoreStatus::kUnavailable);
  CHECK(rotate(store, key(2), key(1), {}, 500, kT0) == StoreStatus::kUnavailable);
}

TEST_CASE("rotation markers have a floor of kMinMarkersPerShard, and a drop is counted") {
  // max_sessions 4: one shard whose share is 4, but markers keep their own floor, so a handful
  // of logouts cannot push a retired first-visit token's marker out. Each marker is a separate
  // session's old key (a logout's retirement), rotated without grace: a known marker is a replay.
  constexpr int kFloor = static_cast<int>(MemoryStore::kMinMarkersPerShard);
  MemoryStore store(Millis(3600000), Millis(3600000), 4);
  REQUIRE(store.shard_count() == 1);
  auto retire = [&store](int i) {
    REQUIRE(create(store, key(i), record_at(kT0)) == StoreStatus::kOk);
    REQUIRE(rotate(store, key(i), key(-1 - i), {}, 0, kT0) == StoreStatus::kOk);
  };
  for (int i = 0; i < kFloor; ++i)
    retire(i);
  CHECK(store.stats().markers == MemoryStore::kMinMarkersPerShard);
  CHECK(store.stats().markers_dropped == 0);
  CHECK(lookup(store, key(0), kT0 + 1).rotated == RotatedKey::kReplay);  // the first one holds
  for (int i = kFloor; i < kFloor + 10; ++i)
    retire(i);
  CHECK(store.stats().markers == MemoryStore::kMinMarkersPerShard);
  CHECK(store.stats().markers_dropped == 10);
  CHECK(store.stats().active <= 4);  // markers never count toward max_sessions
  for (int i = 0; i < 10; ++i)       // forgotten early: the oldest ten
    CHECK(lookup(store, key(i), kT0 + 1).rotated == RotatedKey::kNo);
  CHECK(lookup(store, key(10), kT0 + 1).rotated == RotatedKey::kReplay);
  CHECK(lookup(store, key(kFloor + 9), kT0 + 1).rotated == RotatedKey::kReplay);
  // Markers that run out on time are not drops.
  store.reclaim_some(kT0 + 3600000, 1 << 20);
  CHECK(store.stats().markers == 0);
  CHECK(store.stats().markers_dropped == 10);
}

TEST_CASE("a shard full of markers forgets the one closest to its end, and says how many") {
  memory_store_detail::Shard shard;
  shard.marker_capacity = 3;
  for (int i = 0; i < 3; ++i)
    CHECK(shard.add_marker(key(i), {key(100 + i), kT0, kT0 + 1000 + i}) == 0);
  CHECK(shard.add_marker(key(3), {key(103), kT0, kT0 + 1003}) == 1);
  CHECK(shard.markers.size() == 3);
  CHECK(shard.find_marker(key(0), kT0) == nullptr);
  CHECK(shard.find_marker(key(1), kT0) != nullptr);
  CHECK(shard.find_marker(key(3), kT0) != nullptr);
}

TEST_CASE("a flood of ten times max_sessions new sessions never evicts a protected one") {
  constexpr uint64_t kMax = 4096;  // four shards
  MemoryStore store(Millis(3600000), Millis(3600000), kMax);
  // Protected three ways: holds attributes from the start, came back, was given attributes.
  REQUIRE(create(store, key(-1), record_at(kT0, 1, {{"user", "alice"}})) == StoreStatus::kOk);
  REQUIRE(create(store, key(-2), record_at(kT0, 2)) == StoreStatus::kOk);
  REQUIRE(found(store, key(-2), kT0 + 1));
  REQUIRE(create(store, key(-3), record_at(kT0, 3)) == StoreStatus::kOk);
  REQUIRE(modify(store, key(-3), sets({{"cart", "1"}}), kT0 + 1) == StoreStatus::kOk);
  for (int i = 0; i < static_cast<int>(10 * kMax); ++i)
    REQUIRE(create(store, key(i), record_at(kT0 + 2 + i)) == StoreStatus::kOk);
  const int64_t now = kT0 + 2 + 10 * kMax;
  LookupResult alice = lookup(store, key(-1), now);
  REQUIRE(alice.status == StoreStatus::kOk);
  CHECK(alice.record->attributes == SessionAttributes{{"user", "alice"}});
  CHECK(found(store, key(-2), now));
  CHECK(found(store, key(-3), now));
  const auto s = store.stats();
  CHECK(s.evicted_protected == 0);
  CHECK(s.evicted == 10 * kMax + 3 - kMax);
  CHECK(s.active == kMax);
}

TEST_CASE("a protected session is evicted only when its shard holds no probation session") {
  MemoryStore store(Millis(3600000), Millis(3600000), 3);
  for (int i = 1; i <= 3; ++i) {
    REQUIRE(create(store, key(i), record_at(kT0 + i)) == StoreStatus::kOk);
    REQUIRE(found(store, key(i), kT0 + i));  // came back: protected
  }
  REQUIRE(create(store, key(4), record_at(kT0 + 4)) == StoreStatus::kOk);  // probation
  const auto s = store.stats();
  CHECK(s.evicted == 1);
  CHECK(s.evicted_protected == 1);
  CHECK_FALSE(found(store, key(1), kT0 + 5));  // the least recently promoted
  CHECK(found(store, key(2), kT0 + 5));
  REQUIRE(create(store, key(5), record_at(kT0 + 5)) == StoreStatus::kOk);
  CHECK(store.stats().evicted_protected == 1);  // key 4 was in probation: it went first
  CHECK(store.stats().evicted == 2);
}

TEST_CASE("a session loaded from a snapshot with attributes starts protected") {
  TempDir dir;
  const std::string path = (dir.path / "s.snap").string();
  {
    MemoryStore before(Millis(3600000), Millis(3600000), 3);
    REQUIRE(create(before, key(1), record_at(kT0, 1, {{"user", "alice"}})) == StoreStatus::kOk);
    REQUIRE(create(before, key(2), record_at(kT0, 2)) == StoreStatus::kOk);
    REQUIRE(before.save_snapshot(path).ok());
  }
  MemoryStore store(Millis(3600000), Millis(3600000), 3);
  REQUIRE(store.load_snapshot(path, kT0, 0, 0).ok());
  for (int i = 10; i < 40; ++i)
    REQUIRE(create(store, key(i), record_at(kT0 + i)) == StoreStatus::kOk);
  CHECK(found(store, key(1), kT0 + 40));
  CHECK_FALSE(found(store, key(2), kT0 + 40));  // no attributes, never came back since the load
  CHECK(store.stats().evicted_protected == 0);
}

TEST_CASE("a full store takes an expired protected session before a live probation one") {
  MemoryStore store(kIdle, kAbsolute, 2);
  REQUIRE(create(store, key(1), record_at(kT0, 0, {{"user", "u"}})) == StoreStatus::kOk);
  REQUIRE(create(store, key(2), record_at(kT0 + 900)) == StoreStatus::kOk);
  REQUIRE(create(store, key(3), record_at(kT0 + 1500)) == StoreStatus::kOk);
  CHECK(store.stats().expired_idle == 1);
  CHECK(store.stats().evicted == 0);
  CHECK(found(store, key(2), kT0 + 1500));
}

// Random numbers for the shared model driver (tests/fuzz/store_model.h).
struct RandomSource {
  std::mt19937 rng;
  int left;
  bool more() { return left-- > 0; }
  uint32_t next(uint32_t n) { return static_cast<uint32_t>(rng() % n); }
};

TEST_CASE("random operations follow the model and never bring a destroyed session back") {
  for (uint32_t seed = 1; seed <= 4; ++seed) {
    CAPTURE(seed);
    MemoryStore store(kIdle, kAbsolute, 1000000);
    sg_store_model::Model model(kIdle.count(), kAbsolute.count());
    RandomSource src{std::mt19937(seed), 6000};
    int failures = 0;
    sg_store_model::run(store, model, src, [&](bool ok, const char* what) {
      if (!ok && ++failures <= 5) FAIL_CHECK(what << " (operation " << 6000 - src.left << ")");
    });
    CHECK(failures == 0);
    CHECK(model.destroyed_handles.size() > 10);  // the run did destroy sessions
    CHECK(store.stats().rotated > 10);           // and rotate them
  }
}

}  // namespace
}  // namespace sg
