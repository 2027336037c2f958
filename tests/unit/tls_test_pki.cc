#include "tests/unit/tls_test_pki.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <vector>

namespace sg::testing {
namespace {

struct Issued {
  X509* cert = nullptr;
  EVP_PKEY* key = nullptr;
};

void fail(const char* what) {
  throw std::runtime_error(std::string("test PKI: ") + what);
}

void add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr || X509_add_ext(cert, ext, -1) != 1) fail("extension");
  X509_EXTENSION_free(ext);
}

// `issuer` null: self-signed CA.
Issued issue(const char* cn, const Issued* issuer, const std::string& san, bool client_auth) {
  static long serial = 1;
  Issued out;
  out.key = EVP_EC_gen("P-256");
  out.cert = X509_new();
  if (out.key == nullptr || out.cert == nullptr) fail("key");
  X509* x = out.cert;
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 30L * 86400);
  X509_set_pubkey(x, out.key);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn),
                             -1, -1, 0);
  X509* signer = issuer != nullptr ? issuer->cert : x;
  X509_set_issuer_name(x, X509_get_subject_name(signer));
  add_ext(x, signer, NID_subject_key_identifier, "hash");
  if (issuer == nullptr) {
    add_ext(x, signer, NID_basic_constraints, "critical,CA:TRUE");
    add_ext(x, signer, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add_ext(x, signer, NID_authority_key_identifier, "keyid:always");
    add_ext(x, signer, NID_basic_constraints, "critical,CA:FALSE");
    add_ext(x, signer, NID_key_usage, "critical,digitalSignature");
    add_ext(x, signer, NID_ext_key_usage, client_auth ? "clientAuth" : "serverAuth");
    if (!san.empty()) add_ext(x, signer, NID_subject_alt_name, san);
  }
  if (X509_sign(x, issuer != nullptr ? issuer->key : out.key, EVP_sha256()) == 0) fail("sign");
  return out;
}

void write_file(const std::string& path, const std::string& text) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) fail("write");
  std::fputs(text.c_str(), f);
  std::fclose(f);
}

void write_cert(const std::string& path, X509* cert) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr || PEM_write_X509(f, cert) != 1) fail("write cert");
  std::fclose(f);
}

void write_key(const std::string& path, EVP_PKEY* key, const char* passphrase = nullptr) {
  FILE* f = std::fopen(path.c_str(), "w");
  bool ok = f != nullptr;
  if (ok && passphrase != nullptr) {
    ok = PEM_write_PrivateKey(
             f, key, EVP_aes_256_cbc(), reinterpret_cast<const unsigned char*>(passphrase),
             static_cast<int>(std::char_traits<char>::length(passphrase)), nullptr, nullptr) == 1;
  } else if (ok) {
    ok = PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr) == 1;
  }
  if (f != nullptr) std::fclose(f);
  if (!ok) fail("write key");
}

struct Owned : TestPki {
  std::vector<Issued> all;
  ~Owned() {
    for (Issued& i : all) {
      X509_free(i.cert);
      EVP_PKEY_free(i.key);
    }
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }

  PemPair save(const std::string& stem, const Issued& issued) {
    PemPair pair{dir + "/" + stem + ".crt", dir + "/" + stem + ".key"};
    write_cert(pair.certificate, issued.cert);
    write_key(pair.private_key, issued.key);
    return pair;
  }

  Owned() {
    char tmpl[] = "/tmp/sg-tls-test-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) fail("mkdtemp");
    dir = tmpl;
    Issued ca = issue("sessiongate test CA", nullptr, "", false);
    Issued other_ca = issue("some other CA", nullptr, "", false);
    all = {ca, other_ca};
    auto make = [&](const char* stem, const char* cn, const Issued& by, const std::string& san,
                    bool client_auth) {
      all.push_back(issue(cn, &by, san, client_auth));
      return save(stem, all.back());
    };
    ca_file = dir + "/ca.crt";
    write_cert(ca_file, ca.cert);
    other_ca_file = dir + "/other-ca.crt";
    write_cert(other_ca_file, other_ca.cert);
    fallback = make("default", "default.test", ca, "DNS:default.test", false);
    alpha = make("alpha", "alpha.test", ca, "DNS:alpha.test,DNS:*.wild.test", false);
    beta = make("beta", "beta.test", ca, "DNS:beta.test", false);
    upstream = make("upstream", "upstream.test", ca, "DNS:upstream.test,IP:127.0.0.1", false);
    stranger = make("stranger", "upstream.test", other_ca, "DNS:upstream.test", false);
    client = make("client", "gateway-client", ca, "", true);
    garbage_file = dir + "/garbage.pem";
    write_file(garbage_file, "this is not a PEM file\n");
    encrypted_key = dir + "/encrypted.key";
    write_key(encrypted_key, all[2].key, "secret");
  }
};

std::string common_name(X509* cert) {
  if (cert == nullptr) return "";
  char buf[256] = {};
  if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, sizeof buf) < 0) {
    return "";
  }
  return buf;
}

}  // namespace

const TestPki& TestPki::get() {
  static Owned pki;
  return pki;
}

TlsConfig server_config() {
  const TestPki& pki = TestPki::get();
  TlsConfig c;
  c.certificate = pki.fallback.certificate;
  c.private_key = pki.fallback.private_key;
  c.certificates.push_back(
      {{"alpha.test", "*.wild.test"}, pki.alpha.certificate, pki.alpha.private_key});
  c.certificates.push_back({{"Beta.Test"}, pki.beta.certificate, pki.beta.private_key});
  return c;
}

UpstreamConfig upstream_config() {
  UpstreamConfig c;
  c.tls = true;
  c.ca_file = TestPki::get().ca_file;
  return c;
}

std::string peer_common_name(SSL* ssl) {
  return common_name(SSL_get0_peer_certificate(ssl));
}
std::string own_common_name(SSL* ssl) {
  return common_name(SSL_get_certificate(ssl));
}

bool Pipe::handshake() {
  client_status = client.start_handshake(to_server);
  pump();
  return server.handshake_done() && client.handshake_done();
}

void Pipe::pump() {
  size_t server_offset = 0, client_offset = 0;  // delivered prefix of to_server / to_client
  auto deliver = [this](std::string& in, size_t& offset, TlsEngine& to, std::string& plain,
                        std::string& back, TlsStatus& status) {
    if (offset == in.size()) return false;
    if (to.failed() || to.peer_closed()) {
      in.clear();  // nobody is listening any more
      offset = 0;
      return false;
    }
    size_t n = std::min(chunk, in.size() - offset);
    status = to.feed(in.data() + offset, n, plain, back);
    offset += n;
    if (offset == in.size()) {
      in.clear();
      offset = 0;
    }
    return true;
  };
  for (int rounds = 0; rounds < 10'000'000; ++rounds) {
    bool moved = deliver(to_server, server_offset, server, server_plain, to_client, server_status);
    moved |= deliver(to_client, client_offset, client, client_plain, to_server, client_status);
    if (!moved) return;
  }
  throw std::runtime_error("Pipe::pump does not settle");
}

}  // namespace sg::testing
