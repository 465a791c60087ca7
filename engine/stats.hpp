// Per-core engine counters, beside the protocol counters of the core's stack. Written by one
// core only; read by the control thread and telemetry (aligned 64-bit loads, as DPDK's own
// per-core stats are).
#pragma once

#include <cstdint>

#include <rte_common.h>

#include "proto/counters.hpp"

namespace sluice::engine {

#define SLUICE_ENGINE_COUNTERS(X)                                             \
    X(polls, "loop iterations")                                               \
    X(busy_polls, "iterations that had packets")                              \
    X(port_rx, "packets taken from the port's RX queue")                      \
    X(port_tx, "packets the port's TX queue accepted")                        \
    X(port_tx_dropped, "packets the TX queue refused (full): freed, counted") \
    X(ring_in, "packets received from other workers' rings")                  \
    X(ring_out, "packets handed to other workers' rings")                     \
    X(ring_dropped, "packets a full inter-core ring refused: freed, counted") \
    X(sw_tx_cksum, "checksums computed in software at TX")

struct alignas(RTE_CACHE_LINE_SIZE) CoreStats {
#define SLUICE_X(name, help) uint64_t name = 0;
    SLUICE_ENGINE_COUNTERS(SLUICE_X)
#undef SLUICE_X
};

inline CoreStats& operator+=(CoreStats& a, const CoreStats& b) {
#define SLUICE_X(name, help) a.name += b.name;
    SLUICE_ENGINE_COUNTERS(SLUICE_X)
#undef SLUICE_X
    return a;
}

// What telemetry, the rate line and the exit summary read: per worker, the engine's and the
// stack's counters, plus a few facts about the run.
struct StatsView {
    static constexpr unsigned kMaxWorkers = 128;
    unsigned workers = 0;
    unsigned lcore[kMaxWorkers] = {};
    const CoreStats* engine[kMaxWorkers] = {};
    const proto::Counters* proto[kMaxWorkers] = {};
    uint16_t port_id = 0;

    CoreStats engine_total() const {
        CoreStats s;
        for (unsigned i = 0; i < workers; ++i) s += *engine[i];
        return s;
    }
    proto::Counters proto_total() const {
        proto::Counters s;
        for (unsigned i = 0; i < workers; ++i) s += *proto[i];
        return s;
    }
};

}  // namespace sluice::engine
