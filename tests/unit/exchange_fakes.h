// Fakes to run an Exchange without a Worker, sockets or a loop (exchange.h's test seams): the
// worker's services (with a clock the test sets), an upstream source and its channels, a
// downstream that records what the exchange asked of it, and ExchangeRig, one exchange on them.
// Used by tests/unit/exchange_*_test.cc and the client-side fuzz targets.
#pragma once

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "proxy_core/exchange.h"
#include "proxy_core/http/http_parser.h"
#include "tests/unit/fake_session_store.h"

namespace sg::testing {

// One upstream connection: records what the exchange writes, and plays the application's answer
// through the UpstreamUser calls a real connection would make.
class FakeChannel final : public UpstreamChannel {
 public:
  explicit FakeChannel(std::string server, bool reused)
      : server_(std::move(server)), reused_(reused) {}

  void attach(UpstreamUser* user) override { user_ = user; }
  int write(const uv_buf_t* bufs, unsigned count) override {
    if (write_error != 0) return write_error;
    for (unsigned i = 0; i < count; ++i)
      written.append(bufs[i].base, bufs[i].len);
    return 0;
  }
  int write(std::string_view data) override {
    uv_buf_t b = uv_buf_init(const_cast<char*>(data.data()), static_cast<unsigned>(data.size()));
    return write(&b, 1);
  }
  size_t queued() const override { return queued_bytes; }
  void pause_reading() override { paused = true; }
  void resume_reading() override { paused = false; }
  void start_timer(Millis) override { timer_on = true; }
  void stop_timer() override { timer_on = false; }
  void close() override { closed = true; }
  void fail(int status) override {
    closed = true;
    if (user_ != nullptr) user_->on_upstream_closed(this, status);
  }
  void begin_response(bool head_request, Millis) override {
    ++responses_begun;
    head_request_ = head_request;
  }
  void resume_response() override {
    ++resumes;
    if (held_body.empty() && !complete_after_resume) return;
    UpstreamUser* u = user_;
    u->on_upstream_read_begin();
    if (!held_body.empty()) u->on_upstream_body(this, held_body.data(), held_body.size());
    if (complete_after_resume) u->on_upstream_complete(this);
    u->on_upstream_read_end();
  }
  void start_tunnel() override { tunnel = true; }
  bool reusable() const override { return reusable_after && !tunnel && !closed; }
  const MessageHead& response_head() const override { return head; }
  const std::string& server() const override { return server_; }
  bool reused() const override { return reused_; }
  bool closing() const override { return closed; }

  // ---- the application's side, as the test plays it ----
  UpstreamUser* user() const { return user_; }
  void connected(int status = 0) { user_->on_upstream_connected(this, status); }
  // One read holding a head, optionally body bytes and the end. False: the head is held (the
  // directives wait for the store); the body and end follow on resume_response().
  bool respond(int status, std::vector<HeaderField> fields, std::string body, bool complete) {
    head = MessageHead{};
    head.status = status;
    head.headers = std::move(fields);
    head.header_count = head.headers.size();
    head.has_content_length = true;
    head.content_length = body.size();
    UpstreamUser* u = user_;
    u->on_upstream_read_begin();
    bool went_on = u->on_upstream_head(this, head);
    if (!went_on) {
      held_body = std::move(body);
      complete_after_resume = complete;
    } else {
      if (!body.empty()) u->on_upstream_body(this, body.data(), body.size());
      if (complete) u->on_upstream_complete(this);
    }
    u->on_upstream_read_end();
    return went_on;
  }
  void body(std::string_view bytes) {
    UpstreamUser* u = user_;
    u->on_upstream_read_begin();
    u->on_upstream_body(this, bytes.data(), bytes.size());
    u->on_upstream_read_end();
  }
  void complete() {
    UpstreamUser* u = user_;
    u->on_upstream_read_begin();
    u->on_upstream_complete(this);
    u->on_upstream_read_end();
  }

  std::string written;
  size_t queued_bytes = 0;
  int write_error = 0;
  bool paused = false, timer_on = false, closed = false, tunnel = false;
  bool reusable_after = true;
  int responses_begun = 0, resumes = 0;
  MessageHead head;
  std::string held_body;
  bool complete_after_resume = false;

