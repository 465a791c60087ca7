// What every fuzz target starts with: an EAL of its own (no hugepages, PCI or shared config,
// quiet) and a pool of 8191 mbufs. Aborts when either fails: nothing can be fuzzed without.
#pragma once

#include <cstdlib>

#include <rte_eal.h>
#include <rte_mbuf.h>

namespace sluice::fuzz {

inline rte_mempool* init_eal_and_pool() {
    static char* argv[] = {const_cast<char*>("fuzz"),
                           const_cast<char*>("--no-huge"),
                           const_cast<char*>("-m"),
                           const_cast<char*>("256"),
                           const_cast<char*>("--no-pci"),
                           const_cast<char*>("--no-shconf"),
                           const_cast<char*>("--log-level=lib.eal:error"),
                           nullptr};
    if (rte_eal_init(7, argv) < 0) abort();
    rte_mempool* pool = rte_pktmbuf_pool_create("fuzz", 8191, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
    if (!pool) abort();
    return pool;
}

}  // namespace sluice::fuzz
