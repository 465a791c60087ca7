// linux-tcp-bench: the Linux-kernel TCP anchor for Sluice's TCP benchmarks (bench/TCP_PERF.md).
//
// One thread, Linux epoll, non-blocking sockets, TCP_NODELAY on every socket, pinned to one CPU
// with --cpu N. The client prints exactly one `client: ...` line on stdout, in the same format
// as sluice-echo's client and sluice-tcp-wire-bench, so bench/run_tcp_bench.py parses all three
// the same way.
//
//   linux-tcp-bench server --listen IP:PORT [--discard] [--cpu N] [--duration S]
//       Echo server (every byte back; on the peer's EOF, after everything has been echoed, it
//       shuts down its write side and closes) or, with --discard, a discard server (read and
//       drop). Prints a line containing `ready` (and the bound port: PORT may be 0) once it
//       listens. Exits 0 on SIGINT/SIGTERM or after --duration seconds.
//
//   linux-tcp-bench client --connect IP:PORT --rr SIZE --conns N --duration S [--cpu N]
//       N connections, each with exactly one SIZE-byte request outstanding: send it, wait for
//       the full SIZE-byte echo (checked byte for byte), send the next. The window starts once
//       all N connections are established.
//       -> client: rr conns=N size=SIZE transactions=T seconds=D tps=X
//
//   linux-tcp-bench client --connect IP:PORT --cps --conns N --duration S [--size 64] [--cpu N]
//       N concurrent loops of: connect, send one SIZE-byte request, read its echo, close (the
//       client closes first). Window starts immediately. A connect() failing with
//       EADDRNOTAVAIL (ephemeral ports all in TIME_WAIT) is counted, reported on stderr, and
//       retried 1 ms later; it is not an error.
//       -> client: cps conns=N connections=C seconds=D cps=X
//
//   Any client mode also takes --sources A.B.C.D,COUNT: bind each new connection's source
//   address (not its port: IP_BIND_ADDRESS_NO_PORT) round-robin to COUNT consecutive addresses
//   from A.B.C.D. On loopback (127.0.0.0/8 is all local) this gives cps COUNT ephemeral-port
//   spaces instead of one: with one, connect() spends its time searching for a port that is
//   not in TIME_WAIT, and the rate stops at about one connection per even port per second
//   (~14k/s with the default 28k-port range), a limit of the 4-tuple space, not of the stack.
//
//   linux-tcp-bench client --connect IP:PORT --bulk --duration S [--size 65536] [--cpu N]
//       One connection sending SIZE-byte writes continuously (to a discard server). Window
//       starts immediately; bytes = bytes accepted by send() minus what is still unacknowledged
//       in the socket's send queue at the end (SIOCOUTQ).
//       -> client: bulk bytes=B seconds=D gbps=X
//
// Both take --spin: epoll_wait(..., 0) in a loop, never sleeping, so the thread keeps its CPU
// busy the way a DPDK poll-mode worker does (no wake-up latency; the default sleeps in
// epoll_wait, as ordinary Linux servers do).
//
// Exit status: 0 on success, 1 on errors (printed on stderr), 2 on bad usage.

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "bench/tcp/linux_sockets.hpp"

