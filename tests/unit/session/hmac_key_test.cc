#include "proxy_core/session/hmac_key.h"

#include <doctest/doctest.h>

#include <string>

namespace sg {
namespace {

std::string hex(const HmacSha256Key::Mac& mac) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (uint8_t b : mac)
    out += kHex[b >> 4], out += kHex[b & 0xf];
  return out;
}

TEST_CASE("HMAC-SHA256 with precomputed pads matches RFC 4231") {
  // Test case 2: a key shorter than the block.
  CHECK(hex(HmacSha256Key("Jefe").mac({"what do ya want ", "for nothing?"})) ==
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  // Test case 6: a key longer than the block is hashed first.
  const HmacSha256Key long_key(std::string(131, '\xaa'));
  CHECK(hex(long_key.mac({"Test Using Larger Than Block-Size Key - Hash Key First"})) ==
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  // The states are reused, not consumed: the same MAC twice, and from a copy.
  const HmacSha256Key copy = long_key;
  CHECK(copy.mac({"Test Using Larger Than Block-Size Key - Hash Key First"}) ==
        long_key.mac({"Test Using Larger Than Block-Size Key - Hash Key First"}));
}

}  // namespace
}  // namespace sg
