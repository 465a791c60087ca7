// sluice-bench: Google Benchmark micro-benchmarks of the per-core fast path (proto/stack.hpp,
// apps/reflector, pmd/tx_checksum.hpp, engine/soft_rss.hpp, proto/arp_cache.hpp). No port, no
// wire: frames are prebuilt in mbufs and fed straight to the code under test, so what is
// measured is CPU work per packet, with a cache-warm working set: a ring of 1024 frames, like a
// typical RX descriptor ring, cycled through a burst at a time (as if the NIC had written them
// into the cache, DDIO-style). The headers of the ring (~3 cache lines a frame) fit in L2; 1024
// full 1518-byte frames (~2.3 MB of mbufs) may not, which is what a software checksum over the
// payload then pays. Every benchmark but BM_RawSum runs per burst size B = 1, 8, 32, 64 (B
// packets, headers, datagrams, lookups per iteration) and reports
//   cycles/pkt   TSC ticks (rte_rdtsc, at rte_get_tsc_hz(), printed as tsc_hz in the context)
//                around the whole measured loop (BM_Reassembly3Frag: around each measured step),
//                divided by the packets (or checksums, hops, lookups) it did. TSC is wall time:
//                preemption inflates it (compare the Time and CPU columns);
//   items_per_second  the same items per second of CPU time, one core.
//
// BM_ReflectBurst<Rx..,Tx..>/burst:B/frame:F  (F = 64, 1518)
//   The reflector's whole per-packet path: Stack::input of a B-packet burst with the Reflector
//   app (parse, validate, deliver, reflect_udp in place), then pmd::finish_tx_checksums on
//   stack.tx(). F is the frame size on the wire, FCS included; the mbuf holds F - 4 bytes (ports
//   strip the CRC): 64 = 18 bytes of UDP payload, 1518 = a 1500-byte (MTU) IPv4 datagram.
//   Frames are valid UDP/IPv4 to the stack's MAC and IP, port 9000.
//     RxGood     the port verified the checksums: ol_flags IP and L4 CKSUM_GOOD.
//     RxUnknown  ol_flags UNKNOWN: the stack verifies the IPv4 and UDP checksums in software.
//     TxSw       finish_tx_checksums<false,false>: whatever checksum the reply requests from
//                the port (DPDK's TX offload contract) is computed in software. The counter
//                sw_tx_cksum/pkt says how many per packet: 1 (the IPv4 header) with a stack
//                that requests it, 0 with one that keeps the reply's header checksum valid in
//                place (reflect_udp keeps the UDP checksum valid either way). The count is
//                taken from one extra, untimed burst and checked against the timed loop's.
//     TxHw       finish_tx_checksums<true,true>: left to the port's offload (a no-op here).
//   The loop also contains the "transmit": no mbuf is allocated or freed; the peer step swaps
//   MACs, IPs and ports back (what a remote reflector would do) and restores the RX ol_flags,
//   and in TxHw writes the IPv4 checksum the NIC would have filled in. The same mbufs then come
//   back as later RX bursts. That peer step is counted in cycles/pkt; BM_PeerStep measures it
//   alone (likely an overestimate: there its cache lines are colder than right after the stack).
//   Checked: no drop, every packet reflected, the software checksum counts, and every frame's
//   IPv4 header checksum valid at the end.
// BM_ParseValidate<Rx..>/burst:B/frame:F
//   Stack::input with an app that serves every port and only stores the delivered mbuf: the
//   parse/validate cost (Ethernet, IPv4, UDP checks, checksum verify for RxUnknown) without
//   the reply. Headers are not modified, so the frames are reused as they are.
// BM_PeerStep/burst:B/frame:F
//   The peer step of BM_ReflectBurst on its own, to subtract.
// BM_Ipv4HeaderChecksum<Impl>/burst:B
//   For each of B frames of the ring (64-byte frames): zero the IPv4 header checksum and write
//   the checksum of the 20-byte header, as finish_tx_checksums<false,..> does per packet.
//     Rte     rte_ipv4_cksum (DPDK 22.11);
//     Sluice  proto::ipv4_header_checksum (proto/checksum.hpp: what pmd/tx_checksum.hpp uses).
//   Zeroing the field right before summing the header costs a store-forwarding stall (a
//   16-bit store read back by wider loads): about twice a sum over an unmodified header.
// BM_UdpChecksumSw<Impl>/burst:B/len:L  (L = 64, 1500: the IPv4 datagram length; the UDP part,
//   L - 20 bytes, is summed with the pseudo-header)
//   For each of B frames of a ring of L-byte datagrams: zero the UDP checksum and compute it,
//   as the software TX path does for a requested UDP checksum (RxUnknown verifies the same
//   sum). Rte: rte_ipv4_udptcp_cksum_mbuf; Sluice: proto::l4_checksum (pmd/tx_checksum.hpp's
//   path for single-segment mbufs). The 1500-byte ring is ~1.5 MB of payload: mostly L2, not
//   L1. bytes_per_second counts the UDP bytes summed.
// BM_RawSum<Impl>/len:L  (L = 20, 64, 1472; no burst)
//   The bare one's-complement sum over one L1-hot buffer: rte_raw_cksum against
//   proto::sum_bytes + fold_sum (checked equal).
// BM_RingHop/burst:B
//   One software ring hop of B mbuf pointers on an SP/SC rte_ring of 1024 slots (the runtime's
//   ring size and flags): rte_ring_sp_enqueue_burst then rte_ring_sc_dequeue_burst, same thread,
//   so the ring's cache lines never move between cores (a cross-core hop adds those misses;
//   this is the instruction cost only). cycles/pkt is per pointer moved.
// BM_HeaderTouch/burst:B
//   Loads the fields the software-RSS hash reads (data_len, EtherType, IHL, protocol,
//   fragment field, addresses, ports) from each frame of the ring and folds them: what any
//   first stage over this harness's 1024-frame ring pays to bring a frame's mbuf and header
//   lines in (from L2 here). In a real pipeline the stack would pay it if RSS did not, so the
//   cost software RSS *adds* is roughly BM_SoftRssHashEnqueue minus this.
// BM_SoftRssHash/burst:B
//   engine::SoftRss (init with 2 workers) target() of each frame of the burst: the symmetric
//   Toeplitz hash of the 4-tuple (table-driven) and the RETA lookup. Every frame of the ring
//   is its own flow (1024 source ports): the targets split about half and half (checked).
// BM_SoftRssHash<rte_softrss_be>/burst:B
//   The same with DPDK's rte_softrss_be over the same tuple and key (engine::SoftRss's former
//   implementation), checked to pick the same worker as engine::SoftRss for every frame.
// BM_SoftRssHashEnqueue/burst:B
//   The software-RSS stage of engine/runtime.hpp's worker, as it is there, for worker 0 of 2:
//   target() per frame, grouped into a local array (target 0, handed to the own stack: not
//   measured) and per-target arrays, each non-empty one enqueued with rte_ring_sp_enqueue_burst
//   to that worker's SP/SC ring (1024 slots). The rings are drained INSIDE the timed loop,
//   right after the enqueue, with rte_ring_sc_dequeue_burst (what the receiving worker does),
//   so cycles/pkt is the CPU work the stage adds to a packet's path on both cores together,
//   same-thread (no cross-core cache traffic; see BM_RingHop). It is averaged over every
//   packet of the burst, local ones included; the counter `ringed` is the share that went
//   through a ring (~0.5).
// BM_ArpLookup<Hit>/burst:B, BM_ArpLookup<Miss>/burst:B
//   proto::ArpCache (256 slots) holding 64 live entries (10.0.0.10-73): B lookups, each copying
//   the MAC found (as send_ipv4 does into the Ethernet header). Hit: addresses of the 64
//   entries in a scrambled order; Miss: 64 addresses not in the cache (10.0.1.10-73; a miss
//   ends at the first empty slot of its probe sequence).
// BM_Reassembly3Frag/burst:B/frag:F/cksum:C  (F = 32, 1480; C = 1, 0)
//   B UDP datagrams, each in 3 IPv4 fragments of F bytes of IP payload (frames of 34 + F
//   bytes: 66 or 1514, a 96- or 4440-byte UDP datagram), distinct IP IDs within the burst,
//   fragments of a datagram back to back and in order, to the stack's MAC and IP, port 9000,
//   RX flags IP CKSUM_GOOD. C = 1: the datagram carries a UDP checksum, which the stack then
//   verifies in software over the whole reassembled datagram (the port's verdict on the first
//   fragment says nothing of it); C = 0: no UDP checksum (RFC 768 allows it), so the figure is
//   the parse and rte_ip_frag reassembly alone. Each iteration the 3B fragments are allocated
//   (rte_pktmbuf_alloc_bulk) and their frames copied in (memcpy) from prebuilt templates,
//   because reassembly consumes them; Stack::input then takes the 3B-packet burst with an app
//   that checks each datagram (reassembled, 3 segments, full length) and frees it
//   (rte_pktmbuf_free of the chain): no reply, no TX. Then, in the same iteration, the
//   baseline: the same allocate + copy of the same frames, and a free of each mbuf
//   (rte_pktmbuf_free, like the app's chain free). Each of the two steps is timed with its own
//   pair of TSC reads, so both see the same cache state and the same disturbances. Counters:
//     cycles/pkt, cycles/dgram  the measured step (allocate, copy, stack, free) per fragment
//                and per datagram;
//     base_cycles/pkt  the baseline step per fragment;
//     net_cycles/pkt, net_cycles/dgram  the difference: the stack's cost (parse, validate,
//                fragment filter, rte_ip_frag reassembly, UDP checks and software checksum
//                when C = 1, delivery) per fragment and per datagram;
//     items_per_second  fragments per second of the measured step (from the TSC: Google
//                Benchmark's Time and CPU columns include the baseline steps).
// BM_AllocCopy/burst:B/frag:F
//   The baseline of BM_Reassembly3Frag on its own, as a benchmark: allocate 3B mbufs, copy the
//   3B fragment frames in, free them one by one. cycles/pkt per frame.
//
// Run (release build, on an otherwise idle machine for stable numbers):
//   ninja -C build && ./build/bench/sluice-bench                     # everything (~2 minutes)
//   ./build/bench/sluice-bench --benchmark_filter='/burst:(1|64)(/|$)'   # two burst sizes
//   ./build/bench/sluice-bench --benchmark_filter='ReflectBurst<RxGood,TxSw>'
//   ./build/bench/sluice-bench --benchmark_filter='SoftRss|RingHop'
//   meson test -C build --benchmark        # everything, short (--benchmark_min_time=0.05)
//   ./build/bench/sluice-bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
//     adds a "_min" row per benchmark (the fastest repetition's time and cycles/pkt, the most
//     stable figure on a shared machine; its items_per_second is the column's minimum, ignore
//     it). bench/micro_table.py turns that run's --benchmark_out JSON into the markdown table
//     of bench/MICRO_RESULTS.md (which gives the exact command).
// All arguments are Google Benchmark's (--help lists them). The EAL's arguments are fixed and
// built here (--no-huge -m 512 --no-pci --no-shconf, a per-process --file-prefix): no hugepages,
// no root and no device needed. Exits non-zero when a benchmark found the code under test
// misbehaving (a drop, a missing reply or datagram, a checksum path not taken, a wrong
// checksum, a ring count, a lookup result): every benchmark checks its own result.
#include <unistd.h>