namespace {

using namespace sluice::bench::linux_sockets;

bool g_spin = false;
// --sources A.B.C.D,N: client connections bound round-robin to N consecutive source addresses.
uint32_t g_source_first = 0;  // host order
uint32_t g_source_count = 0;
uint32_t g_source_next = 0;

double now_s() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Milliseconds to wait in epoll_wait so that `end` is not overslept (at most 100 ms, so that
// signals and deadlines are noticed promptly).
int wait_ms(double end) {
    if (g_spin) return 0;
    double left = end - now_s();
    if (left <= 0) return 0;
    double ms = left * 1e3;
    return ms >= 100 ? 100 : static_cast<int>(ms) + 1;
}

enum class Mode { none, server, rr, cps, bulk };

struct Options {
    Mode mode = Mode::none;
    std::string addr_text;
    sockaddr_in addr{};
    bool discard = false;
    bool spin = false;  // epoll_wait never sleeps (busy polling, like a poll-mode driver)
    int cpu = -1;
    double duration = 0;  // server: 0 = until a signal
    long size = -1;       // rr: from --rr; cps: 64; bulk: 65536
    long conns = 1;
    uint32_t source_first = 0;
    uint32_t source_count = 0;  // 0: the kernel picks the source address
};

void usage() {
    std::fprintf(
        stderr,
        "usage:\n"
        "  linux-tcp-bench server --listen IP:PORT [--discard] [--cpu N] [--duration S] [--spin]\n"
        "  linux-tcp-bench client --connect IP:PORT --rr SIZE --conns N --duration S "
        "[--cpu N]\n"
        "  linux-tcp-bench client --connect IP:PORT --cps --conns N --duration S "
        "[--size 64] [--cpu N]\n"
        "  linux-tcp-bench client --connect IP:PORT --bulk --duration S "
        "[--size 65536] [--cpu N]\n"
        "  client --sources A.B.C.D,COUNT: source addresses, round-robin\n"
        "  --spin: epoll_wait with a zero timeout (busy polling) instead of sleeping\n");
}

// Returns 0 on success, 2 on bad usage (after printing why).
int parse_args(int argc, char** argv, Options* o) {
    if (argc < 2) {
        usage();
        return 2;
    }
    std::string_view role(argv[1]);
    bool server = role == "server";
    if (!server && role != "client") {
        std::fprintf(stderr, "linux-tcp-bench: first argument must be server or client\n");
        usage();
        return 2;
    }
    bool have_duration = false;
    for (int i = 2; i < argc; ++i) {
        std::string_view a(argv[i]);
        const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
        auto bad = [&](const char* what) {
            std::fprintf(stderr, "linux-tcp-bench: bad or missing value for %s%s%s\n", argv[i],
                         what[0] ? ": " : "", what);
            return 2;
        };
        if (server && a == "--listen") {
            if (v == nullptr || !parse_addr(v, 0, &o->addr)) return bad("want IPv4:PORT");
            o->addr_text = v;
            ++i;
        } else if (!server && a == "--connect") {
            if (v == nullptr || !parse_addr(v, 0, &o->addr)) return bad("want IPv4:PORT");
            o->addr_text = v;
            ++i;
        } else if (server && a == "--discard") {
            o->discard = true;
        } else if (a == "--spin") {
            o->spin = true;
        } else if (a == "--cpu") {
            long c = 0;
            if (!parse_long(v, 0, CPU_SETSIZE - 1, &c)) return bad("");
            o->cpu = static_cast<int>(c);
            ++i;
        } else if (a == "--duration") {
            if (!parse_seconds(v, &o->duration)) return bad("want seconds > 0");
            have_duration = true;
            ++i;
        } else if (!server && a == "--rr") {
            if (o->mode != Mode::none) return bad("one of --rr, --cps, --bulk");
            if (!parse_long(v, 1, 1L << 24, &o->size)) return bad("want 1..16777216");
            o->mode = Mode::rr;
            ++i;
        } else if (!server && a == "--cps") {
            if (o->mode != Mode::none) return bad("one of --rr, --cps, --bulk");
            o->mode = Mode::cps;
        } else if (!server && a == "--bulk") {
            if (o->mode != Mode::none) return bad("one of --rr, --cps, --bulk");
            o->mode = Mode::bulk;
        } else if (!server && a == "--size") {
            long s = 0;
            if (!parse_long(v, 1, 1L << 24, &s)) return bad("want 1..16777216");
            if (o->mode == Mode::rr) return bad("--rr takes the size itself");
            o->size = s;
            ++i;
        } else if (!server && a == "--sources") {
            std::string t(v ? v : "");
            auto comma = t.find(',');
            long count = 0;
            in_addr first{};
            if (comma == std::string::npos ||
                inet_pton(AF_INET, t.substr(0, comma).c_str(), &first) != 1 ||
                !parse_long(t.c_str() + comma + 1, 1, 65536, &count))
                return bad("want A.B.C.D,COUNT");
            o->source_first = ntohl(first.s_addr);
            o->source_count = static_cast<uint32_t>(count);
            ++i;
        } else if (!server && a == "--conns") {
            if (!parse_long(v, 1, 100000, &o->conns)) return bad("want 1..100000");
            ++i;
        } else if (a == "-h" || a == "--help") {
            usage();
            return 2;
        } else {
            std::fprintf(stderr, "linux-tcp-bench %s: unknown option %s\n", argv[1], argv[i]);
            usage();
            return 2;
        }
    }
    if (o->addr_text.empty()) {
        std::fprintf(stderr, "linux-tcp-bench: %s is required\n",
                     server ? "--listen" : "--connect");
        return 2;
    }
    if (server) {
        o->mode = Mode::server;
        return 0;
    }
    if (o->mode == Mode::none) {
        std::fprintf(stderr, "linux-tcp-bench client: one of --rr SIZE, --cps, --bulk\n");
        return 2;
    }
    if (!have_duration) {
        std::fprintf(stderr, "linux-tcp-bench client: --duration is required\n");
        return 2;
    }
    if (o->size < 0 && o->mode == Mode::rr) {
        // Cannot happen: --rr sets it.
        return 2;
    }
    if (o->mode == Mode::cps && o->size < 0) o->size = 64;
    if (o->mode == Mode::bulk) {
        if (o->size < 0) o->size = 65536;
        if (o->conns != 1) {
            std::fprintf(stderr, "linux-tcp-bench client: --bulk uses one connection\n");
            return 2;
        }
    }
    if (o->addr.sin_port == 0) {
        std::fprintf(stderr, "linux-tcp-bench client: --connect needs a port\n");
        return 2;
    }
    return 0;
}

bool epoll_set(int ep, int op, int fd, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    if (epoll_ctl(ep, op, fd, &ev) != 0) {
        std::fprintf(stderr, "linux-tcp-bench: epoll_ctl(fd %d): %s\n", fd, std::strerror(errno));
        return false;
    }
    return true;
}

constexpr int kMaxEvents = 256;

// ---------------------------------------------------------------------------------------------
// Server

struct ServerConn {
    bool open = false;
    bool peer_eof = false;
    bool want_out = false;  // registered for EPOLLOUT (and not EPOLLIN): echo backlog
    size_t head = 0;        // echo backlog: buf[head, tail)
    size_t tail = 0;
    std::vector<char> buf;
};

constexpr size_t kServerBuf = 64 * 1024;

int run_server(const Options& o) {
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0) {
        std::fprintf(stderr, "server: socket: %s\n", std::strerror(errno));
        return 1;
    }
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    set_nodelay(lfd);  // inherited by accepted sockets; set again on each below anyway
    if (bind(lfd, reinterpret_cast<const sockaddr*>(&o.addr), sizeof o.addr) != 0) {
        std::fprintf(stderr, "server: bind %s: %s\n", o.addr_text.c_str(), std::strerror(errno));
        return 1;
    }
    if (listen(lfd, SOMAXCONN) != 0) {
        std::fprintf(stderr, "server: listen: %s\n", std::strerror(errno));
        return 1;
    }
    sockaddr_in bound{};
    socklen_t blen = sizeof bound;
    getsockname(lfd, reinterpret_cast<sockaddr*>(&bound), &blen);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0 || !epoll_set(ep, EPOLL_CTL_ADD, lfd, EPOLLIN)) return 1;

