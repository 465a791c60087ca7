// TCP connection establishment (RFC 9293 3.5, 3.10.7.2, 3.10.7.3), SYN retransmission
// (RFC 6298 5, RFC 1122 4.2.3.5), simultaneous open, SYN cookies.
#include <cstring>
#include <memory>
#include <utility>

#include "engine/soft_rss.hpp"
#include "tests/unit/tcp_fixture.hpp"

namespace sluice::test {
namespace {

using proto::TcpCloseReason;
using proto::TcpState;

class TcpHandshake : public TcpTest {};

// Per core (the RSS rule): with several workers, an active open takes a source port
// whose flow the symmetric RSS (engine::SoftRss, the port's RSS key) sends back to the
// connecting core, so the peer's replies arrive where the connection lives. The engine installs
// that as the TCP's port filter (Runtime::port_on_core); here the same filter for core 1 of 2.
// Each chosen port's reply, hashed as the receive path hashes a packet, lands on core 1; with
// no filter half of the ports would not.
// The connection table's key compare: equal only when all eight bytes are (remote address,
// remote port, local port); each field, each byte of it, counts. rte_hash calls it only for
// keys whose hash signatures match, so a compare that ignored a field would pass every test
// that merely uses connections.
TEST(TcpConnKey, CompareSeesEveryByteOfTheKey) {
    const uint8_t k[8] = {198, 18, 0, 1, 0x1f, 0x90, 0x18, 0xeb};
    uint8_t o[8];
    memcpy(o, k, sizeof o);
    EXPECT_EQ(proto::conn_key_cmp(k, o, sizeof k), 0);
    for (unsigned i = 0; i < 8; ++i) {
        for (uint8_t bit = 1; bit; bit = uint8_t(bit << 1)) {
            memcpy(o, k, sizeof o);
            o[i] ^= bit;
            EXPECT_NE(proto::conn_key_cmp(k, o, sizeof k), 0) << "byte " << i << " bit " << +bit;
        }
    }
}

TEST_F(TcpHandshake, ActiveOpenPicksAPortWhoseRepliesComeBackToItsCore) {
    struct Ctx {
        engine::SoftRss rss;
        uint16_t core = 1;
    };
    auto ctx = std::make_unique<Ctx>();
    ctx->rss.init(2);
    tcp().set_port_filter(
        [](void* c, rte_be32_t l, rte_be32_t r, rte_be16_t lp, rte_be16_t rp) {
            const Ctx& x = *static_cast<const Ctx*>(c);
            return x.rss.target(r, l, rp, lp) == x.core;
        },
        ctx.get());
    unsigned consecutive = 0;
    uint16_t prev = 0;
    for (int i = 0; i < 16; ++i) {
        proto::TcpConn* c = tcp().connect(rte_cpu_to_be_32(kPeerIp), kPeerPort, now_);
        ASSERT_NE(c, nullptr);
        const uint16_t lport = rte_be_to_cpu_16(c->lport);
        EXPECT_GE(lport, 49152) << "RFC 6335 6: the dynamic range";
        consecutive += prev && lport == prev + 1;
        prev = lport;
        TcpHdr h;
        h.sport = kPeerPort;
        h.dport = lport;
        h.seq = kPeerIsn;
        h.ack = 1;
        h.flags = kTcpSyn | kTcpAck;
        h.wnd = 65535;
        rte_mbuf* reply =
            to_mbuf(unit_pool(),
                    eth_from_peer(ipv4(peer_ip4(kProtoTcp), test::tcp(kPeerIp, kOurIp, h, {}))));
        ASSERT_NE(reply, nullptr);
        EXPECT_EQ(ctx->rss.target(reply), 1) << "port " << lport;
        rte_pktmbuf_free(reply);
    }
    EXPECT_LT(consecutive, 15u) << "the filter skipped the ports that land elsewhere";
    EXPECT_EQ(tctr().active_opens, 16u);
    tx_segs();
}

// RFC 9293 3.10.7.2: a SYN to a listener is answered <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK>, with
// the options the peer offered (RFC 7323 1.3, RFC 2018 2): MSS, SACK-permitted, TS echoing the
// peer's TSval, WS; the final ACK moves to ESTABLISHED and the app hears of it.
TEST_F(TcpHandshake, PassiveOpenSynAckCarriesOptionsThenEstablished) {
    ASSERT_EQ(tcp().listen(kSrvPort), 0);
    listening_ = true;
    EXPECT_EQ(tcp().listen(kSrvPort), -EADDRINUSE);
    rx_seg(kTcpSyn, kPeerIsn, 0, {}, linux_syn_opts());
    const TcpSeg sa = tx_one();
    EXPECT_EQ(sa.flags, kTcpSyn | kTcpAck);
    EXPECT_EQ(sa.sport, kSrvPort);
    EXPECT_EQ(sa.dport, kPeerPort);
    EXPECT_EQ(sa.ack, kPeerIsn + 1);
    EXPECT_TRUE(sa.payload.empty());
    ASSERT_TRUE(sa.mss.has_value());
    EXPECT_EQ(*sa.mss, 1460);
    EXPECT_TRUE(sa.sack_perm);
    EXPECT_TRUE(sa.has_ts);
    EXPECT_EQ(sa.ts_ecr, peer_tsval_);  // RFC 7323 4.3: TSecr = TS.Recent
    EXPECT_NE(sa.ts_val, 0u);
    ASSERT_TRUE(sa.ws.has_value());
    EXPECT_EQ(*sa.ws, 5);      // 1 MiB receive buffer: the smallest shift that expresses it
    EXPECT_EQ(sa.wnd, 65535);  // RFC 7323 2.2: the window of a SYN is not scaled
    EXPECT_EQ(sa.ecn, 0);
    proto::TcpConn* c = lookup();
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(tcp().stats(c).state, TcpState::syn_received);
    EXPECT_EQ(tapp_.n_connected, 0);

    rx_seg(kTcpAck, kPeerIsn + 1, sa.seq + 1);
    EXPECT_TRUE(tx_segs().empty());
    EXPECT_EQ(tcp().stats(c).state, TcpState::established);
    ASSERT_EQ(tapp_.n_connected, 1);
    EXPECT_EQ(tapp_.conn, c);
    EXPECT_EQ(tctr().passive_opens, 1u);
    EXPECT_EQ(tctr().established, 1u);
}

// RFC 9293 3.7.1 / RFC 879: the MSS we announce is the MTU less the IP and TCP headers, so a
// jumbo MTU (--mtu 9000) gives jumbo segments; TcpConfig::mss caps it only where set lower.
TEST_F(TcpHandshake, AnnouncedMssFollowsTheMtuUnlessCappedLower) {
    for (const auto& [cap, expect] :
         {std::pair<uint16_t, uint16_t>{proto::TcpConfig{}.mss, 8960}, {1400, 1400}}) {
        tcp_.reset();  // it refers to the stack
        proto::StackConfig sc = default_config();
        sc.mtu = 9000;
        ASSERT_NO_FATAL_FAILURE(start(sc));
        stack().arp_learned(proto::Stack::ArpFact{rte_cpu_to_be_32(kPeerIp), kPeerMac}, now_);
        proto::TcpConfig tc = tcp_config();
        tc.mss = cap;
        ASSERT_NO_FATAL_FAILURE(start_tcp(tc));
        ASSERT_EQ(tcp().listen(kSrvPort), 0);
        listening_ = true;
        TcpOpts syn = linux_syn_opts();
        syn.mss = 8960;
        rx_seg(kTcpSyn, kPeerIsn, 0, {}, syn);
        const TcpSeg sa = tx_one();
        EXPECT_EQ(sa.flags, kTcpSyn | kTcpAck);
        ASSERT_TRUE(sa.mss.has_value());
        EXPECT_EQ(*sa.mss, expect) << "configured cap " << cap;
    }
}

// RFC 7323 1.3 / RFC 2018 2: options the SYN did not carry are not sent; RFC 9293 3.7.1: no
// MSS option means 536.
TEST_F(TcpHandshake, BareSynGetsMssOnlyAndDefaultMss536) {
    TcpOpts none;
    none.no_ts = true;
    ASSERT_NO_FATAL_FAILURE(open_passive(none));
    EXPECT_TRUE(synack_.mss.has_value());
    EXPECT_FALSE(synack_.sack_perm);
    EXPECT_FALSE(synack_.has_ts);
    EXPECT_FALSE(synack_.ws.has_value());
    send(pattern(1200));
    auto v = tx_segs();
    ASSERT_EQ(v.size(), 2u) << "the 128-byte tail waits for the ACK (Nagle)";
    EXPECT_EQ(v[0].len(), 536u);
    EXPECT_EQ(v[1].len(), 536u);
    rx_ack(iss_ + 1 + 1072);
    v.push_back(tx_one());
    EXPECT_EQ(v[2].len(), 128u);
    for (const TcpSeg& s : v) {
        EXPECT_FALSE(s.has_ts);
        EXPECT_EQ(s.wnd, 65535) << "no window scaling: the field holds the window, capped";
    }
}

// RFC 9293 3.10.7.3 (SYN-SENT): connect sends <SEQ=ISS><CTL=SYN> with our options; an
// acceptable SYN-ACK establishes and is acknowledged <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>.
TEST_F(TcpHandshake, ActiveOpenSynThenSynAckThenAck) {
    lport_ = kLocalPort;
    conn_ = tcp().connect(rte_cpu_to_be_32(kPeerIp), kPeerPort, now_, kLocalPort);
    ASSERT_NE(conn_, nullptr);
    step();
    const TcpSeg syn = tx_one();
    EXPECT_EQ(syn.flags, kTcpSyn);
    EXPECT_EQ(syn.sport, kLocalPort);
    EXPECT_EQ(syn.dport, kPeerPort);
    EXPECT_EQ(syn.ack, 0u);
    EXPECT_EQ(syn.mss, std::optional<uint16_t>(1460));
    EXPECT_TRUE(syn.sack_perm);
    EXPECT_TRUE(syn.has_ts);
    EXPECT_EQ(syn.ts_ecr, 0u);
    EXPECT_EQ(syn.ws, std::optional<uint8_t>(5));
    EXPECT_EQ(state(), TcpState::syn_sent);
    EXPECT_EQ(tctr().active_opens, 1u);

    advance(3);
    rx_seg(kTcpSyn | kTcpAck, kPeerIsn, syn.seq + 1, {}, linux_syn_opts());
    const TcpSeg a = tx_one();
    EXPECT_EQ(a.flags, kTcpAck);
    EXPECT_EQ(a.seq, syn.seq + 1);
    EXPECT_EQ(a.ack, kPeerIsn + 1);
    EXPECT_EQ(a.ts_ecr, peer_tsval_);
    EXPECT_EQ(state(), TcpState::established);
    EXPECT_EQ(tapp_.n_connected, 1);
    // The SYN's round trip was timed (RFC 6298 2.2): 3 ms.
    EXPECT_EQ(stats().srtt_us, 3000u);
}

// RFC 9293 3.10.7.3: in SYN-SENT an RST whose ACK acknowledges the SYN means the connection
// was refused ("error: connection reset"); the app hears closed(refused), the tuple is free.
TEST_F(TcpHandshake, RstToSynMeansRefused) {
    lport_ = kLocalPort;
    conn_ = tcp().connect(rte_cpu_to_be_32(kPeerIp), kPeerPort, now_, kLocalPort);
    step();
    ASSERT_NE(conn_, nullptr);
    const TcpSeg syn = tx_one();
    rx_seg(kTcpRst | kTcpAck, 0, syn.seq + 1, {}, TcpOpts{.no_ts = true}, 0);
    EXPECT_TRUE(tx_segs().empty());
    ASSERT_EQ(tapp_.n_closed, 1);
    EXPECT_EQ(tapp_.reason, TcpCloseReason::refused);
    EXPECT_EQ(tapp_.n_connected, 0);
    EXPECT_EQ(lookup(), nullptr);
    EXPECT_EQ(tcp().open_conns(), 0u);
}

// RFC 9293 3.10.7.3: in SYN-SENT, an ACK outside (ISS, SND.NXT] gets <SEQ=SEG.ACK><CTL=RST>
// (unless it is an RST itself, which is dropped), and the connection stays.
TEST_F(TcpHandshake, SynSentUnacceptableAckGetsRstAndRstWithBadAckIgnored) {
    lport_ = kLocalPort;
    conn_ = tcp().connect(rte_cpu_to_be_32(kPeerIp), kPeerPort, now_, kLocalPort);
    step();
    const TcpSeg syn = tx_one();
    rx_seg(kTcpRst | kTcpAck, 0, syn.seq + 5, {}, TcpOpts{.no_ts = true}, 0);
    EXPECT_TRUE(tx_segs().empty());
    EXPECT_EQ(state(), TcpState::syn_sent);
    rx_seg(kTcpSyn | kTcpAck, kPeerIsn, syn.seq + 77, {}, linux_syn_opts());
    const TcpSeg r = tx_one();
    EXPECT_EQ(r.flags, kTcpRst);
    EXPECT_EQ(r.seq, syn.seq + 77);
    EXPECT_EQ(state(), TcpState::syn_sent);
    // An RST without ACK in SYN-SENT is dropped (RFC 9293 3.10.7.3, "if the ACK bit is off").
    rx_seg(kTcpRst, kPeerIsn, 0, {}, TcpOpts{.no_ts = true}, 0);
    EXPECT_TRUE(tx_segs().empty());
    EXPECT_EQ(state(), TcpState::syn_sent);
    EXPECT_EQ(tapp_.n_closed, 0);
}

// RFC 6298 5.5 and 2.1 / RFC 1122 4.2.3.5: the SYN is retransmitted after 1 s, the timer
// doubling each time (1, 2, 4, 8, 16, 32 s); after syn_retries retransmissions the connection
// times out at the 7th expiry, 60 s after the last one (RFC 6298 2.5: RTO capped at 60 s).
TEST_F(TcpHandshake, SynRetransmittedWithExponentialBackoffThenTimeout) {
    lport_ = kLocalPort;
    const uint64_t t0 = now_;
    conn_ = tcp().connect(rte_cpu_to_be_32(kPeerIp), kPeerPort, now_, kLocalPort);
    step();
    const TcpSeg syn = tx_one();
    advance(122999);
    auto v = tx_segs();
    ASSERT_EQ(v.size(), 6u);
    const uint64_t want_ms[] = {1000, 3000, 7000, 15000, 31000, 63000};
    for (size_t i = 0; i < v.size(); ++i) {
        EXPECT_EQ(v[i].flags, kTcpSyn);
        EXPECT_EQ(v[i].seq, syn.seq) << "the same ISS";
        EXPECT_EQ((v[i].at - t0) / ms(1), want_ms[i]) << "retransmission " << i + 1;
        EXPECT_EQ(v[i].mss, syn.mss);
    }
    EXPECT_EQ(tapp_.n_closed, 0);
    EXPECT_EQ(state(), TcpState::syn_sent);
    advance(1);
    EXPECT_TRUE(tx_segs().empty());
    ASSERT_EQ(tapp_.n_closed, 1);
    EXPECT_EQ(tapp_.reason, TcpCloseReason::timeout);
    EXPECT_EQ(lookup(), nullptr);
    EXPECT_EQ(tctr().rto_expirations, 6u);
}

// RFC 6298 2.1 after the handshake: a retransmitted SYN is never timed (Karn), and the SYN-ACK
// retransmission of a passive open backs off the same way.
TEST_F(TcpHandshake, SynAckRetransmittedWithBackoff) {
    ASSERT_EQ(tcp().listen(kSrvPort), 0);
    listening_ = true;
    const uint64_t t0 = now_;
    rx_seg(kTcpSyn, kPeerIsn, 0, {}, linux_syn_opts());
    const TcpSeg sa = tx_one();
    advance(7000);
    auto v = tx_segs();
    ASSERT_EQ(v.size(), 3u);
    EXPECT_EQ((v[0].at - t0) / ms(1), 1000u);
    EXPECT_EQ((v[1].at - t0) / ms(1), 3000u);
    EXPECT_EQ((v[2].at - t0) / ms(1), 7000u);
    for (const TcpSeg& s : v) {
        EXPECT_EQ(s.flags, kTcpSyn | kTcpAck);
        EXPECT_EQ(s.seq, sa.seq);
        EXPECT_EQ(s.ack, kPeerIsn + 1);
    }
    // A retransmitted SYN from the peer is answered with the SYN-ACK again.
    rx_seg(kTcpSyn, kPeerIsn, 0, {}, linux_syn_opts());
    const TcpSeg again = tx_one();
    EXPECT_EQ(again.flags, kTcpSyn | kTcpAck);
    EXPECT_EQ(again.seq, sa.seq);
}

// RFC 9293 3.5 figure 8: simultaneous open. Our SYN crosses the peer's SYN: we answer with
// SYN-ACK (SEQ=ISS, ACK=peer ISN + 1) in SYN-RECEIVED; the peer's SYN-ACK then establishes.
TEST_F(TcpHandshake, SimultaneousOpen) {
    lport_ = kLocalPort;
    conn_ = tcp().connect(rte_cpu_to_be_32(kPeerIp), kPeerPort, now_, kLocalPort);
    step();
    const TcpSeg syn = tx_one();
    rx_seg(kTcpSyn, kPeerIsn, 0, {}, linux_syn_opts());
    const TcpSeg sa = tx_one();
    EXPECT_EQ(sa.flags, kTcpSyn | kTcpAck);
    EXPECT_EQ(sa.seq, syn.seq);
    EXPECT_EQ(sa.ack, kPeerIsn + 1);
    EXPECT_EQ(state(), TcpState::syn_received);
    EXPECT_EQ(tapp_.n_connected, 0);
    // The peer's SYN-ACK (its SYN again, acknowledging ours).
    rx_seg(kTcpSyn | kTcpAck, kPeerIsn, syn.seq + 1, {}, linux_syn_opts());
    EXPECT_EQ(state(), TcpState::established);
    EXPECT_EQ(tapp_.n_connected, 1);
    tx_segs();
    // And data flows.
    pseq_ = kPeerIsn + 1;
    pack_ = syn.seq + 1;
    rx_data(pattern(100));
    EXPECT_EQ(tapp_.data, pattern(100));
}

// SYN cookies (the listener's backlog full): listen(port, 1) and two SYNs. The second gets a
// SYN-ACK whose ISN is a cookie and no state is kept; the ACK that returns the cookie creates
// the connection, with the MSS, SACK and window scale the cookie encoded.
TEST_F(TcpHandshake, SynCookieWhenBacklogFull) {
    ASSERT_EQ(tcp().listen(kSrvPort, 1), 0);
    listening_ = true;
    rx_seg(kTcpSyn, kPeerIsn, 0, {}, linux_syn_opts(), 65535, 0, kPeerPort);
    const TcpSeg first = tx_one();
    EXPECT_EQ(first.flags, kTcpSyn | kTcpAck);
    EXPECT_EQ(tcp().open_conns(), 1u);
    const uint16_t port2 = kPeerPort + 1;
    rx_seg(kTcpSyn, 5000, 0, {}, linux_syn_opts(), 65535, 0, port2);
    const TcpSeg ck = tx_one();
    EXPECT_EQ(ck.flags, kTcpSyn | kTcpAck);
    EXPECT_EQ(ck.dport, port2);
    EXPECT_EQ(ck.ack, 5001u);
    EXPECT_EQ(ck.mss, std::optional<uint16_t>(1460));
    EXPECT_TRUE(ck.sack_perm);
    EXPECT_TRUE(ck.has_ts);
    EXPECT_TRUE(ck.ws.has_value());
    EXPECT_EQ(tctr().syn_cookies_sent, 1u);
    EXPECT_EQ(tcp().open_conns(), 1u) << "no state for the cookie";
    EXPECT_EQ(tcp().lookup(rte_cpu_to_be_32(kPeerIp), rte_cpu_to_be_16(port2),
                           rte_cpu_to_be_16(kSrvPort)),
              nullptr);
    // A forged cookie is refused with an RST.
    rx_seg(kTcpAck, 5001, ck.seq + 2, {}, TcpOpts{.ts_val = ++peer_tsval_, .ts_ecr = ck.ts_val},
           65535, 0, port2);
    const TcpSeg rst = tx_one();
    EXPECT_EQ(rst.flags, kTcpRst);
    EXPECT_EQ(tctr().syn_cookies_bad, 1u);
    // The real one completes the handshake (and may carry data).
    advance(5);
    rx_seg(kTcpAck | kTcpPsh, 5001, ck.seq + 1, pattern(10),
           TcpOpts{.ts_val = ++peer_tsval_, .ts_ecr = ck.ts_val}, 65535, 0, port2);
    EXPECT_EQ(tctr().syn_cookies_ok, 1u);
    ASSERT_EQ(tapp_.n_connected, 1);
    proto::TcpConn* c = tcp().lookup(rte_cpu_to_be_32(kPeerIp), rte_cpu_to_be_16(port2),
                                     rte_cpu_to_be_16(kSrvPort));
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(tapp_.conn, c);
    EXPECT_EQ(tcp().stats(c).state, TcpState::established);
    EXPECT_EQ(tapp_.data, pattern(10));
    EXPECT_EQ(tcp().stats(c).snd_wnd, 65535u << 7) << "window scale from the cookie";
    // Data from us uses the MSS the cookie encoded (1460 less the timestamps).
    ASSERT_EQ(tcp().send_copy(c, pattern(3000).data(), 3000), 3000);
    step();
    auto v = tx_segs();
    ASSERT_GE(v.size(), 2u);
    EXPECT_EQ(v[0].len(), 1448u);
    EXPECT_TRUE(v[0].has_ts);
    EXPECT_EQ(v[0].ack, 5011u);
}

}  // namespace
}  // namespace sluice::test