#include <bitset>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <initializer_list>
#include <string>
#include <utility>
#include <type_traits>
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
#include <rte_ring.h>
#include <rte_thash.h>
#include <rte_udp.h>

#include "apps/reflector/reflector.hpp"
#include "engine/eal.hpp"
#include "engine/soft_rss.hpp"
#include "pmd/port.hpp"
#include "pmd/tx_checksum.hpp"
#include "proto/arp_cache.hpp"
#include "proto/checksum.hpp"
#include "proto/stack.hpp"

namespace {

using sluice::apps::Reflector;
using sluice::engine::SoftRss;
using sluice::proto::ArpCache;
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
constexpr uint16_t kMaxBurst = 64;
constexpr unsigned kSwRingSize = 1024;  // engine::Runtime::kRingSize

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

void write_eth(rte_ether_hdr* eth) {
    eth->dst_addr = kStackMac;
    eth->src_addr = kPeerMac;
    eth->ether_type = RTE_BE16(RTE_ETHER_TYPE_IPV4);
}

// Writes a valid Ethernet/IPv4/UDP frame of `len` bytes (no FCS), peer to stack, into `m`.
// Returns the IPv4 header checksum, or -1 when the mbuf is too small.
int build_frame(rte_mbuf* m, uint16_t len, uint64_t rx_flags, uint16_t src_port = kPeerPort) {
    char* p = rte_pktmbuf_append(m, len);
    if (p == nullptr) return -1;
    auto* eth = reinterpret_cast<rte_ether_hdr*>(p);
    write_eth(eth);
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
    udp->src_port = rte_cpu_to_be_16(src_port);
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

// The ring of kRingFrames prebuilt frames a benchmark is fed from, built outside the timed loop.
struct Frames {
    std::vector<rte_mbuf*> ring;
    rte_be16_t ip_cksum = 0;  // every frame's (identical) IPv4 header checksum
    bool leak = false;        // after an error the ring may hold freed mbufs: do not free it

    Frames() = default;
    Frames(const Frames&) = delete;
    Frames& operator=(const Frames&) = delete;

    // Frame i comes from source port kPeerPort + i % flows (its own UDP checksum): `flows`
    // distinct 4-tuples.
    bool build(benchmark::State& state, uint32_t frame_len, uint64_t rx_flags, uint32_t flows = 1) {
        ring.assign(kRingFrames, nullptr);
        if (rte_pktmbuf_alloc_bulk(g_pool, ring.data(), kRingFrames) != 0) {
            ring.clear();
            fail(state, "mbuf pool exhausted");
            return false;
        }
        for (uint32_t i = 0; i < kRingFrames; ++i) {
            const int c = build_frame(ring[i], uint16_t(frame_len - RTE_ETHER_CRC_LEN), rx_flags,
                                      uint16_t(kPeerPort + i % flows));
            if (c < 0) {
                fail(state, "frame does not fit an mbuf");
                return false;
            }
            ip_cksum = rte_be16_t(c);
        }
        return true;
    }

    ~Frames() {
        if (!leak && !ring.empty()) rte_pktmbuf_free_bulk(ring.data(), unsigned(ring.size()));
    }
};

std::unique_ptr<Stack> make_stack(benchmark::State& state) {
    StackConfig cfg;
    cfg.mac = kStackMac;
    cfg.ip = kStackIp;
    cfg.ttl = kTtl;
    auto stack = std::make_unique<Stack>();
    if (!stack->init(cfg, g_pool, int(rte_socket_id()))) {
        fail(state, "Stack::init failed");
        return nullptr;
    }
    return stack;
}

// The stack under test and the ring of frames it is fed from.
struct Fixture : Frames {
    std::unique_ptr<Stack> stack;

    bool setup(benchmark::State& state, uint32_t frame_len, uint64_t rx_flags) {
        stack = make_stack(state);
        return stack && build(state, frame_len, rx_flags);
    }

    // Packets in, replies out, nothing lost, and the checksum paths the variant claims taken.
    // `extra`: packets fed besides the timed loop's.
    bool check(benchmark::State& state, uint64_t sw_rx_per_pkt, uint64_t extra = 0) {
        const auto& c = stack->counters();
        const uint64_t pkts = uint64_t(state.iterations()) * uint64_t(state.range(0)) + extra;
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
    }
};

// An SP/SC rte_ring, freed with the benchmark.
struct SwRing {
    rte_ring* r = nullptr;

    bool create(benchmark::State& state) {
        static unsigned seq = 0;
        const std::string name = "sb_ring" + std::to_string(seq++);
        r = rte_ring_create(name.c_str(), kSwRingSize, int(rte_socket_id()),
                            RING_F_SP_ENQ | RING_F_SC_DEQ);
        if (r == nullptr) fail(state, "cannot create the ring");
        return r != nullptr;
    }
    SwRing() = default;
    SwRing(const SwRing&) = delete;
    SwRing& operator=(const SwRing&) = delete;
    ~SwRing() { rte_ring_free(r); }  // what it may still hold is a Frames ring's
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

    // How many checksums the stack leaves to the TX stage per reply (IPv4 header, UDP): one
    // more burst, untimed, its requests counted, then finished and reflected like the others.
    stack.input(f.ring.data() + pos, burst, rte_rdtsc(), app);
    if (tx.size() != burst) {
        f.leak = true;
        return fail(state, "a packet was not reflected");
    }
    uint64_t requests = 0;
    for (uint16_t i = 0; i < burst; ++i) {
        const uint64_t fl = tx.data()[i]->ol_flags;
        requests += ((fl & RTE_MBUF_F_TX_IP_CKSUM) != 0) + ((fl & RTE_MBUF_F_TX_L4_MASK) != 0);
    }
    const uint32_t probe_sw = sluice::pmd::finish_tx_checksums<kHwTx, kHwTx>(tx.data(), tx.size());
    for (uint16_t i = 0; i < burst; ++i) peer_reflect<kHwTx>(tx.data()[i], f.ip_cksum, kRxFlags);
    tx.clear();

    if (!f.check(state, kRxFlags == kRxUnknown ? 2 : 0, burst)) return;
    const uint64_t iterations = uint64_t(state.iterations());
    if (sw_tx != (kHwTx ? 0 : requests * iterations) || probe_sw != (kHwTx ? 0 : requests)) {
        fail(state, "software TX checksum count differs from the stack's requests");
        return;
    }
    // Whatever computed it (the stack in place, the TX stage, the "NIC"), every frame leaves
    // with a valid IPv4 header checksum: the same as the request's (same TTL, swapped words).
    for (rte_mbuf* m : f.ring)
        if (rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, kEthHdrLen)->hdr_checksum != f.ip_cksum)
            return fail(state, "a reply left with a wrong IPv4 header checksum");
    report(state, t1 - t0, burst);
    state.counters["sw_tx_cksum/pkt"] = benchmark::Counter(kHwTx ? 0.0 : double(requests) / burst);
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

// ---------------------------------------------------------------------------------------------
// Checksums in software, a burst at a time.

// Which implementation of the Internet checksum: DPDK's (rte_ipv4_cksum, rte_raw_cksum,
// rte_ipv4_udptcp_cksum_mbuf), or proto/checksum.hpp's (what pmd/tx_checksum.hpp and the stack
// use for single-segment packets).
enum class Impl { Rte, Sluice };

template <Impl kImpl>
void BM_Ipv4HeaderChecksum(benchmark::State& state) {
    const auto burst = uint16_t(state.range(0));
    Frames f;
    if (!f.build(state, 64, kRxGood)) return;
    uint32_t pos = 0;

    const uint64_t t0 = rte_rdtsc();
    for (auto _ : state) {
        rte_mbuf** pkts = f.ring.data() + pos;
        for (uint16_t i = 0; i < burst; ++i) {
            auto* ip = rte_pktmbuf_mtod_offset(pkts[i], rte_ipv4_hdr*, kEthHdrLen);
            ip->hdr_checksum = 0;  // as finish_tx_checksums does
            if constexpr (kImpl == Impl::Rte)
                ip->hdr_checksum = rte_ipv4_cksum(ip);
            else
                ip->hdr_checksum = sluice::proto::ipv4_header_checksum(ip, kIpv4HdrLen);
        }
        pos = next_pos(pos, burst);
    }
    const uint64_t t1 = rte_rdtsc();

    for (rte_mbuf* m : f.ring)
        if (rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, kEthHdrLen)->hdr_checksum != f.ip_cksum)
            return fail(state, "IPv4 header checksum differs from the frame's");
    report(state, t1 - t0, burst);
}

template <Impl kImpl>
void BM_UdpChecksumSw(benchmark::State& state) {
    const auto burst = uint16_t(state.range(0));
    const auto ip_len = uint16_t(state.range(1));
    Frames f;
    if (!f.build(state, uint32_t(kEthHdrLen + ip_len + RTE_ETHER_CRC_LEN), kRxUnknown)) return;
    constexpr uint16_t kL4Off = kEthHdrLen + kIpv4HdrLen;
    const rte_be16_t good = rte_pktmbuf_mtod_offset(f.ring[0], rte_udp_hdr*, kL4Off)->dgram_cksum;
    uint32_t pos = 0;

    const uint64_t t0 = rte_rdtsc();
    for (auto _ : state) {
        rte_mbuf** pkts = f.ring.data() + pos;
        for (uint16_t i = 0; i < burst; ++i) {
            rte_mbuf* m = pkts[i];
            auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, kEthHdrLen);
            auto* udp = rte_pktmbuf_mtod_offset(m, rte_udp_hdr*, kL4Off);
            udp->dgram_cksum = 0;  // as finish_tx_checksums does
            if constexpr (kImpl == Impl::Rte)
                udp->dgram_cksum = rte_ipv4_udptcp_cksum_mbuf(m, ip, kL4Off);
            else
                udp->dgram_cksum = sluice::proto::l4_checksum(
                    ip, udp, uint16_t(rte_be_to_cpu_16(ip->total_length) - kIpv4HdrLen));
        }
        pos = next_pos(pos, burst);
    }
    const uint64_t t1 = rte_rdtsc();

