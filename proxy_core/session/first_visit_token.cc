// SHA256_Init/Update/Final are deprecated in OpenSSL 3.0 but are the only allocation-free way to
// resume a saved hash state, which HMAC with a precomputed key needs (token.cc does the same).
#define OPENSSL_SUPPRESS_DEPRECATED

#include "proxy_core/session/first_visit_token.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <array>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>

#include "proxy_core/session/token.h"

namespace sg {

struct FirstVisitKey::Pads {
  SHA256_CTX inner;  // after absorbing key ^ ipad (RFC 2104 §2)
  SHA256_CTX outer;  // after absorbing key ^ opad
};

namespace {

constexpr size_t kRandomBytes = 16;
constexpr size_t kTimeBytes = 4;
constexpr size_t kSignedBytes = kRandomBytes + kTimeBytes;
constexpr size_t kMacBytes = kTokenBytes - kSignedBytes;  // 12
constexpr std::string_view kLabel = "sg-first-visit-1";
static_assert(kMacBytes + sizeof(SessionHandle) <= SHA256_DIGEST_LENGTH);

using Raw = std::array<uint8_t, kTokenBytes>;
using Digest = std::array<uint8_t, SHA256_DIGEST_LENGTH>;

// HMAC-SHA256(key, label | raw[0..20]) from the saved pad states.
Digest mac(const FirstVisitKey::Pads& pads, const Raw& raw) {
  Digest inner_digest, out;
  SHA256_CTX ctx = pads.inner;
  SHA256_Update(&ctx, kLabel.data(), kLabel.size());
  SHA256_Update(&ctx, raw.data(), kSignedBytes);
  SHA256_Final(inner_digest.data(), &ctx);
  ctx = pads.outer;
  SHA256_Update(&ctx, inner_digest.data(), inner_digest.size());
  SHA256_Final(out.data(), &ctx);
  OPENSSL_cleanse(&ctx, sizeof ctx);
  return out;
}

}  // namespace

FirstVisitKey::FirstVisitKey(const std::string& key) : pads_(std::make_unique<Pads>()) {
  // RFC 2104 §2: a key longer than the block is hashed first.
  uint8_t block[SHA256_CBLOCK] = {};
  if (key.size() > sizeof block) {
    SHA256(reinterpret_cast<const uint8_t*>(key.data()), key.size(), block);
  } else {
    std::memcpy(block, key.data(), key.size());
  }
  uint8_t pad[SHA256_CBLOCK];
  for (size_t i = 0; i < sizeof pad; ++i)
    pad[i] = block[i] ^ 0x36;
  SHA256_Init(&pads_->inner);
  SHA256_Update(&pads_->inner, pad, sizeof pad);
  for (size_t i = 0; i < sizeof pad; ++i)
    pad[i] = block[i] ^ 0x5c;
  SHA256_Init(&pads_->outer);
  SHA256_Update(&pads_->outer, pad, sizeof pad);
  OPENSSL_cleanse(block, sizeof block);
  OPENSSL_cleanse(pad, sizeof pad);
}

FirstVisitKey::~FirstVisitKey() {
  OPENSSL_cleanse(pads_.get(), sizeof(Pads));
}

bool FirstVisitKey::issue(int64_t now_ms, std::string& token, SessionHandle& handle,
                          int64_t& created_ms) const {
  Raw raw{};
  SessionHandle random;
  if (!generate_handle(random)) return false;  // 16 bytes from the pooled CSPRNG
  std::memcpy(raw.data(), random.data(), kRandomBytes);
  const uint32_t seconds = static_cast<uint32_t>(now_ms / 1000);
  for (size_t i = 0; i < kTimeBytes; ++i)
    raw[kRandomBytes + i] = static_cast<uint8_t>(seconds >> (8 * (kTimeBytes - 1 - i)));
  const Digest h = mac(*pads_, raw);
  std::memcpy(raw.data() + kSignedBytes, h.data(), kMacBytes);
  std::memcpy(handle.data(), h.data() + kMacBytes, handle.size());
  token.resize(kTokenChars);
  encode_token_bytes(raw, std::span<char, kTokenChars>(token.data(), kTokenChars));
  created_ms = int64_t{seconds} * 1000;
  OPENSSL_cleanse(raw.data(), raw.size());
  return true;
}

bool FirstVisitKey::verify(std::string_view token, SessionHandle& handle,
                           int64_t& created_ms) const {
  Raw raw;
  if (!decode_token(token, raw)) return false;
  const Digest h = mac(*pads_, raw);
  if (CRYPTO_memcmp(h.data(), raw.data() + kSignedBytes, kMacBytes) != 0) return false;
  std::memcpy(handle.data(), h.data() + kMacBytes, handle.size());
  uint32_t seconds = 0;
  for (size_t i = 0; i < kTimeBytes; ++i)
    seconds = (seconds << 8) | raw[kRandomBytes + i];
  created_ms = int64_t{seconds} * 1000;
  return true;
}

std::shared_ptr<const FirstVisitKey> first_visit_key(const std::string& secret_file,
                                                     std::string& error) {
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<const FirstVisitKey>> keys;
  std::lock_guard<std::mutex> lock(mu);
  if (auto it = keys.find(secret_file); it != keys.end()) return it->second;
  std::string key;
  if (secret_file.empty()) {
    key.resize(kMinSecretBytes);
    if (RAND_bytes(reinterpret_cast<uint8_t*>(key.data()), static_cast<int>(key.size())) != 1) {
      error = "RAND_bytes failed";
      return nullptr;
    }
  } else {
    std::ifstream in(secret_file, std::ios::binary);
    key.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (key.size() < kMinSecretBytes) {
      error = "session.secret_file: cannot read at least 32 bytes";
      OPENSSL_cleanse(key.data(), key.size());
      return nullptr;
    }
  }
  auto made = std::make_shared<const FirstVisitKey>(key);
  OPENSSL_cleanse(key.data(), key.size());
  keys[secret_file] = made;
  return made;
}

}  // namespace sg
