// TCP loss recovery and congestion signals: fast retransmit (RFC 5681 3.2), NewReno partial
// ACKs (RFC 6582), SACK-based recovery (RFC 6675), ECN (RFC 3168), per-connection statistics.
#include <set>

#include "proto/tcp_seq.hpp"
#include "tests/unit/tcp_fixture.hpp"

namespace sluice::test {
namespace {

using proto::TcpState;

class TcpRecovery : public TcpTest {
  protected:
    // Passive open with an ECN-setup SYN (ECE and CWR, RFC 3168 6.1.1): listen, SYN, our
    // SYN-ACK (returned), the peer's ACK; conn_ ESTABLISHED.
    TcpSeg open_passive_ecn() {
        EXPECT_EQ(tcp().listen(kSrvPort), 0);
        listening_ = true;
        rx_seg(kTcpSyn | kTcpEce | kTcpCwr, kPeerIsn, 0, {}, linux_syn_opts());
        const TcpSeg sa = tx_one();
        pseq_ = kPeerIsn + 1;
        pack_ = sa.seq + 1;
        rx_ack(pack_);
        conn_ = tapp_.conn;
        EXPECT_NE(conn_, nullptr);
        return sa;
    }
    static constexpr uint32_t kMss = 1448;
    // Established (RTT 1 ms), `n` full segments sent and taken.
    void open_and_send(unsigned n, proto::TcpCcAlgo cc, bool sack, bool tlp = true) {
        proto::TcpConfig c = tcp_config();
        c.cc = cc;
        c.sack = sack;
        c.tlp = tlp;
        start_tcp(c);
        ASSERT_NO_FATAL_FAILURE(open_passive());
        send(pattern(n * kMss, 11));
        auto v = tx_segs();
        ASSERT_EQ(v.size(), n);
        base_ = pack_;
    }
    uint32_t seg(unsigned i) const { return base_ + i * kMss; }
    uint32_t base_ = 0;
};

// RFC 5681 3.2: the third duplicate ACK (not the first or second) retransmits the missing
// segment at once; ssthresh = max(FlightSize / 2, 2 SMSS), cwnd = ssthresh + 3 SMSS.
TEST_F(TcpRecovery, FastRetransmitOnThirdDuplicateAck) {
    ASSERT_NO_FATAL_FAILURE(open_and_send(10, proto::TcpCcAlgo::newreno, false));
    rx_ack(seg(1));  // segment 1 lost: 2..9 arrive
    tx_segs();
    rx_ack(seg(1));
    rx_ack(seg(1));
    EXPECT_TRUE(tx_segs().empty()) << "two duplicate ACKs are not enough";
    rx_ack(seg(1));
    auto v = tx_segs();
    ASSERT_GE(v.size(), 1u);
    EXPECT_EQ(v[0].seq, seg(1));
    EXPECT_EQ(v[0].len(), kMss);
    EXPECT_EQ(stats().fast_retransmits, 1u);
    EXPECT_EQ(stats().retransmits, 1u);
    EXPECT_EQ(stats().ssthresh, 9 * kMss / 2);
    EXPECT_EQ(stats().cwnd, 9 * kMss / 2 + 3 * kMss);
    EXPECT_EQ(stats().rto_expirations, 0u);
}

// RFC 3042 2 (limited transmit): the first and second duplicate ACKs each send one new
// segment, if the peer's window allows; the third retransmits.
TEST_F(TcpRecovery, LimitedTransmitOnFirstTwoDuplicateAcks) {
    ASSERT_NO_FATAL_FAILURE(open_and_send(10, proto::TcpCcAlgo::newreno, false));
    send(pattern(6 * kMss, 12));  // queued: the window is full
    EXPECT_TRUE(tx_segs().empty());
    rx_ack(seg(1));  // segment 1 lost: the ACK of 0 opens cwnd by one (slow start)
    auto v = tx_segs();
    ASSERT_EQ(v.size(), 2u);
    EXPECT_EQ(v[0].seq, seg(10));
    rx_ack(seg(1));
    v = tx_segs();
    ASSERT_EQ(v.size(), 1u) << "first duplicate: one new segment";
    EXPECT_EQ(v[0].seq, seg(12));
    rx_ack(seg(1));
    v = tx_segs();
    ASSERT_EQ(v.size(), 1u) << "second duplicate: one more";
    EXPECT_EQ(v[0].seq, seg(13));
    rx_ack(seg(1));
    v = tx_segs();
    ASSERT_GE(v.size(), 1u);
    EXPECT_EQ(v[0].seq, seg(1)) << "third: fast retransmit";
    EXPECT_EQ(stats().fast_retransmits, 1u);
}

// RFC 6675 2: with SACK, an ACK at SND.UNA that brings new SACK information is a duplicate
// even when the window it carries moved (a receiver whose app reads, as Linux's does).
TEST_F(TcpRecovery, SackDuplicateAcksCountEvenWhenTheWindowMoves) {
    ASSERT_NO_FATAL_FAILURE(open_and_send(10, proto::TcpCcAlgo::newreno, true));
    rx_ack(seg(1));  // segment 1 lost
    tx_segs();
    const uint16_t wnds[3] = {500, 490, 480};  // scaled by 2^7: all above the flight
    for (unsigned k = 0; k < 3; ++k) {
        TcpOpts o;
        o.sack = {{seg(2), seg(3 + k)}};
        rx_ack(seg(1), o, wnds[k]);
    }
    EXPECT_EQ(stats().fast_retransmits, 1u);
    bool retransmitted = false;
    for (const TcpSeg& t : tx_segs()) retransmitted |= t.seq == seg(1);
    EXPECT_TRUE(retransmitted);
    // Without new SACK information and with the window moving, an ACK is not a duplicate.
    ASSERT_NO_FATAL_FAILURE(open_and_send(10, proto::TcpCcAlgo::newreno, true));
    rx_ack(seg(1));
    tx_segs();
    for (unsigned k = 0; k < 3; ++k) rx_ack(seg(1), {}, wnds[k]);
    EXPECT_EQ(stats().fast_retransmits, 0u);
}

// RFC 6675 2: "even if it carries new data". A peer that sends too (an echo, request and
// response) acknowledges on its data segments; their new SACK blocks are duplicate ACKs, and
// the third retransmits the hole at once instead of at the retransmission timeout.
TEST_F(TcpRecovery, SackAcksOnDataSegmentsCountAsDuplicates) {
    ASSERT_NO_FATAL_FAILURE(open_and_send(10, proto::TcpCcAlgo::cubic, true));
    rx_ack(seg(1));  // segment 1 lost
    tx_segs();
    for (unsigned k = 0; k < 3; ++k) {
        TcpOpts o;
        o.sack = {{seg(2), seg(3 + k)}};
        // One new SACKed segment per data segment: IsLost() only after the third.
        rx_seg(kTcpAck | kTcpPsh, pseq_, seg(1), pattern(100, 20 + k), o);
        pseq_ += 100;
        if (k < 2) {
            EXPECT_EQ(stats().fast_retransmits, 0u) << "duplicate " << k + 1;
        }
    }
    EXPECT_EQ(stats().fast_retransmits, 1u);
    bool retransmitted = false;
    for (const TcpSeg& t : tx_segs()) retransmitted |= t.seq == seg(1);
    EXPECT_TRUE(retransmitted);
    EXPECT_EQ(stats().rto_expirations, 0u);
    // Data segments without SACK information are not duplicates (RFC 5681 2 (b)).
    ASSERT_NO_FATAL_FAILURE(open_and_send(10, proto::TcpCcAlgo::cubic, true));
    rx_ack(seg(1));
    tx_segs();
    for (unsigned k = 0; k < 4; ++k) {
        rx_seg(kTcpAck | kTcpPsh, pseq_, seg(1), pattern(100, 30 + k));
        pseq_ += 100;
    }
    EXPECT_EQ(stats().fast_retransmits, 0u);
}

// RFC 6675 5: a cumulative ACK that also SACKs new octets is a duplicate too ("regardless of
// its status as a cumulative acknowledgment"): when its blocks put IsLost(HighACK + 1) true,
// more than two segments SACKed above the new SND.UNA, the hole goes at once.
TEST_F(TcpRecovery, CumulativeAckWithSackAboveAHoleRetransmitsIt) {
    ASSERT_NO_FATAL_FAILURE(open_and_send(10, proto::TcpCcAlgo::cubic, true));
    TcpOpts o;
    o.sack = {{seg(2), seg(5)}};  // 0 arrived, 1 lost, 2..4 arrived
    rx_ack(seg(1), o);
    EXPECT_EQ(stats().fast_retransmits, 1u);
    bool retransmitted = false;
    for (const TcpSeg& t : tx_segs()) retransmitted |= t.seq == seg(1);
    EXPECT_TRUE(retransmitted);
    // Two segments SACKed above the hole are not yet a loss (DupThresh = 3).
    ASSERT_NO_FATAL_FAILURE(open_and_send(10, proto::TcpCcAlgo::cubic, true));
    o.sack = {{seg(2), seg(4)}};
    rx_ack(seg(1), o);
    EXPECT_EQ(stats().fast_retransmits, 0u);
}

// RFC 6675 5.1: after a timeout no new recovery phase starts below RecoveryPoint, but the
// SACKs still say what to send: a segment of the resent window lost again is retransmitted
// once more than two segments above it are SACKed, without another window cut and without
// waiting for the next (backed-off) timeout.
TEST_F(TcpRecovery, AfterATimeoutSackedHolesGoWithoutAnotherTimeout) {
    ASSERT_NO_FATAL_FAILURE(open_and_send(10, proto::TcpCcAlgo::cubic, true, false));
    advance(300);  // nothing acknowledged: the timeout (200 ms) resends segment 0
    ASSERT_EQ(stats().rto_expirations, 1u);
    auto v = tx_segs();
    ASSERT_FALSE(v.empty());
    EXPECT_EQ(v[0].seq, seg(0));
    const uint32_t ssthresh = stats().ssthresh;
    rx_ack(seg(1));  // segment 0 arrived; slow start resends 1 and 2: 1 is lost again
    tx_segs();
    for (unsigned k = 0; k < 3; ++k) {
        TcpOpts o;
        o.sack = {{seg(2), seg(3 + k)}};
        rx_ack(seg(1), o);
    }
    bool retransmitted = false;
    for (const TcpSeg& t : tx_segs()) retransmitted |= t.seq == seg(1);
    EXPECT_TRUE(retransmitted) << "segment 1 again, from the SACKs";
    EXPECT_EQ(stats().rto_expirations, 1u);
    EXPECT_EQ(stats().ssthresh, ssthresh) << "the timeout already cut the window";
    rx_ack(seg(10));
    EXPECT_EQ(stats().bytes_sent, 10u * kMss);
}

// RFC 6675 4 (SetPipe) after a timeout: what was sent beyond SND.NXT before it is not in
// flight any more (RFC 6298 5.4 went back to SND.UNA), so it does not fill the pipe: with the
// SACKs showing holes, the head and the next hole go together, not one per ACK.
TEST_F(TcpRecovery, AfterATimeoutDataBeyondSndNxtIsNotInThePipe) {
    ASSERT_NO_FATAL_FAILURE(open_and_send(10, proto::TcpCcAlgo::cubic, true, false));
    advance(300);  // the timeout resends segment 0
    ASSERT_EQ(stats().rto_expirations, 1u);
    tx_segs();
    // Segment 0 arrives; of the first flight only 3..5 had arrived (1, 2, 6..9 lost).
    TcpOpts o;
    o.sack = {{seg(3), seg(6)}};
    rx_ack(seg(1), o);
    std::set<uint32_t> rtx;
    for (const TcpSeg& t : tx_segs()) rtx.insert(t.seq);
    EXPECT_TRUE(rtx.count(seg(1))) << "the head";
    EXPECT_TRUE(rtx.count(seg(2))) << "and the next hole, in the same round";
    EXPECT_FALSE(rtx.count(seg(3)) || rtx.count(seg(4)) || rtx.count(seg(5))) << "SACKed";
    EXPECT_EQ(stats().rto_expirations, 1u);
}

// RFC 5827: with fewer than four segments outstanding and nothing new to send, three
// duplicate ACKs can never come; ER_thresh is one less than the segments outstanding. With
// SACK (3.2): every segment but the hole SACKed. Without: that many duplicate ACKs.
TEST_F(TcpRecovery, EarlyRetransmitForASmallFlight) {
    for (const bool sack : {true, false}) {
        SCOPED_TRACE(sack ? "SACK" : "NewReno");
        ASSERT_NO_FATAL_FAILURE(open_and_send(3, proto::TcpCcAlgo::cubic, sack));
        const uint64_t early = tctr().early_retransmits;
        TcpOpts o;
        if (sack) o.sack = {{seg(1), seg(2)}};
        rx_ack(seg(0), o);  // segment 0 lost, 1 arrived
        EXPECT_EQ(stats().fast_retransmits, 0u) << "segment 2 may still come";
        if (sack) o.sack = {{seg(1), seg(3)}};
        rx_ack(seg(0), o);  // and 2
        EXPECT_EQ(stats().fast_retransmits, 1u);
        EXPECT_EQ(tctr().early_retransmits, early + 1);
        bool retransmitted = false;
        for (const TcpSeg& t : tx_segs()) retransmitted |= t.seq == seg(0);
        EXPECT_TRUE(retransmitted) << "segment 0 at once";
        rx_ack(seg(3));
        EXPECT_EQ(stats().rto_expirations, 0u);
    }
    // Four segments outstanding: DupThresh as usual (two SACKed is not yet a loss).
    ASSERT_NO_FATAL_FAILURE(open_and_send(4, proto::TcpCcAlgo::cubic, true));
    TcpOpts o;
    o.sack = {{seg(1), seg(2)}};
    rx_ack(seg(0), o);
    o.sack = {{seg(1), seg(3)}};
    rx_ack(seg(0), o);
    EXPECT_EQ(stats().fast_retransmits, 0u);
    o.sack = {{seg(1), seg(4)}};
    rx_ack(seg(0), o);
    EXPECT_EQ(stats().fast_retransmits, 1u);
    EXPECT_EQ(tctr().early_retransmits, 0u);
}

// RFC 6582 3.2 step 1: `recover` is "the highest sequence number transmitted", the octet
// below SND.MAX; a cumulative ACK that reaches SND.MAX as it was at the last recovery
// "covers more than recover", so a loss in the very next window starts a new recovery
// instead of waiting for the retransmission timeout.
TEST_F(TcpRecovery, LossRightAfterARecoveryStartsAnotherOne) {
    for (const bool sack : {true, false}) {
        SCOPED_TRACE(sack ? "SACK" : "NewReno");
        ASSERT_NO_FATAL_FAILURE(open_and_send(10, proto::TcpCcAlgo::newreno, sack));
        send(pattern(8 * kMss, 13));  // waits for room in the window
        // Segment 0 lost, 1..11 arrive. The first two duplicates let new segments out
        // (limited transmit), the third starts recovery: `recover` is then seg(r).
        std::set<uint32_t> sent;
        unsigned r = 10;
        for (unsigned k = 0; k < 11; ++k) {
            TcpOpts o;
            if (sack) o.sack = {{seg(1), seg(2 + k)}};
            rx_ack(seg(0), o);
            for (const TcpSeg& t : tx_segs()) sent.insert(t.seq);
            if (k < 2) r = 10 + unsigned(sent.size());
        }
        ASSERT_EQ(stats().fast_retransmits, 1u);
        ASSERT_TRUE(sent.count(seg(0)));
        for (unsigned i = r; i < r + 4; ++i) ASSERT_TRUE(sent.count(seg(i))) << i;
        // The full ACK ends recovery exactly at `recover`. In the new window segment r is
        // lost and the next three arrive.
        rx_ack(seg(r));
        tx_segs();
        for (unsigned k = 0; k < 3; ++k) {
            TcpOpts o;
            if (sack) o.sack = {{seg(r + 1), seg(r + 2 + k)}};
            rx_ack(seg(r), o);
        }
        EXPECT_EQ(stats().fast_retransmits, 2u);
        bool retransmitted = false;
        for (const TcpSeg& t : tx_segs()) retransmitted |= t.seq == seg(r);
        EXPECT_TRUE(retransmitted) << "segment " << r << " at once, not at the timeout";
        EXPECT_EQ(stats().rto_expirations, 0u);
    }
}

// RFC 8985 6.2: a retransmission is lost too once data sent after it is SACKed and it is
// not; it goes again at once (RFC 6675's NextSeg alone never resends below HighRxt, leaving it
// to the retransmission timer).
TEST_F(TcpRecovery, LostRetransmissionGoesAgainWithoutATimeout) {
    ASSERT_NO_FATAL_FAILURE(open_and_send(10, proto::TcpCcAlgo::cubic, true));
    send(pattern(20 * kMss, 14));  // more to send: new data follows the retransmission
    auto sack = [&](uint32_t right) {
        TcpOpts o;
        o.sack = {{seg(2), right}};
        rx_ack(seg(1), o);
    };
    std::vector<TcpSeg> sent;
    auto resent = [&](uint32_t seq) {
        unsigned n = 0;
        for (const TcpSeg& t : tx_segs()) {
            n += t.seq == seq;
            sent.push_back(t);
        }
        return n;
    };
    // Segment 1 lost: the third duplicate resends it. Before that, the cumulative ACK of
    // segment 0 and limited transmit sent new segments up to seg(hi).
    sack(seg(3));
    sack(seg(4));
    resent(0);
    unsigned hi = 9;
    for (const TcpSeg& t : sent) hi = std::max(hi, unsigned((t.seq - seg(0)) / kMss));
    sack(seg(5));
    ASSERT_EQ(stats().fast_retransmits, 1u);
    ASSERT_EQ(resent(seg(1)), 1u);
    const uint64_t lost_before = tctr().lost_retransmits;
    // The retransmission is lost. SACKs of segments sent before it say nothing about it.
    for (unsigned i = 6; i <= hi + 1; ++i) sack(seg(i));
    EXPECT_EQ(resent(seg(1)), 0u) << "only segments sent before the retransmission arrived";
    EXPECT_EQ(tctr().lost_retransmits, lost_before);
    bool after = false;
    for (const TcpSeg& t : sent) after |= t.seq == seg(hi + 1);
    ASSERT_TRUE(after) << "new data after the retransmission";
    // New data sent after it arrives: it was lost.
    sack(seg(hi + 2));
    EXPECT_EQ(tctr().lost_retransmits, lost_before + 1);
    EXPECT_EQ(resent(seg(1)), 1u) << "segment 1 again, at once";
    EXPECT_EQ(stats().rto_expirations, 0u);
    EXPECT_EQ(stats().fast_retransmits, 1u) << "the same recovery";
    // Delivered this time: everything acknowledged, with no timeout.
    rx_ack(seg(hi + 2));
    EXPECT_EQ(stats().rto_expirations, 0u);
    EXPECT_EQ(stats().bytes_sent, (hi + 2) * kMss);
}

// RFC 6582 3.2 step 4: a partial ACK (above the old SND.UNA, below `recover`) retransmits
// the next missing segment at once and stays in recovery; step 3: the full ACK ends it with
// cwnd = min(ssthresh, FlightSize + SMSS).
TEST_F(TcpRecovery, NewRenoPartialAckRetransmitsNextHole) {
    ASSERT_NO_FATAL_FAILURE(open_and_send(10, proto::TcpCcAlgo::newreno, false));
    // Segments 0 and 4 lost.
    for (int i = 0; i < 3; ++i) rx_ack(seg(0));
    auto v = tx_segs();
    ASSERT_GE(v.size(), 1u);
    EXPECT_EQ(v[0].seq, seg(0));
    const uint32_t ssthresh = stats().ssthresh;
    EXPECT_EQ(ssthresh, 10 * kMss / 2);
    // The retransmission arrives: the ACK covers 0..3, not 4 (partial).
    rx_ack(seg(4));
    v = tx_segs();
    ASSERT_GE(v.size(), 1u);
    EXPECT_EQ(v[0].seq, seg(4)) << "the next hole, without waiting for 3 more duplicates";
    EXPECT_EQ(v[0].len(), kMss);
    EXPECT_EQ(stats().fast_retransmits, 1u) << "one recovery episode";
    // Everything (including what recovery sent past segment 9) acknowledged.
    const uint32_t all = pack_ + uint32_t(10 * kMss);
    rx_ack(all);
    EXPECT_LE(stats().cwnd, ssthresh);
    EXPECT_EQ(stats().rto_expirations, 0u);
    EXPECT_EQ(stats().bytes_sent, 10u * kMss);
}

// RFC 6675: with SACK the scoreboard drives recovery; every hole below the highest SACKed
// byte is retransmitted (pipe permitting), not only the first.
TEST_F(TcpRecovery, SackRecoveryRetransmitsEachHole) {
    ASSERT_NO_FATAL_FAILURE(open_and_send(10, proto::TcpCcAlgo::cubic, true));
    // Segments 0 and 4 lost; the peer SACKs 1..3 and 5..9 as they arrive.
    auto sack = [&](std::vector<std::pair<uint32_t, uint32_t>> b) {
        TcpOpts o;
        o.sack = std::move(b);
        rx_ack(seg(0), o);
    };
    sack({{seg(1), seg(2)}});
    sack({{seg(1), seg(3)}});
    sack({{seg(1), seg(4)}});
    sack({{seg(5), seg(6)}, {seg(1), seg(4)}});
    sack({{seg(5), seg(7)}, {seg(1), seg(4)}});
    auto v = tx_segs();
    std::set<uint32_t> rtx;
    for (const TcpSeg& s : v)
        if (proto::seq_lt(s.seq, seg(10))) rtx.insert(s.seq);
    EXPECT_TRUE(rtx.count(seg(0))) << "the first hole";
    EXPECT_EQ(stats().fast_retransmits, 1u);
    sack({{seg(5), seg(10)}, {seg(1), seg(4)}});
    for (const TcpSeg& s : tx_segs())
        if (proto::seq_lt(s.seq, seg(10))) rtx.insert(s.seq);
    EXPECT_TRUE(rtx.count(seg(4))) << "the second hole, from the scoreboard";
    EXPECT_FALSE(rtx.count(seg(1)) || rtx.count(seg(2)) || rtx.count(seg(5)))
        << "SACKed segments are not sent again";
    rx_ack(seg(10));
    EXPECT_EQ(stats().rto_expirations, 0u);
    EXPECT_EQ(stats().bytes_sent, 10u * kMss);
}

// RFC 8985 7: with SACK, a tail that draws no ACK gets a probe at PTO = 2 SRTT (+ 2 ms ticks,
// as Linux adds TCP_TIMEOUT_MIN) instead of waiting out the RTO: the last segment again when
// there is nothing new to send.
// The retransmission timer then runs from the probe (7.3). A D-SACK of the probe says it was
// not needed (7.4.1): the window stays.
TEST_F(TcpRecovery, TailLossProbeResendsTheLastSegment) {
    ASSERT_NO_FATAL_FAILURE(open_and_send(3, proto::TcpCcAlgo::cubic, true));
    const uint32_t srtt_us = stats().srtt_us;
    ASSERT_LT(srtt_us, 1000u) << "the handshake's RTT sample: PTO is 1 + 2 ms";
    const uint32_t cwnd = stats().cwnd;
    advance(2);
    EXPECT_TRUE(tx_segs().empty()) << "not before the probe timeout";
    advance(1);
    auto v = tx_segs();
    ASSERT_EQ(v.size(), 1u);
    EXPECT_EQ(v[0].seq, seg(2)) << "the last segment";
    EXPECT_EQ(v[0].len(), kMss);
    EXPECT_EQ(tctr().tlp_probes, 1u);
    EXPECT_EQ(stats().rto_expirations, 0u);
    // No second probe: the retransmission timer, from the probe.
    advance(199);
    EXPECT_TRUE(tx_segs().empty());
    advance(1);
    v = tx_segs();
    ASSERT_EQ(v.size(), 1u);
    EXPECT_EQ(v[0].seq, seg(0)) << "the timeout resends the head";
    EXPECT_EQ(stats().rto_expirations, 1u);
    EXPECT_EQ(tctr().tlp_probes, 1u);

    // Only the ACK was lost: the peer D-SACKs the probe; no loss, no window cut.
    ASSERT_NO_FATAL_FAILURE(open_and_send(3, proto::TcpCcAlgo::cubic, true));
    advance(3);
    ASSERT_EQ(tx_segs().size(), 1u);
    TcpOpts o;
    o.sack = {{seg(2), seg(3)}};  // below the cumulative ACK: a duplicate (RFC 2883 4.1.1)
    rx_ack(seg(3), o);
    EXPECT_EQ(tctr().tlp_repairs, 0u);
    EXPECT_GE(stats().cwnd, cwnd);
    EXPECT_EQ(stats().bytes_sent, 3u * kMss);
}

// RFC 8985 7.4.2: a retransmitted probe that the peer did not get twice repaired a loss: the
// sender responds as fast recovery would (here CUBIC's beta, 0.7). That is known once an ACK
// goes beyond TLP.end_seq (SND.NXT when the probe went) with no D-SACK before it: an ACK of
// exactly TLP.end_seq could still be the original's.
TEST_F(TcpRecovery, TailLossProbeThatRepairsALossCutsTheWindow) {
    ASSERT_NO_FATAL_FAILURE(open_and_send(3, proto::TcpCcAlgo::cubic, true));
    const uint32_t cwnd = stats().cwnd;
    // Segments 0 and 1 arrive but their ACK is lost; segment 2 is lost.
    advance(3);
    auto v = tx_segs();
    ASSERT_EQ(v.size(), 1u);
    EXPECT_EQ(v[0].seq, seg(2));
    rx_ack(seg(3));  // the probe delivered it: no D-SACK
    EXPECT_EQ(tctr().tlp_repairs, 0u) << "not known yet";
    send(pattern(kMss, 12));
    v = tx_segs();
    ASSERT_EQ(v.size(), 1u);
    EXPECT_EQ(v[0].seq, seg(3));
    rx_ack(seg(4));  // beyond the episode, and still no D-SACK
    EXPECT_EQ(tctr().tlp_repairs, 1u);
    EXPECT_LT(stats().cwnd, cwnd);
    EXPECT_EQ(stats().ssthresh, stats().cwnd);
    EXPECT_EQ(stats().rto_expirations, 0u);
    EXPECT_EQ(stats().bytes_sent, 4u * kMss);
}

// RFC 8985 7.4: the probe raced an ACK that was only late (a receiver's delayed ACK, a busy
// core): the original ACK of everything arrives first, then the probe's D-SACK. Nothing was
// lost, so the window stays; counting a repair at the first ACK cut the window of every
// connection whose ACK was late.
TEST_F(TcpRecovery, LateAckThenDsackOfTheProbeIsNoLoss) {
    ASSERT_NO_FATAL_FAILURE(open_and_send(3, proto::TcpCcAlgo::cubic, true));
    const uint32_t cwnd = stats().cwnd;
    advance(3);
    auto v = tx_segs();
    ASSERT_EQ(v.size(), 1u);
    EXPECT_EQ(v[0].seq, seg(2)) << "the probe";
    rx_ack(seg(3));  // the original ACK, late
    TcpOpts o;
    o.sack = {{seg(2), seg(3)}};  // then the probe's: below the cumulative ACK, a D-SACK
    rx_ack(seg(3), o);
    send(pattern(kMss, 12));
    ASSERT_EQ(tx_segs().size(), 1u);
    rx_ack(seg(4));
    EXPECT_EQ(tctr().tlp_probes, 1u);
    EXPECT_EQ(tctr().tlp_repairs, 0u);
    EXPECT_GE(stats().cwnd, cwnd);
    EXPECT_EQ(stats().ssthresh, 0x7fffffffu) << "no congestion response";
    // The episode is over: the next tail gets a probe of its own.
    send(pattern(2 * kMss, 13));
    ASSERT_EQ(tx_segs().size(), 2u);
    advance(3);
    EXPECT_EQ(tctr().tlp_probes, 2u);
}

// RFC 8985 7.4 for a peer without D-SACK: the probe arrived twice and drew a pure duplicate
// ACK of TLP.end_seq; nothing was lost.
TEST_F(TcpRecovery, DuplicateAckOfTheProbeIsNoLoss) {
    ASSERT_NO_FATAL_FAILURE(open_and_send(3, proto::TcpCcAlgo::cubic, true));
    const uint32_t cwnd = stats().cwnd;
    advance(3);
    ASSERT_EQ(tx_segs().size(), 1u);
    rx_ack(seg(3));  // the original ACK, late
    rx_ack(seg(3));  // the probe's, a duplicate
    send(pattern(kMss, 12));
    ASSERT_EQ(tx_segs().size(), 1u);
    rx_ack(seg(4));
    EXPECT_EQ(tctr().tlp_repairs, 0u);
    EXPECT_GE(stats().cwnd, cwnd);
}

// RFC 8985 7.3: new data goes as the probe when the peer's window takes it (the congestion
// window does not count for the probe).
TEST_F(TcpRecovery, TailLossProbeSendsNewDataWhenThereIsSome) {
    ASSERT_NO_FATAL_FAILURE(open_and_send(10, proto::TcpCcAlgo::cubic, true));
    send(pattern(2 * kMss, 15));  // queued behind a full congestion window
    EXPECT_TRUE(tx_segs().empty());
    advance(3);
    auto v = tx_segs();
    ASSERT_EQ(v.size(), 1u);
    EXPECT_EQ(v[0].seq, seg(10)) << "new data";
    EXPECT_EQ(stats().retransmits, 0u);
    EXPECT_EQ(tctr().tlp_probes, 1u);
    rx_ack(seg(11));
    EXPECT_EQ(tctr().tlp_repairs, 0u) << "new data repairs nothing";
    EXPECT_EQ(stats().rto_expirations, 0u);
}

// RFC 8985 6.2 applied to the probe: it went out at least 2 SRTT after everything still
// outstanding, so once it is SACKed the data below it that is not is lost: recovery starts at
// once (one SACKed segment is far from DupThresh, and without this the timer would fire).
TEST_F(TcpRecovery, SackedLossProbeStartsRecovery) {
    ASSERT_NO_FATAL_FAILURE(open_and_send(10, proto::TcpCcAlgo::cubic, true));
    send(pattern(2 * kMss, 17));  // queued behind a full congestion window
    advance(3);
    auto v = tx_segs();
    ASSERT_EQ(v.size(), 1u);
    ASSERT_EQ(v[0].seq, seg(10)) << "the probe: new data";
    // Only the probe arrived: the whole flight before it was lost.
    TcpOpts o;
    o.sack = {{seg(10), seg(11)}};
    rx_ack(seg(0), o);
    EXPECT_EQ(stats().fast_retransmits, 1u);
    EXPECT_EQ(tctr().tlp_losses, 1u);
    bool retransmitted = false;
    for (const TcpSeg& t : tx_segs()) retransmitted |= t.seq == seg(0);
    EXPECT_TRUE(retransmitted) << "segment 0 at once";
    EXPECT_EQ(stats().rto_expirations, 0u);
    // The same SACK without a probe out is one duplicate ACK: nothing yet.
    ASSERT_NO_FATAL_FAILURE(open_and_send(10, proto::TcpCcAlgo::cubic, true, false));
    send(pattern(2 * kMss, 17));
    advance(3);
    EXPECT_TRUE(tx_segs().empty());
    o.sack = {{seg(9), seg(10)}};
    rx_ack(seg(0), o);
    EXPECT_EQ(stats().fast_retransmits, 0u);
}

// RFC 8985 7.2: with one segment in flight the probe waits for the peer's delayed ACK too
// (WCDelAckT, 200 ms), which is no earlier than the RTO: no probe, the timer.
TEST_F(TcpRecovery, TailLossProbeSparesASingleSegment) {
    ASSERT_NO_FATAL_FAILURE(open_and_send(1, proto::TcpCcAlgo::cubic, true));
    advance(199);
    EXPECT_TRUE(tx_segs().empty());
    advance(1);
    auto v = tx_segs();
    ASSERT_EQ(v.size(), 1u);
    EXPECT_EQ(v[0].seq, seg(0));
    EXPECT_EQ(tctr().tlp_probes, 0u);
    EXPECT_EQ(stats().rto_expirations, 1u);
}

// RFC 3168 6.1.1: an ECN-setup SYN (ECE, CWR) gets an ECN-setup SYN-ACK (ECE, not CWR);
// data we send is ECT(0) (6.1.2), never pure ACKs or retransmissions.
TEST_F(TcpRecovery, EcnNegotiatedOnPassiveOpen) {
    const TcpSeg sa = open_passive_ecn();
    EXPECT_EQ(sa.flags, kTcpSyn | kTcpAck | kTcpEce);
    EXPECT_EQ(sa.ecn, 0) << "no ECT on a SYN-ACK";
    ASSERT_NE(conn_, nullptr);
    send(pattern(100));
    const TcpSeg d = tx_one();
    EXPECT_EQ(d.ecn, 2) << "ECT(0)";
    rx_data(pattern(10));
    advance(40);
    EXPECT_EQ(tx_one().ecn, 0) << "a pure ACK is not ECT";
}

// A SYN without ECE/CWR: no ECN (SYN-ACK without ECE, data not ECT).
TEST_F(TcpRecovery, NoEcnWithoutEcnSetupSyn) {
    ASSERT_NO_FATAL_FAILURE(open_passive());
    EXPECT_FALSE(synack_.has(kTcpEce));
    send(pattern(100));
    EXPECT_EQ(tx_one().ecn, 0);
}

// RFC 3168 6.1.3: a CE-marked data segment makes every following ACK carry ECE, until a
// segment with CWR arrives.
TEST_F(TcpRecovery, CeMarkEchoedWithEceUntilCwr) {
    open_passive_ecn();
    ASSERT_NE(conn_, nullptr);
    rx_seg(kTcpAck | kTcpPsh, pseq_, pack_, pattern(100), {}, 0xffffffff, 3 /* CE */);
    pseq_ += 100;
    TcpSeg a = tx_one();
    EXPECT_TRUE(a.has(kTcpEce)) << "CE is acknowledged at once, with ECE";
    EXPECT_EQ(tctr().ecn_ce, 1u);
    rx_seg(kTcpAck | kTcpPsh, pseq_, pack_, pattern(100), {}, 0xffffffff, 2 /* ECT(0) */);
    pseq_ += 100;
    advance(40);
    a = tx_one();
    EXPECT_TRUE(a.has(kTcpEce)) << "ECE persists until CWR";
    rx_seg(kTcpAck | kTcpPsh | kTcpCwr, pseq_, pack_, pattern(100), {}, 0xffffffff, 2);
    pseq_ += 100;
    advance(40);
    a = tx_one();
    EXPECT_FALSE(a.has(kTcpEce)) << "CWR received: ECE stops";
}

// RFC 3168 6.1.2: an ECE on an ACK reduces the congestion window (once per window) and the
// next new data segment carries CWR.
TEST_F(TcpRecovery, EceReducesCwndAndSetsCwr) {
    open_passive_ecn();
    ASSERT_NE(conn_, nullptr);
    send(pattern(4 * kMss));
    tx_segs();
    const uint32_t cwnd0 = stats().cwnd;
    rx_seg(kTcpAck | kTcpEce, pseq_, pack_ + kMss);
    EXPECT_LT(stats().cwnd, cwnd0);
    const uint32_t cwnd1 = stats().cwnd;
    rx_seg(kTcpAck | kTcpEce, pseq_, pack_ + 2 * kMss);
    EXPECT_GE(stats().cwnd, cwnd1) << "one reduction per window of data";
    rx_ack(pack_ + 4 * kMss);
    tx_segs();
    send(pattern(100));
    const TcpSeg d = tx_one();
    EXPECT_TRUE(d.has(kTcpCwr));
    EXPECT_EQ(d.ecn, 2);
}

// Per-connection statistics: RTT, window, retransmissions, bytes and segments.
TEST_F(TcpRecovery, PerConnectionStats) {
    ASSERT_NO_FATAL_FAILURE(open_passive());
    advance(10);
    send(pattern(3 * kMss));
    tx_segs();
    advance(1);  // within the probe timeout (2 SRTT + 1 ms): no tail loss probe
    rx_ack(pack_ + 3 * kMss);
    rx_data(pattern(500));
    advance(40);
    tx_segs();
    const proto::TcpConnStats s = stats();
    EXPECT_EQ(s.state, TcpState::established);
    EXPECT_EQ(s.bytes_sent, 3u * kMss);
    EXPECT_EQ(s.bytes_received, 500u);
    EXPECT_GT(s.srtt_us, 0u);
    EXPECT_GE(s.cwnd, 10u * kMss);
    EXPECT_EQ(s.retransmits, 0u);
    EXPECT_EQ(s.snd_wnd, 65535u << 7);
    EXPECT_EQ(s.rcv_wnd, 1u << 20);
    EXPECT_GE(s.segs_out, 4u);
    EXPECT_GE(s.segs_in, 3u);
    EXPECT_GE(s.rto_ms, 200u);
}

}  // namespace
}  // namespace sluice::test
