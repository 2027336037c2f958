#include "proxy_core/tls/tls_engine.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "proxy_core/net/host_port.h"

namespace sg {

TlsEngine::TlsEngine(const TlsServerContext& context) {
  init(context.native(), TlsRole::kServer);
}

TlsEngine::TlsEngine(const TlsClientContext& context, std::string_view host) : host_(host) {
  init(context.native(), TlsRole::kClient);
}

TlsEngine::TlsEngine(SSL_CTX* context, TlsRole role, std::string_view host) : host_(host) {
  init(context, role);
}

TlsEngine::~TlsEngine() {
  // OpenSSL treats an SSL freed without close_notify as a broken connection and marks its session
  // not resumable (ssl_clear_bad_session), for the client's saved session and the server's cache
  // alike. A connection ended by a timeout, a keep-alive close or a peer's plain EOF is not
  // broken; one that failed was already purged when the fatal alert went out.
  if (ssl_ != nullptr && !failed_)
    SSL_set_shutdown(ssl_, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
  SSL_free(ssl_);
}

void TlsEngine::init(SSL_CTX* context, TlsRole role) {
  role_ = role;
  ERR_clear_error();
  ssl_ = context != nullptr ? SSL_new(context) : nullptr;
  BIO* bio = bio_.make_bio();
  if (ssl_ == nullptr || bio == nullptr) {
    BIO_free(bio);
    SSL_free(ssl_);
    ssl_ = nullptr;
    failed_ = true;
    error_ = "cannot create a TLS connection: " + take_openssl_errors();
    return;
  }
  SSL_set_bio(ssl_, bio, bio);  // one reference for both directions; ssl_ owns it from here
  if (role == TlsRole::kServer) {
    SSL_set_accept_state(ssl_);
  } else {
    SSL_set_connect_state(ssl_);
    set_peer_name();
  }
}

void TlsEngine::set_peer_name() {
  if (host_.empty()) return;
  const std::string host(unbracket_host(host_));
  unsigned char address[16];
  bool literal = inet_pton(AF_INET, host.c_str(), address) == 1 ||
                 inet_pton(AF_INET6, host.c_str(), address) == 1;
  bool ok = true;
  if (literal) {
    // No IP literals in SNI (RFC 6066 §3); the certificate must name the address (IP SAN).
    ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), host.c_str()) == 1;
  } else {
    SSL_set_hostflags(ssl_, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    ok =
        SSL_set_tlsext_host_name(ssl_, host.c_str()) == 1 && SSL_set1_host(ssl_, host.c_str()) == 1;
  }
  if (!ok) {
    failed_ = true;
    error_ = "cannot use \"" + host_ + "\" as the server name: " + take_openssl_errors();
  }
}

TlsStatus TlsEngine::start_handshake(std::string& net_out) {
  if (failed_) return TlsStatus::kError;
  if (role_ == TlsRole::kServer || handshake_done_) {
    return handshake_done_ ? TlsStatus::kOk : TlsStatus::kWantMore;
  }
  if (host_.empty() && (SSL_get_verify_mode(ssl_) & SSL_VERIFY_PEER) != 0) {
    failed_ = true;
    error_ = "no server name to verify the peer certificate against";
    return TlsStatus::kError;
  }
  ERR_clear_error();
  TlsBio::OutputTarget out(bio_, net_out);
  int r = SSL_do_handshake(ssl_);
  if (r == 1) {  // cannot happen before the server answered, but harmless
    handshake_done_ = true;
    return TlsStatus::kOk;
  }
  int err = SSL_get_error(ssl_, r);
  if (err == SSL_ERROR_WANT_READ) return TlsStatus::kWantMore;
  return fail(err, "handshake");
}

TlsStatus TlsEngine::feed(const char* data, size_t len, std::string& plain_out,
                          std::string& net_out) {
  if (failed_) return TlsStatus::kError;
  if (peer_closed_) return TlsStatus::kClosed;
  TlsStatus status;
  {
    TlsBio::OutputTarget out(bio_, net_out);  // flights, tickets, KeyUpdate replies, alerts
    TlsBio::InputWindow in(bio_, data, len);
    status = decrypt(plain_out);
    // Nothing is read after close_notify or a fatal error.
    if (status == TlsStatus::kClosed || status == TlsStatus::kError) bio_.discard_input();
  }
  if (bio_.input_lost()) {
    failed_ = true;
    error_ = "out of memory buffering TLS input";
    return TlsStatus::kError;
  }
  return status;
}

// Advances the handshake, then decrypts every complete record the input holds.
TlsStatus TlsEngine::decrypt(std::string& plain_out) {
  ERR_clear_error();
  if (!handshake_done_) {
    int r = SSL_do_handshake(ssl_);
    if (r != 1) {
      int err = SSL_get_error(ssl_, r);
      if (err == SSL_ERROR_WANT_READ) return TlsStatus::kWantMore;
      return fail(err, "handshake");  // net_out has the alert that tells the peer what was wrong
    }
    handshake_done_ = true;
  }

  // Every complete record now: the owner gets all the plaintext its read produced, so no
  // decrypted-but-undelivered bytes wait inside for a read callback that may never come.
  // Uninitialized on purpose: SSL_read_ex fills what it reports.
  char record[kTlsMaxPlaintextRecord];
  for (;;) {
    size_t n = 0;
    int r = SSL_read_ex(ssl_, record, sizeof record, &n);
    if (r == 1) {
      plain_out.append(record, n);
      continue;
    }
    int err = SSL_get_error(ssl_, r);
    if (err == SSL_ERROR_WANT_READ) return TlsStatus::kOk;
    if (err == SSL_ERROR_ZERO_RETURN) {
      peer_closed_ = true;
      return TlsStatus::kClosed;
    }
    return fail(err, "read");
  }
}

TlsStatus TlsEngine::encrypt(const char* data, size_t len, std::string& net_out) {
  if (failed_) return TlsStatus::kError;
  if (shutdown_sent_) {
    error_ = "write after TLS shutdown";
    return TlsStatus::kError;
  }
  if (!handshake_done_) return TlsStatus::kWantMore;
  TlsBio::OutputTarget out(bio_, net_out);
  if (len == 0) return TlsStatus::kOk;
  ERR_clear_error();
  size_t written = 0;
  // Without SSL_MODE_ENABLE_PARTIAL_WRITE, success means all of it became records, appended to
  // net_out as they were made; the BIO never pushes back, so there is no WANT_WRITE to handle.
  int r = SSL_write_ex(ssl_, data, len, &written);
  if (r != 1) return fail(SSL_get_error(ssl_, r), "write");
  return TlsStatus::kOk;
}

TlsStatus TlsEngine::shutdown(std::string& net_out) {
  if (failed_) return TlsStatus::kError;  // no close_notify after a fatal alert
  if (shutdown_sent_) return TlsStatus::kOk;
  shutdown_sent_ = true;
  if (!handshake_done_) return TlsStatus::kOk;  // no keys yet: nothing meaningful to send
  ERR_clear_error();
  TlsBio::OutputTarget out(bio_, net_out);
  int r = SSL_shutdown(ssl_);  // 0: ours sent, theirs not seen yet; 1: both
  if (r < 0) return fail(SSL_get_error(ssl_, r), "shutdown");
  return TlsStatus::kOk;
}

std::string_view TlsEngine::alpn() const {
  if (ssl_ == nullptr) return {};
  const unsigned char* data = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(ssl_, &data, &len);
  return data != nullptr ? std::string_view(reinterpret_cast<const char*>(data), len)
                         : std::string_view();
}

std::string_view TlsEngine::server_name() const {
  if (role_ == TlsRole::kClient) return host_;
  const char* name =
      ssl_ != nullptr ? SSL_get_servername(ssl_, TLSEXT_NAMETYPE_host_name) : nullptr;
  return name != nullptr ? std::string_view(name) : std::string_view();
}

bool TlsEngine::session_reused() const {
  return ssl_ != nullptr && SSL_session_reused(ssl_) == 1;
}

std::string_view TlsEngine::protocol() const {
  return ssl_ != nullptr ? std::string_view(SSL_get_version(ssl_)) : std::string_view();
}

std::string_view TlsEngine::cipher() const {
  const char* name = ssl_ != nullptr ? SSL_get_cipher_name(ssl_) : nullptr;
  return name != nullptr ? std::string_view(name) : std::string_view();
}

TlsSession TlsEngine::session() const {
  if (ssl_ == nullptr) return nullptr;
  TlsSession s(SSL_get1_session(ssl_));
  if (s && SSL_SESSION_is_resumable(s.get()) != 1) s.reset();
  return s;
}

bool TlsEngine::set_session(SSL_SESSION* session) {
  return ssl_ != nullptr && session != nullptr && SSL_set_session(ssl_, session) == 1;
}

TlsStatus TlsEngine::fail(int ssl_error, std::string_view during) {
  failed_ = true;
  error_.assign(during);
  error_ += ": ";
  // Only a verifying client's failed handshake is about the certificate: with verify off the
  // result is recorded but ignored, and later failures have other causes.
  long verify = SSL_get_verify_result(ssl_);
  if (role_ == TlsRole::kClient && !handshake_done_ &&
      (SSL_get_verify_mode(ssl_) & SSL_VERIFY_PEER) != 0 && verify != X509_V_OK) {
    // "certificate verify failed" alone does not say what to fix; the X509 reason does.
    error_ += "certificate verify failed: ";
    error_ += X509_verify_cert_error_string(verify);
    ERR_clear_error();
  } else if (ssl_error == SSL_ERROR_SSL) {
    error_ += take_openssl_errors();
  } else if (ssl_error == SSL_ERROR_SYSCALL) {
    error_ += "unexpected end of TLS input";
    ERR_clear_error();
  } else {
    error_ += "OpenSSL error " + std::to_string(ssl_error);
    ERR_clear_error();
  }
  return TlsStatus::kError;
}

}  // namespace sg
