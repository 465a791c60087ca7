// TCP connection states and closing (RFC 9293 3.3.2 figure 5, 3.6, 3.10.4, 3.10.7.4): FIN-WAIT-1
// and 2, CLOSING, TIME-WAIT for 2 MSL, CLOSE-WAIT, LAST-ACK, half-close both ways.
#include <set>

#include "tests/unit/tcp_fixture.hpp"

namespace sluice::test {
namespace {

using proto::TcpCloseReason;
using proto::TcpState;

class TcpStates : public TcpTest {
  protected:
    // The app closes: our FIN goes out, <SEQ=SND.NXT><ACK=RCV.NXT><CTL=FIN,ACK>.
    // Active close to TIME-WAIT: our FIN, the peer's ACK of it, the peer's FIN (and our ACK).
    void active_close_to_time_wait() {
        const TcpSeg fin = close_and_take_fin();
        pack_ = fin.seq + 1;
        rx_ack(pack_);
        rx_fin();
        tx_segs();
        ASSERT_EQ(state(), TcpState::time_wait);
    }
    TcpSeg close_and_take_fin() {
        tcp().close(conn_);
        step();
        TcpSeg f = tx_one();
        EXPECT_EQ(f.flags, kTcpFin | kTcpAck);
        EXPECT_EQ(f.seq, pack_);
        EXPECT_EQ(f.ack, pseq_);
        EXPECT_TRUE(f.payload.empty());
        return f;
    }
};

// RFC 9293 3.6 (case 1, we close first): ESTABLISHED -close-> FIN-WAIT-1 -ACK of FIN->
// FIN-WAIT-2 -FIN-> TIME-WAIT (the FIN acknowledged) -2 MSL-> CLOSED.
TEST_F(TcpStates, ActiveCloseFinWait1FinWait2TimeWaitThenGone) {
    ASSERT_NO_FATAL_FAILURE(open_passive());
    const TcpSeg fin = close_and_take_fin();
    EXPECT_EQ(state(), TcpState::fin_wait_1);
    rx_ack(fin.seq + 1);
    EXPECT_TRUE(tx_segs().empty());
    EXPECT_EQ(state(), TcpState::fin_wait_2);
    pack_ = fin.seq + 1;
    rx_fin();
    const TcpSeg a = tx_one();
    EXPECT_EQ(a.flags, kTcpAck);
    EXPECT_EQ(a.seq, fin.seq + 1);
    EXPECT_EQ(a.ack, pseq_);
    EXPECT_EQ(state(), TcpState::time_wait);
    ASSERT_EQ(tapp_.n_closed, 1);
    EXPECT_EQ(tapp_.reason, TcpCloseReason::normal);
    EXPECT_EQ(tapp_.n_peer_fin, 0) << "the app closed: no more events but closed";
    ASSERT_NE(lookup(), nullptr) << "TIME-WAIT holds the tuple";
    // RFC 9293 3.4.2: 2 MSL (msl_ms = 30 s).
    advance(2 * 30000 - 1);
    ASSERT_NE(lookup(), nullptr);
    EXPECT_EQ(tcp().stats(lookup()).state, TcpState::time_wait);
    advance(1);
    EXPECT_EQ(lookup(), nullptr);
    EXPECT_EQ(tcp().open_conns(), 0u);
    EXPECT_TRUE(tx_segs().empty());
    EXPECT_EQ(tapp_.n_closed, 1);
}

// RFC 9293 3.10.7.4 (FIN-WAIT-1, eighth step): a FIN that also acknowledges our FIN goes
// straight to TIME-WAIT.
TEST_F(TcpStates, FinWait1FinAckingOurFinToTimeWait) {
    ASSERT_NO_FATAL_FAILURE(open_passive());
    const TcpSeg fin = close_and_take_fin();
    pack_ = fin.seq + 1;
    rx_fin();
    const TcpSeg a = tx_one();
    EXPECT_EQ(a.flags, kTcpAck);
    EXPECT_EQ(a.ack, pseq_);
    EXPECT_EQ(state(), TcpState::time_wait);
}

// RFC 9293 3.6 figure 13: simultaneous close. Both FINs cross: FIN-WAIT-1 -FIN-> CLOSING
// (ACK the peer's FIN) -ACK of our FIN-> TIME-WAIT.
TEST_F(TcpStates, SimultaneousCloseThroughClosing) {
    ASSERT_NO_FATAL_FAILURE(open_passive());
    const TcpSeg fin = close_and_take_fin();
    rx_fin();  // acknowledges only up to our FIN, not the FIN itself
    const TcpSeg a = tx_one();
    EXPECT_EQ(a.flags & (kTcpAck | kTcpFin | kTcpSyn | kTcpRst), kTcpAck);
    EXPECT_EQ(a.ack, pseq_);
    EXPECT_EQ(state(), TcpState::closing);
    EXPECT_EQ(tapp_.n_closed, 0);
    rx_ack(fin.seq + 1);
    EXPECT_TRUE(tx_segs().empty());
    EXPECT_EQ(state(), TcpState::time_wait);
    EXPECT_EQ(tapp_.n_closed, 1);
    EXPECT_EQ(tapp_.reason, TcpCloseReason::normal);
}

// RFC 9293 3.6 (case 2, the peer closes first): FIN -> CLOSE-WAIT (ACK at once, peer_fin
// event); the app closes -> LAST-ACK with our FIN; its ACK -> CLOSED with no TIME-WAIT.
TEST_F(TcpStates, PassiveCloseCloseWaitLastAck) {
    ASSERT_NO_FATAL_FAILURE(open_passive());
    rx_fin();
    const TcpSeg a = tx_one();
    EXPECT_EQ(a.flags, kTcpAck);
    EXPECT_EQ(a.ack, pseq_);
    EXPECT_EQ(state(), TcpState::close_wait);
    EXPECT_EQ(tapp_.n_peer_fin, 1);
    const TcpSeg fin = close_and_take_fin();
    EXPECT_EQ(state(), TcpState::last_ack);
    rx_ack(fin.seq + 1);
    EXPECT_TRUE(tx_segs().empty());
    ASSERT_EQ(tapp_.n_closed, 1);
    EXPECT_EQ(tapp_.reason, TcpCloseReason::normal);
    EXPECT_EQ(lookup(), nullptr);
    EXPECT_EQ(tcp().open_conns(), 0u);
}

// The app closing from on_tcp_peer_fin: the FIN goes out in the same loop as the ACK of the
// peer's FIN (one segment: FIN,ACK).
TEST_F(TcpStates, CloseOnPeerFinSendsFinAckInOneSegment) {
    tapp_.close_on_fin = true;
    ASSERT_NO_FATAL_FAILURE(open_passive());
    rx_fin();
    const TcpSeg f = tx_one();
    EXPECT_EQ(f.flags, kTcpFin | kTcpAck);
    EXPECT_EQ(f.ack, pseq_);
    EXPECT_EQ(state(), TcpState::last_ack);
}

// Half-close, ours (RFC 9293 3.6 "half-closed"): after shutdown_write the peer's data still
// arrives in FIN-WAIT-2 and is delivered and acknowledged.
TEST_F(TcpStates, HalfCloseOursPeerKeepsSending) {
    ASSERT_NO_FATAL_FAILURE(open_passive());
    tcp().shutdown_write(conn_);
    step();
    const TcpSeg fin = tx_one();
    EXPECT_EQ(fin.flags, kTcpFin | kTcpAck);
    EXPECT_EQ(tcp().send_copy(conn_, "x", 1), -EPIPE);
    pack_ = fin.seq + 1;
    rx_ack(pack_);
    EXPECT_EQ(state(), TcpState::fin_wait_2);
    rx_data(pattern(1448, 1));
    rx_data(pattern(1448, 2));
    auto v = tx_segs();
    ASSERT_EQ(v.size(), 1u) << "the second full-sized segment is acknowledged at once";
    EXPECT_EQ(v[0].ack, pseq_);
    Bytes want = pattern(1448, 1);
    const Bytes b = pattern(1448, 2);
    want.insert(want.end(), b.begin(), b.end());
    EXPECT_EQ(tapp_.data, want);
    rx_fin();
    EXPECT_EQ(tx_one().ack, pseq_);
    EXPECT_EQ(state(), TcpState::time_wait);
    EXPECT_EQ(tapp_.n_peer_fin, 1);
    EXPECT_EQ(tapp_.n_closed, 1);
}

// Half-close, the peer's: in CLOSE-WAIT we keep sending; the peer acknowledges; then close.
TEST_F(TcpStates, HalfClosePeersWeKeepSending) {
    ASSERT_NO_FATAL_FAILURE(open_passive());
    rx_fin();
    tx_segs();
    ASSERT_EQ(state(), TcpState::close_wait);
    send(pattern(2896, 5));
    auto v = tx_segs();
    ASSERT_EQ(v.size(), 2u);
    uint32_t got = 0;
    for (const TcpSeg& s : v) {
        EXPECT_EQ(s.seq, pack_ + got);
        EXPECT_EQ(s.ack, pseq_);
        got += s.len();
    }
    EXPECT_EQ(got, 2896u);
    pack_ += 2896;
    rx_ack(pack_);
    EXPECT_EQ(stats().bytes_sent, 2896u);
    const TcpSeg fin = close_and_take_fin();
    EXPECT_EQ(state(), TcpState::last_ack);
    rx_ack(fin.seq + 1);
    EXPECT_EQ(tapp_.n_closed, 1);
    EXPECT_EQ(lookup(), nullptr);
}

// A FIN queued behind data rides on the last data segment.
TEST_F(TcpStates, FinPiggybacksOnLastDataSegment) {
    tcfg_ = tcp_config();
    ASSERT_NO_FATAL_FAILURE(open_passive());
    ASSERT_EQ(tcp().send_copy(conn_, pattern(100).data(), 100), 100);
    tcp().close(conn_);
    step();
    const TcpSeg s = tx_one();
    EXPECT_EQ(s.flags, kTcpFin | kTcpAck | kTcpPsh);
    EXPECT_EQ(s.len(), 100u);
    EXPECT_EQ(state(), TcpState::fin_wait_1);
}

// RFC 9293 3.10.7.4 (TIME-WAIT): "The only thing that can arrive in this state is a
// retransmission of the remote FIN. Acknowledge it, and restart the 2 MSL timeout."
TEST_F(TcpStates, TimeWaitAcksRetransmittedFinAndRestartsTimer) {
    ASSERT_NO_FATAL_FAILURE(open_passive());
    ASSERT_NO_FATAL_FAILURE(active_close_to_time_wait());
    advance(20000);
    // The peer did not get our ACK: its FIN again.
    rx_seg(kTcpFin | kTcpAck, pseq_ - 1, pack_);
    const TcpSeg a = tx_one();
    EXPECT_EQ(a.flags, kTcpAck);
    EXPECT_EQ(a.seq, pack_);
    EXPECT_EQ(a.ack, pseq_);
    // 2 MSL from now, not from the first FIN.
    advance(59999);
    ASSERT_NE(lookup(), nullptr);
    advance(1);
    EXPECT_EQ(lookup(), nullptr);
}

// RFC 6191 / RFC 9293 3.6.1: in TIME-WAIT a new SYN with a newer timestamp starts a new
// connection on the listener.
TEST_F(TcpStates, TimeWaitReopenedByNewerSyn) {
    ASSERT_NO_FATAL_FAILURE(open_passive());
    ASSERT_NO_FATAL_FAILURE(active_close_to_time_wait());
    advance(100);
    rx_seg(kTcpSyn, pseq_ + 100000, 0, {}, linux_syn_opts());
    const TcpSeg sa = tx_one();
    EXPECT_EQ(sa.flags, kTcpSyn | kTcpAck);
    EXPECT_EQ(sa.ack, pseq_ + 100001);
    EXPECT_EQ(tctr().time_wait_reused, 1u);
    proto::TcpConn* c = lookup();
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(tcp().stats(c).state, TcpState::syn_received);
}

// All eleven states of RFC 9293 3.3.2, reached by the scripts above in one walk each, with
// the state names as the RFC spells them.
TEST_F(TcpStates, EveryStateReached) {
    std::set<TcpState> seen;
    seen.insert(TcpState::closed);  // nothing in the table before the first segment
    EXPECT_EQ(lookup(kSrvPort), nullptr);
    ASSERT_EQ(tcp().listen(kSrvPort), 0);
    listening_ = true;
    seen.insert(TcpState::listen);
    // Passive: SYN-RECEIVED, ESTABLISHED, FIN-WAIT-1, CLOSING, TIME-WAIT.
    rx_seg(kTcpSyn, kPeerIsn, 0, {}, linux_syn_opts());
    const TcpSeg sa = tx_one();
    seen.insert(tcp().stats(lookup()).state);
    pseq_ = kPeerIsn + 1;
    pack_ = sa.seq + 1;
    rx_ack(pack_);
    conn_ = tapp_.conn;
    ASSERT_NE(conn_, nullptr);
    seen.insert(state());
    const TcpSeg fin = close_and_take_fin();
    seen.insert(state());
    rx_fin();
    seen.insert(state());
    rx_ack(fin.seq + 1);
    seen.insert(state());
    tx_segs();
    // Active: SYN-SENT, then CLOSE-WAIT, LAST-ACK.
    lport_ = kLocalPort;
    conn_ = tcp().connect(rte_cpu_to_be_32(kPeerIp), kPeerPort, now_, kLocalPort);
    step();
    const TcpSeg syn = tx_one();
    seen.insert(state());
    rx_seg(kTcpSyn | kTcpAck, 9000, syn.seq + 1, {}, linux_syn_opts());
    pseq_ = 9001;
    pack_ = syn.seq + 1;
    tx_segs();
    rx_fin();
    seen.insert(state());
    tx_segs();
    const TcpSeg fin2 = close_and_take_fin();
    seen.insert(state());
    rx_ack(fin2.seq + 1);
    // A third: FIN-WAIT-2.
    lport_ = kLocalPort + 1;
    conn_ = tcp().connect(rte_cpu_to_be_32(kPeerIp), kPeerPort, now_, kLocalPort + 1);
    step();
    const TcpSeg syn3 = tx_one();
    rx_seg(kTcpSyn | kTcpAck, 20000, syn3.seq + 1, {}, linux_syn_opts());
    pseq_ = 20001;
    pack_ = syn3.seq + 1;
    tx_segs();
    const TcpSeg fin3 = close_and_take_fin();
    rx_ack(fin3.seq + 1);
    seen.insert(state());
    EXPECT_EQ(seen.size(), 11u);
    const char* names[] = {"CLOSED",      "LISTEN",     "SYN-SENT",   "SYN-RECEIVED",
                           "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "CLOSE-WAIT",
                           "CLOSING",     "LAST-ACK",   "TIME-WAIT"};
    for (unsigned i = 0; i < 11; ++i) {
        EXPECT_TRUE(seen.count(TcpState(i))) << names[i] << " not reached";
        EXPECT_STREQ(proto::tcp_state_name(TcpState(i)), names[i]);
    }
}

// An orphaned FIN-WAIT-2 (the app closed) does not wait for ever for the peer's FIN.
TEST_F(TcpStates, OrphanedFinWait2TimesOut) {
    ASSERT_NO_FATAL_FAILURE(open_passive());
    const TcpSeg fin = close_and_take_fin();
    rx_ack(fin.seq + 1);
    ASSERT_EQ(state(), TcpState::fin_wait_2);
    advance(60000);
    EXPECT_EQ(lookup(), nullptr);
    EXPECT_EQ(tapp_.n_closed, 1);
}

}  // namespace
}  // namespace sluice::test
