// IPv4 input validation (RFC 791 3.1, RFC 1122 3.2.1).
#include "tests/unit/stack_fixture.hpp"

namespace sluice::test {
namespace {

using proto::Drop;

class Ipv4 : public StackTest {
  protected:
    Bytes frame_with(const Ip4& h, const Bytes& payload = pattern(18)) {
        return eth_from_peer(ipv4(h, udp(h.src, h.dst, kPeerPort, kEchoPort, payload)));
    }
    // Exactly one echo of `payload` went out, well formed, to the peer.
    void expect_echo(const Bytes& payload) {
        const auto out = transmit();
        ASSERT_EQ(out.size(), 1u);
        const Frame& f = out[0];
        EXPECT_TRUE(valid_ipv4(f));
        EXPECT_EQ(f.src(), kOurIp);
        EXPECT_EQ(f.dst(), kPeerIp);
        EXPECT_EQ(f.sport(), kEchoPort);
        EXPECT_EQ(f.dport(), kPeerPort);
        EXPECT_EQ(f.udp_payload(), payload);
        EXPECT_EQ(f.total_length(), f.ihl() + 8 + payload.size());
        EXPECT_TRUE(same_mac(f.eth_dst(), kPeerMac));
    }
    void expect_nothing_delivered() {
        EXPECT_TRUE(app_.seen.empty());
        EXPECT_TRUE(transmit().empty());
    }
};

TEST_F(Ipv4, TruncatedAtEveryHeaderBoundary_ipv4_truncated) {
    const Bytes full = frame_with(peer_ip4());
    for (size_t n = 0; n < 20; ++n) rx(Bytes(full.begin(), full.begin() + long(14 + n)));
    expect_nothing_delivered();
    expect_drops({{Drop::ipv4_truncated, 20}});
    EXPECT_EQ(counters().ipv4_in, 0u);
}

TEST_F(Ipv4, OptionsBeyondTheFrame_ipv4_truncated) {
    // IHL says 60 bytes, the frame holds 14 + 40.
    Ip4 h = peer_ip4();
    h.ihl = 15;
    Bytes f = frame_with(h);
    f.resize(14 + 40);
    rx(f);
    expect_nothing_delivered();
    expect_drops({{Drop::ipv4_truncated, 1}});
}

TEST_F(Ipv4, VersionNot4Dropped_ipv4_bad_version) {
    for (uint8_t v : {0, 5, 6, 15}) {
        Ip4 h = peer_ip4();
        h.version = v;
        rx(frame_with(h));
    }
    expect_nothing_delivered();
    expect_drops({{Drop::ipv4_bad_version, 4}});
}

TEST_F(Ipv4, IhlBelow5Dropped_ipv4_bad_ihl) {
    for (uint8_t ihl = 0; ihl < 5; ++ihl) {
        Ip4 h = peer_ip4();
        h.ihl = ihl;
        rx(frame_with(h));
    }
    expect_nothing_delivered();
    expect_drops({{Drop::ipv4_bad_ihl, 5}});
}

TEST_F(Ipv4, TotalLengthBeyondFrameDropped_ipv4_bad_total_length) {
    Ip4 h = peer_ip4();
    h.total_length = 20 + 8 + 18 + 1;
    rx(frame_with(h));
    h.total_length = 0xffff;
    rx(frame_with(h));
    expect_nothing_delivered();
    expect_drops({{Drop::ipv4_bad_total_length, 2}});
}

TEST_F(Ipv4, TotalLengthBelowIhlDropped_ipv4_bad_total_length) {
    Ip4 h = peer_ip4();
    h.total_length = 19;
    rx(frame_with(h));
    h.total_length = 0;
    rx(frame_with(h));
    h.options = Bytes(8, 1);  // IHL 7 = 28 bytes
    h.total_length = 24;
    rx(frame_with(h));
    expect_nothing_delivered();
    expect_drops({{Drop::ipv4_bad_total_length, 3}});
}

TEST_F(Ipv4, BadHeaderChecksumDetectedInSoftware_ipv4_bad_checksum) {
    Ip4 h = peer_ip4();
    h.corrupt_checksum = true;
    rx(frame_with(h), RTE_MBUF_F_RX_IP_CKSUM_UNKNOWN);
    h.corrupt_checksum = false;
    h.checksum = 0;  // "not computed" does not exist in IPv4
    rx(frame_with(h), RTE_MBUF_F_RX_IP_CKSUM_UNKNOWN);
    expect_nothing_delivered();
    expect_drops({{Drop::ipv4_bad_checksum, 2}});
    EXPECT_EQ(counters().sw_rx_cksum, 2u);
}

TEST_F(Ipv4, PortSaysChecksumBadDroppedWithoutSoftware_ipv4_bad_checksum) {
    // The header is correct; the port's verdict is what counts.
    rx(frame_with(peer_ip4()), RTE_MBUF_F_RX_IP_CKSUM_BAD);
    expect_nothing_delivered();
    expect_drops({{Drop::ipv4_bad_checksum, 1}});
    EXPECT_EQ(counters().sw_rx_cksum, 0u);
}

TEST_F(Ipv4, PortSaysChecksumGoodTrusted) {
    // The port's verdict is trusted: a wrong field under GOOD is not checked again. (A real
    // port says GOOD only when the field is right; replies then update it incrementally.)
    Ip4 h = peer_ip4();
    h.corrupt_checksum = true;
    app_.reflect = false;
    rx(frame_with(h), RTE_MBUF_F_RX_IP_CKSUM_GOOD | RTE_MBUF_F_RX_L4_CKSUM_GOOD);
    ASSERT_EQ(app_.seen.size(), 1u);
    EXPECT_EQ(counters().sw_rx_cksum, 0u);
    expect_drops({});
}

TEST_F(Ipv4, ReplyChecksumUpdatedIncrementallyForTtl) {
    // TTL 1 in, our TTL out: the reply needs no TX checksum work, and its header checksum
    // (updated per RFC 1624) is right.
    Ip4 h = peer_ip4();
    h.ttl = 1;
    rx(frame_with(h), RTE_MBUF_F_RX_IP_CKSUM_GOOD | RTE_MBUF_F_RX_L4_CKSUM_GOOD);
    ASSERT_EQ(stack().tx().size(), 1u);
    EXPECT_EQ(stack().tx().data()[0]->ol_flags & RTE_MBUF_F_TX_IP_CKSUM, 0u);
    const auto out = transmit();
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].ttl(), cfg_.ttl);
    EXPECT_TRUE(valid_ipv4(out[0]));
}

