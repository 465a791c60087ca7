// pmd/impair: the fault-injecting stage. Deterministic for a seed, counted, leak-free.
#include <algorithm>
#include <map>
#include <vector>

#include <gtest/gtest.h>

#include "pmd/impair.hpp"
#include "tests/unit/packet_builder.hpp"
#include "tests/unit/unit_env.hpp"

namespace sluice::test {
namespace {

using pmd::ImpairConfig;
using pmd::Impairment;
using pmd::ImpairSpec;

constexpr uint64_t kHz = 1'000'000'000;

// Packets numbered by their first payload byte pair, so order and duplicates can be read back.
std::vector<rte_mbuf*> numbered(unsigned n, unsigned first = 0) {
    std::vector<rte_mbuf*> v;
    for (unsigned i = 0; i < n; ++i) {
        Bytes b(64, 0);
        b[0] = uint8_t((first + i) >> 8);
        b[1] = uint8_t(first + i);
        v.push_back(to_mbuf(unit_pool(), b));
    }
    return v;
}
unsigned number(const rte_mbuf* m) {
    const auto* p = rte_pktmbuf_mtod(m, const uint8_t*);
    return unsigned(p[0]) << 8 | p[1];
}

// Runs `total` packets through in bursts of 32 and returns the numbers that came out.
std::vector<unsigned> run(Impairment& imp, unsigned total, uint64_t now = 0) {
    std::vector<unsigned> seen;
    rte_mbuf* out[128];
    for (unsigned i = 0; i < total; i += 32) {
        auto in = numbered(32, i);
        const uint16_t k = imp.apply(in.data(), 32, out, 128, now);
        for (uint16_t j = 0; j < k; ++j) {
            seen.push_back(number(out[j]));
            rte_pktmbuf_free(out[j]);
        }
    }
    const uint16_t k = imp.apply(nullptr, 0, out, 128, now);
    for (uint16_t j = 0; j < k; ++j) {
        seen.push_back(number(out[j]));
        rte_pktmbuf_free(out[j]);
    }
    return seen;
}

TEST(Impair, ParsesBothDirectionsAndPerDirectionKeys) {
    ImpairConfig c;
    std::string err;
    ASSERT_TRUE(
        pmd::parse_impair("loss=0.05,reorder=0.02,dup=0.01,corrupt=0.001,delay=2ms,seed=7", c, err))
        << err;
    EXPECT_DOUBLE_EQ(c.rx.loss, 0.05);
    EXPECT_DOUBLE_EQ(c.tx.loss, 0.05);
    EXPECT_DOUBLE_EQ(c.tx.reorder, 0.02);
    EXPECT_DOUBLE_EQ(c.rx.dup, 0.01);
    EXPECT_DOUBLE_EQ(c.rx.corrupt, 0.001);
    EXPECT_EQ(c.tx.delay_us, 2000u);
    EXPECT_EQ(c.seed, 7u);
    ASSERT_TRUE(pmd::parse_impair("rx:loss=0.1,tx:delay=500us", c, err)) << err;
    EXPECT_DOUBLE_EQ(c.rx.loss, 0.1);
    EXPECT_DOUBLE_EQ(c.tx.loss, 0);
    EXPECT_EQ(c.tx.delay_us, 500u);
    EXPECT_EQ(c.rx.delay_us, 0u);
    for (const char* bad :
         {"", "loss", "loss=2", "loss=-0.1", "jitter=1", "delay=3parsecs", "seed=x"})
        EXPECT_FALSE(pmd::parse_impair(bad, c, err)) << bad;
}

TEST(Impair, LossIsDeterministicForASeedAndNearItsRate) {
    ImpairSpec s;
    s.loss = 0.1;
    Impairment a, b, c;
    a.init(s, 7, unit_pool(), kHz);
    b.init(s, 7, unit_pool(), kHz);
    c.init(s, 8, unit_pool(), kHz);
    const auto ra = run(a, 3200), rb = run(b, 3200), rc = run(c, 3200);
    EXPECT_EQ(ra, rb);  // same seed, same fate for every packet
    EXPECT_NE(ra, rc);
    EXPECT_EQ(a.stats().lost, 3200 - ra.size());
    EXPECT_GT(a.stats().lost, 3200 * 0.07);
    EXPECT_LT(a.stats().lost, 3200 * 0.13);
    EXPECT_TRUE(pool_full());
}

TEST(Impair, DuplicatesAreCopiesCounted) {
    ImpairSpec s;
    s.dup = 0.2;
    Impairment imp;
    imp.init(s, 3, unit_pool(), kHz);
    const auto seen = run(imp, 640);
    EXPECT_EQ(seen.size(), 640 + imp.stats().duplicated);
    EXPECT_GT(imp.stats().duplicated, 640 * 0.1);
    std::map<unsigned, int> times;
    for (unsigned v : seen) times[v]++;
    EXPECT_EQ(times.size(), 640u);  // every packet at least once
    EXPECT_TRUE(pool_full());
}

TEST(Impair, ReorderSwapsNeighboursAndLosesNothing) {
    ImpairSpec s;
    s.reorder = 0.1;
    Impairment imp;
    imp.init(s, 5, unit_pool(), kHz);
    const auto seen = run(imp, 640);
    ASSERT_EQ(seen.size(), 640u);
    unsigned out_of_order = 0;
    for (size_t i = 1; i < seen.size(); ++i) out_of_order += seen[i] < seen[i - 1];
    EXPECT_GT(out_of_order, 0u);
    EXPECT_EQ(out_of_order, imp.stats().reordered);
    auto sorted = seen;
    std::sort(sorted.begin(), sorted.end());
    for (unsigned i = 0; i < 640; ++i) ASSERT_EQ(sorted[i], i);
    EXPECT_EQ(imp.held(), 0u);
    EXPECT_TRUE(pool_full());
}

TEST(Impair, CorruptionFlipsOneBit) {
    ImpairSpec s;
    s.corrupt = 1.0;
    Impairment imp;
    imp.init(s, 9, unit_pool(), kHz);
    auto in = numbered(1, 0);
    const Bytes before = mbuf_bytes(in[0]);
    // Whatever vouched for the frame no longer does: a TX checksum request (it would be
    // computed over the damage) and an RX verdict (it was given before the damage).
    in[0]->ol_flags = RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_TCP_CKSUM |
                      RTE_MBUF_F_RX_IP_CKSUM_GOOD | RTE_MBUF_F_RX_L4_CKSUM_GOOD;
    rte_mbuf* out[4];
    ASSERT_EQ(imp.apply(in.data(), 1, out, 4, 0), 1);
    const Bytes after = mbuf_bytes(out[0]);
    EXPECT_EQ(out[0]->ol_flags, RTE_MBUF_F_TX_IPV4);
    rte_pktmbuf_free(out[0]);
    int bits = 0;
    for (size_t i = 0; i < before.size(); ++i)
        bits += __builtin_popcount(unsigned(before[i] ^ after[i]));
    EXPECT_EQ(bits, 1);
    EXPECT_EQ(imp.stats().corrupted, 1u);
}

TEST(Impair, DelayHoldsUntilDueThenReleasesInOrder) {
    ImpairSpec s;
    s.delay_us = 2000;
    Impairment imp;
    imp.init(s, 1, unit_pool(), kHz);
    auto in = numbered(8, 0);
    rte_mbuf* out[16];
    EXPECT_EQ(imp.apply(in.data(), 8, out, 16, 1000), 0);
    EXPECT_EQ(imp.held(), 8u);
    EXPECT_EQ(imp.apply(nullptr, 0, out, 16, 1000 + 2'000'000 - 1), 0);  // 1 ns early
    const uint16_t k = imp.apply(nullptr, 0, out, 16, 1000 + 2'000'000);
    ASSERT_EQ(k, 8);
    for (uint16_t i = 0; i < k; ++i) {
        EXPECT_EQ(number(out[i]), i);
        rte_pktmbuf_free(out[i]);
    }
    EXPECT_EQ(imp.stats().delayed, 8u);
}

TEST(Impair, ClearFreesWhatIsHeld) {
    ImpairSpec s;
    s.delay_us = 1000000;
    s.reorder = 1.0;
    Impairment imp;
    imp.init(s, 1, unit_pool(), kHz);
    auto in = numbered(5, 0);
    rte_mbuf* out[8];
    imp.apply(in.data(), 5, out, 8, 0);
    EXPECT_GT(imp.held(), 0u);
    imp.clear();
    EXPECT_EQ(imp.held(), 0u);
    EXPECT_TRUE(pool_full());
}

}  // namespace
}  // namespace sluice::test
