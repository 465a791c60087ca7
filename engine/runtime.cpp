#include "engine/runtime.hpp"

#include <unistd.h>

#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <mutex>

#include <rte_debug.h>
#include <rte_eal.h>
#include <rte_lcore.h>

namespace sluice::engine {

std::atomic<bool>& stop_flag() {
    static std::atomic<bool> flag{false};
    return flag;
}

std::atomic<unsigned>& signal_count() {
    static std::atomic<unsigned> n{0};
    return n;
}

static void on_signal(int) {
    stop_flag().store(true);
    signal_count().fetch_add(1);
}

// A fault (a bug here, or in a driver: DPDK 22.11's net_memif unmaps its shared memory from
// the interrupt thread when the peer goes away, which a polling lcore can still be reading)
// leaves the signal's name and the stack on stderr, then dies of the signal as before, core
// dump included. Not async-signal-safe (backtrace), acceptable on the way down.
static void on_fatal(int sig) {
    char line[96];
    const int n = snprintf(line, sizeof line, "sluice: fatal signal %d (%s) on lcore %d\n", sig,
                           strsignal(sig), int(rte_lcore_id()));
    if (n > 0) (void)!write(STDERR_FILENO, line, size_t(n));
    rte_dump_stack();
    signal(sig, SIG_DFL);
    raise(sig);
}

void install_signal_handlers() {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    struct sigaction fatal {};
    fatal.sa_handler = on_fatal;
    sigemptyset(&fatal.sa_mask);
    fatal.sa_flags = SA_RESETHAND;
    for (int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE}) sigaction(sig, &fatal, nullptr);
}

namespace {
std::mutex g_adopted_mu;  // control path only (workers' start)
std::vector<rte_mempool*> g_adopted;
}  // namespace

void adopt_pool(rte_mempool* p) {
    std::lock_guard<std::mutex> lk(g_adopted_mu);
    g_adopted.push_back(p);
}

std::vector<rte_mempool*> take_adopted_pools() {
    std::lock_guard<std::mutex> lk(g_adopted_mu);
    std::vector<rte_mempool*> v;
    v.swap(g_adopted);
    return v;
}

const char* pool_ops(const rte_mempool* p) {
    return p ? rte_mempool_get_ops(p->ops_index)->name : "none";
}

rte_mempool* create_pool(const char* name, unsigned n, int socket, uint16_t data_room) {
    // n = 2^k - 1 is the mempool's sweet spot (its ring holds 2^k).
    unsigned size = 1;
    while (size - 1 < n) size <<= 1;
    // The pool is a LIFO (DPDK's lock-free stack driver, mempool_stack's "lf_stack") unless
    // EAL's --mbuf-pool-ops-name names another. Behind the per-core cache, a FIFO ring hands
    // out the mbuf freed longest ago: whenever more mbufs are in flight than the cache holds
    // (a TCP send queue, a broker's fan-out, a bulk sender's window), every allocation and
    // every free touches cold lines cycling through the whole pool. A stack hands back the
    // ones freed last, still in cache. Measured (bench/PUBSUB_PERF.md): sluice-broker's
    // allocation miss in rte_pktmbuf_clone (13% of its cycles) went away, and bulk over
    // net_memif rose from ~4.2 to ~6.4 Gbit/s on the development VM.
    const char* user_ops = rte_eal_mbuf_user_pool_ops();
    rte_mempool* p = rte_pktmbuf_pool_create_by_ops(name, size - 1, 256, 0, data_room, socket,
                                                    user_ops ? user_ops : kPoolOps);
    if (!p && !user_ops)  // no lf_stack here (another architecture, a static build): default
        p = rte_pktmbuf_pool_create(name, size - 1, 256, 0, data_room, socket);
    if (!p) {
        fprintf(stderr, "sluice: cannot create mbuf pool %s (%u mbufs) on socket %d\n", name,
                size - 1, socket);
        return p;
    }
    // Touch every buffer once now. Without hugepages the pool is demand-paged memory, and
    // mbufs that travel between cores may still cycle through much of the pool: the first
    // pass would take page faults on the fast path, several microseconds each.
    rte_mempool_obj_iter(
        p,
        [](rte_mempool*, void*, void* obj, unsigned) {
            auto* m = static_cast<rte_mbuf*>(obj);
            volatile char* b = static_cast<char*>(m->buf_addr);
            for (uint32_t off = 0; off < m->buf_len; off += 4096) b[off] = 0;
            if (m->buf_len) b[m->buf_len - 1] = 0;  // (no data room: indirect-only pools)
        },
        nullptr);
    return p;
}

