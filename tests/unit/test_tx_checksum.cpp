// pmd/tx_checksum.hpp: the software fallback of DPDK's TX checksum offload contract.
#include <cstring>

#include <rte_ip.h>
#include <rte_udp.h>

#include "pmd/tx_checksum.hpp"
#include "tests/unit/packet_builder.hpp"
#include "tests/unit/unit_env.hpp"

namespace sluice::test {
namespace {

constexpr uint32_t kSrc = ip(198, 18, 0, 2);
constexpr uint32_t kDst = ip(198, 18, 0, 1);
constexpr uint64_t kAllTx = RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_UDP_CKSUM;

class TxChecksum : public ::testing::Test {
  protected:
    void TearDown() override {
        for (rte_mbuf* m : mbufs_) rte_pktmbuf_free(m);
        EXPECT_TRUE(pool_full()) << "mbufs leaked";
    }
    // An Ethernet/IPv4/UDP frame following the offload contract: IP checksum 0, UDP checksum
    // field = the pseudo-header sum; segments of `seg` bytes when given.
    rte_mbuf* contract_frame(const Bytes& payload, size_t seg = 0, const Bytes& options = {},
                             uint64_t flags = kAllTx) {
        Ip4 h;
        h.src = kSrc;
        h.dst = kDst;
        h.options = options;
        h.checksum = 0;
        Bytes l4 = udp(kSrc, kDst, 1234, 5678, payload, {.checksum = 0});
        put16(&l4[6], fold(pseudo_sum(kSrc, kDst, kProtoUdp, uint16_t(l4.size()))));
        rte_mbuf* m = to_mbuf(
            unit_pool(),
            ether(mac(2, 0, 0, 0, 0, 1), mac(2, 0, 0, 0, 0, 2), kEthTypeIpv4, ipv4(h, l4)), 0, seg);
        EXPECT_NE(m, nullptr);
        m->l2_len = 14;
        m->l3_len = uint16_t(20 + options.size());
        m->ol_flags = flags;
        mbufs_.push_back(m);
        return m;
    }
    static Frame frame_of(const rte_mbuf* m) {
        Frame f;
        f.b = mbuf_bytes(m);
        f.ol_flags = m->ol_flags;
        return f;
    }
    std::vector<rte_mbuf*> mbufs_;
};

TEST_F(TxChecksum, SoftwareComputesIpAndUdpAndClearsFlags) {
    rte_mbuf* m = contract_frame(pattern(100, 1));
    EXPECT_EQ((pmd::finish_tx_checksums<false, false>(&m, 1)), 2u);
    const Frame f = frame_of(m);
    EXPECT_EQ(m->ol_flags & (RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_L4_MASK),
              0u);
    EXPECT_TRUE(valid_ipv4(f));
    EXPECT_NE(f.ip_checksum(), 0);
    EXPECT_TRUE(
        checksum_ok(f.l4(), f.l4_len(), pseudo_sum(kSrc, kDst, kProtoUdp, uint16_t(f.l4_len()))));
    EXPECT_EQ(f.udp_payload(), pattern(100, 1));
}

TEST_F(TxChecksum, SoftwareMatchesAnIndependentChecksum) {
    // Against the builder's own checksum, for many sizes (odd ones included).
    for (size_t n = 0; n < 64; ++n) {
        rte_mbuf* m = contract_frame(pattern(n, uint8_t(n)));
        pmd::finish_tx_checksums<false, false>(&m, 1);
        const Frame f = frame_of(m);
        Ip4 h;
        h.src = kSrc;
        h.dst = kDst;
        const Bytes want = ipv4(h, udp(kSrc, kDst, 1234, 5678, pattern(n, uint8_t(n))));
        EXPECT_TRUE(std::equal(want.begin(), want.end(), f.ip())) << "payload of " << n;
    }
}

TEST_F(TxChecksum, HardwareBothLeavesPacketsUntouched) {
    rte_mbuf* m = contract_frame(pattern(100, 2));
    const Bytes before = mbuf_bytes(m);
    EXPECT_EQ((pmd::finish_tx_checksums<true, true>(&m, 1)), 0u);
    EXPECT_EQ(mbuf_bytes(m), before);
    EXPECT_EQ(m->ol_flags, kAllTx);
}

TEST_F(TxChecksum, HardwareIpOnlyComputesUdp) {
    rte_mbuf* m = contract_frame(pattern(100, 3));
    EXPECT_EQ((pmd::finish_tx_checksums<true, false>(&m, 1)), 1u);
    const Frame f = frame_of(m);
    EXPECT_EQ(f.ip_checksum(), 0);  // left to the port
    EXPECT_EQ(m->ol_flags, RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM);
    EXPECT_TRUE(
        checksum_ok(f.l4(), f.l4_len(), pseudo_sum(kSrc, kDst, kProtoUdp, uint16_t(f.l4_len()))));
}

TEST_F(TxChecksum, HardwareL4OnlyComputesIp) {
    rte_mbuf* m = contract_frame(pattern(100, 4));
    const uint16_t pseudo = frame_of(m).udp_checksum();
    EXPECT_EQ((pmd::finish_tx_checksums<false, true>(&m, 1)), 1u);
    const Frame f = frame_of(m);
    EXPECT_TRUE(checksum_ok(f.ip(), f.ihl()));
    EXPECT_EQ(f.udp_checksum(), pseudo);  // left to the port
    EXPECT_EQ(m->ol_flags, RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_UDP_CKSUM);
}

TEST_F(TxChecksum, MultiSegmentChain) {
    rte_mbuf* m = contract_frame(pattern(3001, 5), 700);
    ASSERT_GE(m->nb_segs, 4);
    EXPECT_EQ((pmd::finish_tx_checksums<false, false>(&m, 1)), 2u);
    const Frame f = frame_of(m);
    EXPECT_TRUE(valid_ipv4(f));
    EXPECT_TRUE(
        checksum_ok(f.l4(), f.l4_len(), pseudo_sum(kSrc, kDst, kProtoUdp, uint16_t(f.l4_len()))));
    EXPECT_NE(f.udp_checksum(), 0);
    EXPECT_EQ(f.udp_payload(), pattern(3001, 5));
}

// net_tap (DPDK 22.11) gets L4 checksums of chains with odd-length segments wrong: for such
// ports chains are finished in software and single segments are left to the offload.
TEST_F(TxChecksum, ChainsInSoftwareSingleSegmentsOffloaded) {
    rte_mbuf* chain = contract_frame(pattern(3001, 7), 701);  // odd-length segments
    rte_mbuf* single = contract_frame(pattern(100, 8));
    ASSERT_GE(chain->nb_segs, 4);
    ASSERT_EQ(single->nb_segs, 1);
    const uint16_t pseudo = frame_of(single).udp_checksum();
    rte_mbuf* both[2] = {chain, single};
    EXPECT_EQ((pmd::finish_tx_checksums_chains_sw<true>(both, 2)), 1u);
    const Frame f = frame_of(chain);
    EXPECT_TRUE(
        checksum_ok(f.l4(), f.l4_len(), pseudo_sum(kSrc, kDst, kProtoUdp, uint16_t(f.l4_len()))));
    EXPECT_EQ(chain->ol_flags, RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM);  // IP: the port's
    EXPECT_EQ(single->ol_flags, kAllTx);                                      // all the port's
    EXPECT_EQ(frame_of(single).udp_checksum(), pseudo);
}

TEST_F(TxChecksum, IpOptionsCoveredByHeaderChecksum) {
    rte_mbuf* m = contract_frame(pattern(40, 6), 0, Bytes(8, 1));
    pmd::finish_tx_checksums<false, false>(&m, 1);
    const Frame f = frame_of(m);
    EXPECT_EQ(f.ihl(), 28);
    EXPECT_TRUE(valid_ipv4(f));
}

TEST_F(TxChecksum, BurstMixedFlags) {
    rte_mbuf* pkts[3] = {
        contract_frame(pattern(10, 7)),
        contract_frame(pattern(11, 8), 0, {}, RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM),
        contract_frame(pattern(12, 9), 0, {}, 0)};
    const Bytes untouched = mbuf_bytes(pkts[2]);
    EXPECT_EQ((pmd::finish_tx_checksums<false, false>(pkts, 3)), 3u);
    EXPECT_TRUE(valid_ipv4(frame_of(pkts[0])));
    const Frame ip_only = frame_of(pkts[1]);
    EXPECT_TRUE(checksum_ok(ip_only.ip(), ip_only.ihl()));
    EXPECT_EQ(pkts[1]->ol_flags, 0u);
    EXPECT_EQ(mbuf_bytes(pkts[2]), untouched);  // no request: not ours to touch
    EXPECT_EQ(pkts[2]->ol_flags, 0u);
}

}  // namespace
}  // namespace sluice::test
