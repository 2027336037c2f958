// The snapshot file: records read back are checked before use, and the temporary file cannot be
// redirected by a file or symlink planted at a predictable name.
#include "proxy_core/store/session_snapshot.h"

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "proxy_core/session/session_record_check.h"
#include "proxy_core/store/memory_store.h"
#include "tests/unit/memory_store_test_util.h"

namespace sg {
namespace {

using namespace test;  // NOLINT: the helpers are this file's vocabulary

// Writes a snapshot of `records` (key i for the i-th) with the real writer.
void write_snapshot(const std::string& path, const std::vector<SessionRecord>& records) {
  SnapshotWriter writer;
  REQUIRE(writer.open(path).ok());
  std::string buf;
  for (size_t i = 0; i < records.size(); ++i) {
    const SessionRecord& r = records[i];
    encode_snapshot_session(buf, key(static_cast<int>(i)), r.handle, r.created_ms, r.last_seen_ms,
                            &r.attributes);
  }
  REQUIRE(writer.append(buf, records.size()).ok());
  REQUIRE(writer.commit().ok());
}

TEST_CASE("records that fail the record check are skipped, counted and never loaded") {
  TempDir dir;
  const std::string path = (dir.path / "s.snap").string();
  std::vector<SessionRecord> records(8, record_at(kT0, 1, {{"user", "alice"}}));
  records[1].attributes = {{"user", "x\r\nX-Injected: 1"}};          // header injection
  records[2].created_ms = records[2].last_seen_ms = kT0 + 86400000;  // never expires
  records[3].created_ms = INT64_MIN;                                 // overflows expiry math
  records[4].attributes = {{"user", "a"}, {"role", "b"}};            // unsorted
  records[5].attributes = {{"id", "forged"}};                        // the reserved name
  records[6].attributes = {{"a", "1"}, {"b", "2"}, {"c", "3"}};      // over max_attributes = 2
  records[7].attributes = {{"user", std::string(200, 'v')}};         // over 100 bytes
  write_snapshot(path, records);

  MemoryStore store(kIdle, kAbsolute, 100);
  SnapshotStatus st = store.load_snapshot(path, kT0 + 10, 2, 100);
  REQUIRE_MESSAGE(st.ok(), st.message);
  CHECK(st.records == 1);
  CHECK(st.rejected == 7);
  CHECK(st.first_rejection.find("record 2") != std::string::npos);
  CHECK(st.first_rejection.find(record_error_text(RecordError::kBadValue)) != std::string::npos);
  CHECK(store.stats().records_rejected == 7);
  CHECK(store.stats().active == 1);
  CHECK(found(store, key(0), kT0 + 10));
  for (int i = 1; i < 8; ++i) {
    CAPTURE(i);
    CHECK_FALSE(found(store, key(i), kT0 + 10));
  }
}

TEST_CASE("a stream read gives the same records as the file read") {
  TempDir dir;
  const std::string path = (dir.path / "s.snap").string();
  write_snapshot(path, {record_at(kT0, 1, {{"user", "alice"}}), record_at(kT0, 2)});
  const std::string bytes = read_file(path);
  std::FILE* f = fmemopen(const_cast<char*>(bytes.data()), bytes.size(), "rb");
  REQUIRE(f != nullptr);
  std::vector<SessionRecord> got;
  SnapshotStatus st = read_snapshot_stream(
      f, "memory", SnapshotCheck{kT0, 0, 0},
      [&](const TokenHash&, SessionRecord&& r) { got.push_back(std::move(r)); });
  std::fclose(f);
  REQUIRE_MESSAGE(st.ok(), st.message);
  REQUIRE(got.size() == 2);
  CHECK(got[0].attributes == SessionAttributes{{"user", "alice"}});
  CHECK(got[1].handle[0] == 2);
}

TEST_CASE("a file or symlink at a predictable temporary name is neither followed nor truncated") {
  TempDir dir;
  const std::string path = (dir.path / "sessions.snap").string();
  const std::filesystem::path victim = dir.path / "victim";
  write_file(victim, "precious");
  // The names the writer used to pick: <path>.tmp.<pid>.<sequence>. Plant both kinds at each.
  std::vector<std::filesystem::path> planted;
  for (int seq = 0; seq < 64; ++seq) {
    const std::string base =
        path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(seq);
    if (seq % 2 == 0) {
      std::filesystem::create_symlink(victim, base);
    } else {
      write_file(base, "planted");
      ::chmod(base.c_str(), 0644);
    }
    planted.push_back(base);
  }
  MemoryStore store(kIdle, kAbsolute, 100);
  REQUIRE(create(store, key(1), record_at(kT0, 1)) == StoreStatus::kOk);
  for (int round = 0; round < 3; ++round) {
    SnapshotStatus st = store.save_snapshot(path);
    REQUIRE_MESSAGE(st.ok(), st.message);
  }
  CHECK(read_file(victim) == "precious");
  for (size_t i = 0; i < planted.size(); ++i) {
    if (i % 2 == 0)
      CHECK(std::filesystem::is_symlink(planted[i]));
    else
      CHECK(read_file(planted[i]) == "planted");
  }
  // Nothing else left behind: the snapshot, the victim and the planted names only.
  size_t entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path)) {
    (void)e;
    ++entries;
  }
  CHECK(entries == planted.size() + 2);
  struct stat sb;
  REQUIRE(::lstat(path.c_str(), &sb) == 0);
  CHECK(S_ISREG(sb.st_mode));
  CHECK((sb.st_mode & 0777) == 0600);
  MemoryStore loaded(kIdle, kAbsolute, 100);
  REQUIRE(loaded.load_snapshot(path, kT0, 0, 0).ok());
  CHECK(found(loaded, key(1), kT0));
}

TEST_CASE("two writers of one path never share a temporary file") {
  TempDir dir;
  const std::string path = (dir.path / "s.snap").string();
  SnapshotWriter a;
  SnapshotWriter b;
  REQUIRE(a.open(path).ok());
  REQUIRE(b.open(path).ok());
  std::string one;
  encode_snapshot_session(one, key(1), SessionHandle{}, kT0, kT0, nullptr);
  REQUIRE(a.append(one, 1).ok());
  REQUIRE(b.commit().ok());
  REQUIRE(a.commit().ok());
  uint64_t n = 0;
  REQUIRE(read_snapshot(path, SnapshotCheck{kT0, 0, 0}, [&](const TokenHash&, SessionRecord&&) {
            ++n;
          }).ok());
  CHECK(n == 1);
}

}  // namespace
}  // namespace sg
