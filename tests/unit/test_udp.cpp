// UDP (RFC 768; RFC 1122 4.1.3) and ICMP port unreachable with its rate limit (RFC 1812
// 4.3.2.8).
#include "tests/unit/stack_fixture.hpp"

namespace sluice::test {
namespace {

using proto::Drop;

class Udp : public StackTest {
  protected:
    Bytes ip_udp(const Bytes& l4) const { return eth_from_peer(ipv4(peer_ip4(), l4)); }
    void expect_nothing_delivered() {
        EXPECT_TRUE(app_.seen.empty());
        EXPECT_TRUE(transmit().empty());
        EXPECT_EQ(counters().udp_delivered, 0u);
    }
    // `f` is a port unreachable for the IP packet `orig` (bytes from its IP header on).
    void expect_port_unreachable(const Frame& f, const Bytes& orig) {
        EXPECT_TRUE(valid_ipv4(f));  // IP and ICMP checksums
        EXPECT_TRUE(same_mac(f.eth_dst(), kPeerMac));
        EXPECT_TRUE(same_mac(f.eth_src(), kOurMac));
        EXPECT_EQ(f.src(), kOurIp);
        EXPECT_EQ(f.dst(), kPeerIp);
        EXPECT_EQ(f.proto(), kProtoIcmp);
        EXPECT_EQ(f.icmp_type(), 3);
        EXPECT_EQ(f.icmp_code(), 3);
        EXPECT_EQ(get32(f.l4() + 4), 0u);  // unused
        const Bytes quote = f.icmp_data();
        ASSERT_GE(quote.size(), 20u + 8) << "must quote the IP header and 8 bytes of data";
        ASSERT_LE(quote.size(), orig.size());
        EXPECT_TRUE(std::equal(quote.begin(), quote.end(), orig.begin()))
            << "the quote is not the original datagram";
        EXPECT_LE(f.total_length(), 576u);
    }
};

TEST_F(Udp, DeliveredToOpenPortByteIdentical) {
    const Bytes data = pattern(1000, 31);
    rx(udp_frame(data));
    ASSERT_EQ(app_.seen.size(), 1u);
    EXPECT_EQ(app_.seen[0].payload, data);
    EXPECT_EQ(app_.seen[0].sport, kPeerPort);
    EXPECT_EQ(app_.seen[0].dport, kEchoPort);
    EXPECT_FALSE(app_.seen[0].reassembled);
    EXPECT_EQ(counters().udp_in, 1u);
    EXPECT_EQ(counters().udp_delivered, 1u);
    expect_drops({});
}

TEST_F(Udp, ReflectSwapsAddressesAndPortsChecksumValid) {
    const Bytes data = pattern(333, 32);
    const Bytes frame = udp_frame(data);
    rx(frame);
    const auto out = transmit();
    ASSERT_EQ(out.size(), 1u);
    const Frame& f = out[0];
    EXPECT_TRUE(valid_ipv4(f));
    EXPECT_TRUE(same_mac(f.eth_dst(), kPeerMac));
    EXPECT_TRUE(same_mac(f.eth_src(), kOurMac));
    EXPECT_EQ(f.src(), kOurIp);
    EXPECT_EQ(f.dst(), kPeerIp);
    EXPECT_EQ(f.sport(), kEchoPort);
    EXPECT_EQ(f.dport(), kPeerPort);
    EXPECT_EQ(f.udp_length(), 8u + 333);
    EXPECT_NE(f.udp_checksum(), 0);
    EXPECT_TRUE(
        checksum_ok(f.l4(), f.l4_len(), pseudo_sum(f.src(), f.dst(), kProtoUdp, f.udp_length())));
    EXPECT_EQ(f.udp_payload(), data);
    EXPECT_EQ(f.size(), frame.size());
    EXPECT_EQ(counters().tx_packets, 1u);
}

TEST_F(Udp, ZeroChecksumAccepted) {
    rx(udp_frame(pattern(20), kEchoPort, nullptr, {.checksum = 0}));
    ASSERT_EQ(app_.seen.size(), 1u);
    EXPECT_EQ(counters().sw_rx_cksum, 1u);  // the IP header only
    expect_drops({});
    const auto out = transmit();
    ASSERT_EQ(out.size(), 1u);
    EXPECT_TRUE(valid_ipv4(out[0]));
    EXPECT_EQ(out[0].udp_payload(), pattern(20));
}

TEST_F(Udp, BadChecksumDetectedInSoftware_udp_bad_checksum) {
    rx(udp_frame(pattern(20), kEchoPort, nullptr, {.corrupt_checksum = true}),
       RTE_MBUF_F_RX_L4_CKSUM_UNKNOWN);
    rx(udp_frame(pattern(21), kEchoPort, nullptr, {.checksum = 0x1234}));
    expect_nothing_delivered();
    expect_drops({{Drop::udp_bad_checksum, 2}});
}

TEST_F(Udp, PortSaysL4ChecksumBadDropped_udp_bad_checksum) {
    rx(udp_frame(pattern(20)), RTE_MBUF_F_RX_IP_CKSUM_GOOD | RTE_MBUF_F_RX_L4_CKSUM_BAD);
    expect_nothing_delivered();
    expect_drops({{Drop::udp_bad_checksum, 1}});
    EXPECT_EQ(counters().sw_rx_cksum, 0u);
}

TEST_F(Udp, PortSaysL4ChecksumGoodTrusted) {
    rx(udp_frame(pattern(20), kEchoPort, nullptr, {.corrupt_checksum = true}),
       RTE_MBUF_F_RX_IP_CKSUM_GOOD | RTE_MBUF_F_RX_L4_CKSUM_GOOD);
    EXPECT_EQ(app_.seen.size(), 1u);
    EXPECT_EQ(counters().sw_rx_cksum, 0u);
    expect_drops({});
    // The echo carries the sender's (wrong) checksum on: reflecting never recomputes it.
    EXPECT_EQ(stack().tx().size(), 1u);
    stack().tx().free_all();
}

TEST_F(Udp, PortSaysL4ChecksumNoneAccepted) {
    // RTE_MBUF_F_RX_L4_CKSUM_NONE: "the L4 checksum is not correct in the packet data, but
    // the integrity of the L4 data is verified" (rte_mbuf_core.h). virtio sets it for
    // packets whose checksum field holds only the pseudo-header sum (NEEDS_CSUM).
    Bytes l4 = udp(kPeerIp, kOurIp, kPeerPort, kEchoPort, pattern(20), {.checksum = 0});
    put16(&l4[6], fold(pseudo_sum(kPeerIp, kOurIp, kProtoUdp, uint16_t(l4.size()))));
    rx(ip_udp(l4), RTE_MBUF_F_RX_IP_CKSUM_GOOD | RTE_MBUF_F_RX_L4_CKSUM_NONE);
    EXPECT_EQ(app_.seen.size(), 1u);
    expect_drops({});
    transmit();
}

TEST_F(Udp, LengthBelow8Dropped_udp_bad_length) {
    for (uint16_t len : {0, 1, 7})
        rx(ip_udp(udp(kPeerIp, kOurIp, kPeerPort, kEchoPort, pattern(16),
                      {.length = len, .checksum = 0})));
    expect_nothing_delivered();
    expect_drops({{Drop::udp_bad_length, 3}});
}

TEST_F(Udp, LengthBeyondIpPayloadDropped_udp_bad_length) {
    rx(ip_udp(udp(kPeerIp, kOurIp, kPeerPort, kEchoPort, pattern(16), {.length = 8 + 17})));
    rx(ip_udp(udp(kPeerIp, kOurIp, kPeerPort, kEchoPort, pattern(16),
                  {.length = 0xffff, .checksum = 0})));
    expect_nothing_delivered();
    expect_drops({{Drop::udp_bad_length, 2}});
}

TEST_F(Udp, LengthBelowIpPayloadTrimmed) {
    // A valid 10-byte datagram, then 14 bytes of IP payload past its end.
    Bytes l4 = udp(kPeerIp, kOurIp, kPeerPort, kEchoPort, pattern(2));
    const Bytes extra = pattern(14, 99);
    l4.insert(l4.end(), extra.begin(), extra.end());
    rx(ip_udp(l4));
    ASSERT_EQ(app_.seen.size(), 1u);
    EXPECT_EQ(app_.seen[0].payload, pattern(2));
    expect_drops({});
    const auto out = transmit();
    ASSERT_EQ(out.size(), 1u);
    EXPECT_TRUE(valid_ipv4(out[0]));
    EXPECT_EQ(out[0].total_length(), 20u + 10);
    EXPECT_EQ(out[0].udp_length(), 10u);
}

TEST_F(Udp, IpPayloadBelow8Dropped_udp_truncated) {
    const Bytes l4 = udp(kPeerIp, kOurIp, kPeerPort, kEchoPort, {});
    for (size_t n = 0; n < 8; ++n) rx(ip_udp(Bytes(l4.begin(), l4.begin() + long(n))));
    expect_nothing_delivered();
    expect_drops({{Drop::udp_truncated, 8}});
}

TEST_F(Udp, ClosedPortAnsweredPortUnreachable_udp_port_closed) {
    const Ip4 h = peer_ip4();
    const Bytes orig = ipv4(h, udp(h.src, h.dst, kPeerPort, kClosedPort, pattern(100, 33)));
    rx(eth_from_peer(orig));
    EXPECT_TRUE(app_.seen.empty());
    const auto out = transmit();
    ASSERT_EQ(out.size(), 1u);
    expect_port_unreachable(out[0], orig);
    EXPECT_EQ(out[0].icmp_data().size(), orig.size());  // it all fits in 576 bytes
    expect_drops({{Drop::udp_port_closed, 1}});
    EXPECT_EQ(counters().icmp_unreach_out, 1u);
    EXPECT_EQ(counters().udp_delivered, 0u);
}

TEST_F(Udp, NoPortUnreachableForLinkLayerBroadcast) {
    // RFC 1122 3.2.2: an ICMP error message MUST NOT be sent as the result of receiving a
    // datagram sent as a link-layer broadcast (also RFC 1812 4.3.2.7).
    const Ip4 h = peer_ip4();
    rx(ether(kBroadcastMac, kPeerMac, kEthTypeIpv4,
             ipv4(h, udp(h.src, h.dst, kPeerPort, kClosedPort, pattern(20)))));
    EXPECT_TRUE(transmit().empty());
    EXPECT_EQ(counters().icmp_unreach_out, 0u);
    EXPECT_EQ(dropped(Drop::udp_port_closed), 1u);
}

TEST_F(Udp, PortUnreachableQuoteFitsIn576) {
    const Ip4 h = peer_ip4();
    const Bytes orig = ipv4(h, udp(h.src, h.dst, kPeerPort, kClosedPort, pattern(1400, 34)));
    rx(eth_from_peer(orig));
    const auto out = transmit();
    ASSERT_EQ(out.size(), 1u);
    expect_port_unreachable(out[0], orig);
    EXPECT_EQ(out[0].total_length(), 576u);
}

TEST_F(Udp, PortUnreachableRateLimited_icmp_rate_limited) {
    proto::StackConfig c = default_config();
    c.icmp_burst = 5;
    c.icmp_rate_per_s = 1000;
    start(c);
    auto closed = [&](uint8_t k) {
        const Ip4 h = peer_ip4();
        return eth_from_peer(ipv4(h, udp(h.src, h.dst, kPeerPort, kClosedPort, pattern(10, k))));
    };
    // Frozen clock: the burst, then nothing.
    for (uint8_t k = 0; k < 6; ++k) rx(closed(k));
    EXPECT_EQ(transmit().size(), 5u);
    expect_drops({{Drop::udp_port_closed, 6}, {Drop::icmp_rate_limited, 1}});
    EXPECT_EQ(counters().icmp_unreach_out, 5u);
    // 1 ms at 1000/s brings back one token.
    now_ += ms(1);
    rx(closed(6));
    rx(closed(7));
    auto out = transmit();
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].icmp_type(), 3);
    expect_drops({{Drop::udp_port_closed, 8}, {Drop::icmp_rate_limited, 2}});
    // A long pause refills the bucket up to the burst, not beyond.
    now_ += sec(60);
    for (uint8_t k = 0; k < 8; ++k) rx(closed(k));
    EXPECT_EQ(transmit().size(), 5u);
    expect_drops({{Drop::udp_port_closed, 16}, {Drop::icmp_rate_limited, 5}});
    EXPECT_EQ(counters().icmp_unreach_out, 11u);
}

TEST_F(Udp, AppMayFreeTheDatagram) {
    app_.reflect = false;
    rx(udp_frame(pattern(64)));
    EXPECT_EQ(app_.seen.size(), 1u);
    EXPECT_TRUE(transmit().empty());
    expect_drops({});
}

}  // namespace
}  // namespace sluice::test
