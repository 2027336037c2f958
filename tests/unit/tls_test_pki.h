// Certificates for the TLS unit tests, made at test time with OpenSSL's X509 API (no `openssl`
// command): two CAs, server certificates for SNI, an upstream certificate with an IP SAN, a client
// certificate for mTLS, and broken key files. EC P-256 keys: fast to generate and to sign with.
// Written once per process into a temporary directory that is removed at exit.
//
// Also a Pipe that moves ciphertext between two TlsEngines in memory, in chunks of a chosen size.
#pragma once

#include <openssl/ssl.h>

#include <cstddef>
#include <string>

#include "proxy_core/config/config.h"
#include "proxy_core/tls/tls_engine.h"

namespace sg::testing {

struct PemPair {
  std::string certificate;  // path
  std::string private_key;  // path
};

struct TestPki {
  std::string dir;
  std::string ca_file;        // the CA every good certificate chains to
  std::string other_ca_file;  // an unrelated CA
  PemPair fallback;           // CN default.test, SAN default.test
  PemPair alpha;              // CN alpha.test, SAN alpha.test, *.wild.test
  PemPair beta;               // CN beta.test, SAN beta.test
  PemPair upstream;           // CN upstream.test, SAN upstream.test, IP 127.0.0.1
  PemPair stranger;           // CN upstream.test, signed by the other CA
  PemPair client;             // CN gateway-client, extendedKeyUsage clientAuth
  std::string garbage_file;   // not PEM at all
  std::string encrypted_key;  // fallback's key under a passphrase

  static const TestPki& get();
};

// [tls] with the fallback certificate as default and alpha/beta for SNI.
TlsConfig server_config();
// [upstream] with tls on, verifying against the test CA.
UpstreamConfig upstream_config();

// The common name of the certificate the peer presented, or "" when none.
std::string peer_common_name(SSL* ssl);
// The common name of the certificate this side presents.
std::string own_common_name(SSL* ssl);

// Two engines joined back to back. pump() delivers ciphertext both ways, `chunk` bytes per feed,
// until neither side has anything left to say; status and plaintext are kept per side.
struct Pipe {
  TlsEngine& server;
  TlsEngine& client;
  size_t chunk = static_cast<size_t>(-1);
  std::string to_server, to_client;  // ciphertext in flight
  std::string server_plain, client_plain;
  TlsStatus server_status = TlsStatus::kWantMore;
  TlsStatus client_status = TlsStatus::kWantMore;

  Pipe(TlsEngine& s, TlsEngine& c) : server(s), client(c) {}
  // start_handshake on the client, then pump(). True when both sides finished the handshake.
  bool handshake();
  void pump();
};

}  // namespace sg::testing
