// Process-wide test environment of sluice-unit: the EAL is initialised once by main.cpp, which
// also owns the one mbuf pool every test draws from.
#pragma once

#include <rte_mempool.h>

namespace sluice::test {

// The pool of the test binary (kPoolSize mbufs of RTE_MBUF_DEFAULT_BUF_SIZE).
rte_mempool* unit_pool();

inline constexpr unsigned kPoolSize = 8191;

// True when every mbuf of the pool is back in it (per-lcore caches included).
inline bool pool_full() {
    rte_mempool* p = unit_pool();
    return rte_mempool_avail_count(p) == p->size && rte_mempool_in_use_count(p) == 0;
}

}  // namespace sluice::test
