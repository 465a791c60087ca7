// Software RSS: the same symmetric Toeplitz hash the port would compute (pmd/port.cpp's key),
// in software, for ports with fewer RX queues than workers. Fragments hash on the addresses
// only, whole UDP/TCP datagrams on the 4-tuple, exactly like RTE_ETH_RSS_FRAG_IPV4 /
// NONFRAG_IPV4_{UDP,TCP}, so a flow meets the same core either way.
#pragma once

#include <cstdint>

#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_ip_frag.h>
#include <rte_mbuf.h>
#include <rte_thash.h>

#include "pmd/port.hpp"

namespace sluice::engine {

class SoftRss {
  public:
    static constexpr unsigned kRetaSize = 128;

    void init(uint16_t workers) {
        rte_convert_rss_key(reinterpret_cast<const uint32_t*>(pmd::kSymmetricRssKey),
                            reinterpret_cast<uint32_t*>(key_), sizeof key_);
        for (unsigned i = 0; i < kRetaSize; ++i) reta_[i] = uint16_t(i % workers);
    }

    uint32_t hash(const rte_mbuf* m) const {
        const auto* eth = rte_pktmbuf_mtod(m, const rte_ether_hdr*);
        if (unlikely(m->data_len < sizeof(rte_ether_hdr) + sizeof(rte_ipv4_hdr) ||
                     eth->ether_type != RTE_BE16(RTE_ETHER_TYPE_IPV4)))
            return 0;  // ARP and the rest: worker 0
        const auto* ip = reinterpret_cast<const rte_ipv4_hdr*>(eth + 1);
        rte_ipv4_tuple t;
        t.src_addr = rte_be_to_cpu_32(ip->src_addr);
        t.dst_addr = rte_be_to_cpu_32(ip->dst_addr);
        const uint16_t ihl = uint16_t((ip->version_ihl & 0x0f) * 4);
        if ((ip->next_proto_id == IPPROTO_UDP || ip->next_proto_id == IPPROTO_TCP) &&
            !rte_ipv4_frag_pkt_is_fragmented(ip) &&
            m->data_len >= sizeof(rte_ether_hdr) + ihl + 4) {
            const auto* ports =
                reinterpret_cast<const uint16_t*>(reinterpret_cast<const uint8_t*>(ip) + ihl);
            t.sport = rte_be_to_cpu_16(ports[0]);
            t.dport = rte_be_to_cpu_16(ports[1]);
            return rte_softrss_be(reinterpret_cast<uint32_t*>(&t), RTE_THASH_V4_L4_LEN, key_);
        }
        return rte_softrss_be(reinterpret_cast<uint32_t*>(&t), RTE_THASH_V4_L3_LEN, key_);
    }

    uint16_t target(const rte_mbuf* m) const { return reta_[hash(m) & (kRetaSize - 1)]; }

  private:
    uint8_t key_[40];
    uint16_t reta_[kRetaSize];
};

}  // namespace sluice::engine
