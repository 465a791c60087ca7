// Sluice to Sluice TCP over the in-memory wire (tests/unit/tcp_pair.hpp), under impairment:
// 50 MB transfers at 1 %, 5 % and 10 % loss with reordering and duplication complete with
// identical data; also with NewReno, without SACK, with corruption, with a 1 ms delay, and as
// an echo (data both ways, the server re-sending the received chains zero copy); then a sweep
// of mixed configurations, one per seed. Deterministic (fixed seeds, virtual clock).
//
// Every run has a virtual-time bound and a round bound (about three times what it needs): a
// stalled transfer fails its test there instead of hanging, and the failure prints the TCP
// counters of both hosts, the stack's drops, the wire's doings and each connection's
// statistics. After every test, every mbuf is back in its pool.
//
// Sizes: everything moves 50 MB (the sweep 1-4 MB per case); on the virtual clock, where a
// retransmission timeout costs a few rounds, the whole suite takes a few seconds.
//
// Debugging: SLUICE_S2S_VERBOSE=1 prints the report of passing runs too; SLUICE_S2S_TRACE=1
// one line per TCP segment on the wire; SLUICE_S2S_SWEEP=n runs n sweep seeds,
// SLUICE_S2S_SEED=k only seed k.
#include <cerrno>
#include <cstdlib>
#include <cstdint>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include "tests/unit/tcp_pair.hpp"
#include "tests/unit/unit_env.hpp"

namespace sluice::test {
namespace {

using proto::Tcp;
using proto::TcpCloseReason;
using proto::TcpConn;

constexpr uint64_t kMB = 1'000'000;

// The transfer stream: a fixed pseudo-random sequence of prime period, so that no segment
// boundary lines up with it; read as a contiguous array at any offset (up to 64 KiB long).
class Pattern {
  public:
    static constexpr uint32_t kPeriod = 65521;
    static constexpr uint32_t kMaxRun = 65536;

    Pattern() : p_(kPeriod + kMaxRun) {
        uint32_t x = 2463534242u;
        for (uint32_t i = 0; i < kPeriod; ++i) {
            uint8_t& b = p_[i];
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            b = uint8_t(x >> 7);
        }
        // Periodic also past the period: a run read at any offset is the stream.
        for (uint32_t i = kPeriod; i < p_.size(); ++i) p_[i] = p_[i - kPeriod];
    }
    const uint8_t* at(uint64_t off) const { return p_.data() + off % kPeriod; }

  private:
    std::vector<uint8_t> p_;
};

const Pattern& pattern() {
    static const Pattern p;
    return p;
}

// Compares what arrives with the stream.
struct StreamCheck {
    uint64_t total = 0;  // expected length
    uint64_t got = 0;
    uint64_t mismatched_bytes = 0;
    uint64_t first_mismatch = UINT64_MAX;
    uint64_t excess = 0;  // bytes beyond `total`

    void add(const rte_mbuf* m) {
        for (const rte_mbuf* s = m; s; s = s->next) {
            const uint8_t* d = rte_pktmbuf_mtod(s, const uint8_t*);
            uint32_t left = s->data_len;
            while (left) {
                if (got >= total) {
                    excess += left;
                    return;
                }
                const uint32_t n =
                    uint32_t(std::min<uint64_t>({left, Pattern::kMaxRun, total - got}));
                const uint8_t* want = pattern().at(got);
                if (memcmp(d, want, n) != 0) {
                    for (uint32_t i = 0; i < n; ++i) {
                        if (d[i] == want[i]) continue;
                        if (first_mismatch == UINT64_MAX) first_mismatch = got + i;
                        mismatched_bytes++;
                    }
                }
                got += n;
                d += n;
                left -= n;
            }
        }
    }
    bool complete() const { return got == total && !mismatched_bytes && !excess; }
};

std::ostream& operator<<(std::ostream& os, const StreamCheck& s) {
    os << "got " << s.got << " of " << s.total << " bytes, " << s.mismatched_bytes << " mismatched";
    if (s.first_mismatch != UINT64_MAX) os << " (first at " << s.first_mismatch << ")";
    if (s.excess) os << ", " << s.excess << " bytes too many";
    return os;
}

// What both apps record about their connection.
struct ConnRecord {
    TcpConn* conn = nullptr;
    bool connected = false, peer_fin = false, closed = false;
    TcpCloseReason reason = TcpCloseReason::normal;
    proto::TcpConnStats last{};  // at close
    StreamCheck rx;
    void on_closed(Tcp& t, TcpConn* c, TcpCloseReason r) {
        closed = true;
        reason = r;
        last = t.stats(c);
        conn = nullptr;
    }
    proto::TcpConnStats stats(const Tcp& t) const { return conn ? t.stats(conn) : last; }
};

// Connects, sends `total` bytes of the stream with send_copy (as far as the send queue takes
// them, resuming on on_tcp_writable), half-closes, and checks whatever comes back (the echo,
// or nothing).
struct Client : NoUdp, ConnRecord {
    uint64_t sent = 0;
    bool fin_sent = false;
    int send_error = 0;

