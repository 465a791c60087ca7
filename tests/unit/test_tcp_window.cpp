// Receive flow control with set_manual_window: what the app holds closes the window, consumed()
// reopens it, and the update that reopens a closed window is repeated (backing off) until data
// arrives, so that one lost ACK does not leave the peer to its persist timer (which backs off
// to minutes).
#include <gtest/gtest.h>

#include "tests/unit/tcp_fixture.hpp"

namespace sluice::test {
namespace {

class TcpWindow : public TcpTest {
  protected:
    void SetUp() override {
        TcpTest::SetUp();
        proto::TcpConfig c = tcp_config();
        c.rcv_buf = 4096;
        start_tcp(c);
        ASSERT_NO_FATAL_FAILURE(open_passive());
        tcp().set_manual_window(conn_, true);
    }
};

TEST_F(TcpWindow, HeldDataClosesTheWindowAndTheReopeningIsRepeatedUntilDataComes) {
    // The peer fills the 4 KiB buffer; the app holds everything.
    for (int i = 0; i < 4; ++i) {
        rx_data(pattern(1024, uint8_t(i)));  // advances pseq_
    }
    advance(40);
    std::vector<TcpSeg> acks = tx_segs();
    ASSERT_FALSE(acks.empty());
    EXPECT_EQ(acks.back().ack, pseq_);
    EXPECT_EQ(acks.back().wnd, 0) << "4 KiB held: the window is closed";

    // The app is done with it: one window update, at once.
    tcp().consumed(conn_, 4096);
    step();
    TcpSeg upd = tx_one();
    EXPECT_EQ(upd.ack, pseq_);
    EXPECT_GT(upd.wnd, 0);

    // "Lost": the update comes again after the RTO, then twice the RTO later.
    const uint32_t rto = stats().rto_ms;
    ASSERT_GE(rto, 200u);
    advance(rto - 1);
    EXPECT_TRUE(tx_segs().empty());
    advance(1);
    TcpSeg again = tx_one();
    EXPECT_EQ(again.ack, pseq_);
    EXPECT_GT(again.wnd, 0);
    advance(2 * rto - 1);
    EXPECT_TRUE(tx_segs().empty());
    advance(1);
    EXPECT_EQ(tx_one().ack, pseq_);
    EXPECT_EQ(tctr().window_updates, 2u);

    // Data arrives: the peer knows; no more repeats.
    rx_data(pattern(100, 9));
    advance(40);  // the delayed ACK of that data
    tx_segs();
    advance(10000);
    EXPECT_TRUE(tx_segs().empty());
    EXPECT_EQ(tctr().window_updates, 2u);
    EXPECT_EQ(tapp_.data.size(), 4096u + 100u);
}

TEST_F(TcpWindow, RepeatsStopAfterSixTries) {
    for (int i = 0; i < 4; ++i) {
        rx_data(pattern(1024, uint8_t(i)));  // advances pseq_
    }
    advance(40);
    tx_segs();
    tcp().consumed(conn_, 4096);
    step();
    tx_one();
    advance(64 * 60000);  // RTO x (1 + 2 + 4 + 8 + 16 + 32), then nothing more
    EXPECT_EQ(tx_segs().size(), 6u);
    EXPECT_EQ(tctr().window_updates, 6u);
}

// Our window closed by held data, the peer's window small, our data waiting: the peer's window
// update must get through (the ImpairedEchoTest stall: sluice-echo, whose echoes filled its send
// queue while the Linux client was not reading, held what it received, closing its window; the
// client's window had shrunk to 1 KiB, below sender SWS avoidance's threshold, with nothing of
// ours in flight; then the client read and announced 78 KiB in one pure ACK, which we dropped;
// its zero-window probes carry SND.UNA - 1, unacceptable too; nobody sent anything again).
class TcpWindowUpdate : public TcpWindow {
  protected:
    // The peer offers 1 KiB (8 << 7), less than half the largest window it offered (its SYN's
    // 64 KiB << 7): 3000 bytes of ours wait, nothing in flight.
    void small_peer_window_and_data_waiting() {
        peer_wnd_ = 8;
        rx_ack(pack_);
        ASSERT_EQ(stats().snd_wnd, 1024u);
        send(pattern(3000, 0x40));
        ASSERT_TRUE(tx_segs().empty()) << "sender SWS avoidance: 1 KiB is below half the "
                                          "largest window the peer offered";
    }
};

// The peer has filled our window to its right edge above a hole, so its SND.NXT, the sequence
// number of its pure ACKs, is RCV.NXT + RCV.WND. Such an ACK (here the window update) is
// acceptable, as in Linux (tcp_sequence) and the BSDs; RFC 9293's strict test
// (SEG.SEQ < RCV.NXT + RCV.WND) dropped it, unread.
TEST_F(TcpWindowUpdate, PureAckAtTheRightEdgeOfOurWindowIsAccepted) {
    ASSERT_NO_FATAL_FAILURE(small_peer_window_and_data_waiting());
    const uint32_t hole = pseq_;
    for (uint32_t k = 1; k < 4; ++k)
        rx_seg(kTcpAck | kTcpPsh, hole + 1024 * k, pack_, pattern(1024, uint8_t(k)));
    for (const TcpSeg& a : tx_segs()) EXPECT_EQ(a.ack, hole) << "the first KiB is missing";
    pseq_ = hole + 4096;  // the peer's SND.NXT: the right edge of our 4 KiB window
    const uint64_t oow = tctr().out_of_window;

    // The peer's app reads: a window update, <SEQ=SND.NXT><ACK=our SND.NXT><WND=64 KiB>.
    rx_ack(pack_, {}, 512);
    EXPECT_EQ(tctr().out_of_window, oow) << "a pure ACK at the right edge is acceptable";
    EXPECT_EQ(stats().snd_wnd, 512u << 7);
    auto v = tx_segs();
    ASSERT_GE(v.size(), 2u) << "the window update lets our data go at once";
    // Out-of-order data held: each data segment leaves room for its SACK block (seg_mss).
    EXPECT_EQ(v[0].seq, pack_);
    EXPECT_EQ(v[0].len(), 1448u - 12);
    EXPECT_EQ(v[0].sack, (std::vector<std::pair<uint32_t, uint32_t>>{{hole + 1024, hole + 4096}}));
    EXPECT_EQ(v[1].seq, pack_ + 1448 - 12);

    // The hole is filled: 4 KiB delivered, held by the app, our window closed.
    rx_seg(kTcpAck | kTcpPsh, hole, pack_, pattern(1024, 0));
    const TcpSeg a = tx_segs().back();
    EXPECT_EQ(a.ack, hole + 4096);
    EXPECT_EQ(a.wnd, 0);
    ASSERT_EQ(tapp_.data.size(), 4096u);
    for (uint32_t k = 0; k < 4; ++k)
        EXPECT_EQ(Bytes(tapp_.data.begin() + 1024 * k, tapp_.data.begin() + 1024 * (k + 1)),
                  pattern(1024, uint8_t(k)));
}

// The same deadlock from a window update lost on the way: our window is closed, so the peer
// only probes it, with <SEQ=SND.UNA - 1>, unacceptable (its window unread, rightly); the
// peer's window is open but too small for SWS avoidance and nothing of ours is in flight, so
// no ACK will come. The persist timer covers this too (RFC 1122 4.2.3.4's override timeout;
// as Linux's probe timer and BSD's persist timer): it sends what fits, and the ACK of that
// brings the peer's current window.
TEST_F(TcpWindowUpdate, SmallPeerWindowIsProbedWhenItsUpdateIsLost) {
    ASSERT_NO_FATAL_FAILURE(small_peer_window_and_data_waiting());
    for (int i = 0; i < 4; ++i) rx_data(pattern(1024, uint8_t(i)));  // our window: closed
    advance(40);
    ASSERT_EQ(tx_segs().back().wnd, 0);

    // The window update (64 KiB) is lost; the peer's zero-window probe is unacceptable.
    rx_seg(kTcpAck, pseq_ - 1, pack_, {}, {}, 512);
    const TcpSeg r = tx_one();
    EXPECT_EQ(r.ack, pseq_);
    EXPECT_EQ(r.wnd, 0);
    EXPECT_EQ(stats().snd_wnd, 1024u) << "the window of an unacceptable segment is not taken";

    // Within the persist interval (at most 2 s): what fits the 1 KiB window goes.
    const uint64_t t0 = now_;
    while (out_.empty() && now_ - t0 < sec(60)) advance(1);
    auto v = tx_segs();
    ASSERT_EQ(v.size(), 1u) << "no segment in 60 s: stalled";
    EXPECT_LE(now_ - t0, sec(2));
    EXPECT_EQ(v[0].seq, pack_);
    const Bytes ours = pattern(3000, 0x40);
    EXPECT_EQ(v[0].payload, Bytes(ours.begin(), ours.begin() + 1024));
    EXPECT_GE(tctr().persist_probes, 1u);

    // Its ACK (at RCV.NXT: acceptable in a zero window) carries the 64 KiB: the rest follows.
    rx_ack(pack_ + 1024, {}, 512);
    EXPECT_EQ(stats().snd_wnd, 512u << 7);
    v = tx_segs();
    ASSERT_FALSE(v.empty());
    EXPECT_EQ(v[0].seq, pack_ + 1024);
    EXPECT_EQ(v[0].len(), 1448u);
}

}  // namespace
}  // namespace sluice::test
