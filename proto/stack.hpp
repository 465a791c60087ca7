// The per-core protocol stack: Ethernet, ARP, IPv4 (with reassembly and fragmentation), ICMP
// and UDP. One instance per worker core; nothing in it is shared, so nothing is locked.
//
// The fast path (input of a burst, UDP delivery, in-place replies) is a template on the app so
// that the app's handler is a direct, inlinable call: no virtual or indirect call per packet.
// Cold paths (ARP, ICMP, reassembly, fragmentation, ICMP errors) live in stack.cpp.
//
// Zero copy: a packet is processed in the mbuf it arrived in; replies reuse that mbuf.
#pragma once

#include <concepts>
#include <cstdint>

#include <rte_arp.h>
#include <rte_ether.h>
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_ip_frag.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>
#include <rte_udp.h>

#include "proto/arp_cache.hpp"
#include "proto/checksum.hpp"
#include "proto/config.hpp"
#include "proto/counters.hpp"
#include "proto/tx_batch.hpp"

namespace sluice::proto {

inline constexpr uint16_t kEthHdrLen = sizeof(rte_ether_hdr);
inline constexpr uint16_t kIpv4HdrLen = sizeof(rte_ipv4_hdr);
inline constexpr uint16_t kUdpHdrLen = sizeof(rte_udp_hdr);
inline constexpr uint16_t kIcmpHdrLen = sizeof(rte_icmp_hdr);

// A UDP datagram delivered to an app. The app owns `m` from then on: it must pass it back to
// the stack (reflect_udp, send) or free it.
struct UdpDatagram {
    rte_mbuf* m;         // may be a chain when the datagram was reassembled
    rte_ether_hdr* eth;  // headers are contiguous in the first segment
    rte_ipv4_hdr* ip;
    rte_udp_hdr* udp;
    uint32_t payload_off;  // from the start of the frame
    uint32_t payload_len;
    bool reassembled;
    // The port verified the datagram but its checksum field holds only the pseudo-header sum
    // (RTE_MBUF_F_RX_L4_CKSUM_NONE, e.g. virtio): a reply must have its checksum completed.
    bool cksum_partial;
};

class Stack;
class Tcp;
// Tcp::input, for the stack's IPv4 demultiplexer (proto/tcp.cpp).
void tcp_deliver(Tcp* tcp, rte_mbuf* m, rte_ipv4_hdr* ip, uint64_t now);

// What the stack needs from an app: which UDP ports it serves, and a handler.
template <class A>
concept UdpApp = requires(A a, Stack& s, UdpDatagram& d, uint16_t port) {
    { a.udp_port_open(port) } -> std::convertible_to<bool>;
    a.on_udp(s, d);
};

class Stack {
  public:
    Stack() = default;
    ~Stack();
    Stack(const Stack&) = delete;
    Stack& operator=(const Stack&) = delete;

    // `pool` supplies the mbufs the stack builds (ARP, ICMP errors, fragments).
    // Returns false (and logs) when the reassembly table cannot be created.
    bool init(const StackConfig& cfg, rte_mempool* pool, int socket_id);

    // Processes one received burst. Every mbuf is consumed: delivered, answered (queued on
    // tx()), held for reassembly or ARP, or freed and counted by reason.
    template <UdpApp App>
    void input(rte_mbuf** pkts, uint16_t n, uint64_t now, App& app);

    // Periodic work: ARP retries and expiry, reassembly timeouts. Call every few ms.
    void poll_timers(uint64_t now);

    // Gratuitous ARP announcing our address (RFC 5227 2.3), sent at start.
    void announce();

    // Replies to `d` in place: swaps addresses and ports and queues the mbuf for TX; the
    // payload is untouched (and the UDP checksum stays valid: the one's-complement sum is
    // independent of the order of the swapped words).
    void reflect_udp(UdpDatagram& d);

