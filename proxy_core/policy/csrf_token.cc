#include "proxy_core/policy/csrf_token.h"

#include <openssl/rand.h>

#include "proxy_core/policy/policy_mac.h"

namespace sg {

std::optional<CsrfKey> CsrfKey::random() {
  std::string key(kMinPolicyKeyBytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(key.data()), static_cast<int>(key.size())) != 1)
    return std::nullopt;
  return CsrfKey(std::move(key));
}

std::string CsrfKey::token_for(const TokenHash& live_key) const {
  static constexpr std::string_view kLabel = "sg-csrf-1";
  std::string message(kLabel);
  message.append(reinterpret_cast<const char*>(live_key.data()), live_key.size());
  return mac_to_text(hmac_sha256(key_, message));
}

}  // namespace sg
