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

}  // namespace
}  // namespace sluice::test
