// sluice-udpgen: a kernel-socket UDP traffic source for the demo and for tests.
//
// Sends a bounded number of datagrams (by count and/or time) to an echo server such as
// sluice-reflector, keeps at most --window of them outstanding, optionally paces them to
// --rate, and checks that every echo is byte-identical to what was sent. Prints a summary
// (sent, received, identical, mismatched, lost, RTT avg/p50/p99 in microseconds).
//
// Every payload starts with its 8-byte sequence number (little endian); the rest is a
// pseudo-random stream derived from (seed, sequence), and its size too when --sizes gives a
// range. So an echo is verified by regenerating what was sent, with no copy kept.
//
// Only test addresses are accepted as destinations: 198.18.0.0/15 (RFC 2544 benchmarking)
// and 127.0.0.0/8.
//
// Exit codes: 0 every echo that came back was identical; 1 mismatches (or a socket error);
// 2 bad usage or a refused destination; 3 nothing came back at all.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr int kExitOk = 0;
constexpr int kExitMismatch = 1;
constexpr int kExitUsage = 2;
constexpr int kExitNoReply = 3;

constexpr uint32_t kTagLen = 8;          // sequence number at the start of each payload
constexpr uint32_t kMaxPayload = 65507;  // largest UDP payload over IPv4
constexpr uint32_t kMaxWindow = 65536;
constexpr uint64_t kRingSize = 1u << 20;   // per-sequence state kept for the last 1M datagrams
constexpr uint32_t kRttBuckets = 1000000;  // 1 us buckets up to 1 s; slower replies land last
constexpr uint64_t kRefusedToGiveUp = 3;   // ICMP port unreachables, with no echo, to give up

volatile std::sig_atomic_t g_stop = 0;

void on_signal(int) {
    g_stop = 1;
}

struct Options {
    sockaddr_in dst{};
    uint64_t count = 1000;
    bool count_set = false;
    uint32_t min_size = 64;
    uint32_t max_size = 64;
    double rate = 0;      // datagrams per second; 0 = as fast as the window allows
    double duration = 0;  // seconds of sending; 0 = until --count
    uint32_t window = 32;
    uint64_t seed = 1;
    double timeout = 1.0;  // seconds before an outstanding datagram counts as lost
    bool quiet = false;
};

void usage(FILE* out) {
    std::fprintf(
        out,
        "usage: sluice-udpgen --dst A.B.C.D:PORT [--count N] [--size BYTES | --sizes MIN-MAX]\n"
        "                     [--rate PPS] [--duration SEC] [--window N] [--seed S]\n"
        "                     [--timeout SEC] [--quiet]\n"
        "\n"
        "  --dst        echo server; must be in 198.18.0.0/15 or 127.0.0.0/8\n"
        "  --count      datagrams to send (default 1000; unlimited with only --duration)\n"
        "  --size       payload bytes, %u..%u (default 64)\n"
        "  --sizes      payload sizes drawn uniformly from MIN-MAX (seeded)\n"
        "  --rate       datagrams per second (default: as fast as the window allows)\n"
        "  --duration   stop sending after SEC seconds\n"
        "  --window     most datagrams outstanding at once (default 32)\n"
        "  --seed       seed of payload contents and sizes (default 1)\n"
        "  --timeout    seconds an echo may take before it counts as lost (default 1)\n"
        "  --quiet      no once-a-second progress line (also off when stdout is not a TTY)\n",
        kTagLen, kMaxPayload);
}

