// Per-core protocol counters. Every packet that enters the stack ends in exactly one place:
// delivered to an app, answered, consumed (ARP, fragments held for reassembly), or dropped
// with one reason below. The names are the telemetry keys (see engine/telemetry.cpp).
#pragma once

#include <cstdint>

namespace sluice::proto {

// X(name, help)
#define SLUICE_DROP_REASONS(X)                                                         \
    X(eth_runt, "frame shorter than an Ethernet header")                               \
    X(eth_not_for_us, "destination MAC neither ours nor broadcast")                    \
    X(eth_unknown_type, "EtherType other than IPv4 and ARP")                           \
    X(eth_looped, "broadcast sent by ourselves, seen again")                           \
    X(arp_malformed, "ARP frame truncated or not Ethernet/IPv4")                       \
    X(arp_not_for_us, "ARP request for another address")                               \
    X(arp_bad_op, "ARP opcode other than request or reply")                            \
    X(arp_queue_full, "packet for an unresolved next hop did not fit its queue")       \
    X(arp_unresolved, "next hop never answered ARP; queued packets freed")             \
    X(ipv4_truncated, "frame shorter than the IPv4 header it claims")                  \
    X(ipv4_bad_version, "IP version field is not 4")                                   \
    X(ipv4_bad_ihl, "IHL below 5 (RFC 791 3.1)")                                       \
    X(ipv4_bad_total_length, "total length below IHL or beyond the frame")             \
    X(ipv4_bad_checksum, "IPv4 header checksum wrong (RFC 791 3.1)")                   \
    X(ipv4_ttl_zero, "TTL 0 on arrival")                                               \
    X(ipv4_bad_src, "source address broadcast, multicast or 0 (RFC 1122 3.2.1.3)")     \
    X(ipv4_not_for_us, "unicast destination other than our address")                   \
    X(ipv4_no_route, "off-link destination and no gateway")                            \
    X(ipv4_broadcast, "broadcast or multicast destination (not served)")               \
    X(ipv4_unknown_proto, "protocol other than ICMP and UDP")                          \
    X(ipv4_frag_bad, "fragment with bad offset/length (RFC 791 3.2)")                  \
    X(ipv4_frag_duplicate, "exact copy of a fragment already held: dropped alone")     \
    X(ipv4_frag_dropped, "fragments freed by reassembly: overlap, duplicate, full")    \
    X(ipv4_frag_timeout, "fragments freed by reassembly timeout")                      \
    X(ipv4_frag_too_big, "datagram larger than the MTU with DF set or unfragmentable") \
    X(icmp_truncated, "ICMP message shorter than its header")                          \
    X(icmp_bad_checksum, "ICMP checksum wrong")                                        \
    X(icmp_unhandled_type, "ICMP type other than echo request")                        \
    X(icmp_rate_limited, "ICMP error suppressed by the rate limit (RFC 1812 4.3.2.8)") \
    X(udp_truncated, "datagram shorter than a UDP header")                             \
    X(udp_bad_length, "UDP length below 8 or beyond the IP payload")                   \
    X(udp_bad_checksum, "UDP checksum wrong (RFC 768)")                                \
    X(udp_port_closed, "no app on the destination port (answered ICMP unreachable)")   \
    X(no_mbuf, "mbuf pool empty when building a packet")                               \
    X(tx_full, "TX queue or ring full: dropped, never stalled")

enum class Drop : uint8_t {
#define SLUICE_X(name, help) name,
    SLUICE_DROP_REASONS(SLUICE_X)
#undef SLUICE_X
        count
};

inline constexpr unsigned kDropCount = static_cast<unsigned>(Drop::count);

inline constexpr const char* kDropNames[kDropCount] = {
#define SLUICE_X(name, help) #name,
    SLUICE_DROP_REASONS(SLUICE_X)
#undef SLUICE_X
};

inline constexpr const char* kDropHelp[kDropCount] = {
#define SLUICE_X(name, help) help,
    SLUICE_DROP_REASONS(SLUICE_X)
#undef SLUICE_X
};

// X(name)
#define SLUICE_PROTO_COUNTERS(X) \
    X(rx_packets)                \
    X(rx_bytes)                  \
    X(tx_packets)                \
    X(tx_bytes)                  \
    X(arp_requests_in)           \
    X(arp_replies_out)           \
    X(arp_replies_in)            \
    X(arp_requests_out)          \
    X(ipv4_in)                   \
    X(ipv4_frags_in)             \
    X(ipv4_reassembled)          \
    X(ipv4_frags_out)            \
    X(icmp_echo_in)              \
    X(icmp_echo_out)             \
    X(icmp_unreach_out)          \
    X(udp_in)                    \
    X(udp_delivered)             \
    X(tcp_in)                    \
    X(sw_rx_cksum)               \
    X(sw_tx_cksum)

struct Counters {
#define SLUICE_X(name) uint64_t name = 0;
    SLUICE_PROTO_COUNTERS(SLUICE_X)
#undef SLUICE_X
    uint64_t drops[kDropCount] = {};