    for (rte_mbuf* m : f.ring)
        if (rte_pktmbuf_mtod_offset(m, rte_udp_hdr*, kL4Off)->dgram_cksum != good)
            return fail(state, "software UDP checksum differs from rte_ipv4_udptcp_cksum");
    report(state, t1 - t0, burst);
    state.SetBytesProcessed(int64_t(state.iterations()) * burst * (ip_len - kIpv4HdrLen));
}

// The bare sum over one L1-hot buffer of `len` bytes (no burst): the two implementations'
// inner loops.
template <Impl kImpl>
void BM_RawSum(benchmark::State& state) {
    const auto len = size_t(state.range(0));
    alignas(RTE_CACHE_LINE_SIZE) static uint8_t buf[2048];
    for (size_t i = 0; i < sizeof buf; ++i) buf[i] = uint8_t(i * 13 + 5);
    const uint8_t* p = buf;

    const uint64_t t0 = rte_rdtsc();
    for (auto _ : state) {
        benchmark::DoNotOptimize(p);  // the buffer may have changed: sum it again
        uint16_t c;
        if constexpr (kImpl == Impl::Rte)
            c = rte_raw_cksum(p, len);
        else
            c = sluice::proto::fold_sum(sluice::proto::sum_bytes(p, len));
        benchmark::DoNotOptimize(c);
    }
    const uint64_t t1 = rte_rdtsc();

    if (rte_raw_cksum(buf, len) != sluice::proto::fold_sum(sluice::proto::sum_bytes(buf, len)))
        return fail(state, "proto::sum_bytes differs from rte_raw_cksum");
    report(state, t1 - t0, 1);
    state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(len));
}

