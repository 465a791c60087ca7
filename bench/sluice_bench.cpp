// sluice-bench: Google Benchmark micro-benchmarks of the per-core fast path (proto/stack.hpp,
// apps/reflector, pmd/tx_checksum.hpp). No port, no wire: frames are prebuilt in mbufs and fed
// straight to Stack::input, so what is measured is CPU work per packet, with a cache-warm
// working set: a ring of 1024 frames, like a typical RX descriptor ring, cycled through (as if
// the NIC had written them into the cache, DDIO-style). The headers of the ring (~3 cache lines
// a frame) fit in L2; 1024 full 1518-byte frames (~2.3 MB of mbufs) may not, which is what a
// software checksum over the payload then pays. Every benchmark reports
//   cycles/pkt   TSC ticks (rte_rdtsc, at rte_get_tsc_hz(), printed as tsc_hz in the context)
//                around the whole measured loop, divided by the packets (or checksums) it did.
//                TSC is wall time: preemption inflates it (compare the Time and CPU columns);
//   items_per_second  packets (or checksums) per second of CPU time, one core.
//
// BM_ReflectBurst<Rx..,Tx..>/burst:B/frame:F  (B = 1, 8, 32, 64; F = 64, 1518)
//   The reflector's whole per-packet path: Stack::input of a B-packet burst with the Reflector
//   app (parse, validate, deliver, reflect_udp in place), then pmd::finish_tx_checksums on
//   stack.tx(). F is the frame size on the wire, FCS included; the mbuf holds F - 4 bytes (ports
//   strip the CRC): 64 = 18 bytes of UDP payload, 1518 = a 1500-byte (MTU) IPv4 datagram.
//   Frames are valid UDP/IPv4 to the stack's MAC and IP, port 9000.
//     RxGood     the port verified the checksums: ol_flags IP and L4 CKSUM_GOOD.
//     RxUnknown  ol_flags UNKNOWN: the stack verifies the IPv4 and UDP checksums in software.
//     TxSw       finish_tx_checksums<false,false>: the IPv4 header checksum in software
//                (reflect_udp keeps the UDP checksum valid, so only the IP one is computed).
//     TxHw       finish_tx_checksums<true,true>: left to the port's offload (a no-op here).
//   The loop also contains the "transmit": no mbuf is allocated or freed; the peer step swaps
//   MACs, IPs and ports back (what a remote reflector would do) and restores the RX ol_flags,
//   and in TxHw writes the IPv4 checksum the NIC would have filled in. The same mbufs then come
//   back as later RX bursts. That peer step is counted in cycles/pkt; BM_PeerStep measures it
//   alone (likely an overestimate: there its cache lines are colder than right after the stack).
// BM_ParseValidate<Rx..>/burst:B/frame:F
//   Stack::input with an app that serves every port and only stores the delivered mbuf: the
//   parse/validate cost (Ethernet, IPv4, UDP checks, checksum verify for RxUnknown) without
//   the reply. Headers are not modified, so the frames are reused as they are.
// BM_PeerStep/burst:B/frame:F
//   The peer step of BM_ReflectBurst on its own, to subtract.
// BM_Ipv4HeaderChecksum
//   rte_ipv4_cksum over a 20-byte header (what TxSw does per packet).
// BM_UdpChecksumSw/L  (L = 64, 1500: the IPv4 datagram length; the UDP part, L - 20 bytes,
//   is summed with the pseudo-header)
//   rte_ipv4_udptcp_cksum_mbuf, as the software TX path computes it for a UDP checksum request
//   (and as RxUnknown verifies it). bytes_per_second counts the UDP bytes summed.
//
// Run (release build, on an otherwise idle machine for stable numbers):
//   ninja -C build && ./build/bench/sluice-bench --benchmark_filter=Reflect
//   ./build/bench/sluice-bench --benchmark_filter='ReflectBurst<RxGood,TxSw>'
//   --benchmark_repetitions=5 meson test -C build --benchmark          # everything, short
//   (--benchmark_min_time=0.05)
//   ./build/bench/sluice-bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//     adds a "_min" row per benchmark (the fastest repetition's time and cycles/pkt, the most
//     stable figure on a shared machine; its items_per_second is the column's minimum, ignore it).
// All arguments are Google Benchmark's (--help lists them). The EAL's arguments are fixed and
// built here (--no-huge -m 512 --no-pci --no-shconf, a per-process --file-prefix): no hugepages,
// no root and no device needed. Exits non-zero when a benchmark found the stack misbehaving
// (a drop, a missing reply, a checksum path not taken).
#include <unistd.h>

