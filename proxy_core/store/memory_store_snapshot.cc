// MemoryStore's snapshot saving and loading (memory_store.h says what is and is not saved).
#include <mutex>
#include <string>

#include "proxy_core/store/memory_store.h"
#include "proxy_core/store/memory_store_shard.h"

namespace sg {

using memory_store_detail::kNil;
using memory_store_detail::kNoSlot;
using memory_store_detail::kProbation;
using memory_store_detail::kProtected;
using memory_store_detail::Segment;
using memory_store_detail::SessionExtra;

SnapshotStatus MemoryStore::save_snapshot(const std::string& path) const {
  SnapshotWriter writer;
  if (SnapshotStatus st = writer.open(path); !st.ok()) return st;
  std::string buf;
  for (size_t i = 0; i < shard_count_; ++i) {
    Shard& shard = shards_[i];
    buf.clear();
    uint64_t count = 0;
    {
      // Encode under the lock, write after it: disk latency never blocks the request path.
      std::lock_guard lock(shard.mu);
      // Least recently seen first in each list, so loading (which pushes to the front of the
      // session's list) restores both orders.
      for (Segment segment : {kProbation, kProtected}) {
        for (uint32_t n = shard.lists[segment].tail; n != kNil; n = shard.nodes[n].prev) {
          const Shard::Node& node = shard.nodes[n];
          const SessionExtra* extra = node.extra.get();
          encode_snapshot_session(buf, node.key, node.handle, node.created_ms, node.last_seen_ms,
                                  extra ? &extra->attrs : nullptr,
                                  extra ? extra->client_address() : std::string_view(),
                                  extra ? extra->user_agent() : std::string_view());
          ++count;
        }
      }
    }
    if (SnapshotStatus st = writer.append(buf, count); !st.ok()) return st;
  }
  return writer.commit();
}

void MemoryStore::insert_loaded(const TokenHash& key, SessionRecord&& record, int64_t now_ms,
                                uint64_t& loaded) {
  if (expiry_of(record.created_ms, record.last_seen_ms, now_ms) != ExpiryKind::kNone) return;
  Shard& shard = shard_for(key);
  uint64_t protected_evicted = 0;
  {
    std::lock_guard lock(shard.mu);
    // The live store wins over the file.
    if (insert_new(shard, key, std::move(record), now_ms, protected_evicted)) ++loaded;
  }
  warn_protected_evictions(protected_evicted, now_ms);
}

SnapshotStatus MemoryStore::load_snapshot(const std::string& path, int64_t now_ms,
                                          uint32_t max_attributes, uint32_t max_attribute_bytes) {
  uint64_t loaded = 0;
  const SnapshotCheck check{now_ms, max_attributes, max_attribute_bytes};
  SnapshotStatus st = read_snapshot(path, check, [&](const TokenHash& key, SessionRecord&& record) {
    insert_loaded(key, std::move(record), now_ms, loaded);
  });
  records_rejected_.fetch_add(st.rejected, std::memory_order_relaxed);
  st.records = loaded;
  return st;
}

}  // namespace sg