// ---------------------------------------------------------------------------------------------
// Software rings and software RSS (engine/runtime.hpp's worker).

void BM_RingHop(benchmark::State& state) {
    const auto burst = uint16_t(state.range(0));
    Frames f;
    SwRing ring;
    if (!f.build(state, 64, kRxGood) || !ring.create(state)) return;
    rte_mbuf* out[kMaxBurst];
    uint32_t pos = 0;

    const uint64_t t0 = rte_rdtsc();
    for (auto _ : state) {
        rte_mbuf** in = f.ring.data() + pos;
        const unsigned q =
            rte_ring_sp_enqueue_burst(ring.r, reinterpret_cast<void* const*>(in), burst, nullptr);
        const unsigned d =
            rte_ring_sc_dequeue_burst(ring.r, reinterpret_cast<void**>(out), burst, nullptr);
        if (unlikely(q != burst || d != burst || out[0] != in[0] ||
                     out[burst - 1] != in[burst - 1])) {
            fail(state, "ring hop lost or reordered a pointer");
            break;
        }
        pos = next_pos(pos, burst);
    }
    const uint64_t t1 = rte_rdtsc();

    if (state.error_occurred()) return;
    report(state, t1 - t0, burst);
}

constexpr uint16_t kRssWorkers = 2;
constexpr uint16_t kRssSelf = 0;  // the benchmark plays worker 0, the RX queue's owner