    explicit Client(uint64_t total, bool echo) { rx.total = echo ? total : 0; }
    uint64_t to_send = 0;

    void pump(Tcp& t, TcpConn* c) {
        while (sent < to_send) {
            const uint32_t len = uint32_t(std::min<uint64_t>(to_send - sent, Pattern::kMaxRun));
            const int n = t.send_copy(c, pattern().at(sent), len);
            if (n == -EAGAIN || n == 0) return;  // on_tcp_writable resumes
            if (n < 0) {
                send_error = n;
                return;
            }
            sent += uint32_t(n);
        }
        if (!fin_sent) {
            fin_sent = true;
            t.shutdown_write(c);
        }
    }
    void on_tcp_connected(Tcp& t, TcpConn* c) {
        connected = true;
        pump(t, c);
    }
    void on_tcp_data(Tcp&, TcpConn*, rte_mbuf* m) {
        rx.add(m);
        rte_pktmbuf_free(m);
    }
    void on_tcp_peer_fin(Tcp&, TcpConn*) { peer_fin = true; }
    void on_tcp_writable(Tcp& t, TcpConn* c) { pump(t, c); }
    void on_tcp_closed(Tcp& t, TcpConn* c, TcpCloseReason r) { on_closed(t, c, r); }
};

// Accepts one connection and checks the stream; discards it, or echoes it zero copy: the
// received chain is queued for sending as it came (Tcp::send), and what the send queue cannot
// take yet is held against the receive window (manual window, as apps/echo does). Closes its
// side once the peer has and everything is echoed.
struct Server : NoUdp, ConnRecord {
    bool echo = false;
    unsigned accepted = 0;
    rte_mbuf* held = nullptr;
    uint32_t held_bytes = 0;
    uint64_t echoed = 0;

    Server(uint64_t total, bool e) : echo(e) { rx.total = total; }
    ~Server() { drop_held(); }
    void drop_held() {
        if (held) rte_pktmbuf_free(held);
        held = nullptr;
        held_bytes = 0;
    }

