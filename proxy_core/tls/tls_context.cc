#include "proxy_core/tls/tls_context.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <cstring>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "proxy_core/base/ascii.h"

namespace sg {

// ---- errors -------------------------------------------------------------------------------------

std::string take_openssl_errors() {
  std::string out;
  const char* data = nullptr;
  int flags = 0;
  while (unsigned long e = ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags)) {
    const char* reason = ERR_reason_error_string(e);
    std::string part = reason != nullptr ? reason : "error " + std::to_string(ERR_GET_REASON(e));
    if ((flags & ERR_TXT_STRING) != 0 && data != nullptr && *data != '\0') {
      part += " (";
      part += data;
      part += ')';
    }
    // The same reason often comes back from two layers (PEM, then SSL): say it once.
    if (out.find(part) != std::string::npos) continue;
    if (!out.empty()) out += "; ";
    out += part;
  }
  return out.empty() ? "unknown error" : out;
}

namespace {

std::string quoted(std::string_view s) {
  std::string out = "\"";
  out += s;
  out += '"';
  return out;
}

// ---- server names -------------------------------------------------------------------------------

// A host name as a certificate or SNI carries it: dot-separated non-empty labels of letters,
// digits, '-' and '_' (seen in the wild), no leading or trailing dot.
bool is_host_name(std::string_view s) {
  if (s.empty() || s.size() > 253 || s.front() == '.' || s.back() == '.') return false;
  size_t label = 0;
  for (char c : s) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    bool ok = is_ascii_alpha(c) || is_ascii_digit(c) || c == '-' || c == '_';
    if (!ok || ++label > 63) return false;
  }
  return true;
}

// "*.example.com" -> "example.com"; anything else -> empty.
std::string_view wildcard_suffix(std::string_view pattern) {
  if (pattern.size() < 3 || pattern[0] != '*' || pattern[1] != '.') return {};
  return pattern.substr(2);
}

std::string_view strip_trailing_dot(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  return name;
}

}  // namespace

bool tls_server_name_matches(std::string_view pattern, std::string_view name) {
  name = strip_trailing_dot(name);
  if (name.empty()) return false;
  if (std::string_view suffix = wildcard_suffix(pattern); !suffix.empty()) {
    size_t dot = name.find('.');
    // Exactly one label in place of '*' (RFC 6125 §6.4.3): the rest must equal the suffix.
    return dot != std::string_view::npos && dot > 0 && iequals(name.substr(dot + 1), suffix);
  }
  return iequals(pattern, name);
}

// ---- per-SSL_CTX state --------------------------------------------------------------------------

// Session-ticket keys. The ring is shared by every SSL_CTX of one server context (SNI contexts
// included) and handed from context to context across reloads. Worker threads issue and open
// tickets concurrently, hence the mutex; it is taken once per ticket, next to an HMAC and a
// handshake, so it is never the bottleneck.
struct TicketKey {
  unsigned char name[16];
  unsigned char aes_key[32];   // AES-256-CBC (the ticket format of RFC 5077 §4, as OpenSSL's own)
  unsigned char hmac_key[32];  // HMAC-SHA256 over the encrypted ticket
  std::chrono::steady_clock::time_point retired;  // time_point::max() for the current key
};

struct TicketKeyRing {
  std::mutex mu;
  std::vector<TicketKey> keys;  // keys[0] is the current (encrypting) key
  std::chrono::steady_clock::time_point current_since;
  EVP_CIPHER* cipher = nullptr;  // fetched once: implicit fetches per ticket cost a lookup

  ~TicketKeyRing() {
    OPENSSL_cleanse(keys.data(), keys.size() * sizeof(TicketKey));
    EVP_CIPHER_free(cipher);
  }

  bool init() {
    cipher = EVP_CIPHER_fetch(nullptr, "AES-256-CBC", nullptr);
    std::lock_guard lock(mu);
    return cipher != nullptr && rotate_locked(std::chrono::steady_clock::now());
  }

