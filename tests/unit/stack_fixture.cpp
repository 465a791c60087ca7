#include "tests/unit/stack_fixture.hpp"

#include <cstring>

#include "pmd/tx_checksum.hpp"

namespace sluice::test {

proto::StackConfig default_config() {
    proto::StackConfig c;
    c.mac = kOurMac;
    c.ip = rte_cpu_to_be_32(kOurIp);
    c.prefix_len = 24;
    c.gateway = 0;
    c.mtu = 1500;
    c.ttl = 64;
    c.tsc_hz = kHz;
    return c;
}

void StackTest::SetUp() {
    ASSERT_TRUE(pool_full()) << "the pool is not full before the test: an earlier test leaked";
    start(default_config());
}

void StackTest::start(const proto::StackConfig& c) {
    cfg_ = c;
    stack_.reset();
    stack_ = std::make_unique<proto::Stack>();
    ASSERT_TRUE(stack_->init(cfg_, unit_pool(), int(rte_socket_id())));
}

void StackTest::TearDown() {
    stack_.reset();  // frees held fragments, ARP-pending packets and the TX batch
    rte_mempool* p = unit_pool();
    EXPECT_EQ(rte_mempool_in_use_count(p), 0u) << "mbufs leaked";
    EXPECT_EQ(rte_mempool_avail_count(p), p->size) << "mbufs leaked";
}

void StackTest::rx(const Bytes& frame, uint64_t ol_flags) {
    rx_burst({frame}, ol_flags);
}

void StackTest::rx_burst(const std::vector<Bytes>& frames, uint64_t ol_flags) {
    std::vector<rte_mbuf*> pkts;
    for (const Bytes& f : frames) {
        rte_mbuf* m = to_mbuf(unit_pool(), f, ol_flags);
        ASSERT_NE(m, nullptr);
        pkts.push_back(m);
    }
    rx_mbufs(std::move(pkts));
}

void StackTest::rx_mbufs(std::vector<rte_mbuf*> pkts) {
    stack_->input(pkts.data(), uint16_t(pkts.size()), now_, app_);
}

std::vector<Frame> StackTest::transmit() {
    proto::TxBatch& tx = stack_->tx();
    pmd::finish_tx_checksums<false, false>(tx.data(), tx.size());
    std::vector<Frame> out;
    for (uint16_t i = 0; i < tx.size(); ++i) {
        rte_mbuf* m = tx.data()[i];
        Frame f;
        f.b = mbuf_bytes(m);
        f.ol_flags = m->ol_flags;
        f.nb_segs = m->nb_segs;
        EXPECT_EQ(size_t(m->pkt_len), f.b.size()) << "pkt_len disagrees with the segments";
        // Whatever leaves is well formed and comes from us.
        EXPECT_GE(f.size(), 14u + 28);
        if (f.size() >= 14) {
            EXPECT_TRUE(same_mac(f.eth_src(), cfg_.mac))
                << "frame " << i << " from " << mac_str(f.eth_src());
            if (f.ether_type() == kEthTypeIpv4) {
                EXPECT_TRUE(valid_ipv4(f)) << "frame " << i;
            } else if (f.ether_type() == kEthTypeArp && f.size() >= 42) {
                EXPECT_EQ(f.arp_htype(), 1);
                EXPECT_EQ(f.arp_ptype(), kEthTypeIpv4);
                EXPECT_TRUE(same_mac(f.arp_sha(), cfg_.mac));
                EXPECT_EQ(f.arp_spa(), rte_be_to_cpu_32(cfg_.ip));
            } else {
                ADD_FAILURE() << "frame " << i << " of EtherType " << hex(f.ether_type());
            }
        }
        out.push_back(std::move(f));
    }
    tx.free_all();
    return out;
}

void StackTest::expect_drops(std::initializer_list<std::pair<proto::Drop, uint64_t>> expected) {
    uint64_t want[proto::kDropCount] = {};
    for (const auto& [d, n] : expected) want[unsigned(d)] += n;
    for (unsigned i = 0; i < proto::kDropCount; ++i)
        EXPECT_EQ(counters().drops[i], want[i]) << "drop reason " << proto::kDropNames[i];
}

Ip4 StackTest::peer_ip4(uint8_t proto) const {
    Ip4 h;
    h.src = kPeerIp;
    h.dst = kOurIp;
    h.proto = proto;
    return h;
}

Bytes StackTest::udp_frame(const Bytes& payload, uint16_t dport, const Ip4* ip_over,
                           const UdpOpts& uo) const {
    const Ip4 h = ip_over ? *ip_over : peer_ip4();
    return eth_from_peer(ipv4(h, udp(h.src, h.dst, kPeerPort, dport, payload, uo)));
}

rte_mbuf* StackTest::make_outgoing_udp(uint32_t dst, const Bytes& payload, uint16_t dport) {
    Ip4 h;
    h.src = kOurIp;
    h.dst = dst;
    h.id = 0x0777;
    h.checksum = 0;  // finished by the TX stage
    Bytes l4 = udp(kOurIp, dst, 5000, dport, payload, {.checksum = 0});
    // Offload contract: the pseudo-header sum, not complemented.
    put16(&l4[6], fold(pseudo_sum(kOurIp, dst, kProtoUdp, uint16_t(l4.size()))));
    Bytes frame = ether(mac(0, 0, 0, 0, 0, 0), mac(0, 0, 0, 0, 0, 0), 0, ipv4(h, l4));
    rte_mbuf* m = to_mbuf(unit_pool(), frame);
    if (m) {
        m->l2_len = 14;
        m->l3_len = 20;
        m->ol_flags = RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_UDP_CKSUM;
    }
    return m;
}

}  // namespace sluice::test
