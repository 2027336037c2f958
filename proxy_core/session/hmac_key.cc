// SHA256_Init/Update/Final are deprecated in OpenSSL 3.0 but are the only allocation-free way to
// resume a saved hash state, which HMAC with a precomputed key needs.
#define OPENSSL_SUPPRESS_DEPRECATED

#include "proxy_core/session/hmac_key.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <cstring>

namespace sg {

struct HmacSha256Key::Pads {
  SHA256_CTX inner;  // after absorbing key ^ ipad (RFC 2104 §2)
  SHA256_CTX outer;  // after absorbing key ^ opad
  ~Pads() { OPENSSL_cleanse(this, sizeof *this); }
};

HmacSha256Key::HmacSha256Key(std::string_view key) {
  auto pads = std::make_shared<Pads>();
  uint8_t block[SHA256_CBLOCK] = {};
  if (key.size() > sizeof block) {  // RFC 2104 §2: a key longer than the block is hashed first
    SHA256(reinterpret_cast<const uint8_t*>(key.data()), key.size(), block);
  } else {
    std::memcpy(block, key.data(), key.size());
  }
  uint8_t pad[SHA256_CBLOCK];
  for (const auto& [ctx, byte] : {std::pair{&pads->inner, 0x36}, std::pair{&pads->outer, 0x5c}}) {
    for (size_t i = 0; i < sizeof pad; ++i)
      pad[i] = static_cast<uint8_t>(block[i] ^ byte);
    SHA256_Init(ctx);
    SHA256_Update(ctx, pad, sizeof pad);
  }
  OPENSSL_cleanse(block, sizeof block);
  OPENSSL_cleanse(pad, sizeof pad);
  pads_ = std::move(pads);
}

HmacSha256Key::Mac HmacSha256Key::mac(std::initializer_list<std::string_view> parts) const {
  Mac inner_digest, out;
  SHA256_CTX ctx = pads_->inner;
  for (std::string_view part : parts)
    SHA256_Update(&ctx, part.data(), part.size());
  SHA256_Final(inner_digest.data(), &ctx);
  ctx = pads_->outer;
  SHA256_Update(&ctx, inner_digest.data(), inner_digest.size());
  SHA256_Final(out.data(), &ctx);
  OPENSSL_cleanse(&ctx, sizeof ctx);
  return out;
}

}  // namespace sg
