// PendingDestroyStore and RefusedKeys against a fake store whose destroy can fail, on a real libuv
// loop (timers only, no sockets).
#include "proxy_core/store/pending_destroys.h"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <thread>
#include <vector>

namespace sg {
namespace {

TokenHash key_n(uint8_t n) {
  TokenHash k{};
  for (size_t i = 0; i < k.size(); ++i)
    k[i] = static_cast<uint8_t>(n * 31 + i);
  return k;
}

// A store that answers destroy with `destroy_answer` (synchronously, or held until release()
// when `held_mode` is set, as Redis answers on a later loop iteration) and counts every call.
class FakeStore final : public SessionStore {
 public:
  explicit FakeStore(uv_loop_t* loop) : loop_(loop) {}
  StoreStatus destroy_answer = StoreStatus::kUnavailable;
  bool held_mode = false;
  LookupResult lookup_answer = found();
  int lookups = 0, destroys = 0, writes = 0;
  int in_callback = 0;                  // > 0 while this store runs one of its callers' callbacks
  std::vector<uint64_t> destroy_times;  // uv_now at each destroy
  std::vector<std::function<void()>> held;

  static LookupResult found() {
    LookupResult r;
    r.status = StoreStatus::kOk;
    r.record = SessionRecord{};
    return r;
  }
  void release() {
    std::vector<std::function<void()>> now;
    now.swap(held);
    for (auto& f : now)
      f();
  }

  void lookup(const TokenHash&, int64_t, LookupCallback done) override {
    ++lookups;
    answer([this, done] { done(lookup_answer); });
  }
  void create(const TokenHash&, const SessionRecord&, DoneCallback done) override {
    ++writes;
    done(StoreStatus::kOk);
  }
  void modify(const TokenHash&, const SessionChange&, int64_t, DoneCallback done) override {
    ++writes;
    done(StoreStatus::kOk);
  }
  void rotate(const TokenHash&, const TokenHash&, const SessionChange&, int64_t, int64_t,
              DoneCallback done) override {
    ++writes;
    done(StoreStatus::kOk);
  }
  std::vector<TokenHash> destroyed;  // the keys destroy() was called with, in order
  void destroy(const TokenHash& key, DoneCallback done) override {
    ++destroys;
    destroyed.push_back(key);
    destroy_times.push_back(uv_now(loop_));
    StoreStatus s = destroy_answer;
    answer([done, s] { done(s); });
  }
  bool usable() const override { return true; }

 private:
  void answer(std::function<void()> f) {
    auto run = [this, f = std::move(f)] {
      ++in_callback;
      f();
      --in_callback;
    };
    if (held_mode) {
      held.push_back(std::move(run));
    } else {
      run();
    }
  }
  uv_loop_t* loop_;
};

// One worker: a loop, its metrics and a wrapped fake store sharing `refused`.
struct TestWorker {
  explicit TestWorker(RefusedKeys* refused) {
    uv_loop_init(&loop);
    auto fake_store = std::make_unique<FakeStore>(&loop);
    fake = fake_store.get();
    store = std::make_unique<PendingDestroyStore>(&loop, std::move(fake_store), refused, &metrics);
  }
  ~TestWorker() {
    if (!loop_closed) {
      // Answer at once from now on, as a closing Redis store does (it completes what waits):
      // a held answer would keep the store's last attempt, and so its timer, open forever.
      fake->held_mode = false;
      fake->release();
      close_store();
      uv_run(&loop, UV_RUN_DEFAULT);
      uv_loop_close(&loop);
    }
    store.reset();
  }
  void close_store() {
    if (!close_called) {
      store->close([this] {
        inner_closed = true;
        closed_inside_callback = fake->in_callback > 0;
      });
    }
    close_called = true;
  }
  // The loop ends with no open handle once the store is closed (libuv's MAKE_VALGRIND_HAPPY).
  bool closes_cleanly() {
    close_store();
    uv_run(&loop, UV_RUN_DEFAULT);
    loop_closed = true;
    return uv_loop_close(&loop) == 0;
  }
  // Runs the loop until `pred` holds or 10 s passed (generous: CI runs under ASan, loaded).
  bool run_until(const std::function<bool()>& pred) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!pred()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      uv_run(&loop, UV_RUN_NOWAIT);
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
  }
  std::optional<StoreStatus> destroy(const TokenHash& k) {
    std::optional<StoreStatus> out;
    store->destroy(k, [&out](StoreStatus s) { out = s; });
    return out;
  }
  std::optional<LookupResult> lookup(const TokenHash& k) {
    std::optional<LookupResult> out;
    store->lookup(k, 0, [&out](LookupResult r) { out = std::move(r); });
    return out;
  }

