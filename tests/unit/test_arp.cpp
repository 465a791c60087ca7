// ARP (RFC 826; RFC 1122 2.3.2; RFC 5227 2.3) and next-hop resolution of what we send.
#include "tests/unit/stack_fixture.hpp"

namespace sluice::test {
namespace {

using proto::ArpPending;
using proto::Drop;

constexpr uint16_t kRequest = 1;
constexpr uint16_t kReply = 2;

class Arp : public StackTest {
  protected:
    // An ARP frame from `sha`/`spa` (Ethernet source `sha`).
    Bytes arp_frame(uint16_t op, const rte_ether_addr& sha, uint32_t spa, uint32_t tpa,
                    const rte_ether_addr& eth_dst = kBroadcastMac,
                    const rte_ether_addr& tha = mac(0, 0, 0, 0, 0, 0), const ArpOpts& o = {}) {
        return ether(eth_dst, sha, kEthTypeArp, arp(op, sha, spa, tha, tpa, o));
    }
    const rte_ether_addr* cached(uint32_t addr, uint64_t at) {
        return stack().arp_cache().lookup(rte_cpu_to_be_32(addr), at);
    }
    // Checks `f` is an ARP request from us for `target`, broadcast.
    void expect_request(const Frame& f, uint32_t target) {
        ASSERT_GE(f.size(), 42u);
        EXPECT_EQ(f.ether_type(), kEthTypeArp);
        EXPECT_TRUE(same_mac(f.eth_dst(), kBroadcastMac)) << mac_str(f.eth_dst());
        EXPECT_TRUE(same_mac(f.eth_src(), kOurMac));
        EXPECT_EQ(f.arp_htype(), 1);
        EXPECT_EQ(f.arp_ptype(), 0x0800);
        EXPECT_EQ(f.arp_hlen(), 6);
        EXPECT_EQ(f.arp_plen(), 4);
        EXPECT_EQ(f.arp_op(), kRequest);
        EXPECT_TRUE(same_mac(f.arp_sha(), kOurMac));
        EXPECT_EQ(f.arp_spa(), kOurIp) << ip_str(f.arp_spa());
        EXPECT_TRUE(same_mac(f.arp_tha(), mac(0, 0, 0, 0, 0, 0)));
        EXPECT_EQ(f.arp_tpa(), target) << ip_str(f.arp_tpa());
    }
    // Checks `f` is the UDP datagram built by make_outgoing_udp(dst, payload), sent to `dmac`.
    void expect_outgoing(const Frame& f, uint32_t dst, const rte_ether_addr& dmac,
                         const Bytes& payload) {
        EXPECT_TRUE(valid_ipv4(f));
        EXPECT_TRUE(same_mac(f.eth_dst(), dmac)) << mac_str(f.eth_dst());
        EXPECT_TRUE(same_mac(f.eth_src(), kOurMac));
        EXPECT_EQ(f.src(), kOurIp);
        EXPECT_EQ(f.dst(), dst);
        EXPECT_EQ(f.proto(), kProtoUdp);
        EXPECT_NE(f.udp_checksum(), 0);  // computed by the TX stage, and valid (valid_ipv4)
        EXPECT_EQ(f.udp_payload(), payload);
    }
};

TEST_F(Arp, RequestForOurIpAnswered) {
    rx(arp_frame(kRequest, kPeerMac, kPeerIp, kOurIp));
    const auto out = transmit();
    ASSERT_EQ(out.size(), 1u);
    const Frame& f = out[0];
    ASSERT_GE(f.size(), 42u);
    EXPECT_EQ(f.ether_type(), kEthTypeArp);
    EXPECT_TRUE(same_mac(f.eth_dst(), kPeerMac)) << mac_str(f.eth_dst());
    EXPECT_TRUE(same_mac(f.eth_src(), kOurMac)) << mac_str(f.eth_src());
    EXPECT_EQ(f.arp_htype(), 1);
    EXPECT_EQ(f.arp_ptype(), 0x0800);
    EXPECT_EQ(f.arp_hlen(), 6);
    EXPECT_EQ(f.arp_plen(), 4);
    EXPECT_EQ(f.arp_op(), kReply);
    EXPECT_TRUE(same_mac(f.arp_sha(), kOurMac));
    EXPECT_EQ(f.arp_spa(), kOurIp);
    EXPECT_TRUE(same_mac(f.arp_tha(), kPeerMac));
    EXPECT_EQ(f.arp_tpa(), kPeerIp);
    EXPECT_EQ(f.ol_flags, 0u);
    EXPECT_EQ(counters().arp_requests_in, 1u);
    EXPECT_EQ(counters().arp_replies_out, 1u);
    expect_drops({});
}

TEST_F(Arp, ReplySentToSenderHardwareAddress) {
    // RFC 826: "Send the packet to the (new) target hardware address" - the requester's
    // ar$sha, which may differ from the frame's Ethernet source (e.g. a bridge or proxy).
    rx(ether(kBroadcastMac, kOtherMac, kEthTypeArp,
             arp(kRequest, kPeerMac, kPeerIp, mac(0, 0, 0, 0, 0, 0), kOurIp)));
    const auto out = transmit();
    ASSERT_EQ(out.size(), 1u);
    EXPECT_TRUE(same_mac(out[0].arp_tha(), kPeerMac));
    EXPECT_TRUE(same_mac(out[0].eth_dst(), kPeerMac)) << mac_str(out[0].eth_dst());
}

TEST_F(Arp, PaddedRequestAnswered) {
    Bytes frame = arp_frame(kRequest, kPeerMac, kPeerIp, kOurIp);
    frame.resize(60, 0);  // minimum Ethernet frame (RFC 894 padding)
    rx(frame);
    const auto out = transmit();
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].arp_op(), kReply);
    EXPECT_EQ(out[0].arp_tpa(), kPeerIp);
    expect_drops({});
}

