// engine::timers_due: when a worker's loop expires its timers. Once a period, but not while
// the last receive burst came back full (the ACKs that cancel a due retransmission or loss
// probe may be waiting behind it), and then one period late at most.
#include <gtest/gtest.h>

#include "engine/runtime.hpp"

namespace sluice::test {
namespace {

using engine::timers_due;

TEST(EngineLoop, TimersRunOncePeriodWhenNothingWaits) {
    constexpr uint64_t kPeriod = 1000;
    EXPECT_FALSE(timers_due(999, 1000, kPeriod, false)) << "not before the period";
    EXPECT_TRUE(timers_due(1000, 1000, kPeriod, false));
    EXPECT_TRUE(timers_due(5000, 1000, kPeriod, false)) << "late: at once";
}

TEST(EngineLoop, AFullReceiveBurstDefersTimersByOnePeriodAtMost) {
    constexpr uint64_t kPeriod = 1000;
    EXPECT_FALSE(timers_due(1000, 1000, kPeriod, true)) << "packets still queued go first";
    EXPECT_FALSE(timers_due(1999, 1000, kPeriod, true));
    EXPECT_TRUE(timers_due(2000, 1000, kPeriod, true)) << "a steady backlog cannot starve them";
    EXPECT_TRUE(timers_due(1500, 1000, kPeriod, false)) << "the queue drained: at once";
    EXPECT_FALSE(timers_due(500, 1000, kPeriod, true));
}

}  // namespace
}  // namespace sluice::test
