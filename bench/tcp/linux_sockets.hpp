// What the Linux-socket benchmark programs share (linux-tcp-bench, bench/tcp/linux_tcp_bench.cpp;
// linux-pubsub-load, bench/pubsub/linux_pubsub_load.cpp): option parsing, pinning, the fd
// limit, signals (SIGINT/SIGTERM set g_stop, SIGPIPE ignored) and non-blocking TCP_NODELAY
// sockets. Plain C++ on Linux, no DPDK, no Sluice code.
#pragma once

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace sluice::bench::linux_sockets {

// Set by SIGINT and SIGTERM once set_signals() ran.
inline volatile sig_atomic_t g_stop = 0;

inline void on_signal(int) {
    g_stop = 1;
}

// SIGINT, SIGTERM: g_stop; SIGPIPE: ignored (send() reports EPIPE).
inline void set_signals() {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    signal(SIGPIPE, SIG_IGN);
}

// A decimal integer in [lo, hi], the whole string.
inline bool parse_long(const char* s, long lo, long hi, long* out) {
    if (s == nullptr || *s == '\0') return false;
    char* end = nullptr;
    errno = 0;
    const long v = std::strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi) return false;
    *out = v;
    return true;
}

// Seconds: a number in (0, 1e6], the whole string.
inline bool parse_seconds(const char* s, double* out) {
    if (s == nullptr || *s == '\0') return false;
    char* end = nullptr;
    errno = 0;
    const double v = std::strtod(s, &end);
    if (errno != 0 || *end != '\0' || !(v > 0) || v > 1e6) return false;
    *out = v;
    return true;
}

// IPv4:PORT with the port in [min_port, 65535].
inline bool parse_addr(const char* s, long min_port, sockaddr_in* out) {
    const std::string_view t(s);
    const size_t colon = t.rfind(':');
    if (colon == std::string_view::npos) return false;
    const std::string ip(t.substr(0, colon)), port(t.substr(colon + 1));
    long p = 0;
    if (!parse_long(port.c_str(), min_port, 65535, &p)) return false;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(p));
    if (inet_pton(AF_INET, ip.c_str(), &a.sin_addr) != 1) return false;
    *out = a;
    return true;
}

// Pins the process to `cpu` (-1: not pinned); false after printing why (prog: the message's
// prefix).
inline bool pin(const char* prog, int cpu) {
    if (cpu < 0) return true;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) {
        std::fprintf(stderr, "%s: sched_setaffinity(cpu %d): %s\n", prog, cpu,
                     std::strerror(errno));
        return false;
    }
    return true;
}

// The soft limit of open files up to the hard one (thousands of connections).
inline void raise_fd_limit() {
    rlimit r{};
    if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
        r.rlim_cur = r.rlim_max;
        setrlimit(RLIMIT_NOFILE, &r);
    }
}

inline bool set_nodelay(int fd) {
    int one = 1;
    return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0;
}

// A non-blocking, close-on-exec TCP socket with TCP_NODELAY; -1 (errno) if socket() fails.
inline int nodelay_socket() {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0) set_nodelay(fd);
    return fd;
}

// Starts a non-blocking connect: true when it is under way (or done), false with errno set.
inline bool begin_connect(int fd, const sockaddr_in& addr) {
    return connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0 ||
           errno == EINPROGRESS;
}

// The pending error of a socket (SO_ERROR; 0: none), e.g. how a non-blocking connect ended.
inline int socket_error(int fd) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
    return err;
}

}  // namespace sluice::bench::linux_sockets