  bool rotate_locked(std::chrono::steady_clock::time_point now) {
    TicketKey key;
    if (RAND_bytes(key.name, sizeof key.name) != 1 ||
        RAND_priv_bytes(key.aes_key, sizeof key.aes_key) != 1 ||
        RAND_priv_bytes(key.hmac_key, sizeof key.hmac_key) != 1) {
      return false;
    }
    key.retired = std::chrono::steady_clock::time_point::max();
    if (!keys.empty()) keys.front().retired = now;
    keys.insert(keys.begin(), key);
    OPENSSL_cleanse(&key, sizeof key);
    current_since = now;
    // A retired key opens tickets for one session lifetime more, then it is forgotten.
    for (size_t i = keys.size(); i-- > 1;) {
      if (now - keys[i].retired >= kTlsSessionLifetime) {
        OPENSSL_cleanse(&keys[i], sizeof keys[i]);
        keys.erase(keys.begin() + static_cast<std::ptrdiff_t>(i));
      }
    }
    return true;
  }

  void maybe_rotate_locked() {
    auto now = std::chrono::steady_clock::now();
    if (now - current_since >= kTicketKeyRotation) rotate_locked(now);
  }

  bool current(TicketKey& out) {
    std::lock_guard lock(mu);
    maybe_rotate_locked();
    if (keys.empty()) return false;
    out = keys.front();
    return true;
  }

  // 0: unknown key; 1: the current key; 2: a retired key (the ticket should be renewed).
  int find(const unsigned char* name, TicketKey& out) {
    std::lock_guard lock(mu);
    maybe_rotate_locked();
    for (size_t i = 0; i < keys.size(); ++i) {
      if (std::memcmp(keys[i].name, name, sizeof keys[i].name) == 0) {
        out = keys[i];
        return i == 0 ? 1 : 2;
      }
    }
    return 0;
  }
};

namespace {

// [[tls.certificates]]: host name -> the SSL_CTX holding that certificate. Owns those contexts.
struct SniTable {
  std::unordered_map<std::string, SSL_CTX*> exact;     // lowercase host name
  std::unordered_map<std::string, SSL_CTX*> wildcard;  // lowercase suffix of "*.suffix"
  std::vector<SSL_CTX*> owned;

  ~SniTable() {
    for (SSL_CTX* ctx : owned)
      SSL_CTX_free(ctx);
  }

  SSL_CTX* find(std::string_view name) const {
    std::string key = ascii_lowercase(strip_trailing_dot(name));
    if (auto it = exact.find(key); it != exact.end()) return it->second;
    size_t dot = key.find('.');
    if (dot == std::string::npos || dot == 0) return nullptr;
    if (auto it = wildcard.find(key.substr(dot + 1)); it != wildcard.end()) return it->second;
    return nullptr;
  }
};

// Hung on each SSL_CTX as ex_data and freed with it, so that an SSL* (which holds a reference on
// its SSL_CTX) keeps alive everything the callbacks below read.
struct CtxExtra {
  std::shared_ptr<TicketKeyRing> ticket_keys;
  std::unique_ptr<SniTable> sni;  // on the default-certificate context only
};

void free_ctx_extra(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<CtxExtra*>(ptr);
}

int ctx_extra_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, free_ctx_extra);
  return index;
}

CtxExtra* ctx_extra(const SSL_CTX* ctx) {
  return static_cast<CtxExtra*>(SSL_CTX_get_ex_data(ctx, ctx_extra_index()));
}

// ---- OpenSSL callbacks --------------------------------------------------------------------------