    // Sends an IPv4 packet we originate: `m` holds room for the Ethernet header followed by a
    // complete IPv4 header (checksum requested via ol_flags). Resolves the next hop (on-link
    // or the gateway) through ARP, queueing while unresolved.
    void send_ipv4(rte_mbuf* m, uint64_t now);

    // Sends `m` (holding only the payload) as a UDP datagram from our address: Ethernet, IPv4
    // and UDP headers are prepended in its headroom, the UDP checksum is requested from the
    // port (the pseudo-header sum in the field, per DPDK's TX offload contract; pmd/ finishes
    // it in software where the port cannot) and the next hop is resolved by send_ipv4.
    // Returns false (m freed, counted) when the headroom is too small.
    bool send_udp(rte_mbuf* m, rte_be32_t dst, uint16_t src_port, uint16_t dst_port, uint64_t now);

    TxBatch& tx() { return tx_; }
    Counters& counters() { return counters_; }
    const Counters& counters() const { return counters_; }
    const StackConfig& config() const { return cfg_; }
    ArpCache& arp_cache() { return arp_; }

    // ARP reaches one core (queue 0, or worker 0 of the software-RSS stage), but every core
    // resolves next hops of its own. What this core learned from ARP since the last call is
    // handed out here, for the engine to pass to the others (arp_learned). Bounded: when more
    // is learned in one burst, the rest is re-learned from the next ARP exchange.
    struct ArpFact {
        rte_be32_t ip;
        rte_ether_addr mac;
    };
    static constexpr unsigned kLearnedMax = 16;
    unsigned take_learned(ArpFact* out) {
        const unsigned n = learned_n_;
        for (unsigned i = 0; i < n; ++i) out[i] = learned_[i];
        learned_n_ = 0;
        return n;
    }
    // A fact another core learned: enter it and send what waited for it.
    void arp_learned(const ArpFact& f, uint64_t now) {
        if (arp_.update(f.ip, f.mac, now + arp_lifetime_, true)) flush_pending(f.ip, f.mac);
    }
    rte_mempool* pool() const { return pool_; }
    // The core's TCP (proto/tcp.hpp) registers here; without one, TCP is an unknown protocol.
    void attach_tcp(Tcp* t) { tcp_ = t; }

    // Queues a finished frame for TX, fragmenting IPv4 larger than the MTU.
    void emit(rte_mbuf* m);

  private:
    template <UdpApp App>
    void ipv4_input(rte_mbuf* m, uint64_t now, App& app);
    template <UdpApp App>
    void udp_input(rte_mbuf* m, rte_ipv4_hdr* ip, bool reassembled, App& app);

    void drop(rte_mbuf* m, Drop why) {
        counters_.drop(why);
        rte_pktmbuf_free(m);
    }
    bool verify_ipv4_checksum(rte_mbuf* m, const rte_ipv4_hdr* ip, uint16_t ihl);
    rte_mbuf* reassemble(rte_mbuf* m, rte_ipv4_hdr* ip, uint64_t now);
    void arp_input(rte_mbuf* m, uint64_t now);
    void icmp_input(rte_mbuf* m, rte_ipv4_hdr* ip, bool reassembled);
    void icmp_port_unreachable(rte_mbuf* m, uint64_t now);
    bool icmp_error_allowed(uint64_t now);
    void send_arp_request(rte_be32_t target);
    void flush_pending(rte_be32_t ip, const rte_ether_addr& mac);
    void fragment_and_emit(rte_mbuf* m);
    void expire_fragments(uint64_t now);
    bool fragment_seen(const rte_ipv4_hdr* ip, uint16_t ihl, uint64_t now);
    void forget_fragments(const rte_mbuf* whole);
    void push_tx(rte_mbuf* m);
    static void prepare_ipv4_tx(rte_mbuf* m, rte_ipv4_hdr* ip);
    void reply_ipv4_checksum(rte_mbuf* m, rte_ipv4_hdr* ip, bool reassembled);

