// RedisStore's session operations against a real redis-server (redis_test_support.h): the hash
// layout, per-field modify that never re-creates a session, rotation markers and their grace
// window, destroy that reports only confirmed deletes, records read back that fail the checks,
// and the NOSCRIPT fallback. The tests fail when redis-server is not installed.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <fstream>

#include "proxy_core/ops/log.h"
#include "proxy_core/store/redis_scripts.h"
#include "tests/unit/redis_test_support.h"

namespace sg {
namespace {

using namespace redis_test;

SessionChange set_attr(std::string name, std::string value) {
  SessionChange c;
  c.set = {{std::move(name), std::move(value)}};
  return c;
}

SessionChange remove_attr(std::string name) {
  SessionChange c;
  c.remove = {std::move(name)};
  return c;
}

TEST_CASE("redis session: a session is one hash, read back whole by one HGETALL") {
  Fixture f;
  Harness& h = *f.h;
  const SessionRecord rec = new_record(7, {{"role", "admin"}, {"user", "alice"}});
  CHECK(h.create(key("a"), rec) == StoreStatus::kOk);
  const uint64_t before = f.metrics.redis_commands.get();
  LookupResult r = h.lookup(key("a"));
  CHECK(f.metrics.redis_commands.get() - before == 1);  // one command per returning visit
  REQUIRE(r.status == StoreStatus::kOk);
  REQUIRE(r.record);
  CHECK(r.record->handle == rec.handle);
  CHECK(r.record->created_ms == rec.created_ms);
  CHECK(r.record->last_seen_ms == rec.last_seen_ms);
  CHECK(r.record->attributes == rec.attributes);
  CHECK(r.rotated == RotatedKey::kNo);

  const std::string k = Fixture::rkey("a");
  CHECK(f.cmd({"TYPE", k}) == "hash");
  CHECK(f.cmd({"HGET", k, "h"}) == "07070707070707070707070707070707");
  CHECK(f.cmd({"HGET", k, "c"}) == std::to_string(rec.created_ms));
  CHECK(f.cmd({"HGET", k, "s"}) == std::to_string(rec.last_seen_ms));
  CHECK(f.cmd({"HGET", k, "a:role"}) == "admin");
  CHECK(f.cmd({"HLEN", k}) == "5");
  // The idle timeout, and the grace in which the expiry sweep still sees the record.
  const long pttl = std::stol(f.cmd({"PTTL", k}));
  CHECK(pttl > kIdle.count() - 5000 + kRedisExpiryGraceMs);
  CHECK(pttl <= kIdle.count() + kRedisExpiryGraceMs);

  // A second create under the same key replaces nothing; unknown keys are not found.
  CHECK(h.create(key("a"), new_record(8)) == StoreStatus::kUnavailable);
  CHECK(h.lookup(key("a")).record->handle == rec.handle);
  CHECK(h.lookup(key("unknown")).status == StoreStatus::kNotFound);
  CHECK(f.metrics.store_records_rejected.get() == 0);
}

TEST_CASE("redis session: modify changes only its fields, and two modifies never undo each other") {
  Fixture f;
  Harness& h = *f.h;
  CHECK(h.create(key("m"), new_record(1, {{"role", "admin"}, {"user", "alice"}})) ==
        StoreStatus::kOk);
  // The lost-update race of issue 13: a slow request that read {role, user} sets cart while
  // another request revokes role. Both are in flight at once, on two connections (two gateway
  // instances); whatever the order, role stays gone and cart is there.
  RedisStore other(f.loop.get(), config_for(f.server.address()), kIdle, kAbsolute, nullptr, 0, 0);
  Harness h2{f.loop, other};
  other.start();
  REQUIRE(h2.connect());
  std::optional<StoreStatus> revoke, cart;
  other.modify(key("m"), remove_attr("role"), unix_now_ms(), [&](StoreStatus s) { revoke = s; });
  f.store->modify(key("m"), set_attr("cart", "3"), unix_now_ms(), [&](StoreStatus s) { cart = s; });
  REQUIRE(f.loop.run_until([&] { return revoke && cart; }, 5000));
  CHECK(*revoke == StoreStatus::kOk);
  CHECK(*cart == StoreStatus::kOk);
  LookupResult r = h.lookup(key("m"));
  REQUIRE(r.record);
  CHECK(r.record->attributes == SessionAttributes{{"cart", "3"}, {"user", "alice"}});
  other.close();

  // Removing an absent attribute is fine; set replaces a value.
  CHECK(h.modify(key("m"), remove_attr("nothing")) == StoreStatus::kOk);
  CHECK(h.modify(key("m"), set_attr("cart", "4")) == StoreStatus::kOk);
  CHECK(f.cmd({"HGET", Fixture::rkey("m"), "a:cart"}) == "4");
}

TEST_CASE("redis session: last seen only moves forward, and the TTL follows it") {
  Fixture f(Millis{10'000});
  Harness& h = *f.h;
  SessionRecord rec = new_record(1);
  rec.created_ms = rec.last_seen_ms -= 5'000;  // half the idle time used: TTL about 5 s
  CHECK(h.create(key("u"), rec) == StoreStatus::kOk);
  const std::string k = Fixture::rkey("u");
  CHECK(std::stol(f.cmd({"PTTL", k})) <= 5'000 + kRedisExpiryGraceMs);

  SessionChange refresh;
  refresh.last_seen_ms = unix_now_ms();
  CHECK(h.modify(key("u"), refresh) == StoreStatus::kOk);
  CHECK(f.cmd({"HGET", k, "s"}) == std::to_string(refresh.last_seen_ms));
  CHECK(std::stol(f.cmd({"PTTL", k})) > 9'000 + kRedisExpiryGraceMs);

  SessionChange stale;  // a slow request's older refresh
  stale.last_seen_ms = refresh.last_seen_ms - 3'000;
  CHECK(h.modify(key("u"), stale) == StoreStatus::kOk);
  CHECK(f.cmd({"HGET", k, "s"}) == std::to_string(refresh.last_seen_ms));
}

TEST_CASE("redis session: modify never re-creates a destroyed, expired or unknown session") {
  Fixture f(Millis{10'000});
  Harness& h = *f.h;
  SessionChange c = set_attr("role", "admin");
  c.last_seen_ms = unix_now_ms();
  CHECK(h.create(key("d"), new_record(1)) == StoreStatus::kOk);
  CHECK(h.destroy(key("d")) == StoreStatus::kOk);
  CHECK(h.modify(key("d"), c) == StoreStatus::kNotFound);
  CHECK(f.cmd({"EXISTS", Fixture::rkey("d")}) == "0");
  CHECK(h.modify(key("never"), c) == StoreStatus::kNotFound);
  CHECK(f.cmd({"EXISTS", Fixture::rkey("never")}) == "0");

  // Expired by the caller's clock although Redis still holds it: not extended.
  SessionRecord rec = new_record(2);
  CHECK(h.create(key("old"), rec) == StoreStatus::kOk);
  c.last_seen_ms = rec.last_seen_ms + 10'001;
  CHECK(h.modify(key("old"), c, rec.last_seen_ms + 10'001) == StoreStatus::kNotFound);
  CHECK(f.cmd({"HGET", Fixture::rkey("old"), "a:role"}) == "(nil)");
}

TEST_CASE("redis session: modify refuses a result over the bounds and writes nothing") {
  Fixture f;
  Harness& h = *f.h;
  CHECK(h.create(key("b"), new_record(1, {{"a", "1"}, {"b", "2"}})) == StoreStatus::kOk);
  SessionChange c = set_attr("c", "3");
  c.last_seen_ms = unix_now_ms() + 1;
  c.max_attributes = 2;
  CHECK(h.modify(key("b"), c) == StoreStatus::kRejected);
  CHECK(f.cmd({"HLEN", Fixture::rkey("b")}) == "5");
  CHECK(f.cmd({"HGET", Fixture::rkey("b"), "s"}) != std::to_string(c.last_seen_ms));
  c.max_attributes = 0;
  c.max_attribute_bytes = 5;  // "a1" "b2" "c3": 6 bytes
  CHECK(h.modify(key("b"), c) == StoreStatus::kRejected);
  // Replacing a value within the bounds is fine: the bound is on the result.
  SessionChange swap = set_attr("b", "9");
  swap.max_attributes = 2;
  swap.max_attribute_bytes = 4;
  CHECK(h.modify(key("b"), swap) == StoreStatus::kOk);
  CHECK(f.cmd({"HGET", Fixture::rkey("b"), "a:b"}) == "9");
}

TEST_CASE("redis session: rotate leaves a marker that serves the session in its grace window") {
  Fixture f;
  Harness& h = *f.h;
  const SessionRecord rec = new_record(3, {{"role", "member"}});
  CHECK(h.create(key("old"), rec) == StoreStatus::kOk);
  const int64_t now = unix_now_ms();
  SessionChange login = set_attr("user", "bob");
  login.last_seen_ms = now;
  CHECK(h.rotate(key("old"), key("new"), login, 10'000, now) == StoreStatus::kOk);

  LookupResult r = h.lookup(key("new"));
  REQUIRE(r.status == StoreStatus::kOk);
  CHECK(r.rotated == RotatedKey::kNo);
  CHECK(r.record->handle == rec.handle);
  CHECK(r.record->created_ms == rec.created_ms);
  CHECK(r.record->attributes == SessionAttributes{{"role", "member"}, {"user", "bob"}});

  // The old key is a marker {r, g} that expires by itself after the idle timeout.
  const std::string old_k = Fixture::rkey("old");
  CHECK(f.cmd({"HGET", old_k, "r"}) == digest_hex(key("new")));
  CHECK(f.cmd({"HGET", old_k, "g"}) == std::to_string(now + 10'000));
  CHECK(f.cmd({"HLEN", old_k}) == "2");
  const long pttl = std::stol(f.cmd({"PTTL", old_k}));
  CHECK(pttl > 0);
  CHECK(pttl <= kIdle.count());

  // In grace: the same session, reported as such, with the live key for writes.
  r = h.lookup(key("old"), now + 9'999);
  CHECK(r.status == StoreStatus::kOk);
  CHECK(r.rotated == RotatedKey::kInGrace);
  CHECK(r.live_key == key("new"));
  REQUIRE(r.record);
  CHECK(r.record->handle == rec.handle);
  CHECK(r.record->attributes == SessionAttributes{{"role", "member"}, {"user", "bob"}});

  // After grace: a replay, still saying whose session it was.
  r = h.lookup(key("old"), now + 10'000);
  CHECK(r.status == StoreStatus::kNotFound);
  CHECK(r.rotated == RotatedKey::kReplay);
  CHECK(r.live_key == key("new"));
  REQUIRE(r.record);
  CHECK(r.record->handle == rec.handle);

  // Writes through the old key find nothing and leave the marker alone.
  CHECK(h.modify(key("old"), set_attr("role", "admin")) == StoreStatus::kNotFound);
  CHECK(h.destroy(key("old")) == StoreStatus::kNotFound);
  CHECK(h.rotate(key("old"), key("newer"), SessionChange{}, 10'000) == StoreStatus::kNotFound);
  CHECK(f.cmd({"HLEN", old_k}) == "2");
  CHECK(f.cmd({"EXISTS", Fixture::rkey("newer")}) == "0");
  CHECK(f.cmd({"HGET", Fixture::rkey("new"), "a:role"}) == "member");
}

TEST_CASE("redis session: rotate changes nothing when the new key is taken or bounds break") {
  Fixture f;
  Harness& h = *f.h;
  CHECK(h.create(key("s"), new_record(1, {{"a", "1"}})) == StoreStatus::kOk);
  CHECK(h.create(key("taken"), new_record(4)) == StoreStatus::kOk);
  CHECK(h.rotate(key("s"), key("taken"), set_attr("b", "2"), 0) == StoreStatus::kUnavailable);
  CHECK(h.lookup(key("taken")).record->handle == new_record(4).handle);
  SessionChange big = set_attr("b", "2");
  big.max_attributes = 1;
  CHECK(h.rotate(key("s"), key("t2"), big, 0) == StoreStatus::kRejected);
  CHECK(f.cmd({"EXISTS", Fixture::rkey("t2")}) == "0");
  LookupResult r = h.lookup(key("s"));
  CHECK(r.status == StoreStatus::kOk);
  CHECK(r.record->attributes == SessionAttributes{{"a", "1"}});
  // Grace 0: a replay marker at once.
  CHECK(h.rotate(key("s"), key("t3"), SessionChange{}, 0) == StoreStatus::kOk);
  r = h.lookup(key("s"));
  CHECK(r.status == StoreStatus::kNotFound);
  CHECK(r.rotated == RotatedKey::kReplay);
}

TEST_CASE("redis session: a marker outlives a grace window longer than the idle timeout") {
  Fixture f(Millis{2'000});
  Harness& h = *f.h;
  CHECK(h.create(key("g"), new_record(1)) == StoreStatus::kOk);
  CHECK(h.rotate(key("g"), key("g2"), SessionChange{}, 30'000) == StoreStatus::kOk);
  const long pttl = std::stol(f.cmd({"PTTL", Fixture::rkey("g")}));
  CHECK(pttl > 2'000);
  CHECK(pttl <= 30'000);
}

TEST_CASE("redis session: markers chain to the live session, never to a destroyed one") {
  Fixture f;
  Harness& h = *f.h;
  const SessionRecord rec = new_record(5);
  CHECK(h.create(key("k0"), rec) == StoreStatus::kOk);
  for (int i = 0; i < 2; ++i) {
    CHECK(h.rotate(key("k" + std::to_string(i)), key("k" + std::to_string(i + 1)), SessionChange{},
                   10'000) == StoreStatus::kOk);
  }
  LookupResult r = h.lookup(key("k0"));
  CHECK(r.status == StoreStatus::kOk);
  CHECK(r.rotated == RotatedKey::kInGrace);
  CHECK(r.live_key == key("k2"));

  CHECK(h.destroy(key("k2")) == StoreStatus::kOk);
  for (const char* k : {"k0", "k1", "k2"}) {
    r = h.lookup(key(k));
    CHECK(r.status == StoreStatus::kNotFound);
    CHECK_FALSE(r.record);
  }
  r = h.lookup(key("k0"), unix_now_ms() + 20'000);  // after grace: a replay of a dead session
  CHECK(r.status == StoreStatus::kNotFound);
  CHECK(r.rotated == RotatedKey::kReplay);
  CHECK_FALSE(r.record);

  // A chain longer than kMaxMarkerHops is not followed to its end.
  CHECK(h.create(key("c0"), new_record(6)) == StoreStatus::kOk);
  const int n = RedisStore::kMaxMarkerHops + 1;
  for (int i = 0; i < n; ++i) {
    CHECK(h.rotate(key("c" + std::to_string(i)), key("c" + std::to_string(i + 1)), SessionChange{},
                   10'000) == StoreStatus::kOk);
  }
  CHECK(h.lookup(key("c1")).status == StoreStatus::kOk);  // kMaxMarkerHops hops: followed
  CHECK(h.lookup(key("c0")).status == StoreStatus::kNotFound);
}

TEST_CASE("redis session: destroy is kOk only when Redis confirmed the key is gone") {
  Fixture f;
  Harness& h = *f.h;
  CHECK(h.create(key("d"), new_record(5)) == StoreStatus::kOk);
  CHECK(h.destroy(key("d")) == StoreStatus::kOk);
  CHECK(h.lookup(key("d")).status == StoreStatus::kNotFound);
  CHECK(h.destroy(key("d")) == StoreStatus::kOk);  // already gone: confirmed as well
  CHECK(f.cmd({"DBSIZE"}) == "0");

  // A read-only replica (after a failover) answers READONLY: not confirmed.
  RedisServer replica({"--replicaof", "127.0.0.1", std::to_string(free_port())});
  REQUIRE(replica.start());
  {
    RedisStore ro(f.loop.get(), config_for(replica.address()), kIdle, kAbsolute, nullptr, 0, 0);
    Harness hr{f.loop, ro};
    ro.start();
    REQUIRE(hr.connect());
    CHECK(hr.destroy(key("d")) == StoreStatus::kUnavailable);
    ro.close();
  }

  // No reply within the timeout: not confirmed.
  CHECK(h.create(key("t"), new_record(6)) == StoreStatus::kOk);
  f.server.signal(SIGSTOP);
  CHECK(h.destroy(key("t")) == StoreStatus::kUnavailable);
  f.server.signal(SIGCONT);
  REQUIRE(h.connect(10'000));
}

TEST_CASE("redis session: after SCRIPT FLUSH the scripts are sent again (NOSCRIPT fallback)") {
  Fixture f;
  Harness& h = *f.h;
  CHECK(h.create(key("n"), new_record(1)) == StoreStatus::kOk);
  CHECK(f.cmd({"SCRIPT", "FLUSH"}) == "OK");
  CHECK(h.modify(key("n"), set_attr("role", "x")) == StoreStatus::kOk);
  CHECK(f.cmd({"HGET", Fixture::rkey("n"), "a:role"}) == "x");
  CHECK(h.destroy(key("n")) == StoreStatus::kOk);
  CHECK(f.cmd({"EXISTS", Fixture::rkey("n")}) == "0");
  CHECK(f.metrics.redis_errors.get() == 0);
}

// Issue 13 item 6: whatever is written under a session key by someone else is never returned.
TEST_CASE("redis session: crafted records read back are not found, counted, never returned") {
  Fixture f(kIdle, kAbsolute, 2, 64);
  Harness& h = *f.h;
  const std::string now = std::to_string(unix_now_ms());
  const std::string handle(32, 'a');
  const std::string future = std::to_string(unix_now_ms() + 86'400'000);
  struct Crafted {
    const char* name;
    std::vector<std::string> hset;  // field, value, ...; empty: SET a string instead
    bool never_written;             // bad times or type: modify refuses it as well
  };
  const std::vector<Crafted> crafted = {
      {"header injection",
       {"h", handle, "c", now, "s", now, "a:role", "x\r\nX-Injected: 1"},
       false},
      {"created in the future", {"h", handle, "c", future, "s", future}, true},
      {"INT64_MIN", {"h", handle, "c", std::to_string(INT64_MIN), "s", now}, true},
      {"wrong type", {}, true},
      {"missing handle", {"c", now, "s", now}, false},
      {"bad integer", {"h", handle, "c", now + "x", "s", now}, true},
      {"name not folded", {"h", handle, "c", now, "s", now, "a:Role", "admin"}, false},
      {"reserved name", {"h", handle, "c", now, "s", now, "a:id", "1"}, false},
      {"too many", {"h", handle, "c", now, "s", now, "a:a", "1", "a:b", "2", "a:c", "3"}, false},
      {"too large", {"h", handle, "c", now, "s", now, "a:a", std::string(100, 'v')}, false},
      {"marker and session",
       {"h", handle, "c", now, "s", now, "r", std::string(64, '0'), "g", now},
       true},
  };
  uint64_t expected = 0;
  for (const Crafted& c : crafted) {
    CAPTURE(c.name);
    const std::string k = Fixture::rkey(c.name);
    if (c.hset.empty()) {
      CHECK(f.cmd({"SET", k, "a string"}) == "OK");
    } else {
      std::vector<std::string> args = {"HSET", k};
      args.insert(args.end(), c.hset.begin(), c.hset.end());
      CHECK(f.cmd(args) == std::to_string(c.hset.size() / 2));
    }
    LookupResult r = h.lookup(key(c.name));
    CHECK(r.status == StoreStatus::kNotFound);
    CHECK_FALSE(r.record);
    CHECK(f.metrics.store_records_rejected.get() == ++expected);
    // A write does not extend one with bad times or type (the script checks those); the others
    // may be written to, but lookup still never returns them.
    if (c.never_written) {
      CHECK(h.modify(key(c.name), set_attr("role", "admin")) == StoreStatus::kNotFound);
    }
  }
  // A marker pointing at a crafted record: not followed into it.
  CHECK(f.cmd({"HSET", Fixture::rkey("m"), "r", digest_hex(key("header injection")), "g",
               std::to_string(unix_now_ms() + 10'000)}) == "2");
  LookupResult r = h.lookup(key("m"));
  CHECK(r.status == StoreStatus::kNotFound);
  CHECK_FALSE(r.record);
  CHECK(f.metrics.store_records_rejected.get() == expected + 1);
}

TEST_CASE("redis session: the scripts refuse numbers the decoder refuses (1e12, 0x.., 1.5, ' 7')") {
  // Lua's tonumber reads all of these; lookup refuses them (redis_codec.cc). A script that took
  // them would extend or rotate a record that no lookup ever returns. The absolute timeout is a
  // century so that c = 1e12 (in 2001) is within it and only the number's form refuses it.
  Fixture f(kIdle, Millis{3'153'600'000'000});
  Harness& h = *f.h;
  const int64_t now_ms = unix_now_ms();
  const std::string now = std::to_string(now_ms);
  char hex[32];
  std::snprintf(hex, sizeof hex, "0x%llx", static_cast<unsigned long long>(now_ms));
  const std::string handle(32, 'a');
  const std::vector<std::pair<std::string, std::string>> crafted = {
      {"1e12", now},    {now + "e0", now}, {hex, now},       {" " + now, now},
      {"+" + now, now}, {now, now + ".0"}, {now, now + " "}, {now, "1.5e12"},
  };
  uint64_t rejected = 0;
  for (const auto& field : crafted) {
    // Plain references: clang 14 (the sanitizer build) cannot capture structured bindings in
    // CAPTURE's lambda.
    const std::string& c = field.first;
    const std::string& s = field.second;
    CAPTURE(c);
    CAPTURE(s);
    const std::string name = "num" + c + "/" + s;
    const std::string k = Fixture::rkey(name);
    CHECK(f.cmd({"HSET", k, "h", handle, "c", c, "s", s, "a:role", "user"}) == "4");
    CHECK(h.lookup(key(name)).status == StoreStatus::kNotFound);
    CHECK(f.metrics.store_records_rejected.get() == ++rejected);
    SessionChange change = set_attr("role", "admin");
    change.last_seen_ms = now_ms + 1;
    CHECK(h.modify(key(name), change) == StoreStatus::kNotFound);
    CHECK(h.rotate(key(name), key(name + "-next"), change, 10'000) == StoreStatus::kNotFound);
    CHECK(f.cmd({"HGET", k, "a:role"}) == "user");
    CHECK(f.cmd({"HGET", k, "s"}) == s);
    CHECK(f.cmd({"HLEN", k}) == "4");
    CHECK(f.cmd({"PTTL", k}) == "-1");  // never given a TTL: not extended
    CHECK(f.cmd({"EXISTS", Fixture::rkey(name + "-next")}) == "0");
  }
}

TEST_CASE("redis session: an empty value in set removes the attribute, never stores ''") {
  Fixture f;
  Harness& h = *f.h;
  CHECK(h.create(key("e"), new_record(1, {{"role", "admin"}, {"user", "alice"}})) ==
        StoreStatus::kOk);
  CHECK(h.modify(key("e"), set_attr("role", "")) == StoreStatus::kOk);
  CHECK(f.cmd({"HEXISTS", Fixture::rkey("e"), "a:role"}) == "0");
  LookupResult r = h.lookup(key("e"));
  REQUIRE(r.record);
  CHECK(r.record->attributes == SessionAttributes{{"user", "alice"}});
  // In a rotation too, and an empty value for an absent attribute stores nothing.
  SessionChange change = set_attr("user", "");
  change.set.emplace_back("absent", "");
  CHECK(h.rotate(key("e"), key("e2"), change, 0) == StoreStatus::kOk);
  CHECK(f.cmd({"HLEN", Fixture::rkey("e2")}) == "3");  // h, c, s
  r = h.lookup(key("e2"));
  REQUIRE(r.record);
  CHECK(r.record->attributes.empty());
  CHECK(f.metrics.store_records_rejected.get() == 0);
}

// Redirects stderr (the error log) into a file while it lives; lines() reads what was written.
class StderrCapture {
 public:
  StderrCapture() : path_(temp_dir() / "stderr.log") {
    saved_ = dup(STDERR_FILENO);
    const int fd = open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    REQUIRE(fd >= 0);
    dup2(fd, STDERR_FILENO);
    close(fd);
  }
  ~StderrCapture() {
    restore();
    std::error_code ignored;
    fs::remove_all(path_.parent_path(), ignored);
  }
  void restore() {
    if (saved_ < 0) return;
    dup2(saved_, STDERR_FILENO);
    close(saved_);
    saved_ = -1;
  }
  // Lines that contain `needle`.
  std::vector<std::string> lines(const std::string& needle) const {
    std::ifstream in(path_);
    std::vector<std::string> out;
    for (std::string line; std::getline(in, line);)
      if (line.find(needle) != std::string::npos) out.push_back(line);
    return out;
  }

 private:
  fs::path path_;
  int saved_ = -1;
};

TEST_CASE("redis session: a crafted record read back again and again logs one line a second") {
  // Whoever can write keys could otherwise flood the log through any lookup of them.
  Fixture f;
  Harness& h = *f.h;
  CHECK(f.cmd({"SET", Fixture::rkey("flood"), "a string"}) == "OK");
  constexpr int kLookups = 40;
  const LogLevel saved_level = log_level();
  set_log_level(LogLevel::kWarn);
  StderrCapture capture;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kLookups; ++i)
    CHECK(h.lookup(key("flood")).status == StoreStatus::kNotFound);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  capture.restore();
  set_log_level(saved_level);
  CHECK(f.metrics.store_records_rejected.get() == kLookups);  // every one counted
  const std::vector<std::string> lines = capture.lines("refused: not a session hash");
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(elapsed).count();
  CHECK(lines.size() >= 1);
  CHECK(lines.size() <= static_cast<size_t>(seconds) + 2);
  // A line after held-back ones says how many (only when the loop crossed a second).
  if (lines.size() > 1) CHECK(lines[1].find("more since the last such line") != std::string::npos);
}

TEST_CASE(
    "redis session: a lookup whose connection dropped is sent once more, and a write is not") {
  Fixture f;
  // Its own store with a generous timeout: the retry waits for the reconnect (backoff, connect,
  // handshake) within the lookup's deadline, and timing is not the subject here.
  WorkerMetrics metrics;
  RedisStore store(f.loop.get(), config_for(f.server.address(), Millis{10'000}), kIdle, kAbsolute,
                   &metrics, 0, 0);
  Harness h{f.loop, store};
  store.start();
  REQUIRE(h.connect());
  CHECK(h.create(key("k"), new_record(3)) == StoreStatus::kOk);
  CHECK(h.lookup(key("k")).status == StoreStatus::kOk);
  // The server closes every connection but the killer's (ours, which is connected: the lookup
  // above), and the store learns it only when it reads.
  CHECK(std::stoi(f.cmd({"CLIENT", "KILL", "TYPE", "normal"})) >= 1);  // ours among them
  LookupResult r = h.lookup(key("k"));
  CHECK(r.status == StoreStatus::kOk);
  REQUIRE(r.record);
  CHECK(r.record->handle == new_record(3).handle);
  CHECK(metrics.redis_reconnects.get() == 1);

  // A write script may have run before the connection dropped: it completes kUnavailable.
  CHECK(std::stoi(f.cmd({"CLIENT", "KILL", "TYPE", "normal"})) >= 1);  // ours among them
  CHECK(h.modify(key("k"), set_attr("role", "x")) == StoreStatus::kUnavailable);
  REQUIRE(h.connect());
  CHECK(h.lookup(key("k")).status == StoreStatus::kOk);
  store.close();
}

TEST_CASE("redis session: idle and absolute expiry, by the client clock and by the sweep") {
  const Millis idle{1000}, absolute{2000};
  Fixture f(idle, absolute);
  Harness& h = *f.h;
  const SessionRecord rec = new_record(6);
  CHECK(h.create(key("e"), rec) == StoreStatus::kOk);

  // The caller's clock decides, whatever Redis still holds.
  CHECK(h.lookup(key("e"), rec.last_seen_ms + 1000).status == StoreStatus::kOk);
  LookupResult r = h.lookup(key("e"), rec.last_seen_ms + 1001);
  CHECK(r.status == StoreStatus::kNotFound);
  CHECK(r.expired == ExpiryKind::kIdle);
  CHECK_FALSE(r.record);
  r = h.lookup(key("e"), rec.created_ms + 2001);
  CHECK(r.status == StoreStatus::kNotFound);
  CHECK(r.expired == ExpiryKind::kAbsolute);

  // Absolute: created 1.7 s ago and just seen, so at most 300 ms remain: the TTL says so.
  SessionRecord old = new_record(9);
  old.created_ms -= 1700;
  CHECK(h.create(key("abs"), old) == StoreStatus::kOk);
  CHECK(std::stol(f.cmd({"PTTL", Fixture::rkey("abs")})) <= 300 + kRedisExpiryGraceMs);

  // The expiry sweep removes both (Redis would drop them a grace later), each by its reason.
  std::optional<std::vector<RedisStore::SweptEnd>> ends;
  f.store->sweep_expiries(rec.created_ms + 2001, kRedisSweepBatch,
                          [&](bool ok, size_t, std::vector<RedisStore::SweptEnd> e) {
                            CHECK(ok);
                            ends = std::move(e);
                          });
  REQUIRE(f.loop.run_until([&] { return ends.has_value(); }, 3000));
  REQUIRE(ends->size() == 2);
  std::vector<std::string> reasons = {(*ends)[0].reason, (*ends)[1].reason};
  std::sort(reasons.begin(), reasons.end());
  CHECK(reasons == std::vector<std::string>{"absolute", "idle"});
  CHECK(f.cmd({"EXISTS", Fixture::rkey("e")}) == "0");
  CHECK(f.cmd({"EXISTS", Fixture::rkey("abs")}) == "0");
  CHECK(h.lookup(key("e")).status == StoreStatus::kNotFound);
}

}  // namespace
}  // namespace sg
