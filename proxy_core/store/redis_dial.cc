// Dialing Redis on a libuv loop and asking a Sentinel for the master (redis_dial.h).
#include "proxy_core/store/redis_dial.h"

#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <charconv>

namespace sg {
namespace {

void poll_cb(uv_poll_t* handle, int status, int events) {
  auto* p = static_cast<redisLibuvEvents*>(handle->data);
  if (status < 0) events = UV_READABLE;
  if (p->context != nullptr && (events & UV_READABLE)) redisAsyncHandleRead(p->context);
  if (p->context != nullptr && (events & UV_WRITABLE)) redisAsyncHandleWrite(p->context);
}

void poll_update(void* privdata, int add, int remove) {
  auto* p = static_cast<redisLibuvEvents*>(privdata);
  p->events = (p->events | add) & ~remove;
  if (p->events != 0) {
    uv_poll_start(&p->handle, p->events, poll_cb);
  } else {
    uv_poll_stop(&p->handle);
  }
}

// redisLibuvAttach plus the hooks above (why: redis_dial.h).
bool attach(redisAsyncContext* ac, uv_loop_t* loop) {
  if (redisLibuvAttach(ac, loop) != REDIS_OK) return false;
  ac->ev.addRead = [](void* p) { poll_update(p, UV_READABLE, 0); };
  ac->ev.delRead = [](void* p) { poll_update(p, 0, UV_READABLE); };
  ac->ev.addWrite = [](void* p) { poll_update(p, UV_WRITABLE, 0); };
  ac->ev.delWrite = [](void* p) { poll_update(p, 0, UV_WRITABLE); };
  return true;
}

}  // namespace

bool split_host_port(const std::string& address, std::string& host, int& port) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  const char* first = address.data() + colon + 1;
  const char* last = address.data() + address.size();
  auto [ptr, ec] = std::from_chars(first, last, port);
  return ec == std::errc() && ptr == last && port > 0 && port < 65536 && !host.empty();
}

redisAsyncContext* redis_dial(uv_loop_t* loop, const std::string& address, bool allow_unix,
                              std::string& problem) {
  redisAsyncContext* ac = nullptr;
  if (allow_unix && !address.empty() && address.front() == '/') {
    ac = redisAsyncConnectUnix(address.c_str());
  } else {
    std::string host;
    int port = 0;
    if (!split_host_port(address, host, port)) {
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
  if (split_host_port(sentinel, host, port)) ac = redisAsyncConnect(host.c_str(), port);
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
  std::string address = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  address.append(":").append(reply->element[1]->str, reply->element[1]->len);
  return address;
}

}  // namespace sg
