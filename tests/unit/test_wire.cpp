// pmd::Wire and pmd::Port: two ring-backed ports back to back.
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

#include <gtest/gtest.h>
#include <rte_ethdev.h>

#include "pmd/port.hpp"
#include "pmd/wire.hpp"
#include "tests/unit/packet_builder.hpp"
#include "tests/unit/unit_env.hpp"

namespace sluice::test {
namespace {

class Wire : public ::testing::Test {
  protected:
    void TearDown() override { EXPECT_TRUE(pool_full()) << "mbufs leaked"; }
    // Ring ports stay registered as vdevs after close: every wire needs a fresh name.
    static std::string fresh_name() {
        static unsigned n = 0;
        return "utw" + std::to_string(n++);
    }
};

// A UDP/IPv4 frame as the stack hands it to the port: both checksums requested (DPDK's TX
// offload contract: IP checksum 0, the pseudo-header sum in the UDP field).
rte_mbuf* udp_needing_checksums() {
    Ip4 h;
    h.src = ip(198, 18, 0, 2);
    h.dst = ip(198, 18, 0, 1);
    h.checksum = 0;
    Bytes l4 = udp(h.src, h.dst, 7, 7, pattern(50), {.checksum = 0});
    put16(&l4[6], fold(pseudo_sum(h.src, h.dst, kProtoUdp, uint16_t(l4.size()))));
    rte_mbuf* m = to_mbuf(unit_pool(), ether(mac(2, 0, 0, 0, 0, 1), mac(2, 0, 0, 0, 0, 2),
                                             kEthTypeIpv4, ipv4(h, l4)));
    if (!m) return nullptr;
    m->l2_len = 14;
    m->l3_len = 20;
    m->ol_flags = RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_UDP_CKSUM;
    return m;
}

TEST_F(Wire, BurstFromAArrivesOnB) {
    pmd::Wire w;
    ASSERT_EQ(w.open(fresh_name(), pmd::PortConfig{}, unit_pool()), 0);
    ASSERT_TRUE(w.a().is_open());
    ASSERT_TRUE(w.b().is_open());
    EXPECT_NE(w.a().id(), w.b().id());
    EXPECT_EQ(w.a().rx_queues(), 1);
    EXPECT_EQ(w.a().tx_queues(), 1);
    EXPECT_STREQ(w.a().driver(), "net_ring");

    constexpr uint16_t kN = 32;
    rte_mbuf* sent[kN];
    for (uint16_t i = 0; i < kN; ++i) {
        sent[i] = to_mbuf(unit_pool(), pattern(64 + i, uint8_t(i)));
        ASSERT_NE(sent[i], nullptr);
    }
    uint64_t sw = 0;
    ASSERT_EQ(w.a().tx(0, sent, kN, &sw), kN);
    EXPECT_EQ(sw, 0u);  // nothing requested

    rte_mbuf* got[64];
    EXPECT_EQ(w.a().rx(0, got, 64), 0);  // nothing comes back to the sender
    const uint16_t n = w.b().rx(0, got, 64);
    ASSERT_EQ(n, kN);
    for (uint16_t i = 0; i < n; ++i) {
        EXPECT_EQ(got[i], sent[i]) << "zero copy: the same mbuf";
        EXPECT_EQ(mbuf_bytes(got[i]), pattern(64 + i, uint8_t(i)));
    }
    rte_pktmbuf_free_bulk(got, n);
    EXPECT_EQ(w.b().rx(0, got, 64), 0);

    // And back, b to a.
    rte_mbuf* one = to_mbuf(unit_pool(), pattern(100));
    ASSERT_EQ(w.b().tx(0, &one, 1, &sw), 1);
    ASSERT_EQ(w.a().rx(0, got, 64), 1);
    EXPECT_EQ(got[0], one);
    rte_pktmbuf_free(got[0]);
    w.close();
    EXPECT_FALSE(w.a().is_open());
}

TEST_F(Wire, TxFinishesChecksumsInSoftware) {
    pmd::Wire w;
    ASSERT_EQ(w.open(fresh_name(), pmd::PortConfig{}, unit_pool()), 0);
    EXPECT_FALSE(w.a().offloads().tx_ip_cksum);  // the ring driver offloads nothing
    rte_mbuf* m = udp_needing_checksums();
    ASSERT_NE(m, nullptr);
    uint64_t sw = 0;
    ASSERT_EQ(w.a().tx(0, &m, 1, &sw), 1);
    EXPECT_EQ(sw, 2u);
    rte_mbuf* got = nullptr;
    ASSERT_EQ(w.b().rx(0, &got, 1), 1);
    Frame f;
    f.b = mbuf_bytes(got);
    f.ol_flags = got->ol_flags;
    EXPECT_TRUE(valid_ipv4(f));
    rte_pktmbuf_free(got);
}

// A trusted link (the in-memory wire as a loopback): nothing computed, the frame arrives
// marked verified, and the stack takes it as the port's verdict.
TEST_F(Wire, TrustedLinkHandsChecksumRequestsOverAsVerified) {
    pmd::Wire w;
    pmd::PortConfig pc;
    pc.trusted_link = true;
    ASSERT_EQ(w.open(fresh_name(), pc, unit_pool()), 0);
    EXPECT_FALSE(w.a().tx_copies()) << "net_ring hands the mbufs over";
    // The frame of TxFinishesChecksumsInSoftware, checksums requested from the port.
    rte_mbuf* m = udp_needing_checksums();
    ASSERT_NE(m, nullptr);
    uint64_t sw = 0;
    ASSERT_EQ(w.a().tx(0, &m, 1, &sw), 1);
    EXPECT_EQ(sw, 0u);
    rte_mbuf* got = nullptr;
    ASSERT_EQ(w.b().rx(0, &got, 1), 1);
    EXPECT_EQ(got->ol_flags, RTE_MBUF_F_RX_IP_CKSUM_GOOD | RTE_MBUF_F_RX_L4_CKSUM_GOOD);
    // Nothing was computed: the header checksum field is still 0.
    EXPECT_EQ(rte_pktmbuf_mtod_offset(got, rte_ipv4_hdr*, 14)->hdr_checksum, 0);
    // A frame that asked for nothing (its checksums already valid) carries no verdict.
    got->ol_flags = 0;
    ASSERT_EQ(w.b().tx(0, &got, 1, &sw), 1);
    ASSERT_EQ(w.a().rx(0, &m, 1), 1);
    EXPECT_EQ(m->ol_flags, 0u);
    // One whose sender computed the header checksum and asks only for L4 (what Tcp sends):
    // both verdicts.
    m->ol_flags = RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_UDP_CKSUM;
    ASSERT_EQ(w.a().tx(0, &m, 1, &sw), 1);
    ASSERT_EQ(w.b().rx(0, &got, 1), 1);
    EXPECT_EQ(got->ol_flags, RTE_MBUF_F_RX_IP_CKSUM_GOOD | RTE_MBUF_F_RX_L4_CKSUM_GOOD);
    rte_pktmbuf_free(got);
}

// The ring ports have no MTU setting (-ENOTSUP) but hand any mbuf chain over whole: a jumbo
// MTU is theirs to carry, and Port::mtu() says so (the stack sizes its segments by it).
TEST_F(Wire, CarriesAJumboMtu) {
    pmd::Wire w;
    pmd::PortConfig c;
    c.mtu = 9000;
    ASSERT_EQ(w.open(fresh_name(), c, unit_pool()), 0);
    EXPECT_EQ(w.a().mtu(), 9000);
    EXPECT_EQ(w.b().mtu(), 9000);
    // A 9018-byte frame outgrows one mbuf of the pool: scattered RX is asked for (net_ring has
    // it), and only then.
    auto scatter = [](const pmd::Port& p) {
        rte_eth_conf conf{};
        return rte_eth_dev_conf_get(p.id(), &conf) == 0 &&
               (conf.rxmode.offloads & RTE_ETH_RX_OFFLOAD_SCATTER) != 0;
    };
    EXPECT_TRUE(scatter(w.a()));
    const Bytes frame = pattern(9000 + 14, 7);
    rte_mbuf* m = to_mbuf(unit_pool(), frame);
    ASSERT_NE(m, nullptr);
    EXPECT_GT(m->nb_segs, 1) << "longer than one mbuf of the pool";
    uint64_t sw = 0;
    ASSERT_EQ(w.a().tx(0, &m, 1, &sw), 1);
    rte_mbuf* got = nullptr;
    ASSERT_EQ(w.b().rx(0, &got, 1), 1);
    EXPECT_EQ(mbuf_bytes(got), frame);
    rte_pktmbuf_free(got);

    pmd::Wire small;  // and a short one: always carried
    c.mtu = 1280;
    ASSERT_EQ(small.open(fresh_name(), c, unit_pool()), 0);
    EXPECT_EQ(small.a().mtu(), 1280);
    EXPECT_FALSE(scatter(small.a()));
}

// A port whose frames cannot grow to the wanted MTU keeps its own and says so, rather than
// have the stack send frames it drops. net_memif's frames stop at 1518 bytes in DPDK 22.11
// (max_rx_pktlen) and it has no MTU setting; a shorter MTU it carries as asked.
TEST_F(Wire, PortKeepsItsOwnMtuWhereTheWantedOneDoesNotFit) {
    static unsigned n = 0;
    for (const auto& [want, expect] : {std::pair<uint16_t, uint16_t>{9000, 1500}, {1280, 1280}}) {
        const std::string sock =
            "/tmp/sluice-unit-mtu-" + std::to_string(getpid()) + "-" + std::to_string(n) + ".sock";
        pmd::Port p;
        pmd::PortConfig c;
        c.mtu = want;
        const std::string dev =
            "net_memif" + std::to_string(100 + n++) + ",role=server,socket=" + sock;
        ASSERT_EQ(p.open(dev, c, unit_pool()), 0) << dev;
        EXPECT_STREQ(p.driver(), "net_memif");
        EXPECT_EQ(p.mtu(), expect) << "wanted " << want;
        p.close();
        unlink(sock.c_str());
    }
}

TEST_F(Wire, CloseReturnsInFlightMbufs) {
    pmd::Wire w;
    ASSERT_EQ(w.open(fresh_name(), pmd::PortConfig{}, unit_pool()), 0);
    rte_mbuf* pkts[8];
    for (rte_mbuf*& m : pkts) m = to_mbuf(unit_pool(), pattern(60));
    uint64_t sw = 0;
    ASSERT_EQ(w.a().tx(0, pkts, 8, &sw), 8);
    EXPECT_EQ(rte_mempool_in_use_count(unit_pool()), 8u);
    w.close();  // never received: the wire frees them
}

TEST_F(Wire, SeveralQueuesQueueToQueue) {
    // wire.hpp: "What one port transmits on queue q the other receives on queue q."
    pmd::Wire w;
    pmd::PortConfig c;
    c.rx_queues = c.tx_queues = 3;
    ASSERT_EQ(w.open(fresh_name(), c, unit_pool()), 0);
    EXPECT_EQ(w.a().tx_queues(), 3);
    ASSERT_EQ(w.b().rx_queues(), 3);
    uint64_t sw = 0;
    for (uint16_t q = 0; q < 3; ++q) {
        rte_mbuf* m = to_mbuf(unit_pool(), pattern(60, uint8_t(q)));
        ASSERT_EQ(w.a().tx(q, &m, 1, &sw), 1);
    }
    for (uint16_t q = 0; q < 3; ++q) {
        rte_mbuf* got = nullptr;
        ASSERT_EQ(w.b().rx(q, &got, 1), 1) << "queue " << q;
        EXPECT_EQ(mbuf_bytes(got), pattern(60, uint8_t(q))) << "queue " << q;
        rte_pktmbuf_free(got);
    }
}

TEST_F(Wire, SeveralQueuesNothingLost) {
    // Whatever the queue layout, every TX queue of a must reach some RX queue of b.
    pmd::Wire w;
    pmd::PortConfig c;
    c.rx_queues = c.tx_queues = 3;
    ASSERT_EQ(w.open(fresh_name(), c, unit_pool()), 0);
    uint64_t sw = 0;
    for (uint16_t q = 0; q < w.a().tx_queues(); ++q) {
        rte_mbuf* m = to_mbuf(unit_pool(), pattern(60, uint8_t(q)));
        ASSERT_EQ(w.a().tx(q, &m, 1, &sw), 1);
    }
    unsigned received = 0;
    for (uint16_t q = 0; q < w.b().rx_queues(); ++q) {
        rte_mbuf* got[8];
        const uint16_t n = w.b().rx(q, got, 8);
        received += n;
        rte_pktmbuf_free_bulk(got, n);
    }
    EXPECT_EQ(received, unsigned(w.a().tx_queues()));
}

}  // namespace
}  // namespace sluice::test