    void echo_held(Tcp& t, TcpConn* c) {
        if (!held) return;
        const uint32_t len = held_bytes;
        if (t.send(c, held) != 0) return;  // -EAGAIN: on_tcp_writable comes back
        held = nullptr;
        held_bytes = 0;
        echoed += len;
        t.consumed(c, len);
    }
    void on_tcp_connected(Tcp& t, TcpConn* c) {
        accepted++;
        conn = c;
        connected = true;
        if (echo) t.set_manual_window(c, true);
    }
    void on_tcp_data(Tcp& t, TcpConn* c, rte_mbuf* m) {
        rx.add(m);
        if (!echo) {
            rte_pktmbuf_free(m);
            return;
        }
        if (held) {
            rte_mbuf* last = rte_pktmbuf_lastseg(held);
            last->next = m;
            held->nb_segs = uint16_t(held->nb_segs + m->nb_segs);
            held->pkt_len += m->pkt_len;
            held_bytes += m->pkt_len;
            return;
        }
        held = m;
        held_bytes = m->pkt_len;
        echo_held(t, c);
    }
    void on_tcp_peer_fin(Tcp& t, TcpConn* c) {
        peer_fin = true;
        echo_held(t, c);
        if (!held) t.close(c);
    }
    void on_tcp_writable(Tcp& t, TcpConn* c) {
        echo_held(t, c);
        if (!held && peer_fin) t.close(c);
    }
    void on_tcp_closed(Tcp& t, TcpConn* c, TcpCloseReason r) {
        on_closed(t, c, r);
        drop_held();
    }
};
static_assert(proto::TcpApp<Client> && proto::UdpApp<Client>);
static_assert(proto::TcpApp<Server> && proto::UdpApp<Server>);

// The TCP configuration of both hosts: defaults, few connection slots.
proto::TcpConfig tcp_config(proto::TcpCcAlgo cc = proto::TcpCcAlgo::cubic, bool sack = true) {
    proto::TcpConfig t;
    t.max_conns = 16;
    t.ooo_pool = 4096;
    t.cc = cc;
    t.sack = sack;
    return t;
}

pmd::ImpairSpec impaired(double loss, double reorder = 0.02, double dup = 0.01,
                         double corrupt = 0) {
    pmd::ImpairSpec s;
    s.loss = loss;
    s.reorder = reorder;
    s.dup = dup;
    s.corrupt = corrupt;
    return s;
}

S2sOptions both_ways(const pmd::ImpairSpec& s, uint64_t seed, proto::TcpConfig t = tcp_config()) {
    S2sOptions o;
    o.client_tcp = o.server_tcp = t;
    o.c2s = o.s2c = s;
    o.seed = seed;
    return o;
}

// A dedicated pool: windows of 1 MB each way (and an echo server holding a window's worth)
// need more mbufs than the unit pool has.
constexpr unsigned kS2sPoolSize = 65535;

class TcpS2s : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        pool_ = rte_pktmbuf_pool_create("sluice_s2s", kS2sPoolSize, 256, 0,
                                        RTE_MBUF_DEFAULT_BUF_SIZE, int(rte_socket_id()));
    }
    static void TearDownTestSuite() {
        rte_mempool_free(pool_);
        pool_ = nullptr;
    }
    static bool s2s_pool_full() {
        return rte_mempool_avail_count(pool_) == pool_->size &&
               rte_mempool_in_use_count(pool_) == 0;
    }

    void SetUp() override {
        ASSERT_NE(pool_, nullptr) << "cannot create the S2S mbuf pool";
        ASSERT_TRUE(s2s_pool_full()) << "an earlier test leaked";
        ASSERT_TRUE(pool_full()) << "an earlier test leaked";
    }
    void TearDown() override {
        // Tcp, then Stack, then the wire; then the apps (what they hold).
        if (pair_) pair_->destroy();
        pair_.reset();
        client_.reset();
        server_.reset();
        EXPECT_EQ(rte_mempool_in_use_count(pool_), 0u) << "mbufs leaked";
        EXPECT_EQ(rte_mempool_avail_count(pool_), pool_->size) << "mbufs leaked";
        EXPECT_TRUE(pool_full()) << "unit pool mbufs leaked";
    }

    // Sets up the pair and the apps, connects, and runs until both sides have closed or a
    // bound is hit. True when the run finished (not necessarily correctly: see check()).
    bool transfer(const S2sOptions& o, uint64_t bytes, bool echo) {
        client_cfg_ = o.client_tcp;
        server_cfg_ = o.server_tcp;
        pair_ = std::make_unique<TcpPair>(pool_, o);
        EXPECT_TRUE(pair_->init());
        client_ = std::make_unique<Client>(bytes, echo);
        client_->to_send = bytes;
        server_ = std::make_unique<Server>(bytes, echo);
        EXPECT_EQ(pair_->stcp().listen(kS2sPort), 0);
        client_->conn =
            pair_->ctcp().connect(rte_cpu_to_be_32(kS2sServerIp), kS2sPort, pair_->now());
        EXPECT_NE(client_->conn, nullptr);
        if (!client_->conn) return false;
        Client& ca = *client_;
        Server& sa = *server_;
        return pair_->run(ca, sa, [&] { return ca.closed && sa.closed; });
    }

    std::string report() const {
        std::ostringstream os;
        os << pair_->report();
        os << "  client: sent " << client_->sent << (client_->fin_sent ? " +FIN" : "")
           << " send_error=" << client_->send_error << " connected=" << client_->connected
           << " peer_fin=" << client_->peer_fin << " closed=" << client_->closed << " ("
           << proto::tcp_close_reason_name(client_->reason) << "); rx " << client_->rx << "\n    "
           << TcpPair::conn_report(client_->stats(pair_->ctcp())) << "\n";
        os << "  server: accepted " << server_->accepted << " echoed " << server_->echoed
           << " held " << server_->held_bytes << " peer_fin=" << server_->peer_fin
           << " closed=" << server_->closed << " (" << proto::tcp_close_reason_name(server_->reason)
           << "); rx " << server_->rx << "\n    ";
        if (server_->connected)
            os << TcpPair::conn_report(server_->stats(pair_->stcp()));
        else
            os << "(no connection)";
        os << "\n";
        return os.str();
    }

