// Per-core engine counters, beside the protocol counters of the core's stack. Written by one
// core only; read by the control thread and telemetry (aligned 64-bit loads, as DPDK's own
// per-core stats are).
#pragma once

#include <cstdint>

#include <rte_common.h>

#include "pmd/impair.hpp"
#include "proto/counters.hpp"

namespace sluice::engine {

#define SLUICE_ENGINE_COUNTERS(X)                                                \
    X(polls, "loop iterations")                                                  \
    X(busy_polls, "iterations that had packets")                                 \
    X(port_rx, "packets taken from the port's RX queue")                         \
    X(port_tx, "packets the port's TX queue accepted")                           \
    X(port_tx_dropped, "packets the TX queue refused (full): freed, counted")    \
    X(port_tx_busy, "TX bursts the queue took only in part (the rest kept)")     \
    X(ring_in, "packets received from other workers' rings")                     \
    X(ring_out, "packets handed to other workers' rings")                        \
    X(ring_dropped, "packets a full inter-core ring refused: freed, counted")    \
    X(sw_tx_cksum, "checksums computed in software at TX")                       \
    X(cycles_busy, "TSC cycles in iterations that had packets")                  \
    X(cycles_idle, "TSC cycles in iterations that had none")                     \
    X(prof_packets, "packets of the iterations timed by stage (1 in 16)")        \
    X(cycles_rx, "TSC cycles in the port's RX burst (timed iterations)")         \
    X(cycles_steer, "TSC cycles in the software-RSS stage (timed iterations)")   \
    X(cycles_stack, "TSC cycles in the stack and the app (timed iterations)")    \
    X(cycles_tx_prep, "TSC cycles finishing checksums at TX (timed iterations)") \
    X(cycles_tx, "TSC cycles in the port's TX burst (timed iterations)")

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

// One line of the runtime view (VPP's "show runtime"): where a worker's cycles go, per
// packet the stack processed.
struct RuntimeRow {
    uint64_t packets = 0;
    double vector = 0;    // packets per busy iteration
    double busy_pct = 0;  // share of the loop's cycles spent in busy iterations
    double rx = 0, steer = 0, stack = 0, tx_prep = 0, tx = 0;  // cycles per packet, by stage
    double engine = 0;  // steer + stack + tx_prep: Sluice's own work, without the PMD
    double busy = 0;    // all cycles of busy iterations, per packet
};

inline RuntimeRow runtime_row(const CoreStats& e, const proto::Counters& p) {
    RuntimeRow r;
    r.packets = p.rx_packets;
    const double n = r.packets ? double(r.packets) : 1.0;
    r.vector = e.busy_polls ? double(e.port_rx + e.ring_in) / double(e.busy_polls) : 0;
    const uint64_t all = e.cycles_busy + e.cycles_idle;
    r.busy_pct = all ? 100.0 * double(e.cycles_busy) / double(all) : 0;
    // The stages are timed on a sample of the iterations: per packet of that sample.
    const double ns = e.prof_packets ? double(e.prof_packets) : 1.0;
    r.rx = double(e.cycles_rx) / ns;
    r.steer = double(e.cycles_steer) / ns;
    r.stack = double(e.cycles_stack) / ns;
    r.tx_prep = double(e.cycles_tx_prep) / ns;
    r.tx = double(e.cycles_tx) / ns;
    r.engine = r.steer + r.stack + r.tx_prep;
    r.busy = double(e.cycles_busy) / n;
    return r;
}

// What telemetry, the rate line and the exit summary read: per worker, the engine's and the
// stack's counters, plus a few facts about the run.
struct StatsView {
    static constexpr unsigned kMaxWorkers = 128;
    unsigned workers = 0;
    unsigned lcore[kMaxWorkers] = {};
    const CoreStats* engine[kMaxWorkers] = {};
    const proto::Counters* proto[kMaxWorkers] = {};
    const pmd::ImpairStats* impair_rx[kMaxWorkers] = {};  // --impair, per direction
    const pmd::ImpairStats* impair_tx[kMaxWorkers] = {};
    const proto::TcpCounters* tcp[kMaxWorkers] = {};  // TCP apps only
    uint16_t port_id = 0;
    uint64_t tsc_hz = 0;

    CoreStats engine_total() const {
        CoreStats s;
        for (unsigned i = 0; i < workers; ++i) s += *engine[i];
        return s;
    }
    pmd::ImpairStats impair_total(bool rx) const {
        pmd::ImpairStats s;
        for (unsigned i = 0; i < workers; ++i) {
            const pmd::ImpairStats* w = rx ? impair_rx[i] : impair_tx[i];
            if (!w) continue;
#define SLUICE_X(name) s.name += w->name;
            SLUICE_IMPAIR_COUNTERS(SLUICE_X)
#undef SLUICE_X
        }
        return s;
    }
    bool has_tcp() const {
        return workers && tcp[0];
    }
    proto::TcpCounters tcp_total() const {
        proto::TcpCounters s;
        for (unsigned i = 0; i < workers; ++i) {
            if (!tcp[i]) continue;
#define SLUICE_X(name, help) s.name += tcp[i]->name;
            SLUICE_TCP_COUNTERS(SLUICE_X)
#undef SLUICE_X
            s.established += tcp[i]->established;
            s.open_conns += tcp[i]->open_conns;
        }
        return s;
    }
    proto::Counters proto_total() const {
        proto::Counters s;
        for (unsigned i = 0; i < workers; ++i) s += *proto[i];
        return s;
    }
};

}  // namespace sluice::engine
