// One chunk of HTTP/1.1 chunked framing as write buffers, for the two places that re-frame a body
// as they relay it (a chunked request body to the upstream, a response body to the client): the
// size line, the bytes themselves (not copied) and the CRLF after them.
#pragma once

#include <uv.h>

#include <string>

#include "proxy_core/http/header_rewrite.h"

namespace sg {

struct ChunkBufs {
  // `scratch` holds the size line; it and `data` must stay valid while the buffers are used.
  ChunkBufs(const char* data, size_t len, std::string& scratch) {
    scratch.clear();
    append_chunk_header(len, scratch);
    bufs[0] = uv_buf_init(scratch.data(), static_cast<unsigned>(scratch.size()));
    bufs[1] = uv_buf_init(const_cast<char*>(data), static_cast<unsigned>(len));
    bufs[2] = uv_buf_init(const_cast<char*>(kChunkTrailer.data()),
                          static_cast<unsigned>(kChunkTrailer.size()));
  }
  static constexpr unsigned kCount = 3;
  uv_buf_t bufs[kCount];
};

}  // namespace sg
