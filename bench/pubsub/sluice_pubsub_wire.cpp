// sluice-pubsub-wire-bench: sluice-broker's Broker app (apps/broker/broker.hpp) against the
// pub/sub load generator (SluicePubSub, sluice_pubsub_app.hpp) in ONE process, over the
// in-memory wire (pmd::Wire: two net_ring ports back to back), each side an engine of its own
// on its own lcore, as sluice-tcp-wire-bench (bench/tcp_wire_bench.cpp) runs the echo apps:
//   client (main lcore, 198.18.0.1): the generator; server (next lcore, 198.18.0.2:6379): the
//   broker, one worker, no inter-core bus (Config::bus = nullptr: single-core);
// per side the run-to-completion loop
//   RX burst -> Stack::input (TCP) -> timers -> app poll -> Tcp::dispatch/flush -> TX.
// It isolates Sluice (stack + broker) from the transport: no memif, no second process.
//
//   sluice-pubsub-wire-bench --subs N --size P --duration S [--window W] [--lag L]
//                            [-- EAL options]
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
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
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
#include "engine/eal.hpp"
#include "engine/runtime.hpp"
#include "pmd/wire.hpp"

using namespace sluice;

namespace {

constexpr const char* kProg = "sluice-pubsub-wire-bench";
constexpr uint64_t kTxHoldMs = 10;  // a full wire: wait, then drop (engine::Runtime's)

template <class App>
struct Side {
    const char* name;
    pmd::Port* port;
    App* app = nullptr;
    proto::Stack stack;
    proto::Tcp tcp;
    std::atomic<bool> started{false};  // app.start() has run (the broker listens)
    uint64_t polls = 0, busy = 0, cycles_busy = 0, pkts = 0, pkts_timed = 0;
    uint64_t tx_busy = 0, tx_dropped = 0;
};

template <class App>
int side_loop(void* arg) {
    Side<App>& s = *static_cast<Side<App>*>(arg);
    rte_mbuf* pkts[64];
    const uint64_t tick = rte_get_tsc_hz() / 1000;
    const uint64_t hold = tick * kTxHoldMs;
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
        if (now >= next_timer) {
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
                // The wire's ring is full: the rest waits at the front of the batch (TCP sees
                // the batch full and waits), dropped only after kTxHoldMs.
                if (tx_full_since == 0 || now - tx_full_since < hold) {
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

template <class App>
void print_side(const Side<App>& s) {
    const double per = s.pkts_timed ? double(s.cycles_busy) / double(s.pkts_timed) : 0;
    fprintf(stderr,
            "%s: packets_in=%" PRIu64 " busy_polls=%" PRIu64
            " cycles_per_packet_in=%.0f segs_out=%" PRIu64 " retransmits=%" PRIu64
            " tx_busy=%" PRIu64 " tx_dropped=%" PRIu64 "\n",
            s.name, s.pkts, s.busy, per, s.tcp.counters().segs_out, s.tcp.counters().retransmits,
            s.tx_busy, s.tx_dropped);
    if (s.stack.counters().total_drops() || s.tcp.counters().bad_checksum) {
        fprintf(stderr, "%s: drops:", s.name);
        for (unsigned i = 0; i < proto::kDropCount; ++i)
            if (s.stack.counters().drops[i])
                fprintf(stderr, " %s=%" PRIu64, proto::kDropNames[i], s.stack.counters().drops[i]);
        fprintf(stderr, " tcp_bad_checksum=%" PRIu64 "\n", s.tcp.counters().bad_checksum);
    }
}

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
            "usage: %s --subs N --size P --duration S [--window W] [--lag L] [--copy-below N] [-- "
            "EAL options]\n"
            "  N: 1..%u subscribers (default 1), P: %u..%u payload bytes (default 16),\n"
            "  S: seconds of publishing (default 5), W: PUBLISH commands without their reply\n"
            "  (default 64), L: messages not yet at every subscriber (default: W)\n",
            kProg, bench::PubSubLoad::kMaxSubs, bench::PubSubLoad::kMinSize,
            bench::PubSubLoad::kMaxSize);
}

}  // namespace

int main(int argc, char** argv) {
    using bench::PubSubLoad;
    bench::SluicePubSub::Config gen;
    gen.prog = kProg;
    gen.load.duration_s = 5;
    uint32_t copy_below = 0;  // the broker's --copy-below (0: every payload by reference)
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

    engine::EalPlan plan;
    if (eal_args.empty()) {
        plan = engine::private_eal_plan(kProg, 1024);
        plan.args.push_back("-l");
        plan.args.push_back("0,1");
    } else {
        plan.args.push_back(kProg);
        plan.args.insert(plan.args.end(), eal_args.begin(), eal_args.end());
    }
    engine::Eal eal;
    if (eal.init(plan) != 0) return 1;
    const unsigned server_lcore = rte_get_next_lcore(rte_get_main_lcore(), 1, 0);
    if (server_lcore >= RTE_MAX_LCORE) {
        fprintf(stderr, "%s: needs two lcores (-l 0,1)\n", kProg);
        return 2;
    }
    const int socket = int(rte_socket_id());
    const uint16_t mtu = 1500;
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
        cc.mac = {{0x02, 0, 0, 0, 0, 1}};
        sc.mac = {{0x02, 0, 0, 0, 0, 2}};
        engine::parse_ipv4("198.18.0.1", cc.ip);
        engine::parse_ipv4("198.18.0.2", sc.ip);
        cc.prefix_len = sc.prefix_len = 24;
        cc.mtu = sc.mtu = mtu;
        cc.tsc_hz = sc.tsc_hz = rte_get_tsc_hz();

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
        ss->name = "server";
        ss->port = &wire.b();
        ss->app = sapp.get();

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
            rte_eal_remote_launch(side_loop<apps::broker::Broker>, ss.get(), server_lcore);
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
                side_loop<bench::SluicePubSub>(cs.get());
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
            print_side(*cs);
            print_side(*ss);
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