    // Everything arrived, identical, and both sides closed in order.
    // Everything arrived, identical, and both sides closed in order; no frame was dropped but
    // by the wire. The counters and connection statistics are printed once, on failure.
    void check(bool finished, uint64_t bytes, bool echo, bool wire_corrupts = false) {
        ASSERT_TRUE(finished) << "the transfer did not finish within its bounds\n" << report();
        const int before = failures();
        EXPECT_EQ(client_->send_error, 0);
        EXPECT_EQ(client_->sent, bytes);
        EXPECT_TRUE(client_->peer_fin);
        EXPECT_EQ(proto::tcp_close_reason_name(client_->reason), std::string("normal"));
        EXPECT_EQ(proto::tcp_close_reason_name(server_->reason), std::string("normal"));
        EXPECT_EQ(server_->accepted, 1u);
        EXPECT_TRUE(server_->rx.complete()) << "server: " << server_->rx;
        if (echo) {
            EXPECT_TRUE(client_->rx.complete()) << "client: " << client_->rx;
            EXPECT_EQ(server_->echoed, bytes);
        } else {
            EXPECT_EQ(client_->rx.got, 0u);
        }
        EXPECT_EQ(client_->last.bytes_sent, bytes);
        EXPECT_EQ(server_->last.bytes_received, bytes);
        // Flow control: neither side was offered more window than the other has buffer.
        EXPECT_LE(server_->last.snd_wnd, client_cfg_.rcv_buf) << "client over-advertised";
        EXPECT_LE(client_->last.snd_wnd, server_cfg_.rcv_buf) << "server over-advertised";
        if (!wire_corrupts) {
            // Nothing dropped on the way but what the wire lost: in particular no segment too
            // big for the MTU (ipv4_frag_too_big: options pushed it over), no checksum error.
            for (S2sHost* h : {&pair_->client(), &pair_->server()}) {
                EXPECT_EQ(h->stack->counters().total_drops(), 0u) << h->name;
                EXPECT_EQ(h->tcp->counters().bad_checksum, 0u) << h->name;
                EXPECT_EQ(h->tcp->counters().no_mbuf, 0u) << h->name;
            }
        }
        if (failures() != before) ADD_FAILURE() << report();
    }

    // The failures recorded so far in this test.
    static int failures() {
        const ::testing::TestResult* r =
            ::testing::UnitTest::GetInstance()->current_test_info()->result();
        int n = 0;
        for (int i = 0; i < r->total_part_count(); ++i) n += r->GetTestPartResult(i).failed();
        return n;
    }

    void run_transfer(const S2sOptions& o, uint64_t bytes, bool echo = false) {
        const bool finished = transfer(o, bytes, echo);
        check(finished, bytes, echo, o.c2s.corrupt > 0 || o.s2c.corrupt > 0);
        if (HasFailure()) return;
        // Recovery was exercised where the wire was impaired.
        if (o.c2s.loss > 0) {
            EXPECT_GT(client_->last.retransmits, 0u) << report();
        }
        if (getenv("SLUICE_S2S_VERBOSE")) printf("%s", report().c_str());
    }

    static rte_mempool* pool_;
    proto::TcpConfig client_cfg_{}, server_cfg_{};
    std::unique_ptr<TcpPair> pair_;
    std::unique_ptr<Client> client_;
    std::unique_ptr<Server> server_;
};

rte_mempool* TcpS2s::pool_ = nullptr;

// --- Clean wire ------------------------------------------------------------------------------

TEST_F(TcpS2s, Clean50MBOneWay) {
    S2sOptions o = both_ways({}, 1);
    o.time_bound = 10 * kS2sHz;
    o.round_bound = 100'000;
    run_transfer(o, 50 * kMB);
    if (HasFailure()) return;
    EXPECT_EQ(client_->last.retransmits, 0u) << report();
    EXPECT_EQ(pair_->ctcp().counters().retransmits, 0u) << report();
}

// --- The three loss rates, 50 MB each, both directions impaired -----------------------