TEST_F(Ipv4, GoodChecksumAcceptedInSoftware) {
    rx(frame_with(peer_ip4()), RTE_MBUF_F_RX_IP_CKSUM_UNKNOWN);
    ASSERT_EQ(app_.seen.size(), 1u);
    EXPECT_EQ(counters().sw_rx_cksum, 2u);  // IP header and UDP
    expect_drops({});
    expect_echo(pattern(18));
}

TEST_F(Ipv4, PortSaysChecksumNoneAccepted) {
    // RTE_MBUF_F_RX_IP_CKSUM_NONE: "the IP checksum is not correct in the packet data, but
    // the integrity of the IP header is verified" (rte_mbuf_core.h): accept, do not verify.
    Ip4 h = peer_ip4();
    h.checksum = 0;
    rx(frame_with(h), RTE_MBUF_F_RX_IP_CKSUM_NONE);
    EXPECT_EQ(app_.seen.size(), 1u);
    expect_drops({});
    transmit();
}

TEST_F(Ipv4, TtlZeroDropped_ipv4_ttl_zero) {
    Ip4 h = peer_ip4();
    h.ttl = 0;
    rx(frame_with(h));
    expect_nothing_delivered();
    expect_drops({{Drop::ipv4_ttl_zero, 1}});
}

TEST_F(Ipv4, TtlOneAccepted) {
    // RFC 1122 3.2.1.7: a host must not discard a datagram for a TTL below 2.
    Ip4 h = peer_ip4();
    h.ttl = 1;
    rx(frame_with(h));
    ASSERT_EQ(app_.seen.size(), 1u);
    expect_drops({});
    const auto out = transmit();
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].ttl(), cfg_.ttl);  // the reply carries our TTL, not the sender's
    EXPECT_TRUE(valid_ipv4(out[0]));
}

TEST_F(Ipv4, NonUnicastSourceDropped_ipv4_bad_src) {
    for (uint32_t src : {ip(0, 0, 0, 0), ip(255, 255, 255, 255), ip(224, 0, 0, 1), ip(239, 1, 2, 3),
                         ip(198, 18, 0, 255)}) {
        Ip4 h = peer_ip4();
        h.src = src;
        rx(frame_with(h));
    }
    expect_nothing_delivered();
    expect_drops({{Drop::ipv4_bad_src, 5}});
}

