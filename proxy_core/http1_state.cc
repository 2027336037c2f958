// Http1StatePool. See http1_state.h.
#include "proxy_core/http1_state.h"

#include "proxy_core/exchange.h"

namespace sg {

Http1State::Http1State(HttpParser::Limits limits) : parser(HttpParser::Kind::kRequest, limits) {
  parser.set_body_sink([this](const char* data, size_t len) {
    if (body_to != nullptr) body_to->on_request_body(data, len);
  });
}

Http1State* Http1StatePool::acquire(HttpParser::Limits limits) {
  bound_.taken();
  if (free_.empty()) return new Http1State(limits);
  Http1State* s = free_.back().release();
  free_.pop_back();
  s->parser.set_limits(limits);
  return s;
}

void Http1StatePool::give_back(Http1State* s) {
  // A parser after a message that ends its connection (HTTP/1.0 without keep-alive, Connection:
  // close) would refuse the next connection's request: it starts over.
  // (head().keep_alive is llhttp's verdict on the last head: one load instead of a call.)
  if (!s->parser.head().keep_alive) s->parser.reset();
  s->body_to = nullptr;
  bound_.given_back();
  if (free_.size() >= bound_.limit()) {
    delete s;
    return;
  }
  free_.emplace_back(s);
}

void Http1StatePool::give_back_dirty(Http1State* s) {
  s->parser.reset();
  s->pending.clear();
  s->corked.clear();
  s->corked_bytes.clear();
  s->body_pipe.reset();  // the connection returned it to its worker's pool first, when it could
  give_back(s);
}

}  // namespace sg