TEST_F(TcpS2s, Loss1Reorder2Dup1_50MB) {
    S2sOptions o = both_ways(impaired(0.01), 101);
    o.time_bound = 60 * kS2sHz;
    o.round_bound = 200'000;
    run_transfer(o, 50 * kMB);
}

TEST_F(TcpS2s, Loss5Reorder2Dup1_50MB) {
    S2sOptions o = both_ways(impaired(0.05), 105);
    o.time_bound = 600 * kS2sHz;
    o.round_bound = 1'000'000;
    run_transfer(o, 50 * kMB);
}

TEST_F(TcpS2s, Loss10Reorder2Dup1_50MB) {
    S2sOptions o = both_ways(impaired(0.10), 110);
    o.time_bound = 2400 * kS2sHz;
    o.round_bound = 3'000'000;
    run_transfer(o, 50 * kMB);
}

// --- Variants: congestion control, SACK, corruption, delay ----------------------------------

constexpr uint64_t kVariantBytes = 50 * kMB;

TEST_F(TcpS2s, NewRenoLoss5_50MB) {
    S2sOptions o = both_ways(impaired(0.05), 205, tcp_config(proto::TcpCcAlgo::newreno));
    o.time_bound = 600 * kS2sHz;
    o.round_bound = 1'000'000;
    run_transfer(o, kVariantBytes);
}

TEST_F(TcpS2s, NewRenoLoss1_50MB) {
    S2sOptions o = both_ways(impaired(0.01), 201, tcp_config(proto::TcpCcAlgo::newreno));
    o.time_bound = 60 * kS2sHz;
    o.round_bound = 200'000;
    run_transfer(o, kVariantBytes);
}

TEST_F(TcpS2s, NoSackCubicLoss5_50MB) {
    S2sOptions o = both_ways(impaired(0.05), 305, tcp_config(proto::TcpCcAlgo::cubic, false));
    o.time_bound = 1500 * kS2sHz;
    o.round_bound = 2'000'000;
    run_transfer(o, kVariantBytes);
    if (HasFailure()) return;
    EXPECT_FALSE(pair_->ctcp().counters().retransmits == 0) << report();
}

TEST_F(TcpS2s, NoSackNewRenoLoss10_50MB) {
    S2sOptions o = both_ways(impaired(0.10), 310, tcp_config(proto::TcpCcAlgo::newreno, false));
    o.time_bound = 3000 * kS2sHz;
    o.round_bound = 4'000'000;
    run_transfer(o, kVariantBytes);
}

// One bit flipped in 0.1 % of the frames, anywhere in them (the wire copies each frame, so the
// payload can be hit too, not only the header mbuf): checksums drop them, the data arrives
// intact.
TEST_F(TcpS2s, CorruptLoss1Reorder2Dup1_50MB) {
    S2sOptions o = both_ways(impaired(0.01, 0.02, 0.01, 0.001), 401);
    o.linearize = true;
    o.time_bound = 60 * kS2sHz;
    o.round_bound = 200'000;
    run_transfer(o, kVariantBytes);
    if (HasFailure()) return;
    const uint64_t corrupted =
        pair_->client().out.stats().corrupted + pair_->server().out.stats().corrupted;
    EXPECT_GT(corrupted, 0u);
    uint64_t caught = 0;
    for (S2sHost* h : {&pair_->client(), &pair_->server()}) {
        caught += h->tcp->counters().bad_checksum;
        caught += h->stack->counters().total_drops();
    }
    EXPECT_GT(caught, 0u) << report();
    EXPECT_LE(caught, corrupted) << report();  // nothing else was dropped
}

// A wire with a real round trip (1 ms each way, beyond the timer tick) and loss.
TEST_F(TcpS2s, Delay1msLoss1_50MB) {
    pmd::ImpairSpec s = impaired(0.01);
    s.delay_us = 1000;
    S2sOptions o = both_ways(s, 501);
    o.time_bound = 60 * kS2sHz;
    o.round_bound = 1'500'000;
    run_transfer(o, kVariantBytes);
    if (HasFailure()) return;
    EXPECT_GE(client_->last.srtt_us, 2000u) << report();
    EXPECT_EQ(pair_->client().out.stats().overflow + pair_->server().out.stats().overflow, 0u);
}

// --- Echo: data both ways, the server re-sending the received chains (zero copy) -------------