std::string format_mac(const rte_ether_addr& mac) {
    char buf[RTE_ETHER_ADDR_FMT_SIZE];
    rte_ether_format_addr(buf, sizeof buf, &mac);
    return buf;
}

std::string describe_offloads(const pmd::Offloads& o) {
    std::string s;
    auto add = [&](bool on, const char* what) {
        if (!s.empty()) s += ' ';
        s += what;
        s += on ? "=hw" : "=sw";
    };
    add(o.rx_ip_cksum, "rx-ip");
    add(o.rx_l4_cksum, "rx-l4");
    add(o.tx_ip_cksum, "tx-ip");
    add(o.tx_l4_cksum, "tx-l4");
    s += o.rss ? " rss=hw" : " rss=none";
    return s;
}

uint32_t seed_frames(pmd::Port& port, rte_mempool* pool, const proto::StackConfig& sc,
                     uint32_t count, uint16_t size) {
    if (size < proto::kEthHdrLen + proto::kIpv4HdrLen + proto::kUdpHdrLen ||
        size > rte_pktmbuf_data_room_size(pool) - RTE_PKTMBUF_HEADROOM) {
        fprintf(stderr, "sluice: --seed size %u does not fit an mbuf\n", size);
        return 0;
    }
    uint32_t sent = 0;
    unsigned idle_tries = 0;
    while (sent < count && idle_tries < 1000) {
        rte_mbuf* b[32];
        const uint16_t want = uint16_t(RTE_MIN(count - sent, 32u));
        if (rte_pktmbuf_alloc_bulk(pool, b, want) != 0) return sent;
        for (uint16_t k = 0; k < want; ++k) {
            rte_mbuf* m = b[k];
            auto* eth = reinterpret_cast<rte_ether_hdr*>(rte_pktmbuf_append(m, size));
            eth->dst_addr = sc.mac;
            eth->src_addr = sc.mac;
            eth->ether_type = RTE_BE16(RTE_ETHER_TYPE_IPV4);
            auto* ip = reinterpret_cast<rte_ipv4_hdr*>(eth + 1);
            const uint16_t ip_len = uint16_t(size - proto::kEthHdrLen);
            ip->version_ihl = RTE_IPV4_VHL_DEF;
            ip->type_of_service = 0;
            ip->total_length = rte_cpu_to_be_16(ip_len);
            ip->packet_id = rte_cpu_to_be_16(uint16_t(sent + k));
            ip->fragment_offset = 0;
            ip->time_to_live = sc.ttl;
            ip->next_proto_id = IPPROTO_UDP;
            ip->src_addr = sc.ip;
            ip->dst_addr = sc.ip;
            ip->hdr_checksum = 0;
            ip->hdr_checksum = rte_ipv4_cksum(ip);
            auto* udp = reinterpret_cast<rte_udp_hdr*>(ip + 1);
            // 256 flows, so that RSS (port or software) spreads the population.
            udp->src_port = rte_cpu_to_be_16(uint16_t(1024 + (sent + k) % 256));
            udp->dst_port = RTE_BE16(9);
            udp->dgram_len = rte_cpu_to_be_16(uint16_t(ip_len - proto::kIpv4HdrLen));
            auto* payload = reinterpret_cast<uint8_t*>(udp + 1);
            for (unsigned i = 0; i < unsigned(ip_len - proto::kIpv4HdrLen - proto::kUdpHdrLen); ++i)
                payload[i] = uint8_t(sent + k + i);
            udp->dgram_cksum = 0;
            udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);
            m->ol_flags = 0;
        }
        uint16_t done = 0;
        while (done < want && idle_tries < 1000) {
            const uint16_t s = port.send(0, b + done, uint16_t(want - done));
            done = uint16_t(done + s);
            if (s == 0) {
                ++idle_tries;
                rte_delay_us_block(100);
            }
        }
        if (done < want) rte_pktmbuf_free_bulk(b + done, want - done);
        sent += done;
    }
    return sent;
}

static double mega(uint64_t v, double dt) {
    return dt > 0 ? double(v) / dt / 1e6 : 0;
}

