#include "proxy_core/store/session_snapshot.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <utility>

#include <openssl/rand.h>

#include "proxy_core/session/session_record_check.h"

namespace sg {
namespace {

constexpr char kMagic[8] = {'S', 'G', 'S', 'N', 'A', 'P', '\r', '\n'};
constexpr size_t kHeaderBytes = 20;
constexpr uint8_t kTagSession = 'S';
constexpr uint8_t kTagEnd = 'E';
constexpr size_t kSessionFixedBytes = 32 + 16 + 8 + 8 + 4;

constexpr std::array<uint32_t, 256> make_crc_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k)
      c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    table[i] = c;
  }
  return table;
}
constexpr std::array<uint32_t, 256> kCrcTable = make_crc_table();

void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    out.push_back(static_cast<char>(v >> (8 * i)));
}
void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i)
    out.push_back(static_cast<char>(v >> (8 * i)));
}
uint32_t get_u32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}
uint64_t get_u64(const uint8_t* p) {
  return uint64_t{get_u32(p)} | uint64_t{get_u32(p + 4)} << 32;
}

// Frames a payload: tag, length, payload, checksum over all three.
void put_record(std::string& out, uint8_t tag, std::string_view payload) {
  const size_t start = out.size();
  out.push_back(static_cast<char>(tag));
  put_u32(out, static_cast<uint32_t>(payload.size()));
  out.append(payload);
  put_u32(out, crc32c(out.data() + start, out.size() - start));
}

SnapshotStatus status_of(SnapshotStatus::Code code, std::string message, uint64_t records = 0) {
  SnapshotStatus st;
  st.code = code;
  st.message = std::move(message);
  st.records = records;
  return st;
}

SnapshotStatus io_error(const std::string& what, const std::string& path) {
  return status_of(SnapshotStatus::Code::kIoError,
                   path + ": " + what + ": " + std::strerror(errno));
}

// 16 hex digits from the CSPRNG: a temporary name nobody can predict and plant a file at.
bool random_suffix(std::string& out) {
  unsigned char bytes[8];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return false;
  static constexpr char kHex[] = "0123456789abcdef";
  out.clear();
  for (unsigned char b : bytes) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return true;
}

std::string directory_of(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Reads a length-prefixed pair of strings at `off` (version 2's address and agent).
bool parse_origin(const uint8_t* p, size_t n, size_t& off, SessionRecord& rec) {
  if (n - off < 8) return false;
  const uint32_t address_len = get_u32(p + off);
  const uint32_t agent_len = get_u32(p + off + 4);
  off += 8;
  if (n - off < uint64_t{address_len} + agent_len) return false;
  rec.client_address.assign(reinterpret_cast<const char*>(p + off), address_len);
  rec.user_agent.assign(reinterpret_cast<const char*>(p + off + address_len), agent_len);
  off += address_len + agent_len;
  return true;
}

// Parses a session payload of `version`; false when the lengths inside do not add up.
bool parse_session(uint32_t version, const uint8_t* p, size_t n, TokenHash& key,
                   SessionRecord& rec) {
  if (n < kSessionFixedBytes) return false;
  std::memcpy(key.data(), p, 32);
  std::memcpy(rec.handle.data(), p + 32, 16);
  rec.created_ms = static_cast<int64_t>(get_u64(p + 48));
  rec.last_seen_ms = static_cast<int64_t>(get_u64(p + 56));
  uint32_t count = get_u32(p + 64);
  size_t off = kSessionFixedBytes;
  for (uint32_t i = 0; i < count; ++i) {
    if (n - off < 8) return false;
    uint32_t name_len = get_u32(p + off);
    uint32_t value_len = get_u32(p + off + 4);
    off += 8;
    if (n - off < uint64_t{name_len} + value_len) return false;
    rec.attributes.emplace_back(
        std::string(reinterpret_cast<const char*>(p + off), name_len),
        std::string(reinterpret_cast<const char*>(p + off + name_len), value_len));
    off += name_len + value_len;
  }
  if (version >= 2 && !parse_origin(p, n, off, rec)) return false;
  return off == n;
}

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

}  // namespace

uint32_t crc32c(const void* data, size_t size, uint32_t seed) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t c = ~seed;
  for (size_t i = 0; i < size; ++i)
    c = kCrcTable[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return ~c;
}

void encode_snapshot_session(std::string& out, const TokenHash& key, const SessionHandle& handle,
                             int64_t created_ms, int64_t last_seen_ms,
                             const SessionAttributes* attrs, std::string_view client_address,
                             std::string_view user_agent) {
  std::string payload;
  payload.reserve(kSessionFixedBytes);
  payload.append(reinterpret_cast<const char*>(key.data()), key.size());
  payload.append(reinterpret_cast<const char*>(handle.data()), handle.size());
  put_u64(payload, static_cast<uint64_t>(created_ms));
  put_u64(payload, static_cast<uint64_t>(last_seen_ms));
  put_u32(payload, attrs ? static_cast<uint32_t>(attrs->size()) : 0);
  if (attrs) {
    for (const auto& [name, value] : *attrs) {
      put_u32(payload, static_cast<uint32_t>(name.size()));
      put_u32(payload, static_cast<uint32_t>(value.size()));
      payload += name;
      payload += value;
    }
  }
  put_u32(payload, static_cast<uint32_t>(client_address.size()));
  put_u32(payload, static_cast<uint32_t>(user_agent.size()));
  payload += client_address;
  payload += user_agent;
  put_record(out, kTagSession, payload);
}

SnapshotWriter::~SnapshotWriter() {
  abandon();
}

void SnapshotWriter::abandon() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
    ::unlink(temp_path_.c_str());
  }
}