TEST_F(Arp, RequestForAnotherIpNotAnswered_arp_not_for_us) {
    rx(arp_frame(kRequest, kPeerMac, kPeerIp, kOtherIp));
    EXPECT_TRUE(transmit().empty());
    expect_drops({{Drop::arp_not_for_us, 1}});
    EXPECT_EQ(counters().arp_replies_out, 0u);
}

TEST_F(Arp, TruncatedDropped_arp_malformed) {
    const Bytes full = arp_frame(kRequest, kPeerMac, kPeerIp, kOurIp);
    for (size_t len = 14; len < 42; ++len) rx(Bytes(full.begin(), full.begin() + long(len)));
    EXPECT_TRUE(transmit().empty());
    expect_drops({{Drop::arp_malformed, 28}});
    EXPECT_EQ(cached(kPeerIp, now_), nullptr);
}

TEST_F(Arp, BadHardwareOrProtocolDropped_arp_malformed) {
    rx(arp_frame(kRequest, kPeerMac, kPeerIp, kOurIp, kBroadcastMac, {}, {.htype = 6}));
    rx(arp_frame(kRequest, kPeerMac, kPeerIp, kOurIp, kBroadcastMac, {}, {.ptype = 0x86dd}));
    rx(arp_frame(kRequest, kPeerMac, kPeerIp, kOurIp, kBroadcastMac, {}, {.hlen = 8}));
    rx(arp_frame(kRequest, kPeerMac, kPeerIp, kOurIp, kBroadcastMac, {}, {.plen = 16}));
    EXPECT_TRUE(transmit().empty());
    expect_drops({{Drop::arp_malformed, 4}});
    EXPECT_EQ(cached(kPeerIp, now_), nullptr);
}

TEST_F(Arp, BadOpcodeDropped_arp_bad_op) {
    rx(arp_frame(0, kPeerMac, kPeerIp, kOurIp));
    rx(arp_frame(3, kPeerMac, kPeerIp, kOurIp));       // RARP request
    rx(arp_frame(0x0100, kPeerMac, kPeerIp, kOurIp));  // 1 in the wrong byte order
    EXPECT_TRUE(transmit().empty());
    expect_drops({{Drop::arp_bad_op, 3}});
    EXPECT_EQ(cached(kPeerIp, now_), nullptr);
}

TEST_F(Arp, CacheLearnsSenderOfRequestForUs) {
    EXPECT_EQ(cached(kPeerIp, now_), nullptr);
    rx(arp_frame(kRequest, kPeerMac, kPeerIp, kOurIp));
    const rte_ether_addr* m = cached(kPeerIp, now_);
    ASSERT_NE(m, nullptr);
    EXPECT_TRUE(same_mac(*m, kPeerMac)) << mac_str(*m);
    EXPECT_EQ(stack().arp_cache().size(now_), 1u);
    transmit();
}

