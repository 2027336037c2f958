// TLS contexts: [tls] and [upstream] turned into OpenSSL SSL_CTX objects. Pure configuration: no
// sockets, no libuv; the only I/O is reading PEM files inside load().
//
// Contract:
// - A context is immutable once load() returns and may be shared by every worker thread (OpenSSL
//   allows SSL_new() on one SSL_CTX from many threads). The one internal mutable state is the
//   session-ticket key ring, behind its own mutex.
// - Reload (SIGHUP) = call load() again and swap the shared_ptr. An SSL* holds a reference on its
//   SSL_CTX (SSL_new up-refs it), and everything the OpenSSL callbacks need (SNI table, ticket
//   keys) is owned by the SSL_CTX itself through ex_data, so in-flight connections keep working
//   on the old context after the TlsServerContext object is gone.
// - Errors are values: load() returns nullptr and sets `error` to a message that names the config
//   key, the file and OpenSSL's reason, e.g.
//   `tls.private_key: cannot load "/etc/gw/key.pem": no start line`.
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "proxy_core/config/config.h"

namespace sg {

// TLS 1.2 cipher list used when tls.ciphers is empty: ECDHE key exchange (forward secrecy) and
// AEAD ciphers only, i.e. no static-RSA key exchange and no CBC (Lucky13-style padding oracles).
// Client preference order decides among them (all are strong; mobile clients prefer ChaCha20).
// TLS 1.3 suites are OpenSSL's defaults, which are all AEAD.
inline constexpr const char* kDefaultTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

// How long a resumable session (cache entry or ticket) stays valid. Resumption skips the
// certificate signature (the costly half of a handshake); two hours covers a working session's
// reconnects without keeping secrets around for days.
inline constexpr std::chrono::seconds kTlsSessionLifetime{2 * 3600};
// A new ticket-encryption key is made this often; tickets under the previous keys are still
// accepted (and replaced by a fresh ticket) until kTlsSessionLifetime after the key retired.
// A stolen key thus exposes at most kTicketKeyRotation + kTlsSessionLifetime of tickets.
inline constexpr std::chrono::seconds kTicketKeyRotation{3600};
// Server-side session cache entries (TLS 1.2 clients resuming by session ID), per context.
// OpenSSL's own default; about 1 KiB each at most.
inline constexpr long kTlsSessionCacheSize = 20 * 1024;

// True when `name` (a host name from SNI) is covered by `pattern`: an exact host name, or
// "*.example.com", which covers exactly one extra leftmost label ("a.example.com", not
// "example.com" nor "a.b.example.com"). ASCII case-insensitive; one trailing dot on `name` is
// ignored.
bool tls_server_name_matches(std::string_view pattern, std::string_view name);

struct TicketKeyRing;  // in tls_context.cc

// What ALPN may select. kH2AndHttp11 ("h2" first, then "http/1.1") only for a listener whose
// connections speak HTTP/2 (server.http2); TlsEngine::alpn() then tells the connection which.
enum class AlpnPolicy { kHttp11Only, kH2AndHttp11 };

// The listener side: certificates, versions, ciphers, ALPN, SNI, resumption.
class TlsServerContext {
 public:
  // Builds the context from `config` (which must have certificate and private_key set).
  // `previous` (the context being replaced on reload, or nullptr) hands over its ticket keys, so
  // clients resume across a reload; the server-side session cache starts empty.
  static std::shared_ptr<TlsServerContext> load(const TlsConfig& config, std::string& error,
                                                const TlsServerContext* previous = nullptr,
                                                AlpnPolicy alpn = AlpnPolicy::kHttp11Only);
  ~TlsServerContext();
  TlsServerContext(const TlsServerContext&) = delete;
  TlsServerContext& operator=(const TlsServerContext&) = delete;

  // The default-certificate SSL_CTX; give it to TlsEngine. The servername callback switches a
  // connection to the matching [[tls.certificates]] context during the handshake.
  SSL_CTX* native() const { return ctx_; }

  // Retires the current ticket key now (it also happens every kTicketKeyRotation on its own).
  // Thread-safe. For tests and for an operator-triggered rotation.
  void rotate_ticket_keys();

 private:
  TlsServerContext() = default;
  SSL_CTX* ctx_ = nullptr;
  std::shared_ptr<TicketKeyRing> ticket_keys_;
};

// The upstream side: verification of the application's certificate, optional client certificate.
class TlsClientContext {
 public:
  // Builds the context from `config` (upstream.tls is assumed on). Verification uses ca_file, or
  // the system store when it is empty; with verify = false nothing is checked (testing only).
  static std::shared_ptr<TlsClientContext> load(const UpstreamConfig& config, std::string& error);
  ~TlsClientContext();
  TlsClientContext(const TlsClientContext&) = delete;
  TlsClientContext& operator=(const TlsClientContext&) = delete;

  SSL_CTX* native() const { return ctx_; }
  bool verify() const { return verify_; }
  // upstream.server_name; empty means "the host of the server address" (the caller knows it).
  const std::string& server_name() const { return server_name_; }

 private:
  TlsClientContext() = default;
  SSL_CTX* ctx_ = nullptr;
  bool verify_ = true;
  std::string server_name_;
};

// Drains this thread's OpenSSL error queue into one line ("reason (detail); reason"), or
// "unknown error" when it is empty.
std::string take_openssl_errors();

}  // namespace sg
