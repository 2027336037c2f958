#include "proxy_core/redis_codec.h"

#include <doctest/doctest.h>

#include <string>

namespace sg {
namespace {

SessionRecord sample() {
  SessionRecord r;
  for (size_t i = 0; i < r.handle.size(); ++i)
    r.handle[i] = static_cast<uint8_t>(0xa0 + i);
  r.created_ms = 1'700'000'000'123;
  r.last_seen_ms = 1'700'000'050'456;
  r.attributes = {{"role", "admin"}, {"tenant-id", std::string(300, 'x')}, {"z", ""}};
  return r;
}

TEST_CASE("a session value round-trips with handle, times and attributes") {
  const SessionRecord in = sample();
  const std::string value = encode_session_value(in);
  CHECK(static_cast<uint8_t>(value[0]) == kValueVersion);
  SessionRecord out;
  REQUIRE(decode_session_value(value, out));
  CHECK(out.handle == in.handle);
  CHECK(out.created_ms == in.created_ms);
  CHECK(out.last_seen_ms == in.last_seen_ms);
  CHECK(out.attributes == in.attributes);
}

TEST_CASE("a session without attributes is 33 bytes") {
  SessionRecord r = sample();
  r.attributes.clear();
  const std::string value = encode_session_value(r);
  CHECK(value.size() == kValueFixedBytes + 8);
  SessionRecord out;
  out.attributes = {{"stale", "x"}};
  REQUIRE(decode_session_value(value, out));
  CHECK(out.attributes.empty());
}

TEST_CASE("every truncation and a wrong version are refused, never misread") {
  const std::string value = encode_session_value(sample());
  for (size_t n = 0; n < value.size(); ++n) {
    SessionRecord out;
    const bool ok = decode_session_value(std::string_view(value).substr(0, n), out);
    // Cutting exactly at an attribute boundary yields a shorter valid record, nothing else.
    if (ok) CHECK(out.attributes.size() < sample().attributes.size());
  }
  std::string wrong = value;
  wrong[0] = 2;
  SessionRecord out;
  CHECK_FALSE(decode_session_value(wrong, out));
  CHECK_FALSE(decode_session_value("", out));
  CHECK_FALSE(decode_session_value(value + "\xff\xff\xff\xff\xff\xff", out));
}

TEST_CASE("the key is the prefix and the lowercase hex of the token hash") {
  TokenHash h{};
  h[0] = 0xab;
  h[31] = 0x0f;
  const std::string key = redis_session_key("sg:", h);
  CHECK(key.size() == 3 + 64);
  CHECK(key.substr(0, 5) == "sg:ab");
  CHECK(key.substr(key.size() - 2) == "0f");
}

TEST_CASE("the TTL is the smaller remaining timeout and expiry names the timeout passed") {
  SessionRecord r;
  r.created_ms = 0;
  r.last_seen_ms = 9'000;
  // idle 5 s, absolute 10 s: at 9 s, 5 s idle remain but only 1 s absolute.
  CHECK(session_ttl_ms(r, 9'000, 5'000, 10'000) == 1'000);
  CHECK(session_ttl_ms(r, 9'000, 500, 10'000) == 500);
  CHECK(session_ttl_ms(r, 20'000, 500, 10'000) == 1);  // already expired: still a valid PX
  CHECK(session_expiry(r, 9'500, 5'000, 10'000) == ExpiryKind::kNone);
  CHECK(session_expiry(r, 10'001, 5'000, 10'000) == ExpiryKind::kAbsolute);
  CHECK(session_expiry(r, 9'501, 500, 10'000) == ExpiryKind::kIdle);
  CHECK(session_expiry(r, 9'500, 500, 10'000) == ExpiryKind::kNone);  // <= is still valid
}

}  // namespace
}  // namespace sg