    StackConfig cfg_{};
    rte_mempool* pool_ = nullptr;
    Tcp* tcp_ = nullptr;
    TxBatch tx_;
    Counters counters_;
    ArpCache arp_;
    ArpPending pending_;
    rte_ip_frag_tbl* frag_tbl_ = nullptr;
    rte_ip_frag_death_row death_row_{};
    uint64_t arp_lifetime_ = 0;
    uint64_t arp_retry_ = 0;
    // ICMP error token bucket, in units of 1/tsc_hz tokens.
    uint64_t icmp_tokens_ = 0;
    uint64_t icmp_last_ = 0;
    uint64_t now_ = 0;
    // Where a received frame's first byte usually is, from the mbuf's start (sizeof(rte_mbuf) +
    // private area + headroom), learned from each burst's first packet; 0 before the first.
    uint32_t rx_data_hint_ = 0;
    static constexpr uint32_t kRxDataHintMax = 4096;  // a power of two; beyond: wrapped, harmless
    uint16_t ip_id_ = 1;
    ArpFact learned_[kLearnedMax];
    unsigned learned_n_ = 0;
    rte_be32_t bcast_ = 0;  // cfg_.subnet_broadcast(), computed once
    struct FragSeen {
        rte_be32_t src, dst;
        uint64_t expires;
        rte_be16_t id;
        uint16_t off, len;
        uint8_t proto;
    };
    static constexpr unsigned kFragSeen = 4096;  // power of two
    FragSeen* frag_seen_ = nullptr;              // kFragSeen entries, rte_zmalloc'd in init
    uint64_t frag_timeout_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Fast path.

template <UdpApp App>
void Stack::input(rte_mbuf** pkts, uint16_t n, uint64_t now, App& app) {
    now_ = now;
    counters_.rx_packets += n;  // per burst; bytes still need each packet
    constexpr uint16_t kPrefetchAhead = 3;
    // The first packets' mbuf and headers are fetched at once, in parallel: the header lines
    // at the offset where the last packets' data began, rather than after buf_addr and
    // data_off have been read (one cache miss after another, each a transfer from the core
    // that wrote the packet). A wrong guess costs a useless prefetch; mtod below is exact.
    if (const uint32_t hint = rx_data_hint_) {
        for (uint16_t i = 0; i < n && i < kPrefetchAhead; ++i) {
            char* base = reinterpret_cast<char*>(pkts[i]);
            rte_prefetch0(base);
            rte_prefetch0(base + hint);
            rte_prefetch0(base + hint + RTE_CACHE_LINE_SIZE);
            rte_prefetch0(base + hint + 2 * RTE_CACHE_LINE_SIZE);
        }
    }
    for (uint16_t i = 0; i < n && i < kPrefetchAhead; ++i)
        rte_prefetch0(rte_pktmbuf_mtod(pkts[i], void*));
    if (n)  // once per burst, from its first packet (read just above)
        rx_data_hint_ =
            uint32_t(rte_pktmbuf_mtod(pkts[0], char*) - reinterpret_cast<char*>(pkts[0])) &
            (kRxDataHintMax - 1);
    for (uint16_t i = 0; i < n; ++i) {
        if (i + kPrefetchAhead < n)
            rte_prefetch0(rte_pktmbuf_mtod(pkts[i + kPrefetchAhead], void*));
        rte_mbuf* m = pkts[i];
        counters_.rx_bytes += m->pkt_len;
        if (unlikely(m->data_len < kEthHdrLen)) {
            drop(m, Drop::eth_runt);
            continue;
        }
        auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
        if (unlikely(!rte_is_same_ether_addr(&eth->dst_addr, &cfg_.mac))) {
            if (!rte_is_broadcast_ether_addr(&eth->dst_addr)) {
                drop(m, Drop::eth_not_for_us);
                continue;
            }
            // Our own broadcasts seen again (a port that also captures what it sends, such
            // as af_packet): never answer or learn from ourselves.
            if (rte_is_same_ether_addr(&eth->src_addr, &cfg_.mac)) {
                drop(m, Drop::eth_looped);
                continue;
            }
        }
        m->l2_len = kEthHdrLen;
        if (likely(eth->ether_type == RTE_BE16(RTE_ETHER_TYPE_IPV4))) {
            ipv4_input(m, now, app);
        } else if (eth->ether_type == RTE_BE16(RTE_ETHER_TYPE_ARP)) {
            arp_input(m, now);
        } else {
            drop(m, Drop::eth_unknown_type);
        }
    }
    if (death_row_.cnt) rte_ip_frag_free_death_row(&death_row_, 0);
}

// RFC 791 3.1 and RFC 1122 3.2.1: validate before anything else reads the header.
template <UdpApp App>
void Stack::ipv4_input(rte_mbuf* m, uint64_t now, App& app) {
    const uint32_t l3_seg = m->data_len - kEthHdrLen;
    const uint32_t l3_pkt = m->pkt_len - kEthHdrLen;
    if (unlikely(l3_seg < kIpv4HdrLen)) return drop(m, Drop::ipv4_truncated);
    auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, kEthHdrLen);
    const uint8_t vihl = ip->version_ihl;
    if (unlikely((vihl >> 4) != 4)) return drop(m, Drop::ipv4_bad_version);
    const uint16_t ihl = uint16_t((vihl & 0x0f) * 4);
    if (unlikely(ihl < kIpv4HdrLen)) return drop(m, Drop::ipv4_bad_ihl);
    if (unlikely(ihl > l3_seg)) return drop(m, Drop::ipv4_truncated);
    const uint16_t total = rte_be_to_cpu_16(ip->total_length);
    if (unlikely(total < ihl || total > l3_pkt)) return drop(m, Drop::ipv4_bad_total_length);
    if (unlikely(!verify_ipv4_checksum(m, ip, ihl))) return drop(m, Drop::ipv4_bad_checksum);
    if (unlikely(total < l3_pkt)) {
        // Link-layer padding (RFC 894: frames are padded to 60 bytes) is not part of the
        // datagram.
        if (rte_pktmbuf_trim(m, uint16_t(l3_pkt - total)) != 0)
            return drop(m, Drop::ipv4_bad_total_length);
    }
    // RFC 1122 3.2.1.7: a host MUST NOT discard a datagram just because its TTL is below 2;
    // 0 can only mean a router that failed to discard it.
    if (unlikely(ip->time_to_live == 0)) return drop(m, Drop::ipv4_ttl_zero);
    // RFC 1122 3.2.1.3: silently discard a datagram whose source is not a unicast address of
    // another host: broadcast, multicast, {0, *} ("this network") and {127, *} (loopback).
    const rte_be32_t src = ip->src_addr;
    const uint8_t src_net = uint8_t(rte_be_to_cpu_32(src) >> 24);
    if (unlikely(src_net == 0 || src_net == 127 || src_net >= 224 || src == bcast_))
        return drop(m, Drop::ipv4_bad_src);
    if (unlikely(ip->dst_addr != cfg_.ip)) {
        const rte_be32_t dst = ip->dst_addr;
        if (dst == RTE_BE32(0xffffffff) || dst == bcast_ ||
            RTE_IS_IPV4_MCAST(rte_be_to_cpu_32(dst)))
            return drop(m, Drop::ipv4_broadcast);
        return drop(m, Drop::ipv4_not_for_us);
    }
    m->l3_len = ihl;
    bool reassembled = false;
    if (unlikely(rte_ipv4_frag_pkt_is_fragmented(ip))) {
        m = reassemble(m, ip, now);
        if (m == nullptr) return;  // held for reassembly, or dropped and counted
        ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, kEthHdrLen);
        reassembled = true;
    }
    counters_.ipv4_in++;
    if (likely(ip->next_proto_id == IPPROTO_UDP)) return udp_input(m, ip, reassembled, app);
    if (ip->next_proto_id == IPPROTO_TCP && tcp_) {
        counters_.tcp_in++;
        return tcp_deliver(tcp_, m, ip, now);
    }
    if (ip->next_proto_id == IPPROTO_ICMP) return icmp_input(m, ip, reassembled);
    drop(m, Drop::ipv4_unknown_proto);
}

