// Dialing Redis on a libuv loop and asking a Sentinel for the master (redis_dial.h).
#include "proxy_core/store/redis_dial.h"

// First: hiredis 0.14's sds.h has no C++ guard, and hiredis.h includes it outside its own.
extern "C" {
#include <hiredis/sds.h>
}

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>

#include "proxy_core/net/host_port.h"
#include "proxy_core/store/redis_reply_arena.h"

namespace sg {
namespace {

// Our libuv binding of a hiredis asynchronous context, in place of hiredis/adapters/libuv.h (why:
// redis_dial.h). One poll handle watches the socket; a prepare and a check handle write what the
// loop turn queued. Replies are built in a per-connection arena (redis_reply_arena.h).
struct LoopEvents {
  redisAsyncContext* context;
  uv_poll_t poll;
  uv_prepare_t before_poll;  // a flush for commands queued by timers, idle and check callbacks
  uv_check_t after_poll;     // a flush for commands queued by I/O callbacks (the usual case)
  int events = 0;            // what `poll` watches: UV_READABLE, UV_WRITABLE
  bool flushing = false;     // inside flush: an unfinished write now waits for UV_WRITABLE
  int open_handles = 3;      // freed when the last close callback ran
  // The connection's replies (redis_reply_arena.h): outlives hiredis's reader, which frees a
  // partial reply when the context is freed, after cleanup() started closing the handles.
  RedisReplyArena replies;
};

void poll_cb(uv_poll_t* handle, int status, int events) {
  auto* p = static_cast<LoopEvents*>(handle->data);
  if (status < 0) events = UV_READABLE;
  if (p->context != nullptr && (events & UV_READABLE)) redisAsyncHandleRead(p->context);
  if (p->context != nullptr && (events & UV_WRITABLE)) redisAsyncHandleWrite(p->context);
}

// Every uv_poll_start costs an epoll_ctl DEL at once and an ADD (plus a MOD) at the next poll,
// and hiredis re-adds reading after every read and write: change the poll only when the set of
// events changes.
void watch(LoopEvents* p, int events) {
  if (events == p->events) return;
  p->events = events;
  if (events != 0) {
    uv_poll_start(&p->poll, events, poll_cb);
  } else {
    uv_poll_stop(&p->poll);
  }
}

void stop_flush(LoopEvents* p) {
  uv_prepare_stop(&p->before_poll);
  uv_check_stop(&p->after_poll);
}

// hiredis's own write (redisBufferWrite) frees the output buffer after every complete write and
// allocates a new one for the next command: a calloc, a realloc and a free per loop turn, ~700
// instructions (callgrind). This writes the buffer as it would and keeps it, up to
// kKeptOutputBytes (a burst's big buffer goes back to hiredis, which frees it). True when
// everything was written; otherwise hiredis's write takes over: it writes what is left after a
// short write, waits for writability after EAGAIN, and drops the connection after an error, which
// is recorded in the context as hiredis records it (a second write would not see it again: a
// reset is reported once, then EPIPE).
constexpr size_t kKeptOutputBytes = 64 * 1024;

bool write_output(redisAsyncContext* ac) {
  redisContext* c = &ac->c;
  if (c->err != 0 || (c->flags & REDIS_CONNECTED) == 0) return false;
  const size_t len = sdslen(c->obuf);
  if (len == 0 || len + sdsavail(c->obuf) > kKeptOutputBytes) return false;
  ssize_t n;
  do {
    n = ::send(c->fd, c->obuf, len, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      c->err = REDIS_ERR_IO;
      std::snprintf(c->errstr, sizeof c->errstr, "%s", std::strerror(errno));
    }
    return false;
  }
  if (static_cast<size_t>(n) < len) {
    sdsrange(c->obuf, static_cast<int>(n), -1);
    return false;
  }
  sdsclear(c->obuf);
  return true;
}

void flush(LoopEvents* p) {
  stop_flush(p);
  if (p->context == nullptr) return;
  if (write_output(p->context)) {
    watch(p, (p->events | UV_READABLE) & ~UV_WRITABLE);  // as hiredis after a complete write
    return;
  }
  p->flushing = true;
  redisAsyncHandleWrite(p->context);  // may free the context: p stays until its handles close
  p->flushing = false;
}

// hiredis has output to write. Once connected, it is written in this loop turn, after the
// callbacks that queue commands ran: the commands of several requests leave in one write(2),
// and the poll is not changed (no epoll_ctl). Before the connection is up, and when a write
// could not finish, the socket's writability decides, as in hiredis's own adapter.
void add_write(void* privdata) {
  auto* p = static_cast<LoopEvents*>(privdata);
  if (!p->flushing && (p->context->c.flags & REDIS_CONNECTED) != 0) {
    uv_prepare_start(&p->before_poll,
                     [](uv_prepare_t* h) { flush(static_cast<LoopEvents*>(h->data)); });
    uv_check_start(&p->after_poll, [](uv_check_t* h) { flush(static_cast<LoopEvents*>(h->data)); });
    return;
  }
  watch(p, p->events | UV_WRITABLE);
}

void del_write(void* privdata) {
  auto* p = static_cast<LoopEvents*>(privdata);
  stop_flush(p);
  watch(p, p->events & ~UV_WRITABLE);
}

void on_handle_closed(uv_handle_t* h) {
  auto* p = static_cast<LoopEvents*>(h->data);
  if (--p->open_handles == 0) delete p;
}

void cleanup(void* privdata) {
  auto* p = static_cast<LoopEvents*>(privdata);
  p->context = nullptr;  // hiredis is freeing it
  uv_close(reinterpret_cast<uv_handle_t*>(&p->poll), on_handle_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&p->before_poll), on_handle_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&p->after_poll), on_handle_closed);
}

