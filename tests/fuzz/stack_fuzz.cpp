// libFuzzer target: arbitrary bytes as a received frame, through the whole stack with a
// reflecting app. Finds crashes, out-of-bounds reads (with -Db_sanitize=address) and leaks:
// after every input the mbufs in use must be exactly those the stack legitimately holds
// (fragments awaiting reassembly), and a final flush of the reassembly table returns them all.
//
//   CXX=clang++ meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined \
//       -Db_lundef=false -Dtests=false -Dbenchmarks=false
//   ninja -C build-fuzz && build-fuzz/tests/fuzz/sluice-stack-fuzz -max_total_time=60
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include <rte_eal.h>
#include <rte_mbuf.h>

#include "proto/stack.hpp"
#include "tests/fuzz/fuzz_eal.hpp"

namespace {

struct Reflect {
    bool udp_port_open(uint16_t port) const { return port != 53; }
    void on_udp(sluice::proto::Stack& s, sluice::proto::UdpDatagram& d) { s.reflect_udp(d); }
};

rte_mempool* g_pool;
sluice::proto::Stack* g_stack;
uint64_t g_now = 1;

bool init() {
    g_pool = sluice::fuzz::init_eal_and_pool();
    sluice::proto::StackConfig cfg;
    cfg.mac = {{0x02, 0, 0, 0, 0, 2}};
    cfg.ip = RTE_BE32(0xc6120002);  // 198.18.0.2
    cfg.prefix_len = 24;
    cfg.gateway = RTE_BE32(0xc6120001);
    cfg.tsc_hz = 1000000;
    cfg.frag_max_flows = 64;
    g_stack = new sluice::proto::Stack();
    if (!g_stack->init(cfg, g_pool, 0)) abort();
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static bool ready = init();
    (void)ready;
    if (size > RTE_MBUF_DEFAULT_DATAROOM) return 0;
    rte_mbuf* m = rte_pktmbuf_alloc(g_pool);
    if (!m) abort();
    char* p = rte_pktmbuf_append(m, uint16_t(size));
    if (size) memcpy(p, data, size);
    // The last byte (when present) picks the RX checksum verdict the "port" reports.
    static const uint64_t kFlags[4] = {0, RTE_MBUF_F_RX_IP_CKSUM_GOOD | RTE_MBUF_F_RX_L4_CKSUM_GOOD,
                                       RTE_MBUF_F_RX_IP_CKSUM_BAD, RTE_MBUF_F_RX_L4_CKSUM_BAD};
    m->ol_flags = size ? kFlags[data[size - 1] & 3] : 0;
    Reflect app;
    g_now += 1000;
    g_stack->input(&m, 1, g_now, app);
    g_stack->tx().free_all();
    if ((g_now / 1000) % 64 == 0) {
        g_stack->poll_timers(g_now);
        g_stack->tx().free_all();
    }
    // Every mbuf is either free or held for reassembly/ARP; after a timeout all come back.
    if ((g_now / 1000) % 4096 == 0) {
        g_now += 3600ull * 1000000;
        g_stack->poll_timers(g_now);
        g_stack->tx().free_all();
        if (rte_mempool_in_use_count(g_pool) != 0) abort();
    }
    return 0;
}