  uv_loop_t loop;
  WorkerMetrics metrics;
  FakeStore* fake = nullptr;
  std::unique_ptr<PendingDestroyStore> store;
  bool close_called = false, inner_closed = false, loop_closed = false;
  bool closed_inside_callback = false;
};

}  // namespace

TEST_CASE("a destroy the store confirms is answered kOk and refuses nothing") {
  RefusedKeys refused(10);
  TestWorker w(&refused);
  w.fake->destroy_answer = StoreStatus::kOk;
  CHECK(w.destroy(key_n(1)) == StoreStatus::kOk);
  CHECK(refused.size() == 0);
  CHECK(w.metrics.session_destroy_unconfirmed.get() == 0);
  CHECK(w.lookup(key_n(1))->status == StoreStatus::kOk);  // the fake still has it: it was asked
  CHECK(w.fake->lookups == 1);
  CHECK(w.closes_cleanly());
}

TEST_CASE("an unconfirmed destroy is counted, answered kOk, and the token refused at once") {
  RefusedKeys refused(10);
  TestWorker w(&refused);
  CHECK(w.destroy(key_n(1)) == StoreStatus::kOk);
  CHECK(w.metrics.session_destroy_unconfirmed.get() == 1);
  CHECK(w.metrics.session_destroys_pending.load() == 1);
  CHECK(refused.contains(key_n(1)));
  // The store still holds the session, but this instance does not ask it.
  auto r = w.lookup(key_n(1));
  REQUIRE(r);
  CHECK(r->status == StoreStatus::kNotFound);
  CHECK_FALSE(r->record);
  CHECK(w.fake->lookups == 0);
  // No write reaches a session this instance logged out.
  std::optional<StoreStatus> s;
  w.store->modify(key_n(1), SessionChange{}, 0, [&](StoreStatus x) { s = x; });
  CHECK(s == StoreStatus::kNotFound);
  s.reset();
  w.store->rotate(key_n(1), key_n(2), SessionChange{}, 0, 0, [&](StoreStatus x) { s = x; });
  CHECK(s == StoreStatus::kUnavailable);  // not settled until the store confirms the destroy
  s.reset();
  w.store->create(key_n(1), SessionRecord{}, [&](StoreStatus x) { s = x; });
  CHECK(s == StoreStatus::kUnavailable);  // nor recreated meanwhile
  CHECK(w.fake->writes == 0);
  // Another key is unaffected.
  CHECK(w.lookup(key_n(3))->status == StoreStatus::kOk);
  // A second logout of the refused token is answered at once, without a second queue entry.
  CHECK(w.destroy(key_n(1)) == StoreStatus::kOk);
  CHECK(w.store->pending() == 1);
}

TEST_CASE("every worker refuses a token whose destroy another worker could not confirm") {
  RefusedKeys refused(10);
  TestWorker a(&refused), b(&refused);
  CHECK(a.destroy(key_n(7)) == StoreStatus::kOk);
  CHECK(b.lookup(key_n(7))->status == StoreStatus::kNotFound);
  CHECK(b.fake->lookups == 0);
  CHECK(b.store->pending() == 0);  // the retry belongs to the worker that queued it
}

TEST_CASE("two workers failing to destroy one key at once queue one retry") {
  RefusedKeys refused(10);
  TestWorker a(&refused), b(&refused);
  a.fake->held_mode = b.fake->held_mode = true;
  std::optional<StoreStatus> da, db;
  a.store->destroy(key_n(5), [&](StoreStatus s) { da = s; });
  b.store->destroy(key_n(5), [&](StoreStatus s) { db = s; });
  a.fake->release();
  b.fake->release();
  CHECK(da == StoreStatus::kOk);
  CHECK(db == StoreStatus::kOk);
  CHECK(a.store->pending() + b.store->pending() == 1);
}

TEST_CASE("the retry runs in the background until confirmed, then the key is asked for again") {
  RefusedKeys refused(10);
  TestWorker w(&refused);
  CHECK(w.destroy(key_n(1)) == StoreStatus::kOk);
  // Still failing: retried, still pending.
  REQUIRE(w.run_until([&] { return w.fake->destroys >= 3; }));
  CHECK(refused.contains(key_n(1)));
  CHECK(w.metrics.session_destroys_pending.load() == 1);
  // The store is back.
  w.fake->destroy_answer = StoreStatus::kOk;
  REQUIRE(w.run_until([&] { return w.store->pending() == 0; }));
  CHECK_FALSE(refused.contains(key_n(1)));
  CHECK(w.metrics.session_destroys_pending.load() == 0);
  CHECK(w.metrics.session_destroy_retried_ok.get() == 1);
  CHECK(w.metrics.session_destroy_unconfirmed.get() == 1);  // counted once, not per retry
  CHECK(w.lookup(key_n(1))->status == StoreStatus::kOk);    // the fake answers again
  CHECK(w.fake->lookups == 1);
  CHECK(w.closes_cleanly());
}