SnapshotStatus SnapshotWriter::open(const std::string& path) {
  abandon();
  path_ = path;
  // O_EXCL with a random name: the directory may be writable by others (or hold a leftover of a
  // crashed run); an existing file or symlink there is never opened, followed or truncated.
  // 0600: the file names every live session's key; nobody but the gateway's user reads it.
  for (int attempt = 0; attempt < 8 && fd_ < 0; ++attempt) {
    std::string suffix;
    if (!random_suffix(suffix)) {
      return status_of(SnapshotStatus::Code::kIoError,
                       path + ": no random bytes for the temporary file name");
    }
    temp_path_ = path + ".tmp." + suffix;
    fd_ = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd_ < 0 && errno != EEXIST) break;
  }
  if (fd_ < 0) return io_error("cannot create", temp_path_);
  records_ = 0;
  std::string header(kMagic, sizeof kMagic);
  put_u32(header, kSnapshotVersion);
  put_u32(header, 0);
  put_u32(header, crc32c(header.data(), header.size()));
  return write_all(header);
}

SnapshotStatus SnapshotWriter::write_all(std::string_view bytes) {
  if (fd_ < 0) {
    return status_of(SnapshotStatus::Code::kIoError, path_ + ": snapshot writer not open");
  }
  while (!bytes.empty()) {
    ssize_t n = ::write(fd_, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      SnapshotStatus st = io_error("write failed", temp_path_);
      abandon();
      return st;
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

SnapshotStatus SnapshotWriter::append(std::string_view encoded_records, uint64_t count) {
  SnapshotStatus st = write_all(encoded_records);
  if (st.ok()) records_ += count;
  return st;
}

SnapshotStatus SnapshotWriter::commit() {
  std::string end;
  std::string payload;
  put_u64(payload, records_);
  put_record(end, kTagEnd, payload);
  if (SnapshotStatus st = write_all(end); !st.ok()) return st;
  // Data first, then the rename, then the directory entry: after a crash the target is either the
  // old complete snapshot or the new complete one, never a prefix.
  if (::fsync(fd_) != 0) {
    SnapshotStatus st = io_error("fsync failed", temp_path_);
    abandon();
    return st;
  }
  if (::close(fd_) != 0) {
    fd_ = -1;
    SnapshotStatus st = io_error("close failed", temp_path_);
    ::unlink(temp_path_.c_str());
    return st;
  }
  fd_ = -1;
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    SnapshotStatus st = io_error("rename failed", path_);
    ::unlink(temp_path_.c_str());
    return st;
  }
  const std::string dir = directory_of(path_);
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return io_error("cannot open directory", dir);
  const int rc = ::fsync(dfd);
  ::close(dfd);
  if (rc != 0) return io_error("directory fsync failed", dir);
  return status_of(SnapshotStatus::Code::kOk, {}, records_);
}

SnapshotStatus read_snapshot(const std::string& path, const SnapshotCheck& check,
                             const SnapshotSink& sink) {
  std::unique_ptr<std::FILE, FileCloser> file(std::fopen(path.c_str(), "rbe"));
  if (!file) {
    if (errno == ENOENT)
      return status_of(SnapshotStatus::Code::kMissing, path + ": no snapshot yet");
    return io_error("cannot open", path);
  }
  return read_snapshot_stream(file.get(), path, check, sink);
}

SnapshotStatus read_snapshot_stream(std::FILE* file, const std::string& path,
                                    const SnapshotCheck& check, const SnapshotSink& sink) {
  SnapshotStatus st;
  uint64_t index = 0;  // session records seen, delivered or rejected
  auto corrupt = [&](const std::string& what, long offset) {
    st.code = SnapshotStatus::Code::kCorrupt;
    st.message = path + ": " + what + " at byte " + std::to_string(offset) + " (after " +
                 std::to_string(st.records) + " sessions)";
    return st;
  };

  uint8_t header[kHeaderBytes];
  if (std::fread(header, 1, sizeof header, file) != sizeof header) {
    return corrupt("file shorter than the header", 0);
  }
  if (std::memcmp(header, kMagic, sizeof kMagic) != 0) return corrupt("not a snapshot file", 0);
  if (crc32c(header, 16) != get_u32(header + 16)) return corrupt("header checksum mismatch", 0);
  const uint32_t version = get_u32(header + 8);
  if (version < 1 || version > kSnapshotVersion) {
    return corrupt("unsupported version " + std::to_string(version), 8);
  }

  std::string buf;
  for (;;) {
    const long offset = std::ftell(file);
    uint8_t frame[5];
    const size_t got = std::fread(frame, 1, sizeof frame, file);
    if (got == 0 && std::feof(file)) return corrupt("file ends without an end record", offset);
    if (got != sizeof frame) return corrupt("truncated record header", offset);
    const uint32_t len = get_u32(frame + 1);
    if (len > kMaxSnapshotRecordBytes) return corrupt("record length out of range", offset);
    buf.resize(sizeof frame + len + 4);
    std::memcpy(buf.data(), frame, sizeof frame);
    if (std::fread(buf.data() + sizeof frame, 1, len + 4, file) != len + 4) {
      return corrupt("truncated record", offset);
    }
    const auto* bytes = reinterpret_cast<const uint8_t*>(buf.data());
    if (crc32c(bytes, sizeof frame + len) != get_u32(bytes + sizeof frame + len)) {
      return corrupt("record checksum mismatch", offset);
    }
    const uint8_t* payload = bytes + sizeof frame;
    if (frame[0] == kTagEnd) {
      if (len != 8 || get_u64(payload) != index) return corrupt("end record mismatch", offset);
      if (std::fgetc(file) != EOF) return corrupt("bytes after the end record", offset);
      return st;
    }
    if (frame[0] != kTagSession) return corrupt("unknown record type", offset);
    TokenHash key;
    SessionRecord rec;
    if (!parse_session(version, payload, len, key, rec))
      return corrupt("malformed session record", offset);
    ++index;
    const RecordError error =
        check_session_record(rec, check.now_ms, check.max_attributes, check.max_attribute_bytes);
    if (error != RecordError::kOk) {
      // Skipped, never delivered: the file may have been crafted to inject headers.
      if (st.rejected++ == 0) {
        st.first_rejection = "record " + std::to_string(index) + " at byte " +
                             std::to_string(offset) + ": " + record_error_text(error);
      }
      continue;
    }
    sink(key, std::move(rec));
    ++st.records;
  }
}

}  // namespace sg
