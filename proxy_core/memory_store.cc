#include "proxy_core/memory_store.h"

#include <algorithm>
#include <cstring>
#include <mutex>
#include <vector>

namespace sg {
namespace {

constexpr uint32_t kNil = UINT32_MAX;
constexpr size_t kNotFound = SIZE_MAX;
constexpr size_t kMinSlots = 16;

// Keys are SHA-256 digests, uniformly distributed and not chosen by clients (a client picks the
// token, not its hash), so raw digest bytes serve as hash values: bytes 0-3 pick the shard, bytes
// 8-11 the slot. No hash-flooding defence is needed.
uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace

// One shard: an arena of nodes, an open-addressing index (linear probing, backward-shift deletion,
// so no tombstones) and an intrusive LRU list through the nodes by 32-bit index. Everything here
// is done under `mu` by the MemoryStore methods; the shard itself keeps no counters.
struct alignas(64) MemoryStore::Shard {
  struct Node {
    TokenHash key{};
    SessionHandle handle{};
    int64_t created_ms = 0;
    int64_t last_seen_ms = 0;
    std::unique_ptr<SessionAttributes> attrs;  // null when the session has none
    uint32_t prev = kNil;                      // towards the most recently seen end
    uint32_t next = kNil;                      // towards the least recently seen end; free list
  };
  struct Slot {
    uint32_t tag = 0;   // key bytes 8-11: the home slot, and a cheap filter before the key compare
    uint32_t node = 0;  // node index + 1; 0 = empty
  };

  std::mutex mu;
  std::vector<Node> nodes;
  std::vector<Slot> slots;
  uint32_t free_head = kNil;
  uint32_t lru_head = kNil;  // most recently seen
  uint32_t lru_tail = kNil;  // least recently seen: reclaimed and evicted first
  uint64_t size = 0;
  uint64_t capacity = 0;  // this shard's share of max_sessions

  static uint32_t tag_of(const TokenHash& key) { return load_u32(key.data() + 8); }
  size_t mask() const { return slots.size() - 1; }

  size_t find(const TokenHash& key) const {
    if (slots.empty()) return kNotFound;
    const uint32_t tag = tag_of(key);
    for (size_t i = tag & mask();; i = (i + 1) & mask()) {
      const Slot& s = slots[i];
      if (s.node == 0) return kNotFound;
      if (s.tag == tag && nodes[s.node - 1].key == key) return i;
    }
  }

  void lru_unlink(uint32_t n) {
    Node& node = nodes[n];
    if (node.prev != kNil)
      nodes[node.prev].next = node.next;
    else
      lru_head = node.next;
    if (node.next != kNil)
      nodes[node.next].prev = node.prev;
    else
      lru_tail = node.prev;
    node.prev = node.next = kNil;
  }

  void lru_push_front(uint32_t n) {
    nodes[n].prev = kNil;
    nodes[n].next = lru_head;
    if (lru_head != kNil) nodes[lru_head].prev = n;
    lru_head = n;
    if (lru_tail == kNil) lru_tail = n;
  }

  void place(uint32_t tag, uint32_t node_plus_one) {
    size_t i = tag & mask();
    while (slots[i].node != 0)
      i = (i + 1) & mask();
    slots[i] = {tag, node_plus_one};
  }

  void grow() {
    std::vector<Slot> old = std::move(slots);
    slots.assign(std::max(kMinSlots, old.size() * 2), Slot{});
    for (const Slot& s : old) {
      if (s.node != 0) place(s.tag, s.node);
    }
  }

  // Adds `key` (REQUIRES: absent) as the most recently seen node; returns the node index.
  uint32_t insert(const TokenHash& key) {
    if ((size + 1) * 4 > slots.size() * 3) grow();  // load factor <= 3/4
    uint32_t n;
    if (free_head != kNil) {
      n = free_head;
      free_head = nodes[n].next;
    } else {
      n = static_cast<uint32_t>(nodes.size());
      nodes.emplace_back();
    }
    nodes[n].key = key;
    place(tag_of(key), n + 1);
    lru_push_front(n);
    ++size;
    return n;
  }