// ALPN (RFC 7301): we speak HTTP/1.1 only. A client that offers it gets it; a client that offers
// only h2 (or anything else) gets no ALPN answer and may go on with HTTP/1.1 or leave.
int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                unsigned int inlen, void*) {
  static constexpr unsigned char kHttp11[] = {'h', 't', 't', 'p', '/', '1', '.', '1'};
  for (unsigned int i = 0; i < inlen;) {
    unsigned int len = in[i];
    if (len == 0 || i + 1 + len > inlen) break;  // malformed list: ignore the rest
    if (len == sizeof kHttp11 && std::memcmp(in + i + 1, kHttp11, len) == 0) {
      *out = in + i + 1;
      *outlen = static_cast<unsigned char>(len);
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + len;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

// SNI (RFC 6066 §3): switch the connection to the certificate for the asked name. No match, or
// no name at all, keeps the default certificate; we never abort the handshake over SNI.
int select_certificate(SSL* ssl, int* alert, void* arg) {
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name == nullptr) return SSL_TLSEXT_ERR_OK;
  SSL_CTX* target = static_cast<const SniTable*>(arg)->find(name);
  if (target != nullptr && SSL_set_SSL_CTX(ssl, target) == nullptr) {
    *alert = SSL_AD_INTERNAL_ERROR;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  return SSL_TLSEXT_ERR_OK;
}

int ticket_key_callback(SSL* ssl, unsigned char key_name[16], unsigned char* iv,
                        EVP_CIPHER_CTX* cipher_ctx, EVP_MAC_CTX* mac_ctx, int encrypt) {
  CtxExtra* extra = ctx_extra(SSL_get_SSL_CTX(ssl));
  if (extra == nullptr || !extra->ticket_keys) return 0;  // no ticket / full handshake
  TicketKeyRing& ring = *extra->ticket_keys;
  TicketKey key;
  int result = 0;
  if (encrypt) {
    // 0 = issue no ticket this time; the handshake itself goes on.
    if (!ring.current(key)) return 0;
    if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(ring.cipher)) != 1) return 0;
    std::memcpy(key_name, key.name, sizeof key.name);
    result = 1;
  } else {
    result = ring.find(key_name, key);  // 0: unknown key -> full handshake
    if (result == 0) return 0;
    // TLS 1.3 clients (OpenSSL's among them) use a ticket once (RFC 8446 §8 recommends it);
    // without a fresh ticket after each resumption, every other reconnect would be a full
    // handshake. 2 = "valid, renew it", as nginx does.
    if (SSL_version(ssl) == TLS1_3_VERSION) result = 2;
  }
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key.hmac_key, sizeof key.hmac_key),
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, const_cast<char*>("SHA256"), 0),
      OSSL_PARAM_construct_end()};
  bool ok = EVP_MAC_CTX_set_params(mac_ctx, params) == 1 &&
            EVP_CipherInit_ex(cipher_ctx, ring.cipher, nullptr, key.aes_key, iv, encrypt) == 1;
  OPENSSL_cleanse(&key, sizeof key);
  if (!ok) return -1;
  return result;
}

// Never prompt on the terminal for a key passphrase (OpenSSL's default): an encrypted key is a
// load error instead of a gateway hung at start or on SIGHUP.
int no_passphrase(char*, int, int, void*) {
  return 0;
}

bool load_key_pair(SSL_CTX* ctx, const std::string& prefix, const std::string& certificate,
                   const std::string& private_key, std::string& error) {
  ERR_clear_error();
  if (SSL_CTX_use_certificate_chain_file(ctx, certificate.c_str()) != 1) {
    error =
        prefix + "certificate: cannot load " + quoted(certificate) + ": " + take_openssl_errors();
    return false;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, private_key.c_str(), SSL_FILETYPE_PEM) != 1) {
    // OpenSSL checks the pair while loading the key; say so in words an operator acts on.
    bool mismatch = ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH;
    error =
        prefix + "private_key: " +
        (mismatch ? quoted(private_key) + " does not match the certificate " + quoted(certificate)
                  : "cannot load " + quoted(private_key)) +
        ": " + take_openssl_errors();
    return false;
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    error = prefix + "private_key: " + quoted(private_key) + " does not match the certificate " +
            quoted(certificate) + ": " + take_openssl_errors();
    return false;
  }
  return true;
}

