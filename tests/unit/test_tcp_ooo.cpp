// The out-of-order queue against the ways a peer re-cuts its retransmissions (found against
// Linux under loss: a segment queued out of order, then retransmitted as a shorter segment
// plus a small one, had 4 bytes delivered twice).
#include <gtest/gtest.h>

#include "tests/unit/tcp_fixture.hpp"

namespace sluice::test {
namespace {

class TcpOoo : public TcpTest {
  protected:
    void SetUp() override {
        TcpTest::SetUp();
        ASSERT_NO_FATAL_FAILURE(open_passive());
        base_ = pseq_;
        all_ = pattern(20000, 31);
    }
    void seg(uint32_t off, uint32_t len) {
        rx_seg(kTcpAck, base_ + off, pack_, Bytes(all_.begin() + off, all_.begin() + off + len));
    }
    uint32_t base_ = 0;
    Bytes all_;
};

TEST_F(TcpOoo, RetransmissionRecutShorterPlusTailDeliveredOnce) {
    seg(1288, 1288);  // queued out of order: [1288, 2576)
    seg(1288, 1284);  // the same start, shorter: nothing new
    seg(2572, 4);     // inside the queued one: nothing new
    seg(0, 1288);     // the hole
    EXPECT_EQ(tapp_.data, Bytes(all_.begin(), all_.begin() + 2576));
}

TEST_F(TcpOoo, RecutLongerAndOverlappingBothSides) {
    seg(3000, 1000);  // [3000, 4000)
    seg(5000, 1000);  // [5000, 6000)
    seg(2500, 4000);  // covers both and the gaps: [2500, 6500)
    seg(6400, 600);   // overlaps the tail: [6400, 7000)
    seg(2000, 600);   // overlaps the head: [2000, 2600)
    seg(0, 2000);     // the hole
    EXPECT_EQ(tapp_.data, Bytes(all_.begin(), all_.begin() + 7000));
}

TEST_F(TcpOoo, RandomRecutsOfTheSameStreamDeliveredExactlyOnce) {
    // Seeded pseudo-random pieces of [0, 20000), all but those starting at 0 first, in a
    // shuffled order and with overlaps; then the pieces covering the start.
    uint32_t x = 12345;
    auto rnd = [&](uint32_t n) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        return x % n;
    };
    for (int i = 0; i < 300; ++i) {
        const uint32_t off = 1 + rnd(19000);
        const uint32_t len = 1 + rnd(std::min<uint32_t>(1448, 20000 - off));
        seg(off, len);
    }
    for (uint32_t off = 0; off < 20000; off += 1000)
        seg(off, std::min<uint32_t>(1448, 20000 - off));
    ASSERT_EQ(tapp_.data.size(), all_.size());
    EXPECT_EQ(tapp_.data, all_);
}

}  // namespace
}  // namespace sluice::test
