// engine::create_pool: the runtime's mbuf pools are LIFO stacks (DPDK's lf_stack driver), so
// that behind the per-core cache an allocation gets one of the buffers freed last, still in
// cache, not the one freed longest ago as the default FIFO ring would give.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include <gtest/gtest.h>
#include <rte_eal.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mbuf_pool_ops.h>

#include "engine/runtime.hpp"

namespace sluice::test {
namespace {

TEST(EnginePools, CreatedPoolsUseTheStackDriver) {
    rte_mempool* p = engine::create_pool("t_pool_ops", 1023, int(rte_socket_id()), 64);
    ASSERT_NE(p, nullptr);
    // The unit binary's EAL names no --mbuf-pool-ops-name: the engine's choice applies.
    ASSERT_EQ(rte_eal_mbuf_user_pool_ops(), nullptr);
    EXPECT_STREQ(engine::pool_ops(p), engine::kPoolOps);
    EXPECT_EQ(p->size, 1023u);
    rte_mempool_free(p);
}

// Every mbuf out, every mbuf back in order (oldest first), then a thousand out again: they
// must be among those freed last. A FIFO ring hands back the first ones freed (indices from
// 0), a stack the last ones: past the per-core cache (256, flushed at 384) the difference is
// the whole pool.
TEST(EnginePools, AllocationsTakeTheBuffersFreedLast) {
    constexpr unsigned kN = 4095, kAgain = 1000;
    rte_mempool* p = engine::create_pool("t_pool_lifo", kN, int(rte_socket_id()), 64);
    ASSERT_NE(p, nullptr);
    std::vector<rte_mbuf*> all(kN);
    ASSERT_EQ(rte_pktmbuf_alloc_bulk(p, all.data(), kN), 0);
    for (rte_mbuf* m : all) rte_pktmbuf_free(m);
    std::vector<rte_mbuf*> again(kAgain);
    ASSERT_EQ(rte_pktmbuf_alloc_bulk(p, again.data(), kAgain), 0);
    unsigned lowest = kN;
    for (rte_mbuf* m : again) {
        unsigned i = 0;
        while (i < kN && all[i] != m) ++i;
        ASSERT_LT(i, kN) << "an mbuf that was not in the pool";
        lowest = std::min(lowest, i);
    }
    // The 1000 freed last are indices 3095..4094; the cache's flush order may interleave a
    // few hundred more.
    EXPECT_GE(lowest, kN - kAgain - 1024) << "allocation took an mbuf freed long ago (FIFO)";
    for (rte_mbuf* m : again) rte_pktmbuf_free(m);
    EXPECT_EQ(rte_mempool_avail_count(p), kN);
    rte_mempool_free(p);
}

}  // namespace
}  // namespace sluice::test
