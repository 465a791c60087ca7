// Incremental Internet checksum update (RFC 1624).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <rte_byteorder.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_udp.h>

namespace sluice::proto {

// Folds a 64-bit accumulator once: the result is below 2^33 and, like any fold at a 16-bit
// boundary, congruent to it modulo 0xffff, which is all the one's-complement sum keeps.
inline uint64_t fold32(uint64_t v) {
    return (v & 0xffffffffu) + (v >> 32);
}

// The Internet checksum (RFC 1071) over contiguous bytes, as rte_raw_cksum computes it (the
// 16-bit one's-complement sum, folded, not complemented), but eight bytes at a time: 32-bit
// halves are accumulated in 64 bits, which cannot overflow below 2^32 words, and folded once
// at the end (the sum of 32-bit words folds to the sum of the 16-bit ones: RFC 1071 2(B)).
// rte_raw_cksum in 22.11 adds one 16-bit word per step; bench/ (BM_RawSum) shows the gain.
inline uint64_t sum_bytes(const void* buf, size_t len, uint64_t acc = 0) {
    const auto* p = static_cast<const uint8_t*>(buf);
#if defined(__SSE2__)
    // 32 bytes per step: the 32-bit lanes widened to 64 and added, in two accumulators.
    if (len >= 32) {
        const __m128i zero = _mm_setzero_si128();
        __m128i a = zero, b = zero;
        do {
            const __m128i v0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
            const __m128i v1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16));
            a = _mm_add_epi64(a, _mm_unpacklo_epi32(v0, zero));
            b = _mm_add_epi64(b, _mm_unpackhi_epi32(v0, zero));
            a = _mm_add_epi64(a, _mm_unpacklo_epi32(v1, zero));
            b = _mm_add_epi64(b, _mm_unpackhi_epi32(v1, zero));
            p += 32;
            len -= 32;
        } while (len >= 32);
        a = _mm_add_epi64(a, b);
        uint64_t lanes[2];
        _mm_storeu_si128(reinterpret_cast<__m128i*>(lanes), a);
        // Each lane holds at most 2^5 * 2^32 per KiB of input: no overflow below 2^27 bytes.
        acc += fold32(lanes[0]) + fold32(lanes[1]);
    }
#endif
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        acc += (v & 0xffffffffu) + (v >> 32);
        p += 8;
        len -= 8;
    }
    if (len >= 4) {
        uint32_t v;
        memcpy(&v, p, 4);
        acc += v;
        p += 4;
        len -= 4;
    }
    if (len >= 2) {
        uint16_t v;
        memcpy(&v, p, 2);
        acc += v;
        p += 2;
        len -= 2;
    }
    if (len) {
        // The odd byte is the high-order byte of a zero-padded word (in memory order).
        uint16_t v = 0;
        memcpy(&v, p, 1);
        acc += v;
    }
    return acc;
}

inline uint16_t fold_sum(uint64_t acc) {
    acc = (acc & 0xffffffffu) + (acc >> 32);
    acc = (acc & 0xffffffffu) + (acc >> 32);
    acc = (acc & 0xffff) + (acc >> 16);
    acc = (acc & 0xffff) + (acc >> 16);
    return uint16_t(acc);
}

// The checksum to store in an IPv4 header whose checksum field is zero.
inline uint16_t ipv4_header_checksum(const rte_ipv4_hdr* ip, size_t ihl) {
    return uint16_t(~fold_sum(sum_bytes(ip, ihl)));
}

// The unfolded sum of the IPv4 pseudo-header (RFC 768, RFC 9293 3.1): addresses, protocol,
// segment length.
inline uint64_t pseudo_header_sum(const rte_ipv4_hdr* ip, uint16_t l4_len) {
    return uint64_t(ip->src_addr) + ip->dst_addr + rte_cpu_to_be_16(uint16_t(ip->next_proto_id)) +
           rte_cpu_to_be_16(l4_len);
}

// The folded pseudo-header sum a TX checksum offload expects in the L4 checksum field
// (rte_ipv4_phdr_cksum without TSO), from values the caller holds in registers: reading the
// header just written back in narrower or wider loads than it was stored with stalls store
// forwarding (a third of Tcp::send_segment's cycles in bench/tcp_micro.cpp).
inline uint16_t pseudo_header_cksum(rte_be32_t src, rte_be32_t dst, uint8_t proto,
                                    uint16_t l4_len) {
    return fold_sum(uint64_t(src) + dst + rte_cpu_to_be_16(uint16_t(proto)) +
                    rte_cpu_to_be_16(l4_len));
}

// The checksum to store in a contiguous UDP/TCP segment whose checksum field is zero
// (RFC 768: a computed 0 is sent as 0xffff for UDP; TCP never sees it differ).
inline uint16_t l4_checksum(const rte_ipv4_hdr* ip, const void* l4, uint16_t l4_len) {
    const uint16_t c = uint16_t(~fold_sum(sum_bytes(l4, l4_len, pseudo_header_sum(ip, l4_len))));
    return c == 0 ? 0xffff : c;
}

