#include "proxy_core/http/websocket_close.h"

#include <doctest/doctest.h>

#include <string>

namespace sg {
namespace {

uint8_t byte_at(const std::string& s, size_t i) {
  return static_cast<uint8_t>(s[i]);
}

TEST_CASE("websocket close frame: 1008 with a reason, unmasked, FIN set") {
  std::string f = build_ws_close_frame(kWsClosePolicyViolation, "session ended");
  REQUIRE(f.size() == 2 + 2 + 13);
  CHECK(byte_at(f, 0) == 0x88);    // FIN + close opcode
  CHECK(byte_at(f, 1) == 2 + 13);  // mask bit clear, payload length
  CHECK(byte_at(f, 2) == 0x03);    // 1008 = 0x03F0, network order
  CHECK(byte_at(f, 3) == 0xF0);
  CHECK(f.substr(4) == "session ended");
}

TEST_CASE("websocket close frame: an empty reason carries only the status") {
  std::string f = build_ws_close_frame(1000, "");
  REQUIRE(f.size() == 4);
  CHECK(byte_at(f, 1) == 2);
  CHECK(byte_at(f, 2) == 0x03);
  CHECK(byte_at(f, 3) == 0xE8);
}

TEST_CASE("websocket close frame: a long reason is cut to the 125-byte control payload") {
  std::string f = build_ws_close_frame(kWsClosePolicyViolation, std::string(300, 'x'));
  REQUIRE(f.size() == 2 + 125);
  CHECK(byte_at(f, 1) == 125);  // still a 7-bit length: no extended length in a control frame
  CHECK(f.substr(4) == std::string(123, 'x'));
}

}  // namespace
}  // namespace sg
