#include "proxy_core/policy/policy_mac.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "proxy_core/session/token.h"

namespace sg {

Mac hmac_sha256(std::string_view key, std::string_view message) {
  Mac mac{};
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac.data(), &length);
  return mac;
}

std::string mac_to_text(const Mac& mac) {
  std::string text(kTokenChars, '\0');
  encode_token_bytes(mac, std::span<char, kTokenChars>(text.data(), kTokenChars));
  return text;
}

}  // namespace sg
