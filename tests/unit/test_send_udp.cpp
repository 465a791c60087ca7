// Stack::send_udp: datagrams we originate. Headers built in the payload mbuf's headroom, the
// UDP checksum requested from the port per DPDK's TX offload contract (pseudo-header sum in
// the field, RFC 768), the next hop resolved through ARP, larger than the MTU -> fragmented
// with the checksum finished in software first.
#include "tests/unit/stack_fixture.hpp"

namespace sluice::test {
namespace {

using proto::Drop;

class SendUdp : public StackTest {
  protected:
    // Teaches the stack the peer's MAC (an ARP request for our address from the peer).
    void learn_peer() {
        rx(ether(kBroadcastMac, kPeerMac, kEthTypeArp,
                 arp(1, kPeerMac, kPeerIp, mac(0, 0, 0, 0, 0, 0), kOurIp)));
        ASSERT_EQ(transmit().size(), 1u);  // our ARP reply
    }
    rte_mbuf* payload_mbuf(const Bytes& payload, size_t seg_size = 0) {
        rte_mbuf* m = to_mbuf(unit_pool(), payload, 0, seg_size);
        EXPECT_NE(m, nullptr);
        return m;
    }
};

TEST_F(SendUdp, OffloadContractThenValidDatagram) {
    learn_peer();
    const Bytes data = pattern(100, 4);
    ASSERT_TRUE(stack().send_udp(payload_mbuf(data), rte_cpu_to_be_32(kPeerIp), 5353, 9999, now_));
    ASSERT_EQ(stack().tx().size(), 1u);
    // Before the TX stage: the flags ask for IP and UDP checksums, and the UDP field holds the
    // pseudo-header sum (not complemented) over src, dst, protocol 17 and the UDP length.
    rte_mbuf* m = stack().tx().data()[0];
    EXPECT_EQ(m->ol_flags & (RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_L4_MASK),
              RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_UDP_CKSUM);
    EXPECT_EQ(m->l2_len, 14u);
    EXPECT_EQ(m->l3_len, 20u);
    const Bytes raw = mbuf_bytes(m);
    EXPECT_EQ(get16(&raw[14 + 20 + 6]), fold(pseudo_sum(kOurIp, kPeerIp, kProtoUdp, 108)));
    // After it (software here): a well-formed datagram to the peer's MAC.
    const auto out = transmit();
    ASSERT_EQ(out.size(), 1u);
    const Frame& f = out[0];
    EXPECT_TRUE(same_mac(f.eth_dst(), kPeerMac));
    EXPECT_EQ(f.src(), kOurIp);
    EXPECT_EQ(f.dst(), kPeerIp);
    EXPECT_EQ(f.ttl(), cfg_.ttl);
    EXPECT_EQ(f.sport(), 5353);
    EXPECT_EQ(f.dport(), 9999);
    EXPECT_NE(f.udp_checksum(), 0);
    EXPECT_EQ(f.udp_payload(), data);
    expect_drops({});
}

TEST_F(SendUdp, UnresolvedPeerWaitsForArp) {
    const Bytes data = pattern(10, 5);
    ASSERT_TRUE(stack().send_udp(payload_mbuf(data), rte_cpu_to_be_32(kOtherIp), 1, 2, now_));
    auto out = transmit();
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].ether_type(), kEthTypeArp);
    rx(ether(kOurMac, kOtherMac, kEthTypeArp, arp(2, kOtherMac, kOtherIp, kOurMac, kOurIp)));
    out = transmit();
    ASSERT_EQ(out.size(), 1u);
    EXPECT_TRUE(same_mac(out[0].eth_dst(), kOtherMac));
    EXPECT_EQ(out[0].udp_payload(), data);
    expect_drops({});
}

TEST_F(SendUdp, LargerThanMtuLeavesFragmentedWithWholeChecksum) {
    learn_peer();
    const Bytes data = pattern(3000, 6);
    ASSERT_TRUE(
        stack().send_udp(payload_mbuf(data, 1024), rte_cpu_to_be_32(kPeerIp), 7000, 7001, now_));
    const auto out = transmit();
    ASSERT_EQ(out.size(), 3u);
    EXPECT_EQ(counters().ipv4_frags_out, 3u);
    Bytes header, payload;
    ASSERT_TRUE(reassemble(out, cfg_.mtu, header, payload));
    ASSERT_EQ(payload.size(), 8 + data.size());
    // The checksum in the first fragment covers the whole datagram.
    uint32_t sum = pseudo_sum(kOurIp, kPeerIp, kProtoUdp, uint16_t(payload.size()));
    EXPECT_EQ(checksum(payload.data(), payload.size(), sum), 0);
    EXPECT_EQ(Bytes(payload.begin() + 8, payload.end()), data);
    expect_drops({});
}

TEST_F(SendUdp, OffLinkWithoutGatewayDropped_ipv4_no_route) {
    ASSERT_TRUE(
        stack().send_udp(payload_mbuf(pattern(8)), rte_cpu_to_be_32(kRemoteIp), 1, 2, now_));
    EXPECT_TRUE(transmit().empty());
    expect_drops({{Drop::ipv4_no_route, 1}});
}

}  // namespace
}  // namespace sluice::test
