// The low-level SHA-256 calls below are deprecated in OpenSSL 3.0; see sha256_into for why.
#define OPENSSL_SUPPRESS_DEPRECATED

#include "proxy_core/session/token.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace sg {
namespace {

// RFC 4648 §5, "URL and Filename safe" alphabet.
constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// Reverse table: 0..63 for alphabet characters, -1 for everything else.
constexpr std::array<int8_t, 256> make_reverse() {
  std::array<int8_t, 256> table{};
  for (auto& v : table)
    v = -1;
  for (int i = 0; i < 64; ++i)
    table[static_cast<uint8_t>(kAlphabet[i])] = static_cast<int8_t>(i);
  return table;
}
constexpr std::array<int8_t, 256> kReverse = make_reverse();

void encode_token(const uint8_t (&raw)[kTokenBytes], std::span<char, kTokenChars> out) {
  size_t o = 0;
  size_t i = 0;
  for (; i + 3 <= kTokenBytes; i += 3) {  // 10 full groups: 30 bytes -> 40 characters
    uint32_t v = (uint32_t{raw[i]} << 16) | (uint32_t{raw[i + 1]} << 8) | raw[i + 2];
    out[o++] = kAlphabet[(v >> 18) & 63];
    out[o++] = kAlphabet[(v >> 12) & 63];
    out[o++] = kAlphabet[(v >> 6) & 63];
    out[o++] = kAlphabet[v & 63];
  }
  // The last 2 bytes (16 bits) -> 3 characters (18 bits, the two low bits zero).
  uint32_t v = (uint32_t{raw[i]} << 16) | (uint32_t{raw[i + 1]} << 8);
  out[o++] = kAlphabet[(v >> 18) & 63];
  out[o++] = kAlphabet[(v >> 12) & 63];
  out[o++] = kAlphabet[(v >> 6) & 63];
}

#ifdef OPENSSL_NO_DEPRECATED_3_0
// Fallback where the low-level API is compiled out: one reused context per thread. OpenSSL 3.0
// still allocates inside EVP_DigestInit_ex2 (one malloc per hash), and it is about 2x slower.
void sha256_into(std::string_view data, TokenHash& digest) {
  struct Ctx {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    ~Ctx() {
      EVP_MD_CTX_free(ctx);
      EVP_MD_free(md);
    }
  };
  thread_local Ctx local;
  unsigned int len = 0;
  const bool ok = local.ctx != nullptr && local.md != nullptr &&
                  EVP_DigestInit_ex2(local.ctx, local.md, nullptr) == 1 &&
                  EVP_DigestUpdate(local.ctx, data.data(), data.size()) == 1 &&
                  EVP_DigestFinal_ex(local.ctx, digest.data(), &len) == 1 && len == digest.size();
  if (!ok) std::abort();  // SHA-256 failing means a broken OpenSSL: no safe degraded mode
}
#else
// The low-level SHA256_* functions (deprecated in 3.0, still shipped) run on a stack context: no
// allocation, and about 50 ns for a token against 95 ns for the EVP path on OpenSSL 3.0, which
// mallocs a provider context in every EVP_DigestInit_ex2 and in SHA256()/EVP_Q_digest.
void sha256_into(std::string_view data, TokenHash& digest) {
  SHA256_CTX ctx;
  SHA256_Init(&ctx);
  SHA256_Update(&ctx, data.data(), data.size());
  SHA256_Final(digest.data(), &ctx);
}
#endif

}  // namespace

namespace {

// Random bytes drawn from RAND_bytes a batch at a time: one call costs about a microsecond of
// fixed overhead in OpenSSL 3 (DRBG bookkeeping), which was the largest single cost of a new
// session. Each thread has its own pool; every byte is handed out once and wiped as it goes.
class RandomPool {
 public:
  ~RandomPool() { OPENSSL_cleanse(bytes_, sizeof bytes_); }
  // Fills `out`; false (fail closed) when the CSPRNG fails.
  bool take(uint8_t* out, size_t n) {
    if (n > sizeof bytes_) return RAND_bytes(out, static_cast<int>(n)) == 1;
    if (sizeof bytes_ - used_ < n) {
      // RAND_bytes returns 1 on success; 0 or -1 mean the CSPRNG is not seeded or failed.
      if (RAND_bytes(bytes_, sizeof bytes_) != 1) {
        used_ = sizeof bytes_;
        return false;
      }
      used_ = 0;
    }
    std::memcpy(out, bytes_ + used_, n);
    OPENSSL_cleanse(bytes_ + used_, n);
    used_ += n;
    return true;
  }

