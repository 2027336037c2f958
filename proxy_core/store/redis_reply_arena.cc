// hiredis reply objects carved from a per-connection arena (redis_reply_arena.h).
#include "proxy_core/store/redis_reply_arena.h"

#include <hiredis/hiredis.h>
#include <hiredis/read.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace sg {
namespace {

// Every object knows its arena: hiredis's freeObject gets only the object.
struct ArenaReply {
  redisReply reply;  // first: hiredis and every reader see a plain redisReply*
  RedisReplyArena* arena;
};

static_assert(alignof(ArenaReply) <= RedisReplyArena::kAlign);

// As hiredis's own reader: a new object is linked into its parent array at its index.
// `extra` bytes follow the object (a string's).
void* new_object(const redisReadTask* task, int type, size_t extra = 0) {
  auto* arena = static_cast<RedisReplyArena*>(task->privdata);
  auto* node = static_cast<ArenaReply*>(arena->allocate(sizeof(ArenaReply) + extra));
  if (node == nullptr) return nullptr;
  std::memset(&node->reply, 0, sizeof node->reply);
  node->reply.type = type;
  node->arena = arena;
  if (task->parent != nullptr) {
    auto* parent = static_cast<redisReply*>(task->parent->obj);
    parent->element[task->idx] = &node->reply;
  }
  return &node->reply;
}

// The object and its bytes in one allocation (the bytes right after it).
void* create_string(const redisReadTask* task, char* str, size_t len) {
  auto* r = static_cast<redisReply*>(new_object(task, task->type, len + 1));
  if (r == nullptr) return nullptr;
  char* copy = reinterpret_cast<char*>(reinterpret_cast<ArenaReply*>(r) + 1);
  std::memcpy(copy, str, len);
  copy[len] = '\0';  // hiredis's strings are NUL-terminated; error texts are read as C strings
  r->str = copy;
  r->len = len;
  return r;
}

void* create_array(const redisReadTask* task, int elements) {
  redisReply** slots = nullptr;
  if (elements > 0) {
    auto* arena = static_cast<RedisReplyArena*>(task->privdata);
    const size_t bytes = static_cast<size_t>(elements) * sizeof(redisReply*);
    slots = static_cast<redisReply**>(arena->allocate(bytes));
    if (slots == nullptr) return nullptr;
    std::memset(slots, 0, bytes);
  }
  auto* r = static_cast<redisReply*>(new_object(task, REDIS_REPLY_ARRAY));
  if (r == nullptr) return nullptr;
  r->element = slots;
  r->elements = elements > 0 ? static_cast<size_t>(elements) : 0;
  return r;
}

void* create_integer(const redisReadTask* task, long long value) {
  auto* r = static_cast<redisReply*>(new_object(task, REDIS_REPLY_INTEGER));
  if (r != nullptr) r->integer = value;
  return r;
}

void* create_nil(const redisReadTask* task) {
  return new_object(task, REDIS_REPLY_NIL);
}

// Called on a reply's root only (redis_reply_arena.h): everything in the arena is that reply's.
void free_reply(void* root) {
  reinterpret_cast<ArenaReply*>(root)->arena->rewind();
}

redisReplyObjectFunctions arena_functions = {create_string, create_array, create_integer,
                                             create_nil, free_reply};

}  // namespace

RedisReplyArena::~RedisReplyArena() {
  rewind();
  std::free(first_);
}

void RedisReplyArena::attach(redisReader* reader) {
  reader->fn = &arena_functions;
  reader->privdata = this;
}

void* RedisReplyArena::allocate_chunk(size_t n) {
  if (first_ == nullptr && n <= kChunkBytes) {
    first_ = static_cast<char*>(std::malloc(kChunkBytes));
    if (first_ == nullptr) return nullptr;
    chunk_ = first_;
    chunk_size_ = kChunkBytes;
  } else {
    // A bigger reply: chunks doubling in size, so that a long list costs few mallocs.
    const size_t size = std::max(n, 2 * std::max(chunk_size_, kChunkBytes));
    char* more = static_cast<char*>(std::malloc(size));
    if (more == nullptr) return nullptr;
    more_.push_back(more);
    chunk_ = more;
    chunk_size_ = size;
  }
  used_ = n;
  return chunk_;
}

void RedisReplyArena::rewind() {
  for (char* c : more_)
    std::free(c);
  more_.clear();
  chunk_ = first_;
  chunk_size_ = first_ != nullptr ? kChunkBytes : 0;
  used_ = 0;
}

}  // namespace sg
