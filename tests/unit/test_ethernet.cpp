// Ethernet input: which frames the stack accepts (RFC 894 framing).
#include "tests/unit/stack_fixture.hpp"

namespace sluice::test {
namespace {

using proto::Drop;

class Ethernet : public StackTest {};

TEST_F(Ethernet, FrameToOurMacAccepted) {
    rx(udp_frame(pattern(32)));
    ASSERT_EQ(app_.seen.size(), 1u);
    EXPECT_EQ(app_.seen[0].payload, pattern(32));
    expect_drops({});
    const auto out = transmit();
    ASSERT_EQ(out.size(), 1u);
    EXPECT_TRUE(valid_ipv4(out[0]));
    EXPECT_TRUE(same_mac(out[0].eth_dst(), kPeerMac));
    EXPECT_TRUE(same_mac(out[0].eth_src(), kOurMac));
    EXPECT_EQ(counters().rx_packets, 1u);
    EXPECT_EQ(counters().rx_bytes, 14u + 20 + 8 + 32);
}

TEST_F(Ethernet, BroadcastFrameAccepted) {
    const Ip4 h = peer_ip4();
    rx(ether(kBroadcastMac, kPeerMac, kEthTypeIpv4,
             ipv4(h, udp(h.src, h.dst, kPeerPort, kEchoPort, pattern(10)))));
    ASSERT_EQ(app_.seen.size(), 1u);
    expect_drops({});
    const auto out = transmit();
    ASSERT_EQ(out.size(), 1u);
    // The reply goes to the sender, from our own MAC (never from the broadcast address).
    EXPECT_TRUE(same_mac(out[0].eth_dst(), kPeerMac));
    EXPECT_TRUE(same_mac(out[0].eth_src(), kOurMac));
}

TEST_F(Ethernet, OtherUnicastMacDropped_eth_not_for_us) {
    const Ip4 h = peer_ip4();
    rx(ether(kOtherMac, kPeerMac, kEthTypeIpv4,
             ipv4(h, udp(h.src, h.dst, kPeerPort, kEchoPort, pattern(10)))));
    EXPECT_TRUE(app_.seen.empty());
    expect_drops({{Drop::eth_not_for_us, 1}});
    EXPECT_TRUE(transmit().empty());
}

TEST_F(Ethernet, MulticastMacDropped_eth_not_for_us) {
    const Ip4 h = peer_ip4();
    rx(ether(mac(0x01, 0x00, 0x5e, 0x00, 0x00, 0x01), kPeerMac, kEthTypeIpv4,
             ipv4(h, udp(h.src, h.dst, kPeerPort, kEchoPort, pattern(10)))));
    rx(ether(mac(0x33, 0x33, 0x00, 0x00, 0x00, 0x01), kPeerMac, kEthTypeIpv4,
             ipv4(h, udp(h.src, h.dst, kPeerPort, kEchoPort, pattern(10)))));
    EXPECT_TRUE(app_.seen.empty());
    expect_drops({{Drop::eth_not_for_us, 2}});
    EXPECT_TRUE(transmit().empty());
}

TEST_F(Ethernet, RuntFrameDropped_eth_runt) {
    const Bytes full = udp_frame(pattern(10));
    for (size_t len = 0; len < 14; ++len) rx(Bytes(full.begin(), full.begin() + long(len)));
    EXPECT_TRUE(app_.seen.empty());
    expect_drops({{Drop::eth_runt, 14}});
    EXPECT_EQ(counters().rx_packets, 14u);
    EXPECT_TRUE(transmit().empty());
}

TEST_F(Ethernet, UnknownEtherTypeDropped_eth_unknown_type) {
    rx(eth_from_peer(Bytes(46), kEthTypeIpv6));
    // An 802.1Q tag in front of IPv4: VLANs are not served.
    Bytes vlan = {0x00, 0x05, 0x08, 0x00};
    const Ip4 h = peer_ip4();
    const Bytes inner = ipv4(h, udp(h.src, h.dst, kPeerPort, kEchoPort, pattern(10)));
    vlan.insert(vlan.end(), inner.begin(), inner.end());
    rx(eth_from_peer(vlan, kEthTypeVlan));
    rx(eth_from_peer(Bytes(46), 0x88b5));  // local experimental
    EXPECT_TRUE(app_.seen.empty());
    expect_drops({{Drop::eth_unknown_type, 3}});
    EXPECT_TRUE(transmit().empty());
}

TEST_F(Ethernet, BurstOfMixedFramesEachEndsInOnePlace) {
    std::vector<Bytes> burst;
    for (int i = 0; i < 20; ++i) burst.push_back(udp_frame(pattern(16, uint8_t(i))));
    burst.push_back(eth_from_peer(Bytes(46), kEthTypeIpv6));
    burst.push_back(Bytes(10));
    rx_burst(burst);
    EXPECT_EQ(app_.seen.size(), 20u);
    for (int i = 0; i < 20; ++i) EXPECT_EQ(app_.seen[size_t(i)].payload, pattern(16, uint8_t(i)));
    expect_drops({{Drop::eth_unknown_type, 1}, {Drop::eth_runt, 1}});
    EXPECT_EQ(transmit().size(), 20u);
    EXPECT_EQ(counters().rx_packets, 22u);
    EXPECT_EQ(counters().tx_packets, 20u);
}

}  // namespace
}  // namespace sluice::test
