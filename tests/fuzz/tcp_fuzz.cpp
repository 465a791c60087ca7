// libFuzzer target for TCP: each input is a sequence of frames (2-byte big-endian length,
// then the frame) fed to a Stack with a Tcp attached, an echo server on port 7 and one
// connection of our own opened to 198.18.0.1:80. Checksums are declared verified by the
// "port" (RX flags GOOD) so the fuzzer reaches the state machine instead of the checksum
// check. Timers run between frames, and at the end the virtual clock jumps far enough for
// every connection to time out: then every mbuf must be back in the pool (no leak), and
// nothing may crash or trip the sanitizers on the way.
//
//   CXX=clang++ meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined \
//       -Db_lundef=false -Dtests=false -Dbenchmarks=false
//   ninja -C build-fuzz && build-fuzz/tests/fuzz/sluice-tcp-fuzz -max_total_time=60
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include <rte_eal.h>
#include <rte_mbuf.h>

#include "proto/stack.hpp"
#include "tests/fuzz/fuzz_eal.hpp"
#include "proto/tcp.hpp"

namespace {

using namespace sluice::proto;

struct Echo {
    bool udp_port_open(uint16_t) const { return false; }
    void on_udp(Stack&, UdpDatagram& d) { rte_pktmbuf_free(d.m); }
    void on_tcp_connected(Tcp& t, TcpConn* c) { t.send_copy(c, "hello", 5); }
    void on_tcp_data(Tcp& t, TcpConn* c, rte_mbuf* m) {
        if (t.send(c, m) != 0) rte_pktmbuf_free(m);
    }
    void on_tcp_peer_fin(Tcp& t, TcpConn* c) { t.close(c); }
    void on_tcp_writable(Tcp&, TcpConn*) {}
    void on_tcp_closed(Tcp&, TcpConn*, TcpCloseReason) {}
};

rte_mempool* g_pool;

bool init() {
    g_pool = sluice::fuzz::init_eal_and_pool();
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static bool ready = init();
    (void)ready;
    constexpr uint64_t kHz = 1000000;
    uint64_t now = 1000 * kHz;
    StackConfig cfg;
    cfg.mac = {{0x02, 0, 0, 0, 0, 2}};
    cfg.ip = RTE_BE32(0xc6120002);  // 198.18.0.2
    cfg.prefix_len = 24;
    cfg.tsc_hz = kHz;
    cfg.frag_max_flows = 16;
    {
        Stack stack;
        if (!stack.init(cfg, g_pool, 0)) abort();
        Tcp tcp;
        TcpConfig tc;
        tc.max_conns = 64;
        tc.ooo_pool = 256;
        tc.syn_backlog = 4;
        const uint8_t secret[16] = {1};
        if (!tcp.init(tc, &stack, 0, secret, now)) abort();
        // The peer's MAC is known, so our segments leave at once.
        stack.arp_learned({RTE_BE32(0xc6120001), {{0x02, 0, 0, 0, 0, 1}}}, now);
        tcp.listen(7, 4);
        Echo app;
        tcp.connect(RTE_BE32(0xc6120001), 80, now, 40000);
        tcp.flush(now);
        stack.tx().free_all();
        size_t at = 0;
        while (at + 2 <= size) {
            const size_t len = size_t(data[at]) << 8 | data[at + 1];
            at += 2;
            if (len > size - at || len > RTE_MBUF_DEFAULT_DATAROOM) break;
            rte_mbuf* m = rte_pktmbuf_alloc(g_pool);
            if (!m) abort();
            if (len) memcpy(rte_pktmbuf_append(m, uint16_t(len)), data + at, len);
            m->ol_flags = RTE_MBUF_F_RX_IP_CKSUM_GOOD | RTE_MBUF_F_RX_L4_CKSUM_GOOD;
            at += len;
            now += kHz / 100;  // 10 ms between frames
            stack.input(&m, 1, now, app);
            tcp.dispatch(app);
            tcp.flush(now);
            tcp.poll(now);
            tcp.dispatch(app);
            stack.tx().free_all();
        }
        // Every connection ends: retransmissions give up, TIME-WAIT expires.
        for (int i = 0; i < 40; ++i) {
            now += 120 * kHz;
            stack.poll_timers(now);
            tcp.poll(now);
            tcp.dispatch(app);
            tcp.flush(now);
            stack.tx().free_all();
        }
        if (tcp.open_conns() != 0) abort();
    }
    if (rte_mempool_in_use_count(g_pool) != 0) abort();
    return 0;
}
