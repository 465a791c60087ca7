// sluice-tcp-micro: Google Benchmark micro-benchmarks of Sluice's TCP per transaction, in one
// thread: a client and a server (proto::Stack + proto::Tcp each) exchange frames directly,
// TX batch to the other's input, no port and no ring. What is measured is the CPU work of
// both ends (TCP, IPv4, Ethernet, the apps and, for *Sw, software checksums on both TX and
// RX), per transaction / connection / segment, on one core: the cost a core pays, not a
// latency.
//
// BM_TcpRr<Ck>/conns:N       N connections each complete one 64-byte request/response per
//                            round (client send_copy, server echo by reference, ACKs
//                            piggybacked): cycles per transaction, both ends together.
// BM_TcpConnect<Ck>          connect, 64-byte request, echo, close by the client, the
//                            server's FIN, TIME-WAIT: cycles per connection, both ends.
// BM_TcpBulk<Ck>             one connection streams to a discard server with full-size
//                            segments (MSS 1448 + timestamps): cycles per segment, both ends,
//                            and the goodput one core doing both ends would reach.
// Ck: Sw = no checksum offload (both ends compute and verify in software, as on net_ring /
// net_memif); Hw = the port's offload (RX flags GOOD, TX checksums left to the "NIC").
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_mbuf.h>

#include "engine/eal.hpp"
#include "engine/runtime.hpp"
#include "pmd/tx_checksum.hpp"
#include "proto/tcp.hpp"

using namespace sluice;

namespace {

rte_mempool* g_pool = nullptr;
rte_mempool* g_small = nullptr;

struct Ends;

// Server: echo by reference (zero copy), or discard; closes when the client does.
struct Server {
    bool discard = false;
    void on_tcp_connected(proto::Tcp& t, proto::TcpConn* c) { t.set_nodelay(c, true); }
    void on_tcp_data(proto::Tcp& t, proto::TcpConn* c, rte_mbuf* m) {
        if (discard || t.send(c, m) != 0) rte_pktmbuf_free(m);
    }
    void on_tcp_peer_fin(proto::Tcp& t, proto::TcpConn* c) { t.close(c); }
    void on_tcp_writable(proto::Tcp&, proto::TcpConn*) {}
    void on_tcp_closed(proto::Tcp&, proto::TcpConn*, proto::TcpCloseReason) {}
    bool udp_port_open(uint16_t) const { return false; }
    void on_udp(proto::Stack&, proto::UdpDatagram& d) { rte_pktmbuf_free(d.m); }
};

// Client: counts echoed bytes, connections made and closed.
struct Client {
    uint64_t echoed = 0, connected = 0, closed = 0;
    bool close_on_echo = false;
    void on_tcp_connected(proto::Tcp& t, proto::TcpConn* c) {
        t.set_nodelay(c, true);
        connected++;
    }
    void on_tcp_data(proto::Tcp& t, proto::TcpConn* c, rte_mbuf* m) {
        echoed += m->pkt_len;
        rte_pktmbuf_free(m);
        if (close_on_echo) t.close(c);
    }
    void on_tcp_peer_fin(proto::Tcp&, proto::TcpConn*) {}
    void on_tcp_writable(proto::Tcp&, proto::TcpConn*) {}
    void on_tcp_closed(proto::Tcp&, proto::TcpConn*, proto::TcpCloseReason) { closed++; }
    bool udp_port_open(uint16_t) const { return false; }
    void on_udp(proto::Stack&, proto::UdpDatagram& d) { rte_pktmbuf_free(d.m); }
};

struct Ends {
    proto::Stack cs, ss;
    proto::Tcp ct, st;
    Client capp;
    Server sapp;
    uint64_t now = 0;
    bool hw = false;

    bool init(bool hw_cksum, uint32_t max_conns = 4096) {
        hw = hw_cksum;
        proto::StackConfig cc, sc;
        cc.mac = {{0x02, 0, 0, 0, 0, 1}};
        sc.mac = {{0x02, 0, 0, 0, 0, 2}};
        cc.ip = RTE_BE32(0xc6120001);
        sc.ip = RTE_BE32(0xc6120002);
        cc.tsc_hz = sc.tsc_hz = rte_get_tsc_hz();
        now = rte_rdtsc();
        uint8_t secret[16] = {1, 2, 3};
        proto::TcpConfig tc;
        tc.max_conns = max_conns;
        if (!cs.init(cc, g_pool, 0) || !ss.init(sc, g_pool, 0)) return false;
        if (!ct.init(tc, &cs, 0, secret, now) || !st.init(tc, &ss, 0, secret, now)) return false;
        ct.set_small_pool(g_small);
        st.set_small_pool(g_small);
        cs.arp_learned({sc.ip, sc.mac}, now);
        ss.arp_learned({cc.ip, cc.mac}, now);
        return st.listen(7) == 0;
    }