// What any first stage over this ring pays: the fields SoftRss::hash reads (data_len, EtherType,
// IHL, protocol, fragment field, addresses, ports), loaded and folded, no hash.
void BM_HeaderTouch(benchmark::State& state) {
    const auto burst = uint16_t(state.range(0));
    Frames f;
    if (!f.build(state, 64, kRxGood, kRingFrames)) return;
    uint64_t acc = 0;
    uint32_t pos = 0;

    const uint64_t t0 = rte_rdtsc();
    for (auto _ : state) {
        rte_mbuf** pkts = f.ring.data() + pos;
        for (uint16_t i = 0; i < burst; ++i) {
            const rte_mbuf* m = pkts[i];
            const auto* eth = rte_pktmbuf_mtod(m, const rte_ether_hdr*);
            const auto* ip = reinterpret_cast<const rte_ipv4_hdr*>(eth + 1);
            const auto* udp = reinterpret_cast<const rte_udp_hdr*>(ip + 1);
            acc += m->data_len ^ eth->ether_type ^ ip->version_ihl ^ ip->next_proto_id ^
                   ip->fragment_offset ^ ip->src_addr ^ ip->dst_addr ^ udp->src_port ^
                   udp->dst_port;
        }
        pos = next_pos(pos, burst);
    }
    const uint64_t t1 = rte_rdtsc();
    benchmark::DoNotOptimize(acc);
    if (acc == 0) return fail(state, "read nothing");
    report(state, t1 - t0, burst);
}

// The targets of a run: both workers got a fair share (every frame is its own flow).
bool check_rss_split(benchmark::State& state, const uint64_t (&per_target)[kRssWorkers]) {
    uint64_t sum = 0;
    for (uint64_t n : per_target) sum += n;
    const uint64_t pkts = uint64_t(state.iterations()) * uint64_t(state.range(0));
    if (sum != pkts) {
        fail(state, "software RSS lost a packet");
        return false;
    }
    // 1024 flows, cycled: each worker must get far more than a quarter (or a burst of 1 in a
    // one-iteration run).
    for (uint64_t n : per_target)
        if (n * 4 < pkts && pkts >= 64) {
            fail(state, "software RSS sent (almost) nothing to a worker");
            return false;
        }
    return true;
}

// engine::SoftRss before it became table-driven: rte_softrss_be over the same tuple, the same
// key (converted) and RETA. Checked to pick the same worker as engine::SoftRss for every frame.
class RteSoftRss {
  public:
    void init(uint16_t workers) {
        rte_convert_rss_key(reinterpret_cast<const uint32_t*>(sluice::pmd::kSymmetricRssKey),
                            reinterpret_cast<uint32_t*>(key_), sizeof key_);
        for (unsigned i = 0; i < SoftRss::kRetaSize; ++i) reta_[i] = uint16_t(i % workers);
    }
    uint16_t target(const rte_mbuf* m) const {
        const auto* eth = rte_pktmbuf_mtod(m, const rte_ether_hdr*);
        if (unlikely(m->data_len < sizeof(rte_ether_hdr) + sizeof(rte_ipv4_hdr) ||
                     eth->ether_type != RTE_BE16(RTE_ETHER_TYPE_IPV4)))
            return reta_[0];
        const auto* ip = reinterpret_cast<const rte_ipv4_hdr*>(eth + 1);
        rte_ipv4_tuple t;
        t.src_addr = rte_be_to_cpu_32(ip->src_addr);
        t.dst_addr = rte_be_to_cpu_32(ip->dst_addr);
        const uint16_t ihl = uint16_t((ip->version_ihl & 0x0f) * 4);
        uint32_t len = RTE_THASH_V4_L3_LEN;
        if ((ip->next_proto_id == IPPROTO_UDP || ip->next_proto_id == IPPROTO_TCP) &&
            !rte_ipv4_frag_pkt_is_fragmented(ip) &&
            m->data_len >= sizeof(rte_ether_hdr) + ihl + 4) {
            const auto* ports =
                reinterpret_cast<const uint16_t*>(reinterpret_cast<const uint8_t*>(ip) + ihl);
            t.sport = rte_be_to_cpu_16(ports[0]);
            t.dport = rte_be_to_cpu_16(ports[1]);
            len = RTE_THASH_V4_L4_LEN;
        }
        const uint32_t h = rte_softrss_be(reinterpret_cast<uint32_t*>(&t), len, key_);
        return reta_[h & (SoftRss::kRetaSize - 1)];
    }

  private:
    uint8_t key_[40];
    uint16_t reta_[SoftRss::kRetaSize];
};

// The hash and RETA lookup alone, with engine::SoftRss or the rte_softrss_be version; the
// latter is also checked to pick the same worker as engine::SoftRss for every frame.
template <class Rss>
void BM_SoftRssHash(benchmark::State& state) {
    const auto burst = uint16_t(state.range(0));
    Frames f;
    if (!f.build(state, 64, kRxGood, kRingFrames)) return;
    Rss rss;
    rss.init(kRssWorkers);
    uint64_t per_target[kRssWorkers] = {};
    uint32_t pos = 0;

    const uint64_t t0 = rte_rdtsc();
    for (auto _ : state) {
        rte_mbuf** pkts = f.ring.data() + pos;
        for (uint16_t i = 0; i < burst; ++i) per_target[rss.target(pkts[i])]++;
        pos = next_pos(pos, burst);
    }
    const uint64_t t1 = rte_rdtsc();

    if (!check_rss_split(state, per_target)) return;
    if constexpr (!std::is_same_v<Rss, SoftRss>) {
        SoftRss table;
        table.init(kRssWorkers);
        for (rte_mbuf* m : f.ring)
            if (rss.target(m) != table.target(m))
                return fail(state, "engine::SoftRss and rte_softrss_be pick different workers");
    }
    report(state, t1 - t0, burst);
}