 private:
  UpstreamUser* user_ = nullptr;
  std::string server_;
  bool reused_;
  bool head_request_ = false;
};

class FakeUpstreams final : public UpstreamSource {
 public:
  const std::string& pick_server(const std::vector<std::string>& servers) override {
    return servers.front();
  }
  UpstreamChannel* take_idle(const std::string&) override {
    if (idle.empty()) return nullptr;
    FakeChannel* c = idle.back();
    idle.pop_back();
    return c;
  }
  UpstreamChannel* open(const std::string& server, const UpstreamConfig&, HttpParser::Limits,
                        UpstreamUser* user, bool) override {
    if (refuse_open) return nullptr;
    channels.push_back(std::make_unique<FakeChannel>(server, false));
    channels.back()->attach(user);
    return channels.back().get();
  }
  void put_idle(UpstreamChannel* c, Millis, size_t) override {
    returned.push_back(static_cast<FakeChannel*>(c));
  }
  void mark_refused(const std::string&) override { ++refused; }

  // A pooled connection (reused() true) the next take_idle lends.
  FakeChannel* add_idle() {
    channels.push_back(std::make_unique<FakeChannel>("127.0.0.1:9000", true));
    idle.push_back(channels.back().get());
    return channels.back().get();
  }
  FakeChannel* last() { return channels.empty() ? nullptr : channels.back().get(); }

  std::vector<std::unique_ptr<FakeChannel>> channels;
  std::vector<FakeChannel*> idle;
  std::vector<FakeChannel*> returned;
  bool refuse_open = false;
  int refused = 0;
};

class FakeServices final : public ExchangeServices {
 public:
  FakeServices() : config_(std::make_shared<Config>()) {}
  explicit FakeServices(Config c) : config_(std::make_shared<Config>(std::move(c))) {}

  const std::shared_ptr<const Config>& config() const override { return config_; }
  const std::shared_ptr<const PolicyKeys>& policy_keys() const override { return keys_; }
  SessionStore* store() const override { return store_; }
  WorkerMetrics& metrics() override { return metrics_; }
  GatewayState& gateway_state() override { return state_; }
  UpstreamSource& upstreams() override { return upstreams_; }
  void next_request_id(std::string& out) override { out = "req-" + std::to_string(++ids_); }
  std::string_view http_date() override { return "Thu, 01 Jan 2026 00:00:00 GMT"; }
  SessionWatch* session_watch() override { return &watch_; }
  int64_t now_ms() override { return now; }

  void set_config(Config c) { config_ = std::make_shared<Config>(std::move(c)); }
  void set_keys(std::shared_ptr<const PolicyKeys> k) { keys_ = std::move(k); }
  void set_store(SessionStore* s) { store_ = s; }

  FakeUpstreams upstreams_;
  WorkerMetrics metrics_;
  GatewayState state_;
  SessionWatch watch_;
  int64_t now = 1'000'000;  // now_ms(): the test moves it

 private:
  std::shared_ptr<const Config> config_;
  std::shared_ptr<const PolicyKeys> keys_;
  SessionStore* store_ = nullptr;
  int ids_ = 0;
};

// Records every call. deliver_request_body only notes the request: the test (or fuzz target)
// feeds the body itself, as a parser would.
class FakeDownstream final : public Downstream {
 public:
  struct Head {
    int status = 0;
    bool has_body = false, upgrade = false, close = false, force_no_store = false;
    HeaderList fields;  // the application's fields, then extra
  };
  struct Local {
    int status = 0;
    std::string body;
    HeaderList extra;
    bool close = false;
  };