bool attach(redisAsyncContext* ac, uv_loop_t* loop) {
  if (ac->ev.data != nullptr) return false;
  auto* p = new LoopEvents{};
  p->context = ac;
  if (uv_poll_init(loop, &p->poll, ac->c.fd) != 0) {
    delete p;
    return false;
  }
  uv_prepare_init(loop, &p->before_poll);
  uv_check_init(loop, &p->after_poll);
  p->poll.data = p->before_poll.data = p->after_poll.data = p;
  ac->ev.data = p;
  ac->ev.addRead = [](void* d) {
    auto* e = static_cast<LoopEvents*>(d);
    watch(e, e->events | UV_READABLE);
  };
  ac->ev.delRead = [](void* d) {
    auto* e = static_cast<LoopEvents*>(d);
    watch(e, e->events & ~UV_READABLE);
  };
  ac->ev.addWrite = add_write;
  ac->ev.delWrite = del_write;
  ac->ev.cleanup = cleanup;
  p->replies.attach(ac->c.reader);
  return true;
}

}  // namespace

bool redis_host_port(const std::string& address, std::string& host, int& port) {
  const std::optional<HostPort> split = split_host_port(address);
  const std::optional<uint16_t> number = split ? parse_port(split->port) : std::nullopt;
  if (!number || *number == 0 || split->host.empty()) return false;
  host = std::string(split->host);
  port = *number;
  return true;
}

redisAsyncContext* redis_dial(uv_loop_t* loop, const std::string& address, bool allow_unix,
                              std::string& problem) {
  redisAsyncContext* ac = nullptr;
  if (allow_unix && !address.empty() && address.front() == '/') {
    ac = redisAsyncConnectUnix(address.c_str());
  } else {
    std::string host;
    int port = 0;
    if (!redis_host_port(address, host, port)) {
      problem = "not host:port or a socket path";
      return nullptr;
    }
    ac = redisAsyncConnect(host.c_str(), port);
  }
  if (ac == nullptr) {
    problem = "out of memory";
    return nullptr;
  }
  if (ac->err != 0) {
    problem = ac->errstr;
  } else if (!attach(ac, loop)) {
    problem = "cannot watch socket";
  } else {
    return ac;
  }
  redisAsyncFree(ac);
  return nullptr;
}

redisAsyncContext* ask_sentinel_for_master(uv_loop_t* loop, const std::string& sentinel,
                                           const std::string& master_name, RedisReplyFn fn,
                                           void* privdata, std::string& error) {
  std::string host;
  int port = 0;
  redisAsyncContext* ac = nullptr;
  if (redis_host_port(sentinel, host, port)) ac = redisAsyncConnect(host.c_str(), port);
  if (ac != nullptr && ac->err == 0 && attach(ac, loop)) {
    const char* argv[] = {"SENTINEL", "get-master-addr-by-name", master_name.c_str()};
    const size_t lengths[] = {8, 23, master_name.size()};
    if (redisAsyncCommandArgv(ac, fn, privdata, 3, argv, lengths) == REDIS_OK) return ac;
  }
  if (ac != nullptr && ac->err != 0) error = ac->errstr;
  if (ac != nullptr) redisAsyncFree(ac);
  return nullptr;
}

std::string master_address_of(const redisReply* reply) {
  if (reply == nullptr || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
      reply->element[0]->type != REDIS_REPLY_STRING ||
      reply->element[1]->type != REDIS_REPLY_STRING) {
    return {};
  }
  std::string host(reply->element[0]->str, reply->element[0]->len);
  std::string address = bracket_host(host);
  address.append(":").append(reply->element[1]->str, reply->element[1]->len);
  return address;
}

}  // namespace sg