TEST_F(Arp, CacheLearnsSenderOfReplyToUs) {
    rx(arp_frame(kReply, kPeerMac, kPeerIp, kOurIp, kOurMac, kOurMac));
    EXPECT_TRUE(transmit().empty());  // a reply is not answered
    const rte_ether_addr* m = cached(kPeerIp, now_);
    ASSERT_NE(m, nullptr);
    EXPECT_TRUE(same_mac(*m, kPeerMac));
    EXPECT_EQ(counters().arp_replies_in, 1u);
    expect_drops({});
}

TEST_F(Arp, RequestNotForUsCreatesNoEntry) {
    // RFC 826: merge only; add the sender only when we are the target.
    rx(arp_frame(kRequest, kPeerMac, kPeerIp, kOtherIp));
    rx(arp_frame(kReply, kOtherMac, kOtherIp, kPeerIp, kBroadcastMac, kPeerMac));
    EXPECT_EQ(cached(kPeerIp, now_), nullptr);
    EXPECT_EQ(cached(kOtherIp, now_), nullptr);
    EXPECT_EQ(stack().arp_cache().size(now_), 0u);
    expect_drops({{Drop::arp_not_for_us, 2}});
}

TEST_F(Arp, RequestNotForUsUpdatesExistingEntry) {
    rx(arp_frame(kRequest, kPeerMac, kPeerIp, kOurIp));
    transmit();
    const rte_ether_addr moved = mac(0x02, 0x00, 0x00, 0x00, 0x00, 0x42);
    now_ += sec(10);
    rx(arp_frame(kRequest, moved, kPeerIp, kOtherIp));
    const rte_ether_addr* m = cached(kPeerIp, now_);
    ASSERT_NE(m, nullptr);
    EXPECT_TRUE(same_mac(*m, moved)) << mac_str(*m);
    // The merge refreshed the lifetime too: alive until 10 s + arp_timeout_s after the start.
    EXPECT_NE(cached(kPeerIp, kT0 + sec(cfg_.arp_timeout_s) + sec(5)), nullptr);
    EXPECT_TRUE(transmit().empty());
    expect_drops({{Drop::arp_not_for_us, 1}});
}

TEST_F(Arp, InvalidSendersNotLearned) {
    // A probe (spa 0, RFC 5227), a multicast sender MAC and an off-link sender.
    rx(arp_frame(kRequest, kPeerMac, 0, kOurIp));
    rx(arp_frame(kRequest, mac(0x01, 0x00, 0x5e, 0, 0, 1), kOtherIp, kOurIp));
    rx(arp_frame(kRequest, kGatewayMac, kRemoteIp, kOurIp));
    EXPECT_EQ(stack().arp_cache().size(now_), 0u);
    EXPECT_EQ(cached(kOtherIp, now_), nullptr);
    EXPECT_EQ(cached(kRemoteIp, now_), nullptr);
    transmit();
}

TEST_F(Arp, EntryExpiresAfterArpTimeout) {
    rx(arp_frame(kRequest, kPeerMac, kPeerIp, kOurIp));
    transmit();
    const uint64_t life = sec(cfg_.arp_timeout_s);
    EXPECT_NE(cached(kPeerIp, kT0 + life - 1), nullptr);
    EXPECT_EQ(cached(kPeerIp, kT0 + life), nullptr);
    EXPECT_EQ(stack().arp_cache().size(kT0 + life), 0u);
    // An expired next hop is resolved again: send_ipv4 asks ARP instead of using the old MAC.
    now_ = kT0 + life + 1;
    stack().send_ipv4(make_outgoing_udp(kPeerIp, pattern(8)), now_);
    const auto out = transmit();
    ASSERT_EQ(out.size(), 1u);
    expect_request(out[0], kPeerIp);
}

TEST_F(Arp, AnnounceSendsGratuitousArp) {
    stack().announce();
    const auto out = transmit();
    ASSERT_EQ(out.size(), 1u);
    const Frame& f = out[0];
    ASSERT_GE(f.size(), 42u);
    EXPECT_EQ(f.ether_type(), kEthTypeArp);
    EXPECT_TRUE(same_mac(f.eth_dst(), kBroadcastMac));
    EXPECT_TRUE(same_mac(f.eth_src(), kOurMac));
    EXPECT_EQ(f.arp_htype(), 1);
    EXPECT_EQ(f.arp_ptype(), 0x0800);
    EXPECT_EQ(f.arp_op(), kRequest);
    EXPECT_TRUE(same_mac(f.arp_sha(), kOurMac));
    EXPECT_EQ(f.arp_spa(), kOurIp);
    EXPECT_EQ(f.arp_tpa(), kOurIp);
    EXPECT_EQ(counters().arp_requests_out, 1u);
}

