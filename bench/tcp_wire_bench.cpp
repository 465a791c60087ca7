// sluice-tcp-wire-bench: Sluice TCP against Sluice TCP over the in-memory wire
// (pmd::Wire, two net_ring ports back to back), client and server engines on two cores of
// one process, each the run-to-completion loop of engine/runtime.hpp reduced to one port:
//   RX burst -> Stack::input (TCP) -> Tcp::dispatch (app) -> app poll -> Tcp::flush -> TX
// The apps are sluice-echo's (apps/echo): the client prints the same result lines as
// sluice-echo and linux-tcp-bench, so bench/run_tcp_bench.py reads all three alike.
//
//   sluice-tcp-wire-bench (--rr SIZE | --cps | --bulk [--zero-copy]) [--conns N] [--duration S]
//                         [--size B] [--mtu M] [--verify-checksums] [-- EAL options]
// The wire is a trusted link by default (pmd::PortConfig::trusted_link): like Linux's
// loopback, no checksum is computed; --verify-checksums computes and verifies them in
// software on both ends.
#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_launch.h>
#include <rte_lcore.h>

#include "apps/echo/echo.hpp"
#include "engine/eal.hpp"
#include "engine/runtime.hpp"
#include "pmd/wire.hpp"

using namespace sluice;

namespace {

struct Side {
    const char* name;
    pmd::Port* port;
    proto::Stack stack;
    proto::Tcp tcp;
    apps::Echo* app;
    uint64_t polls = 0, busy = 0, cycles_busy = 0, pkts = 0, pkts_timed = 0;
};

int side_loop(void* arg) {
    Side& s = *static_cast<Side*>(arg);
    rte_mbuf* pkts[64];
    const uint64_t tick = rte_get_tsc_hz() / 1000;
    uint64_t next_timer = rte_rdtsc();
    s.app->start(s.tcp, rte_rdtsc());
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
        if (tx.size()) {
            uint64_t sw = 0;
            const uint16_t sent = s.port->tx(0, tx.data(), tx.size(), &sw);
            if (sent < tx.size()) rte_pktmbuf_free_bulk(tx.data() + sent, tx.size() - sent);
            tx.clear();
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

    engine::EalPlan plan;
    if (eal_args.empty()) {
        plan = engine::private_eal_plan("sluice-tcp-wire-bench", 1024);
        plan.args.push_back("-l");
        plan.args.push_back("0,1");
    } else {
        plan.args.push_back("sluice-tcp-wire-bench");
        plan.args.insert(plan.args.end(), eal_args.begin(), eal_args.end());
    }
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
        auto* cs = new Side{"client", &wire.a(), {}, {}, nullptr};
        auto* ss = new Side{"server", &wire.b(), {}, {}, nullptr};
        proto::StackConfig cc, sc;
        cc.mac = {{0x02, 0, 0, 0, 0, 1}};
        sc.mac = {{0x02, 0, 0, 0, 0, 2}};
        engine::parse_ipv4("198.18.0.1", cc.ip);
        engine::parse_ipv4("198.18.0.2", sc.ip);
        cc.prefix_len = sc.prefix_len = 24;
        cc.mtu = sc.mtu = mtu;
        cc.tsc_hz = sc.tsc_hz = rte_get_tsc_hz();
        client.dst = sc.ip;
        uint8_t secret[16];
        for (uint8_t& b : secret) b = uint8_t(rand());
        client.tcp.mss = server.tcp.mss = uint16_t(mtu - 40);
        apps::Echo capp(client, 0), sapp(server, 0);
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
            rte_eal_remote_launch(side_loop, ss, server_lcore);
            // The server listens before the client's first SYN: give it a moment.
            rte_delay_ms(20);
            side_loop(cs);
            rte_eal_mp_wait_lcore();
            rc = capp.exit_code();
            for (Side* s : {cs, ss}) {
                const double per = s->pkts_timed ? double(s->cycles_busy) / double(s->pkts_timed) : 0;
                fprintf(stderr,
                        "%s: packets_in=%" PRIu64 " busy_polls=%" PRIu64
                        " cycles_per_packet_in=%.0f segs_out=%" PRIu64 " retransmits=%" PRIu64 "\n",
                        s->name, s->pkts, s->busy, per, s->tcp.counters().segs_out,
                        s->tcp.counters().retransmits);
                if (s->stack.counters().total_drops() || s->tcp.counters().bad_checksum) {
                    fprintf(stderr, "%s: drops:", s->name);
                    for (unsigned i = 0; i < proto::kDropCount; ++i)
                        if (s->stack.counters().drops[i])
                            fprintf(stderr, " %s=%" PRIu64, proto::kDropNames[i],
                                    s->stack.counters().drops[i]);
                    fprintf(stderr, " tcp_bad_checksum=%" PRIu64 "\n",
                            s->tcp.counters().bad_checksum);
                }
            }
        } else {
            rc = 1;
        }
        delete cs;
        delete ss;
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
