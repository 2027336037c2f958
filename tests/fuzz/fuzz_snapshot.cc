// Fuzz target: the memory store's snapshot file read back (session_snapshot.h). The file is
// untrusted input: whatever its bytes, every record that reaches the store must pass
// check_session_record, so that a crafted snapshot can never inject a header, split a request or
// plant an immortal session.
//
// Input: byte 0 flags (bit 0: repair the header and record checksums first, so that mutations
// reach the record check instead of stopping at a checksum), byte 1 max_attributes (0-15, 0 =
// unbounded), byte 2 a quarter of max_attribute_bytes; the rest is the file.
//
// Invariants:
// - every delivered record passes check_session_record with the same bounds at the same time;
// - a delivered record written again with encode_snapshot_session reads back identical;
// - the reader never delivers more records than the end record could vouch for (records +
//   rejected is the number of session frames read), and never crashes or leaks.
#include <cstdio>
#include <string>
#include <vector>

#include "proxy_core/session/session_record_check.h"
#include "proxy_core/store/session_snapshot.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

constexpr int64_t kNow = 1'700'000'000'000;

uint32_t le32(const std::string& s, size_t at) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i)
    v = v << 8 | static_cast<uint8_t>(s[at + i]);
  return v;
}
void put_le32(std::string& s, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    s[at + i] = static_cast<char>(v >> (8 * i));
}

// Recomputes the header checksum and each whole frame's checksum in place.
void repair_checksums(std::string& file) {
  if (file.size() < 20) return;
  put_le32(file, 16, sg::crc32c(file.data(), 16));
  size_t at = 20;
  while (file.size() - at >= 9) {
    const uint64_t len = le32(file, at + 1);
    if (file.size() - at - 9 < len) return;
    put_le32(file, at + 5 + len, sg::crc32c(file.data() + at, 5 + len));
    at += 9 + len;
  }
}

sg::SnapshotStatus read_from_memory(std::string& file, const sg::SnapshotCheck& check,
                                    const sg::SnapshotSink& sink) {
  if (file.empty()) file.push_back('\0');  // fmemopen refuses a zero-sized buffer
  std::FILE* f = fmemopen(file.data(), file.size(), "rb");
  SG_FUZZ_CHECK(f != nullptr);
  sg::SnapshotStatus st = sg::read_snapshot_stream(f, "fuzz", check, sink);
  std::fclose(f);
  return st;
}

}  // namespace

SG_FUZZ_ENTRY(snapshot) {
  if (size < 3) return 0;
  const sg::SnapshotCheck check{kNow, data[1] % 16u, data[2] * 4u};
  std::string file(reinterpret_cast<const char*>(data + 3), size - 3);
  if (data[0] & 1) repair_checksums(file);

  std::vector<std::pair<sg::TokenHash, sg::SessionRecord>> delivered;
  const sg::SnapshotStatus st =
      read_from_memory(file, check, [&](const sg::TokenHash& key, sg::SessionRecord&& record) {
        SG_FUZZ_CHECK(sg::check_session_record(record, check.now_ms, check.max_attributes,
                                               check.max_attribute_bytes) == sg::RecordError::kOk);
        delivered.emplace_back(key, std::move(record));
      });
  SG_FUZZ_CHECK(st.records == delivered.size());
  SG_FUZZ_CHECK((st.rejected == 0) == st.first_rejection.empty());

  // Round trip: what was accepted, written by the real writer's encoder, reads back the same.
  if (file.size() < 20 || !st.ok()) return 0;  // only a complete file was read to its end
  // The encoder writes the current version (the file read may be an older one).
  std::string again("SGSNAP\r\n", 8);
  again.resize(20, '\0');
  put_le32(again, 8, sg::kSnapshotVersion);
  put_le32(again, 16, sg::crc32c(again.data(), 16));
  for (const auto& [key, record] : delivered) {
    sg::encode_snapshot_session(again, key, record.handle, record.created_ms, record.last_seen_ms,
                                &record.attributes, record.client_address, record.user_agent);
  }
  std::string end(17, '\0');
  end[0] = 'E';
  put_le32(end, 1, 8);
  put_le32(end, 5, static_cast<uint32_t>(delivered.size()));
  put_le32(end, 13, sg::crc32c(end.data(), 13));
  again += end;
  size_t i = 0;
  const sg::SnapshotStatus st2 =
      read_from_memory(again, check, [&](const sg::TokenHash& key, sg::SessionRecord&& record) {
        SG_FUZZ_CHECK(i < delivered.size());
        SG_FUZZ_CHECK(key == delivered[i].first);
        SG_FUZZ_CHECK(record.handle == delivered[i].second.handle);
        SG_FUZZ_CHECK(record.created_ms == delivered[i].second.created_ms);
        SG_FUZZ_CHECK(record.last_seen_ms == delivered[i].second.last_seen_ms);
        SG_FUZZ_CHECK(record.attributes == delivered[i].second.attributes);
        SG_FUZZ_CHECK(record.client_address == delivered[i].second.client_address);
        SG_FUZZ_CHECK(record.user_agent == delivered[i].second.user_agent);
        ++i;
      });
  SG_FUZZ_CHECK(st2.ok());
  SG_FUZZ_CHECK(st2.rejected == 0);
  SG_FUZZ_CHECK(i == delivered.size());
  return 0;
}
