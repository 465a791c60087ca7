#include "engine/runtime.hpp"

#include <cinttypes>

namespace sluice::engine {

std::atomic<bool>& stop_flag() {
    static std::atomic<bool> flag{false};
    return flag;
}

static void on_signal(int) {
    stop_flag().store(true);
}

void install_signal_handlers() {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
}

rte_mempool* create_pool(const char* name, unsigned n, int socket, uint16_t data_room) {
    // n = 2^k - 1 is the mempool's sweet spot (its ring holds 2^k).
    unsigned size = 1;
    while (size - 1 < n) size <<= 1;
    rte_mempool* p = rte_pktmbuf_pool_create(name, size - 1, 256, 0, data_room, socket);
    if (!p)
        fprintf(stderr, "sluice: cannot create mbuf pool %s (%u mbufs) on socket %d\n", name,
                size - 1, socket);
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
    rte_eth_stats st{};
    if (rte_eth_stats_get(port_id, &st) == 0)
        printf("\n  port:   ipackets=%" PRIu64 " opackets=%" PRIu64 " imissed=%" PRIu64
               " ierrors=%" PRIu64 " oerrors=%" PRIu64 " rx_nombuf=%" PRIu64,
               st.ipackets, st.opackets, st.imissed, st.ierrors, st.oerrors, st.rx_nombuf);
    for (unsigned i = 0; i < v.workers; ++i) {
        const CoreStats& c = *v.engine[i];
        printf("\n  worker %u (lcore %u): rx=%" PRIu64 " tx=%" PRIu64 " polls=%" PRIu64
               " busy=%" PRIu64,
               i, v.lcore[i], v.proto[i]->rx_packets, c.port_tx, c.polls, c.busy_polls);
    }
    printf("\n");
    fflush(stdout);
}

}  // namespace sluice::engine
