// Http1State: what an HTTP/1.1 client connection needs only while a request is in progress (the
// request parser and its head, the bytes read but not parsed yet, the scratch for response heads
// and chunk framing, the corked writes), and Http1StatePool, the per-worker free list it comes
// from. An idle keep-alive connection holds none of it (issue 17: memory per idle connection).
//
// Contract
// - Threading: one worker's loop thread.
// - Ownership: the pool owns the free states; a ClientConnection borrows one from the first byte
//   of a request (or of the h2c preface check) until the connection is idle again with nothing
//   unparsed, or closes. Reuse keeps every capacity (header vectors, strings): a busy keep-alive
//   path allocates nothing per request, and the pool (bounded) holds the warm buffers instead of
//   thousands of idle connections. The bound is `max_free`, or above it as many as were in use
//   at once lately (base/free_list_bound.h): 200 requests in progress at once cost no
//   allocation either. The most recently given back is handed out first (warm in the cache).
// - A state is given back either clean (give_back): its parser between two messages of a
//   keep-alive connection, `pending` empty, nothing corked; or dirty (give_back_dirty): in any
//   state, reset here. A state acquired is always ready for a new message.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "proxy_core/base/free_list_bound.h"
#include "proxy_core/http/http_parser.h"
#include "proxy_core/net/splice_pipe.h"

namespace sg {

class Exchange;

struct Http1State {
  // The parser's body sink goes to `body_to`, set once here (a sink set per request would cost
  // a std::function assignment on the keep-alive path).
  explicit Http1State(HttpParser::Limits limits);

  // A write held by a cork: stable bytes (`external`), or `offset` into corked_bytes.
  struct CorkedPiece {
    const char* external;
    size_t offset;
    size_t length;
  };

  HttpParser parser;
  Exchange* body_to = nullptr;  // the borrowing connection's exchange: request body bytes
  std::string pending;  // client bytes read but not yet parsed (pipelining, upstream connect)
  std::string out;      // scratch for heads and chunk framing
  std::vector<CorkedPiece> corked;
  std::string corked_bytes;
  // A spliced request body (client_splice.cc): the pipe while the rest of a Content-Length body
  // moves client socket -> pipe -> upstream socket, around the parser. Null otherwise.
  std::unique_ptr<SplicePipe> body_pipe;
};

// A bounded free list of Http1State. Loop thread only.
class Http1StatePool {
 public:
  explicit Http1StatePool(size_t max_free = kMaxFree) : bound_(max_free) {}
  // A state ready for a new request, its parser under `limits`.
  Http1State* acquire(HttpParser::Limits limits);
  // Back between two requests of a keep-alive connection: see the contract.
  void give_back(Http1State* s);
  // Back from anywhere (a closing connection, a parser that saw an error or a last message).
  void give_back_dirty(Http1State* s);
  size_t free_count() const { return free_.size(); }

  static constexpr size_t kMaxFree = 64;  // the floor: more when the load used more at once

 private:
  FreeListBound bound_;
  std::vector<std::unique_ptr<Http1State>> free_;
};

}  // namespace sg
