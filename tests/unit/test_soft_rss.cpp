// engine/soft_rss: the symmetric software RSS of ports with fewer queues than workers.
#include <vector>

#include <gtest/gtest.h>

#include <cstring>

#include <rte_thash.h>

#include "engine/soft_rss.hpp"
#include "tests/unit/packet_builder.hpp"
#include "tests/unit/unit_env.hpp"

namespace sluice::test {
namespace {

constexpr rte_ether_addr kA = mac(2, 0, 0, 0, 0, 0xa);
constexpr rte_ether_addr kB = mac(2, 0, 0, 0, 0, 0xb);

class SoftRss : public ::testing::Test {
  protected:
    void SetUp() override { rss.init(4); }
    void TearDown() override {
        for (rte_mbuf* m : mbufs_) rte_pktmbuf_free(m);
        EXPECT_TRUE(pool_full());
    }
    rte_mbuf* keep(const Bytes& frame) {
        rte_mbuf* m = to_mbuf(unit_pool(), frame);
        EXPECT_NE(m, nullptr);
        mbufs_.push_back(m);
        return m;
    }
    rte_mbuf* udp_pkt(uint32_t src, uint32_t dst, uint16_t sp, uint16_t dp) {
        Ip4 h;
        h.src = src;
        h.dst = dst;
        return keep(ether(kB, kA, kEthTypeIpv4, ipv4(h, udp(src, dst, sp, dp, pattern(32)))));
    }
    std::vector<rte_mbuf*> fragments(uint32_t src, uint32_t dst, uint16_t sp, uint16_t dp,
                                     uint16_t id) {
        Ip4 h;
        h.src = src;
        h.dst = dst;
        h.id = id;
        std::vector<rte_mbuf*> v;
        for (const Bytes& f : ipv4_fragments(h, udp(src, dst, sp, dp, pattern(3000)), 1480))
            v.push_back(keep(ether(kB, kA, kEthTypeIpv4, f)));
        return v;
    }

    engine::SoftRss rss;
    std::vector<rte_mbuf*> mbufs_;
};

TEST_F(SoftRss, SymmetricForUdpFourTuples) {
    unsigned distinct = 0;
    uint32_t first = 0;
    for (uint32_t i = 0; i < 200; ++i) {
        const uint32_t a = ip(10, 0, uint8_t(i), uint8_t(i * 3 + 1));
        const uint32_t b = ip(192, 168, uint8_t(i * 7), 9);
        const uint16_t pa = uint16_t(1024 + i * 97), pb = uint16_t(53 + i);
        const uint32_t ab = rss.hash(udp_pkt(a, b, pa, pb));
        const uint32_t ba = rss.hash(udp_pkt(b, a, pb, pa));
        EXPECT_EQ(ab, ba) << ip_str(a) << ":" << pa << " <-> " << ip_str(b) << ":" << pb;
        EXPECT_EQ(rss.target(udp_pkt(a, b, pa, pb)), rss.target(udp_pkt(b, a, pb, pa)));
        if (i == 0) first = ab;
        distinct += ab != first;
    }
    EXPECT_GT(distinct, 150u);  // a hash, not a constant
}

TEST_F(SoftRss, PortsChangeTheHash) {
    const uint32_t a = ip(10, 0, 0, 1), b = ip(10, 0, 0, 2);
    EXPECT_NE(rss.hash(udp_pkt(a, b, 1000, 2000)), rss.hash(udp_pkt(a, b, 1001, 2000)));
}

TEST_F(SoftRss, SymmetricForFragments) {
    const uint32_t a = ip(10, 1, 2, 3), b = ip(172, 16, 5, 6);
    const auto ab = fragments(a, b, 4000, 53, 1);
    const auto ba = fragments(b, a, 53, 4000, 2);
    ASSERT_EQ(ab.size(), 3u);
    for (size_t i = 0; i < ab.size(); ++i) EXPECT_EQ(rss.hash(ab[i]), rss.hash(ba[i])) << i;
}

TEST_F(SoftRss, AllFragmentsOfADatagramMeetOnOneWorker) {
    // The first fragment carries the ports, the others do not: all hash on the addresses.
    for (uint16_t k = 0; k < 50; ++k) {
        const uint32_t a = ip(10, 9, uint8_t(k), 1), b = ip(10, 8, 7, uint8_t(k));
        const auto frags = fragments(a, b, uint16_t(2000 + k), 9, k);
        ASSERT_EQ(frags.size(), 3u);
        const uint32_t h0 = rss.hash(frags[0]);
        for (rte_mbuf* f : frags) {
            EXPECT_EQ(rss.hash(f), h0) << "datagram " << k;
            EXPECT_EQ(rss.target(f), rss.target(frags[0]));
        }
    }
}

TEST_F(SoftRss, TargetsSpreadOverWorkers) {
    unsigned per_worker[4] = {};
    constexpr unsigned kFlows = 1000;
    for (unsigned i = 0; i < kFlows; ++i) {
        const uint16_t t =
            rss.target(udp_pkt(ip(10, 0, 0, 1), ip(10, 0, 0, 2), uint16_t(10000 + i), 7));
        ASSERT_LT(t, 4);
        per_worker[t]++;
    }
    for (unsigned w = 0; w < 4; ++w) {
        EXPECT_GT(per_worker[w], kFlows / 8) << "worker " << w;
        EXPECT_LT(per_worker[w], kFlows / 2) << "worker " << w;
    }
    for (rte_mbuf* m : mbufs_) rte_pktmbuf_free(m);
    mbufs_.clear();
}

TEST_F(SoftRss, NonIpv4GoesToWorkerZero) {
    rte_mbuf* a = keep(ether(kB, kA, kEthTypeArp, Bytes(28)));
    rte_mbuf* v6 = keep(ether(kB, kA, kEthTypeIpv6, Bytes(60)));
    rte_mbuf* runt = keep(ether(kB, kA, kEthTypeIpv4, Bytes(10)));
    EXPECT_EQ(rss.hash(a), 0u);
    EXPECT_EQ(rss.hash(v6), 0u);
    EXPECT_EQ(rss.hash(runt), 0u);
    EXPECT_EQ(rss.target(a), 0);
}

}  // namespace
}  // namespace sluice::test

