// Shared by the policy MACs (the CSRF token key, identity signing keys): the 43-character
// base64url spelling of a 32-byte MAC, and the least key size. Pure logic.
#pragma once

#include <cstddef>
#include <string>

#include "proxy_core/session/hmac_key.h"

namespace sg {

// base64url without padding, 43 characters (the token alphabet, token.h).
std::string mac_to_text(const HmacSha256Key::Mac& mac);

// At least this many bytes in a key file (csrf.secret_file, upstream.sign_key_file).
inline constexpr size_t kMinPolicyKeyBytes = 32;

}  // namespace sg
