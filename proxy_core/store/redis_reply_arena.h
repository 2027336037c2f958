// Where a hiredis connection builds its replies: one arena per connection instead of a malloc per
// reply element. Used by the libuv binding (redis_dial.cc) for every connection it attaches.
//
// Why: hiredis's default reader allocates every redisReply, every string and every element array
// on its own (calloc + malloc + memcpy, and as many frees after the callback): a returning visit's
// HGETALL reply of ~8 fields cost ~35 allocator calls, a fifth of the gateway's own Redis cost
// (callgrind). The replies built here are the same redisReply structs (every reader of a reply is
// unchanged), carved from one chunk that is rewound when hiredis frees the reply.
//
// Why rewinding is safe: a connection's reader builds one reply at a time. hiredis frees only the
// root of a reply (redisProcessCallbacks after the callback, the reader on a protocol error or when
// it is freed), and it does so before the reader creates the first object of the next reply; so at
// a root's free every object in the arena belongs to that root. A reply read in several parts keeps
// its objects across reads until then.
//
// Ownership and threading: the arena belongs to the connection's binding (redis_dial.cc's
// LoopEvents), which outlives the hiredis reader (it is freed by uv close callbacks that run after
// redisAsyncFree returned). One thread: the connection's loop.
#pragma once

#include <cstddef>
#include <vector>

struct redisReader;

namespace sg {

class RedisReplyArena {
 public:
  // Enough for any session hash within the default attribute bounds; bigger replies (a user's
  // session list, a script's sweep result) take more chunks until their free.
  static constexpr size_t kChunkBytes = 4096;

  RedisReplyArena() = default;
  ~RedisReplyArena();
  RedisReplyArena(const RedisReplyArena&) = delete;
  RedisReplyArena& operator=(const RedisReplyArena&) = delete;

  // Makes `reader` build its replies here. REQUIRES: this arena outlives the reader.
  void attach(redisReader* reader);

  // Every allocation's alignment: enough for redisReply's fields (checked in the .cc).
  static constexpr size_t kAlign = 8;

  // `n` bytes aligned to kAlign, or nullptr when out of memory (hiredis then fails the connection
  // with an out-of-memory error, as with its own reader). Inline: one per reply element.
  void* allocate(size_t n) {
    n = (n + kAlign - 1) & ~(kAlign - 1);
    if (chunk_size_ - used_ >= n && n != 0) {
      void* p = chunk_ + used_;
      used_ += n;
      return p;
    }
    return allocate_chunk(n);
  }
  // Frees everything allocated since the last rewind; the first chunk is kept for the next reply.
  void rewind();

 private:
  void* allocate_chunk(size_t n);  // from a new chunk

  char* first_ = nullptr;    // kChunkBytes, allocated on first use
  char* chunk_ = nullptr;    // the chunk allocations come from
  size_t used_ = 0;          // bytes used in chunk_
  size_t chunk_size_ = 0;    // bytes in chunk_
  std::vector<char*> more_;  // chunks beyond the first, freed at rewind
};

}  // namespace sg
