// The floor of any read/write proxy on this kernel, for run_bench.sh (issue 17 item 1): a minimal
// epoll forwarder. Every accepted client connection gets its own upstream connection; bytes are
// copied both ways with one read and one write per readiness event; nothing is parsed, nothing is
// pooled, there are no timers. Whatever sessiongate spends beyond this forwarder is ours, not
// the kernel's.
//
//   null_proxy LISTEN_PORT UPSTREAM_PORT      (both on 127.0.0.1; runs until killed)
//
// Backpressure: when a write is short, the rest waits in that direction's buffer, reading from
// the source stops, and EPOLLOUT on the destination resumes it; so memory per connection pair is
// bounded by two buffers. A benchmark tool, not product code: errors close the pair.
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

constexpr size_t kBuf = 16384;

struct Pair;

// One direction's socket: reading from `fd` goes into `peer`'s pending buffer when the peer
// cannot take it all at once.
struct End {
  int fd = -1;
  Pair* pair = nullptr;
  End* peer = nullptr;
  char pending[kBuf];
  size_t pending_off = 0, pending_len = 0;  // bytes read from `peer` not yet written to `fd`
  bool connected = true;
};

struct Pair {
  End client, upstream;
  bool closed = false;
};

int g_epoll = -1;
sockaddr_in g_upstream{};
std::vector<Pair*> g_closed;

// The events `e` waits for: writable while it has pending bytes (or connects), readable while
// its peer has room (nothing pending towards the peer).
void update(End* e) {
  epoll_event ev{};
  ev.data.ptr = e;
  ev.events = 0;
  if (e->pending_len > 0 || !e->connected) ev.events |= EPOLLOUT;
  if (e->connected && e->peer->pending_len == 0) ev.events |= EPOLLIN;
  epoll_ctl(g_epoll, EPOLL_CTL_MOD, e->fd, &ev);
}

void close_pair(Pair* p) {
  if (p->closed) return;
  p->closed = true;
  close(p->client.fd);
  close(p->upstream.fd);
  // Freed after the current epoll batch: a later event of this batch may still point at it.
  g_closed.push_back(p);
}

// Writes `data` to `to`; what does not fit waits in `to->pending`. Returns false on error.
bool forward(End* to, const char* data, size_t len) {
  ssize_t n = write(to->fd, data, len);
  if (n < 0) {
    if (errno != EAGAIN) return false;
    n = 0;
  }
  if (static_cast<size_t>(n) < len) {
    memcpy(to->pending, data + n, len - n);
    to->pending_off = 0;
    to->pending_len = len - n;
    update(to);
    update(to->peer);  // stop reading from the source
  }
  return true;
}

void on_readable(End* e) {
  char buf[kBuf];
  ssize_t n = read(e->fd, buf, sizeof buf);
  if (n == 0 || (n < 0 && errno != EAGAIN)) return close_pair(e->pair);
  if (n < 0) return;
  if (!forward(e->peer, buf, n)) close_pair(e->pair);
}

void on_writable(End* e) {
  if (!e->connected) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(e->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return close_pair(e->pair);
    e->connected = true;
    update(e);
    update(e->peer);
    return;
  }
  ssize_t n = write(e->fd, e->pending + e->pending_off, e->pending_len);
  if (n < 0 && errno != EAGAIN) return close_pair(e->pair);
  if (n > 0) {
    e->pending_off += n;
    e->pending_len -= n;
  }
  if (e->pending_len == 0) {
    update(e);
    update(e->peer);  // room again: read from the source
  }
}

void accept_all(int listener) {
  for (;;) {
    int c = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK);
    if (c < 0) return;
    int u = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(u, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto* p = new Pair;
    p->client.fd = c;
    p->upstream.fd = u;
    p->client.pair = p->upstream.pair = p;
    p->client.peer = &p->upstream;
    p->upstream.peer = &p->client;
    int rc = connect(u, reinterpret_cast<sockaddr*>(&g_upstream), sizeof g_upstream);
    if (rc < 0 && errno != EINPROGRESS) {
      close(c);
      close(u);
      delete p;
      continue;
    }
    p->upstream.connected = rc == 0;
    epoll_event ev{};
    ev.data.ptr = &p->client;
    epoll_ctl(g_epoll, EPOLL_CTL_ADD, c, &ev);
    ev.data.ptr = &p->upstream;
    epoll_ctl(g_epoll, EPOLL_CTL_ADD, u, &ev);
    update(&p->client);
    update(&p->upstream);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: null_proxy LISTEN_PORT UPSTREAM_PORT\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  g_upstream.sin_family = AF_INET;
  g_upstream.sin_port = htons(atoi(argv[2]));
  g_upstream.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

  int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(atoi(argv[1]));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(listener, 4096) != 0) {
    perror("null_proxy: listen");
    return 1;
  }
  g_epoll = epoll_create1(0);
  epoll_event lev{};
  lev.events = EPOLLIN;
  lev.data.ptr = nullptr;  // the listener
  epoll_ctl(g_epoll, EPOLL_CTL_ADD, listener, &lev);

  epoll_event events[256];
  for (;;) {
    int n = epoll_wait(g_epoll, events, 256, -1);
    for (int i = 0; i < n; ++i) {
      auto* e = static_cast<End*>(events[i].data.ptr);
      if (e == nullptr) {
        accept_all(listener);
        continue;
      }
      if (e->pair->closed) continue;
      if (events[i].events & (EPOLLERR | EPOLLHUP)) {
        close_pair(e->pair);
        continue;
      }
      if (events[i].events & EPOLLOUT) on_writable(e);
      if (!e->pair->closed && (events[i].events & EPOLLIN)) on_readable(e);
    }
    for (Pair* p : g_closed)
      delete p;
    g_closed.clear();
  }
}