#include <bitset>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_lcore.h>
#include <rte_log.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_udp.h>

#include "apps/reflector/reflector.hpp"
#include "engine/eal.hpp"
#include "pmd/tx_checksum.hpp"
#include "proto/stack.hpp"

namespace {

using sluice::apps::Reflector;
using sluice::proto::kEthHdrLen;
using sluice::proto::kIpv4HdrLen;
using sluice::proto::kUdpHdrLen;
using sluice::proto::Stack;
using sluice::proto::StackConfig;
using sluice::proto::TxBatch;
using sluice::proto::UdpDatagram;

constexpr uint16_t kServedPort = 9000;
constexpr uint16_t kPeerPort = 40000;
constexpr uint8_t kTtl = 64;  // the peer's and ours: the reply's header sums as the request's
constexpr uint32_t kRingFrames = 1024;
constexpr uint32_t kPoolSize = 4095;

constexpr rte_ether_addr kStackMac{{0x02, 0x00, 0x00, 0x00, 0x00, 0x01}};
constexpr rte_ether_addr kPeerMac{{0x02, 0x00, 0x00, 0x00, 0x00, 0x02}};
constexpr rte_be32_t kStackIp = RTE_BE32(RTE_IPV4(10, 0, 0, 1));
constexpr rte_be32_t kPeerIp = RTE_BE32(RTE_IPV4(10, 0, 0, 2));

constexpr uint64_t kRxGood = RTE_MBUF_F_RX_IP_CKSUM_GOOD | RTE_MBUF_F_RX_L4_CKSUM_GOOD;
constexpr uint64_t kRxUnknown = 0;  // RTE_MBUF_F_RX_{IP,L4}_CKSUM_UNKNOWN

rte_mempool* g_pool = nullptr;
bool g_failed = false;

void fail(benchmark::State& state, const char* why) {
    g_failed = true;
    state.SkipWithError(why);
}

// Writes a valid Ethernet/IPv4/UDP frame of `len` bytes (no FCS), peer to stack, into `m`.
// Returns the IPv4 header checksum, or -1 when the mbuf is too small.
int build_frame(rte_mbuf* m, uint16_t len, uint64_t rx_flags) {
    char* p = rte_pktmbuf_append(m, len);
    if (p == nullptr) return -1;
    auto* eth = reinterpret_cast<rte_ether_hdr*>(p);
    eth->dst_addr = kStackMac;
    eth->src_addr = kPeerMac;
    eth->ether_type = RTE_BE16(RTE_ETHER_TYPE_IPV4);
    auto* ip = reinterpret_cast<rte_ipv4_hdr*>(eth + 1);
    ip->version_ihl = RTE_IPV4_VHL_DEF;
    ip->type_of_service = 0;
    ip->total_length = rte_cpu_to_be_16(uint16_t(len - kEthHdrLen));
    ip->packet_id = RTE_BE16(1);
    ip->fragment_offset = RTE_BE16(RTE_IPV4_HDR_DF_FLAG);
    ip->time_to_live = kTtl;
    ip->next_proto_id = IPPROTO_UDP;
    ip->hdr_checksum = 0;
    ip->src_addr = kPeerIp;
    ip->dst_addr = kStackIp;
    ip->hdr_checksum = rte_ipv4_cksum(ip);
    auto* udp = reinterpret_cast<rte_udp_hdr*>(ip + 1);
    udp->src_port = RTE_BE16(kPeerPort);
    udp->dst_port = RTE_BE16(kServedPort);
    udp->dgram_len = rte_cpu_to_be_16(uint16_t(len - kEthHdrLen - kIpv4HdrLen));
    udp->dgram_cksum = 0;
    auto* payload = reinterpret_cast<uint8_t*>(udp + 1);
    for (uint32_t i = 0; i < uint32_t(len - kEthHdrLen - kIpv4HdrLen - kUdpHdrLen); ++i)
        payload[i] = uint8_t(i * 7 + 1);
    udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);  // never 0 for UDP (0xffff instead)
    m->ol_flags = rx_flags;
    m->packet_type = RTE_PTYPE_L2_ETHER | RTE_PTYPE_L3_IPV4 | RTE_PTYPE_L4_UDP;
    return ip->hdr_checksum;
}

