#include "proxy_core/policy/csrf_token.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "proxy_core/policy/policy_mac.h"

namespace sg {

std::optional<CsrfKey> CsrfKey::random() {
  std::string key(kMinPolicyKeyBytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(key.data()), static_cast<int>(key.size())) != 1)
    return std::nullopt;
  const CsrfKey made(key);
  OPENSSL_cleanse(key.data(), key.size());
  return made;
}

std::string CsrfKey::token_for(const TokenHash& live_key) const {
  const std::string_view key_bytes(reinterpret_cast<const char*>(live_key.data()), live_key.size());
  return mac_to_text(key_.mac({"sg-csrf-1", key_bytes}));
}

}  // namespace sg
