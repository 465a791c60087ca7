// Two Sluice TCP stacks over an in-memory wire, in one process on a virtual clock: a "client"
// (198.18.0.1) and a "server" (198.18.0.2), each a proto::Stack with a proto::Tcp, and between
// them one pmd::Impairment per direction (loss, reorder, duplication, corruption, delay, all
// deterministic for a seed). Each round of the loop does what engine/runtime.hpp does on a
// core, for both hosts:
//
//   tcp.poll(now) (and stack.poll_timers every ms)  -> timers
//   tx batch -> finish_tx_checksums<false, false> -> impairment -> peer's stack.input(...)
//   tcp.dispatch(app); tcp.flush(now); dispatch again if flush queued events
//
// and then advances the clock by a small step (or by a whole timer tick when nothing moved:
// waiting for a retransmission timeout costs few rounds). A run ends when the caller's `done`
// says so, or fails when it exceeds its virtual-time or round bound: never hangs.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "pmd/impair.hpp"
#include "pmd/tx_checksum.hpp"
#include "proto/stack.hpp"
#include "proto/tcp.hpp"
#include "tests/unit/packet_builder.hpp"

namespace sluice::test {

inline constexpr uint32_t kS2sClientIp = ip(198, 18, 0, 1);
inline constexpr uint32_t kS2sServerIp = ip(198, 18, 0, 2);
inline constexpr rte_ether_addr kS2sClientMac = mac(0x02, 0x00, 0x00, 0x00, 0x51, 0x01);
inline constexpr rte_ether_addr kS2sServerMac = mac(0x02, 0x00, 0x00, 0x00, 0x51, 0x02);
inline constexpr uint16_t kS2sPort = 5001;

// The virtual clock: a 1 GHz "TSC".
inline constexpr uint64_t kS2sHz = 1'000'000'000;
inline constexpr uint64_t kS2sUs = kS2sHz / 1'000'000;
inline constexpr uint64_t kS2sMs = kS2sHz / 1000;

// Everything a UdpApp needs (the stacks serve no UDP port).
struct NoUdp {
    bool udp_port_open(uint16_t) const { return false; }
    void on_udp(proto::Stack&, proto::UdpDatagram& d) { rte_pktmbuf_free(d.m); }
};

struct S2sOptions {
    proto::TcpConfig client_tcp{}, server_tcp{};
    pmd::ImpairSpec c2s{}, s2c{};  // client -> server, server -> client
    uint64_t seed = 1;
    uint64_t step = 20 * kS2sUs;  // clock advance per round with traffic
    uint64_t idle_step = kS2sMs;  // ... and per round without (one timer tick)
    uint64_t time_bound = 0;      // virtual ns; 0: 300 s
    uint64_t round_bound = 0;     // 0: 3,000,000
    // Copy every frame into a fresh single mbuf on the wire (as a NIC's DMA would) instead of
    // passing the sender's chain (header + indirect payload mbufs) along as net_ring does:
    // then corruption can hit the payload too, not only the headers.
    bool linearize = false;
};

// One host: its stack, its TCP, and the impairment of what it transmits.
struct S2sHost {
    const char* name = "";
    std::unique_ptr<proto::Stack> stack;
    std::unique_ptr<proto::Tcp> tcp;
    pmd::Impairment out;
    uint64_t frames_out = 0;
};

class TcpPair {
  public:
    TcpPair(rte_mempool* pool, const S2sOptions& o) : pool_(pool), o_(o) {}
    ~TcpPair() { destroy(); }
    TcpPair(const TcpPair&) = delete;
    TcpPair& operator=(const TcpPair&) = delete;

    // Builds both hosts (each knows the other's MAC) and the impairments.
    ::testing::AssertionResult init() {
        now_ = kT0;
        if (!init_host(client_, "client", kS2sClientMac, kS2sClientIp, o_.client_tcp, o_.c2s,
                       o_.seed * 2 + 1, 0x11))
            return ::testing::AssertionFailure() << "client init failed";
        if (!init_host(server_, "server", kS2sServerMac, kS2sServerIp, o_.server_tcp, o_.s2c,
                       o_.seed * 2 + 2, 0x22))
            return ::testing::AssertionFailure() << "server init failed";
        client_.stack->arp_learned({rte_cpu_to_be_32(kS2sServerIp), kS2sServerMac}, now_);
        server_.stack->arp_learned({rte_cpu_to_be_32(kS2sClientIp), kS2sClientMac}, now_);
        next_stack_timer_ = now_ + kS2sMs;
        trace_ = getenv("SLUICE_S2S_TRACE") != nullptr;
        return ::testing::AssertionSuccess();
    }