// The stack under test and the ring of frames it is fed from, built outside the timed loop.
struct Fixture {
    std::unique_ptr<Stack> stack;
    std::vector<rte_mbuf*> ring;
    rte_be16_t ip_cksum = 0;  // every frame's (identical) IPv4 header checksum
    bool leak = false;        // after an error the ring may hold freed mbufs: do not free it

    bool setup(benchmark::State& state, uint32_t frame_len, uint64_t rx_flags) {
        StackConfig cfg;
        cfg.mac = kStackMac;
        cfg.ip = kStackIp;
        cfg.ttl = kTtl;
        stack = std::make_unique<Stack>();
        if (!stack->init(cfg, g_pool, int(rte_socket_id()))) {
            fail(state, "Stack::init failed");
            return false;
        }
        ring.assign(kRingFrames, nullptr);
        if (rte_pktmbuf_alloc_bulk(g_pool, ring.data(), kRingFrames) != 0) {
            ring.clear();
            fail(state, "mbuf pool exhausted");
            return false;
        }
        for (rte_mbuf* m : ring) {
            const int c = build_frame(m, uint16_t(frame_len - RTE_ETHER_CRC_LEN), rx_flags);
            if (c < 0) {
                fail(state, "frame does not fit an mbuf");
                return false;
            }
            ip_cksum = rte_be16_t(c);
        }
        return true;
    }

    // Packets in, replies out, nothing lost, and the checksum paths the variant claims taken.
    bool check(benchmark::State& state, uint64_t sw_rx_per_pkt) {
        const auto& c = stack->counters();
        const uint64_t pkts = uint64_t(state.iterations()) * uint64_t(state.range(0));
        if (c.rx_packets != pkts || c.udp_delivered != pkts || c.total_drops() != 0) {
            fail(state, "stack dropped or did not deliver a packet");
            return false;
        }
        if (c.sw_rx_cksum != sw_rx_per_pkt * pkts) {
            fail(state, "software RX checksum count differs from the variant's");
            return false;
        }
        return true;
    }

    ~Fixture() {
        if (stack) stack->tx().clear();  // its mbufs are the ring's
        if (!leak && !ring.empty()) rte_pktmbuf_free_bulk(ring.data(), unsigned(ring.size()));
    }
};

void report(benchmark::State& state, uint64_t cycles, uint64_t per_iteration) {
    const uint64_t n = uint64_t(state.iterations()) * per_iteration;
    state.SetItemsProcessed(int64_t(n));
    state.counters["cycles/pkt"] = benchmark::Counter(n ? double(cycles) / double(n) : 0.0);
}

// The peer: reflects our reply back as the next request. kNicIpCksum: the TX stage left the
// IPv4 checksum to the port (TX offload); write the value the NIC would have computed.
template <bool kNicIpCksum>
inline void peer_reflect(rte_mbuf* m, rte_be16_t ip_cksum, uint64_t rx_flags) {
    auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
    const rte_ether_addr mac = eth->dst_addr;
    eth->dst_addr = eth->src_addr;
    eth->src_addr = mac;
    auto* ip = reinterpret_cast<rte_ipv4_hdr*>(eth + 1);
    const rte_be32_t a = ip->dst_addr;
    ip->dst_addr = ip->src_addr;
    ip->src_addr = a;
    if constexpr (kNicIpCksum) ip->hdr_checksum = ip_cksum;
    auto* udp = reinterpret_cast<rte_udp_hdr*>(ip + 1);
    const rte_be16_t port = udp->dst_port;
    udp->dst_port = udp->src_port;
    udp->src_port = port;
    m->ol_flags = rx_flags;
}

inline uint32_t next_pos(uint32_t pos, uint16_t burst) {
    pos += burst;
    return pos + burst > kRingFrames ? 0 : pos;
}

