// The two ends of a wire bench (sluice-tcp-wire-bench, bench/tcp_wire_bench.cpp;
// sluice-pubsub-wire-bench, bench/pubsub/sluice_pubsub_wire.cpp): a client and a server engine
// in one process over the in-memory wire (pmd::Wire, two net_ring ports back to back), each on
// its own lcore running the run-to-completion loop of engine/runtime.hpp reduced to one port:
//   RX burst -> Stack::input (TCP) -> timers -> app poll -> Tcp::dispatch/flush -> TX.
// Also the EAL plan, the two stacks' addresses and the per-side figures both print.
#pragma once

#include <atomic>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <rte_cycles.h>
#include <rte_mbuf.h>

#include "engine/eal.hpp"
#include "engine/options.hpp"
#include "engine/runtime.hpp"
#include "pmd/port.hpp"
#include "proto/stack.hpp"
#include "proto/tcp.hpp"

namespace sluice::bench {

// One end: its port of the wire, its stack and TCP, its app (not owned). Cache-line aligned:
// each side's loop writes its counters every iteration, and a line shared with the other
// side's fields would bounce between the two cores.
template <class App>
struct alignas(RTE_CACHE_LINE_SIZE) WireSide {
    const char* name = nullptr;
    pmd::Port* port = nullptr;
    App* app = nullptr;
    proto::Stack stack;
    proto::Tcp tcp;
    // A TX burst the wire takes only in part: 0 drops the rest at once; N keeps it at the front
    // of the batch for the next iterations (TCP sees the batch full and waits), dropped only
    // after N ms (the engine Runtime's backpressure).
    uint64_t tx_hold_ms = 0;
    std::atomic<bool> started{false};  // app.start() has run (a server listens)
    uint64_t polls = 0, busy = 0, cycles_busy = 0, pkts = 0, pkts_timed = 0;
    uint64_t tx_busy = 0, tx_dropped = 0;
};

// The side's loop until engine::stop_flag(); an lcore function (arg: a WireSide<App>*).
template <class App>
int wire_side_loop(void* arg) {
    WireSide<App>& s = *static_cast<WireSide<App>*>(arg);
    rte_mbuf* pkts[64];
    const uint64_t tick = rte_get_tsc_hz() / 1000;
    const uint64_t hold = tick * s.tx_hold_ms;
    uint64_t next_timer = rte_rdtsc();
    uint64_t tx_full_since = 0;
    s.app->start(s.tcp, rte_rdtsc());
    s.started.store(true, std::memory_order_release);
    std::atomic<bool>& stop = engine::stop_flag();
    while (!stop.load(std::memory_order_relaxed)) {
        const uint64_t now = rte_rdtsc();
        s.polls++;
        const uint16_t n = s.port->rx(0, pkts, 64);
        bool busy = n != 0;
        if (n) {
            s.pkts += n;
            s.stack.input(pkts, n, now, *s.app);
        }
        if (engine::timers_due(now, next_timer, tick, n == RTE_DIM(pkts))) {
            s.stack.poll_timers(now);
            s.tcp.poll(now);
            next_timer = now + tick;
        }
        s.app->poll(s.tcp, now);
        if (s.tcp.has_work()) {
            busy = true;
            s.tcp.dispatch(*s.app);
            s.tcp.flush(now);
            if (s.tcp.events_pending()) s.tcp.dispatch(*s.app);
        }
        proto::TxBatch& tx = s.stack.tx();
        if (const uint16_t nt = tx.size()) {
            uint64_t sw = 0;
            const uint16_t sent = s.port->tx(0, tx.data(), nt, &sw);
            if (sent < nt) {
                if (hold != 0 && (tx_full_since == 0 || now - tx_full_since < hold)) {
                    // The wire's ring is full: the rest waits at the front of the batch.
                    if (tx_full_since == 0) tx_full_since = now;
                    memmove(tx.data(), tx.data() + sent, (nt - sent) * sizeof(rte_mbuf*));
                    tx.resize(uint16_t(nt - sent));
                    s.tx_busy++;
                } else {
                    rte_pktmbuf_free_bulk(tx.data() + sent, nt - sent);
                    s.tx_dropped += nt - sent;
                    tx.clear();
                    tx_full_since = 0;
                }
            } else {
                tx.clear();
                tx_full_since = 0;
            }
        }
        if (busy) {
            // Timed on one busy iteration in 16 (a rdtsc is some 30 cycles).
            if ((s.busy++ & 15) == 0) {
                s.cycles_busy += rte_rdtsc() - now;
                s.pkts_timed += n;
            }
        }
    }
    return 0;
}

// The side's figures on stderr (with tx_figures: tx_busy= and tx_dropped= too), and its
// stack's drops, if any.
template <class App>
void print_wire_side(const WireSide<App>& s, bool tx_figures) {
    const double per = s.pkts_timed ? double(s.cycles_busy) / double(s.pkts_timed) : 0;
    fprintf(stderr,
            "%s: packets_in=%" PRIu64 " busy_polls=%" PRIu64
            " cycles_per_packet_in=%.0f segs_out=%" PRIu64 " retransmits=%" PRIu64,
            s.name, s.pkts, s.busy, per, s.tcp.counters().segs_out, s.tcp.counters().retransmits);
    if (tx_figures)
        fprintf(stderr, " tx_busy=%" PRIu64 " tx_dropped=%" PRIu64, s.tx_busy, s.tx_dropped);
    fprintf(stderr, "\n");
    // Every TCP counter that moved, by name (retransmissions by kind, send-queue refusals...).
    fprintf(stderr, "%s: tcp:", s.name);
#define SLUICE_X(name, help) \
    if (s.tcp.counters().name) fprintf(stderr, " " #name "=%" PRIu64, s.tcp.counters().name);
    SLUICE_TCP_COUNTERS(SLUICE_X)
#undef SLUICE_X
    fprintf(stderr, "\n");
    if (s.stack.counters().total_drops() || s.tcp.counters().bad_checksum) {
        fprintf(stderr, "%s: drops:", s.name);
        for (unsigned i = 0; i < proto::kDropCount; ++i)
            if (s.stack.counters().drops[i])
                fprintf(stderr, " %s=%" PRIu64, proto::kDropNames[i], s.stack.counters().drops[i]);
        fprintf(stderr, " tcp_bad_checksum=%" PRIu64 "\n", s.tcp.counters().bad_checksum);
    }
}

// The EAL plan: without EAL options a private one (1024 MB, no hugepages, no PCI) on lcores
// 0,1; else prog and the options.
inline engine::EalPlan wire_eal_plan(const char* prog, const std::vector<std::string>& eal_args) {
    engine::EalPlan plan;
    if (eal_args.empty()) {
        plan = engine::private_eal_plan(prog, 1024);
        plan.args.push_back("-l");
        plan.args.push_back("0,1");
    } else {
        plan.args.push_back(prog);
        plan.args.insert(plan.args.end(), eal_args.begin(), eal_args.end());
    }
    return plan;
}

// The two stacks: client 02:00:00:00:00:01 198.18.0.1/24, server 02:00:00:00:00:02
// 198.18.0.2/24, both with this MTU and the TSC's rate.
inline void wire_stack_configs(uint16_t mtu, proto::StackConfig& client,
                               proto::StackConfig& server) {
    client.mac = {{0x02, 0, 0, 0, 0, 1}};
    server.mac = {{0x02, 0, 0, 0, 0, 2}};
    engine::parse_ipv4("198.18.0.1", client.ip);
    engine::parse_ipv4("198.18.0.2", server.ip);
    client.prefix_len = server.prefix_len = 24;
    client.mtu = server.mtu = mtu;
    client.tsc_hz = server.tsc_hz = rte_get_tsc_hz();
}

}  // namespace sluice::bench