void BM_SoftRssHashEnqueue(benchmark::State& state) {
    const auto burst = uint16_t(state.range(0));
    Frames f;
    if (!f.build(state, 64, kRxGood, kRingFrames)) return;
    SoftRss rss;
    rss.init(kRssWorkers);
    SwRing steer[kRssWorkers];  // steer[j]: to worker j (none to ourselves)
    for (uint16_t j = 0; j < kRssWorkers; ++j)
        if (j != kRssSelf && !steer[j].create(state)) return;
    rte_mbuf* local[kMaxBurst];
    rte_mbuf* out[kRssWorkers][kMaxBurst];
    uint16_t n_out[kRssWorkers];
    rte_mbuf* drained[kMaxBurst];
    uint64_t per_target[kRssWorkers] = {};
    bool bad = false;
    uint32_t pos = 0;

    const uint64_t t0 = rte_rdtsc();
    for (auto _ : state) {
        rte_mbuf** pkts = f.ring.data() + pos;
        // engine/runtime.hpp, worker_main, the soft_rss branch.
        uint16_t nl = 0;
        for (unsigned j = 0; j < kRssWorkers; ++j) n_out[j] = 0;
        for (uint16_t i = 0; i < burst; ++i) {
            const uint16_t t = rss.target(pkts[i]);
            if (t == kRssSelf)
                local[nl++] = pkts[i];
            else
                out[t][n_out[t]++] = pkts[i];
        }
        for (unsigned j = 0; j < kRssWorkers; ++j) {
            if (!n_out[j]) continue;
            const unsigned q = rte_ring_sp_enqueue_burst(
                steer[j].r, reinterpret_cast<void**>(out[j]), n_out[j], nullptr);
            bad |= q != n_out[j];
        }
        benchmark::DoNotOptimize(local);  // would go to stack.input
        per_target[kRssSelf] += nl;
        // The receiving workers' side: each drains its ring (here, in the timed loop).
        for (unsigned j = 0; j < kRssWorkers; ++j) {
            if (!steer[j].r) continue;
            const unsigned d = rte_ring_sc_dequeue_burst(
                steer[j].r, reinterpret_cast<void**>(drained), kMaxBurst, nullptr);
            bad |= d != n_out[j] || (d && drained[0] != out[j][0]);
            per_target[j] += d;
        }
        if (unlikely(bad)) {
            fail(state, "a steering ring lost or reordered a packet");
            break;
        }
        pos = next_pos(pos, burst);
    }
    const uint64_t t1 = rte_rdtsc();

    if (state.error_occurred()) return;
    if (!check_rss_split(state, per_target)) return;
    report(state, t1 - t0, burst);
    const uint64_t pkts = uint64_t(state.iterations()) * burst;
    state.counters["ringed"] =
        benchmark::Counter(pkts ? double(pkts - per_target[kRssSelf]) / double(pkts) : 0.0);
}

// ---------------------------------------------------------------------------------------------
// ARP cache.

constexpr unsigned kArpEntries = 64;

rte_be32_t arp_ip(unsigned k, bool present) {
    return rte_cpu_to_be_32(RTE_IPV4(10, 0, present ? 0 : 1, 10 + k));
}

rte_ether_addr arp_mac(unsigned k) {
    return rte_ether_addr{{0x02, 0x00, 0x00, 0x00, uint8_t(k >> 8), uint8_t(k)}};
}

template <bool kHit>
void BM_ArpLookup(benchmark::State& state) {
    const auto burst = uint16_t(state.range(0));
    constexpr uint64_t kNow = 1;  // entries never expire
    auto cache = std::make_unique<ArpCache>();
    for (unsigned k = 0; k < kArpEntries; ++k)
        cache->update(arp_ip(k, true), arp_mac(k), UINT64_MAX, true);
    if (cache->size(kNow) != kArpEntries) return fail(state, "ARP cache lost an entry");
    std::vector<rte_be32_t> addrs(kRingFrames);
    std::vector<unsigned> entry(kRingFrames);
    for (uint32_t i = 0; i < kRingFrames; ++i) {
        entry[i] = (i * 37) % kArpEntries;  // 37 is prime to 64: every entry, scrambled
        addrs[i] = arp_ip(entry[i], kHit);
    }
    std::vector<rte_ether_addr> macs(kMaxBurst);
    rte_ether_addr* out = macs.data();
    benchmark::DoNotOptimize(out);
    uint64_t found = 0;
    uint32_t pos = 0;

    const uint64_t t0 = rte_rdtsc();
    for (auto _ : state) {
        const rte_be32_t* a = addrs.data() + pos;
        for (uint16_t i = 0; i < burst; ++i) {
            if (const rte_ether_addr* mac = cache->lookup(a[i], kNow)) {
                out[i] = *mac;  // as send_ipv4 writes it into the Ethernet header
                ++found;
            }
        }
        benchmark::ClobberMemory();  // the MACs are stored
        pos = next_pos(pos, burst);
    }
    const uint64_t t1 = rte_rdtsc();

    const uint64_t pkts = uint64_t(state.iterations()) * burst;
    if (found != (kHit ? pkts : 0)) return fail(state, "ARP lookups found the wrong number");
    for (uint32_t i = 0; i < kRingFrames; ++i) {
        const rte_ether_addr* mac = cache->lookup(addrs[i], kNow);
        const rte_ether_addr want = arp_mac(entry[i]);
        if (kHit ? (mac == nullptr || !rte_is_same_ether_addr(mac, &want)) : mac != nullptr)
            return fail(state, "ARP lookup returned the wrong entry");
    }
    report(state, t1 - t0, burst);
}

// ---------------------------------------------------------------------------------------------
// Reassembly of 3-fragment datagrams (rte_ip_frag, through Stack::input).

constexpr unsigned kFrags = 3;
constexpr uint16_t kFragIdBase = 0x1000;

