// HMAC-SHA256 (RFC 2104) under a key fixed for the object's life. The key's inner and outer
// SHA-256 states are computed once, so a MAC costs the message's compression rounds plus two,
// with no allocation and no OpenSSL provider lookup (the one-shot HMAC() of OpenSSL 3 costs about
// 20,000 instructions a call, more than a whole proxied request). Pure logic; immutable after
// construction, so one key may be used from every thread. Copies share the states.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string_view>

namespace sg {

class HmacSha256Key {
 public:
  using Mac = std::array<uint8_t, 32>;
  explicit HmacSha256Key(std::string_view key);
  // The MAC of the concatenation of `parts`.
  Mac mac(std::initializer_list<std::string_view> parts) const;

  struct Pads;  // hmac_key.cc

 private:
  std::shared_ptr<const Pads> pads_;
};

}  // namespace sg
