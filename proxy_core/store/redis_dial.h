// Opening hiredis asynchronous connections on a libuv loop, and the one question the Redis
// client asks a Sentinel. Used by the Redis client (redis_client.h) only.
//
// Why our own libuv binding instead of hiredis/adapters/libuv.h:
// - hiredis 0.14's adapter ignores a poll error status, and libuv reports a socket error (a
//   refused connect, a reset) to uv_poll only as UV_EBADF with the handle stopped: hiredis would
//   never learn of it, and the connection would hang until the client's timeouts. Our poll
//   callback hands an error to hiredis as readable, where the read (or the pending connect's
//   SO_ERROR) reports it.
// - The adapter restarts the poll whenever hiredis asks, and hiredis asks after every read and
//   every write; each uv_poll_start costs epoll_ctl calls (9 per returning visit, measured with
//   strace). Ours changes the poll only when the set of events changes.
// - Once connected, what hiredis has to write leaves in the same loop turn, from a uv_check
//   (after the I/O callbacks that queue commands) or a uv_prepare (for commands queued by timers
//   and idle callbacks), instead of waiting one more turn for the socket to turn writable: the
//   commands of every request of that turn leave in one write(2), and the poll never changes.
//   Before the connection is up, and when a write could not finish, writability decides, as in
//   hiredis's adapter.
// - That write keeps hiredis's output buffer for the next turn (hiredis frees and re-allocates it
//   after each complete write), and replies are built in a per-connection arena instead of a
//   malloc per element (redis_reply_arena.h): most of the allocator calls of a returning visit.
#pragma once

#include <uv.h>

#include <string>

struct redisAsyncContext;
struct redisReply;

namespace sg {

// "host:port" or "[v6]:port" into what redisAsyncConnect takes: host (brackets removed) and port
// (1..65535). The parsing is net/host_port's.
bool redis_host_port(const std::string& address, std::string& host, int& port);

// Starts a connection to `address` ("host:port", "[v6]:port", or, when `allow_unix`, a socket
// path starting with '/') and attaches it to `loop`. On failure returns nullptr and sets
// `problem` (ac->errstr, "not host:port or a socket path", "out of memory" or "cannot watch
// socket").
redisAsyncContext* redis_dial(uv_loop_t* loop, const std::string& address, bool allow_unix,
                              std::string& problem);

// Asks the sentinel at `sentinel` (host:port) where `master_name` is: SENTINEL
// get-master-addr-by-name on a new connection, whose reply goes to `fn(ac, reply, privdata)`.
// Returns the connection (its owner frees it), or nullptr with `error` set to hiredis's error
// text when there is one (else left empty).
using RedisReplyFn = void (*)(redisAsyncContext* ac, void* reply, void* privdata);
redisAsyncContext* ask_sentinel_for_master(uv_loop_t* loop, const std::string& sentinel,
                                           const std::string& master_name, RedisReplyFn fn,
                                           void* privdata, std::string& error);

// The master's address from that question's reply: "host:port" ("[v6]:port" for an IPv6 host),
// or empty when the reply is no such answer (null, an error, an unknown master).
std::string master_address_of(const redisReply* reply);

}  // namespace sg
