// sluice-pubsub-wire-bench: sluice-broker's Broker app (apps/broker/broker.hpp) against the
// pub/sub load generator (SluicePubSub, sluice_pubsub_app.hpp) in ONE process, over the
// in-memory wire (pmd::Wire: two net_ring ports back to back), each side an engine of its own
// on its own lcore, as sluice-tcp-wire-bench (bench/tcp_wire_bench.cpp) runs the echo apps:
//   client (main lcore, 198.18.0.1): the generator; server (next lcore, 198.18.0.2:6379): the
//   broker, one worker, no inter-core bus (Config::bus = nullptr: single-core);
// per side the run-to-completion loop of bench/wire_loop.hpp (the TCP wire bench's)
//   RX burst -> Stack::input (TCP) -> timers -> app poll -> Tcp::dispatch/flush -> TX.
// It isolates Sluice (stack + broker) from the transport: no memif, no second process.
//
//   sluice-pubsub-wire-bench --subs N --size P --duration S [--window W] [--lag L]
//                            [--copy-below N] [--mtu M] [-- EAL options]
// (default EAL options: a private plan, --no-huge -m 1024 --no-pci, -l 0,1). The output is the
// generator's, as sluice-pubsub-load prints it (one `pubsub: subs=...` line on stdout, a
// `pubsub: detail ...` line on stderr; bench/run_pubsub_bench.py reads both), then the broker's
// summary line and, on stderr, each side's loop figures. Exit status: the generator's (0: every
// message delivered, in order), or the broker's if that failed.
//
// The wire is a trusted link (pmd::PortConfig::trusted_link), like Linux's loopback and the TCP
// wire bench: no checksums. A TX burst the wire takes only in part keeps the rest for the next
// iteration, for up to 10 ms before dropping it (the engine Runtime's backpressure).
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_pause.h>

#include "apps/broker/broker.hpp"
#include "bench/pubsub/pubsub_load.hpp"
#include "bench/pubsub/sluice_pubsub_app.hpp"
#include "bench/wire_loop.hpp"
#include "engine/eal.hpp"
#include "engine/runtime.hpp"
#include "pmd/wire.hpp"

using namespace sluice;

namespace {

constexpr const char* kProg = "sluice-pubsub-wire-bench";
constexpr uint64_t kTxHoldMs = 10;  // a full wire: wait, then drop (engine::Runtime's)

template <class App>
using Side = bench::WireSide<App>;

// Every mbuf of `p` back? Warns otherwise; frees it either way.
void check_and_free(rte_mempool* p) {
    if (!p) return;
    const unsigned avail = rte_mempool_avail_count(p), size = p->size;
    if (avail != size)
        fprintf(stderr, "%s: warning: %u mbufs not back in %s\n", kProg, size - avail, p->name);
    rte_mempool_free(p);
}

bool parse_num(const char* v, double lo, double hi, double& out) {
    char* end = nullptr;
    errno = 0;
    const double x = strtod(v, &end);
    if (!*v || *end || errno || !(x >= lo) || !(x <= hi)) return false;
    out = x;
    return true;
}

void usage() {
    fprintf(stderr,
            "usage: %s --subs N --size P --duration S [--window W] [--lag L] [--copy-below N] "
            "[--mtu M] [-- EAL options]\n"
            "  N: 1..%u subscribers (default 1), P: %u..%u payload bytes (default 16),\n"
            "  S: seconds of publishing (default 5), W: PUBLISH commands without their reply\n"
            "  (default 64), L: messages not yet at every subscriber (default: W),\n"
            "  M: both ends' IP MTU, 576..9000 (default 1500)\n",
            kProg, bench::PubSubLoad::kMaxSubs, bench::PubSubLoad::kMinSize,
            bench::PubSubLoad::kMaxSize);
}

}  // namespace