    // Tcp before Stack (TCP sends through its stack and detaches from it), then whatever the
    // wire still holds.
    void destroy() {
        for (S2sHost* h : {&client_, &server_}) {
            h->tcp.reset();
            h->stack.reset();
            h->out.clear();
        }
    }

    // Rounds until done() (true) or a bound (false: the caller reports). done() is asked
    // before every round (it may also change the wire, e.g. set_impairment).
    template <class ClientApp, class ServerApp, class Done>
    bool run(ClientApp& ca, ServerApp& sa, Done done) {
        const uint64_t tb = o_.time_bound ? o_.time_bound : 300 * kS2sHz;
        const uint64_t rb = o_.round_bound ? o_.round_bound : 3'000'000;
        const uint64_t start = now_;
        service(client_, ca);
        service(server_, sa);
        while (!done()) {
            if (now_ - start > tb || rounds_ >= rb) return false;
            round(ca, sa);
        }
        return true;
    }

    template <class ClientApp, class ServerApp>
    void round(ClientApp& ca, ServerApp& sa) {
        ++rounds_;
        bool busy = false;
        // Timers.
        const bool stack_timers = now_ >= next_stack_timer_;
        if (stack_timers) next_stack_timer_ = now_ + kS2sMs;
        for (S2sHost* h : {&client_, &server_}) {
            if (stack_timers) h->stack->poll_timers(now_);
            h->tcp->poll(now_);
        }
        busy |= service(client_, ca);
        busy |= service(server_, sa);
        // The wire, both ways: what the server answers reaches the client in the same round.
        busy |= carry(client_, server_, sa);
        busy |= carry(server_, client_, ca);
        busy |= client_.out.held() || server_.out.held();
        now_ += busy ? o_.step : o_.idle_step;
    }

    // What a runtime loop does after input: callbacks, output, and the callbacks of output.
    template <class App>
    bool service(S2sHost& h, App& app) {
        if (!h.tcp->has_work()) return false;
        h.tcp->dispatch(app);
        h.tcp->flush(now_);
        if (h.tcp->events_pending()) h.tcp->dispatch(app);
        return true;
    }

    // Moves `from`'s TX batch over the wire into `to`, and lets `to` react.
    template <class App>
    bool carry(S2sHost& from, S2sHost& to, App& to_app) {
        proto::TxBatch& tx = from.stack->tx();
        const uint16_t n = tx.size();
        rte_mbuf* pkts[proto::TxBatch::kCapacity];
        if (n) {
            pmd::finish_tx_checksums<false, false>(tx.data(), n);
            memcpy(pkts, tx.data(), n * sizeof(rte_mbuf*));
            tx.clear();
            from.frames_out += n;
        }
        uint16_t k = 0;
        for (uint16_t i = 0; i < n; ++i) {
            rte_mbuf* m = pkts[i];
            if (o_.linearize) {
                rte_mbuf* copy = rte_pktmbuf_copy(m, pool_, 0, UINT32_MAX);
                rte_pktmbuf_free(m);
                if (!copy) {
                    wire_no_mbuf_++;
                    continue;
                }
                m = copy;
            }
            m->ol_flags = 0;  // received: no checksum verdict from the "port"
            pkts[k++] = m;
        }
        if (!k && !from.out.held()) return n != 0;
        rte_mbuf* out[kWireCap];
        const uint16_t got = from.out.active() ? from.out.apply(pkts, k, out, kWireCap, now_)
                                               : copy_through(pkts, k, out);
        if (trace_)
            for (uint16_t i = 0; i < got; ++i) trace(from, out[i]);
        if (got) to.stack->input(out, got, now_, to_app);
        service(to, to_app);
        return true;
    }

    // Changes what `h` transmits through from now on (what the wire holds is freed).
    void set_impairment(S2sHost& h, const pmd::ImpairSpec& spec, uint64_t seed) {
        h.out.init(spec, seed, pool_, kS2sHz);
    }

    S2sHost& client() { return client_; }
    S2sHost& server() { return server_; }
    proto::Tcp& ctcp() { return *client_.tcp; }
    proto::Tcp& stcp() { return *server_.tcp; }
    uint64_t now() const { return now_; }
    uint64_t elapsed() const { return now_ - kT0; }
    uint64_t rounds() const { return rounds_; }
    uint64_t wire_no_mbuf() const { return wire_no_mbuf_; }

