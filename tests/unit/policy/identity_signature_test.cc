#include "proxy_core/policy/identity_signature.h"

#include <doctest/doctest.h>

#include <fstream>
#include <string>

namespace sg {
namespace {

// tests/unit/policy/identity_signature_vector.txt: computed with Python's hmac module, so this
// checks the C++ code against an independent implementation of the same canonical string.
struct Vector {
  std::string key, method, target, prefix, signature;
  SignedHeaders headers;
  int64_t t = 0;
};

Vector read_vector() {
  std::ifstream in(SG_SOURCE_DIR "/tests/unit/policy/identity_signature_vector.txt");
  REQUIRE(in.good());
  Vector v;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const std::string name = line.substr(0, line.find('='));
    const std::string value = line.substr(line.find('=') + 1);
    if (name == "key_hex") {
      for (size_t i = 0; i + 1 < value.size(); i += 2)
        v.key += static_cast<char>(std::stoi(value.substr(i, 2), nullptr, 16));
    } else if (name == "method") {
      v.method = value;
    } else if (name == "target") {
      v.target = value;
    } else if (name == "prefix") {
      v.prefix = value;
    } else if (name == "header") {
      v.headers.emplace_back(value.substr(0, value.find(": ")), value.substr(value.find(": ") + 2));
    } else if (name == "t") {
      v.t = std::stoll(value);
    } else if (name == "signature") {
      v.signature = value;
    }
  }
  return v;
}

TEST_CASE("the identity signature matches the independent known-answer vector") {
  const Vector v = read_vector();
  const SigningKey key(v.key);
  CHECK(key.kid().size() == 16);
  CHECK(sign_identity(key, v.method, v.target, v.headers, v.headers.size(), v.prefix, v.t) ==
        v.signature);
  // Split between the gate's list and the exchange's extra headers: the same signature.
  const SignedHeaders gate(v.headers.begin(), v.headers.begin() + 2);
  const SignedHeaders extra(v.headers.begin() + 2, v.headers.end());
  CHECK(sign_identity(key, v.method, v.target, gate, gate.size(), v.prefix, v.t, &extra) ==
        v.signature);
}

TEST_CASE("the canonical string sorts lowercased names and leaves out other headers") {
  const SignedHeaders headers = {{"X-Session-User", "alice"},
                                 {"X-Request-Id", "r1"},
                                 {"x-session-id", "h"},
                                 {"X-Session-Signature", "forged"},
                                 {"X-Session-Role", "admin"}};
  CHECK(canonical_identity_string("GET", "/a?b=c", headers, headers.size(), "X-Session-", 7) ==
        "v1\nGET\n/a?b=c\nx-session-id:h\nx-session-role:admin\nx-session-user:alice\n7");
  // Only the first header_count entries (the gate's list keeps spare entries).
  CHECK(canonical_identity_string("GET", "/", headers, 2, "X-Session-", 7) ==
        "v1\nGET\n/\nx-session-user:alice\n7");
  // The exchange's own headers (<prefix>Csrf) join the gate's, sorted with them.
  const SignedHeaders extra = {{"X-Session-Csrf", "c"}, {"Via", "1.1 x"}};
  CHECK(canonical_identity_string("GET", "/", headers, 2, "X-Session-", 7, &extra) ==
        "v1\nGET\n/\nx-session-csrf:c\nx-session-user:alice\n7");
  // Another prefix.
  const SignedHeaders other = {{"X-Auth-Id", "h"}, {"X-Session-Id", "not ours"}};
  CHECK(canonical_identity_string("GET", "/", other, 2, "X-Auth-", 7) ==
        "v1\nGET\n/\nx-auth-id:h\n7");
}

TEST_CASE("every signed part changes the signature") {
  const SigningKey key(std::string(32, 'a'));
  const SignedHeaders headers = {{"X-Session-Id", "h"}, {"X-Session-User", "alice"}};
  const std::string base = sign_identity(key, "POST", "/x?y=1", headers, 2, "X-Session-", 100);
  CHECK(base.rfind("v1; kid=" + key.kid() + "; t=100; sig=", 0) == 0);
  CHECK(base.size() == std::string("v1; kid=; t=100; sig=").size() + 16 + 43);
  SignedHeaders changed = headers;
  changed[1].second = "mallory";
  CHECK(sign_identity(key, "POST", "/x?y=1", changed, 2, "X-Session-", 100) != base);
  changed = headers;
  changed.emplace_back("X-Session-Role", "admin");
  CHECK(sign_identity(key, "POST", "/x?y=1", changed, 3, "X-Session-", 100) != base);
  CHECK(sign_identity(key, "GET", "/x?y=1", headers, 2, "X-Session-", 100) != base);
  CHECK(sign_identity(key, "POST", "/x?y=2", headers, 2, "X-Session-", 100) != base);
  CHECK(sign_identity(key, "POST", "/x?y=1", headers, 2, "X-Session-", 101) != base);
  const SigningKey other(std::string(32, 'b'));
  CHECK(other.kid() != key.kid());
  CHECK(sign_identity(other, "POST", "/x?y=1", headers, 2, "X-Session-", 100) != base);
}

}  // namespace
}  // namespace sg
