// proto/checksum.hpp against DPDK's own checksum routines and RFC 1624.
#include <vector>

#include <gtest/gtest.h>
#include <rte_ip.h>

#include "proto/checksum.hpp"

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

}  // namespace
}  // namespace sluice::test