template <uint64_t kRxFlags, bool kHwTx>
void BM_ReflectBurst(benchmark::State& state) {
    const auto burst = uint16_t(state.range(0));
    Fixture f;
    if (!f.setup(state, uint32_t(state.range(1)), kRxFlags)) return;
    auto ports = std::make_shared<std::bitset<65536>>();
    ports->set(kServedPort);
    Reflector app(Reflector::Config{ports}, 0);
    Stack& stack = *f.stack;
    TxBatch& tx = stack.tx();
    uint32_t pos = 0;
    uint64_t sw_tx = 0;

    const uint64_t t0 = rte_rdtsc();
    for (auto _ : state) {
        stack.input(f.ring.data() + pos, burst, rte_rdtsc(), app);
        if (unlikely(tx.size() != burst)) {
            f.leak = true;
            fail(state, "a packet was not reflected");
            break;
        }
        sw_tx += sluice::pmd::finish_tx_checksums<kHwTx, kHwTx>(tx.data(), tx.size());
        // "Transmit": the wire and the peer bring the same mbufs back (same ring slots, same
        // order: reflect_udp queues in input order).
        rte_mbuf** out = tx.data();
        for (uint16_t i = 0; i < burst; ++i) peer_reflect<kHwTx>(out[i], f.ip_cksum, kRxFlags);
        tx.clear();
        pos = next_pos(pos, burst);
    }
    const uint64_t t1 = rte_rdtsc();

    if (state.error_occurred()) return;
    if (!f.check(state, kRxFlags == kRxUnknown ? 2 : 0)) return;
    const uint64_t pkts = uint64_t(state.iterations()) * burst;
    if (sw_tx != (kHwTx ? 0 : pkts)) {
        fail(state, "software TX checksum count differs from the variant's");
        return;
    }
    report(state, t1 - t0, burst);
}

// Takes every datagram and keeps it: no reply, no free.
struct SinkApp {
    rte_mbuf** out;
    uint16_t n = 0;
    bool udp_port_open(uint16_t) const { return true; }
    void on_udp(Stack&, UdpDatagram& d) { out[n++] = d.m; }
};

template <uint64_t kRxFlags>
void BM_ParseValidate(benchmark::State& state) {
    const auto burst = uint16_t(state.range(0));
    Fixture f;
    if (!f.setup(state, uint32_t(state.range(1)), kRxFlags)) return;
    std::vector<rte_mbuf*> delivered(burst);
    rte_mbuf** out = delivered.data();
    benchmark::DoNotOptimize(out);
    SinkApp app{out};
    Stack& stack = *f.stack;
    uint32_t pos = 0;

    const uint64_t t0 = rte_rdtsc();
    for (auto _ : state) {
        stack.input(f.ring.data() + pos, burst, rte_rdtsc(), app);
        if (unlikely(app.n != burst)) {
            f.leak = true;
            fail(state, "a packet was not delivered");
            break;
        }
        benchmark::ClobberMemory();  // the stores to `delivered` happen
        app.n = 0;
        pos = next_pos(pos, burst);
    }
    const uint64_t t1 = rte_rdtsc();

    if (state.error_occurred()) return;
    if (!f.check(state, kRxFlags == kRxUnknown ? 2 : 0)) return;
    report(state, t1 - t0, burst);
}

void BM_PeerStep(benchmark::State& state) {
    const auto burst = uint16_t(state.range(0));
    Fixture f;
    if (!f.setup(state, uint32_t(state.range(1)), kRxGood)) return;
    uint32_t pos = 0;

    const uint64_t t0 = rte_rdtsc();
    for (auto _ : state) {
        rte_mbuf** pkts = f.ring.data() + pos;
        for (uint16_t i = 0; i < burst; ++i) peer_reflect<false>(pkts[i], f.ip_cksum, kRxGood);
        pos = next_pos(pos, burst);
    }
    const uint64_t t1 = rte_rdtsc();
    report(state, t1 - t0, burst);
}

void BM_Ipv4HeaderChecksum(benchmark::State& state) {
    alignas(RTE_CACHE_LINE_SIZE) rte_ipv4_hdr h{};
    h.version_ihl = RTE_IPV4_VHL_DEF;
    h.total_length = RTE_BE16(1500);
    h.packet_id = RTE_BE16(0x1234);
    h.fragment_offset = RTE_BE16(RTE_IPV4_HDR_DF_FLAG);
    h.time_to_live = kTtl;
    h.next_proto_id = IPPROTO_UDP;
    h.src_addr = kStackIp;
    h.dst_addr = kPeerIp;
    rte_ipv4_hdr* hp = &h;

    const uint64_t t0 = rte_rdtsc();
    for (auto _ : state) {
        benchmark::DoNotOptimize(hp);  // the header may have changed: sum it again
        uint16_t c = rte_ipv4_cksum(hp);
        benchmark::DoNotOptimize(c);
    }
    const uint64_t t1 = rte_rdtsc();
    report(state, t1 - t0, 1);
}