namespace sluice::test {
namespace {

// The Microsoft RSS specification's verification suite ("Verifying the RSS Hash
// Calculation"): its key, and IPv4 with TCP/UDP ports.
constexpr uint8_t kMsKey[40] = {0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67,
                                0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb,
                                0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30,
                                0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa};

TEST(SoftRssTable, MicrosoftVerificationVectors) {
    engine::SoftRss rss;
    rss.init(1, kMsKey);
    struct V {
        uint8_t src[4], dst[4];
        uint16_t sport, dport;
        uint32_t l3, l4;
    };
    const V vectors[] = {
        {{66, 9, 149, 187}, {161, 142, 100, 80}, 2794, 1766, 0x323e8fc2, 0x51ccc178},
        {{199, 92, 111, 2}, {65, 69, 140, 83}, 14230, 4739, 0xd718262a, 0xc626b0ea},
        {{24, 19, 198, 95}, {12, 22, 207, 184}, 12898, 38024, 0xd2d0a5de, 0x5c2b394a},
    };
    for (const V& v : vectors) {
        uint8_t in[12];
        memcpy(in, v.src, 4);
        memcpy(in + 4, v.dst, 4);
        in[8] = uint8_t(v.sport >> 8);
        in[9] = uint8_t(v.sport);
        in[10] = uint8_t(v.dport >> 8);
        in[11] = uint8_t(v.dport);
        EXPECT_EQ(rss.toeplitz(in, 8), v.l3);
        EXPECT_EQ(rss.toeplitz(in, 12), v.l4);
    }
}

TEST(SoftRssTable, AgreesWithRteSoftrss) {
    engine::SoftRss rss;
    rss.init(1);
    uint32_t seed = 12345;
    for (int i = 0; i < 1000; ++i) {
        uint8_t in[12];
        for (uint8_t& b : in) b = uint8_t((seed = seed * 1103515245 + 12345) >> 16);
        // rte_softrss takes the tuple as host-order 32-bit words.
        uint32_t words[3];
        for (int w = 0; w < 3; ++w)
            words[w] = uint32_t(in[4 * w]) << 24 | uint32_t(in[4 * w + 1]) << 16 |
                       uint32_t(in[4 * w + 2]) << 8 | in[4 * w + 3];
        ASSERT_EQ(rss.toeplitz(in, 12), rte_softrss(words, 3, pmd::kSymmetricRssKey)) << i;
        ASSERT_EQ(rss.toeplitz(in, 8), rte_softrss(words, 2, pmd::kSymmetricRssKey)) << i;
    }
}

}  // namespace
}  // namespace sluice::test

namespace sluice::test {
namespace {

// The per-packet hash (the XOR-folded form, for the symmetric key) equals rte_softrss over
// the same tuple: 4-tuple for whole UDP datagrams, addresses only for fragments.
TEST_F(SoftRss, PacketHashEqualsRteSoftrss) {
    uint32_t seed = 99;
    auto rnd = [&] { return seed = seed * 1103515245 + 12345; };
    for (int i = 0; i < 200; ++i) {
        const uint32_t src = rnd(), dst = rnd();
        const uint16_t sp = uint16_t(rnd() >> 8), dp = uint16_t(rnd() >> 8);
        uint32_t words[3] = {src, dst, uint32_t(sp) << 16 | dp};
        ASSERT_EQ(rss.hash(udp_pkt(src, dst, sp, dp)),
                  rte_softrss(words, 3, pmd::kSymmetricRssKey));
        for (rte_mbuf* f : fragments(src, dst, sp, dp, uint16_t(i)))
            ASSERT_EQ(rss.hash(f), rte_softrss(words, 2, pmd::kSymmetricRssKey));
    }
}

}  // namespace
}  // namespace sluice::test
