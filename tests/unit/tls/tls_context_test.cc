#include "proxy_core/tls/tls_context.h"

#include <doctest/doctest.h>
#include <openssl/ssl.h>

#include <string>

#include "tests/unit/tls_test_pki.h"

using sg::testing::TestPki;

namespace {

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("TLS server names match exactly or by a one-label wildcard, ignoring case") {
  using sg::tls_server_name_matches;
  CHECK(tls_server_name_matches("example.com", "example.com"));
  CHECK(tls_server_name_matches("example.com", "EXAMPLE.com"));
  CHECK(tls_server_name_matches("Example.COM", "example.com."));
  CHECK_FALSE(tls_server_name_matches("example.com", "www.example.com"));
  CHECK_FALSE(tls_server_name_matches("example.com", "example.co"));
  CHECK(tls_server_name_matches("*.example.com", "www.example.com"));
  CHECK(tls_server_name_matches("*.example.com", "WWW.Example.Com"));
  CHECK_FALSE(tls_server_name_matches("*.example.com", "example.com"));
  CHECK_FALSE(tls_server_name_matches("*.example.com", "a.b.example.com"));
  CHECK_FALSE(tls_server_name_matches("*.example.com", ".example.com"));
  CHECK_FALSE(tls_server_name_matches("*.example.com", "wwwexample.com"));
  CHECK_FALSE(tls_server_name_matches("example.com", ""));
}

TEST_CASE("a TLS server context loads the default and the SNI certificates") {
  std::string error;
  auto ctx = sg::TlsServerContext::load(sg::testing::server_config(), error);
  REQUIRE_MESSAGE(ctx != nullptr, error);
  SSL_CTX* c = ctx->native();
  CHECK(SSL_CTX_get_min_proto_version(c) == TLS1_2_VERSION);
  CHECK((SSL_CTX_get_options(c) & SSL_OP_NO_RENEGOTIATION) != 0);
  CHECK((SSL_CTX_get_options(c) & SSL_OP_NO_COMPRESSION) != 0);
  CHECK(SSL_CTX_get_session_cache_mode(c) == SSL_SESS_CACHE_SERVER);
}

TEST_CASE("the default TLS 1.2 cipher list has only ECDHE key exchange and AEAD ciphers") {
  std::string error;
  auto ctx = sg::TlsServerContext::load(sg::testing::server_config(), error);
  REQUIRE_MESSAGE(ctx != nullptr, error);
  STACK_OF(SSL_CIPHER)* ciphers = SSL_CTX_get_ciphers(ctx->native());
  int tls12 = 0;
  for (int i = 0; i < sk_SSL_CIPHER_num(ciphers); ++i) {
    const SSL_CIPHER* cipher = sk_SSL_CIPHER_value(ciphers, i);
    CAPTURE(SSL_CIPHER_get_name(cipher));
    CHECK(SSL_CIPHER_is_aead(cipher) == 1);
    if (SSL_CIPHER_get_kx_nid(cipher) == NID_kx_any) continue;  // a TLS 1.3 suite
    ++tls12;
    CHECK(SSL_CIPHER_get_kx_nid(cipher) == NID_kx_ecdhe);
  }
  CHECK(tls12 == 6);
}

TEST_CASE("TLS min_version 1.3 is honoured and anything but 1.2 or 1.3 is refused") {
  sg::TlsConfig config = sg::testing::server_config();
  std::string error;
  config.min_version = "1.3";
  auto ctx = sg::TlsServerContext::load(config, error);
  REQUIRE_MESSAGE(ctx != nullptr, error);
  CHECK(SSL_CTX_get_min_proto_version(ctx->native()) == TLS1_3_VERSION);
  config.min_version = "1.1";
  CHECK(sg::TlsServerContext::load(config, error) == nullptr);
  CHECK(contains(error, "tls.min_version"));
}

TEST_CASE("TLS ciphers that OpenSSL cannot use are a load error") {
  sg::TlsConfig config = sg::testing::server_config();
  config.ciphers = "NOT-A-CIPHER";
  std::string error;
  CHECK(sg::TlsServerContext::load(config, error) == nullptr);
  CHECK(contains(error, "tls.ciphers"));
  CHECK(contains(error, "NOT-A-CIPHER"));
}

TEST_CASE("a missing TLS certificate file is a load error naming the key and the file") {
  sg::TlsConfig config = sg::testing::server_config();
  config.certificate = TestPki::get().dir + "/nope.crt";
  std::string error;
  CHECK(sg::TlsServerContext::load(config, error) == nullptr);
  CAPTURE(error);
  CHECK(contains(error, "tls.certificate: cannot load \"" + config.certificate + "\""));
}

TEST_CASE("a TLS private key that is not PEM is a load error naming the file") {
  sg::TlsConfig config = sg::testing::server_config();
  config.private_key = TestPki::get().garbage_file;
  std::string error;
  CHECK(sg::TlsServerContext::load(config, error) == nullptr);
  CAPTURE(error);
  CHECK(contains(error, "tls.private_key: cannot load \"" + config.private_key + "\""));
}

TEST_CASE("a TLS private key that does not match the certificate is a load error") {
  sg::TlsConfig config = sg::testing::server_config();
  config.private_key = TestPki::get().beta.private_key;
  std::string error;
  CHECK(sg::TlsServerContext::load(config, error) == nullptr);
  CAPTURE(error);
  CHECK(contains(error, "tls.private_key: \"" + config.private_key + "\" does not match"));
  CHECK(contains(error, config.certificate));
}

TEST_CASE("an encrypted TLS private key is a load error, never a passphrase prompt") {
  sg::TlsConfig config = sg::testing::server_config();
  config.private_key = TestPki::get().encrypted_key;
  std::string error;
  CHECK(sg::TlsServerContext::load(config, error) == nullptr);
  CAPTURE(error);
  CHECK(contains(error, "tls.private_key: cannot load \"" + config.private_key + "\""));
}

TEST_CASE("a broken SNI certificate entry is a load error naming its index") {
  sg::TlsConfig config = sg::testing::server_config();
  config.certificates[1].private_key = TestPki::get().alpha.private_key;
  std::string error;
  CHECK(sg::TlsServerContext::load(config, error) == nullptr);
  CAPTURE(error);
  CHECK(contains(error, "tls.certificates[1].private_key"));

  config = sg::testing::server_config();
  for (const char* bad : {"*.*.example.com", "www.*.com", "a..b", "*", "exa mple.com"}) {
    CAPTURE(bad);
    config.certificates[0].server_names = {bad};
    CHECK(sg::TlsServerContext::load(config, error) == nullptr);
    CHECK(contains(error, "tls.certificates[0].server_names"));
  }
}

TEST_CASE("a TLS client context verifies by default and can present a client certificate") {
  sg::UpstreamConfig config = sg::testing::upstream_config();
  config.certificate = TestPki::get().client.certificate;
  config.private_key = TestPki::get().client.private_key;
  config.server_name = "upstream.test";
  std::string error;
  auto ctx = sg::TlsClientContext::load(config, error);
  REQUIRE_MESSAGE(ctx != nullptr, error);
  CHECK(ctx->verify());
  CHECK(ctx->server_name() == "upstream.test");
  CHECK(SSL_CTX_get_verify_mode(ctx->native()) == SSL_VERIFY_PEER);
  CHECK(SSL_CTX_get0_certificate(ctx->native()) != nullptr);

  config.verify = false;
  ctx = sg::TlsClientContext::load(config, error);
  REQUIRE(ctx != nullptr);
  CHECK(SSL_CTX_get_verify_mode(ctx->native()) == SSL_VERIFY_NONE);
}

TEST_CASE("TLS client context load errors name the upstream key and the file") {
  std::string error;
  sg::UpstreamConfig config = sg::testing::upstream_config();
  config.ca_file = TestPki::get().garbage_file;
  CHECK(sg::TlsClientContext::load(config, error) == nullptr);
  CHECK(contains(error, "upstream.ca_file: cannot load \"" + config.ca_file + "\""));

  config = sg::testing::upstream_config();
  config.certificate = TestPki::get().client.certificate;
  config.private_key = TestPki::get().upstream.private_key;
  CHECK(sg::TlsClientContext::load(config, error) == nullptr);
  CAPTURE(error);
  CHECK(contains(error, "upstream.private_key: \"" + config.private_key + "\" does not match"));
}