    char ip[INET_ADDRSTRLEN] = "?";
    inet_ntop(AF_INET, &bound.sin_addr, ip, sizeof ip);
    std::printf("server: ready listen=%s:%u port=%u mode=%s cpu=%d\n", ip, ntohs(bound.sin_port),
                ntohs(bound.sin_port), o.discard ? "discard" : "echo", o.cpu);
    std::fflush(stdout);

    std::vector<ServerConn> conns;
    std::vector<char> discard_buf(o.discard ? 256 * 1024 : 0);
    // resets: connections that ended in an error, typically a client closing with its last
    // request unanswered at the end of its run (normal), or a client crash.
    uint64_t accepted = 0, closed = 0, resets = 0, rx_bytes = 0, tx_bytes = 0;
    uint64_t accept_errors = 0;  // EMFILE and the like: printed the first few times
    const double end = o.duration > 0 ? now_s() + o.duration : 0;

    auto close_conn = [&](int fd) {
        close(fd);  // also removes it from the epoll set
        conns[fd].open = false;
        ++closed;
    };

    // Echo what is in the backlog; false if the connection was closed (error).
    auto flush = [&](int fd, ServerConn& c) -> bool {
        while (c.head < c.tail) {
            ssize_t n = send(fd, c.buf.data() + c.head, c.tail - c.head, MSG_NOSIGNAL);
            if (n > 0) {
                c.head += static_cast<size_t>(n);
                tx_bytes += static_cast<uint64_t>(n);
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
            ++resets;
            close_conn(fd);
            return false;
        }
        if (c.head == c.tail) c.head = c.tail = 0;
        return true;
    };

    // After I/O: pick the events to wait for, or finish the connection.
    auto settle = [&](int fd, ServerConn& c) {
        bool backlog = c.head < c.tail;
        if (!backlog && c.peer_eof) {
            shutdown(fd, SHUT_WR);
            close_conn(fd);
            return;
        }
        if (backlog != c.want_out) {
            c.want_out = backlog;
            if (!epoll_set(ep, EPOLL_CTL_MOD, fd, backlog ? EPOLLOUT : EPOLLIN)) close_conn(fd);
        }
    };

    epoll_event evs[kMaxEvents];
    while (!g_stop) {
        int timeout = end > 0 ? wait_ms(end) : (g_spin ? 0 : 100);
        if (end > 0 && now_s() >= end) break;
        int n = epoll_wait(ep, evs, kMaxEvents, timeout);
        if (n < 0) {
            if (errno == EINTR) continue;
            std::fprintf(stderr, "server: epoll_wait: %s\n", std::strerror(errno));
            return 1;
        }
        for (int i = 0; i < n; ++i) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                for (;;) {
                    int cfd = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (cfd < 0) {
                        if (errno == EINTR || errno == ECONNABORTED) continue;
                        if (errno != EAGAIN && errno != EWOULDBLOCK && accept_errors++ < 5)
                            std::fprintf(stderr, "server: accept: %s\n", std::strerror(errno));
                        break;
                    }
                    set_nodelay(cfd);
                    if (static_cast<size_t>(cfd) >= conns.size()) conns.resize(cfd + 1024);
                    ServerConn& c = conns[cfd];
                    c.open = true;
                    c.peer_eof = false;
                    c.want_out = false;
                    c.head = c.tail = 0;
                    if (!o.discard && c.buf.empty()) c.buf.resize(kServerBuf);
                    ++accepted;
                    if (!epoll_set(ep, EPOLL_CTL_ADD, cfd, EPOLLIN)) close_conn(cfd);
                }
                continue;
            }
            if (static_cast<size_t>(fd) >= conns.size() || !conns[fd].open) continue;
            ServerConn& c = conns[fd];
            if (o.discard) {
                for (int burst = 0; burst < 16; ++burst) {  // level-triggered: back soon
                    ssize_t r = recv(fd, discard_buf.data(), discard_buf.size(), 0);
                    if (r > 0) {
                        rx_bytes += static_cast<uint64_t>(r);
                        if (static_cast<size_t>(r) < discard_buf.size()) break;
                        continue;
                    }
                    if (r < 0 && errno == EINTR) continue;
                    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
                    if (r < 0) ++resets;
                    close_conn(fd);  // EOF or error
                    break;
                }
                continue;
            }
            if (c.want_out) {
                if (flush(fd, c)) settle(fd, c);
                continue;
            }
            // EPOLLIN (or EPOLLERR/EPOLLHUP, which recv reports): read what fits, echo it.
            ssize_t r = recv(fd, c.buf.data() + c.tail, c.buf.size() - c.tail, 0);
            if (r > 0) {
                c.tail += static_cast<size_t>(r);
                rx_bytes += static_cast<uint64_t>(r);
            } else if (r == 0) {
                c.peer_eof = true;
            } else if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) {
                continue;
            } else {
                ++resets;
                close_conn(fd);
                continue;
            }
            if (flush(fd, c)) settle(fd, c);
        }
    }
    std::fprintf(stderr,
                 "server: stop accepted=%llu closed=%llu resets=%llu rx_bytes=%llu "
                 "tx_bytes=%llu\n",
                 static_cast<unsigned long long>(accepted), static_cast<unsigned long long>(closed),
                 static_cast<unsigned long long>(resets), static_cast<unsigned long long>(rx_bytes),
                 static_cast<unsigned long long>(tx_bytes));
    for (size_t fd = 0; fd < conns.size(); ++fd)
        if (conns[fd].open) close(static_cast<int>(fd));
    close(lfd);
    close(ep);
    return 0;
}