TEST_F(TcpS2s, EchoZeroCopyClean_50MB) {
    S2sOptions o = both_ways({}, 600);
    o.time_bound = 10 * kS2sHz;
    o.round_bound = 100'000;
    run_transfer(o, kVariantBytes, true);
}

TEST_F(TcpS2s, EchoZeroCopyLoss5Reorder2Dup1_50MB) {
    S2sOptions o = both_ways(impaired(0.05), 605);
    o.time_bound = 600 * kS2sHz;
    o.round_bound = 1'000'000;
    run_transfer(o, kVariantBytes, true);
    if (HasFailure()) return;
    EXPECT_GT(server_->last.retransmits, 0u) << report();
}

// --- Bounds: a stalled transfer fails, it does not hang --------------------------------------

// The wire goes dark (everything lost, both ways) after 2 MB: the run stops at its
// virtual-time bound and says so; what was in flight is still freed.
TEST_F(TcpS2s, StalledTransferHitsTheTimeBound) {
    S2sOptions o = both_ways(impaired(0.01), 701);
    o.time_bound = 20 * kS2sHz;
    o.round_bound = 1'000'000;
    pair_ = std::make_unique<TcpPair>(pool_, o);
    ASSERT_TRUE(pair_->init());
    client_ = std::make_unique<Client>(10 * kMB, false);
    client_->to_send = 10 * kMB;
    server_ = std::make_unique<Server>(10 * kMB, false);
    ASSERT_EQ(pair_->stcp().listen(kS2sPort), 0);
    client_->conn = pair_->ctcp().connect(rte_cpu_to_be_32(kS2sServerIp), kS2sPort, pair_->now());
    ASSERT_NE(client_->conn, nullptr);
    bool dark = false;
    const bool finished = pair_->run(*client_, *server_, [&] {
        if (!dark && server_->rx.got >= 2 * kMB) {
            dark = true;
            pmd::ImpairSpec all;
            all.loss = 1;
            pair_->set_impairment(pair_->client(), all, 1);
            pair_->set_impairment(pair_->server(), all, 2);
        }
        return client_->closed && server_->closed;
    });
    EXPECT_FALSE(finished);
    EXPECT_TRUE(dark);
    EXPECT_GE(pair_->elapsed(), 20 * kS2sHz);
    EXPECT_LT(pair_->elapsed(), 21 * kS2sHz);
    EXPECT_LT(server_->rx.got, 10 * kMB);
    EXPECT_GT(pair_->ctcp().counters().rto_expirations, 3u) << report();
    EXPECT_FALSE(client_->closed) << report();  // 15 retries take longer than that
}

// The same with the round bound the tighter one.
TEST_F(TcpS2s, StalledTransferHitsTheRoundBound) {
    S2sOptions o = both_ways({}, 702);
    o.time_bound = 3600 * kS2sHz;
    o.round_bound = 5000;
    pmd::ImpairSpec all;
    all.loss = 1;
    o.c2s = all;  // not even the SYN arrives
    EXPECT_FALSE(transfer(o, kMB, false));
    EXPECT_EQ(pair_->rounds(), 5000u);
    EXPECT_FALSE(server_->connected);
}

// When the wire stays dark, TCP itself gives up: the connection ends with `timeout` after its
// retries (here few, and a short RTO), and the transfer reports it instead of waiting.
TEST_F(TcpS2s, DarkWireEndsInTimeout) {
    proto::TcpConfig t = tcp_config();
    t.data_retries = 3;
    t.rto_max_ms = 1000;
    S2sOptions o = both_ways({}, 703, t);
    o.time_bound = 60 * kS2sHz;
    o.round_bound = 1'000'000;
    pair_ = std::make_unique<TcpPair>(pool_, o);
    ASSERT_TRUE(pair_->init());
    client_ = std::make_unique<Client>(4 * kMB, false);
    client_->to_send = 4 * kMB;
    server_ = std::make_unique<Server>(4 * kMB, false);
    ASSERT_EQ(pair_->stcp().listen(kS2sPort), 0);
    client_->conn = pair_->ctcp().connect(rte_cpu_to_be_32(kS2sServerIp), kS2sPort, pair_->now());
    ASSERT_NE(client_->conn, nullptr);
    bool dark = false;
    const bool finished = pair_->run(*client_, *server_, [&] {
        if (!dark && server_->rx.got >= kMB) {
            dark = true;
            pmd::ImpairSpec all;
            all.loss = 1;
            pair_->set_impairment(pair_->client(), all, 1);
        }
        return client_->closed;
    });
    ASSERT_TRUE(finished) << report();
    EXPECT_EQ(client_->reason, TcpCloseReason::timeout) << report();
    EXPECT_EQ(client_->last.rto_expirations, 3u) << report();
    EXPECT_LT(pair_->elapsed(), 10 * kS2sHz) << report();
    EXPECT_FALSE(server_->closed);  // it never heard: its slot goes with its Tcp
}