TEST_F(Arp, SendToUnresolvedQueuesAndRequestsOnce) {
    stack().send_ipv4(make_outgoing_udp(kOtherIp, pattern(20, 1)), now_);
    stack().send_ipv4(make_outgoing_udp(kOtherIp, pattern(20, 2)), now_);
    const auto out = transmit();
    ASSERT_EQ(out.size(), 1u);  // one ARP request, the datagrams wait
    expect_request(out[0], kOtherIp);
    EXPECT_EQ(counters().arp_requests_out, 1u);
    expect_drops({});
}

TEST_F(Arp, ReplyFlushesQueuedPackets) {
    stack().send_ipv4(make_outgoing_udp(kOtherIp, pattern(20, 1)), now_);
    stack().send_ipv4(make_outgoing_udp(kOtherIp, pattern(30, 2)), now_);
    ASSERT_EQ(transmit().size(), 1u);
    now_ += ms(3);
    rx(arp_frame(kReply, kOtherMac, kOtherIp, kOurIp, kOurMac, kOurMac));
    const auto out = transmit();
    ASSERT_EQ(out.size(), 2u);
    expect_outgoing(out[0], kOtherIp, kOtherMac, pattern(20, 1));
    expect_outgoing(out[1], kOtherIp, kOtherMac, pattern(30, 2));
    // Resolved: later packets go straight out, and no retry is pending.
    stack().send_ipv4(make_outgoing_udp(kOtherIp, pattern(5, 3)), now_);
    stack().poll_timers(now_ + sec(10));
    const auto later = transmit();
    ASSERT_EQ(later.size(), 1u);
    expect_outgoing(later[0], kOtherIp, kOtherMac, pattern(5, 3));
    expect_drops({});
}

TEST_F(Arp, RetriesAtIntervalThenDrops_arp_unresolved) {
    const uint64_t t = now_;
    const uint64_t retry = ms(cfg_.arp_retry_ms);
    stack().send_ipv4(make_outgoing_udp(kOtherIp, pattern(20)), t);
    stack().send_ipv4(make_outgoing_udp(kOtherIp, pattern(21)), t);
    auto out = transmit();
    ASSERT_EQ(out.size(), 1u);
    expect_request(out[0], kOtherIp);
    uint32_t requests = 1;
    for (uint32_t k = 1; k < cfg_.arp_max_tries; ++k) {
        stack().poll_timers(t + k * retry - 1);
        EXPECT_TRUE(transmit().empty()) << "retry " << k << " too early";
        stack().poll_timers(t + k * retry);
        out = transmit();
        ASSERT_EQ(out.size(), 1u) << "retry " << k;
        expect_request(out[0], kOtherIp);
        ++requests;
    }
    EXPECT_EQ(requests, cfg_.arp_max_tries);
    expect_drops({});
    stack().poll_timers(t + cfg_.arp_max_tries * retry);
    EXPECT_TRUE(transmit().empty());
    expect_drops({{Drop::arp_unresolved, 2}});
    EXPECT_EQ(counters().arp_requests_out, cfg_.arp_max_tries);
    // Given up: nothing more is sent, and a late reply has nothing to flush.
    stack().poll_timers(t + 10 * retry);
    rx(arp_frame(kReply, kOtherMac, kOtherIp, kOurIp, kOurMac, kOurMac));
    EXPECT_TRUE(transmit().empty());
    expect_drops({{Drop::arp_unresolved, 2}});
}

TEST_F(Arp, OffLinkDestinationGoesToGatewayMac) {
    proto::StackConfig c = default_config();
    c.gateway = rte_cpu_to_be_32(kGatewayIp);
    start(c);
    stack().send_ipv4(make_outgoing_udp(kRemoteIp, pattern(40)), now_);
    auto out = transmit();
    ASSERT_EQ(out.size(), 1u);
    expect_request(out[0], kGatewayIp);  // ARP for the gateway, never for the remote address
    rx(arp_frame(kReply, kGatewayMac, kGatewayIp, kOurIp, kOurMac, kOurMac));
    out = transmit();
    ASSERT_EQ(out.size(), 1u);
    expect_outgoing(out[0], kRemoteIp, kGatewayMac, pattern(40));
    // Now cached: the next one goes straight to the gateway.
    stack().send_ipv4(make_outgoing_udp(ip(192, 0, 2, 1), pattern(41)), now_);
    out = transmit();
    ASSERT_EQ(out.size(), 1u);
    expect_outgoing(out[0], ip(192, 0, 2, 1), kGatewayMac, pattern(41));
    expect_drops({});
}

