// Software RSS: the same symmetric Toeplitz hash the port would compute (pmd/port.cpp's key),
// in software, for ports with fewer RX queues than workers. Fragments hash on the addresses
// only, whole UDP/TCP datagrams on the 4-tuple, exactly like RTE_ETH_RSS_FRAG_IPV4 /
// NONFRAG_IPV4_{UDP,TCP}, so a flow meets the same core either way.
//
// The hash is table-driven: for each input byte position and value, the XOR of the 32-bit
// key windows its set bits select is precomputed (12 x 256 words, 12 KiB), so a 4-tuple costs
// 12 loads and XORs instead of rte_softrss's loop over 96 bits. With a key that repeats every
// 16 bits (the symmetric key), the window at input bit k depends only on k mod 16, and the hash
// is linear over GF(2): it is then the hash of the XOR of all the input's 16-bit words, two
// table loads (which is also why that key is symmetric). bench/ (BM_SoftRssHash*) compares;
// tests/unit checks both forms against rte_softrss and the Microsoft test vectors.
#pragma once

#include <cstdint>
#include <cstring>

#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_ip_frag.h>
#include <rte_mbuf.h>

#include "pmd/port.hpp"

namespace sluice::engine {

class SoftRss {
  public:
    static constexpr unsigned kRetaSize = 128;
    static constexpr unsigned kMaxInput = 12;  // IPv4 src, dst, ports

    void init(uint16_t workers) { init(workers, pmd::kSymmetricRssKey); }

    // `key` needs kMaxInput + 4 bytes at least (the RSS key is 40).
    void init(uint16_t workers, const uint8_t* key) {
        for (unsigned pos = 0; pos < kMaxInput; ++pos) {
            for (unsigned v = 0; v < 256; ++v) {
                uint32_t h = 0;
                for (unsigned bit = 0; bit < 8; ++bit) {
                    if (!(v & (0x80u >> bit))) continue;
                    // The 32-bit window of the key starting at input bit 8*pos + bit.
                    const unsigned k = 8 * pos + bit;
                    const unsigned byte = k / 8, shift = k % 8;
                    const uint64_t w = uint64_t(key[byte]) << 32 | uint64_t(key[byte + 1]) << 24 |
                                       uint64_t(key[byte + 2]) << 16 |
                                       uint64_t(key[byte + 3]) << 8 | key[byte + 4];
                    h ^= uint32_t(w >> (8 - shift));
                }
                table_[pos][v] = h;
            }
        }
        periodic16_ = true;
        for (unsigned i = 2; i < kMaxInput + 4; ++i) periodic16_ &= key[i] == key[i - 2];
        for (unsigned i = 0; i < kRetaSize; ++i) reta_[i] = uint16_t(i % workers);
    }

    // Toeplitz hash of `len` input bytes in network order (Microsoft RSS specification).
    uint32_t toeplitz(const uint8_t* in, unsigned len) const {
        uint32_t h = 0;
        for (unsigned i = 0; i < len; ++i) h ^= table_[i][in[i]];
        return h;
    }

    uint32_t hash(const rte_mbuf* m) const {
        const auto* eth = rte_pktmbuf_mtod(m, const rte_ether_hdr*);
        if (unlikely(m->data_len < sizeof(rte_ether_hdr) + sizeof(rte_ipv4_hdr) ||
                     eth->ether_type != RTE_BE16(RTE_ETHER_TYPE_IPV4)))
            return 0;  // ARP and the rest: worker 0
        const auto* ip = reinterpret_cast<const rte_ipv4_hdr*>(eth + 1);
        const auto* addrs = reinterpret_cast<const uint8_t*>(&ip->src_addr);
        const uint16_t ihl = uint16_t((ip->version_ihl & 0x0f) * 4);
        const bool l4 = (ip->next_proto_id == IPPROTO_UDP || ip->next_proto_id == IPPROTO_TCP) &&
                        !rte_ipv4_frag_pkt_is_fragmented(ip) &&
                        m->data_len >= sizeof(rte_ether_hdr) + ihl + 4;
        const auto* ports = reinterpret_cast<const uint8_t*>(ip) + ihl;
        if (likely(periodic16_)) {
            uint32_t a, b, x;
            memcpy(&a, addrs, 4);
            memcpy(&b, addrs + 4, 4);
            x = a ^ b;
            if (l4) {
                uint32_t p;
                memcpy(&p, ports, 4);
                x ^= p;
            }
            // The XOR of the 16-bit words, in memory order: even bytes, odd bytes.
            const auto* xb = reinterpret_cast<const uint8_t*>(&x);
            return table_[0][xb[0] ^ xb[2]] ^ table_[1][xb[1] ^ xb[3]];
        }
        uint32_t h = 0;
        for (unsigned i = 0; i < 8; ++i) h ^= table_[i][addrs[i]];
        if (l4)
            for (unsigned i = 0; i < 4; ++i) h ^= table_[8 + i][ports[i]];
        return h;
    }

    uint16_t target(const rte_mbuf* m) const { return reta_[hash(m) & (kRetaSize - 1)]; }

    // The worker a TCP/UDP flow lands on, from its 4-tuple (network order; the hash is
    // symmetric, so either direction's order gives the same answer). An active open uses it
    // to pick a source port whose replies come back to its own core.
    uint16_t target(rte_be32_t a, rte_be32_t b, rte_be16_t pa, rte_be16_t pb) const {
        uint8_t in[12];
        memcpy(in, &a, 4);
        memcpy(in + 4, &b, 4);
        memcpy(in + 8, &pa, 2);
        memcpy(in + 10, &pb, 2);
        return reta_[toeplitz(in, 12) & (kRetaSize - 1)];
    }

  private:
    uint32_t table_[kMaxInput][256];
    uint16_t reta_[kRetaSize];
    bool periodic16_ = false;  // the key repeats every 16 bits: the XOR-folded form applies
};

}  // namespace sluice::engine
