// sluice-unit: one GoogleTest binary for the unit tests. The EAL is initialised once, without
// hugepages, PCI or shared config, under a per-process file prefix so that parallel runs do
// not collide; one mbuf pool serves every test.
#include <filesystem>
#include <system_error>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include "tests/unit/unit_env.hpp"

namespace sluice::test {

static rte_mempool* g_pool = nullptr;

rte_mempool* unit_pool() {
    return g_pool;
}

}  // namespace sluice::test

int main(int argc, char** argv) {
    ::testing::InitGoogleTest(&argc, argv);

    std::vector<std::string> args = {
        "sluice-unit",
        "--no-huge",
        "-m",
        "512",
        "--no-pci",
        "--no-shconf",
        "--file-prefix",
        "sluice-unit-" + std::to_string(getpid()),
        "--log-level=lib.eal:warning",
        // rte_ip_frag_table_create logs every table at INFO under USER1.
        "--log-level=user1:warning",
    };
    std::vector<char*> eal_argv;
    for (std::string& s : args) eal_argv.push_back(s.data());
    eal_argv.push_back(nullptr);
    if (rte_eal_init(int(eal_argv.size() - 1), eal_argv.data()) < 0) {
        fprintf(stderr, "sluice-unit: rte_eal_init failed: %s\n", rte_strerror(rte_errno));
        return 1;
    }
    sluice::test::g_pool = rte_pktmbuf_pool_create("sluice_unit", sluice::test::kPoolSize, 256, 0,
                                                   RTE_MBUF_DEFAULT_BUF_SIZE, int(rte_socket_id()));
    if (sluice::test::g_pool == nullptr) {
        fprintf(stderr, "sluice-unit: cannot create the mbuf pool: %s\n", rte_strerror(rte_errno));
        rte_eal_cleanup();
        return 1;
    }

    const int rc = RUN_ALL_TESTS();

    rte_mempool_free(sluice::test::g_pool);
    sluice::test::g_pool = nullptr;
    // The EAL leaves its runtime directory behind; this process's is ours to remove.
    const std::string runtime_dir = rte_eal_get_runtime_dir();
    rte_eal_cleanup();
    std::error_code ec;
    std::filesystem::remove_all(runtime_dir, ec);
    return rc;
}
