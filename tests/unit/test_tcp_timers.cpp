// TCP reliability and timers: the retransmission timer (RFC 6298), zero-window probing
// (RFC 9293 3.8.6.1), keepalive (RFC 1122 4.2.3.6).
#include "tests/unit/tcp_fixture.hpp"

namespace sluice::test {
namespace {

using proto::TcpCloseReason;
using proto::TcpState;

class TcpTimers : public TcpTest {
  protected:
    // A passive open whose SYN-ACK is acknowledged `rtt_ms` later.
    void open_with_rtt(uint64_t rtt_ms) {
        ASSERT_EQ(tcp().listen(kSrvPort), 0);
        listening_ = true;
        rx_seg(kTcpSyn, kPeerIsn, 0, {}, linux_syn_opts());
        const TcpSeg sa = tx_one();
        iss_ = sa.seq;
        pseq_ = kPeerIsn + 1;
        pack_ = iss_ + 1;
        advance(rtt_ms);
        rx_ack(pack_);
        conn_ = tapp_.conn;
        ASSERT_NE(conn_, nullptr);
        ASSERT_EQ(state(), TcpState::established);
    }
};

// RFC 6298 2.2: the first measurement R gives SRTT = R, RTTVAR = R/2, RTO = SRTT + 4 RTTVAR
// (at least rto_min); 2.3: then RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R'|, SRTT = 7/8 SRTT +
// 1/8 R'.
TEST_F(TcpTimers, RtoFromRttSamples) {
    ASSERT_NO_FATAL_FAILURE(open_with_rtt(100));
    EXPECT_EQ(stats().srtt_us, 100000u);
    EXPECT_EQ(stats().rttvar_us, 50000u);
    EXPECT_EQ(stats().rto_ms, 300u);
    send(pattern(100));
    tx_segs();
    advance(200);
    rx_ack(pack_ + 100);
    EXPECT_EQ(stats().rttvar_us, 62500u);
    EXPECT_EQ(stats().srtt_us, 112500u);
    EXPECT_EQ(stats().rto_ms, 363u);  // 112.5 + 250 ms, rounded up to the 1 ms clock
}

// RFC 6298 5.4-5.6: on expiry the earliest unacknowledged segment is retransmitted and the
// timer backed off (doubled) each time; 2.4: never below rto_min (200 ms here, as Linux).
// RFC 5681 3.1: after the timeout cwnd is one segment.
TEST_F(TcpTimers, RtoMinAndExponentialBackoff) {
    proto::TcpConfig c = tcp_config();
    c.tlp = false;  // the timer alone (RFC 8985 probes: TailLossProbe* below)
    start_tcp(c);
    ASSERT_NO_FATAL_FAILURE(open_with_rtt(1));
    EXPECT_EQ(stats().rto_ms, 200u);
    const uint64_t t0 = now_;
    send(pattern(3000));
    auto first = tx_segs();
    ASSERT_EQ(first.size(), 2u);
    advance(3000);
    auto v = tx_segs();
    ASSERT_EQ(v.size(), 4u);  // 200, 600, 1400, 3000 ms
    const uint64_t want[] = {200, 600, 1400, 3000};
    for (size_t i = 0; i < v.size(); ++i) {
        EXPECT_EQ((v[i].at - t0) / ms(1), want[i]) << "retransmission " << i + 1;
        EXPECT_EQ(v[i].seq, pack_) << "the earliest unacknowledged";
        EXPECT_EQ(v[i].len(), 1448u);
    }
    EXPECT_EQ(stats().cwnd, 1448u);
    EXPECT_EQ(stats().retransmits, 4u);
    EXPECT_EQ(stats().rto_expirations, 4u);
    // The ACK ends the backoff: the timer restarts from the (unchanged) RTO, and slow start
    // sends what was not acknowledged (go-back-N).
    rx_ack(pack_ + 1448);
    v = tx_segs();
    ASSERT_EQ(v.size(), 1u);
    EXPECT_EQ(v[0].seq, pack_ + 1448);
    EXPECT_EQ(stats().rto_ms, 200u) << "no sample from a retransmitted segment (Karn)";
    const uint64_t t1 = now_;
    advance(200);
    v = tx_segs();
    ASSERT_EQ(v.size(), 1u);
    EXPECT_EQ((v[0].at - t1) / ms(1), 200u);
}

// RFC 6298 / RFC 1122 4.2.3.5: after data_retries unanswered retransmissions the connection is
// given up (closed(timeout)).
TEST_F(TcpTimers, DataRetransmissionsGiveUp) {
    proto::TcpConfig c = tcp_config();
    c.data_retries = 3;
    start_tcp(c);
    ASSERT_NO_FATAL_FAILURE(open_with_rtt(1));
    send(pattern(100));
    advance(200 + 400 + 800 + 1599);
    EXPECT_EQ(tx_segs().size(), 4u);
    EXPECT_EQ(tapp_.n_closed, 0);
    advance(1);
    ASSERT_EQ(tapp_.n_closed, 1);
    EXPECT_EQ(tapp_.reason, TcpCloseReason::timeout);
    EXPECT_EQ(lookup(), nullptr);
}

// RFC 9293 3.8.6.1: with the peer's window closed, data waits and the window is probed after
// the RTO, the interval doubling; the connection lives on while the peer answers the probes;
// the window reopening sends the data.
TEST_F(TcpTimers, ZeroWindowPersistProbesWithBackoffThenReopen) {
    proto::TcpConfig c = tcp_config();
    c.data_retries = 3;
    start_tcp(c);
    ASSERT_NO_FATAL_FAILURE(open_with_rtt(1));
    rx_ack(pack_, {}, 0);
    EXPECT_EQ(stats().snd_wnd, 0u);
    const uint64_t t0 = now_;
    send(pattern(1000));
    EXPECT_TRUE(tx_segs().empty()) << "nothing fits a zero window";
    std::vector<TcpSeg> probes;
    // 12 probes (more than data_retries, and enough for the backoff to reach its 2 s cap),
    // each answered with a zero window.
    for (int i = 0; i < 12; ++i) {
        while (out_.empty() && now_ - t0 < sec(400)) advance(1);
        auto v = tx_segs();
        ASSERT_EQ(v.size(), 1u);
        probes.push_back(v[0]);
        rx_ack(pack_, {}, 0);
        EXPECT_TRUE(tx_segs().empty());
    }
    ASSERT_EQ(probes.size(), 12u);
    EXPECT_EQ(probes[11].at - probes[10].at, sec(2))
        << "the interval is capped at 2 s (a lost window update is found again soon)";
    EXPECT_EQ(tapp_.n_closed, 0) << "a peer that answers is never given up";
    EXPECT_EQ(state(), TcpState::established);
    EXPECT_EQ((probes[0].at - t0) / ms(1), 200u) << "the first probe after the RTO";
    for (size_t i = 0; i < probes.size(); ++i) {
        EXPECT_LE(probes[i].len(), 1u) << "probe " << i;
        EXPECT_TRUE(probes[i].seq == pack_ || probes[i].seq == pack_ - 1) << "probe " << i;
        if (i >= 2 && i < 8) {
            const uint64_t a = probes[i].at - probes[i - 1].at;
            const uint64_t b = probes[i - 1].at - probes[i - 2].at;
            EXPECT_EQ(a, std::min<uint64_t>(2 * b, sec(2))) << "probe " << i << ": backoff";
        }
    }
    EXPECT_GE(tctr().persist_probes, 8u);
    // The window opens: the data goes, the refused probe byte with it.
    rx_ack(pack_, {}, 100);
    const TcpSeg d = tx_one();
    EXPECT_EQ(d.seq, pack_);
    EXPECT_EQ(d.payload, pattern(1000));
    rx_ack(pack_ + 1000);
    EXPECT_EQ(stats().bytes_sent, 1000u);
    EXPECT_EQ(tapp_.data.size(), 0u);
}

// RFC 1122 4.2.3.6: keepalive (enabled): after the idle time a probe <SEQ=SND.UNA-1> with no
// data; an answer resets the count; unanswered probes every interval, then the connection is
// closed (timeout).
TEST_F(TcpTimers, KeepaliveProbesThenTimeout) {
    proto::TcpConfig c = tcp_config();
    c.keepalive = true;
    c.keepalive_idle_ms = 1000;
    c.keepalive_intvl_ms = 100;
    c.keepalive_probes = 3;
    start_tcp(c);
    ASSERT_NO_FATAL_FAILURE(open_with_rtt(1));
    const uint64_t t0 = now_;
    advance(1000);
    TcpSeg p = tx_one();
    EXPECT_EQ((p.at - t0) / ms(1), 1000u);
    EXPECT_EQ(p.flags, kTcpAck);
    EXPECT_EQ(p.seq, pack_ - 1);
    EXPECT_EQ(p.ack, pseq_);
    EXPECT_TRUE(p.payload.empty());
    rx_ack(pack_);  // the peer answers
    const uint64_t t1 = now_;
    advance(1000 + 3 * 100 - 1);
    auto v = tx_segs();
    ASSERT_EQ(v.size(), 3u);
    EXPECT_EQ((v[0].at - t1) / ms(1), 1000u);
    EXPECT_EQ((v[1].at - t1) / ms(1), 1100u);
    EXPECT_EQ((v[2].at - t1) / ms(1), 1200u);
    EXPECT_EQ(tapp_.n_closed, 0);
    advance(1);
    ASSERT_EQ(tapp_.n_closed, 1);
    EXPECT_EQ(tapp_.reason, TcpCloseReason::timeout);
    EXPECT_EQ(tctr().keepalive_probes, 4u);
}

// Keepalive off (the default): an idle connection sends nothing, for hours.
TEST_F(TcpTimers, NoKeepaliveByDefault) {
    ASSERT_NO_FATAL_FAILURE(open_with_rtt(1));
    advance(10000);
    EXPECT_TRUE(tx_segs().empty());
    EXPECT_EQ(state(), TcpState::established);
}

}  // namespace
}  // namespace sluice::test
