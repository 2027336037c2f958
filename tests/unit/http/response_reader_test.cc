// ResponseReader without a socket: a recording receiver, responses fed as strings (whole and one
// byte at a time), checking what is reported, what is held and the reuse decision.
#include "proxy_core/http/response_reader.h"

#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

namespace sg {
namespace {

struct Recorder final : ResponseReader::Events {
  std::vector<std::string> events;
  bool hold_heads = false;
  bool give_up_on_head = false;
  bool give_up_on_body = false;
  bool reading = true;

  bool on_head(const MessageHead& head) override {
    events.push_back("head " + std::to_string(head.status));
    if (give_up_on_head) reading = false;
    return !hold_heads;
  }
  void on_body(const char* data, size_t len) override {
    if (give_up_on_body) reading = false;
    if (!events.empty() && events.back().rfind("body ", 0) == 0) {
      events.back().append(data, len);  // one entry however the body was cut
    } else {
      events.push_back("body " + std::string(data, len));
    }
  }
  void on_complete() override { events.push_back("complete"); }
  void on_upgrade(const MessageHead& head, const char* rest, size_t len) override {
    events.push_back("upgrade " + std::to_string(head.status) + " " + std::string(rest, len));
    reading = false;  // what follows is the tunnel's
  }
  void on_bad_response(const char*) override {
    events.push_back("bad");
    reading = false;  // the connection is given up
  }
  void hold_reading(bool held) override { events.push_back(held ? "hold" : "unhold"); }
  bool still_reading() const override { return reading; }
};

// A reader on a recording receiver, begun for a GET.
struct Setup {
  Recorder r;
  ResponseReader reader{&r, HttpParser::Limits{}};
  Setup() { reader.begin(false); }
  void feed(std::string_view wire) { reader.feed(wire.data(), wire.size()); }
};

// Feeds `wire` in one piece and one byte at a time; both must report the same events.
std::vector<std::string> run(std::string_view wire, bool head_request = false,
                             bool* reusable = nullptr, bool also_bytewise = true) {
  std::vector<std::string> whole;
  for (int bytewise = 0; bytewise < (also_bytewise ? 2 : 1); ++bytewise) {
    Recorder r;
    ResponseReader reader(&r, HttpParser::Limits{});
    reader.begin(head_request);
    if (bytewise == 0) {
      reader.feed(wire.data(), wire.size());
      whole = r.events;
      if (reusable != nullptr) *reusable = reader.reusable();
    } else {
      for (char c : wire)
        reader.feed(&c, 1);
      CHECK(r.events == whole);
    }
  }
  return whole;
}

TEST_CASE("response reader: a Content-Length response is head, body, complete, reusable") {
  bool reusable = false;
  auto ev = run("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false, &reusable);
  CHECK(ev == std::vector<std::string>{"head 200", "body hello", "complete"});
  CHECK(reusable);
}

TEST_CASE("response reader: a chunked body is decoded") {
  bool reusable = false;
  auto ev =
      run("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
          false, &reusable);
  CHECK(ev == std::vector<std::string>{"head 200", "body abcde", "complete"});
  CHECK(reusable);
}

TEST_CASE("response reader: interim 1xx heads are skipped") {
  auto ev =
      run("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
          "HTTP/1.1 204 No Content\r\n\r\n");
  CHECK(ev == std::vector<std::string>{"head 204", "complete"});
}

TEST_CASE("response reader: bytes after a complete response make the connection unusable") {
  bool reusable = true;
  auto ev =
      run("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxHTTP/1.1 200 OK\r\n\r\n", false, &reusable);
  CHECK(ev == std::vector<std::string>{"head 200", "body x", "complete"});
  CHECK_FALSE(reusable);
}

TEST_CASE("response reader: Connection close is not reusable") {
  bool reusable = true;
  run("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", false, &reusable);
  CHECK_FALSE(reusable);
}

TEST_CASE("response reader: the response to HEAD has no body whatever its headers say") {
  bool reusable = false;
  auto ev = run("HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n", true, &reusable);
  CHECK(ev == std::vector<std::string>{"head 200", "complete"});
  CHECK(reusable);
}

TEST_CASE("response reader: a 101 reports the bytes after it as they are") {
  auto ev =
      run("HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket"
          "\r\n\r\n\x81\x02hi",
          false, nullptr, /*also_bytewise=*/false);
  CHECK(ev == std::vector<std::string>{"upgrade 101 \x81\x02hi"});
}

TEST_CASE("response reader: a malformed response is reported once") {
  auto ev = run("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx");
  CHECK(ev == std::vector<std::string>{"bad"});
  CHECK(run("HTTP/2.0 200 OK\r\n\r\n") == std::vector<std::string>{"bad"});
}

TEST_CASE("response reader: a held head keeps the rest until resume") {
  Setup s;
  s.r.hold_heads = true;
  s.feed("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nabc");
  CHECK(s.reader.held());
  CHECK_FALSE(s.reader.head_taken());
  s.reader.feed("def", 3);  // read before the pause took effect: kept too
  CHECK(s.r.events == std::vector<std::string>{"head 200", "hold"});
  s.reader.resume();
  CHECK(s.reader.head_taken());
  CHECK(s.r.events ==
        std::vector<std::string>{"head 200", "hold", "unhold", "body abcdef", "complete"});
  CHECK(s.reader.reusable());
}

TEST_CASE("response reader: a held bodyless response completes on resume") {
  Setup s;
  s.r.hold_heads = true;
  s.feed("HTTP/1.1 204 No Content\r\n\r\nstray");
  s.reader.resume();
  CHECK(s.r.events == std::vector<std::string>{"head 204", "hold", "complete"});
  CHECK_FALSE(s.reader.reusable());  // the stray bytes after it
}

TEST_CASE("response reader: a receiver that gives up on the head stops the parsing") {
  Setup s;
  s.r.give_up_on_head = true;
  s.feed("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc");
  CHECK(s.r.events == std::vector<std::string>{"head 200"});
  CHECK_FALSE(s.reader.held());
}

TEST_CASE("response reader: a receiver that gives up during the body hears nothing more") {
  Setup s;
  s.r.give_up_on_body = true;
  s.feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
  CHECK(s.r.events == std::vector<std::string>{"head 200", "body abc"});
  s.feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nZZ\r\n");
  CHECK(s.r.events == std::vector<std::string>{"head 200", "body abc"});
}

TEST_CASE("response reader: a close-delimited body ends at the close") {
  Setup s;
  s.feed("HTTP/1.1 200 OK\r\n\r\nuntil close");
  CHECK(s.r.events == std::vector<std::string>{"head 200", "body until close"});
  CHECK(s.reader.finish_at_close());  // the connection reports the end (it is closing by then)
  CHECK_FALSE(s.reader.reusable());
}

TEST_CASE("response reader: a close before the head or inside a framed body ends nothing") {
  Setup s;
  CHECK_FALSE(s.reader.finish_at_close());
  std::string wire = "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc";
  s.reader.begin(false);
  s.reader.feed(wire.data(), wire.size());
  CHECK_FALSE(s.reader.finish_at_close());
  CHECK(s.r.events == std::vector<std::string>{"head 200", "body abc"});
}

TEST_CASE("response reader: begin starts over for the next request on the connection") {
  Recorder r;
  ResponseReader reader(&r, HttpParser::Limits{});
  for (int i = 0; i < 2; ++i) {
    reader.begin(false);
    std::string wire = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    reader.feed(wire.data(), wire.size());
    CHECK(reader.reusable());
  }
  CHECK(r.events == std::vector<std::string>{"head 200", "body ok", "complete", "head 200",
                                             "body ok", "complete"});
}

// Splice: the rest of a Content-Length body goes around the parser; the response still ends in
// step, and the connection carries the next response.
TEST_CASE("response reader: skipped body bytes end a Content-Length response in step") {
  Setup s;
  CHECK(s.reader.raw_body_left() == 0);
  s.feed("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n");
  CHECK(s.reader.raw_body_left() == 0);  // no body byte parsed yet: the parser must see one
  s.feed("he");
  CHECK(s.reader.raw_body_left() == 8);
  s.reader.skip_body(5);
  CHECK(s.reader.raw_body_left() == 3);
  CHECK(s.r.events == std::vector<std::string>{"head 200", "body he"});
  s.reader.skip_body(3);
  CHECK(s.reader.raw_body_left() == 0);
  CHECK(s.r.events == std::vector<std::string>{"head 200", "body he", "complete"});
  CHECK(s.reader.reusable());
  s.reader.begin(false);
  s.feed("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  CHECK(s.r.events.back() == "complete");
  CHECK(s.reader.reusable());
}

TEST_CASE("response reader: bytes after a skipped body make the connection unusable") {
  Setup s;
  s.feed("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab");
  s.reader.skip_body(2);
  CHECK(s.r.events.back() == "complete");
  s.feed("X");
  CHECK_FALSE(s.reader.reusable());
}

TEST_CASE("response reader: only a started Content-Length body may be skipped") {
  Setup chunked;
  chunked.feed("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab");
  CHECK(chunked.reader.raw_body_left() == 0);
  Setup until_close;
  until_close.feed("HTTP/1.1 200 OK\r\n\r\nabc");
  CHECK(until_close.reader.raw_body_left() == 0);
  Setup held;
  held.r.hold_heads = true;
  held.feed("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab");
  CHECK(held.reader.raw_body_left() == 0);
  Setup keep;
  keep.feed("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 4\r\n\r\nab");
  keep.reader.skip_body(2);
  CHECK(keep.r.events.back() == "complete");
  CHECK_FALSE(keep.reader.reusable());
}

}  // namespace
}  // namespace sg
