// The run-to-completion runtime: one worker per EAL lcore, each owning its RX/TX queues and a
// protocol stack; per worker, in one loop (DPDK l2fwd/l3fwd style):
//
//   RX burst -> [software RSS to other workers' rings] -> stack.input (classify, ARP, IPv4,
//   ICMP, UDP -> app) -> TX burst (checksums finished in software where the port cannot)
//
// A full ring or TX queue is a counted drop, never a stall. A control thread (not an lcore)
// prints the live rate line, enforces --duration, and the summary is printed at exit.
#pragma once

#include <atomic>
#include <csignal>
#include <cstdio>
#include <map>
#include <new>
#include <string>
#include <vector>
#include <functional>

#include <pthread.h>

#include <unistd.h>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_memcpy.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "engine/eal.hpp"
#include "engine/options.hpp"
#include "engine/soft_rss.hpp"
#include "engine/stats.hpp"
#include "engine/telemetry.hpp"
#include "pmd/impair.hpp"
#include "pmd/port.hpp"
#include "proto/stack.hpp"
#include "proto/tcp.hpp"

namespace sluice::engine {

// Optional hooks of an app (detected at compile time):
//   tcp_config(proto::TcpConfig&)          adjusts the TCP configuration (TCP apps)
//   start(proto::Tcp&, uint64_t now)      on the worker's core before its loop (listen, connect)
//   poll(proto::Tcp&, uint64_t now)       every loop iteration (clients: open, send, finish)
//   exit_code()                           the process exit code the app asks for
//   print_summary() const                 its own lines after the engine's exit summary
template <class A>
concept HasStart = requires(A a, proto::Tcp& t, uint64_t now) {
    a.start(t, now);
};
template <class A>
concept HasPoll = requires(A a, proto::Tcp& t, uint64_t now) {
    a.poll(t, now);
};
template <class A>
concept HasSummary = requires(const A a) {
    a.print_summary();
};
template <class A>
concept HasExitCode = requires(A a) {
    { a.exit_code() } -> std::convertible_to<int>;
};

// Whether a worker expires its timers in this iteration. Timers run once a period
// (`period` TSC cycles), but not while the receive queue still holds packets (the last burst
// came back full): those may be the very ACKs that cancel a retransmission or loss-probe
// timer due now, and expiring it first sends a probe the peer has already answered (a busy
// core that fell behind by more than a probe timeout did that to every connection whose ACK
// was past the first burst). A backlog defers them by one period at most.
constexpr bool timers_due(uint64_t now, uint64_t next_timer, uint64_t period, bool rx_backlog) {
    return now >= next_timer && (!rx_backlog || now - next_timer >= period);
}

// Process-wide stop flag, set by SIGINT/SIGTERM and --duration.
std::atomic<bool>& stop_flag();
std::atomic<unsigned>& signal_count();  // SIGINT/SIGTERM received
void install_signal_handlers();

// Control-path helpers shared by every runtime instantiation (runtime.cpp).
// Every Sluice mbuf pool: a LIFO ("lf_stack") unless EAL's --mbuf-pool-ops-name says otherwise.
inline constexpr const char* kPoolOps = "lf_stack";
rte_mempool* create_pool(const char* name, unsigned n, int socket, uint16_t data_room);
const char* pool_ops(const rte_mempool* p);  // the pool's driver ("lf_stack", "ring_mp_mc")
// An app's own pool, handed to the runtime: checked (every mbuf back) and freed with the
// runtime's pools, after the workers (and the TCP queues that may hold its mbufs) are gone.
// Thread-safe (workers create their pools in start()).
void adopt_pool(rte_mempool* p);
// The adopted pools, taken (the runtime frees them).
std::vector<rte_mempool*> take_adopted_pools();
void print_rate_line(const StatsView& v, double dt, CoreStats& last_e, proto::Counters& last_p);
void print_summary(const char* app, const StatsView& v, uint16_t port_id);
std::string format_mac(const rte_ether_addr& mac);
std::string describe_offloads(const pmd::Offloads& o);
// --seed: transmits `count` valid self-addressed UDP frames of `size` bytes (MACs and IPs both
// the stack's, 256 flows from ports 1024..1279 to port 9, correct checksums) on queue 0.
// Returns how many the port took.
uint32_t seed_frames(pmd::Port& port, rte_mempool* pool, const proto::StackConfig& sc,
                     uint32_t count, uint16_t size);

template <class App>
class Runtime {
  public:
    using AppConfig = typename App::Config;