TEST_CASE("a retry answered kNotFound counts as confirmed (the session is gone)") {
  RefusedKeys refused(10);
  TestWorker w(&refused);
  CHECK(w.destroy(key_n(1)) == StoreStatus::kOk);
  w.fake->destroy_answer = StoreStatus::kNotFound;
  REQUIRE(w.run_until([&] { return w.store->pending() == 0; }));
  CHECK_FALSE(refused.contains(key_n(1)));
}

TEST_CASE("a retry that meets a rotation marker ends the session it leads to") {
  // Another instance rotated the session (a login) before the retry landed: the old key is a
  // marker (destroy: kNotFound) and the session lives on under its new key.
  RefusedKeys refused(10);
  TestWorker w(&refused);
  CHECK(w.destroy(key_n(1)) == StoreStatus::kOk);
  w.fake->destroy_answer = StoreStatus::kNotFound;
  LookupResult marker;
  marker.status = StoreStatus::kOk;
  marker.record = SessionRecord{};
  marker.rotated = RotatedKey::kInGrace;
  marker.live_key = key_n(2);
  w.fake->lookup_answer = marker;
  REQUIRE(w.run_until([&] { return w.store->pending() == 0; }));
  REQUIRE(w.fake->destroyed.size() >= 3);
  CHECK(w.fake->destroyed.back() == key_n(2));
  CHECK_FALSE(refused.contains(key_n(1)));
}

TEST_CASE("retries back off while the store keeps failing") {
  RefusedKeys refused(10);
  TestWorker w(&refused);
  CHECK(w.destroy(key_n(1)) == StoreStatus::kOk);
  REQUIRE(w.run_until([&] { return w.fake->destroys >= 5; }));
  // Lower bounds only: a loaded machine can only make the gaps longer.
  const auto& t = w.fake->destroy_times;
  uint64_t expected = PendingDestroyStore::kFirstRetryMs;
  for (size_t i = 1; i < 5; ++i) {
    CHECK(t[i] - t[i - 1] >= expected);
    expected = std::min(expected * 2, PendingDestroyStore::kMaxRetryMs);
  }
  CHECK(w.closes_cleanly());
}

TEST_CASE("a full refused set answers kUnavailable and counts the overflow") {
  RefusedKeys refused(1);
  TestWorker w(&refused);
  CHECK(w.destroy(key_n(1)) == StoreStatus::kOk);
  CHECK(w.destroy(key_n(2)) == StoreStatus::kUnavailable);
  CHECK(w.metrics.session_destroy_unconfirmed.get() == 2);
  CHECK(w.metrics.session_destroy_queue_full.get() == 1);
  CHECK_FALSE(refused.contains(key_n(2)));
  CHECK(w.store->pending() == 1);
  // The first one is confirmed: room again.
  w.fake->destroy_answer = StoreStatus::kOk;
  REQUIRE(w.run_until([&] { return w.store->pending() == 0; }));
  w.fake->destroy_answer = StoreStatus::kUnavailable;
  CHECK(w.destroy(key_n(2)) == StoreStatus::kOk);
}

TEST_CASE("max_pending_destroys = 0: every unconfirmed destroy is kUnavailable") {
  RefusedKeys refused(0);
  TestWorker w(&refused);
  CHECK(w.destroy(key_n(1)) == StoreStatus::kUnavailable);
  CHECK(w.metrics.session_destroy_queue_full.get() == 1);
  CHECK(w.store->pending() == 0);
  CHECK(w.closes_cleanly());
}

TEST_CASE("a lookup answered after its key was refused answers kNotFound") {
  RefusedKeys refused(10);
  TestWorker w(&refused);
  REQUIRE(refused.add(key_n(9)) == RefusedKeys::Added::kAdded);  // something is refused already
  w.fake->held_mode = true;
  std::optional<LookupResult> r;
  w.store->lookup(key_n(1), 0, [&](LookupResult x) { r = std::move(x); });
  REQUIRE(refused.add(key_n(1)) == RefusedKeys::Added::kAdded);  // another worker, meanwhile
  w.fake->release();
  REQUIRE(r);
  CHECK(r->status == StoreStatus::kNotFound);
  CHECK_FALSE(r->record);
  refused.remove(key_n(1));
}