// The fragment frames of `datagrams` UDP datagrams, prebuilt: frame i is fragment i % 3 of
// datagram i / 3. Each fragment carries `frag` bytes of IP payload (a multiple of 8).
struct FragTemplates {
    uint16_t frame_len = 0;  // of every fragment, no FCS
    uint32_t stride = 0;
    unsigned frames = 0;
    std::vector<uint8_t> data;

    const uint8_t* frame(unsigned i) const { return data.data() + size_t(i) * stride; }

    void build(uint16_t frag, bool udp_cksum, unsigned datagrams) {
        frame_len = uint16_t(kEthHdrLen + kIpv4HdrLen + frag);
        stride = RTE_ALIGN_CEIL(uint32_t(frame_len), 64u);
        frames = datagrams * kFrags;
        data.assign(size_t(frames) * stride, 0);
        const uint16_t ip_total = uint16_t(kIpv4HdrLen + kFrags * frag);
        std::vector<uint8_t> whole(ip_total);  // the unfragmented IPv4 datagram
        for (unsigned d = 0; d < datagrams; ++d) {
            auto* ip = reinterpret_cast<rte_ipv4_hdr*>(whole.data());
            ip->version_ihl = RTE_IPV4_VHL_DEF;
            ip->type_of_service = 0;
            ip->total_length = rte_cpu_to_be_16(ip_total);
            ip->packet_id = rte_cpu_to_be_16(uint16_t(kFragIdBase + d));
            ip->fragment_offset = 0;
            ip->time_to_live = kTtl;
            ip->next_proto_id = IPPROTO_UDP;
            ip->hdr_checksum = 0;
            ip->src_addr = kPeerIp;
            ip->dst_addr = kStackIp;
            auto* udp = reinterpret_cast<rte_udp_hdr*>(ip + 1);
            udp->src_port = RTE_BE16(kPeerPort);
            udp->dst_port = RTE_BE16(kServedPort);
            udp->dgram_len = rte_cpu_to_be_16(uint16_t(ip_total - kIpv4HdrLen));
            udp->dgram_cksum = 0;
            auto* payload = reinterpret_cast<uint8_t*>(udp + 1);
            for (uint32_t i = 0; i < uint32_t(ip_total - kIpv4HdrLen - kUdpHdrLen); ++i)
                payload[i] = uint8_t(i * 7 + 1 + d);
            if (udp_cksum) udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);
            for (unsigned k = 0; k < kFrags; ++k) {
                uint8_t* p = data.data() + size_t(d * kFrags + k) * stride;
                write_eth(reinterpret_cast<rte_ether_hdr*>(p));
                auto* fip = reinterpret_cast<rte_ipv4_hdr*>(p + kEthHdrLen);
                *fip = *ip;
                fip->total_length = rte_cpu_to_be_16(uint16_t(kIpv4HdrLen + frag));
                fip->fragment_offset =
                    rte_cpu_to_be_16(uint16_t((k * frag / RTE_IPV4_HDR_OFFSET_UNITS) |
                                              (k + 1 < kFrags ? RTE_IPV4_HDR_MF_FLAG : 0)));
                fip->hdr_checksum = 0;
                fip->hdr_checksum = rte_ipv4_cksum(fip);
                memcpy(fip + 1, whole.data() + kIpv4HdrLen + k * frag, frag);
            }
        }
    }
};

// What the port would deliver: `n` fresh mbufs holding the first n template frames.
inline bool rx_copy(rte_mbuf** pkts, const FragTemplates& t, unsigned n) {
    if (unlikely(rte_pktmbuf_alloc_bulk(g_pool, pkts, n) != 0)) return false;
    for (unsigned i = 0; i < n; ++i) {
        rte_mbuf* m = pkts[i];
        memcpy(rte_pktmbuf_mtod(m, void*), t.frame(i), t.frame_len);
        m->data_len = t.frame_len;
        m->pkt_len = t.frame_len;
        m->ol_flags = kRxGood;
        m->packet_type = RTE_PTYPE_L2_ETHER | RTE_PTYPE_L3_IPV4 | RTE_PTYPE_L4_FRAG;
    }
    return true;
}

// The baseline's free: one mbuf at a time, as the app's free of a 3-segment chain does.
inline void free_each(rte_mbuf** pkts, unsigned n) {
    for (unsigned i = 0; i < n; ++i) rte_pktmbuf_free(pkts[i]);
}

// Checks each reassembled datagram and frees it.
struct ReasmApp {
    uint32_t payload_len;
    uint32_t delivered = 0;
    uint64_t bad = 0;
    bool udp_port_open(uint16_t) const { return true; }
    void on_udp(Stack&, UdpDatagram& d) {
        ++delivered;
        bad += !d.reassembled || d.payload_len != payload_len || d.m->nb_segs != kFrags;
        rte_pktmbuf_free(d.m);
    }
};

