// TCP options: MSS (RFC 9293 3.7.1, RFC 6691), window scaling (RFC 7323 2), timestamps and
// PAWS (RFC 7323 3-5).
#include "tests/unit/tcp_fixture.hpp"

namespace sluice::test {
namespace {

using proto::TcpState;

class TcpOptions : public TcpTest {};

// RFC 7323 2.3: the peer's window field is shifted by the scale it announced (7 here); our
// sending stops at the scaled right edge.
TEST_F(TcpOptions, PeerWindowScaleApplied) {
    ASSERT_NO_FATAL_FAILURE(open_passive());
    EXPECT_EQ(stats().snd_wnd, 65535u << 7);
    rx_ack(pack_, {}, 20);  // 20 << 7 = 2560 bytes
    EXPECT_EQ(stats().snd_wnd, 2560u);
    send(pattern(10000));
    auto v = tx_segs();
    ASSERT_EQ(v.size(), 1u) << "1448 fit; the remaining 1112 are less than half the largest "
                               "window seen (sender SWS avoidance)";
    EXPECT_EQ(v[0].len(), 1448u);
    rx_ack(pack_ + 1448, {}, 100);  // 12800 bytes from the new SND.UNA
    EXPECT_EQ(stats().snd_wnd, 12800u);
    v = tx_segs();
    uint32_t sent = 0;
    for (const TcpSeg& s : v) sent += s.len();
    EXPECT_EQ(sent, 5u * 1448) << "8552 fit in 12800; the 1312-byte tail waits (Nagle)";
}

// RFC 7323 2.2/2.3: our window field is scaled by the shift we announced (5 for 1 MiB), and
// never scaled on a SYN.
TEST_F(TcpOptions, OurWindowScaled) {
    ASSERT_NO_FATAL_FAILURE(open_passive());
    EXPECT_EQ(synack_.wnd, 65535);
    rx_data(pattern(10));
    advance(40);
    const TcpSeg a = tx_one();
    EXPECT_EQ(a.wnd, (1u << 20) >> 5);
}

// RFC 7323 1.3: no WS from the peer: neither side scales (its window is taken as is; ours is
// at most 65535).
TEST_F(TcpOptions, NoWindowScaleWithoutPeerOption) {
    TcpOpts syn = linux_syn_opts();
    syn.ws.reset();
    ASSERT_NO_FATAL_FAILURE(open_passive(syn));
    EXPECT_FALSE(synack_.ws.has_value());
    EXPECT_EQ(stats().snd_wnd, 65535u);
    rx_data(pattern(10));
    advance(40);
    EXPECT_EQ(tx_one().wnd, 65535);
}

// RFC 9293 3.7.1 / RFC 6691: segments are at most min(peer MSS, ours) less the 12 bytes of
// timestamp option carried in every segment.
TEST_F(TcpOptions, MssNegotiatedDownToThePeers) {
    TcpOpts syn = linux_syn_opts();
    syn.mss = 1000;
    ASSERT_NO_FATAL_FAILURE(open_passive(syn));
    EXPECT_EQ(synack_.mss, std::optional<uint16_t>(1460)) << "we announce ours";
    tcp().set_nodelay(conn_, true);
    send(pattern(2500));
    auto v = tx_segs();
    ASSERT_EQ(v.size(), 3u);
    EXPECT_EQ(v[0].len(), 988u);
    EXPECT_EQ(v[1].len(), 988u);
    EXPECT_EQ(v[2].len(), 524u);
}

TEST_F(TcpOptions, MssAboveOursClampedToOurs) {
    TcpOpts syn = linux_syn_opts();
    syn.mss = 9000;
    ASSERT_NO_FATAL_FAILURE(open_passive(syn));
    send(pattern(3000));
    auto v = tx_segs();
    ASSERT_GE(v.size(), 2u);
    EXPECT_EQ(v[0].len(), 1448u);
}

// RFC 7323 3.2 / 4.3: every segment carries TS; TSecr echoes TS.Recent, which (with delayed
// ACKs) is the TSval of the earliest segment the ACK acknowledges.
TEST_F(TcpOptions, TimestampsEchoEarliestUnacknowledged) {
    ASSERT_NO_FATAL_FAILURE(open_passive());
    const uint32_t first_ts = peer_tsval_ + 1;
    rx_data(pattern(1448, 1));
    rx_data(pattern(1448, 2));
    const TcpSeg a = tx_one();
    EXPECT_TRUE(a.has_ts);
    EXPECT_EQ(a.ts_ecr, first_ts);
    // Our TSval is a 1 ms clock.
    const uint32_t v0 = a.ts_val;
    advance(25);
    rx_data(pattern(10));
    advance(40);
    const TcpSeg b = tx_one();
    EXPECT_EQ(b.ts_val, v0 + 65);
    EXPECT_EQ(b.ts_ecr, peer_tsval_);
}

// RFC 7323 5.3 R1 (PAWS): a segment whose TSval is older than TS.Recent is dropped and
// acknowledged; its data is not delivered.
TEST_F(TcpOptions, PawsDropsOldTimestampWithAck) {
    ASSERT_NO_FATAL_FAILURE(open_passive());
    rx_data(pattern(100, 1));
    advance(40);
    tx_segs();
    rx_seg(kTcpAck | kTcpPsh, pseq_, pack_, pattern(100, 2),
           TcpOpts{.ts_val = peer_tsval_ - 10, .ts_ecr = our_tsval_});
    const TcpSeg a = tx_one();
    EXPECT_EQ(a.flags, kTcpAck);
    EXPECT_EQ(a.ack, pseq_) << "not accepted";
    EXPECT_EQ(tctr().paws_drops, 1u);
    EXPECT_EQ(tapp_.data, pattern(100, 1));
    // The same data with a current timestamp is taken.
    rx_data(pattern(100, 2));
    EXPECT_EQ(tapp_.data.size(), 200u);
    // An RST is never subject to PAWS (RFC 7323 5.3 R1).
    rx_seg(kTcpRst, pseq_, 0, {}, TcpOpts{.ts_val = 1, .ts_ecr = 0}, 0);
    EXPECT_EQ(tapp_.n_closed, 1);
}

// RFC 7323 3.2: without TS in the SYN, no segment carries it, and the MSS is not reduced.
TEST_F(TcpOptions, NoTimestampsWhenPeerOmitsThem) {
    TcpOpts syn = linux_syn_opts();
    syn.no_ts = true;
    ASSERT_NO_FATAL_FAILURE(open_passive(syn));
    EXPECT_FALSE(synack_.has_ts);
    EXPECT_TRUE(synack_.sack_perm);
    send(pattern(3000));
    auto v = tx_segs();
    ASSERT_GE(v.size(), 2u);
    EXPECT_EQ(v[0].len(), 1460u);
    EXPECT_FALSE(v[0].has_ts);
}

}  // namespace
}  // namespace sluice::test