TEST_CASE("a rotation marker does not lead to a refused session") {
  RefusedKeys refused(10);
  TestWorker w(&refused);
  REQUIRE(refused.add(key_n(2)) == RefusedKeys::Added::kAdded);  // logged out, unconfirmed
  LookupResult grace = FakeStore::found();
  grace.rotated = RotatedKey::kInGrace;
  grace.live_key = key_n(2);
  w.fake->lookup_answer = grace;
  auto r = w.lookup(key_n(1));  // the old key, inside its grace window
  REQUIRE(r);
  CHECK(r->status == StoreStatus::kNotFound);
  CHECK_FALSE(r->record);
  // A replay of an old key whose session was logged out here: no record to act on either.
  LookupResult replay;
  replay.status = StoreStatus::kNotFound;
  replay.rotated = RotatedKey::kReplay;
  replay.record = SessionRecord{};
  replay.live_key = key_n(2);
  w.fake->lookup_answer = replay;
  r = w.lookup(key_n(1));
  REQUIRE(r);
  CHECK_FALSE(r->record);
  refused.remove(key_n(2));
  w.fake->lookup_answer = grace;
  CHECK(w.lookup(key_n(1))->status == StoreStatus::kOk);
}

TEST_CASE("close tries once more and leaves no open handle (store still failing)") {
  RefusedKeys refused(10);
  TestWorker w(&refused);
  CHECK(w.destroy(key_n(1)) == StoreStatus::kOk);
  CHECK(w.destroy(key_n(2)) == StoreStatus::kOk);
  int before = w.fake->destroys;
  w.close_store();
  CHECK(w.fake->destroys == before + 2);  // the last attempt, at once
  CHECK(w.closes_cleanly());
  CHECK(w.inner_closed);
  CHECK_FALSE(w.closed_inside_callback);  // RedisStore::close may not run inside its callback
  CHECK(refused.contains(key_n(1)));      // still refused by the rest of the process
  CHECK(w.metrics.session_destroys_pending.load() == 0);
}

TEST_CASE("close confirms what it can, and waits for a round in flight") {
  RefusedKeys refused(10);
  TestWorker w(&refused);
  w.fake->held_mode = true;
  std::optional<StoreStatus> d;
  w.store->destroy(key_n(1), [&](StoreStatus s) { d = s; });
  w.fake->release();
  REQUIRE(d == StoreStatus::kOk);
  REQUIRE(w.run_until([&] { return !w.fake->held.empty(); }));  // a retry is in flight
  w.fake->destroy_answer = StoreStatus::kOk;                    // for destroys sent from now on
  w.close_store();
  CHECK_FALSE(w.inner_closed);  // waits for the answer of the retry in flight
  w.fake->release();            // that retry fails (its answer was fixed when it was sent) ...
  CHECK_FALSE(w.inner_closed);
  REQUIRE(w.fake->held.size() == 1);  // ... so the last attempt goes out
  w.fake->release();
  REQUIRE(w.run_until([&] { return w.inner_closed; }));
  CHECK_FALSE(w.closed_inside_callback);
  CHECK_FALSE(refused.contains(key_n(1)));  // confirmed by the last attempt
  CHECK(w.metrics.session_destroy_retried_ok.get() == 1);
  CHECK(w.closes_cleanly());
}

TEST_CASE("a destroy left unconfirmed while closing is not queued") {
  RefusedKeys refused(10);
  TestWorker w(&refused);
  w.close_store();
  CHECK(w.destroy(key_n(1)) == StoreStatus::kUnavailable);
  CHECK_FALSE(refused.contains(key_n(1)));
  CHECK(w.closes_cleanly());
}

TEST_CASE("RefusedKeys is bounded and safe to share between threads") {
  RefusedKeys refused(64);
  CHECK_FALSE(refused.contains(key_n(1)));
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (uint8_t t = 0; t < 4; ++t) {
    threads.emplace_back([&refused, &failures, t] {
      for (int round = 0; round < 200; ++round) {
        for (uint8_t i = 0; i < 16; ++i) {
          TokenHash k = key_n(static_cast<uint8_t>(t * 16 + i));
          if (refused.add(k) != RefusedKeys::Added::kAdded || !refused.contains(k))
            failures.fetch_add(1);
        }
        for (uint8_t i = 0; i < 16; ++i)
          refused.remove(key_n(static_cast<uint8_t>(t * 16 + i)));
      }
    });
  }
  for (auto& th : threads)
    th.join();
  CHECK(failures.load() == 0);
  CHECK(refused.size() == 0);
  for (uint8_t i = 0; i < 64; ++i)
    CHECK(refused.add(key_n(i)) == RefusedKeys::Added::kAdded);
  CHECK(refused.add(key_n(200)) == RefusedKeys::Added::kFull);
  CHECK(refused.add(key_n(3)) == RefusedKeys::Added::kAlready);  // no room needed
  CHECK(refused.size() == 64);
}

TEST_CASE("logs name a session key by a short digest prefix, never more") {
  CHECK(key_digest_prefix(key_n(0)).size() == 12);
  CHECK(key_digest_prefix(key_n(0)) == "000102030405");
}

}  // namespace sg
