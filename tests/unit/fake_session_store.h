// A small in-memory SessionStore for the gate's unit tests: the contract of session_store.h
// (per-field modify only on a live key, rotation markers with a grace window, destroy status) in
// the simplest form, with counters and switches to play a slow or failing store.
#pragma once

#include <map>
#include <vector>

#include "proxy_core/session/session_attributes.h"
#include "proxy_core/session/session_store.h"

namespace sg::testing {

class FakeSessionStore : public SessionStore {
 public:
  struct Marker {
    TokenHash live;
    int64_t rotated_ms;
    int64_t grace_ms;
  };
  std::map<TokenHash, SessionRecord> live;
  std::map<TokenHash, Marker> markers;
  int lookups = 0, creates = 0, modifies = 0, rotates = 0, destroys = 0;
  bool unavailable = false;                       // every operation answers kUnavailable
  StoreStatus destroy_status = StoreStatus::kOk;  // what destroy reports (it removes anyway on kOk)
  SessionChange last_change;

  int writes() const { return creates + modifies + rotates + destroys; }

  void lookup(const TokenHash& key, int64_t now_ms, LookupCallback done) override {
    ++lookups;
    LookupResult r;
    if (unavailable) {
      r.status = StoreStatus::kUnavailable;
    } else if (auto it = live.find(key); it != live.end()) {
      r.status = StoreStatus::kOk;
      r.record = it->second;
    } else if (auto m = markers.find(key); m != markers.end()) {
      auto session = live.find(m->second.live);
      if (session != live.end()) r.record = session->second;
      r.live_key = m->second.live;
      if (now_ms - m->second.rotated_ms < m->second.grace_ms && r.record) {
        r.status = StoreStatus::kOk;
        r.rotated = RotatedKey::kInGrace;
      } else {
        r.status = StoreStatus::kNotFound;
        r.rotated = RotatedKey::kReplay;
      }
    }
    done(std::move(r));
  }
  void create(const TokenHash& key, const SessionRecord& record, DoneCallback done) override {
    ++creates;
    if (unavailable || live.count(key)) return done(StoreStatus::kUnavailable);
    live[key] = record;
    done(StoreStatus::kOk);
  }
  void modify(const TokenHash& key, const SessionChange& change, int64_t now_ms,
              DoneCallback done) override {
    (void)now_ms;
    ++modifies;
    last_change = change;
    if (unavailable) return done(StoreStatus::kUnavailable);
    auto it = live.find(key);
    if (it == live.end()) return done(StoreStatus::kNotFound);
    StoreStatus s = apply(it->second, change);
    done(s);
  }
  void rotate(const TokenHash& old_key, const TokenHash& new_key, const SessionChange& change,
              int64_t grace_ms, int64_t now_ms, DoneCallback done) override {
    ++rotates;
    last_change = change;
    if (unavailable || live.count(new_key)) return done(StoreStatus::kUnavailable);
    auto it = live.find(old_key);
    if (it == live.end()) return done(StoreStatus::kNotFound);
    SessionRecord moved = it->second;
    if (StoreStatus s = apply(moved, change); s != StoreStatus::kOk) return done(s);
    live.erase(it);
    live[new_key] = moved;
    markers[old_key] = Marker{new_key, now_ms, grace_ms};
    for (auto& [k, m] : markers)  // earlier markers follow the session to its new key
      if (m.live == old_key) m.live = new_key;
    done(StoreStatus::kOk);
  }
  void destroy(const TokenHash& key, DoneCallback done) override {
    ++destroys;
    if (unavailable) return done(StoreStatus::kUnavailable);
    if (destroy_status == StoreStatus::kOk) live.erase(key);
    done(destroy_status);
  }
  bool usable() const override { return !unavailable; }

 private:
  static StoreStatus apply(SessionRecord& record, const SessionChange& change) {
    SessionAttributes attrs = record.attributes;
    for (const auto& [name, value] : change.set)
      if (apply_attribute(attrs, name, value, change.max_attributes ? change.max_attributes : ~0u,
                          change.max_attribute_bytes ? change.max_attribute_bytes : ~0u) !=
          AttributeError::kOk)
        return StoreStatus::kRejected;
    for (const std::string& name : change.remove)
      apply_attribute(attrs, name, "", ~0u, ~0u);
    record.attributes = std::move(attrs);
    if (change.last_seen_ms > 0) record.last_seen_ms = change.last_seen_ms;
    return StoreStatus::kOk;
  }
};

}  // namespace sg::testing
