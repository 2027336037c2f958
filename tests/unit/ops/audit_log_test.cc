#include "proxy_core/ops/audit_log.h"

#include <doctest/doctest.h>
#include <stdlib.h>
#include <unistd.h>

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

TEST_CASE("an audit line is one JSON object with every field, escaped") {
  AuditEvent e;
  e.event = "destroyed";
  e.reason = "admin";
  e.session = "00112233445566778899aabbccddeeff";
  e.user = "al\"ice\\";
  e.client = "192.0.2.7";
  e.request_id = "req-1";
  const std::string line = AuditLog::format(e, 1'700'000'000'123);
  CHECK(line ==
        "{\"time\":\"2023-11-14T22:13:20.123Z\",\"event\":\"destroyed\",\"reason\":\"admin\","
        "\"session\":\"00112233445566778899aabbccddeeff\",\"user\":\"al\\\"ice\\\\\","
        "\"client\":\"192.0.2.7\",\"request_id\":\"req-1\"}\n");
}

TEST_CASE("the audit log writes to its file, is off by default and reopens after a move") {
  std::string dir = (std::filesystem::temp_directory_path() / "sg-audit-XXXXXX").string();
  REQUIRE(mkdtemp(dir.data()) != nullptr);
  const std::string path = dir + "/audit.log";
  AuditLog log;
  CHECK_FALSE(log.enabled());
  std::string error;
  REQUIRE(log.open(path, error));
  CHECK(log.enabled());
  log.write(AuditEvent{"created", "", "aa", "", "192.0.2.1", "r1"});
  std::filesystem::rename(path, path + ".1");
  REQUIRE(log.reopen(error));
  log.write(AuditEvent{"expired", "idle", "bb", "bob", "", ""});
  const std::string first = slurp(path + ".1");
  const std::string second = slurp(path);
  CHECK(first.find("\"event\":\"created\"") != std::string::npos);
  CHECK(second.find("\"event\":\"expired\",\"reason\":\"idle\"") != std::string::npos);
  CHECK(second.find("created") == std::string::npos);
  REQUIRE(log.open("off", error));
  CHECK_FALSE(log.enabled());
  std::filesystem::remove_all(dir);
}

TEST_CASE("audit() without a process audit log writes nothing and does not crash") {
  set_process_audit_log(nullptr);
  audit(AuditEvent{"created", "", "aa", "", "", ""});
  CHECK(process_audit_log() == nullptr);
}

}  // namespace
}  // namespace sg
