// The pub/sub payloads of session ends (redis_codec.h): what a destroy publishes reads back as
// the same key or handle, and anything else is refused (a message is untrusted input: anyone who
// can PUBLISH on the Redis server can send one).
#include <doctest/doctest.h>

#include <string>

#include "proxy_core/session/token.h"
#include "proxy_core/store/redis_codec.h"

namespace sg {
namespace {

TEST_CASE("redis end events: a key and a handle round-trip, under the prefix's channel") {
  CHECK(redis_events_channel("sg:") == "sg:events");
  const TokenHash key = hash_token("some-token");
  SessionHandle handle{};
  for (size_t i = 0; i < handle.size(); ++i)
    handle[i] = static_cast<uint8_t>(i * 17);
  bool by_key = false;
  TokenHash k{};
  SessionHandle h{};
  const std::string by_key_payload = end_event_by_key(key);
  CHECK(by_key_payload == "k:" + std::string(by_key_payload.substr(2)));
  CHECK(by_key_payload.size() == 2 + 64);
  REQUIRE(parse_end_event(by_key_payload, by_key, k, h));
  CHECK(by_key);
  CHECK(k == key);
  REQUIRE(parse_end_event(end_event_by_handle(handle), by_key, k, h));
  CHECK_FALSE(by_key);
  CHECK(h == handle);
}

TEST_CASE("redis end events: malformed payloads are refused") {
  bool by_key = false;
  TokenHash k{};
  SessionHandle h{};
  const std::string handle_hex(32, 'a');
  CHECK(parse_end_event("h:" + handle_hex, by_key, k, h));
  CHECK_FALSE(parse_end_event("", by_key, k, h));
  CHECK_FALSE(parse_end_event("h", by_key, k, h));
  CHECK_FALSE(parse_end_event("x:" + handle_hex, by_key, k, h));
  CHECK_FALSE(parse_end_event("h:" + handle_hex.substr(1), by_key, k, h));  // short
  CHECK_FALSE(parse_end_event("h:" + handle_hex + "00", by_key, k, h));     // long
  CHECK_FALSE(parse_end_event("k:" + handle_hex, by_key, k, h));            // a handle's size
  CHECK_FALSE(parse_end_event("h:" + std::string(32, 'A'), by_key, k, h));  // uppercase
  CHECK_FALSE(parse_end_event("h;" + handle_hex, by_key, k, h));
}

}  // namespace
}  // namespace sg
