// Fuzz target: the memory store's integrity contract under arbitrary operation sequences. The
// fuzzer's bytes choose create/modify/rotate/destroy/lookup/reclaim, keys, changes, grace windows
// and time steps; tests/fuzz/store_model.h runs them against a MemoryStore and a reference model.
//
// Invariants: every status and lookup (status, rotated, record, live key) agrees with the model,
// grace-window and replay lookups included; no record returned by any key ever belongs to a
// destroyed session; a write to a key that is not live creates nothing.
#include <cstddef>
#include <cstdint>

#include "proxy_core/store/memory_store.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/fuzz/store_model.h"

namespace {

constexpr int64_t kIdleMs = 1000;
constexpr int64_t kAbsoluteMs = 10000;

// Numbers from the input, one byte each (two for ranges over 256); then the run ends.
struct ByteSource {
  const uint8_t* data;
  size_t size;
  bool more() const { return size > 0; }
  uint32_t next(uint32_t n) {
    uint32_t v = 0;
    for (int i = 0; i < (n > 256 ? 2 : 1) && size > 0; ++i, ++data, --size)
      v = v << 8 | *data;
    return v % n;
  }
};

}  // namespace

SG_FUZZ_ENTRY(memory_store) {
  if (size > 4096) return 0;  // long runs add nothing the model has not seen; keep inputs fast
  sg::MemoryStore store(sg::Millis(kIdleMs), sg::Millis(kAbsoluteMs), 1000000);
  sg_store_model::Model model(kIdleMs, kAbsoluteMs);
  ByteSource src{data, size};
  sg_store_model::run(store, model, src, [](bool ok, const char* what) {
    if (!ok) {
      std::fprintf(stderr, "store model mismatch: %s\n", what);
      SG_FUZZ_CHECK(ok);
    }
  });
  return 0;
}