void print_rate_line(const StatsView& v, double dt, CoreStats& last_e, proto::Counters& last_p) {
    const CoreStats e = v.engine_total();
    const proto::Counters p = v.proto_total();
    const uint64_t rx = p.rx_packets - last_p.rx_packets;
    const uint64_t tx = e.port_tx - last_e.port_tx;
    const uint64_t drops = p.total_drops() - last_p.total_drops() +
                           (e.port_tx_dropped - last_e.port_tx_dropped) +
                           (e.ring_dropped - last_e.ring_dropped);
    const uint64_t busy = e.busy_polls - last_e.busy_polls;
    const double vec =
        busy ? double(e.port_rx - last_e.port_rx + e.ring_in - last_e.ring_in) / double(busy) : 0;
    printf(
        "\r  rx %8.3f Mpps %9.1f Mbit/s | tx %8.3f Mpps | drops %8.0f/s | vector %5.1f | total rx "
        "%" PRIu64 " tx %" PRIu64 "\033[K",
        mega(rx, dt), mega((p.rx_bytes - last_p.rx_bytes) * 8, dt), mega(tx, dt),
        double(drops) / dt, vec, p.rx_packets, e.port_tx);
    fflush(stdout);
    last_e = e;
    last_p = p;
}

void print_summary(const char* app, const StatsView& v, uint16_t port_id) {
    const CoreStats e = v.engine_total();
    const proto::Counters p = v.proto_total();
    printf("%s: summary\n", app);
    printf("  engine:");
#define SLUICE_X(name, help) printf(" %s=%" PRIu64, #name, e.name);
    SLUICE_ENGINE_COUNTERS(SLUICE_X)
#undef SLUICE_X
    printf("\n  stack: ");
#define SLUICE_X(name) \
    if (p.name) printf(" %s=%" PRIu64, #name, p.name);
    SLUICE_PROTO_COUNTERS(SLUICE_X)
#undef SLUICE_X
    printf("\n  drops:  total=%" PRIu64, p.total_drops());
    for (unsigned i = 0; i < proto::kDropCount; ++i)
        if (p.drops[i]) printf(" %s=%" PRIu64, proto::kDropNames[i], p.drops[i]);
    for (bool rx : {true, false}) {
        const pmd::ImpairStats im = v.impair_total(rx);
        uint64_t any = 0;
#define SLUICE_X(name) any |= im.name;
        SLUICE_IMPAIR_COUNTERS(SLUICE_X)
#undef SLUICE_X
        if (!any) continue;
        printf("\n  impair %s:", rx ? "rx" : "tx");
#define SLUICE_X(name) printf(" %s=%" PRIu64, #name, im.name);
        SLUICE_IMPAIR_COUNTERS(SLUICE_X)
#undef SLUICE_X
    }
    if (v.has_tcp()) {
        const proto::TcpCounters t = v.tcp_total();
        printf("\n  tcp:   ");
#define SLUICE_X(name, help) \
    if (t.name) printf(" %s=%" PRIu64, #name, t.name);
        SLUICE_TCP_COUNTERS(SLUICE_X)
#undef SLUICE_X
        printf(" open_conns=%" PRIu64, t.open_conns);
    }
    rte_eth_stats st{};
    if (rte_eth_stats_get(port_id, &st) == 0)
        printf("\n  port:   ipackets=%" PRIu64 " opackets=%" PRIu64 " imissed=%" PRIu64
               " ierrors=%" PRIu64 " oerrors=%" PRIu64 " rx_nombuf=%" PRIu64,
               st.ipackets, st.opackets, st.imissed, st.ierrors, st.oerrors, st.rx_nombuf);
    // VPP-style runtime view: where each worker's cycles went, per packet.
    printf(
        "\n  runtime (TSC %.3f GHz; cycles per packet by stage; engine = steer + stack + "
        "tx-prep)\n",
        double(v.tsc_hz) / 1e9);
    printf("  %-7s %5s %12s %12s %7s %6s %7s %7s %7s %8s %7s %7s %7s", "worker", "lcore", "packets",
           "polls", "vector", "busy%", "rx", "steer", "stack", "tx-prep", "tx", "engine", "busy");
    auto row = [](const char* name, const char* lcore, const CoreStats& c,
                  const proto::Counters& p) {
        const RuntimeRow r = runtime_row(c, p);
        printf("\n  %-7s %5s %12" PRIu64 " %12" PRIu64
               " %7.2f %6.1f %7.1f %7.1f %7.1f %8.1f %7.1f %7.1f %7.1f",
               name, lcore, r.packets, c.polls, r.vector, r.busy_pct, r.rx, r.steer, r.stack,
               r.tx_prep, r.tx, r.engine, r.busy);
    };
    for (unsigned i = 0; i < v.workers; ++i) {
        const std::string name = std::to_string(i), lcore = std::to_string(v.lcore[i]);
        row(name.c_str(), lcore.c_str(), *v.engine[i], *v.proto[i]);
    }
    if (v.workers > 1) row("total", "-", e, p);
    printf("\n");
    fflush(stdout);
}

}  // namespace sluice::engine