// ---------------------------------------------------------------------------------------------
// Client

// Starts a non-blocking connect; returns the fd, or -1 with errno set.
int start_connect(const sockaddr_in& addr) {
    int fd = nodelay_socket();
    if (fd < 0) return -1;
    if (g_source_count > 0) {
        // Bind the address only; connect() picks the port for the 4-tuple.
        int one = 1;
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        sockaddr_in src{};
        src.sin_family = AF_INET;
        src.sin_addr.s_addr = htonl(g_source_first + g_source_next++ % g_source_count);
        if (bind(fd, reinterpret_cast<const sockaddr*>(&src), sizeof src) != 0) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
    }
    if (!begin_connect(fd, addr)) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

enum class Phase { idle, connecting, sending, receiving };

struct ClientConn {
    int fd = -1;
    Phase phase = Phase::idle;
    bool want_out = false;  // registered for EPOLLOUT rather than EPOLLIN
    bool need_out = false;  // exchange() is waiting for writability
    size_t sent = 0;
    size_t received = 0;
    uint8_t tag = 0;  // the byte the current request is filled with
    double retry_at = 0;
};

// One request/response exchange step on a connected socket. Sends what remains of the request,
// then reads the echo. Returns 1 when the full echo is in, 0 when it must wait (c.need_out says
// whether for writability or for data), -1 on error (message printed).
int exchange(ClientConn& c, std::vector<char>& req, std::vector<char>& resp, const char* mode) {
    const size_t size = req.size();
    if (c.phase == Phase::sending) {
        while (c.sent < size) {
            ssize_t n = send(c.fd, req.data() + c.sent, size - c.sent, MSG_NOSIGNAL);
            if (n > 0) {
                c.sent += static_cast<size_t>(n);
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                c.need_out = true;
                return 0;
            }
            std::fprintf(stderr, "client %s: send: %s\n", mode, std::strerror(errno));
            return -1;
        }
        c.need_out = false;
        c.phase = Phase::receiving;
    }
    while (c.received < size) {
        ssize_t n = recv(c.fd, resp.data() + c.received, size - c.received, 0);
        if (n > 0) {
            c.received += static_cast<size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
        if (n == 0) {
            std::fprintf(stderr, "client %s: server closed the connection after %zu of %zu bytes\n",
                         mode, c.received, size);
        } else {
            std::fprintf(stderr, "client %s: recv: %s\n", mode, std::strerror(errno));
        }
        return -1;
    }
    if (std::memcmp(req.data(), resp.data(), size) != 0) {
        std::fprintf(stderr, "client %s: the echo differs from the request\n", mode);
        return -1;
    }
    return 1;
}

void begin_request(ClientConn& c, std::vector<char>& req) {
    ++c.tag;
    std::memset(req.data(), 'a' + c.tag % 26, req.size());
    c.sent = 0;
    c.received = 0;
    c.need_out = false;
    c.phase = Phase::sending;
}

bool update_events(int ep, ClientConn& c, bool want_out) {
    if (want_out == c.want_out) return true;
    c.want_out = want_out;
    return epoll_set(ep, EPOLL_CTL_MOD, c.fd, want_out ? EPOLLOUT : EPOLLIN);
}

int run_rr(const Options& o) {
    const size_t n = static_cast<size_t>(o.conns);
    const size_t size = static_cast<size_t>(o.size);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
        std::fprintf(stderr, "client rr: epoll_create1: %s\n", std::strerror(errno));
        return 1;
    }
    std::vector<ClientConn> conns(n);
    std::vector<int> by_fd;
    // One request buffer per connection (the tag differs); one shared receive buffer would do
    // for the bytes, but the echo is compared per connection.
    std::vector<std::vector<char>> req(n, std::vector<char>(size));
    std::vector<std::vector<char>> resp(n, std::vector<char>(size));

    // Connect all N; the window starts once all are established (bounded: 10 s + duration).
    const double connect_deadline = now_s() + 10 + o.duration;
    for (size_t i = 0; i < n; ++i) {
        int fd = start_connect(o.addr);
        if (fd < 0) {
            std::fprintf(stderr, "client rr: connect %s (connection %zu): %s\n",
                         o.addr_text.c_str(), i, std::strerror(errno));
            return 1;
        }
        if (static_cast<size_t>(fd) >= by_fd.size()) by_fd.resize(fd + 1024, -1);
        by_fd[fd] = static_cast<int>(i);
        conns[i].fd = fd;
        conns[i].phase = Phase::connecting;
        conns[i].want_out = true;
        if (!epoll_set(ep, EPOLL_CTL_ADD, fd, EPOLLOUT)) return 1;
    }
    epoll_event evs[kMaxEvents];
    size_t established = 0;
    while (established < n) {
        if (g_stop || now_s() >= connect_deadline) {
            std::fprintf(stderr, "client rr: only %zu of %zu connections established\n",
                         established, n);
            return 1;
        }
        int k = epoll_wait(ep, evs, kMaxEvents, wait_ms(connect_deadline));
        if (k < 0 && errno != EINTR) {
            std::fprintf(stderr, "client rr: epoll_wait: %s\n", std::strerror(errno));
            return 1;
        }
        for (int e = 0; e < k; ++e) {
            ClientConn& c = conns[by_fd[evs[e].data.fd]];
            if (c.phase != Phase::connecting) continue;
            int err = socket_error(c.fd);
            if (err != 0) {
                std::fprintf(stderr, "client rr: connect %s: %s\n", o.addr_text.c_str(),
                             std::strerror(err));
                return 1;
            }
            c.phase = Phase::idle;
            if (!update_events(ep, c, false)) return 1;
            ++established;
        }
    }

    uint64_t transactions = 0;
    const double t0 = now_s();
    const double end = t0 + o.duration;
    for (size_t i = 0; i < n; ++i) {
        begin_request(conns[i], req[i]);
        int r = exchange(conns[i], req[i], resp[i], "rr");
        if (r < 0) return 1;
        if (!update_events(ep, conns[i], conns[i].need_out)) return 1;
        // r == 1 cannot happen before the server had a chance to answer; handled below anyway.
    }
    double t1 = t0;
    for (;;) {
        t1 = now_s();
        if (t1 >= end || g_stop) break;
        int k = epoll_wait(ep, evs, kMaxEvents, wait_ms(end));
        if (k < 0) {
            if (errno == EINTR) continue;
            std::fprintf(stderr, "client rr: epoll_wait: %s\n", std::strerror(errno));
            return 1;
        }
        for (int e = 0; e < k; ++e) {
            size_t i = static_cast<size_t>(by_fd[evs[e].data.fd]);
            ClientConn& c = conns[i];
            for (int burst = 0; burst < 64; ++burst) {  // bounded: the deadline is seen
                int r = exchange(c, req[i], resp[i], "rr");
                if (r < 0) return 1;
                if (r == 0) break;
                ++transactions;
                begin_request(c, req[i]);
            }
            if (!update_events(ep, c, c.need_out)) return 1;
        }
    }
    const double secs = t1 - t0;
    std::printf("client: rr conns=%zu size=%zu transactions=%llu seconds=%.3f tps=%.0f\n", n, size,
                static_cast<unsigned long long>(transactions), secs,
                secs > 0 ? static_cast<double>(transactions) / secs : 0.0);
    std::fflush(stdout);
    for (auto& c : conns) close(c.fd);
    close(ep);
    return 0;
}

int run_cps(const Options& o) {
    const size_t n = static_cast<size_t>(o.conns);
    const size_t size = static_cast<size_t>(o.size);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
        std::fprintf(stderr, "client cps: epoll_create1: %s\n", std::strerror(errno));
        return 1;
    }
    std::vector<ClientConn> slots(n);
    std::vector<int> by_fd;
    std::vector<std::vector<char>> req(n, std::vector<char>(size));
    std::vector<std::vector<char>> resp(n, std::vector<char>(size));
    uint64_t connections = 0, addr_unavail = 0, errors = 0;
    size_t retrying = 0;

    // Starts slot i's next connection; false on a fatal error.
    auto open_slot = [&](size_t i, double now) -> bool {
        ClientConn& c = slots[i];
        int fd = start_connect(o.addr);
        if (fd < 0) {
            if (errno == EADDRNOTAVAIL || errno == EAGAIN) {
                // No ephemeral port free (TIME_WAIT): not an error, try again in 1 ms.
                ++addr_unavail;
                c.phase = Phase::idle;
                c.retry_at = now + 1e-3;
                ++retrying;
                return true;
            }
            std::fprintf(stderr, "client cps: connect %s: %s\n", o.addr_text.c_str(),
                         std::strerror(errno));
            return false;
        }
        if (static_cast<size_t>(fd) >= by_fd.size()) by_fd.resize(fd + 1024, -1);
        by_fd[fd] = static_cast<int>(i);
        c.fd = fd;
        c.phase = Phase::connecting;
        c.want_out = true;
        return epoll_set(ep, EPOLL_CTL_ADD, fd, EPOLLOUT);
    };
    auto close_slot = [&](ClientConn& c) {
        close(c.fd);
        by_fd[c.fd] = -1;
        c.fd = -1;
        c.phase = Phase::idle;
    };

    const double t0 = now_s();
    const double end = t0 + o.duration;
    for (size_t i = 0; i < n; ++i)
        if (!open_slot(i, t0)) return 1;
    epoll_event evs[kMaxEvents];
    double t1 = t0;
    for (;;) {
        t1 = now_s();
        if (t1 >= end || g_stop) break;
        if (retrying > 0) {
            for (size_t i = 0; i < n; ++i) {
                ClientConn& c = slots[i];
                if (c.fd < 0 && c.retry_at <= t1) {
                    --retrying;
                    if (!open_slot(i, t1)) return 1;
                }
            }
        }
        int timeout = retrying > 0 && !g_spin ? 1 : wait_ms(end);
        int k = epoll_wait(ep, evs, kMaxEvents, timeout);
        if (k < 0) {
            if (errno == EINTR) continue;
            std::fprintf(stderr, "client cps: epoll_wait: %s\n", std::strerror(errno));
            return 1;
        }
        double now = now_s();
        for (int e = 0; e < k; ++e) {
            int fd = evs[e].data.fd;
            if (static_cast<size_t>(fd) >= by_fd.size() || by_fd[fd] < 0) continue;
            size_t i = static_cast<size_t>(by_fd[fd]);
            ClientConn& c = slots[i];
            if (c.phase == Phase::connecting) {
                int err = socket_error(fd);
                if (err != 0) {
                    // A refused or reset handshake under load: an error, but keep measuring.
                    if (errors < 5)
                        std::fprintf(stderr, "client cps: connect %s: %s\n", o.addr_text.c_str(),
                                     std::strerror(err));
                    ++errors;
                    close_slot(c);
                    if (!open_slot(i, now)) return 1;
                    continue;
                }
                begin_request(c, req[i]);
            }
            int r = exchange(c, req[i], resp[i], "cps");
            if (r < 0) {
                ++errors;
                close_slot(c);
                if (!open_slot(i, now)) return 1;
                continue;
            }
            if (r == 0) {
                if (!update_events(ep, c, c.need_out)) return 1;
                continue;
            }
            close_slot(c);  // the client closes first
            ++connections;
            if (!open_slot(i, now)) return 1;
        }
    }
    const double secs = t1 - t0;
    std::printf("client: cps conns=%zu connections=%llu seconds=%.3f cps=%.0f\n", n,
                static_cast<unsigned long long>(connections), secs,
                secs > 0 ? static_cast<double>(connections) / secs : 0.0);
    std::fflush(stdout);
    if (addr_unavail > 0)
        std::fprintf(stderr,
                     "client cps: eaddrnotavail=%llu (no free ephemeral port, retried after 1 ms; "
                     "see net.ipv4.tcp_tw_reuse)\n",
                     static_cast<unsigned long long>(addr_unavail));
    for (auto& c : slots)
        if (c.fd >= 0) close(c.fd);
    close(ep);
    if (errors > 0) {
        std::fprintf(stderr, "client cps: %llu connections failed\n",
                     static_cast<unsigned long long>(errors));
        return 1;
    }
    return 0;
}