void BM_Reassembly3Frag(benchmark::State& state) {
    const auto burst = uint16_t(state.range(0));
    const auto frag = uint16_t(state.range(1));
    const bool cksum = state.range(2) != 0;
    std::unique_ptr<Stack> stack = make_stack(state);
    if (!stack) return;
    FragTemplates t;
    t.build(frag, cksum, burst);
    const unsigned n = t.frames;
    rte_mbuf* pkts[kFrags * kMaxBurst];
    ReasmApp app{uint32_t(kFrags * frag - kUdpHdrLen)};
    uint64_t raw = 0, base = 0;

    // Each iteration: the measured step, then the baseline step (same templates, same mbufs
    // from the pool cache), each between two TSC reads, so that both see the same machine
    // state and drift; the difference is the stack's cost.
    for (auto _ : state) {
        const uint64_t a = rte_rdtsc();
        if (unlikely(!rx_copy(pkts, t, n))) {
            fail(state, "mbuf pool exhausted");
            break;
        }
        stack->input(pkts, uint16_t(n), a, app);
        const uint64_t b = rte_rdtsc();
        if (unlikely(app.delivered != burst)) {
            fail(state, "a datagram was not reassembled and delivered");
            break;
        }
        app.delivered = 0;
        if (unlikely(!rx_copy(pkts, t, n))) {
            fail(state, "mbuf pool exhausted");
            break;
        }
        benchmark::ClobberMemory();  // the copies happen
        free_each(pkts, n);
        const uint64_t c = rte_rdtsc();
        raw += b - a;
        base += c - b;
    }
    if (state.error_occurred()) return;

    const auto& c = stack->counters();
    const uint64_t dgrams = uint64_t(state.iterations()) * burst;
    if (app.bad != 0) return fail(state, "a delivered datagram was not the whole one");
    if (c.rx_packets != kFrags * dgrams || c.ipv4_frags_in != kFrags * dgrams ||
        c.ipv4_reassembled != dgrams || c.udp_delivered != dgrams || c.total_drops() != 0)
        return fail(state, "stack dropped a fragment or did not reassemble a datagram");
    if (c.sw_rx_cksum != (cksum ? dgrams : 0))
        return fail(state, "software UDP checksum count differs from the variant's");

    // Not report(): Google Benchmark's own time covers the baseline steps too.
    const double frags = double(kFrags * dgrams);
    state.counters["cycles/pkt"] = benchmark::Counter(double(raw) / frags);  // per fragment
    state.counters["cycles/dgram"] = benchmark::Counter(double(raw) / double(dgrams));
    state.counters["base_cycles/pkt"] = benchmark::Counter(double(base) / frags);
    state.counters["net_cycles/pkt"] = benchmark::Counter((double(raw) - double(base)) / frags);
    state.counters["net_cycles/dgram"] =
        benchmark::Counter((double(raw) - double(base)) / double(dgrams));
    state.counters["items_per_second"] =
        benchmark::Counter(raw ? frags * double(rte_get_tsc_hz()) / double(raw) : 0.0);
}

void BM_AllocCopy(benchmark::State& state) {
    const auto burst = uint16_t(state.range(0));
    FragTemplates t;
    t.build(uint16_t(state.range(1)), true, burst);
    const unsigned n = t.frames;
    rte_mbuf* pkts[kFrags * kMaxBurst];
    const uint16_t want_cksum =
        reinterpret_cast<const rte_ipv4_hdr*>(t.frame(n - 1) + kEthHdrLen)->hdr_checksum;

    const uint64_t t0 = rte_rdtsc();
    for (auto _ : state) {
        if (unlikely(!rx_copy(pkts, t, n))) {
            fail(state, "mbuf pool exhausted");
            break;
        }
        benchmark::ClobberMemory();  // the copies happen
        free_each(pkts, n);
    }
    const uint64_t t1 = rte_rdtsc();
    if (state.error_occurred()) return;

    // The copy is what the templates hold.
    if (!rx_copy(pkts, t, n)) return fail(state, "mbuf pool exhausted");
    const bool ok = rte_pktmbuf_mtod_offset(pkts[n - 1], rte_ipv4_hdr*, kEthHdrLen)->hdr_checksum ==
                        want_cksum &&
                    pkts[n - 1]->pkt_len == t.frame_len;
    free_each(pkts, n);
    if (!ok) return fail(state, "the copied frame differs from its template");
    report(state, t1 - t0, n);
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

constexpr int64_t kBursts[] = {1, 8, 32, 64};

void burst_args(benchmark::internal::Benchmark* b) {
    with_min(b)->ArgName("burst");
    for (int64_t burst : kBursts) b->Arg(burst);
}

// Every value of `second` (named name2), each with every burst size.
void burst_x_args(benchmark::internal::Benchmark* b, const char* name2,
                  std::initializer_list<int64_t> second) {
    with_min(b)->ArgNames({"burst", name2});
    for (int64_t v : second)
        for (int64_t burst : kBursts) b->Args({burst, v});
}

void burst_frame_args(benchmark::internal::Benchmark* b) {
    burst_x_args(b, "frame", {64, 1518});
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
    burst_args(RegisterBenchmark("BM_Ipv4HeaderChecksum<Rte>", BM_Ipv4HeaderChecksum<Impl::Rte>));
    burst_args(
        RegisterBenchmark("BM_Ipv4HeaderChecksum<Sluice>", BM_Ipv4HeaderChecksum<Impl::Sluice>));
    burst_x_args(RegisterBenchmark("BM_UdpChecksumSw<Rte>", BM_UdpChecksumSw<Impl::Rte>), "len",
                 {64, 1500});
    burst_x_args(RegisterBenchmark("BM_UdpChecksumSw<Sluice>", BM_UdpChecksumSw<Impl::Sluice>),
                 "len", {64, 1500});
    for (auto* b : {RegisterBenchmark("BM_RawSum<Rte>", BM_RawSum<Impl::Rte>),
                    RegisterBenchmark("BM_RawSum<Sluice>", BM_RawSum<Impl::Sluice>)})
        with_min(b)->ArgName("len")->Arg(20)->Arg(64)->Arg(1472);
    burst_args(RegisterBenchmark("BM_RingHop", BM_RingHop));
    burst_args(RegisterBenchmark("BM_HeaderTouch", BM_HeaderTouch));
    burst_args(RegisterBenchmark("BM_SoftRssHash", BM_SoftRssHash<SoftRss>));
    burst_args(RegisterBenchmark("BM_SoftRssHash<rte_softrss_be>", BM_SoftRssHash<RteSoftRss>));
    burst_args(RegisterBenchmark("BM_SoftRssHashEnqueue", BM_SoftRssHashEnqueue));
    burst_args(RegisterBenchmark("BM_ArpLookup<Hit>", BM_ArpLookup<true>));
    burst_args(RegisterBenchmark("BM_ArpLookup<Miss>", BM_ArpLookup<false>));
    auto* reasm = with_min(RegisterBenchmark("BM_Reassembly3Frag", BM_Reassembly3Frag));
    reasm->ArgNames({"burst", "frag", "cksum"});
    for (auto [frag, cksum] : {std::pair<int64_t, int64_t>{32, 1}, {1480, 1}, {1480, 0}})
        for (int64_t burst : kBursts) reasm->Args({burst, frag, cksum});
    burst_x_args(RegisterBenchmark("BM_AllocCopy", BM_AllocCopy), "frag", {32, 1480});
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
