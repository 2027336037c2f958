// The access log's protocol field: combined lines print the request's version as the request line
// would (HTTP/2.0 for an HTTP/2 stream), JSON lines carry it as "protocol".
#include "proxy_core/ops/access_log.h"

#include <doctest/doctest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace sg {
namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The line AccessLog writes for `r` in `format`.
std::string line_for(const AccessRecord& r, AccessLogFormat format) {
  std::string dir = (std::filesystem::temp_directory_path() / "sg-access-XXXXXX").string();
  REQUIRE(mkdtemp(dir.data()) != nullptr);
  const std::string path = dir + "/access.log";
  std::string line;
  {
    AccessLog log;
    std::string error;
    REQUIRE(log.open(path, format, error));
    log.write(r);
    line = slurp(path);
  }
  std::filesystem::remove_all(dir);
  return line;
}

AccessRecord record(int major, int minor) {
  AccessRecord r;
  r.time_ms = 1'700'000'000'123;
  r.client = "192.0.2.7";
  r.method = "GET";
  r.target = "/a?secret=1";
  r.version_major = major;
  r.version_minor = minor;
  r.status = 200;
  r.bytes_sent = 5;
  return r;
}

TEST_CASE("the combined access log prints the request protocol, HTTP/2.0 for HTTP/2") {
  CHECK(line_for(record(2, 0), AccessLogFormat::kCombined).find("\"GET /a HTTP/2.0\" 200 5 ") !=
        std::string::npos);
  CHECK(line_for(record(1, 1), AccessLogFormat::kCombined).find("\"GET /a HTTP/1.1\" 200 5 ") !=
        std::string::npos);
  CHECK(line_for(record(1, 0), AccessLogFormat::kCombined).find("\"GET /a HTTP/1.0\" 200 5 ") !=
        std::string::npos);
}

TEST_CASE("the JSON access log carries the request protocol") {
  CHECK(line_for(record(2, 0), AccessLogFormat::kJson).find("\"protocol\":\"HTTP/2.0\"") !=
        std::string::npos);
  CHECK(line_for(record(1, 1), AccessLogFormat::kJson).find("\"protocol\":\"HTTP/1.1\"") !=
        std::string::npos);
}

}  // namespace
}  // namespace sg