 private:
  uint8_t bytes_[2048];
  size_t used_ = sizeof bytes_;
};

bool random_bytes(uint8_t* out, size_t n) {
  thread_local RandomPool pool;
  return pool.take(out, n);
}

}  // namespace

bool generate_token(std::span<char, kTokenChars> out) {
  uint8_t raw[kTokenBytes];
  if (!random_bytes(raw, sizeof raw)) return false;
  encode_token(raw, out);
  OPENSSL_cleanse(raw, sizeof raw);
  return true;
}

bool generate_token(std::string& out) {
  out.resize(kTokenChars);
  if (!generate_token(std::span<char, kTokenChars>(out.data(), kTokenChars))) {
    out.clear();
    return false;
  }
  return true;
}

bool is_token_shaped(std::string_view text) {
  if (text.size() != kTokenChars) return false;
  // Every character's value OR-ed together, one test at the end: a character outside the
  // alphabet is -1 (sign bit set). No early exit per character: a cookie that is a token is the
  // common case, and this loop costs half of a test-and-branch per character.
  uint8_t any_bad = 0;
  for (char c : text)
    any_bad |= static_cast<uint8_t>(kReverse[static_cast<uint8_t>(c)]);
  if ((any_bad & 0x80) != 0) return false;
  // The 43rd character carries 4 data bits and 2 padding bits; canonical encodings have the
  // padding bits zero (RFC 4648 §3.5), so each 32-byte token has exactly one accepted spelling.
  return (kReverse[static_cast<uint8_t>(text.back())] & 0x3) == 0;
}

void encode_token_bytes(const std::array<uint8_t, kTokenBytes>& raw,
                        std::span<char, kTokenChars> out) {
  uint8_t copy[kTokenBytes];
  std::memcpy(copy, raw.data(), kTokenBytes);
  encode_token(copy, out);
}

bool decode_token(std::string_view text, std::array<uint8_t, kTokenBytes>& raw) {
  if (!is_token_shaped(text)) return false;
  uint32_t acc = 0;
  int bits = 0;
  size_t o = 0;
  for (char c : text) {
    acc = (acc << 6) | static_cast<uint32_t>(kReverse[static_cast<uint8_t>(c)]);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (o < kTokenBytes) raw[o++] = static_cast<uint8_t>(acc >> bits);
      acc &= (1u << bits) - 1;
    }
  }
  return o == kTokenBytes;
}

TokenHash hash_token(std::string_view token) {
  TokenHash digest;
  sha256_into(token, digest);
  return digest;
}

TokenHash TokenDigestCache::digest_of(std::string_view token) {
  if (token.size() > kWords * 8) return hash_token(token);
  std::array<uint64_t, kWords> words{};
  std::memcpy(words.data(), token.data(), token.size());
  uint64_t diff = token.size() ^ length_;
  for (size_t i = 0; i < kWords; ++i)
    diff |= words[i] ^ words_[i];
  if (diff != 0) {
    words_ = words;
    length_ = token.size();
    digest_ = hash_token(token);
  }
  return digest_;
}

bool generate_handle(SessionHandle& out) {
  return random_bytes(out.data(), out.size());
}

namespace {
// "00".."ff": one two-character copy per byte (a handle is written on every request with a
// session: the <prefix>Id header).
constexpr std::array<std::array<char, 2>, 256> kHexPairs = [] {
  constexpr char kHex[] = "0123456789abcdef";
  std::array<std::array<char, 2>, 256> t{};
  for (size_t b = 0; b < 256; ++b)
    t[b] = {kHex[b >> 4], kHex[b & 0xf]};
  return t;
}();
}  // namespace

void handle_to_hex(const SessionHandle& handle, std::span<char, 32> out) {
  for (size_t i = 0; i < handle.size(); ++i)
    std::memcpy(out.data() + 2 * i, kHexPairs[handle[i]].data(), 2);
}

std::string handle_to_hex(const SessionHandle& handle) {
  std::string hex(32, '\0');
  handle_to_hex(handle, std::span<char, 32>(hex.data(), 32));
  return hex;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool constant_time_equal(const TokenHash& a, const TokenHash& b) {
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace sg