bool parse_u64(std::string_view s, uint64_t& out) {
    if (s.empty() || s.size() > 20) return false;
    uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        const uint64_t d = uint64_t(c - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    out = v;
    return true;
}

bool parse_u32(std::string_view s, uint32_t& out, uint32_t lo, uint32_t hi) {
    uint64_t v = 0;
    if (!parse_u64(s, v) || v < lo || v > hi) return false;
    out = uint32_t(v);
    return true;
}

bool parse_number(std::string_view s, double& out) {
    const std::string str(s);
    char* end = nullptr;
    errno = 0;
    const double v = std::strtod(str.c_str(), &end);
    if (str.empty() || errno != 0 || end != str.c_str() + str.size() || !(v >= 0) || v > 1e7)
        return false;
    out = v;
    return true;
}

bool is_test_address(in_addr_t addr_be) {
    const uint32_t a = ntohl(addr_be);
    return (a & 0xfffe0000u) == 0xc6120000u /* 198.18.0.0/15 */ ||
           (a & 0xff000000u) == 0x7f000000u /* 127.0.0.0/8 */;
}

// Returns kExitOk, or the exit code after printing why.
int parse_dst(std::string_view s, sockaddr_in& dst) {
    const size_t colon = s.rfind(':');
    uint32_t port = 0;
    if (colon == std::string_view::npos || !parse_u32(s.substr(colon + 1), port, 1, 65535)) {
        std::fprintf(stderr, "sluice-udpgen: --dst must be A.B.C.D:PORT, got '%.*s'\n",
                     int(s.size()), s.data());
        return kExitUsage;
    }
    const std::string host(s.substr(0, colon));
    in_addr addr{};
    if (inet_pton(AF_INET, host.c_str(), &addr) != 1) {
        std::fprintf(stderr, "sluice-udpgen: '%s' is not an IPv4 address\n", host.c_str());
        return kExitUsage;
    }
    if (!is_test_address(addr.s_addr)) {
        std::fprintf(stderr,
                     "sluice-udpgen: refusing destination %s: only 198.18.0.0/15 and "
                     "127.0.0.0/8 are allowed\n",
                     host.c_str());
        return kExitUsage;
    }
    dst.sin_family = AF_INET;
    dst.sin_addr = addr;
    dst.sin_port = htons(uint16_t(port));
    return kExitOk;
}

int parse_args(int argc, char** argv, Options& o) {
    bool have_dst = false, have_size = false, have_sizes = false, have_duration = false;
    for (int i = 1; i < argc; ++i) {
        std::string_view arg = argv[i];
        if (arg == "-h" || arg == "--help") {
            usage(stdout);
            std::exit(kExitOk);
        }
        if (arg == "--quiet") {
            o.quiet = true;
            continue;
        }
        std::string_view value;
        const size_t eq = arg.find('=');
        const bool inline_value = arg.starts_with("--") && eq != std::string_view::npos;
        if (inline_value) {
            value = arg.substr(eq + 1);
            arg = arg.substr(0, eq);
        }
        static constexpr std::string_view kValued[] = {"--dst",    "--count", "--size",
                                                       "--sizes",  "--rate",  "--duration",
                                                       "--window", "--seed",  "--timeout"};
        if (std::find(std::begin(kValued), std::end(kValued), arg) == std::end(kValued)) {
            std::fprintf(stderr, "sluice-udpgen: unknown option '%.*s'\n", int(arg.size()),
                         arg.data());
            usage(stderr);
            return kExitUsage;
        }
        if (!inline_value) {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "sluice-udpgen: %s needs a value\n", argv[i]);
                return kExitUsage;
            }
            value = argv[++i];
        }
        bool ok = true;
        if (arg == "--dst") {
            if (const int rc = parse_dst(value, o.dst); rc != kExitOk) return rc;
            have_dst = true;
        } else if (arg == "--count") {
            ok = parse_u64(value, o.count) && o.count > 0;
            o.count_set = true;
        } else if (arg == "--size") {
            ok = parse_u32(value, o.min_size, kTagLen, kMaxPayload);
            o.max_size = o.min_size;
            have_size = true;
        } else if (arg == "--sizes") {
            const size_t dash = value.find('-');
            ok = dash != std::string_view::npos &&
                 parse_u32(value.substr(0, dash), o.min_size, kTagLen, kMaxPayload) &&
                 parse_u32(value.substr(dash + 1), o.max_size, kTagLen, kMaxPayload) &&
                 o.min_size <= o.max_size;
            have_sizes = true;
        } else if (arg == "--rate") {
            ok = parse_number(value, o.rate);
        } else if (arg == "--duration") {
            ok = parse_number(value, o.duration) && o.duration > 0;
            have_duration = true;
        } else if (arg == "--window") {
            ok = parse_u32(value, o.window, 1, kMaxWindow);
        } else if (arg == "--seed") {
            ok = parse_u64(value, o.seed);
        } else {  // --timeout
            ok = parse_number(value, o.timeout) && o.timeout > 0 && o.timeout <= 60;
        }
        if (!ok) {
            std::fprintf(stderr, "sluice-udpgen: bad value '%.*s' for %.*s%s\n", int(value.size()),
                         value.data(), int(arg.size()), arg.data(),
                         (arg == "--size" || arg == "--sizes")
                             ? " (payloads are 8..65507 bytes: each carries its sequence number)"
                             : "");
            return kExitUsage;
        }
    }
    if (!have_dst) {
        std::fprintf(stderr, "sluice-udpgen: --dst is required\n");
        usage(stderr);
        return kExitUsage;
    }
    if (have_size && have_sizes) {
        std::fprintf(stderr, "sluice-udpgen: --size and --sizes exclude each other\n");
        return kExitUsage;
    }
    if (have_duration && !o.count_set) o.count = UINT64_MAX;  // bounded by time instead
    return kExitOk;
}

