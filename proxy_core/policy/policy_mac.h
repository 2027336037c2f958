// HMAC-SHA256 under a key held for the process (the CSRF token key, identity signing keys), and
// the 43-character base64url spelling of a 32-byte MAC. Pure logic over OpenSSL; no I/O.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace sg {

using Mac = std::array<uint8_t, 32>;

// HMAC-SHA256 (RFC 2104) of `message` under `key`.
Mac hmac_sha256(std::string_view key, std::string_view message);

// base64url without padding, 43 characters (the token alphabet, token.h).
std::string mac_to_text(const Mac& mac);

// At least this many bytes in a key file (csrf.secret_file, upstream.sign_key_file).
inline constexpr size_t kMinPolicyKeyBytes = 32;

}  // namespace sg
