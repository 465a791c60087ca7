// proto/checksum.hpp against DPDK's own checksum routines and RFC 1624.
#include <vector>

#include <gtest/gtest.h>
#include <rte_ip.h>

#include "proto/checksum.hpp"
#include "tests/unit/unit_env.hpp"

namespace sluice::test {
namespace {

TEST(Checksum, SumBytesMatchesRteRawCksumAtEveryLengthAndAlignment) {
    std::vector<uint8_t> buf(2100);
    uint32_t seed = 7;
    for (uint8_t& b : buf) b = uint8_t((seed = seed * 1103515245 + 12345) >> 16);
    for (size_t off = 0; off < 8; ++off)
        for (size_t len = 0; len <= 2048; len += (len < 300 ? 1 : 61))
            ASSERT_EQ(proto::fold_sum(proto::sum_bytes(buf.data() + off, len)),
                      rte_raw_cksum(buf.data() + off, len))
                << "offset " << off << " length " << len;
}

TEST(Checksum, SumBytesOfAllOnesFoldsToFfff) {
    // The largest sums: every carry path taken.
    std::vector<uint8_t> buf(9000, 0xff);
    for (size_t len : {2u, 31u, 32u, 33u, 1500u, 9000u})
        EXPECT_EQ(proto::fold_sum(proto::sum_bytes(buf.data(), len)),
                  rte_raw_cksum(buf.data(), len));
}

TEST(Checksum, ReplaceMatchesRecomputation) {
    // RFC 1624: after changing one word, the incremental update equals a full recomputation.
    rte_ipv4_hdr ip{};
    ip.version_ihl = RTE_IPV4_VHL_DEF;
    ip.total_length = rte_cpu_to_be_16(84);
    ip.time_to_live = 1;
    ip.next_proto_id = 17;
    ip.src_addr = RTE_BE32(0xc6120001);
    ip.dst_addr = RTE_BE32(0xc6120002);
    ip.hdr_checksum = rte_ipv4_cksum(&ip);
    for (int ttl = 0; ttl < 256; ++ttl) {
        rte_ipv4_hdr copy = ip;
        const uint16_t old_word =
            rte_cpu_to_be_16(uint16_t(copy.time_to_live << 8 | copy.next_proto_id));
        copy.time_to_live = uint8_t(ttl);
        const uint16_t new_word = rte_cpu_to_be_16(uint16_t(ttl << 8 | copy.next_proto_id));
        copy.hdr_checksum = proto::checksum_replace16(copy.hdr_checksum, old_word, new_word);
        rte_ipv4_hdr zeroed = copy;
        zeroed.hdr_checksum = 0;
        EXPECT_EQ(copy.hdr_checksum, rte_ipv4_cksum(&zeroed)) << "ttl " << ttl;
        EXPECT_TRUE(proto::ipv4_header_ok(&copy, sizeof copy));
    }
}

// The header checksum summed from field values equals DPDK's over the stored header, for
// every TOS/TTL/protocol byte and a spread of lengths, identifiers and addresses.
TEST(Checksum, Ipv4HeaderChecksumOfValuesMatchesRteOverTheHeader) {
    uint32_t seed = 11;
    auto rnd = [&] { return seed = seed * 1103515245 + 12345; };
    for (int i = 0; i < 4096; ++i) {
        rte_ipv4_hdr ip{};
        ip.version_ihl = RTE_IPV4_VHL_DEF;
        ip.type_of_service = uint8_t(i);
        ip.total_length = rte_cpu_to_be_16(uint16_t(20 + rnd() % 65516));
        ip.packet_id = rte_cpu_to_be_16(uint16_t(rnd() >> 8));
        ip.fragment_offset = (i & 1) ? RTE_BE16(RTE_IPV4_HDR_DF_FLAG) : 0;
        ip.time_to_live = uint8_t(i >> 4);
        ip.next_proto_id = uint8_t(i * 7);
        ip.src_addr = i < 16 ? 0xffffffffu : rnd();  // all-ones: every carry taken
        ip.dst_addr = i < 16 ? 0xffffffffu : rnd();
        const uint16_t got = proto::ipv4_header_checksum_of(
            ip.version_ihl, ip.type_of_service, ip.total_length, ip.packet_id, ip.fragment_offset,
            ip.time_to_live, ip.next_proto_id, ip.src_addr, ip.dst_addr);
        ASSERT_EQ(got, rte_ipv4_cksum(&ip)) << "case " << i;
        ip.hdr_checksum = got;
        ASSERT_TRUE(proto::ipv4_header_ok(&ip, sizeof ip)) << "case " << i;
    }
}

// A TCP segment split over a chain at odd and even boundaries (what Tcp sends: a header
// mbuf, then indirect mbufs over the send queue): the chain checksum equals the checksum of
// the same bytes in one buffer. (DPDK 22.11's rte_ipv4_udptcp_cksum_mbuf disagrees with both
// when a segment boundary falls at an odd offset.)
TEST(Checksum, L4ChecksumOverAChainMatchesRteAtOddSplits) {
    uint32_t seed = 11;
    for (int round = 0; round < 200; ++round) {
        const uint32_t total = 20 + (seed = seed * 1103515245 + 12345) % 3000;
        std::vector<uint8_t> bytes(sizeof(rte_ipv4_hdr) + total);
        for (uint8_t& b : bytes) b = uint8_t((seed = seed * 1103515245 + 12345) >> 16);
        auto* ip = reinterpret_cast<rte_ipv4_hdr*>(bytes.data());
        ip->version_ihl = 0x45;
        ip->next_proto_id = IPPROTO_TCP;
        ip->total_length = rte_cpu_to_be_16(uint16_t(bytes.size()));
        // Cut the bytes after the IPv4 header into up to 5 pieces of random lengths.
        rte_mbuf* head = nullptr;
        rte_mbuf* tail = nullptr;
        size_t at = 0;
        while (at < bytes.size()) {
            size_t n = at == 0 ? sizeof(rte_ipv4_hdr) + 1 + (seed = seed * 1103515245 + 12345) % 40
                               : 1 + (seed = seed * 1103515245 + 12345) % 1500;
            n = std::min(n, bytes.size() - at);
            rte_mbuf* m = rte_pktmbuf_alloc(unit_pool());
            ASSERT_NE(m, nullptr);
            memcpy(rte_pktmbuf_append(m, uint16_t(n)), bytes.data() + at, n);
            if (tail) {
                tail->next = m;
                head->nb_segs++;
                head->pkt_len += uint32_t(n);
            } else {
                head = m;
            }
            tail = m;
            at += n;
        }
        const auto* hip = rte_pktmbuf_mtod(head, const rte_ipv4_hdr*);
        // The reference: the same bytes, contiguous.
        EXPECT_EQ(proto::l4_checksum_mbuf(head, hip, sizeof(rte_ipv4_hdr), uint16_t(total)),
                  proto::l4_checksum(ip, bytes.data() + sizeof(rte_ipv4_hdr), uint16_t(total)))
            << "round " << round;
        rte_pktmbuf_free(head);
    }
}

}  // namespace
}  // namespace sluice::test
