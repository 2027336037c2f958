// First-visit tokens for session.create = "on_return": a new visitor gets a cookie and a handle
// but costs the store nothing until it comes back. So the token must prove by itself that this
// gateway issued it (a client-chosen value is never adopted) and when (the absolute timeout
// counts from the first visit, not from the return).
//
// Layout, 32 bytes spelled as an ordinary 43-character token:
//   16 random bytes | created, unix seconds (4 bytes, big-endian) | MAC (12 bytes)
// with H = HMAC-SHA256(key, "sg-first-visit-1" | random | created) (RFC 2104): the MAC is H[0..12]
// (96 bits: a forger needs ~2^95 tries, each a request) and the session handle is H[12..28], so the
// handle is the same on every instance that shares the key, on the first visit and on the return,
// and nobody without the key can tell it from the token. One HMAC per issue or check, with the
// key's inner and outer SHA-256 states computed once (the new-visitor path is hot in a flood).
// Checks are constant-time (CRYPTO_memcmp). Pure logic over OpenSSL; the key is read once.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "proxy_core/session/session_store.h"

namespace sg {

// At least this many bytes in session.secret_file.
inline constexpr size_t kMinSecretBytes = 32;

class FirstVisitKey {
 public:
  explicit FirstVisitKey(const std::string& key);
  ~FirstVisitKey();
  // A fresh token for a first visit at now_ms. False when the CSPRNG fails (fail closed).
  bool issue(int64_t now_ms, std::string& token, SessionHandle& handle, int64_t& created_ms) const;
  // True when `token` is one this key issued; then `handle` and `created_ms` are its.
  bool verify(std::string_view token, SessionHandle& handle, int64_t& created_ms) const;

  struct Pads;  // the key's HMAC inner and outer hash states (first_visit_token.cc)

 private:
  std::unique_ptr<Pads> pads_;
};

// The key of session.secret_file (read once per path and kept), or for an empty path a random
// key made once per process. Null (with `error` set) when the file cannot be read or is short.
// Thread-safe.
std::shared_ptr<const FirstVisitKey> first_visit_key(const std::string& secret_file,
                                                     std::string& error);

}  // namespace sg
