#include "proxy_core/store/redis_codec.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <climits>
#include <string>
#include <vector>

namespace sg {
namespace {

constexpr int64_t kNow = 1'700'000'100'000;

SessionRecord sample() {
  SessionRecord r;
  for (size_t i = 0; i < r.handle.size(); ++i)
    r.handle[i] = static_cast<uint8_t>(0xa0 + i);
  r.created_ms = 1'700'000'000'123;
  r.last_seen_ms = 1'700'000'050'456;
  r.attributes = {{"role", "admin"}, {"tenant-id", std::string(300, 'x')}, {"z", "1"}};
  return r;
}

// Field/value views over strings kept alive by the caller.
HashFields view(const std::vector<std::string>& flat) {
  HashFields out;
  for (size_t i = 0; i + 1 < flat.size(); i += 2)
    out.emplace_back(flat[i], flat[i + 1]);
  return out;
}

StoredEntry read(const std::vector<std::string>& flat, uint32_t max_attributes = 0,
                 uint32_t max_attribute_bytes = 0) {
  return read_session_hash(view(flat), kNow, max_attributes, max_attribute_bytes);
}

TEST_CASE("a session's hash fields read back as the same record, in any field order") {
  const SessionRecord in = sample();
  std::vector<std::string> flat = session_hash_fields(in);
  REQUIRE(flat.size() == 12);
  CHECK(flat[0] == "h");
  CHECK(flat[1] == "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf");
  CHECK(flat[2] == "c");
  CHECK(flat[3] == "1700000000123");
  CHECK(flat[4] == "s");
  CHECK(flat[6] == "a:role");
  // HGETALL has no order: reverse the pairs.
  std::vector<std::string> reversed;
  for (size_t i = flat.size(); i >= 2; i -= 2) {
    reversed.push_back(flat[i - 2]);
    reversed.push_back(flat[i - 1]);
  }
  const StoredEntry e = read(reversed);
  REQUIRE(e.kind == StoredKind::kSession);
  CHECK(e.record.handle == in.handle);
  CHECK(e.record.created_ms == in.created_ms);
  CHECK(e.record.last_seen_ms == in.last_seen_ms);
  CHECK(e.record.attributes == in.attributes);
  CHECK(read({}).kind == StoredKind::kAbsent);
}

TEST_CASE("a rotation marker is exactly r and g") {
  TokenHash next{};
  next[0] = 0xab;
  next[31] = 0x01;
  const StoredEntry e = read({"g", "1700000000000", "r", digest_hex(next)});
  REQUIRE(e.kind == StoredKind::kMarker);
  CHECK(e.marker.next == next);
  CHECK(e.marker.grace_until_ms == 1'700'000'000'000);
  CHECK(read({"r", digest_hex(next)}).kind == StoredKind::kMalformed);
  CHECK(read({"r", digest_hex(next), "g", "-1"}).kind == StoredKind::kMalformed);
  CHECK(read({"r", digest_hex(next).substr(1), "g", "1"}).kind == StoredKind::kMalformed);
  CHECK(read({"r", digest_hex(next), "g", "1", "a:x", "1"}).kind == StoredKind::kMalformed);
}

TEST_CASE("hashes that are not ours are malformed, never misread") {
  const std::string h(32, 'a');
  const std::string c = "1700000000000";
  const std::vector<std::vector<std::string>> bad = {
      {"c", c, "s", c},                                             // no handle
      {"h", h, "s", c},                                             // no created
      {"h", h, "c", c},                                             // no last seen
      {"h", h.substr(1), "c", c, "s", c},                           // short handle
      {"h", std::string(32, 'A'), "c", c, "s", c},                  // uppercase hex
      {"h", std::string(32, 'g'), "c", c, "s", c},                  // not hex
      {"h", h, "c", c + "x", "s", c},                               // trailing garbage
      {"h", h, "c", "+" + c, "s", c},                               // a sign we never write
      {"h", h, "c", " " + c, "s", c},                               // space
      {"h", h, "c", "", "s", c},                                    // empty
      {"h", h, "c", "99999999999999999999", "s", c},                // beyond int64
      {"h", h, "c", c, "s", c, "c", c},                             // duplicated field
      {"h", h, "c", c, "s", c, "x", "1"},                           // unknown field
      {"h", h, "c", c, "s", c, "a:", "1"},                          // attribute without a name
      {"h", h, "c", c, "s", c, "r", std::string(64, '0'), "g", c},  // session and marker
  };
  for (const auto& flat : bad) {
    CAPTURE(flat.size());
    CAPTURE(flat[1]);
    CAPTURE(flat[3]);
    CHECK(read(flat).kind == StoredKind::kMalformed);
  }
}

TEST_CASE("decoded records that break the directive rules are refused with the reason") {
  const std::string h(32, 'a');
  const std::string c = "1700000000000";
  struct Case {
    std::vector<std::string> flat;
    RecordError error;
  };
  const std::vector<Case> cases = {
      {{"h", h, "c", c, "s", c, "a:role", "x\r\nX-Injected: 1"}, RecordError::kBadValue},
      {{"h", h, "c", c, "s", c, "a:role", ""}, RecordError::kBadValue},
      {{"h", h, "c", c, "s", c, "a:Role", "admin"}, RecordError::kBadName},
      {{"h", h, "c", c, "s", c, "a:x y", "1"}, RecordError::kBadName},
      {{"h", h, "c", c, "s", c, "a:id", "1"}, RecordError::kBadName},
      {{"h", h, "c", std::to_string(kNow + 86'400'000), "s", std::to_string(kNow + 86'400'000)},
       RecordError::kBadTimes},
      {{"h", h, "c", std::to_string(INT64_MIN), "s", c}, RecordError::kBadTimes},
      {{"h", h, "c", c, "s", std::to_string(INT64_MAX)}, RecordError::kBadTimes},
      {{"h", h, "c", c, "s", "1"}, RecordError::kBadTimes},  // seen before created
      {{"h", h, "c", c, "s", c, "a:a", "1", "a:b", "2", "a:c", "3"}, RecordError::kTooMany},
      {{"h", h, "c", c, "s", c, "a:a", std::string(64, 'v')}, RecordError::kTooManyBytes},
  };
  for (const Case& k : cases) {
    CAPTURE(k.flat.back());
    const StoredEntry e = read(k.flat, 2, 64);
    CHECK(e.kind == StoredKind::kInvalid);
    CHECK(e.error == k.error);
  }
}

TEST_CASE("the key is the prefix and the lowercase hex of the token hash") {
  TokenHash h{};
  h[0] = 0xab;
  h[31] = 0x0f;
  const std::string key = redis_session_key("sg:", h);
  CHECK(key.size() == 3 + 64);
  CHECK(key.substr(0, 5) == "sg:ab");
  CHECK(key.substr(key.size() - 2) == "0f");
  CHECK(key.substr(3) == digest_hex(h));
  TokenHash back{};
  REQUIRE(parse_digest_hex(digest_hex(h), back));
  CHECK(back == h);
  CHECK_FALSE(parse_digest_hex(key, back));
}

TEST_CASE("the TTL is the smaller remaining timeout and expiry names the timeout passed") {
  SessionRecord r;
  r.created_ms = 0;
  r.last_seen_ms = 9'000;
  // idle 5 s, absolute 10 s: at 9 s, 5 s idle remain but only 1 s absolute.
  CHECK(session_ttl_ms(r, 9'000, 5'000, 10'000) == 1'000);
  CHECK(session_ttl_ms(r, 9'000, 500, 10'000) == 500);
  CHECK(session_ttl_ms(r, 20'000, 500, 10'000) == 1);  // already expired: still a valid PEXPIRE
  CHECK(session_expiry(r, 9'500, 5'000, 10'000) == ExpiryKind::kNone);
  CHECK(session_expiry(r, 10'001, 5'000, 10'000) == ExpiryKind::kAbsolute);
  CHECK(session_expiry(r, 9'501, 500, 10'000) == ExpiryKind::kIdle);
  CHECK(session_expiry(r, 9'500, 500, 10'000) == ExpiryKind::kNone);  // <= is still valid
}

TEST_CASE("the origin and the user index id read back, and a malformed one is no session") {
  SessionRecord in = sample();
  in.client_address = "2001:db8::1";
  in.user_agent = "Mozilla/5.0 (X11)";
  std::vector<std::string> flat = session_hash_fields(in);
  const StoredEntry e = read(flat);
  REQUIRE(e.kind == StoredKind::kSession);
  CHECK(e.record.client_address == "2001:db8::1");
  CHECK(e.record.user_agent == "Mozilla/5.0 (X11)");
  const std::string id = redis_user_index_id("sg:", "alice");
  std::vector<std::string> indexed = flat;
  indexed.insert(indexed.end(), {"u", id});
  CHECK(read(indexed).kind == StoredKind::kSession);
  std::vector<std::string> bad = flat;
  bad.insert(bad.end(), {"u", "alice"});
  CHECK(read(bad).kind == StoredKind::kMalformed);
  std::vector<std::string> twice = flat;
  twice.insert(twice.end(), {"ip", "192.0.2.1"});
  CHECK(read(twice).kind == StoredKind::kMalformed);
  CHECK(read({"r", std::string(64, 'a'), "g", "1", "u", id}).kind == StoredKind::kMalformed);
  // An address that breaks the record check is refused like any crafted field.
  std::vector<std::string> control = session_hash_fields(sample());
  control.insert(control.end(), {"ua", "bad\x01" "agent"});
  CHECK(read(control).kind == StoredKind::kInvalid);
}

TEST_CASE("a user's index id hides the name, is salted by the prefix and names its keys") {
  const std::string id = redis_user_index_id("sg:", "alice");
  CHECK(id.size() == 32);
  CHECK(id.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(id == redis_user_index_id("sg:", "alice"));
  CHECK(id != redis_user_index_id("sg:", "alicf"));
  CHECK(id != redis_user_index_id("other:", "alice"));
  // The NUL between prefix and user: "sg:a" + "lice" is not "sg:" + "alice".
  CHECK(redis_user_index_id("sg:a", "lice") != id);
  CHECK(redis_user_index_key("sg:", id) == "sg:{u:" + id + "}");
  SessionHandle h{};
  h.fill(0xab);
  std::string hex;
  for (int i = 0; i < 16; ++i)
    hex += "ab";
  CHECK(redis_handle_key("sg:", h) == "sg:h:" + hex);
  SessionHandle back{};
  REQUIRE(parse_handle_hex(handle_hex(h), back));
  CHECK(back == h);
  CHECK_FALSE(parse_handle_hex("ab", back));
}

}  // namespace
}  // namespace sg