// RFC 768.
template <UdpApp App>
void Stack::udp_input(rte_mbuf* m, rte_ipv4_hdr* ip, bool reassembled, App& app) {
    const uint32_t l4_off = kEthHdrLen + m->l3_len;
    const uint32_t l4_len = m->pkt_len - l4_off;
    if (unlikely(l4_len < kUdpHdrLen || m->data_len < l4_off + kUdpHdrLen))
        return drop(m, Drop::udp_truncated);
    auto* udp = rte_pktmbuf_mtod_offset(m, rte_udp_hdr*, l4_off);
    const uint16_t ulen = rte_be_to_cpu_16(udp->dgram_len);
    if (unlikely(ulen < kUdpHdrLen || ulen > l4_len)) return drop(m, Drop::udp_bad_length);
    if (unlikely(ulen < l4_len)) {
        // Bytes past the UDP length are not part of the datagram: trim them and make the IP
        // header agree, so that a reply built in place is consistent.
        if (rte_pktmbuf_trim(m, uint16_t(l4_len - ulen)) != 0) return drop(m, Drop::udp_bad_length);
        const uint16_t old_len = ip->total_length;
        ip->total_length = rte_cpu_to_be_16(uint16_t(m->l3_len + ulen));
        ip->hdr_checksum = checksum_replace16(ip->hdr_checksum, old_len, ip->total_length);
    }
    // RFC 768: a zero checksum means the sender computed none. Otherwise trust the port's
    // verdict when it has one, and verify in software when it says UNKNOWN (or when the
    // datagram was reassembled: the flags of its first fragment say nothing of the whole).
    uint64_t l4f = RTE_MBUF_F_RX_L4_CKSUM_GOOD;
    if (udp->dgram_cksum != 0) {
        l4f = reassembled ? RTE_MBUF_F_RX_L4_CKSUM_UNKNOWN
                          : (m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK);
        if (unlikely(l4f == RTE_MBUF_F_RX_L4_CKSUM_BAD)) return drop(m, Drop::udp_bad_checksum);
        if (l4f == RTE_MBUF_F_RX_L4_CKSUM_UNKNOWN) {  // GOOD and NONE: verified by the port
            counters_.sw_rx_cksum++;
            const bool ok = likely(m->nb_segs == 1) ? l4_checksum_ok(ip, udp, ulen)
                                                    : l4_checksum_mbuf_ok(m, ip, l4_off, ulen);
            if (!ok) return drop(m, Drop::udp_bad_checksum);
        }
    }
    counters_.udp_in++;
    if (unlikely(!app.udp_port_open(rte_be_to_cpu_16(udp->dst_port))))
        return icmp_port_unreachable(m, now_);
    counters_.udp_delivered++;
    UdpDatagram d{m,
                  rte_pktmbuf_mtod(m, rte_ether_hdr*),
                  ip,
                  udp,
                  l4_off + kUdpHdrLen,
                  uint32_t(ulen - kUdpHdrLen),
                  reassembled,
                  l4f == RTE_MBUF_F_RX_L4_CKSUM_NONE};
    app.on_udp(*this, d);
}