// --- A sweep: mixed impairments and configurations, one per seed -----------------------------

// Seed -> a configuration: loss 0-15 %, reordering, duplication, sometimes corruption or delay,
// SACK on or off, CUBIC or NewReno, buffers from 16 KiB to 1 MiB (zero windows, persist),
// timestamps, window scaling and ECN on or off, a small out-of-order queue or MSS, one way or
// echo, 1-4 MB. SLUICE_S2S_SWEEP=n runs seeds
// 1..n instead of the default few (exploration; each is a fraction of a second).
struct SweepCase {
    S2sOptions o;
    uint64_t bytes;
    bool echo;
    std::string name;
};

SweepCase sweep_case(uint64_t seed) {
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
    auto next = [&x] {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        return x;
    };
    auto pick = [&](uint64_t n) { return next() % n; };
    SweepCase k;
    pmd::ImpairSpec s;
    s.loss = double(pick(16)) / 100;
    s.reorder = double(pick(5)) / 100;
    s.dup = double(pick(3)) / 100;
    if (pick(4) == 0) s.corrupt = 0.002;
    if (pick(4) == 0) s.delay_us = 100 + pick(900);
    const bool sack = pick(3) != 0;
    const auto cc = pick(2) ? proto::TcpCcAlgo::cubic : proto::TcpCcAlgo::newreno;
    proto::TcpConfig t = tcp_config(cc, sack);
    static constexpr uint32_t kBufs[] = {16384, 65536, 262144, 1u << 20};
    t.rcv_buf = kBufs[pick(4)];
    t.snd_buf = kBufs[pick(4)];
    t.timestamps = pick(4) != 0;
    t.window_scale = pick(4) != 0;
    t.ecn = pick(2) == 0;
    if (pick(4) == 0) t.ooo_max_segs = 8;
    if (pick(4) == 0) t.mss = 536;
    k.o = both_ways(s, seed, t);
    k.o.linearize = s.corrupt > 0;
    k.o.time_bound = 3600 * kS2sHz;
    k.o.round_bound = 3'000'000;
    k.echo = pick(3) == 0;
    k.bytes = (1 + pick(4)) * kMB;
    std::ostringstream os;
    os << "seed " << seed << ": loss=" << s.loss << " reorder=" << s.reorder << " dup=" << s.dup
       << " corrupt=" << s.corrupt << " delay_us=" << s.delay_us << " sack=" << sack
       << " cc=" << (cc == proto::TcpCcAlgo::cubic ? "cubic" : "newreno")
       << " rcv_buf=" << t.rcv_buf << " snd_buf=" << t.snd_buf << " ts=" << t.timestamps
       << " ws=" << t.window_scale << " ecn=" << t.ecn << " ooo_max=" << t.ooo_max_segs
       << " mss=" << t.mss << " echo=" << k.echo << " bytes=" << k.bytes;
    k.name = os.str();
    return k;
}

TEST_F(TcpS2s, Sweep) {
    const char* env = getenv("SLUICE_S2S_SWEEP");
    const char* one = getenv("SLUICE_S2S_SEED");  // just this one
    const uint64_t n = one ? strtoull(one, nullptr, 10) : env ? strtoull(env, nullptr, 10) : 32;
    for (uint64_t seed = one ? n : 1; seed <= n && !HasFailure(); ++seed) {
        const SweepCase k = sweep_case(seed);
        SCOPED_TRACE(k.name);
        run_transfer(k.o, k.bytes, k.echo);
        // The next seed on a clean slate: the pool is full again between cases too.
        pair_->destroy();
        pair_.reset();
        client_.reset();
        server_.reset();
        ASSERT_TRUE(s2s_pool_full()) << k.name;
    }
}

}  // namespace
}  // namespace sluice::test
