// sluice-tcp-wire-bench: Sluice TCP against Sluice TCP over the in-memory wire
// (pmd::Wire, two net_ring ports back to back), client and server engines on two cores of
// one process, each the run-to-completion loop of engine/runtime.hpp reduced to one port
// (bench/wire_loop.hpp, shared with sluice-pubsub-wire-bench):
//   RX burst -> Stack::input (TCP) -> timers -> app poll -> Tcp::dispatch/flush -> TX
// (a TX burst the wire takes only in part: the rest is dropped at once, TCP retransmits it)
// The apps are sluice-echo's (apps/echo): the client prints the same result lines as
// sluice-echo and linux-tcp-bench, so bench/run_tcp_bench.py reads all three alike.
//
//   sluice-tcp-wire-bench (--rr SIZE | --cps | --bulk [--zero-copy]) [--conns N] [--duration S]
//                         [--size B] [--mtu M] [--verify-checksums] [-- EAL options]
// The wire is a trusted link by default (pmd::PortConfig::trusted_link): like Linux's
// loopback, no checksum is computed; --verify-checksums computes and verifies them in
// software on both ends.
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_launch.h>
#include <rte_lcore.h>

#include "apps/echo/echo.hpp"
#include "bench/wire_loop.hpp"
#include "engine/eal.hpp"
#include "engine/runtime.hpp"
#include "pmd/wire.hpp"

using namespace sluice;

namespace {

using Side = bench::WireSide<apps::Echo>;

void usage() {
    fprintf(stderr,
            "usage: sluice-tcp-wire-bench (--rr SIZE | --cps | --bulk [--zero-copy]) [--conns N] "
            "[--duration S] [--size B] [--mtu M] [--verify-checksums] [-- EAL options]\n");
}

}  // namespace

int main(int argc, char** argv) {
    apps::Echo::Config client, server;
    client.dst_port = 7;
    client.duration_s = 5;
    uint16_t mtu = 1500;
    bool trusted = true;
    std::vector<std::string> eal_args;
    bool mode_set = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto val = [&]() -> const char* {
            if (i + 1 >= argc) {
                usage();
                exit(2);
            }
            return argv[++i];
        };
        if (a == "--") {
            for (++i; i < argc; ++i) eal_args.push_back(argv[i]);
            break;
        } else if (a == "--rr") {
            client.mode = apps::Echo::Mode::rr;
            client.size = uint32_t(atoi(val()));
            mode_set = true;
        } else if (a == "--cps") {
            client.mode = apps::Echo::Mode::cps;
            mode_set = true;
        } else if (a == "--bulk") {
            client.mode = apps::Echo::Mode::bulk;
            client.size = 65536;
            server.discard = true;
            mode_set = true;
        } else if (a == "--zero-copy") {
            client.zero_copy = true;
        } else if (a == "--conns") {
            client.conns = uint32_t(atoi(val()));
        } else if (a == "--duration") {
            client.duration_s = atof(val());
        } else if (a == "--size") {
            client.size = uint32_t(atoi(val()));
        } else if (a == "--verify-checksums") {
            trusted = false;
        } else if (a == "--mtu") {
            mtu = uint16_t(atoi(val()));
        } else {
            usage();
            return 2;
        }
    }
    if (!mode_set || client.conns == 0 || client.size == 0 || mtu < 576 || mtu > 9000) {
        usage();
        return 2;
    }
    client.timeout_s = client.duration_s + 30;
    // More connections than the default table holds, and TIME-WAIT slots for --cps.
    client.tcp.max_conns = server.tcp.max_conns = 65536;

    const engine::EalPlan plan = bench::wire_eal_plan("sluice-tcp-wire-bench", eal_args);
    engine::Eal eal;
    if (eal.init(plan) != 0) return 1;
    const unsigned server_lcore = rte_get_next_lcore(rte_get_main_lcore(), 1, 0);
    if (server_lcore >= RTE_MAX_LCORE) {
        fprintf(stderr, "sluice-tcp-wire-bench: needs two lcores (-l 0,1)\n");
        return 2;
    }
    rte_mempool* pool =
        engine::create_pool("slwb_pool", 131071, int(rte_socket_id()), RTE_MBUF_DEFAULT_BUF_SIZE);
    if (!pool) return 1;
    int rc = 0;
    {
        pmd::Wire wire;
        pmd::PortConfig pc;
        pc.mtu = mtu;
        // Like Linux's loopback (the anchor): a link that cannot damage a frame computes
        // no checksum (--verify-checksums: computed and verified in software instead).
        pc.trusted_link = trusted;
        if (wire.open("slwb", pc, pool, 4096) != 0) {
            rte_mempool_free(pool);
            return 1;
        }
        auto cs = std::make_unique<Side>();
        auto ss = std::make_unique<Side>();
        cs->name = "client";
        cs->port = &wire.a();
        ss->name = "server";
        ss->port = &wire.b();
        proto::StackConfig cc, sc;
        bench::wire_stack_configs(mtu, cc, sc);
        client.dst = sc.ip;
        uint8_t secret[16];
        for (uint8_t& b : secret) b = uint8_t(rand());
        client.tcp.mss = server.tcp.mss = uint16_t(mtu - 40);
        // Each app on its own cache lines (the two lcores write their apps' counters).
        alignas(RTE_CACHE_LINE_SIZE) apps::Echo capp(client, 0);
        alignas(RTE_CACHE_LINE_SIZE) apps::Echo sapp(server, 0);
        cs->app = &capp;
        ss->app = &sapp;
        const uint64_t now = rte_rdtsc();
        bool ok = cs->stack.init(cc, pool, int(rte_socket_id())) &&
                  ss->stack.init(sc, pool, int(rte_socket_id())) &&
                  cs->tcp.init(client.tcp, &cs->stack, int(rte_socket_id()), secret, now) &&
                  ss->tcp.init(server.tcp, &ss->stack, int(rte_socket_id()), secret, now);
        rte_mempool* small = engine::create_pool("slwb_small", 65535, int(rte_socket_id()),
                                                 RTE_PKTMBUF_HEADROOM + 384);
        ok = ok && small;
        if (ok) {
            cs->tcp.set_small_pool(small);
            ss->tcp.set_small_pool(small);
        }
        if (ok) {
            // Both ends know each other (no ARP exchange inside the measurement).
            cs->stack.arp_learned({sc.ip, sc.mac}, now);
            ss->stack.arp_learned({cc.ip, cc.mac}, now);
            engine::install_signal_handlers();
            rte_eal_remote_launch(bench::wire_side_loop<apps::Echo>, ss.get(), server_lcore);
            // The server listens before the client's first SYN: give it a moment.
            rte_delay_ms(20);
            bench::wire_side_loop<apps::Echo>(cs.get());
            rte_eal_mp_wait_lcore();
            rc = capp.exit_code();
            for (const Side* s : {cs.get(), ss.get()}) bench::print_wire_side(*s, false);
        } else {
            rc = 1;
        }
        cs.reset();
        ss.reset();
        wire.close();
        if (small) {
            if (rte_mempool_in_use_count(small))
                fprintf(stderr, "warning: %u small mbufs not back\n",
                        rte_mempool_in_use_count(small));
            rte_mempool_free(small);
        }
    }
    const unsigned avail = rte_mempool_avail_count(pool), size = pool->size;
    if (avail != size) fprintf(stderr, "warning: %u mbufs not back in the pool\n", size - avail);
    rte_mempool_free(pool);
    return rc;
}