inline bool Stack::verify_ipv4_checksum(rte_mbuf* m, const rte_ipv4_hdr* ip, uint16_t ihl) {
    const uint64_t f = m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK;
    // GOOD, and NONE ("the checksum in the data is wrong but the header's integrity was
    // verified", rte_mbuf_core.h, e.g. virtio): trusted. BAD: dropped.
    if (likely(f == RTE_MBUF_F_RX_IP_CKSUM_GOOD || f == RTE_MBUF_F_RX_IP_CKSUM_NONE)) return true;
    if (f == RTE_MBUF_F_RX_IP_CKSUM_BAD) return false;
    // UNKNOWN: verify in software. The sum over a correct header, checksum included, is
    // 0xffff (RFC 791 3.1, RFC 1071).
    counters_.sw_rx_cksum++;
    return ipv4_header_ok(ip, ihl);
}

inline void Stack::prepare_ipv4_tx(rte_mbuf* m, rte_ipv4_hdr* ip) {
    // DPDK TX offload contract: IP checksum field zeroed, flags and lengths set. pmd/ computes
    // it in software when the port cannot.
    ip->hdr_checksum = 0;
    m->ol_flags = RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM;
    m->l2_len = kEthHdrLen;
}

inline void Stack::push_tx(rte_mbuf* m) {
    if (unlikely(!tx_.push(m))) return drop(m, Drop::tx_full);
    counters_.tx_packets++;
    counters_.tx_bytes += m->pkt_len;
}

