#include "proxy_core/policy/policy_mac.h"

#include "proxy_core/session/token.h"

namespace sg {

std::string mac_to_text(const HmacSha256Key::Mac& mac) {
  std::string text(kTokenChars, '\0');
  encode_token_bytes(mac, std::span<char, kTokenChars>(text.data(), kTokenChars));
  return text;
}

}  // namespace sg