    // Runs until stopped; returns the process exit code.
    static int run(const char* app_name, const Options& opt, const AppConfig& app_cfg);

  private:
    static constexpr unsigned kMaxWorkers = StatsView::kMaxWorkers;
    static constexpr unsigned kRingSize = 1024;
    static constexpr uint16_t kSteerBurst = 64;    // RX burst cap with software RSS (stack arrays)
    static constexpr uint64_t kProfileEvery = 16;  // iterations per one timed by stage
    static constexpr uint64_t kTxHoldMs = 10;      // a full TX queue: wait, then drop
    // TCP's pool of small buffers: headers, indirect mbufs, small copies.
    static constexpr uint16_t kSmallDataRoom = RTE_PKTMBUF_HEADROOM + 384;

    struct alignas(RTE_CACHE_LINE_SIZE) Worker {
        Worker(const AppConfig& c, unsigned idx) : app(c, idx) {}
        proto::Stack stack;
        proto::Tcp tcp;  // initialised for TCP apps only
        App app;
        CoreStats stats;
        unsigned index = 0;
        unsigned lcore = 0;
        int rxq = -1;                           // owned RX queue, or -1
        int txq = -1;                           // owned TX queue, or -1 (hands TX to tx_ring)
        rte_ring* tx_ring = nullptr;            // when txq < 0: to the TX queue's owner
        rte_ring* steer_out[kMaxWorkers] = {};  // software RSS: to worker j
        rte_ring* steer_in[kMaxWorkers] = {};   // software RSS: from worker j
        rte_ring* tx_in[kMaxWorkers] = {};      // TX hand-offs this worker transmits
        unsigned n_tx_in = 0;
        rte_ring* arp_in = nullptr;      // ARP facts other workers learned (multi-producer)
        pmd::Impairment rx_imp, tx_imp;  // --impair, on this worker's queues
        const SoftRss* rss = nullptr;    // for the TCP source-port filter
        uint64_t tx_full_since = 0;      // TSC when the TX queue first refused packets
    };

    struct Shared {
        pmd::Port* port;
        Worker* workers[kMaxWorkers];
        unsigned n_workers;
        bool soft_rss;
        SoftRss rss;
        uint16_t burst;
        uint64_t timer_period;
        uint64_t tx_hold_cycles;  // how long a full TX queue is waited for (kTxHoldMs)
    };

