// linux-pubsub-load: the pub/sub load generator (bench/pubsub/pubsub_load.hpp) on Linux
// sockets: one thread, epoll, non-blocking sockets with TCP_NODELAY, pinned with --cpu. Drives
// any RESP broker: redis-server over loopback is the anchor of bench/run_pubsub_bench.py.
//
//   linux-pubsub-load --connect IP:PORT [--subs N] [--size P] [--duration S] [--window W]
//                     [--lag L] [--channel NAME] [--cpu N] [--spin] [--setup-timeout S]
//                     [--drain-timeout S]
//
// 1 publisher and N (default 1) subscriber connections; P-byte payloads (default 16, >= 16);
// S seconds of publishing (default 5) with at most W (default 64) PUBLISH commands without
// their reply and at most L (default W) messages not yet delivered to every subscriber. Prints
//   pubsub: subs=N size=P published=X delivered=Y seconds=D delivered_per_s=R p50_us=A
//           p99_us=B lost=0 reordered=0
// on stdout (one line) and a `pubsub: detail ...` line on stderr. --spin: epoll_wait with a
// zero timeout, never sleeping (busy polling, like a poll-mode worker); by default the thread
// sleeps in epoll_wait.
//
// Exit status: 0 if every message reached every subscriber in order, 1 otherwise (or on
// errors, printed on stderr), 2 on bad usage.

#include <errno.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "bench/pubsub/pubsub_load.hpp"
#include "bench/tcp/linux_sockets.hpp"

namespace sluice::bench {
namespace {

using namespace linux_sockets;

uint64_t now_ns() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

struct Options {
    PubSubConfig load;
    sockaddr_in addr{};
    std::string addr_text;
    int cpu = -1;
    bool spin = false;
};

void usage() {
    fprintf(stderr,
            "usage: linux-pubsub-load --connect IP:PORT [--subs N] [--size P] [--duration S]\n"
            "           [--window W] [--lag L] [--channel NAME] [--cpu N] [--spin]\n"
            "           [--setup-timeout S] [--drain-timeout S]\n");
}

// 0, or 2 on bad usage (printed).
int parse_args(int argc, char** argv, Options& o) {
    for (int i = 1; i < argc; ++i) {
        const std::string_view a(argv[i]);
        const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
        auto bad = [&](const char* want) {
            fprintf(stderr, "linux-pubsub-load: bad or missing value for %s: %s\n", argv[i], want);
            return 2;
        };
        long x = 0;
        if (a == "--connect") {
            if (!v || !parse_addr(v, 1, &o.addr)) return bad("IPv4:PORT");
            o.addr_text = v;
        } else if (a == "--subs") {
            if (!parse_long(v, 1, PubSubLoad::kMaxSubs, &x)) return bad("1..100000");
            o.load.subs = uint32_t(x);
        } else if (a == "--size") {
            if (!parse_long(v, PubSubLoad::kMinSize, PubSubLoad::kMaxSize, &x))
                return bad("16..1048576");
            o.load.size = uint32_t(x);
        } else if (a == "--window") {
            if (!parse_long(v, 1, PubSubLoad::kMaxWindow, &x)) return bad("1..65536");
            o.load.window = uint32_t(x);
        } else if (a == "--lag") {
            if (!parse_long(v, 1, PubSubLoad::kMaxWindow, &x)) return bad("1..65536");
            o.load.lag = uint32_t(x);
        } else if (a == "--channel") {
            if (!v || !*v || strlen(v) > PubSubLoad::kMaxChannel) return bad("1..128 bytes");
            o.load.channel = v;
        } else if (a == "--duration") {
            if (!parse_seconds(v, &o.load.duration_s)) return bad("seconds > 0");
        } else if (a == "--setup-timeout") {
            if (!parse_seconds(v, &o.load.setup_s)) return bad("seconds > 0");
        } else if (a == "--drain-timeout") {
            if (!parse_seconds(v, &o.load.drain_s)) return bad("seconds > 0");
        } else if (a == "--cpu") {
            if (!parse_long(v, 0, CPU_SETSIZE - 1, &x)) return bad("a CPU number");
            o.cpu = int(x);
        } else if (a == "--spin") {
            o.spin = true;
            continue;
        } else if (a == "-h" || a == "--help") {
            usage();
            return 2;
        } else {
            fprintf(stderr, "linux-pubsub-load: unknown option %s\n", argv[i]);
            usage();
            return 2;
        }
        ++i;  // the option's value
    }
    if (o.addr_text.empty()) {
        fprintf(stderr, "linux-pubsub-load: --connect IP:PORT is required\n");
        usage();
        return 2;
    }
    return 0;
}

struct Conn {
    int fd = -1;
    bool connected = false;
    uint32_t events = 0;  // registered with epoll
};

class LinuxLoad {
  public:
    explicit LinuxLoad(const Options& o) : o_(o) {}
    ~LinuxLoad() {
        for (Conn& c : conns_)
            if (c.fd >= 0) close(c.fd);
        if (ep_ >= 0) close(ep_);
    }
    int run();

  private:
    bool set_events(uint32_t id, uint32_t ev);
    void connected(uint32_t id, uint64_t now);
    void readable(uint32_t id);
    void pump(uint64_t now);
    void lost(uint32_t id, const char* why) {
        core_.on_closed(id, why);
        if (conns_[id].fd >= 0) close(conns_[id].fd);  // also leaves the epoll set
        conns_[id].fd = -1;
    }

