// Helpers shared by the memory store's unit tests: synchronous wrappers around the callback API
// (the memory store answers inside the call) and a temporary directory.
#pragma once

#include <doctest/doctest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "proxy_core/session/token.h"
#include "proxy_core/store/memory_store.h"

namespace sg::test {

inline constexpr Millis kIdle{1000};
inline constexpr Millis kAbsolute{10000};
inline constexpr int64_t kT0 = 1'700'000'000'000;

inline TokenHash key(int i) {
  return hash_token("token-" + std::to_string(i));
}

inline SessionRecord record_at(int64_t now_ms, uint8_t tag = 0, SessionAttributes attrs = {}) {
  SessionRecord r;
  r.handle.fill(tag);
  r.created_ms = now_ms;
  r.last_seen_ms = now_ms;
  r.attributes = std::move(attrs);
  return r;
}

inline LookupResult lookup(MemoryStore& store, const TokenHash& k, int64_t now_ms) {
  LookupResult out;
  int calls = 0;
  store.lookup(k, now_ms, [&](LookupResult r) {
    out = std::move(r);
    ++calls;
  });
  REQUIRE(calls == 1);  // the memory store answers synchronously, exactly once
  return out;
}

inline StoreStatus create(MemoryStore& store, const TokenHash& k, const SessionRecord& r) {
  StoreStatus out = StoreStatus::kUnavailable;
  store.create(k, r, [&](StoreStatus s) { out = s; });
  return out;
}
inline StoreStatus modify(MemoryStore& store, const TokenHash& k, const SessionChange& c,
                          int64_t now_ms) {
  StoreStatus out = StoreStatus::kUnavailable;
  int calls = 0;
  store.modify(k, c, now_ms, [&](StoreStatus s) {
    out = s;
    ++calls;
  });
  REQUIRE(calls == 1);
  return out;
}
inline StoreStatus rotate(MemoryStore& store, const TokenHash& a, const TokenHash& b,
                          const SessionChange& c, int64_t grace_ms, int64_t now_ms) {
  StoreStatus out = StoreStatus::kUnavailable;
  int calls = 0;
  store.rotate(a, b, c, grace_ms, now_ms, [&](StoreStatus s) {
    out = s;
    ++calls;
  });
  REQUIRE(calls == 1);
  return out;
}
inline StoreStatus destroy(MemoryStore& store, const TokenHash& k) {
  StoreStatus out = StoreStatus::kUnavailable;
  store.destroy(k, [&](StoreStatus s) { out = s; });
  return out;
}

inline bool found(MemoryStore& store, const TokenHash& k, int64_t now_ms) {
  return lookup(store, k, now_ms).status == StoreStatus::kOk;
}

// A fresh directory under the system temp dir, removed with its contents at scope exit.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "sg-store-XXXXXX").string();
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
inline void write_file(const std::filesystem::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << bytes;
}

}  // namespace sg::test
