#include "proxy_core/policy_keys.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include <openssl/crypto.h>

#include "proxy_core/policy/policy_mac.h"

namespace sg {
namespace {

bool read_key(const std::string& path, std::string& key, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot read " + path + ": " + std::strerror(errno);
    return false;
  }
  key.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (key.size() < kMinPolicyKeyBytes) {
    error = path + " holds " + std::to_string(key.size()) + " bytes; it needs at least " +
            std::to_string(kMinPolicyKeyBytes) + " random bytes";
    return false;
  }
  return true;
}

}  // namespace

std::shared_ptr<const PolicyKeys> load_policy_keys(const Config& config, std::string& error) {
  auto keys = std::make_shared<PolicyKeys>();
  std::string bytes;
  if (config.csrf.mode == CsrfMode::kToken) {
    if (config.csrf.secret_file.empty()) {
      static const std::optional<CsrfKey> process_key = CsrfKey::random();  // once, thread-safe
      if (!process_key) {
        error = "the CSPRNG failed to make the CSRF token key";
        return nullptr;
      }
      keys->csrf = process_key;
    } else {
      if (!read_key(config.csrf.secret_file, bytes, error)) return nullptr;
      keys->csrf.emplace(bytes);
    }
  }
  if (config.upstream.sign) {
    for (const std::string& path : config.upstream.sign_key_file) {
      if (!read_key(path, bytes, error)) return nullptr;
      keys->signing.emplace_back(bytes);
    }
    if (keys->signing.empty()) {
      error = "upstream.sign needs upstream.sign_key_file";
      return nullptr;
    }
  }
  OPENSSL_cleanse(bytes.data(), bytes.size());
  return keys;
}

}  // namespace sg
