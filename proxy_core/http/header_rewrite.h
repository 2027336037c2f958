// Builds the head sent upstream from a parsed request, and the head sent to the client from a
// parsed response. Always from the parsed form, never by patching raw bytes, so what we forward
// is exactly what we validated. Pure logic: no I/O.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proxy_core/http/http_message.h"

namespace sg {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

// How a body travels on the outgoing side.
enum class BodyFraming {
  kNone,           // no body (or HEAD/204/304)
  kContentLength,  // forwarded with the same Content-Length
  kChunked,        // re-chunked piece by piece
  kUntilClose,     // close-delimited (HTTP/1.0 clients only)
};

// True for a header name the proxy consumes hop by hop (RFC 9110 §7.6.1) or must not forward.
bool is_hop_by_hop(std::string_view name);
// A header that tells the application about the client's address, scheme, host, port or URL
// prefix as some proxy saw them: Forwarded (RFC 7239), X-Forwarded-* (any), X-Real-IP,
// X-Client-IP, True-Client-IP, Front-End-Https, X-Url-Scheme. From a peer outside
// server.trusted_proxies they are removed (X-Forwarded-For/-Proto/-Host are then set by us).
bool is_forwarding_header(std::string_view name);
// Is `name` under the reserved prefix, comparing case-insensitively with '_' read as '-'?
// (CGI, PHP and WSGI map both to one variable, so X_Session_Id would shadow X-Session-Id.)
bool under_prefix(std::string_view name, std::string_view prefix);

struct UpstreamRequestOptions {
  std::string_view client_address;  // the TCP peer, textual
  bool peer_trusted = false;        // peer in server.trusted_proxies: keep its forwarding headers
  std::string_view scheme = "http";
  std::string_view header_prefix = "X-Session-";
  bool tunnel_websocket = false;  // forward Upgrade: websocket and Connection: upgrade
  BodyFraming framing = BodyFraming::kNone;
  uint64_t content_length = 0;
  // The Cookie value to forward instead of the client's (our cookie removed); `replace_cookie`
  // with an empty value drops the Cookie header.
  bool replace_cookie = false;
  std::string_view cookie_value;
  const HeaderList* injected = nullptr;  // trusted headers (X-Session-*), added last
  size_t injected_count = SIZE_MAX;      // how many of `injected` to use (default: all)
  size_t* removed_reserved = nullptr;    // if set, counts client headers under the prefix dropped
  // X-Request-Id to send; the client's own is always dropped (the caller passes it back here
  // when the peer is trusted). Empty: no X-Request-Id.
  std::string_view request_id;
  // The exchange's own headers under the prefix (<prefix>Csrf, <prefix>Signature), after
  // `injected`; null: none.
  const HeaderList* appended = nullptr;
};

// Appends the upstream request head (request line, headers, blank line) to `out`.
void build_upstream_request(const MessageHead& request, const UpstreamRequestOptions& options,
                            std::string& out);

struct ClientResponseOptions {
  std::string_view header_prefix = "X-Session-";
  std::string_view cookie_name;  // an upstream Set-Cookie for this name is dropped
  BodyFraming framing = BodyFraming::kNone;
  bool client_http11 = true;
  bool close = false;                 // announce Connection: close
  bool upgrade = false;               // a 101 for a tunnel: keep Connection/Upgrade
  bool force_no_store = false;        // our Set-Cookie is present: the response must not be cached
  const HeaderList* added = nullptr;  // our Set-Cookie, HSTS, ...
};

// Receives the fields of a client response one by one (client_response_fields).
class FieldSink {
 public:
  virtual void field(std::string_view name, std::string_view value) = 0;

 protected:
  ~FieldSink() = default;
};

// The fields of `response` the client may see, in order, then Cache-Control: no-store when
// force_no_store asks for it: hop-by-hop fields, the fields Connection names, everything under
// the prefix and the application's Set-Cookie for our cookie are left out. Not the framing
// (Transfer-Encoding, Connection) nor `added`. build_client_response writes them as HTTP/1.1;
// an HTTP/2 stream hands them to its codec.
void client_response_fields(const MessageHead& response, const ClientResponseOptions& options,
                            FieldSink& sink);

// Appends the client response head to `out`.
void build_client_response(const MessageHead& response, const ClientResponseOptions& options,
                           std::string& out);

// A short local response (errors, health, redirects) with a text body. `date`: the Date value
// (RFC 9110 §6.6.1: an origin server with a clock MUST send Date in 2xx-4xx; we send it always),
// from the loop's HttpDateCache.
inline constexpr std::string_view kPlainText = "text/plain; charset=utf-8";
void build_local_response(int status, std::string_view body, bool close, std::string_view date,
                          std::string& out, const HeaderList* extra = nullptr,
                          bool head_only = false, std::string_view content_type = kPlainText);
std::string_view status_reason(int status);

// Chunked transfer-coding (RFC 9112 §7.1) pieces.
void append_chunk_header(size_t length, std::string& out);
inline constexpr std::string_view kChunkTrailer = "\r\n";
inline constexpr std::string_view kLastChunk = "0\r\n\r\n";

}  // namespace sg