uint64_t now_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec);
}

uint64_t splitmix64(uint64_t& state) {
    uint64_t z = (state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

class Payloads {
  public:
    explicit Payloads(const Options& o) : seed_(o.seed), min_(o.min_size), max_(o.max_size) {}

    uint32_t size_of(uint64_t seq) const {
        if (min_ == max_) return min_;
        uint64_t st = seed_ ^ (seq * 0xd1b54a32d192ed03u) ^ 0x5151;
        return min_ + uint32_t(splitmix64(st) % (uint64_t(max_ - min_) + 1));
    }

    // Writes datagram `seq` into buf (kMaxPayload bytes); returns its size.
    uint32_t build(uint64_t seq, uint8_t* buf) const {
        const uint32_t size = size_of(seq);
        for (uint32_t i = 0; i < kTagLen; ++i) buf[i] = uint8_t(seq >> (8 * i));
        uint64_t st = seed_ ^ (seq * 0x9e3779b97f4a7c15u);
        for (uint32_t off = kTagLen; off < size; off += 8) {
            const uint64_t r = splitmix64(st);
            std::memcpy(buf + off, &r, std::min<uint32_t>(8, size - off));
        }
        return size;
    }

    static uint64_t seq_of(const uint8_t* buf) {
        uint64_t seq = 0;
        for (uint32_t i = 0; i < kTagLen; ++i) seq |= uint64_t(buf[i]) << (8 * i);
        return seq;
    }

  private:
    uint64_t seed_;
    uint32_t min_, max_;
};

enum class State : uint8_t { free, outstanding, received, expired };

struct Slot {
    uint64_t seq = 0;
    uint64_t sent_ns = 0;
    State state = State::free;
};

struct Results {
    uint64_t sent = 0, received = 0, identical = 0, mismatched = 0, duplicates = 0, late = 0,
             refused = 0, payload_bytes = 0;
    uint64_t rtt_count = 0, rtt_sum_ns = 0;
    std::vector<uint32_t> rtt_hist = std::vector<uint32_t>(kRttBuckets, 0);

    void add_rtt(uint64_t ns) {
        rtt_count++;
        rtt_sum_ns += ns;
        rtt_hist[std::min<uint64_t>(ns / 1000, kRttBuckets - 1)]++;
    }
    uint64_t rtt_percentile_us(double p) const {
        if (rtt_count == 0) return 0;
        const uint64_t rank = std::max<uint64_t>(1, uint64_t(p * double(rtt_count) + 0.999999));
        uint64_t seen = 0;
        for (uint32_t us = 0; us < kRttBuckets; ++us) {
            seen += rtt_hist[us];
            if (seen >= rank) return us;
        }
        return kRttBuckets - 1;
    }
};

class Generator {
  public:
    Generator(const Options& o, int fd)
        : o_(o),
          fd_(fd),
          payloads_(o),
          ring_(kRingSize),
          tx_(kMaxPayload),
          rx_(kMaxPayload + 1),
          expect_(kMaxPayload) {}

    // Returns false on a socket error (printed).
    bool run() {
        const uint64_t start = now_ns();
        const uint64_t timeout_ns = uint64_t(o_.timeout * 1e9);
        const uint64_t send_end =
            o_.duration > 0 ? start + uint64_t(o_.duration * 1e9) : UINT64_MAX;
        const uint64_t interval_ns = o_.rate > 0 ? uint64_t(1e9 / o_.rate) : 0;
        const bool progress = !o_.quiet && isatty(STDOUT_FILENO);
        uint64_t next_send = start, next_progress = start + 1000000000u, sending_stopped = 0;

        for (;;) {
            uint64_t now = now_ns();
            expire(now, timeout_ns);
            // ICMP port unreachable and nothing ever came back: the port is closed, so stop
            // rather than wait out a timeout per datagram.
            const bool unreachable = r_.refused >= kRefusedToGiveUp && r_.received == 0;
            bool sending = next_seq_ < o_.count && now < send_end && !g_stop && !unreachable;
            while (sending && outstanding_ < o_.window && (interval_ns == 0 || now >= next_send)) {
                const int rc = send_one(now);
                if (rc < 0) return false;
                if (rc == 0) break;  // socket buffer full: try again after polling
                if (interval_ns) {
                    next_send += interval_ns;
                    if (next_send + 100 * interval_ns < now) next_send = now;  // no catch-up burst
                }
                now = now_ns();
                sending = next_seq_ < o_.count && now < send_end && !g_stop;
            }
            if (!sending) {
                if (sending_stopped == 0) sending_stopped = now;
                // Drain: wait for what is outstanding, at most one timeout (a second Ctrl-C
                // is not needed: g_stop only ends sending).
                if (outstanding_ == 0 || now >= sending_stopped + timeout_ns) break;
            }
            pollfd pfd{fd_, POLLIN, 0};
            const int wait_ms = (sending && outstanding_ < o_.window && next_send <= now) ? 0 : 1;
            if (poll(&pfd, 1, wait_ms) < 0 && errno != EINTR) {
                std::perror("sluice-udpgen: poll");
                return false;
            }
            if ((pfd.revents & (POLLIN | POLLERR)) && !receive_all()) return false;
            if (progress && now >= next_progress) {
                std::printf(
                    "sluice-udpgen: %.0f s: sent %llu, received %llu, identical %llu, "
                    "mismatched %llu\n",
                    double(now - start) / 1e9, (unsigned long long)r_.sent,
                    (unsigned long long)r_.received, (unsigned long long)r_.identical,
                    (unsigned long long)r_.mismatched);
                std::fflush(stdout);
                next_progress += 1000000000u;
            }
        }
        // Echoes of expired datagrams that are still in the socket count as late.
        if (!receive_all()) return false;
        elapsed_ns_ = now_ns() - start;
        return true;
    }

    const Results& results() const { return r_; }
    uint64_t elapsed_ns() const { return elapsed_ns_; }

  private:
    // 1 sent, 0 would block, -1 error.
    int send_one(uint64_t now) {
        const uint64_t seq = next_seq_;
        const uint32_t size = payloads_.build(seq, tx_.data());
        const ssize_t n = send(fd_, tx_.data(), size, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS || errno == EINTR)
                return 0;
            if (errno == ECONNREFUSED) {  // an earlier datagram drew ICMP port unreachable
                r_.refused++;
                return 0;
            }
            std::perror("sluice-udpgen: send");
            return -1;
        }
        Slot& slot = ring_[seq & (kRingSize - 1)];
        if (slot.state == State::outstanding) outstanding_--;  // only if window > ring
        slot = Slot{seq, now, State::outstanding};
        inflight_.push_back(seq);
        outstanding_++;
        next_seq_++;
        r_.sent++;
        r_.payload_bytes += size;
        return 1;
    }

    void expire(uint64_t now, uint64_t timeout_ns) {
        while (!inflight_.empty()) {
            Slot& slot = ring_[inflight_.front() & (kRingSize - 1)];
            if (slot.seq == inflight_.front() && slot.state == State::outstanding) {
                if (now - slot.sent_ns < timeout_ns) return;
                slot.state = State::expired;
                outstanding_--;
            }
            inflight_.pop_front();
        }
    }

    bool receive_all() {
        for (uint32_t budget = 4 * o_.window + 64; budget > 0; --budget) {
            const ssize_t n = recv(fd_, rx_.data(), rx_.size(), MSG_DONTWAIT);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
                if (errno == EINTR) continue;
                if (errno == ECONNREFUSED) {
                    r_.refused++;
                    continue;
                }
                std::perror("sluice-udpgen: recv");
                return false;
            }
            on_echo(uint32_t(n), now_ns());
        }
        return true;
    }

    void on_echo(uint32_t len, uint64_t now) {
        if (len < kTagLen) {
            r_.mismatched++;
            return;
        }
        const uint64_t seq = Payloads::seq_of(rx_.data());
        if (seq >= next_seq_) {  // never sent: the tag itself is corrupt
            r_.mismatched++;
            return;
        }
        const uint32_t size = payloads_.build(seq, expect_.data());
        const bool same = len == size && std::memcmp(rx_.data(), expect_.data(), size) == 0;
        Slot& slot = ring_[seq & (kRingSize - 1)];
        if (slot.seq == seq && slot.state == State::received) {
            r_.duplicates++;
            if (!same) r_.mismatched++;
            return;
        }
        if (slot.seq == seq && slot.state == State::outstanding) {
            outstanding_--;
            r_.add_rtt(now - slot.sent_ns);
        } else {
            r_.late++;  // came after its timeout
        }
        if (slot.seq == seq) slot.state = State::received;
        r_.received++;
        if (same)
            r_.identical++;
        else
            r_.mismatched++;
    }

    const Options& o_;
    int fd_;
    Payloads payloads_;
    std::vector<Slot> ring_;
    std::deque<uint64_t> inflight_;  // sequence numbers in send order, for expiry
    std::vector<uint8_t> tx_, rx_, expect_;
    uint64_t next_seq_ = 0;
    uint64_t outstanding_ = 0;
    uint64_t elapsed_ns_ = 0;
    Results r_;
};