TEST_F(Arp, OffLinkWithoutGatewayDropped_ipv4_no_route) {
    stack().send_ipv4(make_outgoing_udp(kRemoteIp, pattern(40)), now_);
    EXPECT_TRUE(transmit().empty());
    expect_drops({{Drop::ipv4_no_route, 1}});
}

TEST_F(Arp, QueuePerHopBounded_arp_queue_full) {
    for (unsigned i = 0; i < ArpPending::kPerHop + 2; ++i)
        stack().send_ipv4(make_outgoing_udp(kOtherIp, pattern(10, uint8_t(i))), now_);
    auto out = transmit();
    ASSERT_EQ(out.size(), 1u);
    expect_request(out[0], kOtherIp);
    expect_drops({{Drop::arp_queue_full, 2}});
    rx(arp_frame(kReply, kOtherMac, kOtherIp, kOurIp, kOurMac, kOurMac));
    out = transmit();
    ASSERT_EQ(out.size(), size_t(ArpPending::kPerHop));
    for (unsigned i = 0; i < ArpPending::kPerHop; ++i)
        expect_outgoing(out[i], kOtherIp, kOtherMac, pattern(10, uint8_t(i)));
}

TEST_F(Arp, PendingPacketsFreedWithTheStack) {
    // Queued for a next hop that never answers, then the stack goes away: TearDown checks
    // that the destructor returned them to the pool.
    for (unsigned i = 0; i < 3; ++i)
        stack().send_ipv4(make_outgoing_udp(kOtherIp, pattern(10)), now_);
    EXPECT_EQ(rte_mempool_in_use_count(unit_pool()), 4u);  // 3 queued + the request in TX
}

}  // namespace
}  // namespace sluice::test

namespace sluice::test {
namespace {

// ARP reaches one core; the facts it learns are handed to the other cores' stacks.
TEST_F(Arp, LearnedFactsAreHandedOutOnce) {
    rx(ether(kBroadcastMac, kPeerMac, kEthTypeArp,
             arp(1, kPeerMac, kPeerIp, mac(0, 0, 0, 0, 0, 0), kOurIp)));
    ASSERT_EQ(transmit().size(), 1u);  // our reply
    proto::Stack::ArpFact facts[proto::Stack::kLearnedMax];
    ASSERT_EQ(stack().take_learned(facts), 1u);
    EXPECT_EQ(facts[0].ip, rte_cpu_to_be_32(kPeerIp));
    EXPECT_TRUE(same_mac(facts[0].mac, kPeerMac));
    EXPECT_EQ(stack().take_learned(facts), 0u);
    // A request for another address teaches nothing new (RFC 826: no entry is created).
    rx(ether(kBroadcastMac, kOtherMac, kEthTypeArp,
             arp(1, kOtherMac, kOtherIp, mac(0, 0, 0, 0, 0, 0), ip(198, 18, 0, 77))));
    EXPECT_EQ(stack().take_learned(facts), 0u);
}

TEST_F(Arp, FactFromAnotherCoreFlushesWhatWaited) {
    // This core has a datagram waiting for kOtherIp; another core learned its MAC.
    stack().send_ipv4(make_outgoing_udp(kOtherIp, pattern(20, 4)), now_);
    ASSERT_EQ(transmit().size(), 1u);  // the ARP request
    stack().arp_learned(proto::Stack::ArpFact{rte_cpu_to_be_32(kOtherIp), kOtherMac}, now_);
    const auto out = transmit();
    ASSERT_EQ(out.size(), 1u);
    EXPECT_TRUE(same_mac(out[0].eth_dst(), kOtherMac));
    EXPECT_EQ(out[0].udp_payload(), pattern(20, 4));
    EXPECT_NE(stack().arp_cache().lookup(rte_cpu_to_be_32(kOtherIp), now_), nullptr);
    expect_drops({});
}

}  // namespace
}  // namespace sluice::test