  const ClientFacts& client() const override { return facts; }
  bool draining() const override { return draining_; }
  void start_response(const ResponseHead& h) override {
    Head r;
    r.status = h.upstream->status;
    r.has_body = h.has_body;
    r.upgrade = h.upgrade;
    r.close = h.close;
    r.force_no_store = h.force_no_store;
    for (size_t i = 0; i < h.upstream->header_count; ++i)
      r.fields.emplace_back(h.upstream->headers[i].name, h.upstream->headers[i].value);
    if (h.extra != nullptr) r.fields.insert(r.fields.end(), h.extra->begin(), h.extra->end());
    heads.push_back(std::move(r));
    events.push_back("head");
  }
  void send_body(const char* data, size_t len, bool) override { body.append(data, len); }
  void end_response() override {
    ++ends;
    events.push_back("end");
  }
  void send_local(const LocalResponse& r) override {
    Local l{r.status, std::string(r.body), r.extra ? *r.extra : HeaderList{}, r.close};
    locals.push_back(std::move(l));
    events.push_back("local");
  }
  void send_continue() override { ++continues; }
  void abort() override {
    ++aborts;
    events.push_back("abort");
  }
  void cancel() override {
    ++cancels;
    events.push_back("cancel");
  }
  void deliver_request_body() override { ++deliveries; }
  void request_flow_changed() override { ++flow_changes; }
  uint64_t request_rest_bound() const override { return rest_bound; }
  void set_client_timer(ClientTimer t) override { timer = t; }
  void touch_client_timer() override { ++touches; }
  void cork() override { ++cork_depth; }
  void uncork() override { --cork_depth; }
  void finish(bool keep_alive) override {
    finished.push_back(keep_alive);
    events.push_back(keep_alive ? "finish keep" : "finish close");
  }
  void start_tunnel() override { ++tunnels; }

  ClientFacts facts{"192.0.2.7", false, false, false, true};
  bool draining_ = false;
  uint64_t rest_bound = 0;  // 0: as HTTP/2, an early response closes (Downstream's default)
  std::vector<Head> heads;
  std::vector<Local> locals;
  std::vector<bool> finished;
  std::vector<std::string> events;
  std::string body;
  int ends = 0, continues = 0, aborts = 0, cancels = 0, deliveries = 0, flow_changes = 0;
  int touches = 0;
  int cork_depth = 0, tunnels = 0;
  ClientTimer timer = ClientTimer::kNone;
};

// A request head parsed by the real parser from its wire form (method ids, keep-alive, framing).
class ParsedRequest {
 public:
  explicit ParsedRequest(std::string wire)
      : wire_(std::move(wire)), parser_(HttpParser::Kind::kRequest, {8192, 100, 4096}) {
    const char* d = wire_.data();
    size_t n = wire_.size();
    event_ = parser_.step(d, n);
    rest_.assign(d, n);
  }
  MessageHead& head() { return parser_.head(); }
  bool complete() const { return event_ == HttpParser::Event::kHeadDone; }
  bool ok() const {
    return event_ == HttpParser::Event::kHead || event_ == HttpParser::Event::kHeadDone ||
           event_ == HttpParser::Event::kUpgrade;
  }
  const std::string& rest() const { return rest_; }  // what followed the head (a body)

 private:
  std::string wire_;
  HttpParser parser_;
  HttpParser::Event event_ = HttpParser::Event::kNeedMore;
  std::string rest_;
};

// A store whose destroy answers only when the test says (a Redis store under a directive).
class SlowDestroyStore final : public FakeSessionStore {
 public:
  void destroy(const TokenHash& key, DoneCallback done) override {
    pending = [this, key, done = std::move(done)]() mutable {
      FakeSessionStore::destroy(key, std::move(done));
    };
  }
  std::function<void()> pending;
};

// One exchange on fakes, with helpers to play a request (tests/unit/exchange_*_test.cc).
struct ExchangeRig {
  explicit ExchangeRig(Config c = Config{}) : services(std::move(c)), exchange(&services) {
    services.set_store(&store);
  }
  // `wire` must parse (a test's own literal): a test bug otherwise, reported as an exception.
  void request(const std::string& wire) {
    req = std::make_unique<ParsedRequest>(wire);
    if (!req->ok()) throw std::invalid_argument("the test's request does not parse: " + wire);
    exchange.begin(&down);
    exchange.on_request_head(req->head(), req->complete());
  }
  FakeChannel* upstream() { return services.upstreams_.last(); }

  FakeSessionStore store;
  FakeServices services;
  FakeDownstream down;
  Exchange exchange;
  std::unique_ptr<ParsedRequest> req;
};

}  // namespace sg::testing