    // Moves one side's TX batch into the other side, then runs the receiver's dispatch and
    // flush (the engine's order). Returns the frames moved.
    template <class App>
    uint16_t hop(proto::Stack& from, proto::Stack& to, proto::Tcp& tt, App& app) {
        proto::TxBatch& tx = from.tx();
        const uint16_t n = tx.size();
        if (!n) return 0;
        rte_mbuf** p = tx.data();
        if (hw) {
            for (uint16_t i = 0; i < n; ++i)
                p[i]->ol_flags = RTE_MBUF_F_RX_IP_CKSUM_GOOD | RTE_MBUF_F_RX_L4_CKSUM_GOOD;
        } else {
            pmd::finish_tx_checksums<false, false>(p, n);
            for (uint16_t i = 0; i < n; ++i) p[i]->ol_flags = 0;
        }
        rte_mbuf* burst[proto::TxBatch::kCapacity];
        memcpy(burst, p, n * sizeof p[0]);
        tx.clear();
        to.input(burst, n, now, app);
        tt.dispatch(app);
        tt.flush(now);
        return n;
    }

    // Until nothing moves.
    void settle() {
        for (int i = 0; i < 1000; ++i) {
            ct.flush(now);
            const uint16_t a = hop(cs, ss, st, sapp);
            const uint16_t b = hop(ss, cs, ct, capp);
            if (!a && !b) return;
        }
    }
    void tick(uint64_t ms) {
        now += ms * rte_get_tsc_hz() / 1000;
        ct.poll(now);
        st.poll(now);
        settle();
    }
};

void BM_TcpRr(benchmark::State& state, bool hw) {
    const unsigned conns = unsigned(state.range(0));
    auto* e = new Ends();
    if (!e->init(hw)) {
        state.SkipWithError("init");
        delete e;
        return;
    }
    std::vector<proto::TcpConn*> cs;
    for (unsigned i = 0; i < conns; ++i) cs.push_back(e->ct.connect(e->ss.config().ip, 7, e->now));
    e->settle();
    if (e->capp.connected != conns) state.SkipWithError("connect");
    static const char msg[64] = {};
    uint64_t tx = 0;
    const uint64_t t0 = rte_rdtsc();
    for (auto _ : state) {
        for (proto::TcpConn* c : cs) e->ct.send_copy(c, msg, sizeof msg);
        // Requests in, echoes out, echoes in (ACKs ride on the next requests); a burst holds
        // 512 frames, so many connections take several hops.
        for (unsigned k = 0; k <= conns / 256; ++k) {
            e->ct.flush(e->now);
            e->hop(e->cs, e->ss, e->st, e->sapp);
            e->hop(e->ss, e->cs, e->ct, e->capp);
        }
        tx += conns;
    }
    e->settle();
    const uint64_t cyc = rte_rdtsc() - t0;
    if (e->capp.echoed != tx * sizeof msg) {
        fprintf(
            stderr,
            "echoed %lu of %lu; client drops %lu tx_full %lu retx %lu; server drops %lu retx %lu\n",
            (unsigned long)e->capp.echoed, (unsigned long)(tx * sizeof msg),
            (unsigned long)e->cs.counters().total_drops(),
            (unsigned long)e->cs.counters().dropped(proto::Drop::tx_full),
            (unsigned long)e->ct.counters().retransmits,
            (unsigned long)e->ss.counters().total_drops(),
            (unsigned long)e->st.counters().retransmits);
        for (const proto::TcpCounters* t : {&e->ct.counters(), &e->st.counters()}) {
#define SLUICE_X(name, help) \
    if (t->name) fprintf(stderr, " %s=%lu", #name, (unsigned long)t->name);
            SLUICE_TCP_COUNTERS(SLUICE_X)
#undef SLUICE_X
            fprintf(stderr, "\n");
        }
        state.SkipWithError("echo count");
    }
    state.counters["cycles/txn"] = double(cyc) / double(tx);
    state.counters["txn/s/core"] = benchmark::Counter(double(tx), benchmark::Counter::kIsRate);
    e->tick(100);
    delete e;
}

void BM_TcpConnect(benchmark::State& state, bool hw) {
    auto* e = new Ends();
    if (!e->init(hw, 65536)) {
        state.SkipWithError("init");
        delete e;
        return;
    }
    e->capp.close_on_echo = true;
    static const char msg[64] = {};
    uint64_t n = 0;
    const uint64_t t0 = rte_rdtsc();
    for (auto _ : state) {
        proto::TcpConn* c = e->ct.connect(e->ss.config().ip, 7, e->now);
        if (!c) {
            state.SkipWithError("connect");
            break;
        }
        e->ct.send_copy(c, msg, sizeof msg);
        e->settle();
        ++n;
        // Time moves 1 ms per 8 connections: TIME-WAIT slots become reusable as they would.
        if ((n & 7) == 0) e->tick(1);
    }
    const uint64_t cyc = rte_rdtsc() - t0;
    if (e->capp.closed != n) state.SkipWithError("closed count");
    state.counters["cycles/conn"] = double(cyc) / double(n ? n : 1);
    state.counters["conn/s/core"] = benchmark::Counter(double(n), benchmark::Counter::kIsRate);
    delete e;
}

void BM_TcpBulk(benchmark::State& state, bool hw) {
    auto* e = new Ends();
    if (!e->init(hw)) {
        state.SkipWithError("init");
        delete e;
        return;
    }
    e->sapp.discard = true;
    proto::TcpConn* c = e->ct.connect(e->ss.config().ip, 7, e->now);
    e->settle();
    static char buf[65536];
    uint64_t bytes0 = 0, segs = 0;
    bytes0 = e->ct.stats(c).bytes_sent;
    const uint64_t t0 = rte_rdtsc();
    for (auto _ : state) {
        while (e->ct.send_copy(c, buf, sizeof buf) > 0) {
        }
        e->ct.flush(e->now);
        segs += e->hop(e->cs, e->ss, e->st, e->sapp);
        e->hop(e->ss, e->cs, e->ct, e->capp);
    }
    const uint64_t cyc = rte_rdtsc() - t0;
    const uint64_t bytes = e->ct.stats(c).bytes_sent - bytes0;
    state.counters["cycles/seg"] = double(cyc) / double(segs ? segs : 1);
    state.counters["Gbit/s/core"] =
        double(bytes) * 8 / (double(cyc) / double(rte_get_tsc_hz())) / 1e9;
    state.counters["retransmits"] = double(e->ct.counters().retransmits);
    e->ct.abort(c);
    e->tick(100);
    delete e;
}

}  // namespace

BENCHMARK_CAPTURE(BM_TcpRr, Sw, false)->ArgName("conns")->Arg(1)->Arg(64)->Arg(1024);
BENCHMARK_CAPTURE(BM_TcpRr, Hw, true)->ArgName("conns")->Arg(1)->Arg(64)->Arg(1024);
BENCHMARK_CAPTURE(BM_TcpConnect, Sw, false);
BENCHMARK_CAPTURE(BM_TcpConnect, Hw, true);
BENCHMARK_CAPTURE(BM_TcpBulk, Sw, false);
BENCHMARK_CAPTURE(BM_TcpBulk, Hw, true);

int main(int argc, char** argv) {
    engine::EalPlan plan = engine::private_eal_plan("sluice-tcp-micro", 1024);
    engine::Eal eal;
    if (eal.init(plan) != 0) return 1;
    g_pool = engine::create_pool("tcp_micro", 65535, 0, RTE_MBUF_DEFAULT_BUF_SIZE);
    g_small = engine::create_pool("tcp_micro_small", 65535, 0, RTE_PKTMBUF_HEADROOM + 384);
    if (!g_pool || !g_small) return 1;
    benchmark::Initialize(&argc, argv);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    const unsigned in_use = rte_mempool_in_use_count(g_pool);
    if (in_use) fprintf(stderr, "warning: %u mbufs not back in the pool\n", in_use);
    rte_mempool_free(g_pool);
    rte_mempool_free(g_small);
    return in_use ? 1 : 0;
}