struct CtxDeleter {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
using CtxPtr = std::unique_ptr<SSL_CTX, CtxDeleter>;

// One server SSL_CTX: every setting but the certificate is the same for the default context and
// the SNI ones, since a connection switched by SNI keeps some settings of the first context and
// takes others (ALPN, certificate) from the new one.
CtxPtr make_server_ctx(const TlsConfig& config, int min_version,
                       const std::shared_ptr<TicketKeyRing>& keys, const std::string& prefix,
                       const std::string& certificate, const std::string& private_key,
                       std::string& error) {
  ERR_clear_error();
  CtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) {
    error = "tls: cannot create an SSL context: " + take_openssl_errors();
    return nullptr;
  }
  SSL_CTX* c = ctx.get();
  // Level 2: RSA/DH keys >= 2048 bits, ECC >= 224, no SHA-1 signatures. A weak certificate is
  // refused at load time rather than served.
  SSL_CTX_set_security_level(c, 2);
  SSL_CTX_set_min_proto_version(c, min_version);
  SSL_CTX_set_max_proto_version(c, 0);  // the highest this OpenSSL has: TLS 1.3
  // No renegotiation (a client-initiated DoS vector, and gone in TLS 1.3); no compression (CRIME).
  SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  // Gives the 34 KiB of record buffers back while a keep-alive connection idles (nginx does
  // the same): thousands of idle clients would otherwise pin hundreds of MiB.
  SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS);
  const std::string& ciphers = config.ciphers.empty() ? kDefaultTls12Ciphers : config.ciphers;
  if (SSL_CTX_set_cipher_list(c, ciphers.c_str()) != 1) {
    error = "tls.ciphers: no usable TLS 1.2 cipher in " + quoted(ciphers) + ": " +
            take_openssl_errors();
    return nullptr;
  }
  SSL_CTX_set_alpn_select_cb(c, select_alpn, nullptr);

  // Resumption: stateless tickets (TLS 1.2 and 1.3) under our rotating keys, plus OpenSSL's
  // internal cache for TLS 1.2 clients that resume by session ID.
  static constexpr unsigned char kSessionIdContext[] = "sessiongate";
  SSL_CTX_set_session_id_context(c, kSessionIdContext, sizeof kSessionIdContext - 1);
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_SERVER);
  SSL_CTX_sess_set_cache_size(c, kTlsSessionCacheSize);
  SSL_CTX_set_timeout(c, static_cast<long>(kTlsSessionLifetime.count()));
  SSL_CTX_set_tlsext_ticket_key_evp_cb(c, ticket_key_callback);

  SSL_CTX_set_default_passwd_cb(c, no_passphrase);
  if (!load_key_pair(c, prefix, certificate, private_key, error)) return nullptr;

  auto* extra = new CtxExtra{keys, nullptr};
  if (SSL_CTX_set_ex_data(c, ctx_extra_index(), extra) != 1) {
    delete extra;
    error = "tls: cannot attach state to the SSL context: " + take_openssl_errors();
    return nullptr;
  }
  return ctx;
}

}  // namespace

// ---- TlsServerContext ---------------------------------------------------------------------------

