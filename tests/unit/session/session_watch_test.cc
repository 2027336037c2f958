#include "proxy_core/session/session_watch.h"

#include <doctest/doctest.h>

#include <atomic>
#include <set>
#include <thread>
#include <vector>

#include "proxy_core/session/session_end_bus.h"

namespace sg {
namespace {

struct Tunnel final : SessionWatcher {
  int ended = 0;
  void session_ended() override { ++ended; }
};

SessionHandle handle_of(uint8_t b) {
  SessionHandle h{};
  h.fill(b);
  return h;
}

TokenHash key_of(uint8_t b) {
  TokenHash k{};
  k.fill(b);
  return k;
}

TEST_CASE("session watch: ending a session tells each of its tunnels once and no other") {
  SessionWatch watch;
  Tunnel a1, a2, b;
  watch.add(&a1, handle_of(1), key_of(1));
  watch.add(&a2, handle_of(1), key_of(1));
  watch.add(&b, handle_of(2), key_of(2));
  CHECK(watch.sessions() == 2);
  CHECK(watch.watchers() == 3);
  CHECK(watch.end(handle_of(1)) == 2);
  CHECK(a1.ended == 1);
  CHECK(a2.ended == 1);
  CHECK(b.ended == 0);
  CHECK_FALSE(a1.watching());
  CHECK(watch.sessions() == 1);
  CHECK(watch.watchers() == 1);
  CHECK(watch.end(handle_of(1)) == 0);  // already ended: nobody left
  CHECK(a1.ended == 1);
}

TEST_CASE("session watch: a removed tunnel is not told and its session leaves with the last one") {
  SessionWatch watch;
  Tunnel a1, a2, a3;
  watch.add(&a1, handle_of(1), key_of(1));
  watch.add(&a2, handle_of(1), key_of(1));
  watch.add(&a3, handle_of(1), key_of(1));
  watch.remove(&a2);  // the middle of the list
  watch.remove(&a2);  // twice: nothing
  CHECK(watch.watchers() == 2);
  CHECK(watch.watches(handle_of(1)));
  watch.remove(&a3);  // the head
  watch.remove(&a1);
  CHECK_FALSE(watch.watches(handle_of(1)));
  CHECK(watch.sessions() == 0);
  CHECK(watch.end(handle_of(1)) == 0);
  CHECK(a1.ended + a2.ended + a3.ended == 0);
}

// A running response: pending first, watched once due (it adds itself, as Exchange does).
struct Response final : SessionWatcher {
  SessionWatch* watch = nullptr;
  uint8_t session = 0;
  int due = 0;
  int ended = 0;
  void session_ended() override { ++ended; }
  void watch_due() override {
    ++due;
    watch->add(this, handle_of(session), key_of(session));
  }
};

TEST_CASE("session watch: pending watchers are watched only once older than the grace") {
  SessionWatch watch;
  Response early, late, gone;
  for (Response* r : {&early, &late, &gone})
    r->watch = &watch;
  early.session = 1;
  late.session = 2;
  gone.session = 3;
  watch.add_pending(&early, 1000);
  watch.add_pending(&gone, 1100);
  watch.add_pending(&late, 1500);
  CHECK(watch.pending_count() == 3);
  watch.remove_pending(&gone);  // ended within its first second: never watched
  watch.remove_pending(&gone);  // twice: nothing
  CHECK_FALSE(gone.pending());
  CHECK(watch.promote_due(1999, 1000) == 0);  // nobody is a second old yet
  CHECK(watch.sessions() == 0);
  CHECK(watch.promote_due(2000, 1000) == 1);
  CHECK(early.due == 1);
  CHECK(early.watching());
  CHECK_FALSE(early.pending());
  CHECK(late.pending());
  CHECK(watch.promote_due(2600, 1000) == 1);
  CHECK(late.watching());
  CHECK(watch.pending_count() == 0);
  CHECK(watch.promote_due(9000, 1000) == 0);  // promoted once
  CHECK(gone.due == 0);
  CHECK(watch.end(handle_of(1)) == 1);
  CHECK(early.ended == 1);
  CHECK(late.ended == 0);
  CHECK(late.pending_since_ms() == 1500);
  watch.remove(&late);
}

TEST_CASE("session watch: batches visit every watched session round robin with its latest key") {
  SessionWatch watch;
  std::vector<Tunnel> tunnels(5);
  for (uint8_t i = 0; i < 5; ++i)
    watch.add(&tunnels[i], handle_of(i), key_of(i));
  watch.update_key(handle_of(3), key_of(33));
  std::vector<SessionWatch::Watched> batch;
  std::multiset<uint8_t> seen;
  for (int round = 0; round < 3; ++round) {  // 2 + 2 + 2 visits over 5 sessions
    watch.next_batch(2, batch);
    REQUIRE(batch.size() == 2);
    for (const auto& w : batch) {
      seen.insert(w.handle[0]);
      CHECK(w.key[0] == (w.handle[0] == 3 ? 33 : w.handle[0]));
    }
  }
  for (uint8_t i = 0; i < 5; ++i)
    CHECK(seen.count(i) >= 1);  // every session within one round
  watch.remove(&tunnels[0]);    // swap-remove keeps the others reachable
  watch.next_batch(10, batch);
  CHECK(batch.size() == 4);
  std::set<uint8_t> left;
  for (const auto& w : batch)
    left.insert(w.handle[0]);
  CHECK(left == std::set<uint8_t>{1, 2, 3, 4});
}

TEST_CASE("session watch: ends by store key follow the latest key of each session") {
  SessionWatch watch;
  Tunnel a, b;
  watch.add(&a, handle_of(1), key_of(1));
  watch.add(&b, handle_of(2), key_of(2));
  CHECK(watch.watches_key(key_of(1)));
  watch.update_key(handle_of(1), key_of(11));  // rotated since the tunnel started
  CHECK_FALSE(watch.watches_key(key_of(1)));
  CHECK(watch.end_key(key_of(1)) == 0);
  CHECK(a.ended == 0);
  CHECK(watch.end_key(key_of(11)) == 1);
  CHECK(a.ended == 1);
  CHECK_FALSE(watch.watches_key(key_of(11)));
  watch.remove(&b);
  CHECK_FALSE(watch.watches_key(key_of(2)));  // the key leaves with its session
  CHECK(watch.end_key(key_of(2)) == 0);
}

TEST_CASE("session end bus: an end reaches only the workers that watch the session") {
  SessionEndBus bus(2);
  SessionWatch w0, w1;
  int wakes0 = 0, wakes1 = 0;
  bus.attach(0, &w0, [&] { ++wakes0; });
  bus.attach(1, &w1, [&] { ++wakes1; });
  Tunnel t;
  w1.add(&t, handle_of(7), key_of(7));
  bus.publish(handle_of(7));
  bus.publish(handle_of(8));  // watched by nobody: queued nowhere
  bus.publish(handle_of(7));
  CHECK(wakes0 == 0);
  CHECK(wakes1 == 1);  // woken when the queue went from empty to not empty only
  std::vector<SessionEnd> got;
  CHECK_FALSE(bus.take(0, got));
  CHECK(got.empty());
  CHECK_FALSE(bus.take(1, got));
  REQUIRE(got.size() == 2);
  CHECK(got[0].handle == handle_of(7));
  CHECK(got[1].handle == handle_of(7));
  CHECK_FALSE(got[0].by_key);
  bus.publish_key(key_of(9));  // no session watched under that key
  bus.publish_key(key_of(7));
  CHECK(bus.take(1, got) == false);
  REQUIRE(got.size() == 1);
  CHECK(got[0].by_key);
  CHECK(got[0].key == key_of(7));
  CHECK(wakes1 == 2);
  bus.publish(handle_of(7));
  CHECK(wakes1 == 3);
  bus.detach(1);
  bus.publish(handle_of(7));  // detached: no wake-up for a closed handle
  CHECK(wakes1 == 3);
  CHECK_FALSE(bus.take(1, got));
  CHECK(got.empty());
}

TEST_CASE("session end bus: a full inbox drops and says so, and the next take starts clean") {
  SessionEndBus bus(1, 3);
  SessionWatch w;
  Tunnel t;
  w.add(&t, handle_of(1), key_of(1));
  bus.attach(0, &w, [] {});
  for (int i = 0; i < 5; ++i)
    bus.publish(handle_of(1));
  std::vector<SessionEnd> got;
  CHECK(bus.take(0, got));
  CHECK(got.size() == 3);
  CHECK_FALSE(bus.take(0, got));
  CHECK(got.empty());
}

TEST_CASE("session end bus: publishers on other threads while the owner adds and removes") {
  SessionEndBus bus(1, 1 << 20);
  SessionWatch w;
  std::atomic<int> wakes{0};
  bus.attach(0, &w, [&] { wakes.fetch_add(1); });
  Tunnel kept;
  w.add(&kept, handle_of(1), key_of(1));
  std::thread publisher([&] {
    for (int i = 0; i < 20000; ++i)
      bus.publish(handle_of(static_cast<uint8_t>(i % 4)));
  });
  std::vector<Tunnel> churn(100);
  for (int round = 0; round < 50; ++round)
    for (size_t i = 0; i < churn.size(); ++i) {
      if (churn[i].watching()) {
        w.remove(&churn[i]);
      } else {
        w.add(&churn[i], handle_of(static_cast<uint8_t>(2 + i % 2)), key_of(2));
      }
    }
  publisher.join();
  std::vector<SessionEnd> got;
  bus.take(0, got);
  size_t ones = 0;
  for (const SessionEnd& e : got)
    ones += e.handle == handle_of(1);
  CHECK(ones == 5000);  // the watched session's every end, none lost
  CHECK(wakes.load() >= 1);
  for (const SessionEnd& e : got)
    CHECK(e.handle != handle_of(0));  // never watched
}

}  // namespace
}  // namespace sg
