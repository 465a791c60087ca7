// Resets (RFC 9293 3.5.2, 3.10.7.1), RST acceptance and challenge ACKs (RFC 5961), ACKs of
// unsent data, abort.
#include "tests/unit/tcp_fixture.hpp"

namespace sluice::test {
namespace {

using proto::TcpCloseReason;
using proto::TcpState;

class TcpRst : public TcpTest {
  protected:
    void SetUp() override {
        TcpTest::SetUp();
        peer_ts_ = false;  // segments to closed ports: no options needed
    }
};

// RFC 9293 3.10.7.1: to a closed port, a segment without ACK gets
// <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK> (the SYN counts in SEG.LEN).
TEST_F(TcpRst, SynToClosedPortGetsRstAck) {
    rx_seg(kTcpSyn, 12345, 0, {}, {}, 65535, 0, kPeerPort, kClosedPort);
    const TcpSeg r = tx_one();
    EXPECT_EQ(r.flags, kTcpRst | kTcpAck);
    EXPECT_EQ(r.seq, 0u);
    EXPECT_EQ(r.ack, 12346u);
    EXPECT_EQ(r.sport, kClosedPort);
    EXPECT_EQ(r.dport, kPeerPort);
    EXPECT_EQ(r.wnd, 0);
    EXPECT_TRUE(r.payload.empty());
    EXPECT_EQ(tctr().rst_out, 1u);
}

// Same, a data segment without ACK (and a FIN): SEG.LEN counts the data and the FIN.
TEST_F(TcpRst, DataWithoutAckToClosedPortGetsRstAckCoveringIt) {
    rx_seg(kTcpFin | kTcpPsh, 500, 0, pattern(40), {}, 65535, 0, kPeerPort, kClosedPort);
    const TcpSeg r = tx_one();
    EXPECT_EQ(r.flags, kTcpRst | kTcpAck);
    EXPECT_EQ(r.seq, 0u);
    EXPECT_EQ(r.ack, 541u);
}

// RFC 9293 3.10.7.1: a segment with ACK gets <SEQ=SEG.ACK><CTL=RST>.
TEST_F(TcpRst, AckToClosedPortGetsRstWithSeqFromAck) {
    rx_seg(kTcpAck | kTcpPsh, 777, 0xdeadbeef, pattern(10), {}, 65535, 0, kPeerPort, kClosedPort);
    const TcpSeg r = tx_one();
    EXPECT_EQ(r.flags, kTcpRst);
    EXPECT_EQ(r.seq, 0xdeadbeefu);
    EXPECT_EQ(r.ack, 0u);
}

// RFC 9293 3.10.7.1: "An incoming segment containing a RST is discarded."
TEST_F(TcpRst, RstToClosedPortIsDropped) {
    rx_seg(kTcpRst, 777, 0, {}, {}, 0, 0, kPeerPort, kClosedPort);
    rx_seg(kTcpRst | kTcpAck, 777, 1, {}, {}, 0, 0, kPeerPort, kClosedPort);
    EXPECT_TRUE(tx_segs().empty());
    EXPECT_EQ(tctr().rst_out, 0u);
}

// RFC 9293 3.10.7.2 (LISTEN): an ACK gets <SEQ=SEG.ACK><CTL=RST> (here: not a valid SYN
// cookie either); an RST is ignored; no connection is made.
TEST_F(TcpRst, AckToListenerGetsRst) {
    ASSERT_EQ(tcp().listen(kSrvPort), 0);
    rx_seg(kTcpAck, 100, 4242, {}, {}, 65535, 0, kPeerPort, kSrvPort);
    const TcpSeg r = tx_one();
    EXPECT_EQ(r.flags, kTcpRst);
    EXPECT_EQ(r.seq, 4242u);
    rx_seg(kTcpRst, 100, 0, {}, {}, 0, 0, kPeerPort, kSrvPort);
    EXPECT_TRUE(tx_segs().empty());
    EXPECT_EQ(tcp().open_conns(), 0u);
}

class TcpRstConn : public TcpTest {};

// RFC 5961 3.2: an RST exactly at RCV.NXT resets the connection (closed(reset), nothing sent,
// the tuple free).
TEST_F(TcpRstConn, RstAtRcvNxtResets) {
    ASSERT_NO_FATAL_FAILURE(open_passive());
    rx_seg(kTcpRst, pseq_, 0, {}, TcpOpts{.no_ts = true}, 0);
    EXPECT_TRUE(tx_segs().empty());
    ASSERT_EQ(tapp_.n_closed, 1);
    EXPECT_EQ(tapp_.reason, TcpCloseReason::reset);
    EXPECT_EQ(lookup(), nullptr);
    EXPECT_EQ(tctr().rst_in, 1u);
    EXPECT_EQ(tcp().open_conns(), 0u);
}

// RFC 5961 3.2: an RST in the window but not at RCV.NXT gets a challenge ACK
// <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>, and the connection stays; the peer's answer (an RST at
// RCV.NXT) then resets.
TEST_F(TcpRstConn, RstInWindowGetsChallengeAck) {
    ASSERT_NO_FATAL_FAILURE(open_passive());
    rx_seg(kTcpRst, pseq_ + 1000, 0, {}, TcpOpts{.no_ts = true}, 0);
    const TcpSeg a = tx_one();
    EXPECT_EQ(a.flags, kTcpAck);
    EXPECT_EQ(a.seq, pack_);
    EXPECT_EQ(a.ack, pseq_);
    EXPECT_EQ(state(), TcpState::established);
    EXPECT_EQ(tapp_.n_closed, 0);
    EXPECT_EQ(tctr().challenge_acks, 1u);
    rx_seg(kTcpRst, a.ack, 0, {}, TcpOpts{.no_ts = true}, 0);
    EXPECT_EQ(tapp_.n_closed, 1);
}

// RFC 5961 3.2: an RST outside the window is dropped silently.
TEST_F(TcpRstConn, RstOutsideWindowIgnored) {
    ASSERT_NO_FATAL_FAILURE(open_passive());
    rx_seg(kTcpRst, pseq_ - 1, 0, {}, TcpOpts{.no_ts = true}, 0);
    rx_seg(kTcpRst, pseq_ + 0x40000000, 0, {}, TcpOpts{.no_ts = true}, 0);
    EXPECT_TRUE(tx_segs().empty());
    EXPECT_EQ(state(), TcpState::established);
    EXPECT_EQ(tapp_.n_closed, 0);
}

// RFC 5961 4.2: a SYN in a synchronized state, whatever its sequence number, gets a challenge
// ACK and is dropped; the connection stays.
TEST_F(TcpRstConn, SynInEstablishedGetsChallengeAck) {
    ASSERT_NO_FATAL_FAILURE(open_passive());
    rx_seg(kTcpSyn, pseq_, 0, {}, linux_syn_opts());
    const TcpSeg a = tx_one();
    EXPECT_EQ(a.flags, kTcpAck);
    EXPECT_EQ(a.seq, pack_);
    EXPECT_EQ(a.ack, pseq_);
    EXPECT_EQ(state(), TcpState::established);
    EXPECT_EQ(tctr().challenge_acks, 1u);
    // In the window, not at RCV.NXT: the same.
    rx_seg(kTcpSyn, pseq_ + 10, 0, {}, linux_syn_opts());
    EXPECT_EQ(tx_one().flags, kTcpAck);
    EXPECT_EQ(state(), TcpState::established);
    EXPECT_EQ(tapp_.n_closed, 0);
}

// RFC 9293 3.10.7.4 (fifth step) / RFC 5961 5.2: an ACK of something not yet sent
// (SEG.ACK > SND.NXT) is answered with an ACK and the segment dropped (its data too).
TEST_F(TcpRstConn, AckOfUnsentDataAckedAndDropped) {
    ASSERT_NO_FATAL_FAILURE(open_passive());
    rx_seg(kTcpAck | kTcpPsh, pseq_, pack_ + 5000, pattern(100));
    const TcpSeg a = tx_one();
    EXPECT_EQ(a.flags, kTcpAck);
    EXPECT_EQ(a.seq, pack_);
    EXPECT_EQ(a.ack, pseq_) << "the data was dropped";
    EXPECT_TRUE(tapp_.data.empty());
    EXPECT_EQ(state(), TcpState::established);
}

// RFC 9293 3.10.7.4 (first step): an unacceptable segment (old data) gets an ACK.
TEST_F(TcpRstConn, OldDuplicateGetsAck) {
    ASSERT_NO_FATAL_FAILURE(open_passive());
    rx_data(pattern(100));
    advance(40);
    tx_segs();
    rx_seg(kTcpAck | kTcpPsh, pseq_ - 100, pack_, pattern(100));
    const TcpSeg a = tx_one();
    EXPECT_EQ(a.ack, pseq_);
    EXPECT_EQ(tapp_.data.size(), 100u);
}

// RFC 9293 3.10.7.4 (SYN-RECEIVED, second step): an RST at RCV.NXT of a passive open returns
// to LISTEN silently (the app never heard of it); the listener still works.
TEST_F(TcpRstConn, RstInSynReceivedBackToListen) {
    ASSERT_EQ(tcp().listen(kSrvPort), 0);
    listening_ = true;
    rx_seg(kTcpSyn, kPeerIsn, 0, {}, linux_syn_opts());
    tx_segs();
    rx_seg(kTcpRst, kPeerIsn + 1, 0, {}, TcpOpts{.no_ts = true}, 0);
    EXPECT_EQ(lookup(), nullptr);
    EXPECT_EQ(tapp_.n_closed, 0);
    EXPECT_EQ(tcp().open_conns(), 0u);
    ASSERT_NO_FATAL_FAILURE(open_passive());
}

// RFC 9293 3.10.7.4 (SYN-RECEIVED): an ACK that does not acknowledge our SYN gets
// <SEQ=SEG.ACK><CTL=RST>.
TEST_F(TcpRstConn, BadAckInSynReceivedGetsRst) {
    ASSERT_EQ(tcp().listen(kSrvPort), 0);
    listening_ = true;
    rx_seg(kTcpSyn, kPeerIsn, 0, {}, linux_syn_opts());
    const TcpSeg sa = tx_one();
    rx_seg(kTcpAck, kPeerIsn + 1, sa.seq + 1000);
    const TcpSeg r = tx_one();
    EXPECT_EQ(r.flags, kTcpRst);
    EXPECT_EQ(r.seq, sa.seq + 1000);
    EXPECT_EQ(tcp().stats(lookup()).state, TcpState::syn_received);
}

// RFC 9293 3.10.5: abort sends <SEQ=SND.NXT><CTL=RST> and the app hears closed(aborted).
TEST_F(TcpRstConn, AbortSendsRst) {
    ASSERT_NO_FATAL_FAILURE(open_passive());
    send(pattern(100));
    tx_segs();
    tcp().abort(conn_);
    step();
    const TcpSeg r = tx_one();
    EXPECT_EQ(r.flags, kTcpRst);
    EXPECT_EQ(r.seq, pack_ + 100);
    ASSERT_EQ(tapp_.n_closed, 1);
    EXPECT_EQ(tapp_.reason, TcpCloseReason::aborted);
    EXPECT_EQ(lookup(), nullptr);
    // A late segment from the peer now meets the closed port.
    rx_seg(kTcpAck, pseq_, pack_ + 100);
    const TcpSeg r2 = tx_one();
    EXPECT_EQ(r2.flags, kTcpRst);
    EXPECT_EQ(r2.seq, pack_ + 100);
}

// The RST closes every synchronized state: from CLOSE-WAIT the reason is reset.
TEST_F(TcpRstConn, RstInCloseWait) {
    ASSERT_NO_FATAL_FAILURE(open_passive());
    rx_fin();
    tx_segs();
    rx_seg(kTcpRst, pseq_, 0, {}, TcpOpts{.no_ts = true}, 0);
    EXPECT_EQ(tapp_.n_closed, 1);
    EXPECT_EQ(tapp_.reason, TcpCloseReason::reset);
    EXPECT_EQ(lookup(), nullptr);
}

}  // namespace
}  // namespace sluice::test