    // Counters of both hosts (the non-zero ones), for failure messages.
    std::string report() const {
        std::ostringstream os;
        os << "after " << rounds_ << " rounds, " << double(elapsed()) / kS2sHz
           << " s virtual; wire copies failed: " << wire_no_mbuf_ << "\n";
        for (const S2sHost* h : {&client_, &server_}) {
            os << "  " << h->name << ": frames out " << h->frames_out << "\n    tcp:";
            if (h->tcp) {
                const proto::TcpCounters& t = h->tcp->counters();
#define SLUICE_X(name, help) \
    if (t.name) os << " " #name "=" << t.name;
                SLUICE_TCP_COUNTERS(SLUICE_X)
#undef SLUICE_X
                os << " open_conns=" << t.open_conns << " established=" << t.established;
            }
            os << "\n    stack drops:";
            if (h->stack) {
                const proto::Counters& s = h->stack->counters();
                for (unsigned i = 0; i < proto::kDropCount; ++i)
                    if (s.drops[i]) os << " " << proto::kDropNames[i] << "=" << s.drops[i];
            }
            os << "\n    impairment out:";
            const pmd::ImpairStats& is = h->out.stats();
#define SLUICE_X(name) os << " " #name "=" << is.name;
            SLUICE_IMPAIR_COUNTERS(SLUICE_X)
#undef SLUICE_X
            os << "\n";
        }
        return os.str();
    }

    static std::string conn_report(const proto::TcpConnStats& s) {
        std::ostringstream os;
        os << "state=" << proto::tcp_state_name(s.state) << " bytes_sent=" << s.bytes_sent
           << " bytes_received=" << s.bytes_received << " segs_out=" << s.segs_out
           << " segs_in=" << s.segs_in << " retransmits=" << s.retransmits
           << " fast_retransmits=" << s.fast_retransmits << " rto_expirations=" << s.rto_expirations
           << " srtt_us=" << s.srtt_us << " rttvar_us=" << s.rttvar_us << " rto_ms=" << s.rto_ms
           << " cwnd=" << s.cwnd << " ssthresh=" << s.ssthresh << " snd_wnd=" << s.snd_wnd
           << " rcv_wnd=" << s.rcv_wnd;
        return os.str();
    }

  private:
    static constexpr uint16_t kWireCap = 2048;
    static constexpr uint64_t kT0 = 1000 * kS2sHz;

    bool init_host(S2sHost& h, const char* name, const rte_ether_addr& m, uint32_t addr,
                   const proto::TcpConfig& tc, const pmd::ImpairSpec& imp, uint64_t seed,
                   uint8_t secret_byte) {
        h.name = name;
        proto::StackConfig sc;
        sc.mac = m;
        sc.ip = rte_cpu_to_be_32(addr);
        sc.prefix_len = 24;
        sc.gateway = 0;
        sc.mtu = 1500;
        sc.ttl = 64;
        sc.tsc_hz = kS2sHz;
        h.stack = std::make_unique<proto::Stack>();
        if (!h.stack->init(sc, pool_, int(rte_socket_id()))) return false;
        uint8_t secret[16];
        for (unsigned i = 0; i < sizeof secret; ++i) secret[i] = uint8_t(secret_byte + i * 7);
        h.tcp = std::make_unique<proto::Tcp>();
        if (!h.tcp->init(tc, h.stack.get(), int(rte_socket_id()), secret, now_)) return false;
        h.out.init(imp, seed, pool_, kS2sHz);
        return true;
    }

    static uint16_t copy_through(rte_mbuf** in, uint16_t n, rte_mbuf** out) {
        memcpy(out, in, n * sizeof(rte_mbuf*));
        return n;
    }

    // One line per TCP segment that leaves the wire (SLUICE_S2S_TRACE=1): round, virtual
    // time, sender, sequence and acknowledgment numbers, payload, flags, window.
    void trace(const S2sHost& from, const rte_mbuf* m) const {
        const uint8_t* p = rte_pktmbuf_mtod(m, const uint8_t*);
        if (m->data_len < 54 || p[12] != 0x08 || p[13] != 0x00 || p[23] != 6) return;
        const auto* th = reinterpret_cast<const rte_tcp_hdr*>(p + 34);
        const unsigned total = unsigned(p[16] << 8 | p[17]), hl = (th->data_off >> 4) * 4u;
        fprintf(stderr, "%lu %.6f %s seq=%u ack=%u len=%d flags=%02x win=%u\n",
                (unsigned long)rounds_, double(now_ - kT0) / kS2sHz, from.name,
                rte_be_to_cpu_32(th->sent_seq), rte_be_to_cpu_32(th->recv_ack),
                int(total) - 20 - int(hl), th->tcp_flags, rte_be_to_cpu_16(th->rx_win));
    }

    rte_mempool* pool_;
    S2sOptions o_;
    S2sHost client_, server_;
    uint64_t now_ = 0;
    uint64_t next_stack_timer_ = 0;
    uint64_t rounds_ = 0;
    uint64_t wire_no_mbuf_ = 0;
    bool trace_ = false;
};

}  // namespace sluice::test