int open_socket(const Options& o) {
    const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        std::perror("sluice-udpgen: socket");
        return -1;
    }
    const int buf = 4 << 20;
    // FORCE variants exceed rmem_max/wmem_max when privileged; the plain ones are the fallback.
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof buf) != 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof buf) != 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    // Let the kernel fragment datagrams above the MTU instead of failing with EMSGSIZE.
    const int pmtu = IP_PMTUDISC_DONT;
    (void)setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof pmtu);
    if (connect(fd, reinterpret_cast<const sockaddr*>(&o.dst), sizeof o.dst) != 0) {
        std::perror("sluice-udpgen: connect");
        close(fd);
        return -1;
    }
    return fd;
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    if (const int rc = parse_args(argc, argv, o); rc != kExitOk) return rc;

    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);

    const int fd = open_socket(o);
    if (fd < 0) return kExitMismatch;

    char host[INET_ADDRSTRLEN] = {};
    inet_ntop(AF_INET, &o.dst.sin_addr, host, sizeof host);
    char count[32] = "unlimited", rate[32] = "unpaced", duration[32] = "-";
    if (o.count != UINT64_MAX)
        std::snprintf(count, sizeof count, "%llu", (unsigned long long)o.count);
    if (o.rate > 0) std::snprintf(rate, sizeof rate, "%g/s", o.rate);
    if (o.duration > 0) std::snprintf(duration, sizeof duration, "%g s", o.duration);
    std::printf(
        "sluice-udpgen: to %s:%u, count %s, sizes %u-%u B, window %u, rate %s, "
        "duration %s, seed %llu\n",
        host, unsigned(ntohs(o.dst.sin_port)), count, o.min_size, o.max_size, o.window, rate,
        duration, (unsigned long long)o.seed);
    std::fflush(stdout);

    Generator gen(o, fd);
    const bool ok = gen.run();
    close(fd);
    const Results& r = gen.results();
    const uint64_t lost = r.sent - std::min(r.sent, r.received);
    const double secs = double(gen.elapsed_ns()) / 1e9;

    std::printf(
        "sluice-udpgen: sent %llu, received %llu, identical %llu, mismatched %llu, "
        "lost %llu (late %llu, duplicates %llu, refused %llu)\n",
        (unsigned long long)r.sent, (unsigned long long)r.received, (unsigned long long)r.identical,
        (unsigned long long)r.mismatched, (unsigned long long)lost, (unsigned long long)r.late,
        (unsigned long long)r.duplicates, (unsigned long long)r.refused);
    std::printf("sluice-udpgen: rtt_us avg %.1f, p50 %llu, p99 %llu (%llu samples)\n",
                r.rtt_count ? double(r.rtt_sum_ns) / double(r.rtt_count) / 1000.0 : 0.0,
                (unsigned long long)r.rtt_percentile_us(0.50),
                (unsigned long long)r.rtt_percentile_us(0.99), (unsigned long long)r.rtt_count);
    if (secs > 0)
        std::printf("sluice-udpgen: %.2f s, %.0f datagrams/s, %.1f Mbit/s of payload each way\n",
                    secs, double(r.sent) / secs, double(r.payload_bytes) * 8 / secs / 1e6);
    std::fflush(stdout);

    if (!ok || r.mismatched > 0) return kExitMismatch;
    if (r.sent > 0 && r.received == 0) {
        std::fprintf(stderr, "sluice-udpgen: no echo came back%s\n",
                     r.refused ? " (destination port unreachable)" : "");
        return kExitNoReply;
    }
    return kExitOk;
}
