// The memory store tells its SessionEndSink of every session it removes (issue 14: live
// connections follow the session), and of nothing else.
#include <vector>

#include "tests/unit/memory_store_test_util.h"

namespace sg::test {
namespace {

struct RecordingSink final : SessionEndSink {
  std::vector<uint8_t> ended;  // the tag of each ended handle
  void session_ended(const SessionHandle& h) override { ended.push_back(h[0]); }
  void session_key_ended(const TokenHash&) override { FAIL("the memory store names handles"); }
};

TEST_CASE("memory store end sink: destroy and expiry found by a lookup are told, rotation is not") {
  MemoryStore store(kIdle, kAbsolute, 1000);
  RecordingSink sink;
  store.set_end_sink(&sink);
  REQUIRE(create(store, key(1), record_at(kT0, 1)) == StoreStatus::kOk);
  REQUIRE(create(store, key(2), record_at(kT0, 2)) == StoreStatus::kOk);
  REQUIRE(create(store, key(3), record_at(kT0, 3)) == StoreStatus::kOk);
  StoreStatus s = StoreStatus::kUnavailable;
  store.rotate(key(3), key(4), SessionChange{}, 0, kT0, [&](StoreStatus r) { s = r; });
  REQUIRE(s == StoreStatus::kOk);
  CHECK(sink.ended.empty());  // a rotation keeps the session (and its handle)
  store.destroy(key(1), [&](StoreStatus r) { s = r; });
  REQUIRE(s == StoreStatus::kOk);
  CHECK(sink.ended == std::vector<uint8_t>{1});
  CHECK(lookup(store, key(2), kT0 + kIdle.count() + 1).status == StoreStatus::kNotFound);
  CHECK(sink.ended == std::vector<uint8_t>{1, 2});  // idle expiry, found lazily
}

TEST_CASE("memory store end sink: eviction and reclaim are told") {
  MemoryStore store(kIdle, kAbsolute, 3);
  RecordingSink sink;
  store.set_end_sink(&sink);
  for (uint8_t i = 1; i <= 4; ++i)
    REQUIRE(create(store, key(i), record_at(kT0 + i, i)) == StoreStatus::kOk);
  CHECK(sink.ended == std::vector<uint8_t>{1});  // the least recently seen, evicted by the 4th
  sink.ended.clear();
  CHECK(store.reclaim_some(kT0 + 10 * kIdle.count(), 100) == 3);
  CHECK(sink.ended.size() == 3);
}

}  // namespace
}  // namespace sg::test