  // Removes the node in slot `i`, moving later entries of its probe run back into the gap so that
  // every entry stays reachable from its home slot without tombstones.
  void erase_slot(size_t i) {
    const uint32_t n = slots[i].node - 1;
    lru_unlink(n);
    nodes[n].attrs.reset();
    nodes[n].next = free_head;
    free_head = n;
    --size;

    size_t hole = i;
    for (size_t j = (i + 1) & mask(); slots[j].node != 0; j = (j + 1) & mask()) {
      const size_t home = slots[j].tag & mask();
      // The entry at j may fill the hole unless its home lies cyclically in (hole, j].
      const bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
      if (!stays) {
        slots[hole] = slots[j];
        hole = j;
      }
    }
    slots[hole] = Slot{};
  }
};

MemoryStore::MemoryStore(Millis idle_timeout, Millis absolute_timeout, uint64_t max_sessions)
    : idle_ms_(idle_timeout.count()), absolute_ms_(absolute_timeout.count()) {
  max_sessions = std::max<uint64_t>(max_sessions, 1);
  while (shard_count_ * 2 <= kMaxShards &&
         max_sessions / (shard_count_ * 2) >= kMinSessionsPerShard) {
    shard_count_ *= 2;
  }
  shards_ = std::make_unique<Shard[]>(shard_count_);
  for (size_t i = 0; i < shard_count_; ++i) {
    shards_[i].capacity = max_sessions / shard_count_ + (i < max_sessions % shard_count_ ? 1 : 0);
  }
}

MemoryStore::~MemoryStore() = default;

size_t MemoryStore::shard_index(const TokenHash& key) const {
  return load_u32(key.data()) & (shard_count_ - 1);  // shard_count_ is a power of two
}

MemoryStore::Shard& MemoryStore::shard_for(const TokenHash& key) const {
  return shards_[shard_index(key)];
}

ExpiryKind MemoryStore::expiry_of(int64_t created_ms, int64_t last_seen_ms, int64_t now_ms) const {
  if (now_ms - created_ms > absolute_ms_) return ExpiryKind::kAbsolute;
  if (now_ms - last_seen_ms > idle_ms_) return ExpiryKind::kIdle;
  return ExpiryKind::kNone;
}

void MemoryStore::count_removal(Removal why) {
  switch (why) {
    case Removal::kExpiredIdle:
      expired_idle_.fetch_add(1, std::memory_order_relaxed);
      break;
    case Removal::kExpiredAbsolute:
      expired_absolute_.fetch_add(1, std::memory_order_relaxed);
      break;
    case Removal::kEvicted:
      evicted_.fetch_add(1, std::memory_order_relaxed);
      break;
    case Removal::kDestroyed:
      destroyed_.fetch_add(1, std::memory_order_relaxed);
      break;
    case Removal::kRotated:
      return;  // the session lives on under its new key
  }
  active_.fetch_sub(1, std::memory_order_relaxed);
}

void MemoryStore::make_room(Shard& shard, int64_t now_ms) {
  while (shard.size >= shard.capacity && shard.lru_tail != kNil) {
    const Shard::Node& victim = shard.nodes[shard.lru_tail];
    // A victim that has already expired is counted as expired, not as a capacity eviction.
    switch (expiry_of(victim.created_ms, victim.last_seen_ms, now_ms)) {
      case ExpiryKind::kAbsolute:
        count_removal(Removal::kExpiredAbsolute);
        break;
      case ExpiryKind::kIdle:
        count_removal(Removal::kExpiredIdle);
        break;
      case ExpiryKind::kNone:
        count_removal(Removal::kEvicted);
        break;
    }
    shard.erase_slot(shard.find(victim.key));
  }
}

void MemoryStore::lookup(const TokenHash& key, int64_t now_ms, LookupCallback done) {
  LookupResult result;
  {
    Shard& shard = shard_for(key);
    std::lock_guard lock(shard.mu);
    const size_t slot = shard.find(key);
    if (slot != kNotFound) {
      const Shard::Node& node = shard.nodes[shard.slots[slot].node - 1];
      result.expired = expiry_of(node.created_ms, node.last_seen_ms, now_ms);
      if (result.expired != ExpiryKind::kNone) {
        count_removal(result.expired == ExpiryKind::kIdle ? Removal::kExpiredIdle
                                                          : Removal::kExpiredAbsolute);
        shard.erase_slot(slot);
      } else {
        result.status = StoreStatus::kOk;
        SessionRecord& rec = result.record.emplace();
        rec.handle = node.handle;
        rec.created_ms = node.created_ms;
        rec.last_seen_ms = node.last_seen_ms;
        if (node.attrs) rec.attributes = *node.attrs;
      }
    }
  }
  if (done) done(std::move(result));
}

void MemoryStore::create(const TokenHash& key, const SessionRecord& record, DoneCallback done) {
  StoreStatus status = StoreStatus::kOk;
  {
    Shard& shard = shard_for(key);
    std::lock_guard lock(shard.mu);
    if (shard.find(key) != kNotFound) {
      status = StoreStatus::kUnavailable;
    } else {
      make_room(shard, record.last_seen_ms);
      Shard::Node& node = shard.nodes[shard.insert(key)];
      node.handle = record.handle;
      node.created_ms = record.created_ms;
      node.last_seen_ms = record.last_seen_ms;
      if (!record.attributes.empty()) {
        node.attrs = std::make_unique<SessionAttributes>(record.attributes);
      }
      created_.fetch_add(1, std::memory_order_relaxed);
      active_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (done) done(status);
}

void MemoryStore::update(const TokenHash& key, const SessionRecord& record, DoneCallback done) {
  StoreStatus status = StoreStatus::kNotFound;
  {
    Shard& shard = shard_for(key);
    std::lock_guard lock(shard.mu);
    const size_t slot = shard.find(key);
    if (slot != kNotFound) {
      const uint32_t n = shard.slots[slot].node - 1;
      Shard::Node& node = shard.nodes[n];
      if (record.last_seen_ms > node.last_seen_ms) {
        // Keep the LRU list ordered by last-seen so reclaim can stop at the first live tail.
        node.last_seen_ms = record.last_seen_ms;
        shard.lru_unlink(n);
        shard.lru_push_front(n);
      }
      if (record.attributes.empty()) {
        node.attrs.reset();
      } else if (node.attrs) {
        *node.attrs = record.attributes;
      } else {
        node.attrs = std::make_unique<SessionAttributes>(record.attributes);
      }
      status = StoreStatus::kOk;
    }
  }
  if (done) done(status);
}

void MemoryStore::rotate(const TokenHash& old_key, const TokenHash& new_key,
                         const SessionRecord& record, DoneCallback done) {
  StoreStatus status = StoreStatus::kOk;
  {
    const size_t a = shard_index(old_key);
    const size_t b = shard_index(new_key);
    Shard& from = shards_[a];
    Shard& to = shards_[b];
    // Two shard locks, always taken in index order, so concurrent rotations cannot deadlock.
    std::unique_lock first(shards_[std::min(a, b)].mu);
    std::unique_lock<std::mutex> second;
    if (a != b) second = std::unique_lock(shards_[std::max(a, b)].mu);

    const size_t slot = from.find(old_key);
    if (slot == kNotFound) {
      status = StoreStatus::kNotFound;
    } else if (to.find(new_key) != kNotFound) {
      status = StoreStatus::kUnavailable;
    } else {
      const Shard::Node& old = from.nodes[from.slots[slot].node - 1];
      const SessionHandle handle = old.handle;
      const int64_t created_ms = old.created_ms;
      from.erase_slot(slot);  // the old token stops working in the same critical section
      count_removal(Removal::kRotated);
      make_room(to, record.last_seen_ms);
      Shard::Node& node = to.nodes[to.insert(new_key)];
      node.handle = handle;
      node.created_ms = created_ms;
      node.last_seen_ms = record.last_seen_ms;
      if (!record.attributes.empty()) {
        node.attrs = std::make_unique<SessionAttributes>(record.attributes);
      }
      rotated_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (done) done(status);
}

void MemoryStore::destroy(const TokenHash& key, DoneCallback done) {
  StoreStatus status = StoreStatus::kNotFound;
  {
    Shard& shard = shard_for(key);
    std::lock_guard lock(shard.mu);
    const size_t slot = shard.find(key);
    if (slot != kNotFound) {
      shard.erase_slot(slot);
      count_removal(Removal::kDestroyed);
      status = StoreStatus::kOk;
    }
  }
  if (done) done(status);
}

size_t MemoryStore::reclaim_some(int64_t now_ms, size_t budget) {
  size_t freed = 0;
  size_t examined = 0;
  const size_t start = reclaim_cursor_.fetch_add(1, std::memory_order_relaxed);
  for (size_t k = 0; k < shard_count_ && examined < budget; ++k) {
    Shard& shard = shards_[(start + k) % shard_count_];
    std::lock_guard lock(shard.mu);
    // The tail is the least recently seen; the first live one ends the walk in this shard. A
    // session past its absolute timeout but still in use sits nearer the head: lookup removes it.
    while (examined < budget && shard.lru_tail != kNil) {
      ++examined;
      const Shard::Node& tail = shard.nodes[shard.lru_tail];
      const ExpiryKind kind = expiry_of(tail.created_ms, tail.last_seen_ms, now_ms);
      if (kind == ExpiryKind::kNone) break;
      count_removal(kind == ExpiryKind::kIdle ? Removal::kExpiredIdle : Removal::kExpiredAbsolute);
      shard.erase_slot(shard.find(tail.key));
      ++freed;
    }
  }
  return freed;
}

MemoryStore::Stats MemoryStore::stats() const {
  Stats s;
  s.created = created_.load(std::memory_order_relaxed);
  s.expired_idle = expired_idle_.load(std::memory_order_relaxed);
  s.expired_absolute = expired_absolute_.load(std::memory_order_relaxed);
  s.rotated = rotated_.load(std::memory_order_relaxed);
  s.destroyed = destroyed_.load(std::memory_order_relaxed);
  s.evicted = evicted_.load(std::memory_order_relaxed);
  s.active = static_cast<uint64_t>(std::max<int64_t>(0, active_.load(std::memory_order_relaxed)));
  return s;
}

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
      // Least recently seen first, so loading (which pushes to the front) restores the order.
      for (uint32_t n = shard.lru_tail; n != kNil; n = shard.nodes[n].prev) {
        const Shard::Node& node = shard.nodes[n];
        encode_snapshot_session(buf, node.key, node.handle, node.created_ms, node.last_seen_ms,
                                node.attrs.get());
        ++count;
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
  std::lock_guard lock(shard.mu);
  if (shard.find(key) != kNotFound) return;  // the live store wins over the file
  make_room(shard, now_ms);
  Shard::Node& node = shard.nodes[shard.insert(key)];
  node.handle = record.handle;
  node.created_ms = record.created_ms;
  node.last_seen_ms = record.last_seen_ms;
  if (!record.attributes.empty()) {
    node.attrs = std::make_unique<SessionAttributes>(std::move(record.attributes));
  }
  active_.fetch_add(1, std::memory_order_relaxed);
  ++loaded;
}

SnapshotStatus MemoryStore::load_snapshot(const std::string& path, int64_t now_ms) {
  uint64_t loaded = 0;
  SnapshotStatus st = read_snapshot(path, [&](const TokenHash& key, SessionRecord&& record) {
    insert_loaded(key, std::move(record), now_ms, loaded);
  });
  st.records = loaded;
  return st;
}

}  // namespace sg