    void drop(Drop d, uint64_t n = 1) {
        drops[static_cast<unsigned>(d)] += n;
    }
    uint64_t dropped(Drop d) const {
        return drops[static_cast<unsigned>(d)];
    }
    uint64_t total_drops() const {
        uint64_t t = 0;
        for (uint64_t v : drops) t += v;
        return t;
    }
    Counters& operator+=(const Counters& o) {
#define SLUICE_X(name) name += o.name;
        SLUICE_PROTO_COUNTERS(SLUICE_X)
#undef SLUICE_X
        for (unsigned i = 0; i < kDropCount; ++i) drops[i] += o.drops[i];
        return *this;
    }
};

// Per-core TCP counters (telemetry /sluice/tcp).
#define SLUICE_TCP_COUNTERS(X)                                                 \
    X(segs_in, "segments received")                                            \
    X(segs_out, "segments sent")                                               \
    X(gather_copies, "segments copied: too many send-queue pieces to gather")  \
    X(tx_linear, "segments copied whole for a port that copies frames anyway") \
    X(bad_checksum, "segments with a wrong checksum (dropped)")                \
    X(malformed, "segments too short or with a bad data offset (dropped)")     \
    X(rst_out, "RSTs sent")                                                    \
    X(rst_in, "RSTs received and accepted")                                    \
    X(challenge_acks, "challenge ACKs sent (RFC 5961)")                        \
    X(paws_drops, "segments rejected by PAWS (RFC 7323 5)")                    \
    X(out_of_window, "unacceptable segments (answered with an ACK)")           \
    X(active_opens, "connect() calls that sent a SYN")                         \
    X(passive_opens, "connections accepted")                                   \
    X(syn_cookies_sent, "SYN-ACKs carrying a SYN cookie")                      \
    X(syn_cookies_ok, "connections made from a valid SYN cookie")              \
    X(syn_cookies_bad, "ACKs to a listener with an invalid cookie")            \
    X(syn_dropped, "SYNs dropped: no connection slot")                         \
    X(retransmits, "segments retransmitted")                                   \
    X(rto_expirations, "retransmission timeouts")                              \
    X(fast_retransmits, "fast retransmits (RFC 5681 3.2)")                     \
    X(early_retransmits, "fast retransmits of small flights (RFC 5827)")       \
    X(lost_retransmits, "retransmissions found lost again (RFC 8985 6.2)")     \
    X(tlp_probes, "tail loss probes sent (RFC 8985 7.3)")                      \
    X(tlp_repairs, "losses repaired by a tail loss probe (RFC 8985 7.4)")      \
    X(tlp_losses, "recoveries started by a SACKed loss probe (RFC 8985 6.2)")  \
    X(ooo_segs, "segments queued out of order")                                \
    X(ooo_dropped, "out-of-order segments dropped: queue full")                \
    X(dup_segs, "segments entirely duplicate")                                 \
    X(delayed_acks, "ACKs sent by the delayed-ACK timer")                      \
    X(window_updates, "reopened-window updates repeated (no data after)")      \
    X(persist_probes, "zero-window probes sent")                               \
    X(keepalive_probes, "keepalive probes sent")                               \
    X(ecn_ce, "segments received with CE (RFC 3168)")                          \
    X(time_wait_reused, "TIME_WAIT connections reused safely")                 \
    X(conns_closed, "connections ended")                                       \
    X(event_queue_full, "segments dropped: app events not yet dispatched")     \
    X(no_mbuf, "segments not sent: mbuf pool empty")                           \
    X(sq_full, "sends refused: no send-queue block left on this core")

struct TcpCounters {
#define SLUICE_X(name, help) uint64_t name = 0;
    SLUICE_TCP_COUNTERS(SLUICE_X)
#undef SLUICE_X
    uint64_t established = 0;  // gauge: connections in ESTABLISHED
    uint64_t open_conns = 0;   // gauge: connection slots in use
};

}  // namespace sluice::proto