    const Options& o_;
    PubSubLoad core_;
    int ep_ = -1;
    std::vector<Conn> conns_;
    std::vector<uint8_t> rbuf_;
    PublishBuffer out_;  // the publisher's unsent bytes
};

bool LinuxLoad::set_events(uint32_t id, uint32_t ev) {
    Conn& c = conns_[id];
    if (c.events == ev) return true;
    epoll_event e{};
    e.events = ev;
    e.data.u32 = id;
    if (epoll_ctl(ep_, c.events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c.fd, &e) != 0) {
        core_.fail("epoll_ctl", strerror(errno));
        return false;
    }
    c.events = ev;
    return true;
}

void LinuxLoad::connected(uint32_t id, uint64_t now) {
    Conn& c = conns_[id];
    const int err = socket_error(c.fd);
    if (err != 0) {
        char what[96];
        snprintf(what, sizeof what, "connect %s (connection %u)", o_.addr_text.c_str(), id);
        core_.fail(what, strerror(err));
        return;
    }
    c.connected = true;
    core_.on_connected(id, now);
    const std::string_view hello = core_.hello(id);
    if (!hello.empty()) {
        // A fresh socket's send buffer takes a SUBSCRIBE whole.
        const ssize_t w = send(c.fd, hello.data(), hello.size(), MSG_NOSIGNAL);
        if (w != ssize_t(hello.size())) {
            core_.fail("sending SUBSCRIBE", w < 0 ? strerror(errno) : "short write");
            return;
        }
    }
    set_events(id, EPOLLIN);
}

void LinuxLoad::readable(uint32_t id) {
    Conn& c = conns_[id];
    // Bounded, so that one busy connection does not starve the others (level-triggered).
    for (int burst = 0; burst < 4 && c.fd >= 0 && !core_.done(); ++burst) {
        const ssize_t r = recv(c.fd, rbuf_.data(), rbuf_.size(), 0);
        if (r > 0) {
            core_.on_data(id, rbuf_.data(), size_t(r), now_ns());
            if (size_t(r) < rbuf_.size()) return;
            continue;
        }
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        lost(id, r == 0 ? "EOF from the broker" : strerror(errno));
        return;
    }
}

void LinuxLoad::pump(uint64_t now) {
    Conn& c = conns_[PubSubLoad::kPublisher];
    if (c.fd < 0 || !c.connected) return;
    out_.refill(core_, now);
    while (out_.size()) {
        const ssize_t w = send(c.fd, out_.data(), out_.size(), MSG_NOSIGNAL);
        if (w > 0) {
            out_.consume(size_t(w));
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        lost(PubSubLoad::kPublisher, w < 0 ? strerror(errno) : "send returned 0");
        return;
    }
    set_events(PubSubLoad::kPublisher, out_.size() ? EPOLLIN | EPOLLOUT : EPOLLIN);
}

int LinuxLoad::run() {
    if (!core_.init(o_.load, 1000000000u, now_ns())) {
        fprintf(stderr, "linux-pubsub-load: %s\n", core_.error().c_str());
        return 2;
    }
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    if (ep_ < 0) {
        fprintf(stderr, "linux-pubsub-load: epoll_create1: %s\n", strerror(errno));
        return 1;
    }
    rbuf_.resize(256 * 1024);
    out_.size_for(core_, o_.load.window);
    conns_.resize(core_.conns());
    for (uint32_t id = 0; id < core_.conns() && !core_.done(); ++id) {
        Conn& c = conns_[id];
        c.fd = nodelay_socket();
        if (c.fd < 0) {
            core_.fail("socket", strerror(errno));
            break;
        }
        if (!begin_connect(c.fd, o_.addr)) {
            char what[96];
            snprintf(what, sizeof what, "connect %s (connection %u)", o_.addr_text.c_str(), id);
            core_.fail(what, strerror(errno));
            break;
        }
        set_events(id, EPOLLOUT);
    }
    constexpr int kMaxEvents = 1024;
    epoll_event evs[kMaxEvents];
    while (!core_.done()) {
        uint64_t now = now_ns();
        core_.tick(now);
        if (g_stop) core_.fail("interrupted");
        if (core_.done()) break;
        pump(now);
        const int k = epoll_wait(ep_, evs, kMaxEvents, o_.spin ? 0 : 10);
        if (k < 0) {
            if (errno == EINTR) continue;
            core_.fail("epoll_wait", strerror(errno));
            break;
        }
        now = now_ns();
        for (int e = 0; e < k && !core_.done(); ++e) {
            const uint32_t id = evs[e].data.u32;
            if (conns_[id].fd < 0) continue;
            if (!conns_[id].connected) {
                connected(id, now);
                continue;
            }
            if (evs[e].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) readable(id);
        }
    }
    core_.report(stdout, stderr);
    return core_.exit_code();
}

}  // namespace
}  // namespace sluice::bench

int main(int argc, char** argv) {
    using namespace sluice::bench;
    Options o;
    if (const int rc = parse_args(argc, argv, o); rc != 0) return rc;
    if (!pin("linux-pubsub-load", o.cpu)) return 1;
    raise_fd_limit();
    set_signals();
    LinuxLoad load(o);
    return load.run();
}
