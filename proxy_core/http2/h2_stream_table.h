// The open streams of one HTTP/2 connection, by stream id, and a few spare objects to open the
// next ones with: no allocation per stream once the connection is warm (a std::map costs a node
// per stream, and a new per-stream object each time).
//
// Contract
// - Owns the objects it holds, open or spare. take() hands an open one back to the caller
//   (who gives it back with recycle() or lets it die).
// - Ids are kept sorted in a vector: a client opens streams with increasing ids (RFC 9113
//   §5.1.1), so insert appends, and find is a binary search over at most
//   max_concurrent_streams entries.
// - T has reset(): called by recycle(), it brings the object back to its state after
//   construction while keeping the capacity of its buffers.
// - Single thread; pointers to held objects stay valid until they are taken.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

namespace sg {

template <class T>
class H2StreamTable {
 public:
  using Entry = std::pair<int32_t, std::unique_ptr<T>>;

  // Spare objects kept at most: enough for the streams a busy client keeps open at once
  // (h2load -m 10, a browser's page load); more are freed.
  static constexpr size_t kMaxSpare = 16;

  T* find(int32_t id) const {
    auto it = lower(id);
    return it != open_.end() && it->first == id ? it->second.get() : nullptr;
  }

  // A spare object (reset) or null: the caller builds one then.
  std::unique_ptr<T> spare() {
    if (spare_.empty()) return nullptr;
    std::unique_ptr<T> obj = std::move(spare_.back());
    spare_.pop_back();
    return obj;
  }

  // Holds `obj` as stream `id` (replacing one already there).
  T& insert(int32_t id, std::unique_ptr<T> obj) {
    T& ref = *obj;
    if (open_.empty() || open_.back().first < id) {
      open_.emplace_back(id, std::move(obj));
      return ref;
    }
    auto it = lower(id);
    if (it != open_.end() && it->first == id) {
      it->second = std::move(obj);
    } else {
      open_.emplace(it, id, std::move(obj));
    }
    return ref;
  }

  // Removes stream `id` and hands its object over (null when there is none).
  std::unique_ptr<T> take(int32_t id) {
    auto it = lower(id);
    if (it == open_.end() || it->first != id) return nullptr;
    std::unique_ptr<T> obj = std::move(it->second);
    open_.erase(it);
    return obj;
  }

  // Removes the stream with the lowest id and hands its object over (null when empty).
  std::unique_ptr<T> take_first() {
    if (open_.empty()) return nullptr;
    std::unique_ptr<T> obj = std::move(open_.front().second);
    open_.erase(open_.begin());
    return obj;
  }

  // Keeps `obj` for a next stream (reset now), or frees it when enough are spare.
  void recycle(std::unique_ptr<T> obj) {
    if (obj == nullptr || spare_.size() >= kMaxSpare) return;
    obj->reset();
    spare_.push_back(std::move(obj));
  }

  bool empty() const { return open_.empty(); }
  size_t size() const { return open_.size(); }
  // The open streams in id order, for reading: (id, object) pairs.
  const std::vector<Entry>& open() const { return open_; }

 private:
  typename std::vector<Entry>::const_iterator lower(int32_t id) const {
    return std::lower_bound(open_.begin(), open_.end(), id,
                            [](const Entry& e, int32_t v) { return e.first < v; });
  }
  typename std::vector<Entry>::iterator lower(int32_t id) {
    return std::lower_bound(open_.begin(), open_.end(), id,
                            [](const Entry& e, int32_t v) { return e.first < v; });
  }

  std::vector<Entry> open_;
  std::vector<std::unique_ptr<T>> spare_;
};

}  // namespace sg