void BM_UdpChecksumSw(benchmark::State& state) {
    const auto ip_len = uint16_t(state.range(0));
    rte_mbuf* m = rte_pktmbuf_alloc(g_pool);
    if (m == nullptr || build_frame(m, uint16_t(kEthHdrLen + ip_len), kRxUnknown) < 0) {
        rte_pktmbuf_free(m);
        fail(state, "cannot build the frame");
        return;
    }
    auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, kEthHdrLen);
    auto* udp = rte_pktmbuf_mtod_offset(m, rte_udp_hdr*, kEthHdrLen + kIpv4HdrLen);
    const rte_be16_t good = udp->dgram_cksum;
    constexpr uint16_t kL4Off = kEthHdrLen + kIpv4HdrLen;

    const uint64_t t0 = rte_rdtsc();
    for (auto _ : state) {
        udp->dgram_cksum = 0;  // as finish_tx_checksums does
        uint16_t c = rte_ipv4_udptcp_cksum_mbuf(m, ip, kL4Off);
        benchmark::DoNotOptimize(c);
        benchmark::ClobberMemory();
    }
    const uint64_t t1 = rte_rdtsc();

    udp->dgram_cksum = 0;
    const bool ok = rte_ipv4_udptcp_cksum_mbuf(m, ip, kL4Off) == good;
    rte_pktmbuf_free(m);
    if (!ok) return fail(state, "software UDP checksum differs from rte_ipv4_udptcp_cksum");
    report(state, t1 - t0, 1);
    state.SetBytesProcessed(int64_t(state.iterations()) * (ip_len - kIpv4HdrLen));
}

// With --benchmark_repetitions=N, also report the fastest repetition: on a shared machine the
// minimum is the most stable estimate of the code's own cost.
benchmark::internal::Benchmark* with_min(benchmark::internal::Benchmark* b) {
    return b->ComputeStatistics("min", [](const std::vector<double>& v) {
        double m = v.empty() ? 0.0 : v[0];
        for (double x : v) m = x < m ? x : m;
        return m;
    });
}

void burst_frame_args(benchmark::internal::Benchmark* b) {
    with_min(b)->ArgNames({"burst", "frame"});
    for (int64_t frame : {64, 1518})
        for (int64_t burst : {1, 8, 32, 64}) b->Args({burst, frame});
}

void register_benchmarks() {
    using benchmark::RegisterBenchmark;
    burst_frame_args(
        RegisterBenchmark("BM_ReflectBurst<RxGood,TxSw>", BM_ReflectBurst<kRxGood, false>));
    burst_frame_args(
        RegisterBenchmark("BM_ReflectBurst<RxGood,TxHw>", BM_ReflectBurst<kRxGood, true>));
    burst_frame_args(
        RegisterBenchmark("BM_ReflectBurst<RxUnknown,TxSw>", BM_ReflectBurst<kRxUnknown, false>));
    burst_frame_args(
        RegisterBenchmark("BM_ReflectBurst<RxUnknown,TxHw>", BM_ReflectBurst<kRxUnknown, true>));
    burst_frame_args(RegisterBenchmark("BM_ParseValidate<RxGood>", BM_ParseValidate<kRxGood>));
    burst_frame_args(
        RegisterBenchmark("BM_ParseValidate<RxUnknown>", BM_ParseValidate<kRxUnknown>));
    burst_frame_args(RegisterBenchmark("BM_PeerStep", BM_PeerStep));
    with_min(RegisterBenchmark("BM_Ipv4HeaderChecksum", BM_Ipv4HeaderChecksum));
    with_min(RegisterBenchmark("BM_UdpChecksumSw", BM_UdpChecksumSw))->Arg(64)->Arg(1500);
}

}  // namespace

int main(int argc, char** argv) {
    // Google Benchmark's flags first (--help exits here, before the EAL starts); anything else
    // is an error. The EAL never sees the command line.
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

    sluice::engine::Eal eal;  // cleaned up, runtime directory removed, on return
    if (eal.init(sluice::engine::private_eal_plan("sluice-bench", 512)) != 0) return 1;
    g_pool = rte_pktmbuf_pool_create("sluice_bench", kPoolSize, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                     int(rte_socket_id()));
    if (g_pool == nullptr) {
        fprintf(stderr, "sluice-bench: cannot create the mbuf pool: %s\n", rte_strerror(rte_errno));
        return 1;
    }
    benchmark::AddCustomContext("tsc_hz", std::to_string(rte_get_tsc_hz()));

    register_benchmarks();
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();

    rte_mempool_free(g_pool);
    return g_failed ? 1 : 0;
}