inline void Stack::emit(rte_mbuf* m) {
    if (unlikely(m->pkt_len - kEthHdrLen > cfg_.mtu)) return fragment_and_emit(m);
    push_tx(m);
}

// A reply built in place from a datagram whose header checksum was verified: swapping the
// addresses leaves the one's-complement sum unchanged, so only the TTL's word needs an
// incremental update (RFC 1624 eqn. 3; an IPv4 header's sum is never -0, so eqn. 3's
// ambiguity cannot arise) and the port has no checksum to compute. A header whose field is
// not known good (reassembled: rte_ip_frag rewrote it; or the port said NONE) gets the full
// TX checksum request instead.
inline void Stack::reply_ipv4_checksum(rte_mbuf* m, rte_ipv4_hdr* ip, bool reassembled) {
    m->l2_len = kEthHdrLen;
    if (unlikely(reassembled ||
                 (m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK) == RTE_MBUF_F_RX_IP_CKSUM_NONE)) {
        // A datagram that arrived in fragments may leave in fragments: the sender allowed it.
        if (reassembled) ip->fragment_offset = 0;
        ip->time_to_live = cfg_.ttl;
        return prepare_ipv4_tx(m, ip);
    }
    m->ol_flags = 0;
    if (ip->time_to_live == cfg_.ttl) return;
    // The 16-bit word holding TTL and protocol (RFC 791 3.1), as stored.
    const uint16_t old_word = rte_cpu_to_be_16(uint16_t(ip->time_to_live << 8 | ip->next_proto_id));
    ip->time_to_live = cfg_.ttl;
    const uint16_t new_word = rte_cpu_to_be_16(uint16_t(cfg_.ttl << 8 | ip->next_proto_id));
    ip->hdr_checksum = checksum_replace16(ip->hdr_checksum, old_word, new_word);
}

inline void Stack::reflect_udp(UdpDatagram& d) {
    rte_ether_hdr* eth = d.eth;
    rte_ether_addr_copy(&eth->src_addr, &eth->dst_addr);
    rte_ether_addr_copy(&cfg_.mac, &eth->src_addr);
    rte_ipv4_hdr* ip = d.ip;
    ip->dst_addr = ip->src_addr;
    ip->src_addr = cfg_.ip;
    const rte_be16_t sp = d.udp->src_port;
    d.udp->src_port = d.udp->dst_port;
    d.udp->dst_port = sp;
    reply_ipv4_checksum(d.m, ip, d.reassembled);
    // The field already holds the pseudo-header sum, which the swap leaves unchanged: let
    // the port (or pmd/'s software fallback) complete it.
    if (unlikely(d.cksum_partial)) d.m->ol_flags |= RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_UDP_CKSUM;
    emit(d.m);
}

}  // namespace sluice::proto
