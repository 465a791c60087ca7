// IPv4 reassembly of what we receive and fragmentation of what we send (RFC 791 3.2,
// RFC 1122 3.3.2).
#include <algorithm>

#include "tests/unit/stack_fixture.hpp"

namespace sluice::test {
namespace {

using proto::Drop;

constexpr size_t kFragPayload = 1480;  // the most a 1500-byte MTU carries, a multiple of 8

class Fragments : public StackTest {
  protected:
    // A UDP datagram from the peer to the echo port, as IP payload (header + data).
    Bytes udp_l4(const Bytes& data) const {
        return udp(kPeerIp, kOurIp, kPeerPort, kEchoPort, data);
    }
    Ip4 frag_ip(uint16_t id, uint8_t proto = kProtoUdp) const {
        Ip4 h = peer_ip4(proto);
        h.id = id;
        return h;
    }
    std::vector<Bytes> frames_of(const std::vector<Bytes>& ip_packets) const {
        std::vector<Bytes> v;
        for (const Bytes& p : ip_packets) v.push_back(eth_from_peer(p));
        return v;
    }
    // The echo of the datagram left in fragments that reassemble to `l4`, reflected.
    void expect_fragmented_udp_echo(const Bytes& data) {
        const auto out = transmit();
        ASSERT_GE(out.size(), 2u) << "the echo should leave in fragments";
        for (const Frame& f : out) {
            EXPECT_TRUE(same_mac(f.eth_dst(), kPeerMac));
            EXPECT_TRUE(same_mac(f.eth_src(), kOurMac));
            EXPECT_EQ(f.src(), kOurIp);
            EXPECT_EQ(f.dst(), kPeerIp);
            EXPECT_FALSE(f.df());
        }
        Bytes hdr, l4;
        ASSERT_TRUE(reassemble(out, cfg_.mtu, hdr, l4));
        ASSERT_GE(l4.size(), 8u);
        EXPECT_EQ(get16(&l4[0]), kEchoPort);
        EXPECT_EQ(get16(&l4[2]), kPeerPort);
        EXPECT_EQ(get16(&l4[4]), l4.size());
        EXPECT_TRUE(checksum_ok(l4.data(), l4.size(),
                                pseudo_sum(kOurIp, kPeerIp, kProtoUdp, uint16_t(l4.size()))))
            << "bad UDP checksum over the reassembled echo";
        EXPECT_EQ(Bytes(l4.begin() + 8, l4.end()), data);
        EXPECT_EQ(counters().ipv4_frags_out, out.size());
    }
    void expect_delivered_once(const Bytes& data) {
        ASSERT_EQ(app_.seen.size(), 1u);
        EXPECT_TRUE(app_.seen[0].reassembled);
        EXPECT_GT(app_.seen[0].nb_segs, 1);
        EXPECT_EQ(app_.seen[0].payload.size(), data.size());
        EXPECT_TRUE(app_.seen[0].payload == data) << "payload differs after reassembly";
        EXPECT_EQ(counters().ipv4_reassembled, 1u);
    }
};

TEST_F(Fragments, InOrderReassembledAndEchoFragmented) {
    const Bytes data = pattern(4000, 3);
    const auto frags = ipv4_fragments(frag_ip(0x1001), udp_l4(data), kFragPayload);
    ASSERT_EQ(frags.size(), 3u);
    rx_burst(frames_of(frags));
    expect_delivered_once(data);
    EXPECT_EQ(counters().ipv4_frags_in, 3u);
    expect_drops({});
    expect_fragmented_udp_echo(data);
}

TEST_F(Fragments, OneFragmentPerBurstReassembled) {
    const Bytes data = pattern(3000, 4);
    const auto frags = ipv4_fragments(frag_ip(0x1002), udp_l4(data), kFragPayload);
    for (const Bytes& f : frags) {
        now_ += ms(1);
        rx(eth_from_peer(f));
    }
    expect_delivered_once(data);
    expect_drops({});
    expect_fragmented_udp_echo(data);
}

TEST_F(Fragments, ReverseOrderReassembled) {
    const Bytes data = pattern(4000, 5);
    auto frags = ipv4_fragments(frag_ip(0x1003), udp_l4(data), kFragPayload);
    std::reverse(frags.begin(), frags.end());
    rx_burst(frames_of(frags));
    expect_delivered_once(data);
    expect_drops({});
    expect_fragmented_udp_echo(data);
}

TEST_F(Fragments, DuplicateMiddleFragmentReassembledOnce) {
    const Bytes data = pattern(4000, 6);
    const auto frags = ipv4_fragments(frag_ip(0x1004), udp_l4(data), kFragPayload);
    ASSERT_EQ(frags.size(), 3u);
    rx_burst(frames_of({frags[0], frags[1], frags[1], frags[2]}));
    expect_delivered_once(data);
    expect_drops({{Drop::ipv4_frag_duplicate, 1}});
    expect_fragmented_udp_echo(data);
}

TEST_F(Fragments, DuplicateAfterCompletionDeliveredOnce) {
    // The datagram completes; a late copy of a fragment starts a new, incomplete entry that
    // is never delivered (and is freed by the timeout).
    const Bytes data = pattern(4000, 7);
    const auto frags = ipv4_fragments(frag_ip(0x1005), udp_l4(data), kFragPayload);
    rx_burst(frames_of({frags[0], frags[1], frags[2], frags[1]}));
    expect_delivered_once(data);
    expect_fragmented_udp_echo(data);
    stack().poll_timers(now_ + ms(cfg_.frag_timeout_ms) + 1);
    expect_drops({{Drop::ipv4_frag_timeout, 1}});
}

TEST_F(Fragments, OverlappingFragmentsNotDelivered) {
    const Bytes l4 = udp_l4(pattern(40, 8));  // 48 bytes
    const Ip4 h = frag_ip(0x1006);
    // [0,24) MF, [16,40) MF (overlaps the first by 8), [40,48) last.
    rx_burst(frames_of({ipv4_fragment(h, l4, 0, 24, true), ipv4_fragment(h, l4, 16, 24, true),
                        ipv4_fragment(h, l4, 40, 8, false)}));
    EXPECT_TRUE(app_.seen.empty());
    EXPECT_TRUE(transmit().empty());
    EXPECT_EQ(counters().ipv4_reassembled, 0u);
    EXPECT_GE(dropped(Drop::ipv4_frag_dropped) + dropped(Drop::ipv4_frag_bad), 1u);
    EXPECT_EQ(counters().total_drops(),
              dropped(Drop::ipv4_frag_dropped) + dropped(Drop::ipv4_frag_bad));
    // Nothing is left behind for the timeout either.
    stack().poll_timers(now_ + ms(cfg_.frag_timeout_ms) + 1);
    EXPECT_EQ(dropped(Drop::ipv4_frag_timeout), 0u);
    EXPECT_EQ(rte_mempool_in_use_count(unit_pool()), 0u);
}

TEST_F(Fragments, OverlappingFragmentsEachCountedOnce) {
    // Every fragment ends in exactly one place (counters.hpp): 3 fragments in, 3 drops.
    const Bytes l4 = udp_l4(pattern(40, 8));
    const Ip4 h = frag_ip(0x1007);
    rx_burst(frames_of({ipv4_fragment(h, l4, 0, 24, true), ipv4_fragment(h, l4, 16, 24, true),
                        ipv4_fragment(h, l4, 40, 8, false)}));
    EXPECT_EQ(dropped(Drop::ipv4_frag_dropped) + dropped(Drop::ipv4_frag_bad), 3u);
    EXPECT_EQ(counters().total_drops(), 3u);
}

TEST_F(Fragments, MissingFragmentTimesOut_ipv4_frag_timeout) {
    const Bytes data = pattern(4000, 9);
    const auto frags = ipv4_fragments(frag_ip(0x1008), udp_l4(data), kFragPayload);
    rx_burst(frames_of({frags[0], frags[2]}));
    EXPECT_TRUE(app_.seen.empty());
    EXPECT_EQ(rte_mempool_in_use_count(unit_pool()), 2u);  // held for reassembly
    const uint64_t timeout = ms(cfg_.frag_timeout_ms);
    stack().poll_timers(now_ + timeout - ms(1));
    expect_drops({});
    stack().poll_timers(now_ + timeout + ms(1));
    expect_drops({{Drop::ipv4_frag_timeout, 2}});
    EXPECT_EQ(rte_mempool_in_use_count(unit_pool()), 0u);
    // The late middle fragment alone does not resurrect the datagram.
    now_ += timeout + ms(2);
    rx(eth_from_peer(frags[1]));
    EXPECT_TRUE(app_.seen.empty());
    EXPECT_TRUE(transmit().empty());
}

TEST_F(Fragments, StaleFlowFreedOnLookupCountedAsTimeout) {
    // No poll_timers: the expired flow is found (and freed) by rte_ip_frag when a fragment of
    // the same datagram arrives after frag_timeout_ms. Its 2 fragments timed out.
    const Bytes data = pattern(4000, 15);
    const auto frags = ipv4_fragments(frag_ip(0x100e), udp_l4(data), kFragPayload);
    rx_burst(frames_of({frags[0], frags[2]}));
    now_ += ms(cfg_.frag_timeout_ms) + ms(1);
    rx(eth_from_peer(frags[1]));
    EXPECT_TRUE(app_.seen.empty());
    expect_drops({{Drop::ipv4_frag_timeout, 2}});
    EXPECT_EQ(rte_mempool_in_use_count(unit_pool()), 1u);  // the new flow holds frags[1]
}

TEST_F(Fragments, NonLastFragmentNotMultipleOf8_ipv4_frag_bad) {
    const Bytes l4 = udp_l4(pattern(40, 10));
    const Ip4 h = frag_ip(0x1009);
    rx(eth_from_peer(ipv4_fragment(h, l4, 0, 20, true)));
    rx(eth_from_peer(ipv4_fragment(h, l4, 8, 1, true)));
    EXPECT_TRUE(app_.seen.empty());
    EXPECT_TRUE(transmit().empty());
    expect_drops({{Drop::ipv4_frag_bad, 2}});
    EXPECT_EQ(rte_mempool_in_use_count(unit_pool()), 0u);
}

TEST_F(Fragments, FragmentEndingPast65535_ipv4_frag_bad) {
    const Bytes whole = pattern(65536 + 64, 11);
    const Ip4 h = frag_ip(0x100a);
    // Offset 65528 (the largest) + 16 bytes; and offset 65512 + 40 bytes with MF.
    rx(eth_from_peer(ipv4_fragment(h, whole, 65528, 16, false)));
    rx(eth_from_peer(ipv4_fragment(h, whole, 65512, 40, true)));
    EXPECT_TRUE(app_.seen.empty());
    EXPECT_TRUE(transmit().empty());
    expect_drops({{Drop::ipv4_frag_bad, 2}});
}

TEST_F(Fragments, EmptyFragment_ipv4_frag_bad) {
    const Bytes l4 = udp_l4(pattern(40, 12));
    rx(eth_from_peer(ipv4_fragment(frag_ip(0x100b), l4, 16, 0, false)));
    EXPECT_TRUE(transmit().empty());
    expect_drops({{Drop::ipv4_frag_bad, 1}});
}

TEST_F(Fragments, FragmentedIcmpEchoAnsweredInFragments) {
    const Bytes data = pattern(4000 - 8, 13);
    const Bytes req = icmp_echo_request(0x5151, 77, data);
    const auto frags = ipv4_fragments(frag_ip(0x100c, kProtoIcmp), req, kFragPayload);
    ASSERT_EQ(frags.size(), 3u);
    rx_burst(frames_of(frags));
    EXPECT_EQ(counters().ipv4_reassembled, 1u);
    EXPECT_EQ(counters().icmp_echo_in, 1u);
    EXPECT_EQ(counters().icmp_echo_out, 1u);
    expect_drops({});
    const auto out = transmit();
    ASSERT_EQ(out.size(), 3u);
    for (const Frame& f : out) {
        EXPECT_EQ(f.proto(), kProtoIcmp);
        EXPECT_EQ(f.src(), kOurIp);
        EXPECT_EQ(f.dst(), kPeerIp);
        EXPECT_TRUE(same_mac(f.eth_dst(), kPeerMac));
    }
    Bytes hdr, l4;
    ASSERT_TRUE(reassemble(out, cfg_.mtu, hdr, l4));
    ASSERT_EQ(l4.size(), req.size());
    EXPECT_EQ(l4[0], 0);  // echo reply
    EXPECT_EQ(l4[1], 0);
    EXPECT_TRUE(checksum_ok(l4.data(), l4.size())) << "bad ICMP checksum over the reply";
    EXPECT_EQ(get16(&l4[4]), 0x5151);
    EXPECT_EQ(get16(&l4[6]), 77);
    EXPECT_TRUE(Bytes(l4.begin() + 8, l4.end()) == data);
}

TEST_F(Fragments, HeldFragmentsFreedWithTheStack) {
    const auto frags = ipv4_fragments(frag_ip(0x100d), udp_l4(pattern(3000)), kFragPayload);
    rx(eth_from_peer(frags[0]));
    EXPECT_EQ(rte_mempool_in_use_count(unit_pool()), 1u);  // TearDown checks it comes back
}

TEST_F(Fragments, OversizedReplyWithDfDropped_ipv4_frag_too_big) {
    // Our own datagram larger than the MTU with DF set cannot leave.
    rte_mbuf* m = make_outgoing_udp(kPeerIp, pattern(2000));
    ASSERT_NE(m, nullptr);
    auto* iph = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, 14);
    iph->fragment_offset = RTE_BE16(RTE_IPV4_HDR_DF_FLAG);
    auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
    eth->dst_addr = kPeerMac;
    stack().emit(m);
    EXPECT_TRUE(transmit().empty());
    expect_drops({{Drop::ipv4_frag_too_big, 1}});
}

TEST_F(Fragments, OversizedOwnDatagramFragmentedWithChecksumFinished) {
    // send_ipv4 of a datagram over the MTU, with the UDP checksum left to the TX stage: the
    // stack must finish it before splitting (no port can do it across fragments).
    rx(ether(kOurMac, kPeerMac, kEthTypeArp,
             arp(1, kPeerMac, kPeerIp, mac(0, 0, 0, 0, 0, 0), kOurIp)));
    transmit();  // the ARP reply; the peer is now resolved
    const Bytes data = pattern(3500, 14);
    stack().send_ipv4(make_outgoing_udp(kPeerIp, data, 6000), now_);
    const auto out = transmit();
    ASSERT_EQ(out.size(), 3u);
    Bytes hdr, l4;
    ASSERT_TRUE(reassemble(out, cfg_.mtu, hdr, l4));
    EXPECT_TRUE(checksum_ok(l4.data(), l4.size(),
                            pseudo_sum(kOurIp, kPeerIp, kProtoUdp, uint16_t(l4.size()))));
    EXPECT_EQ(Bytes(l4.begin() + 8, l4.end()), data);
    for (const Frame& f : out) EXPECT_TRUE(same_mac(f.eth_dst(), kPeerMac));
    expect_drops({});
}

}  // namespace
}  // namespace sluice::test