int run_bulk(const Options& o) {
    const size_t size = static_cast<size_t>(o.size);
    std::vector<char> buf(size, 'b');
    const double t0 = now_s();
    const double end = t0 + o.duration;
    int fd = start_connect(o.addr);
    if (fd < 0) {
        std::fprintf(stderr, "client bulk: connect %s: %s\n", o.addr_text.c_str(),
                     std::strerror(errno));
        return 1;
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0 || !epoll_set(ep, EPOLL_CTL_ADD, fd, EPOLLOUT)) return 1;
    bool connected = false;
    uint64_t bytes = 0;
    size_t off = 0;
    epoll_event evs[4];
    double t1 = t0;
    for (;;) {
        t1 = now_s();
        if (t1 >= end || g_stop) break;
        int k = epoll_wait(ep, evs, 4, wait_ms(end));
        if (k < 0) {
            if (errno == EINTR) continue;
            std::fprintf(stderr, "client bulk: epoll_wait: %s\n", std::strerror(errno));
            return 1;
        }
        if (k == 0) continue;
        if (!connected) {
            int err = socket_error(fd);
            if (err != 0) {
                std::fprintf(stderr, "client bulk: connect %s: %s\n", o.addr_text.c_str(),
                             std::strerror(err));
                return 1;
            }
            connected = true;
        }
        // Bounded, so that the deadline is seen even when the receiver keeps up.
        for (int burst = 0; burst < 64; ++burst) {
            ssize_t w = send(fd, buf.data() + off, size - off, MSG_NOSIGNAL);
            if (w > 0) {
                bytes += static_cast<uint64_t>(w);
                off = (off + static_cast<size_t>(w)) % size;
                continue;
            }
            if (w < 0 && errno == EINTR) continue;
            if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
            std::fprintf(stderr, "client bulk: send: %s\n", std::strerror(errno));
            return 1;
        }
    }
    if (!connected) {
        std::fprintf(stderr, "client bulk: not connected within %.3f s\n", o.duration);
        return 1;
    }
    // Bytes still in the send queue were not delivered within the window.
    int unacked = 0;
    if (ioctl(fd, SIOCOUTQ, &unacked) == 0 && unacked > 0 &&
        static_cast<uint64_t>(unacked) <= bytes)
        bytes -= static_cast<uint64_t>(unacked);
    const double secs = t1 - t0;
    std::printf("client: bulk bytes=%llu seconds=%.3f gbps=%.3f\n",
                static_cast<unsigned long long>(bytes), secs,
                secs > 0 ? static_cast<double>(bytes) * 8 / secs / 1e9 : 0.0);
    std::fflush(stdout);
    close(fd);
    close(ep);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    if (int rc = parse_args(argc, argv, &o); rc != 0) return rc;
    if (!pin("linux-tcp-bench", o.cpu)) return 1;
    g_spin = o.spin;
    g_source_first = o.source_first;
    g_source_count = o.source_count;
    raise_fd_limit();
    set_signals();
    switch (o.mode) {
        case Mode::server:
            return run_server(o);
        case Mode::rr:
            return run_rr(o);
        case Mode::cps:
            return run_cps(o);
        case Mode::bulk:
            return run_bulk(o);
        case Mode::none:
            break;
    }
    return 2;
}
