// The memory store's snapshot file: format, atomic writing and tolerant reading. Only token
// hashes are written, never tokens. No threads, no libuv; the caller decides when to save.
//
// Format (all integers little-endian):
//   header  "SGSNAP\r\n" (8) | version u32 (=2) | reserved u32 (=0) | crc32c of the previous 16 u32
//   record  tag u8 | payload length u32 | payload | crc32c(tag, length, payload) u32
//     tag 'S' session: key[32] handle[16] created_ms i64 last_seen_ms i64 attr_count u32
//                      then attr_count x (name_len u32, value_len u32, name, value)
//                      then (version 2) address_len u32, agent_len u32, address, agent: the
//                      client address and user agent recorded at creation (issue 14)
//     tag 'E' end:     record_count u64 (the number of 'S' records before it); must be last
// Every record carries its own checksum, so a damaged file still yields the sessions before the
// damage; the end record tells a complete file from one cut short at a record boundary.
//
// A snapshot file is untrusted input when read back (whoever could write the directory could have
// crafted it): every session record is checked with check_session_record before it reaches the
// sink; one that fails is skipped and counted (SnapshotStatus::rejected), never delivered.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <string_view>

#include "proxy_core/session/session_attributes.h"
#include "proxy_core/session/session_store.h"

namespace sg {

inline constexpr uint32_t kSnapshotVersion = 2;  // written; version 1 files are still read
// Upper bound on one record's payload, checked before allocating: a damaged length field must not
// make the reader allocate gigabytes. Generous against max_attribute_bytes in practice.
inline constexpr uint32_t kMaxSnapshotRecordBytes = 16u << 20;

struct SnapshotStatus {
  enum class Code {
    kOk,
    kMissing,  // no file: a first start, not an error
    kCorrupt,  // bad header, checksum, framing, or cut short; `records` were still read
    kIoError,  // open/read/write/fsync/rename failed (errno text in message)
  };
  Code code = Code::kOk;
  std::string message;    // empty when kOk; otherwise says what, where ("path: record 12 at ...")
  uint64_t records = 0;   // session records written, or read and passed to the sink
  uint64_t rejected = 0;  // reading: well-formed records that failed the record check
  std::string first_rejection;  // reading: which record was rejected first, and why
  bool ok() const { return code == Code::kOk; }
};

// CRC-32C (Castagnoli), reflected, as in iSCSI/ext4: detects every burst up to 32 bits.
uint32_t crc32c(const void* data, size_t size, uint32_t seed = 0);

// Appends one encoded session record to `out`. `attrs` may be null (no attributes).
void encode_snapshot_session(std::string& out, const TokenHash& key, const SessionHandle& handle,
                             int64_t created_ms, int64_t last_seen_ms,
                             const SessionAttributes* attrs, std::string_view client_address = {},
                             std::string_view user_agent = {});

// Writes a snapshot atomically: a temporary file in the target's directory, created with O_EXCL
// under a random name (so a file or symlink planted at a predictable name is never followed or
// truncated), mode 0600, renamed
// over the target only after its data is fsynced; then the directory is fsynced so the rename
// survives a crash. Until commit() succeeds the old snapshot stays in place. The destructor removes
// an uncommitted temporary file. Not thread-safe; one writer per snapshot.
class SnapshotWriter {
 public:
  SnapshotWriter() = default;
  ~SnapshotWriter();
  SnapshotWriter(const SnapshotWriter&) = delete;
  SnapshotWriter& operator=(const SnapshotWriter&) = delete;

  SnapshotStatus open(const std::string& path);
  // Appends already-encoded session records (`count` of them).
  SnapshotStatus append(std::string_view encoded_records, uint64_t count);
  SnapshotStatus commit();

 private:
  SnapshotStatus write_all(std::string_view bytes);
  void abandon();

  std::string path_;
  std::string temp_path_;
  int fd_ = -1;
  uint64_t records_ = 0;
};

// What a record read back must satisfy (check_session_record's arguments).
struct SnapshotCheck {
  int64_t now_ms = 0;
  uint32_t max_attributes = 0;       // 0 = unbounded
  uint32_t max_attribute_bytes = 0;  // 0 = unbounded
};

// Reads `path`, passing each session record that passes `check` to `sink` in file order. Stops at
// the first damaged record: the records before it have been delivered and the status says
// kCorrupt with where. `records` counts the records delivered, `rejected` those skipped.
using SnapshotSink = std::function<void(const TokenHash& key, SessionRecord&& record)>;
SnapshotStatus read_snapshot(const std::string& path, const SnapshotCheck& check,
                             const SnapshotSink& sink);
// The same from an open stream (fuzzing reads from memory with fmemopen); `name` is for messages.
SnapshotStatus read_snapshot_stream(std::FILE* file, const std::string& name,
                                    const SnapshotCheck& check, const SnapshotSink& sink);

}  // namespace sg
