// A reference model of the session store contract (proxy_core/session/session_store.h) and a driver
// that runs random create/modify/rotate/destroy/lookup/reclaim sequences against a MemoryStore and
// the model side by side. Used by the memory store's unit test (random numbers) and by the
// memory_store fuzz target (the fuzzer's bytes). No test framework: comparisons go to `check`.
//
// What it proves besides agreement: no record ever returned belongs to a destroyed session, by
// any key (live, in grace, replayed), and writes to a non-live key never create anything.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "proxy_core/session/token.h"
#include "proxy_core/store/memory_store.h"

namespace sg_store_model {

inline sg::TokenHash model_key(int i) {
  return sg::hash_token("model-key-" + std::to_string(i));
}

class Model {
 public:
  struct Session {
    int handle = 0;
    int64_t created_ms = 0, last_seen_ms = 0;
    sg::SessionAttributes attrs;
  };
  struct Mark {
    int new_key = 0;
    int64_t grace_until_ms = 0, forget_at_ms = 0;
  };

  Model(int64_t idle_ms, int64_t absolute_ms) : idle_ms_(idle_ms), absolute_ms_(absolute_ms) {}
  int64_t idle_ms() const { return idle_ms_; }

  std::map<int, Session> live;  // key -> session
  std::map<int, Mark> marks;    // old key -> marker
  std::set<int> destroyed_handles;

  // The live session under `k` at now, removing it when expired (as the store does).
  Session* live_at(int k, int64_t now) {
    auto it = live.find(k);
    if (it == live.end()) return nullptr;
    const Session& s = it->second;
    if (now - s.created_ms > absolute_ms_ || now - s.last_seen_ms > idle_ms_) {
      live.erase(it);
      return nullptr;
    }
    return &it->second;
  }

  static void apply(Session& s, const sg::SessionChange& c) {
    auto drop = [&s](const std::string& name) {
      std::erase_if(s.attrs, [&name](const auto& a) { return a.first == name; });
    };
    for (const std::string& name : c.remove)
      drop(name);
    for (const auto& entry : c.set) {
      drop(entry.first);
      if (!entry.second.empty()) s.attrs.push_back(entry);
    }
    std::sort(s.attrs.begin(), s.attrs.end());
    s.last_seen_ms = std::max(s.last_seen_ms, c.last_seen_ms);
  }

  sg::LookupResult lookup(int k, int64_t now) {
    sg::LookupResult r;
    bool via = false, grace = false;
    for (int hop = 0; hop <= sg::MemoryStore::kMaxMarkerHops; ++hop) {
      const bool known = live.count(k) != 0;
      if (Session* s = live_at(k, now)) {
        r.record.emplace();
        r.record->handle[0] = static_cast<uint8_t>(s->handle);
        r.record->handle[1] = static_cast<uint8_t>(s->handle >> 8);
        r.record->attributes = s->attrs;
        r.status = !via || grace ? sg::StoreStatus::kOk : sg::StoreStatus::kNotFound;
        if (via) r.live_key = model_key(k);
        break;
      }
      if (known) break;  // expired: removed, the chain ends here
      auto m = marks.find(k);
      if (m == marks.end() || now >= m->second.forget_at_ms) break;
      if (!via) grace = now < m->second.grace_until_ms;
      via = true;
      k = m->second.new_key;
    }
    if (via && !grace) r.rotated = sg::RotatedKey::kReplay;
    if (via && grace && r.status == sg::StoreStatus::kOk) r.rotated = sg::RotatedKey::kInGrace;
    return r;
  }

 private:
  int64_t idle_ms_;
  int64_t absolute_ms_;
};

inline int handle_of(const sg::SessionRecord& r) {
  return r.handle[0] | r.handle[1] << 8;
}

template <class Check>
void compare_lookup(const sg::LookupResult& got, const sg::LookupResult& want, const Model& model,
                    Check& check) {
  check(got.status == want.status, "lookup status");
  check(got.rotated == want.rotated, "lookup rotated");
  check(got.record.has_value() == want.record.has_value(), "lookup record presence");
  if (got.record && want.record) {
    check(model.destroyed_handles.count(handle_of(*got.record)) == 0,
          "a destroyed session came back");
    check(handle_of(*got.record) == handle_of(*want.record), "lookup handle");
    check(got.record->attributes == want.record->attributes, "lookup attributes");
    check(got.live_key == want.live_key, "lookup live key");
  }
}

// Source: bool more(); uint32_t next(uint32_t n) -> [0, n). Check: void(bool ok, const char*).
// The store must be fresh, with room for every session created (no eviction) and the timeouts
// the model was built with.
template <class Source, class Check>
void run(sg::MemoryStore& store, Model& model, Source& src, Check check) {
  int next_key = 0;
  int next_handle = 0;
  int64_t now = 1'700'000'000'000;
  static const char* const kNames[] = {"a", "b", "role"};
  auto any_key = [&] { return next_key == 0 ? 0 : static_cast<int>(src.next(next_key)); };
  auto random_change = [&] {
    sg::SessionChange c;
    if (src.next(2)) c.set = {{kNames[src.next(3)], std::to_string(src.next(10))}};
    if (src.next(3) == 0) c.remove = {kNames[src.next(3)]};
    if (src.next(2)) c.last_seen_ms = now;
    return c;
  };
  sg::StoreStatus st{};
  auto keep = [&st](sg::StoreStatus s) { st = s; };
  while (src.more()) {
    now += src.next(40);
    const uint32_t what = src.next(11);
    if (what < 2 || next_key == 0) {
      const int k = next_key++;
      const int h = next_handle++;
      sg::SessionRecord r;
      r.created_ms = r.last_seen_ms = now;
      r.handle[0] = static_cast<uint8_t>(h);
      r.handle[1] = static_cast<uint8_t>(h >> 8);
      store.create(model_key(k), r, keep);
      check(st == sg::StoreStatus::kOk, "create");
      model.live[k] = {h, now, now, {}};
    } else if (what < 4) {
      const int k = any_key();
      const sg::SessionChange c = random_change();
      Model::Session* s = model.live_at(k, now);
      store.modify(model_key(k), c, now, keep);
      check(st == (s ? sg::StoreStatus::kOk : sg::StoreStatus::kNotFound), "modify status");
      if (s != nullptr) Model::apply(*s, c);
    } else if (what < 5) {
      const int k = any_key();
      const int fresh = next_key++;
      const int64_t grace = src.next(200);
      const sg::SessionChange c = random_change();
      Model::Session* s = model.live_at(k, now);
      store.rotate(model_key(k), model_key(fresh), c, grace, now, keep);
      check(st == (s ? sg::StoreStatus::kOk : sg::StoreStatus::kNotFound), "rotate status");
      if (s != nullptr) {
        Model::Session moved = *s;
        Model::apply(moved, c);
        model.live.erase(k);
        model.live[fresh] = moved;
        model.marks[k] = {fresh, now + grace, now + model.idle_ms()};
      }
    } else if (what < 6) {
      const int k = any_key();
      store.destroy(model_key(k), keep);
      if (Model::Session* s = model.live_at(k, now)) {
        check(st == sg::StoreStatus::kOk, "destroy of a live key");
        model.destroyed_handles.insert(s->handle);
        model.live.erase(k);
      }
    } else if (what < 10) {
      const int k = any_key();
      sg::LookupResult got;
      store.lookup(model_key(k), now, [&got](sg::LookupResult r) { got = std::move(r); });
      compare_lookup(got, model.lookup(k, now), model, check);
    } else {
      store.reclaim_some(now, src.next(64));
    }
  }
}

}  // namespace sg_store_model