std::shared_ptr<TlsServerContext> TlsServerContext::load(const TlsConfig& config,
                                                         std::string& error,
                                                         const TlsServerContext* previous) {
  int min_version = 0;
  if (config.min_version == "1.2") {
    min_version = TLS1_2_VERSION;
  } else if (config.min_version == "1.3") {
    min_version = TLS1_3_VERSION;
  } else {
    error = "tls.min_version: expected \"1.2\" or \"1.3\", got " + quoted(config.min_version);
    return nullptr;
  }
  if (config.certificate.empty() || config.private_key.empty()) {
    error = "tls: certificate and private_key are both required";
    return nullptr;
  }

  std::shared_ptr<TicketKeyRing> keys;
  if (previous != nullptr && previous->ticket_keys_) {
    keys = previous->ticket_keys_;
  } else {
    keys = std::make_shared<TicketKeyRing>();
    if (!keys->init()) {
      error = "tls: cannot make session ticket keys: " + take_openssl_errors();
      return nullptr;
    }
  }

  CtxPtr ctx = make_server_ctx(config, min_version, keys, "tls.", config.certificate,
                               config.private_key, error);
  if (!ctx) return nullptr;

  auto sni = std::make_unique<SniTable>();
  for (size_t i = 0; i < config.certificates.size(); ++i) {
    const TlsCertificate& entry = config.certificates[i];
    const std::string prefix = "tls.certificates[" + std::to_string(i) + "].";
    CtxPtr named = make_server_ctx(config, min_version, keys, prefix, entry.certificate,
                                   entry.private_key, error);
    if (!named) return nullptr;
    sni->owned.push_back(named.get());
    SSL_CTX* target = named.release();
    for (const std::string& name : entry.server_names) {
      std::string_view suffix = wildcard_suffix(name);
      bool wildcard = !suffix.empty();
      if (!is_host_name(wildcard ? suffix : std::string_view(name))) {
        error = prefix + "server_names: " + quoted(name) +
                " is neither a host name nor a \"*.domain\" pattern";
        return nullptr;
      }
      // First entry wins for a name listed twice (config validation reports duplicates).
      if (wildcard) {
        sni->wildcard.emplace(ascii_lowercase(suffix), target);
      } else {
        sni->exact.emplace(ascii_lowercase(name), target);
      }
    }
  }
  if (!sni->owned.empty()) {
    SSL_CTX_set_tlsext_servername_callback(ctx.get(), select_certificate);
    SSL_CTX_set_tlsext_servername_arg(ctx.get(), sni.get());
    ctx_extra(ctx.get())->sni = std::move(sni);
  }

  std::shared_ptr<TlsServerContext> out(new TlsServerContext());
  out->ctx_ = ctx.release();
  out->ticket_keys_ = std::move(keys);
  return out;
}

TlsServerContext::~TlsServerContext() {
  SSL_CTX_free(ctx_);
}

void TlsServerContext::rotate_ticket_keys() {
  std::lock_guard lock(ticket_keys_->mu);
  ticket_keys_->rotate_locked(std::chrono::steady_clock::now());
}

// ---- TlsClientContext ---------------------------------------------------------------------------

std::shared_ptr<TlsClientContext> TlsClientContext::load(const UpstreamConfig& config,
                                                         std::string& error) {
  ERR_clear_error();
  CtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) {
    error = "upstream: cannot create an SSL context: " + take_openssl_errors();
    return nullptr;
  }
  SSL_CTX* c = ctx.get();
  // Cipher list and security level stay OpenSSL's (and the system's) defaults: the application
  // behind us may be old, the server picks, and the defaults already exclude the broken suites.
  SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
  SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS);
  static constexpr unsigned char kAlpn[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  if (SSL_CTX_set_alpn_protos(c, kAlpn, sizeof kAlpn) != 0) {  // 0 is success here
    error = "upstream: cannot set ALPN: " + take_openssl_errors();
    return nullptr;
  }
  SSL_CTX_set_default_passwd_cb(c, no_passphrase);

  SSL_CTX_set_verify(c, config.verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
  if (!config.ca_file.empty()) {
    if (SSL_CTX_load_verify_file(c, config.ca_file.c_str()) != 1) {
      error =
          "upstream.ca_file: cannot load " + quoted(config.ca_file) + ": " + take_openssl_errors();
      return nullptr;
    }
  } else if (config.verify && SSL_CTX_set_default_verify_paths(c) != 1) {
    error = "upstream: cannot load the system CA store: " + take_openssl_errors();
    return nullptr;
  }
  if (!config.certificate.empty() || !config.private_key.empty()) {
    if (!load_key_pair(c, "upstream.", config.certificate, config.private_key, error)) {
      return nullptr;
    }
  }

  std::shared_ptr<TlsClientContext> out(new TlsClientContext());
  out->ctx_ = ctx.release();
  out->verify_ = config.verify;
  out->server_name_ = config.server_name;
  return out;
}

TlsClientContext::~TlsClientContext() {
  SSL_CTX_free(ctx_);
}

}  // namespace sg
