// sluice-unit: one GoogleTest binary for the unit tests. The EAL is initialised once, without
// hugepages, PCI or shared config, under a per-process file prefix so that parallel runs do
// not collide; one mbuf pool serves every test.
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include "engine/eal.hpp"
#include "tests/unit/unit_env.hpp"

namespace sluice::test {

static rte_mempool* g_pool = nullptr;

rte_mempool* unit_pool() {
    return g_pool;
}

}  // namespace sluice::test

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);

    sluice::engine::Eal eal;  // cleaned up, runtime directory removed, on return
    if (eal.init(sluice::engine::private_eal_plan("sluice-unit", 512)) != 0) return 1;
    sluice::test::g_pool = rte_pktmbuf_pool_create("sluice_unit", sluice::test::kPoolSize, 256, 0,
                                                   RTE_MBUF_DEFAULT_BUF_SIZE, int(rte_socket_id()));
    if (sluice::test::g_pool == nullptr) {
        fprintf(stderr, "sluice-unit: cannot create the mbuf pool: %s\n", rte_strerror(rte_errno));
        return 1;
    }

    const int rc = RUN_ALL_TESTS();

    rte_mempool_free(sluice::test::g_pool);
    sluice::test::g_pool = nullptr;
    return rc;
}
