#include "proxy_core/policy/identity_signature.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <algorithm>

#include "proxy_core/base/ascii.h"
#include "proxy_core/policy/policy_mac.h"

namespace sg {
namespace {

bool under_prefix(std::string_view name, std::string_view prefix) {
  return name.size() > prefix.size() && iequals(name.substr(0, prefix.size()), prefix) &&
         !iequals(name.substr(prefix.size()), kSignatureHeaderSuffix);
}

}  // namespace

SigningKey::SigningKey(std::string_view key) : key_(key) {
  static constexpr std::string_view kLabel = "sessiongate-kid-v1";
  std::string input = std::string(kLabel).append(key);
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  OPENSSL_cleanse(input.data(), input.size());
  static constexpr char kHex[] = "0123456789abcdef";
  for (size_t i = 0; i < 8; ++i) {
    kid_ += kHex[digest[i] >> 4];
    kid_ += kHex[digest[i] & 0xf];
  }
}

std::string canonical_identity_string(std::string_view method, std::string_view target,
                                      const SignedHeaders& headers, size_t header_count,
                                      std::string_view prefix, int64_t unix_seconds,
                                      const SignedHeaders* extra) {
  std::vector<std::pair<std::string, std::string_view>> lines;
  const auto take = [&](const std::pair<std::string, std::string>& header) {
    if (under_prefix(header.first, prefix))
      lines.emplace_back(ascii_lowercase(header.first), header.second);
  };
  for (size_t i = 0; i < header_count && i < headers.size(); ++i)
    take(headers[i]);
  if (extra != nullptr)
    for (const auto& header : *extra)
      take(header);
  std::sort(lines.begin(), lines.end());
  std::string out = "v1\n";
  out.append(method).append("\n").append(target).append("\n");
  for (const auto& [name, value] : lines)
    out.append(name).append(":").append(value).append("\n");
  return out + std::to_string(unix_seconds);
}

std::string sign_identity(const SigningKey& key, std::string_view method, std::string_view target,
                          const SignedHeaders& headers, size_t header_count,
                          std::string_view prefix, int64_t unix_seconds,
                          const SignedHeaders* extra) {
  const std::string message =
      canonical_identity_string(method, target, headers, header_count, prefix, unix_seconds, extra);
  return "v1; kid=" + key.kid() + "; t=" + std::to_string(unix_seconds) +
         "; sig=" + mac_to_text(key.mac(message));
}

}  // namespace sg
