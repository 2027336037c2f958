// One shard of the memory store (memory_store.h): the data structures only, used under the
// shard's mutex by MemoryStore. Internal to memory_store.cc and its tests; not an API.
//
// Sessions: an arena of nodes, an open-addressing index (linear probing, backward-shift deletion,
// so no tombstones) and two intrusive LRU lists through the nodes by 31-bit index, one per
// segment (segmented LRU): probation for sessions that never came back, protected for those that
// did or hold attributes. Rotation markers: a small map beside the index, in creation order.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "proxy_core/session/session_attributes.h"
#include "proxy_core/session/session_store.h"

namespace sg::memory_store_detail {

inline constexpr uint32_t kNil = 0x7fffffffu;  // "no node" in the 31-bit list links
inline constexpr size_t kNoSlot = SIZE_MAX;
inline constexpr size_t kMinSlots = 16;

enum Segment : uint32_t { kProbation = 0, kProtected = 1 };

// Keys are SHA-256 digests, uniformly distributed and not chosen by clients (a client picks the
// token, not its hash), so raw digest bytes serve as hash values: bytes 0-3 pick the shard, bytes
// 8-11 the slot, bytes 16-23 the marker bucket. No hash-flooding defence is needed.
inline uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

struct KeyHasher {
  size_t operator()(const TokenHash& key) const {
    uint64_t v;
    std::memcpy(&v, key.data() + 16, sizeof v);
    return static_cast<size_t>(v);
  }
};

// What a session holds beyond its fixed fields, behind one pointer that is null when it holds
// nothing: attributes, and the client address and user agent recorded at creation. The address
// fits the string's inline buffer for IPv4 (no allocation); the user agent is interned per shard
// (Shard::agents): the sessions of one shard share one copy of each distinct agent, so a session
// pays a pointer for it, not a hundred bytes.
struct SessionExtra {
  SessionAttributes attrs;
  std::string address;
  const std::string* agent = nullptr;  // a key of the shard's `agents`, or null

  std::string_view client_address() const { return address; }
  std::string_view user_agent() const {
    return agent ? std::string_view(*agent) : std::string_view();
  }
  bool empty() const { return attrs.empty() && address.empty() && agent == nullptr; }
};

// What an old key leaves behind after rotate(): where the session went and until when the old key
// still opens it. Forgotten at forget_at_ms (the idle timeout after the rotation).
struct Marker {
  TokenHash new_key{};
  int64_t grace_until_ms = 0;
  int64_t forget_at_ms = 0;
};

struct alignas(64) Shard {
  // 80 bytes: the segment bit shares a word with the `prev` link, so the segmented LRU costs no
  // memory per session.
  struct Node {
    TokenHash key{};
    SessionHandle handle{};
    int64_t created_ms = 0;
    int64_t last_seen_ms = 0;
    std::unique_ptr<SessionExtra> extra;  // null when the session has no attributes and no origin
    uint32_t prev : 31 = kNil;            // towards the most recently seen end
    uint32_t segment : 1 = kProbation;
    uint32_t next = kNil;  // towards the least recently seen end; free list
  };
  struct Slot {
    uint32_t tag = 0;   // key bytes 8-11: the home slot, and a cheap filter before the key compare
    uint32_t node = 0;  // node index + 1; 0 = empty
  };
  struct List {
    uint32_t head = kNil;  // most recently seen
    uint32_t tail = kNil;  // least recently seen: reclaimed and evicted first
  };

  std::mutex mu;
  std::vector<Node> nodes;
  std::vector<Slot> slots;
  uint32_t free_head = kNil;
  List lists[2];  // indexed by Segment
  uint64_t size = 0;
  uint64_t capacity = 0;         // this shard's share of max_sessions
  uint64_t marker_capacity = 1;  // markers held at most (memory_store.h: max(share, floor))
  std::unordered_map<TokenHash, Marker, KeyHasher> markers;
  std::deque<TokenHash> marker_order;  // creation order = forget_at order; same keys as `markers`
  // Interned user agents and how many of this shard's sessions point at each (SessionExtra). A
  // node-based map: a key's address never moves while it is there.
  std::unordered_map<std::string, uint32_t> agents;

