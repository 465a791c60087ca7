// Cold paths of the per-core stack: ARP, ICMP, reassembly, fragmentation, ICMP errors.
#include "proto/stack.hpp"

#include <cstring>

#include <rte_cycles.h>
#include <rte_log.h>
#include <rte_malloc.h>

namespace sluice::proto {

Stack::~Stack() {
    tx_.free_all();
    for (ArpPending::Hop* h = pending_.begin(); h != pending_.end(); ++h) {
        rte_pktmbuf_free_bulk(h->pkts, h->count);
        ArpPending::release(*h);
    }
    if (frag_tbl_) {
        rte_ip_frag_table_destroy(frag_tbl_);  // frees the fragments it still holds
        frag_tbl_ = nullptr;
    }
    rte_ip_frag_free_death_row(&death_row_, 0);
    rte_free(frag_seen_);
    frag_seen_ = nullptr;
}

bool Stack::init(const StackConfig& cfg, rte_mempool* pool, int socket_id) {
    cfg_ = cfg;
    pool_ = pool;
    bcast_ = cfg_.subnet_broadcast();
    if (cfg_.tsc_hz == 0) cfg_.tsc_hz = rte_get_tsc_hz();
    arp_lifetime_ = cfg_.tsc_hz * cfg_.arp_timeout_s;
    arp_retry_ = cfg_.tsc_hz * cfg_.arp_retry_ms / 1000;
    icmp_tokens_ = uint64_t(cfg_.icmp_burst) * cfg_.tsc_hz;
    const uint64_t frag_cycles = cfg_.tsc_hz * cfg_.frag_timeout_ms / 1000;
    uint32_t buckets = 1;
    while (buckets * 4 < cfg_.frag_max_flows) buckets <<= 1;
    frag_timeout_ = frag_cycles;
    frag_seen_ = static_cast<FragSeen*>(
        rte_zmalloc_socket("sluice_frag_seen", sizeof(FragSeen) * kFragSeen, 0, socket_id));
    if (!frag_seen_) {
        RTE_LOG(ERR, USER1, "sluice: out of memory for the fragment filter\n");
        return false;
    }
    frag_tbl_ = rte_ip_frag_table_create(buckets, 4, cfg_.frag_max_flows, frag_cycles, socket_id);
    if (!frag_tbl_) {
        RTE_LOG(ERR, USER1, "sluice: cannot create the IPv4 reassembly table (%u flows)\n",
                cfg_.frag_max_flows);
        return false;
    }
    return true;
}

// Flows older than the timeout go to the death row, counted as timed out; the fragments are
// freed at the end of the burst (or of poll_timers).
void Stack::expire_fragments(uint64_t now) {
    const uint32_t before = death_row_.cnt;
    rte_ip_frag_table_del_expired_entries(frag_tbl_, &death_row_, now);
    counters_.drop(Drop::ipv4_frag_timeout, death_row_.cnt - before);
}

namespace {
uint32_t frag_key_hash(const rte_ipv4_hdr* ip, uint16_t off_len_a, uint16_t off_len_b) {
    uint64_t h = (uint64_t(ip->src_addr) << 32 | ip->dst_addr) * 0x9e3779b97f4a7c15ull;
    h ^= (uint64_t(ip->packet_id) << 40 | uint64_t(ip->next_proto_id) << 32 |
          uint32_t(off_len_a) << 16 | off_len_b) *
         0xc2b2ae3d27d4eb4full;
    return uint32_t(h ^ (h >> 29));
}
}  // namespace

// RFC 791 3.2 reassembly absorbs duplicates (its bit table marks what has arrived), but
// rte_ip_frag treats any repeated fragment as an overlap and discards the whole datagram. A
// network that duplicates packets would then lose every datagram it duplicated a fragment
// of. So exact copies of a fragment already held are recognised here, before rte_ip_frag, and
// dropped alone (counted ipv4_frag_duplicate). Direct-mapped and bounded: a collision only
// forgets an entry, which at worst falls back to rte_ip_frag's behaviour.
bool Stack::fragment_seen(const rte_ipv4_hdr* ip, uint16_t ihl, uint64_t now) {
    const uint16_t off = rte_be_to_cpu_16(ip->fragment_offset) & RTE_IPV4_HDR_OFFSET_MASK;
    const uint16_t len = uint16_t(rte_be_to_cpu_16(ip->total_length) - ihl);
    FragSeen& e = frag_seen_[frag_key_hash(ip, off, len) & (kFragSeen - 1)];
    if (e.expires > now && e.src == ip->src_addr && e.dst == ip->dst_addr &&
        e.id == ip->packet_id && e.proto == ip->next_proto_id && e.off == off && e.len == len)
        return true;
    e = FragSeen{ip->src_addr, ip->dst_addr, now + frag_timeout_, ip->packet_id,
                 off,          len,          ip->next_proto_id};
    return false;
}

// A datagram is complete: forget its fragments, so that a later datagram reusing the ID (or a
// late copy) starts afresh, as in Linux. rte_ip_frag chains the fragments in offset order,
// the first with its headers, the others with their payload only.
void Stack::forget_fragments(const rte_mbuf* whole) {
    const auto* ip = rte_pktmbuf_mtod_offset(whole, const rte_ipv4_hdr*, whole->l2_len);
    uint32_t off = 0;
    for (const rte_mbuf* seg = whole; seg; seg = seg->next) {
        uint32_t len = seg->data_len;
        if (seg == whole) len -= whole->l2_len + whole->l3_len;
        const uint16_t o = uint16_t(off / 8), l = uint16_t(len);
        FragSeen& e = frag_seen_[frag_key_hash(ip, o, l) & (kFragSeen - 1)];
        if (e.src == ip->src_addr && e.dst == ip->dst_addr && e.id == ip->packet_id && e.off == o &&
            e.len == l)
            e.expires = 0;
        off += len;
    }
}

// RFC 791 3.2 / RFC 1122 3.3.2 reassembly, in DPDK's rte_ip_frag table: bounded in flows and
// fragments per flow, timed out. Overlapping or duplicated first/last fragments, and
// fragments that leave holes or overlap in the middle, invalidate the flow (RFC 5722's
// approach, which RFC 791 allows): all its fragments go to the death row and are counted.
rte_mbuf* Stack::reassemble(rte_mbuf* m, rte_ipv4_hdr* ip, uint64_t now) {
    counters_.ipv4_frags_in++;
    const uint16_t fo = rte_be_to_cpu_16(ip->fragment_offset);
    const uint32_t offset = uint32_t(fo & RTE_IPV4_HDR_OFFSET_MASK) * RTE_IPV4_HDR_OFFSET_UNITS;
    const uint32_t payload = rte_be_to_cpu_16(ip->total_length) - m->l3_len;
    const bool more = fo & RTE_IPV4_HDR_MF_FLAG;
    // Every fragment but the last carries a multiple of 8 octets; none may end past 65535.
    if (unlikely(payload == 0 || (more && (payload & 7) != 0) ||
                 offset + payload + m->l3_len > 65535)) {
        drop(m, Drop::ipv4_frag_bad);
        return nullptr;
    }
    if (fragment_seen(ip, m->l3_len, now)) {
        drop(m, Drop::ipv4_frag_duplicate);
        return nullptr;
    }
    // Expired flows first, so that what they held counts as timed out (cheap: the table's LRU
    // list is walked only while its oldest entry has expired).
    expire_fragments(now);
    const uint32_t before = death_row_.cnt;
    rte_mbuf* whole = rte_ipv4_frag_reassemble_packet(frag_tbl_, &death_row_, m, now, ip);
    counters_.drop(Drop::ipv4_frag_dropped, death_row_.cnt - before);
    // The death row holds at most RTE_IP_FRAG_DEATH_ROW_LEN bursts' worth; free it in time.
    if (death_row_.cnt >= RTE_IP_FRAG_DEATH_ROW_MBUF_LEN - RTE_LIBRTE_IP_FRAG_MAX_FRAG - 1) {
        rte_ip_frag_free_death_row(&death_row_, 0);
    }
    if (whole) {
        counters_.ipv4_reassembled++;
        forget_fragments(whole);
        // The reassembled header covers the whole datagram; it is not a fragment any more.
        auto* wip = rte_pktmbuf_mtod_offset(whole, rte_ipv4_hdr*, kEthHdrLen);
        wip->fragment_offset = 0;
    }
    return whole;
}

// ---------------------------------------------------------------------------------------------
// ARP, RFC 826.

void Stack::arp_input(rte_mbuf* m, uint64_t now) {
    if (unlikely(m->data_len < kEthHdrLen + sizeof(rte_arp_hdr)))
        return drop(m, Drop::arp_malformed);
    auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
    auto* arp = rte_pktmbuf_mtod_offset(m, rte_arp_hdr*, kEthHdrLen);
    if (arp->arp_hardware != RTE_BE16(RTE_ARP_HRD_ETHER) ||
        arp->arp_protocol != RTE_BE16(RTE_ETHER_TYPE_IPV4) || arp->arp_hlen != RTE_ETHER_ADDR_LEN ||
        arp->arp_plen != 4)
        return drop(m, Drop::arp_malformed);
    const uint16_t op = rte_be_to_cpu_16(arp->arp_opcode);
    if (op != RTE_ARP_OP_REQUEST && op != RTE_ARP_OP_REPLY) return drop(m, Drop::arp_bad_op);

    const rte_be32_t spa = arp->arp_data.arp_sip;
    const rte_be32_t tpa = arp->arp_data.arp_tip;
    const rte_ether_addr sha = arp->arp_data.arp_sha;
    const bool for_us = tpa == cfg_.ip;
    const bool valid_sender = spa != 0 && !rte_is_multicast_ether_addr(&sha) && cfg_.on_link(spa);
    if (op == RTE_ARP_OP_REQUEST)
        counters_.arp_requests_in++;
    else
        counters_.arp_replies_in++;

    // RFC 826 "Packet reception": merge the sender into an existing entry; if we are the
    // target, add it. (spa 0 is an RFC 5227 probe: nothing to learn.)
    if (valid_sender) {
        const bool have = arp_.update(spa, sha, now + arp_lifetime_, for_us);
        if (have) {
            flush_pending(spa, sha);
            if (learned_n_ < kLearnedMax) learned_[learned_n_++] = ArpFact{spa, sha};
        }
    }
    if (!for_us) return drop(m, Drop::arp_not_for_us);
    if (op != RTE_ARP_OP_REQUEST) {
        rte_pktmbuf_free(m);
        return;
    }
    // Answer in place: swap hardware and protocol fields, opcode to reply.
    arp->arp_opcode = RTE_BE16(RTE_ARP_OP_REPLY);
    arp->arp_data.arp_tha = sha;
    arp->arp_data.arp_tip = spa;
    arp->arp_data.arp_sha = cfg_.mac;
    arp->arp_data.arp_sip = cfg_.ip;
    // RFC 826: "send the packet to the (new) target hardware address".
    eth->dst_addr = sha;
    rte_ether_addr_copy(&cfg_.mac, &eth->src_addr);
    m->ol_flags = 0;
    counters_.arp_replies_out++;
    push_tx(m);
}

static rte_mbuf* build_arp(rte_mempool* pool, const StackConfig& cfg, rte_be32_t target) {
    rte_mbuf* m = rte_pktmbuf_alloc(pool);
    if (!m) return nullptr;
    auto* eth =
        reinterpret_cast<rte_ether_hdr*>(rte_pktmbuf_append(m, kEthHdrLen + sizeof(rte_arp_hdr)));
    memset(&eth->dst_addr, 0xff, RTE_ETHER_ADDR_LEN);
    eth->src_addr = cfg.mac;
    eth->ether_type = RTE_BE16(RTE_ETHER_TYPE_ARP);
    auto* arp = reinterpret_cast<rte_arp_hdr*>(eth + 1);
    arp->arp_hardware = RTE_BE16(RTE_ARP_HRD_ETHER);
    arp->arp_protocol = RTE_BE16(RTE_ETHER_TYPE_IPV4);
    arp->arp_hlen = RTE_ETHER_ADDR_LEN;
    arp->arp_plen = 4;
    arp->arp_opcode = RTE_BE16(RTE_ARP_OP_REQUEST);
    arp->arp_data.arp_sha = cfg.mac;
    arp->arp_data.arp_sip = cfg.ip;
    memset(&arp->arp_data.arp_tha, 0, RTE_ETHER_ADDR_LEN);
    arp->arp_data.arp_tip = target;
    m->l2_len = kEthHdrLen;
    return m;
}

void Stack::announce() {
    // RFC 5227 2.3: an ARP request with sender and target both our address.
    rte_mbuf* m = build_arp(pool_, cfg_, cfg_.ip);
    if (!m) return counters_.drop(Drop::no_mbuf);
    counters_.arp_requests_out++;
    push_tx(m);
}

void Stack::send_arp_request(rte_be32_t target) {
    rte_mbuf* m = build_arp(pool_, cfg_, target);
    if (!m) return counters_.drop(Drop::no_mbuf);
    counters_.arp_requests_out++;
    push_tx(m);
}

void Stack::flush_pending(rte_be32_t ip, const rte_ether_addr& mac) {
    ArpPending::Hop* hop = pending_.find(ip);
    if (!hop) return;
    for (uint8_t i = 0; i < hop->count; ++i) {
        rte_mbuf* m = hop->pkts[i];
        auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
        eth->dst_addr = mac;
        emit(m);
    }
    ArpPending::release(*hop);
}

void Stack::send_ipv4(rte_mbuf* m, uint64_t now) {
    auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
    auto* ip = reinterpret_cast<rte_ipv4_hdr*>(eth + 1);
    eth->ether_type = RTE_BE16(RTE_ETHER_TYPE_IPV4);
    eth->src_addr = cfg_.mac;
    m->l2_len = kEthHdrLen;
    // RFC 1122 3.3.1: on-link destinations directly, everything else through the gateway.
    rte_be32_t hop = ip->dst_addr;
    if (!cfg_.on_link(hop)) {
        if (cfg_.gateway == 0) return drop(m, Drop::ipv4_no_route);
        hop = cfg_.gateway;
    }
    if (const rte_ether_addr* mac = arp_.lookup(hop, now)) {
        eth->dst_addr = *mac;
        return emit(m);
    }
    bool created = false;
    ArpPending::Hop* q = pending_.get(hop, &created);
    if (!q || q->count == ArpPending::kPerHop) return drop(m, Drop::arp_queue_full);
    q->pkts[q->count++] = m;
    if (created) {
        q->tries = 1;
        q->next_try = now + arp_retry_;
        send_arp_request(hop);
    }
}

bool Stack::send_udp(rte_mbuf* m, rte_be32_t dst, uint16_t src_port, uint16_t dst_port,
                     uint64_t now) {
    const uint32_t payload = m->pkt_len;
    constexpr uint16_t kHdrs = kEthHdrLen + kIpv4HdrLen + kUdpHdrLen;
    if (payload > 65535u - kIpv4HdrLen - kUdpHdrLen || rte_pktmbuf_headroom(m) < kHdrs) {
        drop(m, Drop::no_mbuf);
        return false;
    }
    auto* eth = reinterpret_cast<rte_ether_hdr*>(rte_pktmbuf_prepend(m, kHdrs));
    auto* ip = reinterpret_cast<rte_ipv4_hdr*>(eth + 1);
    auto* udp = reinterpret_cast<rte_udp_hdr*>(ip + 1);
    ip->version_ihl = RTE_IPV4_VHL_DEF;
    ip->type_of_service = 0;
    ip->total_length = rte_cpu_to_be_16(uint16_t(kIpv4HdrLen + kUdpHdrLen + payload));
    ip->packet_id = rte_cpu_to_be_16(ip_id_++);
    ip->fragment_offset = 0;
    ip->time_to_live = cfg_.ttl;
    ip->next_proto_id = IPPROTO_UDP;
    ip->src_addr = cfg_.ip;
    ip->dst_addr = dst;
    udp->src_port = rte_cpu_to_be_16(src_port);
    udp->dst_port = rte_cpu_to_be_16(dst_port);
    udp->dgram_len = rte_cpu_to_be_16(uint16_t(kUdpHdrLen + payload));
    m->l3_len = kIpv4HdrLen;
    prepare_ipv4_tx(m, ip);
    m->ol_flags |= RTE_MBUF_F_TX_UDP_CKSUM;
    // The port adds the payload's sum to the pseudo-header's (RFC 768).
    udp->dgram_cksum = rte_ipv4_phdr_cksum(ip, m->ol_flags);
    send_ipv4(m, now);
    return true;
}

void Stack::poll_timers(uint64_t now) {
    now_ = now;
    // RFC 1122 2.3.2.1: retransmit ARP requests at a bounded rate, give up after a few.
    for (ArpPending::Hop* h = pending_.begin(); h != pending_.end(); ++h) {
        if (h->ip == 0 || now < h->next_try) continue;
        if (h->tries >= cfg_.arp_max_tries) {
            counters_.drop(Drop::arp_unresolved, h->count);
            rte_pktmbuf_free_bulk(h->pkts, h->count);
            ArpPending::release(*h);
            continue;
        }
        h->tries++;
        h->next_try = now + arp_retry_;
        send_arp_request(h->ip);
    }
    if (frag_tbl_) {
        expire_fragments(now);
        rte_ip_frag_free_death_row(&death_row_, 0);
    }
}

// ---------------------------------------------------------------------------------------------
// ICMP, RFC 792.

void Stack::icmp_input(rte_mbuf* m, rte_ipv4_hdr* ip, bool reassembled) {
    const uint32_t l4_off = kEthHdrLen + m->l3_len;
    const uint32_t len = m->pkt_len - l4_off;
    if (unlikely(len < kIcmpHdrLen || m->data_len < l4_off + kIcmpHdrLen))
        return drop(m, Drop::icmp_truncated);
    uint16_t sum = 0;
    if (rte_raw_cksum_mbuf(m, l4_off, len, &sum) != 0 || sum != 0xffff)
        return drop(m, Drop::icmp_bad_checksum);
    auto* icmp = rte_pktmbuf_mtod_offset(m, rte_icmp_hdr*, l4_off);
    if (icmp->icmp_type != RTE_IP_ICMP_ECHO_REQUEST) return drop(m, Drop::icmp_unhandled_type);
    counters_.icmp_echo_in++;
    // Echo reply in place: type 8 -> 0, the rest (identifier, sequence, data) returned as is.
    // The checksum is recomputed over the message rather than updated incrementally: RFC
    // 1624's eqn. 3 gives 0x0000 instead of 0xffff for an all-zero reply (the -0/+0 case of
    // its section 3), which receivers reject. Echo is not the fast path.
    icmp->icmp_type = RTE_IP_ICMP_ECHO_REPLY;
    icmp->icmp_cksum = 0;
    uint16_t reply_sum = 0;
    rte_raw_cksum_mbuf(m, l4_off, len, &reply_sum);
    icmp->icmp_cksum = uint16_t(~reply_sum);

    auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
    rte_ether_addr_copy(&eth->src_addr, &eth->dst_addr);
    rte_ether_addr_copy(&cfg_.mac, &eth->src_addr);
    ip->dst_addr = ip->src_addr;
    ip->src_addr = cfg_.ip;
    reply_ipv4_checksum(m, ip, reassembled);
    counters_.icmp_echo_out++;
    emit(m);
}

bool Stack::icmp_error_allowed(uint64_t now) {
    // Token bucket in tsc units: one token is tsc_hz units; refilled at icmp_rate_per_s.
    const uint64_t cap = uint64_t(cfg_.icmp_burst) * cfg_.tsc_hz;
    icmp_tokens_ += (now - icmp_last_) * cfg_.icmp_rate_per_s;
    icmp_last_ = now;
    if (icmp_tokens_ > cap) icmp_tokens_ = cap;
    if (icmp_tokens_ < cfg_.tsc_hz) return false;
    icmp_tokens_ -= cfg_.tsc_hz;
    return true;
}

// RFC 792 Destination Unreachable, code 3 (port unreachable), for UDP to a closed port
// (RFC 1122 4.1.3.1). Carries the offending IP header and as much of its data as fits in 576
// octets (RFC 1812 4.3.2.3). Rate-limited (RFC 1812 4.3.2.8). Built in a fresh mbuf: the
// original may be a chain, and this path is rate-limited, not fast.
void Stack::icmp_port_unreachable(rte_mbuf* m, uint64_t now) {
    counters_.drop(Drop::udp_port_closed);
    // RFC 1122 3.2.2: no ICMP error for a datagram sent as a link-layer broadcast.
    if (rte_is_broadcast_ether_addr(&rte_pktmbuf_mtod(m, const rte_ether_hdr*)->dst_addr)) {
        rte_pktmbuf_free(m);
        return;
    }
    if (!icmp_error_allowed(now)) {
        counters_.drop(Drop::icmp_rate_limited);
        rte_pktmbuf_free(m);
        return;
    }
    rte_mbuf* r = rte_pktmbuf_alloc(pool_);
    if (!r) {
        counters_.drop(Drop::no_mbuf);
        rte_pktmbuf_free(m);
        return;
    }
    const auto* oeth = rte_pktmbuf_mtod(m, const rte_ether_hdr*);
    const auto* oip = rte_pktmbuf_mtod_offset(m, const rte_ipv4_hdr*, kEthHdrLen);
    const uint32_t orig_len = m->pkt_len - kEthHdrLen;
    const uint32_t quote = RTE_MIN(orig_len, uint32_t(576 - kIpv4HdrLen - kIcmpHdrLen));
    const uint16_t total = uint16_t(kIpv4HdrLen + kIcmpHdrLen + quote);
    auto* eth = reinterpret_cast<rte_ether_hdr*>(rte_pktmbuf_append(r, kEthHdrLen + total));
    if (!eth) {
        counters_.drop(Drop::no_mbuf);
        rte_pktmbuf_free(r);
        rte_pktmbuf_free(m);
        return;
    }
    eth->dst_addr = oeth->src_addr;
    eth->src_addr = cfg_.mac;
    eth->ether_type = RTE_BE16(RTE_ETHER_TYPE_IPV4);
    auto* ip = reinterpret_cast<rte_ipv4_hdr*>(eth + 1);
    ip->version_ihl = RTE_IPV4_VHL_DEF;
    ip->type_of_service = 0;
    ip->total_length = rte_cpu_to_be_16(total);
    ip->packet_id = 0;
    ip->fragment_offset = 0;
    ip->time_to_live = cfg_.ttl;
    ip->next_proto_id = IPPROTO_ICMP;
    ip->src_addr = cfg_.ip;
    ip->dst_addr = oip->src_addr;
    auto* icmp = reinterpret_cast<rte_icmp_hdr*>(ip + 1);
    icmp->icmp_type = 3;  // destination unreachable
    icmp->icmp_code = 3;  // port unreachable
    icmp->icmp_cksum = 0;
    icmp->icmp_ident = 0;  // "unused", must be zero
    icmp->icmp_seq_nb = 0;
    uint8_t* q = reinterpret_cast<uint8_t*>(icmp + 1);
    const void* src = rte_pktmbuf_read(m, kEthHdrLen, quote, q);
    if (src != q) memcpy(q, src, quote);
    icmp->icmp_cksum = uint16_t(~rte_raw_cksum(icmp, kIcmpHdrLen + quote));
    rte_pktmbuf_free(m);
    r->l3_len = kIpv4HdrLen;
    prepare_ipv4_tx(r, ip);
    counters_.icmp_unreach_out++;
    push_tx(r);
}

// ---------------------------------------------------------------------------------------------
// Fragmentation of outgoing datagrams larger than the MTU (RFC 791 3.2, "Fragmentation").

void Stack::fragment_and_emit(rte_mbuf* m) {
    auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, kEthHdrLen);
    if (ip->fragment_offset & RTE_BE16(RTE_IPV4_HDR_DF_FLAG))
        return drop(m, Drop::ipv4_frag_too_big);
    // A checksum requested from the port covers the whole datagram: no port can compute it
    // across fragments, so finish it here, before splitting.
    if (m->ol_flags & RTE_MBUF_F_TX_L4_MASK) {
        const uint32_t l4_off = kEthHdrLen + m->l3_len;
        if (ip->next_proto_id == IPPROTO_UDP) {
            auto* udp = rte_pktmbuf_mtod_offset(m, rte_udp_hdr*, l4_off);
            udp->dgram_cksum = 0;
            udp->dgram_cksum = l4_checksum_mbuf(
                m, ip, l4_off, uint16_t(rte_be_to_cpu_16(ip->total_length) - m->l3_len));
        }
        m->ol_flags &= ~RTE_MBUF_F_TX_L4_MASK;
        counters_.sw_tx_cksum++;
    }
    rte_ether_hdr eth = *rte_pktmbuf_mtod(m, rte_ether_hdr*);
    rte_pktmbuf_adj(m, kEthHdrLen);
    constexpr uint16_t kMaxFrags = 64;
    rte_mbuf* frags[kMaxFrags];
    const int n = rte_ipv4_fragment_packet(m, frags, kMaxFrags, cfg_.mtu, pool_, pool_);
    rte_pktmbuf_free(m);  // the fragments hold references to its data
    if (n < 0) {
        counters_.drop(n == -ENOMEM ? Drop::no_mbuf : Drop::ipv4_frag_too_big);
        return;
    }
    if (tx_.room() < n) {
        counters_.drop(Drop::tx_full, uint64_t(n));
        rte_pktmbuf_free_bulk(frags, unsigned(n));
        return;
    }
    for (int i = 0; i < n; ++i) {
        rte_mbuf* f = frags[i];
        auto* feth = reinterpret_cast<rte_ether_hdr*>(rte_pktmbuf_prepend(f, kEthHdrLen));
        if (!feth) {  // cannot happen with default headroom; never leak if it does
            counters_.drop(Drop::no_mbuf);
            rte_pktmbuf_free(f);
            continue;
        }
        *feth = eth;
        f->l3_len = uint16_t((reinterpret_cast<rte_ipv4_hdr*>(feth + 1)->version_ihl & 0x0f) * 4);
        prepare_ipv4_tx(f, reinterpret_cast<rte_ipv4_hdr*>(feth + 1));
        counters_.ipv4_frags_out++;
        push_tx(f);
    }
}

}  // namespace sluice::proto
