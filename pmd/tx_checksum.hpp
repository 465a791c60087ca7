// Finishing TX checksums: whatever the port cannot offload is computed here, in software, once
// per burst, so that proto/ always writes the same thing (DPDK's TX offload contract) and never
// knows which port it runs on. The offload choice is a template parameter: the per-packet loop
// has no branch on the port's capabilities.
#pragma once

#include <cstddef>
#include <cstdint>

#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include "proto/checksum.hpp"

namespace sluice::pmd {

template <bool kHwIp, bool kHwL4>
inline uint32_t finish_tx_checksums(rte_mbuf** pkts, uint16_t n) {
    uint32_t sw = 0;
    if constexpr (kHwIp && kHwL4) {
        (void)pkts;
        (void)n;
        return 0;
    } else {
        for (uint16_t i = 0; i < n; ++i) {
            rte_mbuf* m = pkts[i];
            uint64_t f = m->ol_flags;
            if (!(f & (RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_L4_MASK))) continue;
            auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, m->l2_len);
            if constexpr (!kHwL4) {
                // RFC 768 / RFC 9293 3.1: checksum over the pseudo-header and the segment.
                const uint64_t l4 = f & RTE_MBUF_F_TX_L4_MASK;
                const uint16_t off = uint16_t(m->l2_len + m->l3_len);
                if (l4 == RTE_MBUF_F_TX_UDP_CKSUM || l4 == RTE_MBUF_F_TX_TCP_CKSUM) {
                    auto* field = rte_pktmbuf_mtod_offset(
                        m, rte_be16_t*,
                        off + (l4 == RTE_MBUF_F_TX_UDP_CKSUM ? offsetof(rte_udp_hdr, dgram_cksum)
                                                             : offsetof(rte_tcp_hdr, cksum)));
                    *field = 0;
                    const uint16_t l4_len =
                        uint16_t(rte_be_to_cpu_16(ip->total_length) - m->l3_len);
                    *field =
                        m->nb_segs == 1
                            ? proto::l4_checksum(ip, rte_pktmbuf_mtod_offset(m, void*, off), l4_len)
                            : proto::l4_checksum_mbuf(m, ip, off, l4_len);
                    ++sw;
                }
                f &= ~RTE_MBUF_F_TX_L4_MASK;
            }
            if constexpr (!kHwIp) {
                if (f & RTE_MBUF_F_TX_IP_CKSUM) {
                    ip->hdr_checksum = 0;
                    ip->hdr_checksum = proto::ipv4_header_checksum(ip, m->l3_len);
                    f &= ~RTE_MBUF_F_TX_IP_CKSUM;
                    ++sw;
                }
            }
            if (!(f & (RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_L4_MASK))) f &= ~RTE_MBUF_F_TX_IPV4;
            m->ol_flags = f;
        }
        return sw;
    }
}

// Ports whose L4 offload is wrong for chained packets: DPDK 22.11's net_tap sums the segments'
// raw checksums as if every segment began at an even offset, so a chain with an odd-length
// segment leaves with a bad checksum and the kernel drops it. Single-segment packets keep the
// offload; chains get their L4 checksum here (proto::l4_checksum_mbuf, odd splits handled).
template <bool kHwIp>
inline uint32_t finish_tx_checksums_chains_sw(rte_mbuf** pkts, uint16_t n) {
    uint32_t sw = 0;
    for (uint16_t i = 0; i < n; ++i) {
        rte_mbuf* m = pkts[i];
        if (m->nb_segs > 1 && (m->ol_flags & RTE_MBUF_F_TX_L4_MASK)) {
            sw += finish_tx_checksums<kHwIp, false>(&m, 1);
        } else if constexpr (!kHwIp) {
            sw += finish_tx_checksums<false, true>(&m, 1);
        }
    }
    return sw;
}

// A trusted link (PortConfig::trusted_link): what asked for a checksum is handed over as
// verified instead (the receiving port's verdict), nothing is computed. An IPv4 packet that
// asks only for its L4 checksum had its header checksum computed by the sender (proto/tcp's
// fill_ip): that one is handed over as verified too.
inline uint32_t mark_verified(rte_mbuf** pkts, uint16_t n) {
    for (uint16_t i = 0; i < n; ++i) {
        rte_mbuf* m = pkts[i];
        const uint64_t f = m->ol_flags;
        if (!(f & (RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_L4_MASK))) continue;
        uint64_t rx = 0;
        if (f & (RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_IPV4)) rx |= RTE_MBUF_F_RX_IP_CKSUM_GOOD;
        if (f & RTE_MBUF_F_TX_L4_MASK) rx |= RTE_MBUF_F_RX_L4_CKSUM_GOOD;
        m->ol_flags = rx;
    }
    return 0;
}

}  // namespace sluice::pmd