TEST_F(Ipv4, LoopbackSourceDropped_ipv4_bad_src) {
    // RFC 1122 3.2.1.3 (g): {127, <any>} MUST NOT appear outside a host, and a host MUST
    // silently discard a datagram whose source is invalid by the rules of that section.
    for (uint32_t src : {ip(127, 0, 0, 1), ip(127, 1, 2, 3)}) {
        Ip4 h = peer_ip4();
        h.src = src;
        rx(frame_with(h));
    }
    expect_nothing_delivered();
    expect_drops({{Drop::ipv4_bad_src, 2}});
}

TEST_F(Ipv4, OtherUnicastDestinationDropped_ipv4_not_for_us) {
    for (uint32_t dst : {kOtherIp, kRemoteIp, ip(198, 18, 1, 2)}) {
        Ip4 h = peer_ip4();
        h.dst = dst;
        rx(frame_with(h));
    }
    expect_nothing_delivered();
    expect_drops({{Drop::ipv4_not_for_us, 3}});
}

TEST_F(Ipv4, BroadcastOrMulticastDestinationDropped_ipv4_broadcast) {
    for (uint32_t dst :
         {ip(255, 255, 255, 255), ip(198, 18, 0, 255), ip(224, 0, 0, 1), ip(239, 255, 255, 250)}) {
        Ip4 h = peer_ip4();
        h.dst = dst;
        const Bytes l3 = ipv4(h, udp(h.src, h.dst, kPeerPort, kEchoPort, pattern(18)));
        rx(ether(kBroadcastMac, kPeerMac, kEthTypeIpv4, l3));
    }
    expect_nothing_delivered();
    expect_drops({{Drop::ipv4_broadcast, 4}});
}

TEST_F(Ipv4, UnknownProtocolDropped_ipv4_unknown_proto) {
    for (uint8_t proto : {uint8_t(47), uint8_t(6), uint8_t(58), uint8_t(253)}) {
        Ip4 h = peer_ip4(proto);
        rx(eth_from_peer(ipv4(h, pattern(24))));
    }
    expect_nothing_delivered();
    expect_drops({{Drop::ipv4_unknown_proto, 4}});
    EXPECT_EQ(counters().ipv4_in, 4u);
}

TEST_F(Ipv4, OptionsAcceptedAndPayloadFoundAfterThem) {
    for (uint8_t ihl = 6; ihl <= 15; ++ihl) {
        Ip4 h = peer_ip4();
        h.options = Bytes(size_t(ihl - 5) * 4, 0x01);  // NOPs
        h.options.back() = 0x00;                       // EOL
        const Bytes payload = pattern(25, ihl);
        h.id = ihl;
        rx(frame_with(h, payload));
        ASSERT_EQ(app_.seen.size(), size_t(ihl - 5)) << "IHL " << int(ihl);
        EXPECT_EQ(app_.seen.back().payload, payload) << "IHL " << int(ihl);
        EXPECT_EQ(app_.seen.back().dport, kEchoPort);
        const auto out = transmit();
        ASSERT_EQ(out.size(), 1u);
        EXPECT_TRUE(valid_ipv4(out[0])) << "IHL " << int(ihl);
        EXPECT_EQ(out[0].udp_payload(), payload);
        EXPECT_EQ(out[0].total_length(), ihl * 4 + 8 + payload.size());
    }
    expect_drops({});
}

TEST_F(Ipv4, EthernetPaddingTrimmed) {
    // 14 + 20 + 8 + 2 = 44 bytes of frame, padded to the 60-byte minimum with junk.
    Bytes f = frame_with(peer_ip4(), Bytes{0xab, 0xcd});
    f.resize(60, 0xee);
    rx(f);
    ASSERT_EQ(app_.seen.size(), 1u);
    EXPECT_EQ(app_.seen[0].payload, (Bytes{0xab, 0xcd}));
    expect_drops({});
    const auto out = transmit();
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].size(), 44u);
    EXPECT_EQ(out[0].total_length(), 30u);
    EXPECT_TRUE(valid_ipv4(out[0]));
}

TEST_F(Ipv4, EthernetPaddingTrimmedBeforeIcmp) {
    // The ICMP checksum covers the IP payload only, never the link-layer padding.
    const Bytes msg = icmp_echo_request(0x0101, 1, Bytes{1, 2, 3, 4});  // 14 + 20 + 12 = 46
    Bytes f = eth_from_peer(ipv4(peer_ip4(kProtoIcmp), msg));
    f.resize(60, 0xee);
    rx(f);
    expect_drops({});
    const auto out = transmit();
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].size(), 46u);
    EXPECT_EQ(out[0].icmp_type(), 0);
    EXPECT_EQ(out[0].icmp_data(), (Bytes{1, 2, 3, 4}));
}

}  // namespace
}  // namespace sluice::test