  const std::string* intern_agent(std::string_view agent) {
    if (agent.empty()) return nullptr;
    auto [it, added] = agents.try_emplace(std::string(agent), 0);
    ++it->second;
    return &it->first;
  }
  void release_agent(const std::string* agent) {
    if (agent == nullptr) return;
    auto it = agents.find(*agent);
    if (it != agents.end() && --it->second == 0) agents.erase(it);
  }

  static uint32_t tag_of(const TokenHash& key) { return load_u32(key.data() + 8); }
  size_t mask() const { return slots.size() - 1; }
  Node& node_at(size_t slot) { return nodes[slots[slot].node - 1]; }
  uint32_t index_at(size_t slot) const { return slots[slot].node - 1; }

  size_t find(const TokenHash& key) const {
    if (slots.empty()) return kNoSlot;
    const uint32_t tag = tag_of(key);
    for (size_t i = tag & mask();; i = (i + 1) & mask()) {
      const Slot& s = slots[i];
      if (s.node == 0) return kNoSlot;
      if (s.tag == tag && nodes[s.node - 1].key == key) return i;
    }
  }

  void lru_unlink(uint32_t n) {
    Node& node = nodes[n];
    List& list = lists[node.segment];
    if (node.prev != kNil)
      nodes[node.prev].next = node.next;
    else
      list.head = node.next;
    if (node.next != kNil)
      nodes[node.next].prev = node.prev;
    else
      list.tail = node.prev;
    node.prev = kNil;
    node.next = kNil;
  }

  void lru_push_front(uint32_t n, Segment segment) {
    List& list = lists[segment];
    nodes[n].segment = segment;
    nodes[n].prev = kNil;
    nodes[n].next = list.head;
    if (list.head != kNil) nodes[list.head].prev = n;
    list.head = n;
    if (list.tail == kNil) list.tail = n;
  }

  // Moves node n to the front of `segment` (its own list or the other one).
  void lru_touch(uint32_t n, Segment segment) {
    lru_unlink(n);
    lru_push_front(n, segment);
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

  // Adds `key` (REQUIRES: absent) at the front of `segment`; returns the node index.
  uint32_t insert(const TokenHash& key, Segment segment) {
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
    lru_push_front(n, segment);
    ++size;
    return n;
  }

  // Removes the node in slot `i`, moving later entries of its probe run back into the gap so that
  // every entry stays reachable from its home slot without tombstones.
  void erase_slot(size_t i) {
    const uint32_t n = slots[i].node - 1;
    lru_unlink(n);
    if (nodes[n].extra) release_agent(nodes[n].extra->agent);
    nodes[n].extra.reset();
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

  // The marker under `key` that is not yet forgotten at now_ms, or null.
  const Marker* find_marker(const TokenHash& key, int64_t now_ms) const {
    if (markers.empty()) return nullptr;  // the common case: no rotation in this shard lately
    auto it = markers.find(key);
    if (it == markers.end() || now_ms >= it->second.forget_at_ms) return nullptr;
    return &it->second;
  }

  // Adds a marker (REQUIRES: `key` is neither a marker nor a node). At most `marker_capacity`
  // markers: beyond that the one closest to its forget_at is forgotten early (its old token stops
  // being recognised at once). Every marker lives the same idle_timeout, so that is the oldest
  // one, at the front of marker_order. Returns how many were forgotten early.
  uint64_t add_marker(const TokenHash& key, const Marker& marker) {
    uint64_t dropped = 0;
    while (!marker_order.empty() && markers.size() >= std::max<uint64_t>(marker_capacity, 1)) {
      drop_oldest_marker();
      ++dropped;
    }
    markers.emplace(key, marker);
    marker_order.push_back(key);
    return dropped;
  }

  void drop_oldest_marker() {
    markers.erase(marker_order.front());
    marker_order.pop_front();
  }

  // Forgets markers whose time is over, oldest first, up to `budget`; returns how many.
  size_t forget_markers(int64_t now_ms, size_t budget) {
    size_t n = 0;
    while (n < budget && !marker_order.empty() &&
           now_ms >= markers.at(marker_order.front()).forget_at_ms) {
      drop_oldest_marker();
      ++n;
    }
    return n;
  }
};

}  // namespace sg::memory_store_detail