int main(int argc, char** argv) {
    using bench::PubSubLoad;
    bench::SluicePubSub::Config gen;
    gen.prog = kProg;
    gen.load.duration_s = 5;
    // The broker's --copy-below (its default unless given; 0: every payload by reference).
    uint32_t copy_below = apps::broker::Broker::Config{}.copy_below;
    uint16_t mtu = 1500;
    std::vector<std::string> eal_args;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--") {
            for (++i; i < argc; ++i) eal_args.push_back(argv[i]);
            break;
        }
        if (a == "-h" || a == "--help") {
            usage();
            return 0;
        }
        if (i + 1 >= argc) {
            usage();
            return 2;
        }
        const char* v = argv[++i];
        double x = 0;
        bool ok;
        if (a == "--subs") {
            ok = parse_num(v, 1, PubSubLoad::kMaxSubs, x) && x == double(uint32_t(x));
            gen.load.subs = uint32_t(x);
        } else if (a == "--size") {
            ok = parse_num(v, PubSubLoad::kMinSize, PubSubLoad::kMaxSize, x) &&
                 x == double(uint32_t(x));
            gen.load.size = uint32_t(x);
        } else if (a == "--duration") {
            ok = parse_num(v, 1e-3, 1e6, x);
            gen.load.duration_s = x;
        } else if (a == "--window") {
            ok = parse_num(v, 1, PubSubLoad::kMaxWindow, x) && x == double(uint32_t(x));
            gen.load.window = uint32_t(x);
        } else if (a == "--lag") {
            ok = parse_num(v, 1, PubSubLoad::kMaxWindow, x) && x == double(uint32_t(x));
            gen.load.lag = uint32_t(x);
        } else if (a == "--mtu") {  // both ends' IP MTU (the wire is a trusted link)
            ok = parse_num(v, 576, 9000, x) && x == double(uint32_t(x));
            mtu = uint16_t(x);
        } else if (a == "--copy-below") {  // the broker's --copy-below
            ok = parse_num(v, 0, 65536, x) && x == double(uint32_t(x));
            copy_below = uint32_t(x);
        } else {
            ok = false;
        }
        if (!ok) {
            fprintf(stderr, "%s: bad %s '%s'\n", kProg, a.c_str(), v);
            usage();
            return 2;
        }
    }

    const engine::EalPlan plan = bench::wire_eal_plan(kProg, eal_args);
    engine::Eal eal;
    if (eal.init(plan) != 0) return 1;
    const unsigned server_lcore = rte_get_next_lcore(rte_get_main_lcore(), 1, 0);
    if (server_lcore >= RTE_MAX_LCORE) {
        fprintf(stderr, "%s: needs two lcores (-l 0,1)\n", kProg);
        return 2;
    }
    const int socket = int(rte_socket_id());
    rte_mempool* pool = engine::create_pool("slpw_pool", 131071, socket, RTE_MBUF_DEFAULT_BUF_SIZE);
    if (!pool) return 1;
    rte_mempool* small = nullptr;
    int rc = 0;
    {
        pmd::Wire wire;
        pmd::PortConfig pc;
        pc.mtu = mtu;
        pc.trusted_link = true;  // like Linux's loopback: no checksums
        if (wire.open("slpw", pc, pool, 4096) != 0) {
            rte_mempool_free(pool);
            return 1;
        }
        proto::StackConfig cc, sc;
        bench::wire_stack_configs(mtu, cc, sc);

        apps::broker::Broker::Config bcfg;
        bcfg.listen_port = 6379;
        bcfg.tcp.max_conns = std::max<uint32_t>(16384, gen.load.subs + 1 + 64);
        bcfg.bus = nullptr;  // one worker: no inter-core bus (bus_attach: single-core)
        bcfg.copy_below = copy_below;
        gen.dst = sc.ip;
        gen.dst_port = bcfg.listen_port;

        // The apps go first at the end (as engine::Runtime's workers: app, then TCP, then the
        // stack), the sides (TCP's queues, the stacks' TX batches) next, then the wire's rings.
        auto cs = std::make_unique<Side<bench::SluicePubSub>>();
        auto ss = std::make_unique<Side<apps::broker::Broker>>();
        auto capp = std::make_unique<bench::SluicePubSub>(gen, 0);
        auto sapp = std::make_unique<apps::broker::Broker>(bcfg, 0);
        cs->name = "client";
        cs->port = &wire.a();
        cs->app = capp.get();
        cs->tx_hold_ms = kTxHoldMs;
        ss->name = "server";
        ss->port = &wire.b();
        ss->app = sapp.get();
        ss->tx_hold_ms = kTxHoldMs;

        uint8_t secret[16];
        for (uint8_t& b : secret) b = uint8_t(rand());
        proto::TcpConfig ctc, stc;
        ctc.mss = stc.mss = uint16_t(mtu - 40);
        capp->tcp_config(ctc);
        sapp->tcp_config(stc);
        const uint64_t now = rte_rdtsc();
        bool ok = cs->stack.init(cc, pool, socket) && ss->stack.init(sc, pool, socket) &&
                  cs->tcp.init(ctc, &cs->stack, socket, secret, now) &&
                  ss->tcp.init(stc, &ss->stack, socket, secret, now);
        small = engine::create_pool("slpw_small", 65535, socket, RTE_PKTMBUF_HEADROOM + 384);
        ok = ok && small;
        if (ok) {
            cs->tcp.set_small_pool(small);
            ss->tcp.set_small_pool(small);
            // Both ends know each other (no ARP exchange inside the measurement).
            cs->stack.arp_learned({sc.ip, sc.mac}, now);
            ss->stack.arp_learned({cc.ip, cc.mac}, now);
            engine::install_signal_handlers();
            std::atomic<bool>& stop = engine::stop_flag();
            rte_eal_remote_launch(bench::wire_side_loop<apps::broker::Broker>, ss.get(),
                                  server_lcore);
            // The broker listens before the generator's first SYN.
            const uint64_t deadline = rte_rdtsc() + 30 * rte_get_tsc_hz();
            while (!ss->started.load(std::memory_order_acquire) && !stop.load() &&
                   rte_rdtsc() < deadline)
                rte_pause();
            if (!ss->started.load(std::memory_order_acquire) || sapp->exit_code() != 0) {
                fprintf(stderr, "%s: the broker did not start\n", kProg);
                stop.store(true);
                rc = 1;
            } else {
                bench::wire_side_loop<bench::SluicePubSub>(cs.get());
            }
            rte_eal_mp_wait_lcore();
            if (rc == 0) rc = capp->exit_code();
            if (rc == 0 && sapp->exit_code() != 0) {
                fprintf(stderr, "%s: the broker failed (exit code %d)\n", kProg, sapp->exit_code());
                rc = sapp->exit_code();
            }
            fflush(stdout);
            sapp->print_summary();
            fflush(stdout);
            bench::print_wire_side(*cs, true);
            bench::print_wire_side(*ss, true);
        } else {
            rc = 1;
        }
        capp.reset();
        sapp.reset();
        cs.reset();
        ss.reset();
        wire.close();
    }
    // Every mbuf back: the TCP small pool, the broker's pools (adopted in Broker::start), the
    // main pool last (indirect mbufs in the others refer to its buffers).
    check_and_free(small);
    for (rte_mempool* p : engine::take_adopted_pools()) check_and_free(p);
    check_and_free(pool);
    return rc;
}
