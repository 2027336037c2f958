#include "proxy_core/first_visit_token.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <array>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>

#include "proxy_core/token.h"

namespace sg {
namespace {

constexpr size_t kRandomBytes = 16;
constexpr size_t kTimeBytes = 4;
constexpr size_t kMacBytes = kTokenBytes - kRandomBytes - kTimeBytes;  // 12
constexpr std::string_view kTokenLabel = "sg-first-visit-1";
constexpr std::string_view kHandleLabel = "sg-handle-1";

using Raw = std::array<uint8_t, kTokenBytes>;
using Mac = std::array<uint8_t, 32>;

// HMAC-SHA256(key, label | data).
bool mac(const std::string& key, std::string_view label, const uint8_t* data, size_t n, Mac& out) {
  uint8_t input[64];
  std::memcpy(input, label.data(), label.size());
  std::memcpy(input + label.size(), data, n);
  unsigned len = 0;
  bool ok = HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), input, label.size() + n,
                 out.data(), &len) != nullptr &&
            len == out.size();
  OPENSSL_cleanse(input, sizeof input);
  return ok;
}

bool derive(const std::string& key, const Raw& raw, Mac& token_mac, SessionHandle& handle) {
  Mac h;
  if (!mac(key, kTokenLabel, raw.data(), kRandomBytes + kTimeBytes, token_mac) ||
      !mac(key, kHandleLabel, raw.data(), kRandomBytes, h))
    return false;
  std::memcpy(handle.data(), h.data(), handle.size());
  return true;
}

}  // namespace

bool FirstVisitKey::issue(int64_t now_ms, std::string& token, SessionHandle& handle,
                          int64_t& created_ms) const {
  Raw raw{};
  if (RAND_bytes(raw.data(), kRandomBytes) != 1) return false;
  const uint32_t seconds = static_cast<uint32_t>(now_ms / 1000);
  for (size_t i = 0; i < kTimeBytes; ++i)
    raw[kRandomBytes + i] = static_cast<uint8_t>(seconds >> (8 * (kTimeBytes - 1 - i)));
  Mac m;
  if (!derive(key_, raw, m, handle)) return false;
  std::memcpy(raw.data() + kRandomBytes + kTimeBytes, m.data(), kMacBytes);
  token.resize(kTokenChars);
  encode_token_bytes(raw, std::span<char, kTokenChars>(token.data(), kTokenChars));
  created_ms = int64_t{seconds} * 1000;
  OPENSSL_cleanse(raw.data(), raw.size());
  return true;
}

bool FirstVisitKey::verify(std::string_view token, SessionHandle& handle,
                           int64_t& created_ms) const {
  Raw raw;
  Mac m;
  if (!decode_token(token, raw) || !derive(key_, raw, m, handle)) return false;
  if (CRYPTO_memcmp(m.data(), raw.data() + kRandomBytes + kTimeBytes, kMacBytes) != 0) return false;
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
    if (!in.good() && !in.eof()) key.clear();
    if (key.size() < kMinSecretBytes) {
      error = "session.secret_file: cannot read at least 32 bytes";
      OPENSSL_cleanse(key.data(), key.size());
      return nullptr;
    }
  }
  auto made = std::make_shared<const FirstVisitKey>(std::move(key));
  keys[secret_file] = made;
  return made;
}

}  // namespace sg