    static constexpr bool kTcp = proto::TcpApp<App>;
    static int worker_main(void* arg);
    static bool port_on_core(void* ctx, rte_be32_t l, rte_be32_t r, rte_be16_t lp, rte_be16_t rp);
    static void share_arp(Shared& sh, Worker& w, uint64_t now);
    static void flush_tx(Shared& sh, Worker& w, bool prof = false);
    static void drain(Worker& w);
};

// ---------------------------------------------------------------------------------------------

template <class App>
bool Runtime<App>::port_on_core(void* ctx, rte_be32_t l, rte_be32_t r, rte_be16_t lp,
                                rte_be16_t rp) {
    auto* w = static_cast<Worker*>(ctx);
    return w->rss->target(r, l, rp, lp) == w->index;
}

template <class App>
void Runtime<App>::flush_tx(Shared& sh, Worker& w, bool prof) {
    proto::TxBatch& tx = w.stack.tx();
    uint16_t n = tx.size();
    if (unlikely(w.tx_imp.active()) && (n || w.tx_imp.held())) {
        rte_mbuf* out[proto::TxBatch::kCapacity];
        n = w.tx_imp.apply(tx.data(), n, out, proto::TxBatch::kCapacity, rte_rdtsc());
        rte_memcpy(tx.data(), out, n * sizeof(out[0]));
        tx.resize(n);
    }
    if (n == 0) return;
    const uint64_t t0 = prof ? rte_rdtsc() : 0;
    w.stats.sw_tx_cksum += sh.port->prepare_tx(tx.data(), n);
    const uint64_t t1 = prof ? rte_rdtsc() : 0;
    if (prof) w.stats.cycles_tx_prep += t1 - t0;
    if (w.txq >= 0) {
        const uint16_t sent = sh.port->send(uint16_t(w.txq), tx.data(), n);
        w.stats.port_tx += sent;
        if (unlikely(sent < n)) {
            // The port's queue is full: what it did not take stays at the front of the batch
            // for the next iteration (TCP sees the batch full and waits: backpressure, not a
            // loss it would only notice at its retransmission timeout). A queue that stays
            // full for kTxHoldMs (a peer gone) drops, counted. With --impair the batch is
            // rebuilt each time: drop as before.
            const uint64_t now = rte_rdtsc();
            if (!w.tx_imp.active() &&
                (w.tx_full_since == 0 || now - w.tx_full_since < sh.tx_hold_cycles)) {
                if (w.tx_full_since == 0) w.tx_full_since = now;
                memmove(tx.data(), tx.data() + sent, (n - sent) * sizeof(rte_mbuf*));
                tx.resize(uint16_t(n - sent));
                w.stats.port_tx_busy++;
                if (prof) w.stats.cycles_tx += rte_rdtsc() - t1;
                return;
            }
            rte_pktmbuf_free_bulk(tx.data() + sent, n - sent);
            w.stats.port_tx_dropped += n - sent;
        }
        w.tx_full_since = 0;
    } else {
        // Prepared here, sent as they are by the TX queue's owner.
        const unsigned q =
            rte_ring_sp_enqueue_burst(w.tx_ring, reinterpret_cast<void**>(tx.data()), n, nullptr);
        w.stats.ring_out += q;
        if (unlikely(q < n)) {
            rte_pktmbuf_free_bulk(tx.data() + q, n - q);
            w.stats.ring_dropped += n - q;
        }
    }
    if (prof) w.stats.cycles_tx += rte_rdtsc() - t1;
    tx.clear();
}

// One worker's loop. The loop's busy and idle cycles come from one rdtsc per iteration.
// The cycles by stage (RX burst, software-RSS steering, stack + app, TX checksum
// preparation, TX burst), the way VPP's "show runtime" reads, are timed on one iteration in
// kProfileEvery and divided by the packets of those iterations (prof_packets): a rdtsc costs
// some 30 cycles, and eight of them per iteration were a tenth of a one-packet iteration.
template <class App>
int Runtime<App>::worker_main(void* arg) {
    Shared& sh = *static_cast<Shared*>(arg);
    Worker* self = nullptr;
    for (unsigned i = 0; i < sh.n_workers; ++i)
        if (sh.workers[i]->lcore == rte_lcore_id()) self = sh.workers[i];
    if (!self) return 0;
    Worker& w = *self;
    const uint16_t burst = sh.soft_rss ? RTE_MIN(sh.burst, uint16_t(kSteerBurst)) : sh.burst;
    rte_mbuf* pkts[512];
    rte_mbuf* local[512];
    rte_mbuf* out[kMaxWorkers][kSteerBurst];
    uint16_t n_out[kMaxWorkers];
    uint64_t next_timer = rte_rdtsc();
    std::atomic<bool>& stop = stop_flag();
    uint64_t prev = rte_rdtsc();
    bool prev_busy = false;
    if constexpr (kTcp && HasStart<App>) w.app.start(w.tcp, rte_rdtsc());

    while (!stop.load(std::memory_order_relaxed)) {
        const uint64_t now = rte_rdtsc();
        (prev_busy ? w.stats.cycles_busy : w.stats.cycles_idle) += now - prev;
        prev = now;
        const bool prof = (w.stats.polls++ & (kProfileEvery - 1)) == 0;
        bool busy = false;
        uint64_t t = now;  // start of the stage being timed (prof only)
        auto stage = [&](uint64_t& acc) {
            if (!prof) return;
            const uint64_t t2 = rte_rdtsc();
            acc += t2 - t;
            t = t2;
        };
        bool rx_backlog = false;  // a burst came back full: more may be waiting
        if (w.rxq >= 0) {
            uint16_t n = sh.port->rx(uint16_t(w.rxq), pkts, burst);
            rx_backlog = n == burst;
            if (unlikely(w.rx_imp.active()) && (n || w.rx_imp.held())) {
                // The fault-injecting stage sits between the port and everything else.
                // With software RSS the steering arrays take kSteerBurst at a time; the rest
                // stays in the delay line for the next poll.
                const uint16_t cap = sh.soft_rss ? kSteerBurst : uint16_t(RTE_DIM(local));
                n = w.rx_imp.apply(pkts, n, local, cap, now);
                rte_memcpy(pkts, local, n * sizeof(pkts[0]));
            }
            if (n) {
                busy = true;
                stage(w.stats.cycles_rx);
                w.stats.port_rx += n;
                if (prof) w.stats.prof_packets += n;
                if (!sh.soft_rss) {
                    w.stack.input(pkts, n, now, w.app);
                } else {
                    // Software RSS: keep our flows, hand the rest to their workers.
                    uint16_t nl = 0;
                    for (unsigned j = 0; j < sh.n_workers; ++j) n_out[j] = 0;
                    for (uint16_t i = 0; i < n; ++i) {
                        const uint16_t tgt = sh.rss.target(pkts[i]);
                        if (tgt == w.index)
                            local[nl++] = pkts[i];
                        else
                            out[tgt][n_out[tgt]++] = pkts[i];
                    }
                    for (unsigned j = 0; j < sh.n_workers; ++j) {
                        if (!n_out[j]) continue;
                        const unsigned q = rte_ring_sp_enqueue_burst(
                            w.steer_out[j], reinterpret_cast<void**>(out[j]), n_out[j], nullptr);
                        w.stats.ring_out += q;
                        if (q < n_out[j]) {
                            rte_pktmbuf_free_bulk(out[j] + q, n_out[j] - q);
                            w.stats.ring_dropped += n_out[j] - q;
                        }
                    }
                    stage(w.stats.cycles_steer);
                    if (nl) w.stack.input(local, nl, now, w.app);
                }
                stage(w.stats.cycles_stack);
            }
        }
        if (sh.soft_rss) {
            for (unsigned j = 0; j < sh.n_workers; ++j) {
                if (!w.steer_in[j]) continue;
                if (prof) t = rte_rdtsc();
                const unsigned n = rte_ring_sc_dequeue_burst(
                    w.steer_in[j], reinterpret_cast<void**>(pkts), burst, nullptr);
                rx_backlog |= n == burst;
                if (n) {
                    busy = true;
                    w.stats.ring_in += n;
                    if (prof) w.stats.prof_packets += n;
                    stage(w.stats.cycles_steer);
                    w.stack.input(pkts, uint16_t(n), now, w.app);
                    stage(w.stats.cycles_stack);
                }
            }
        }
        if (unlikely(timers_due(now, next_timer, sh.timer_period, rx_backlog))) {
            if (w.arp_in) share_arp(sh, w, now);
            w.stack.poll_timers(now);
            if constexpr (kTcp) w.tcp.poll(now);
            next_timer = now + sh.timer_period;
        }
        if constexpr (kTcp) {
            // The app's callbacks for what this iteration received, then its own work, then
            // one output pass: replies carry the ACKs of what they answer.
            if constexpr (HasPoll<App>) w.app.poll(w.tcp, now);
            if (w.tcp.has_work()) {
                if (prof) t = rte_rdtsc();
                w.tcp.dispatch(w.app);
                w.tcp.flush(now);
                if (w.tcp.events_pending()) w.tcp.dispatch(w.app);
                stage(w.stats.cycles_stack);
                busy = true;
            }
        }
        flush_tx(sh, w, prof);
        // TX hand-offs from workers without a TX queue of their own.
        for (unsigned k = 0; k < w.n_tx_in; ++k) {
            const unsigned n = rte_ring_sc_dequeue_burst(w.tx_in[k], reinterpret_cast<void**>(pkts),
                                                         burst, nullptr);
            if (!n) continue;
            busy = true;
            if (prof) t = rte_rdtsc();
            w.stats.ring_in += n;
            const uint16_t sent = sh.port->send(uint16_t(w.txq), pkts, uint16_t(n));
            w.stats.port_tx += sent;
            if (sent < n) {
                rte_pktmbuf_free_bulk(pkts + sent, n - sent);
                w.stats.port_tx_dropped += n - sent;
            }
            stage(w.stats.cycles_tx);
        }
        w.stats.busy_polls += busy;
        prev_busy = busy;
    }
    flush_tx(sh, w);
    return 0;
}

// ARP reaches one worker; each worker resolves its own next hops. Once per timer tick, what
// this worker learned goes to every other worker, and what they learned comes in (at most a
// tick, 1 ms, late).
template <class App>
void Runtime<App>::share_arp(Shared& sh, Worker& w, uint64_t now) {
    proto::Stack::ArpFact facts[proto::Stack::kLearnedMax];
    const unsigned out = w.stack.take_learned(facts);
    for (unsigned j = 0; out && j < sh.n_workers; ++j)
        if (sh.workers[j] != &w)
            rte_ring_mp_enqueue_burst_elem(sh.workers[j]->arp_in, facts, sizeof facts[0], out,
                                           nullptr);
    const unsigned in = rte_ring_sc_dequeue_burst_elem(w.arp_in, facts, sizeof facts[0],
                                                       proto::Stack::kLearnedMax, nullptr);
    for (unsigned i = 0; i < in; ++i) w.stack.arp_learned(facts[i], now);
}

template <class App>
void Runtime<App>::drain(Worker& w) {
    auto drain_ring = [](rte_ring* r) {
        if (!r) return;
        void* obj;
        while (rte_ring_sc_dequeue(r, &obj) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(obj));
    };
    for (unsigned j = 0; j < kMaxWorkers; ++j) drain_ring(w.steer_in[j]);
    drain_ring(w.tx_ring);
    w.stack.tx().free_all();
    w.rx_imp.clear();
    w.tx_imp.clear();
}

template <class App>
int Runtime<App>::run(const char* app_name, const Options& opt, const AppConfig& app_cfg) {
    const EalPlan plan = plan_eal(app_name, opt.port, opt.eal_args, hugepages_available());
    for (const std::string& n : plan.notices) fprintf(stderr, "%s: %s\n", app_name, n.c_str());
    Eal eal;
    if (eal.init(plan) != 0) return 1;

    unsigned n_workers = 0;
    unsigned lcores[kMaxWorkers];
    unsigned lc;
    RTE_LCORE_FOREACH(lc) {
        if (n_workers < kMaxWorkers) lcores[n_workers++] = lc;
    }

    // One mbuf pool per NUMA socket in use; sized for descriptors, rings, caches and slack.
    const pmd::DeviceSpec spec = pmd::parse_device(opt.port);
    const bool big_frames = spec.rx_data_room > RTE_MBUF_DEFAULT_BUF_SIZE;
    const unsigned per_pool =
        (big_frames ? 4095 : 16383) + n_workers * (2 * 1024 + kRingSize * (n_workers + 1));
    rte_mempool* pools[RTE_MAX_NUMA_NODES] = {};
    auto pool_for = [&](int socket) -> rte_mempool* {
        if (socket < 0 || socket >= RTE_MAX_NUMA_NODES) socket = 0;
        if (!pools[socket]) {
            const std::string name = "sluice_pool_s" + std::to_string(socket);
            pools[socket] = create_pool(name.c_str(), per_pool, socket, spec.rx_data_room);
        }
        return pools[socket];
    };
    // TCP headers, indirect mbufs and small copies: small buffers, a small working set.
    rte_mempool* small_pools[RTE_MAX_NUMA_NODES] = {};
    auto small_pool_for = [&](int socket) -> rte_mempool* {
        if (socket < 0 || socket >= RTE_MAX_NUMA_NODES) socket = 0;
        if (!small_pools[socket]) {
            const std::string name = "sluice_small_s" + std::to_string(socket);
            small_pools[socket] = create_pool(name.c_str(), 65535, socket, kSmallDataRoom);
        }
        return small_pools[socket];
    };
    auto free_pools = [&] {
        for (rte_mempool** set : {small_pools, pools}) {
            for (unsigned i = 0; i < RTE_MAX_NUMA_NODES; ++i) {
                rte_mempool*& p = set[i];
                if (!p) continue;
                const unsigned avail = rte_mempool_avail_count(p), size = p->size;
                if (avail != size)
                    fprintf(stderr, "%s: warning: %u mbufs not back in %s\n", app_name,
                            size - avail, p->name);
                rte_mempool_free(p);
                p = nullptr;
            }
        }
        for (rte_mempool* p : take_adopted_pools()) {
            const unsigned avail = rte_mempool_avail_count(p), size = p->size;
            if (avail != size)
                fprintf(stderr, "%s: warning: %u mbufs not back in %s\n", app_name, size - avail,
                        p->name);
            rte_mempool_free(p);
        }
    };

    pmd::Port port;
    pmd::PortConfig pc;
    pc.rx_queues = opt.soft_rss ? 1 : uint16_t(n_workers);
    pc.tx_queues = uint16_t(n_workers);
    pc.mtu = opt.mtu;
    pc.hw_offloads = !opt.no_offload;
    pc.queues_without_rss = opt.queues_without_rss;
    {
        uint16_t pid = 0;
        const int sock = rte_eth_dev_get_port_by_name(spec.name.c_str(), &pid) == 0
                             ? rte_eth_dev_socket_id(pid)
                             : 0;
        rte_mempool* rxpool = pool_for(sock);
        if (!rxpool || port.open(opt.port, pc, rxpool) != 0) {
            free_pools();
            return 1;
        }
    }

    Shared sh{};
    sh.port = &port;
    sh.n_workers = n_workers;
    sh.burst = opt.burst;
    sh.timer_period = rte_get_tsc_hz() / 1000;  // 1 ms
    sh.tx_hold_cycles = rte_get_tsc_hz() / 1000 * kTxHoldMs;
    sh.soft_rss = port.rx_queues() < n_workers;
    sh.rss.init(uint16_t(n_workers));

    StatsView view;
    view.workers = n_workers;
    view.port_id = port.id();
    view.tsc_hz = rte_get_tsc_hz();
    std::vector<rte_ring*> rings;
    bool ok = true;
    auto make_ring = [&](const std::string& name, int socket) -> rte_ring* {
        rte_ring* r =
            rte_ring_create(name.c_str(), kRingSize, socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
        if (!r) {
            fprintf(stderr, "%s: cannot create ring %s\n", app_name, name.c_str());
            ok = false;
        } else {
            rings.push_back(r);
        }
        return r;
    };

    // RFC 6528 3: one secret key for the ISN function (and SYN cookies), from the OS's entropy.
    uint8_t tcp_secret[16] = {};
    if constexpr (kTcp) {
        FILE* ur = fopen("/dev/urandom", "rb");
        if (!ur || fread(tcp_secret, 1, sizeof tcp_secret, ur) != sizeof tcp_secret) {
            const uint64_t t = rte_rdtsc() ^ uint64_t(getpid()) << 32;
            memcpy(tcp_secret, &t, sizeof t);
        }
        if (ur) fclose(ur);
    }

    proto::StackConfig sc;
    sc.mac = opt.mac_set ? opt.mac : port.station_mac();
    if (opt.mac_set && port.accept_mac(opt.mac) != 0)
        fprintf(stderr, "%s: warning: port %s cannot be told to accept %s\n", app_name,
                port.name().c_str(), format_mac(opt.mac).c_str());
    sc.ip = opt.ip;
    sc.prefix_len = opt.prefix_len;
    sc.gateway = opt.gateway;
    sc.mtu = port.mtu();  // what the port carries: --mtu, unless it cannot (said on stderr)
    sc.tsc_hz = rte_get_tsc_hz();

    for (unsigned i = 0; i < n_workers && ok; ++i) {
        const int socket = int(rte_lcore_to_socket_id(lcores[i]));
        void* mem =
            rte_zmalloc_socket("sluice_worker", sizeof(Worker), RTE_CACHE_LINE_SIZE, socket);
        if (!mem) {
            fprintf(stderr, "%s: out of memory for worker %u\n", app_name, i);
            ok = false;
            break;
        }
        Worker* w = new (mem) Worker(app_cfg, i);
        sh.workers[i] = w;
        w->index = i;
        w->lcore = lcores[i];
        rte_mempool* pool = pool_for(socket);
        if (!pool || !w->stack.init(sc, pool, socket)) ok = false;
        if constexpr (kTcp) {
            if (ok) {
                proto::TcpConfig tc;
                tc.mss = uint16_t(sc.mtu - 40);
                if constexpr (requires(App a, proto::TcpConfig & c) { a.tcp_config(c); })
                    w->app.tcp_config(tc);
                if (!w->tcp.init(tc, &w->stack, socket, tcp_secret, rte_rdtsc())) ok = false;
                w->tcp.set_small_pool(small_pool_for(socket));
                w->tcp.set_linear_tx(port.tx_copies());
                w->tcp.set_sw_l4_cksum(!port.offloads().tx_l4_cksum);
                w->rss = &sh.rss;
                if (n_workers > 1) w->tcp.set_port_filter(&Runtime::port_on_core, w);
                view.tcp[i] = &w->tcp.counters();
            }
        }
        if (opt.impair.rx.any() || opt.impair.tx.any()) {
            w->rx_imp.init(opt.impair.rx, opt.impair.seed * 2 + 2 * i, pool, rte_get_tsc_hz());
            w->tx_imp.init(opt.impair.tx, opt.impair.seed * 2 + 2 * i + 1, pool, rte_get_tsc_hz());
        }
        w->rxq = i < port.rx_queues() ? int(i) : -1;
        w->txq = i < port.tx_queues() ? int(i) : -1;
        view.lcore[i] = lcores[i];
        view.engine[i] = &w->stats;
        view.proto[i] = &w->stack.counters();
        view.impair_rx[i] = &w->rx_imp.stats();
        view.impair_tx[i] = &w->tx_imp.stats();
    }
    for (unsigned i = 0; i < n_workers && ok; ++i) {
        Worker* w = sh.workers[i];
        const int socket = int(rte_lcore_to_socket_id(w->lcore));
        if (w->txq < 0) {
            Worker* owner = sh.workers[i % port.tx_queues()];
            w->tx_ring = make_ring("sl_tx" + std::to_string(i), socket);
            owner->tx_in[owner->n_tx_in++] = w->tx_ring;
        }
        if (n_workers > 1) {
            const std::string name = "sl_arp" + std::to_string(i);
            w->arp_in = rte_ring_create_elem(name.c_str(), sizeof(proto::Stack::ArpFact), 64,
                                             socket, RING_F_SC_DEQ);
            if (!w->arp_in) {
                fprintf(stderr, "%s: cannot create ring %s\n", app_name, name.c_str());
                ok = false;
            } else {
                rings.push_back(w->arp_in);
            }
        }
        if (sh.soft_rss && w->rxq >= 0) {
            for (unsigned j = 0; j < n_workers; ++j) {
                if (j == i) continue;
                rte_ring* r =
                    make_ring("sl_rss" + std::to_string(i) + "_" + std::to_string(j), socket);
                w->steer_out[j] = r;
                sh.workers[j]->steer_in[i] = r;
            }
        }
    }

    std::map<std::string, std::string> info;
    if (ok) {
        info["app"] = app_name;
        info["port"] = opt.port;
        info["driver"] = port.driver();
        info["mac"] = format_mac(sc.mac);
        info["tsc_hz"] = std::to_string(rte_get_tsc_hz());
        info["ip"] = format_ipv4(opt.ip) + "/" + std::to_string(opt.prefix_len);
        info["gateway"] = opt.gateway ? format_ipv4(opt.gateway) : "none";
        info["mtu"] = std::to_string(sc.mtu);
        info["workers"] = std::to_string(n_workers);
        info["rx_queues"] = std::to_string(port.rx_queues());
        info["tx_queues"] = std::to_string(port.tx_queues());
        info["soft_rss"] = sh.soft_rss ? "yes" : "no";
        info["offloads"] = describe_offloads(port.offloads());
        // TCP builds whole segments for a driver that copies frames (Tcp::set_linear_tx).
        if constexpr (kTcp)
            info["offloads"] += port.tx_copies() ? " tx-linear=yes" : " tx-linear=no";
        info["pool_ops"] = pool_ops(sh.workers[0]->stack.pool());
        telemetry_publish(&view, &info);

        install_signal_handlers();
        sh.workers[0]->stack.announce();  // gratuitous ARP (RFC 5227 2.3)
        if (opt.seed_count) {
            const uint32_t seeded =
                seed_frames(port, sh.workers[0]->stack.pool(), sc, opt.seed_count, opt.seed_size);
            if (seeded < opt.seed_count)
                fprintf(stderr, "%s: warning: seeded %u of %u frames\n", app_name, seeded,
                        opt.seed_count);
        }
        const pmd::LinkInfo link = port.link();
        printf(
            "%s: ready on %s (%s, mac %s, link %s) ip %s gateway %s, %u worker%s, %u rx / %u tx "
            "queues%s, offloads: %s, mbuf pools: %s; telemetry: dpdk-telemetry.py -f %s\n",
            app_name, opt.port.c_str(), port.driver(), info["mac"].c_str(), link.up ? "up" : "down",
            info["ip"].c_str(), info["gateway"].c_str(), n_workers, n_workers == 1 ? "" : "s",
            port.rx_queues(), port.tx_queues(), sh.soft_rss ? " (software RSS)" : "",
            info["offloads"].c_str(), info["pool_ops"].c_str(), plan.file_prefix.c_str());
        fflush(stdout);

        const bool live = !opt.quiet && isatty(STDOUT_FILENO);
        std::atomic<bool>& stop = stop_flag();
        // The control loop runs on an EAL control thread: its CPU affinity is the CPUs that
        // are not lcores (DPDK's rule), so it never preempts a worker.
        struct Control {
            std::function<void()> fn;
            static void* run(void* arg) {
                static_cast<Control*>(arg)->fn();
                return nullptr;
            }
        } control{[&] {
            const uint64_t hz = rte_get_tsc_hz();
            const uint64_t start = rte_rdtsc();
            uint64_t last = start;
            CoreStats last_e;
            proto::Counters last_p;
            while (!stop.load()) {
                usleep(50 * 1000);
                const uint64_t now = rte_rdtsc();
                if (opt.duration_s > 0 && double(now - start) / double(hz) >= opt.duration_s)
                    stop.store(true);
                if (live && now - last >= hz) {
                    print_rate_line(view, double(now - last) / double(hz), last_e, last_p);
                    last = now;
                }
            }
            if (live) printf("\n");
        }};
        pthread_t control_thread;
        const bool control_ok = rte_ctrl_thread_create(&control_thread, "sluice-ctl", nullptr,
                                                       &Control::run, &control) == 0;
        if (!control_ok)
            fprintf(stderr, "%s: warning: no control thread (rate line, --duration)\n", app_name);
        rte_eal_mp_remote_launch(&Runtime::worker_main, &sh, CALL_MAIN);
        rte_eal_mp_wait_lcore();
        stop.store(true);
        if (control_ok) pthread_join(control_thread, nullptr);
        print_summary(app_name, view, port.id());
        if constexpr (HasSummary<App>) {
            for (unsigned i = 0; i < n_workers; ++i)
                if (sh.workers[i]) sh.workers[i]->app.print_summary();
        }
        telemetry_publish(nullptr, nullptr);
    }

    if (opt.linger_s > 0 && port.is_open()) {
        // --linger: the workers have stopped, the port stays open until a signal says the
        // peer has stopped polling too. DPDK 22.11's net_memif unmaps its shared memory on the
        // interrupt thread when the peer closes, under a peer lcore still reading it: the
        // peer must stop its workers before this side closes (README, known issue).
        const unsigned seen = signal_count().load();
        printf("%s: lingering (port open until SIGINT/SIGTERM, at most %.0f s)\n", app_name,
               opt.linger_s);
        fflush(stdout);
        const uint64_t hz = rte_get_tsc_hz(), t0 = rte_rdtsc();
        while (signal_count().load() == seen &&
               double(rte_rdtsc() - t0) / double(hz) < opt.linger_s)
            usleep(10 * 1000);
    }

    int app_rc = 0;
    for (unsigned i = 0; i < n_workers; ++i) {
        if (!sh.workers[i]) continue;
        if constexpr (HasExitCode<App>) {
            if (ok && app_rc == 0) app_rc = sh.workers[i]->app.exit_code();
        }
        drain(*sh.workers[i]);
    }
    // What is still waiting in the RX queues (a loopback port's ring, say) goes back too.
    for (uint16_t q = 0; port.is_open() && q < port.rx_queues(); ++q) {
        rte_mbuf* left[64];
        for (unsigned k = 0; k < 1024; ++k) {
            const uint16_t n = port.rx(q, left, 64);
            if (n == 0) break;
            rte_pktmbuf_free_bulk(left, n);
        }
    }
    port.close();
    for (unsigned i = 0; i < n_workers; ++i) {
        if (!sh.workers[i]) continue;
        sh.workers[i]->~Worker();
        rte_free(sh.workers[i]);
    }
    for (rte_ring* r : rings) rte_ring_free(r);
    free_pools();
    return ok ? app_rc : 1;
}

}  // namespace sluice::engine
