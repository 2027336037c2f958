#include "proxy_core/http/response_reader.h"

namespace sg {

ResponseReader::ResponseReader(Events* events, HttpParser::Limits limits)
    : events_(events), parser_(HttpParser::Kind::kResponse, limits) {
  parser_.set_body_sink([this](const char* data, size_t len) { events_->on_body(data, len); });
}

void ResponseReader::begin(bool head_request) {
  parser_.reset();
  parser_.set_expect_no_body(head_request);
  head_taken_ = held_ = held_complete_ = done_ = dirty_ = false;
  held_rest_.clear();
}

size_t ResponseReader::feed(const char* data, size_t len) {
  if (done_) {
    if (len > 0) dirty_ = true;
    return 0;
  }
  if (held_) {
    held_rest_.append(data, len);  // the receiver has not resumed yet
    return len;
  }
  const size_t given = len;
  while (len > 0 && events_->still_reading()) {
    HttpParser::Event ev = parser_.step(data, len);
    // The body went to the receiver during step(): it may have given the connection up.
    if (ev != HttpParser::Event::kNeedMore && !events_->still_reading()) return given - len;
    switch (ev) {
      case HttpParser::Event::kNeedMore:
        break;
      case HttpParser::Event::kHead:
      case HttpParser::Event::kHeadDone:
        if (parser_.head().status < 200) {
          parser_.resume();  // 1xx: the gateway answers Expect itself
          break;
        }
        if (!take_head(ev, data, len)) return given;
        if (ev == HttpParser::Event::kHeadDone) {
          complete(len);
          return given - len;
        }
        break;
      case HttpParser::Event::kMessageDone:
        parser_.resume();
        complete(len);
        return given - len;
      case HttpParser::Event::kUpgrade:  // only a 101 upgrades a response
        events_->on_upgrade(parser_.head(), data, len);
        return given;
      case HttpParser::Event::kError:
        events_->on_bad_response(parser_.error_reason());
        return given;
    }
  }
  return given - len;
}

// True when the receiver took the head and parsing goes on.
bool ResponseReader::take_head(HttpParser::Event ev, const char* rest, size_t len) {
  held_complete_ = ev == HttpParser::Event::kHeadDone;
  if (!events_->on_head(parser_.head())) {
    if (events_->still_reading()) {
      held_ = true;
      held_rest_.assign(rest, len);
      events_->hold_reading(true);
    }
    return false;
  }
  if (!events_->still_reading()) return false;
  head_taken_ = true;
  parser_.resume();
  return true;
}

void ResponseReader::resume() {
  if (!held_) return;
  held_ = false;
  head_taken_ = true;
  parser_.resume();
  std::string rest;
  rest.swap(held_rest_);
  if (held_complete_) {
    complete(rest.size());
    return;
  }
  events_->hold_reading(false);
  if (!rest.empty()) feed(rest.data(), rest.size());
}

void ResponseReader::skip_body(uint64_t n) {
  if (raw_body_left() == 0) return;
  parser_.skip_content(n);
  if (parser_.content_left() > 0) return;
  const char* none = "";
  size_t len = 0;
  if (parser_.step(none, len) != HttpParser::Event::kMessageDone) {
    events_->on_bad_response("response body did not end after its Content-Length");
    return;
  }
  parser_.resume();
  complete(0);
}

void ResponseReader::complete(size_t unparsed) {
  done_ = true;
  if (unparsed > 0) dirty_ = true;  // the upstream is out of step with us
  events_->on_complete();
}

bool ResponseReader::finish_at_close() {
  if (!head_taken_ || held_ || !parser_.body_until_eof()) return false;
  return parser_.finish() == HttpParser::Event::kMessageDone;
}

}  // namespace sg