// The checksum of an option-less IPv4 header, from the values its fields are being stored
// with (each as it sits in memory: the 16-bit ones already in network order), summed in
// registers: summing the header just written back from memory, in wider loads than its
// fields were stored with, stalls store forwarding for a dozen cycles a load (most of the IP
// half of a packet's software checksum time in bench/tcp_micro.cpp). RFC 791 3.1, RFC 1071.
inline uint16_t ipv4_header_checksum_of(uint8_t version_ihl, uint8_t tos, rte_be16_t total_length,
                                        rte_be16_t packet_id, rte_be16_t fragment_offset,
                                        uint8_t ttl, uint8_t proto, rte_be32_t src,
                                        rte_be32_t dst) {
    // A 16-bit word read from memory on this host holds its first byte in the low half
    // (little endian) or the high half; the one's-complement sum is byte-order independent
    // (RFC 1071 2(B)) as long as both bytes of a word are placed the same way.
#if RTE_BYTE_ORDER == RTE_LITTLE_ENDIAN
    const uint32_t w0 = uint32_t(version_ihl) | uint32_t(tos) << 8;
    const uint32_t w4 = uint32_t(ttl) | uint32_t(proto) << 8;
#else
    const uint32_t w0 = uint32_t(version_ihl) << 8 | tos;
    const uint32_t w4 = uint32_t(ttl) << 8 | proto;
#endif
    const uint64_t acc =
        uint64_t(w0) + total_length + packet_id + fragment_offset + w4 + uint64_t(src) + dst;
    return uint16_t(~fold_sum(acc));
}

// True when an IPv4 header's checksum is right: the sum over it is 0xffff (RFC 791 3.1).
inline bool ipv4_header_ok(const rte_ipv4_hdr* ip, size_t ihl) {
    return fold_sum(sum_bytes(ip, ihl)) == 0xffff;
}

// True when a contiguous UDP (or TCP) segment's checksum is right over the pseudo-header
// (RFC 768) and the segment of `l4_len` bytes.
inline bool l4_checksum_ok(const rte_ipv4_hdr* ip, const void* l4, uint16_t l4_len) {
    return fold_sum(sum_bytes(l4, l4_len, pseudo_header_sum(ip, l4_len))) == 0xffff;
}

// A 16-bit word covered by `*cksum` changes from `old_word` to `new_word` (both as stored in
// the packet): HC' = ~(~HC + ~m + m'), RFC 1624 eqn. 3. Never yields -0 for a sum that cannot
// be zero, such as an IPv4 header's (its version/IHL byte is not zero).
[[nodiscard]] inline uint16_t checksum_replace16(uint16_t cksum, uint16_t old_word,
                                                 uint16_t new_word) {
    uint32_t s = uint32_t(uint16_t(~cksum)) + uint16_t(~old_word) + new_word;
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    return uint16_t(~s);
}

// The 16-bit sum of `len` bytes at `off` in an mbuf chain: each segment summed with
// sum_bytes, a segment starting at an odd offset byte-swapped (RFC 1071 2(B): the sum is
// byte-order independent, so bytes shifted by one land in the other half of the word).
inline uint64_t sum_mbuf(const rte_mbuf* m, uint32_t off, uint32_t len, uint64_t acc = 0) {
    while (m && off >= m->data_len) {
        off -= m->data_len;
        m = m->next;
    }
    uint32_t done = 0;
    while (m && done < len) {
        const uint32_t n = RTE_MIN(uint32_t(m->data_len) - off, len - done);
        uint16_t s = fold_sum(sum_bytes(rte_pktmbuf_mtod_offset(m, const uint8_t*, off), n));
        if (done & 1) s = uint16_t(s << 8 | s >> 8);
        acc += s;
        done += n;
        off = 0;
        m = m->next;
    }
    return acc;
}

// The checksum to store in a UDP/TCP segment at `l4_off` of a chain, its field zero.
inline uint16_t l4_checksum_mbuf(const rte_mbuf* m, const rte_ipv4_hdr* ip, uint32_t l4_off,
                                 uint16_t l4_len) {
    const uint16_t c =
        uint16_t(~fold_sum(sum_mbuf(m, l4_off, l4_len, pseudo_header_sum(ip, l4_len))));
    return c == 0 ? 0xffff : c;
}

inline bool l4_checksum_mbuf_ok(const rte_mbuf* m, const rte_ipv4_hdr* ip, uint32_t l4_off,
                                uint16_t l4_len) {
    return fold_sum(sum_mbuf(m, l4_off, l4_len, pseudo_header_sum(ip, l4_len))) == 0xffff;
}

}  // namespace sluice::proto
