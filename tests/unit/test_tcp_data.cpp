// TCP data transfer and acknowledgment: delayed ACK (RFC 1122 4.2.3.2, RFC 5681 4.2), Nagle
// (RFC 1122 4.2.3.4), out-of-order reassembly and SACK blocks (RFC 2018 4), sequence-number
// wraparound (RFC 9293 3.4).
#include "proto/tcp_seq.hpp"
#include "tests/unit/tcp_fixture.hpp"

namespace sluice::test {
namespace {

using proto::TcpState;

class TcpData : public TcpTest {
  protected:
    Bytes cat(std::initializer_list<Bytes> parts) {
        Bytes b;
        for (const Bytes& p : parts) b.insert(b.end(), p.begin(), p.end());
        return b;
    }
    // The SACK blocks we send: the peer's 1000-byte segment i from kbase_ (its sequence number
    // once open), and the block of segments [from, to).
    using Blocks = std::vector<std::pair<uint32_t, uint32_t>>;
    uint32_t kbase_ = 0;
    void kseg(int i) { rx_seg(kTcpAck, kbase_ + 1000 * i, pack_, pattern(1000, uint8_t(i))); }
    std::pair<uint32_t, uint32_t> kblock(int from, int to) const {
        return {kbase_ + 1000 * from, kbase_ + 1000 * to};
    }
};

// RFC 1122 4.2.3.2: one segment is acknowledged after the delayed-ACK time (40 ms here),
// not before.
TEST_F(TcpData, DelayedAckAfter40msForOneSegment) {
    ASSERT_NO_FATAL_FAILURE(open_passive());
    rx_data(pattern(500));
    EXPECT_TRUE(tx_segs().empty());
    EXPECT_EQ(tapp_.data, pattern(500));
    advance(39);
    EXPECT_TRUE(tx_segs().empty());
    advance(1);
    const TcpSeg a = tx_one();
    EXPECT_EQ(a.flags, kTcpAck);
    EXPECT_EQ(a.ack, pseq_);
    EXPECT_EQ(tctr().delayed_acks, 1u);
}

// RFC 1122 4.2.3.2 / RFC 5681 4.2: an ACK at least for every second full-sized segment.
TEST_F(TcpData, SecondFullSizedSegmentAckedAtOnce) {
    ASSERT_NO_FATAL_FAILURE(open_passive());
    rx_data(pattern(1448, 1));
    EXPECT_TRUE(tx_segs().empty());
    rx_data(pattern(1448, 2));
    const TcpSeg a = tx_one();
    EXPECT_EQ(a.ack, pseq_);
    advance(100);
    EXPECT_TRUE(tx_segs().empty()) << "no second ACK from the timer";
    EXPECT_EQ(stats().bytes_received, 2896u);
}

// "Full-sized" is what the peer sends (Linux's rcv_mss): a peer whose segments are all below
// the MSS (small writes, TCP_NODELAY) gets an ACK every second one, not one per 40 ms (which
// would leave it stalled on its congestion window). As Linux does, the ACK goes once more than
// one segment of that size is unacknowledged: what is held back never exceeds one segment,
// which is what a sender's loss probe allows for (RFC 8985 7.2).
TEST_F(TcpData, SecondSegmentOfThePeersUsualSizeAckedAtOnce) {
    ASSERT_NO_FATAL_FAILURE(open_passive());
    rx_data(pattern(700, 1));
    EXPECT_TRUE(tx_segs().empty());
    rx_data(pattern(700, 2));
    EXPECT_EQ(tx_one().ack, pseq_);
    rx_data(pattern(500, 3));  // smaller ones add up
    EXPECT_TRUE(tx_segs().empty()) << "500 bytes: less than one of the usual size";
    rx_data(pattern(500, 4));
    EXPECT_EQ(tx_one().ack, pseq_) << "1000 bytes: more than one of the usual size";
    rx_data(pattern(700, 5));
    EXPECT_TRUE(tx_segs().empty()) << "exactly one: held";
    advance(40);
    EXPECT_EQ(tx_one().ack, pseq_);
    EXPECT_EQ(stats().bytes_received, 3100u);
}

// After one full-sized segment, a run of smaller ones (a publisher's frames, whatever one
// event loop pass gathered) is ACKed once more than an MSS of them is held: holding two
// full-sized segments' worth kept three or four such segments waiting for the timer, and
// their sender's loss probe (2 SRTT) fired before it.
TEST_F(TcpData, SmallerSegmentsAfterAFullOneAreAckedWithinOneMss) {
    ASSERT_NO_FATAL_FAILURE(open_passive());
    rx_data(pattern(1448, 1));
    rx_data(pattern(1448, 2));
    EXPECT_EQ(tx_one().ack, pseq_);
    rx_data(pattern(600, 3));
    rx_data(pattern(600, 4));
    EXPECT_TRUE(tx_segs().empty()) << "1200 bytes: less than one full segment";
    rx_data(pattern(600, 5));
    EXPECT_EQ(tx_one().ack, pseq_) << "1800 bytes: more than one full segment";
}

// The reply to a request carries the ACK of the request: no separate pure ACK.
TEST_F(TcpData, EchoReplyPiggybacksTheAck) {
    tapp_.echo = true;
    ASSERT_NO_FATAL_FAILURE(open_passive());
    rx_data(pattern(300, 9));
    const TcpSeg r = tx_one();
    EXPECT_EQ(r.flags, kTcpAck | kTcpPsh);
    EXPECT_EQ(r.seq, pack_);
    EXPECT_EQ(r.ack, pseq_);
    EXPECT_EQ(r.payload, pattern(300, 9));
    EXPECT_TRUE(r.has_ts);
    EXPECT_EQ(r.ts_ecr, peer_tsval_);
    advance(50);
    EXPECT_TRUE(tx_segs().empty());
}

// Segments of SMSS (MSS less the 12 bytes of timestamps, RFC 6691), PSH on the last; the
// initial window of 10 segments (RFC 6928) limits the first flight; ACKs open more.
TEST_F(TcpData, SendsMssSizedSegmentsWithinInitialWindow) {
    ASSERT_NO_FATAL_FAILURE(open_passive());
    const Bytes d = pattern(20000, 3);
    send(d);
    auto v = tx_segs();
    ASSERT_EQ(v.size(), 10u);
    Bytes got;
    for (size_t i = 0; i < v.size(); ++i) {
        EXPECT_EQ(v[i].seq, pack_ + 1448 * i);
        EXPECT_EQ(v[i].len(), 1448u);
        EXPECT_EQ(v[i].ack, pseq_);
        EXPECT_FALSE(v[i].has(kTcpPsh));
        got.insert(got.end(), v[i].payload.begin(), v[i].payload.end());
    }
    rx_ack(pack_ + 2 * 1448);
    auto w = tx_segs();
    // Slow start: cwnd + 2 SMSS and 2 segments left the network: room for 4, but only 3 full
    // segments remain; the 1176-byte tail waits for the ACK of all (Nagle).
    ASSERT_EQ(w.size(), 3u);
    for (const TcpSeg& s : w) {
        EXPECT_EQ(s.len(), 1448u);
        got.insert(got.end(), s.payload.begin(), s.payload.end());
    }
    rx_ack(pack_ + 12 * 1448);
    EXPECT_TRUE(tx_segs().empty());
    rx_ack(pack_ + 13 * 1448);
    const TcpSeg tail = tx_one();
    EXPECT_EQ(tail.len(), 1176u);
    EXPECT_TRUE(tail.has(kTcpPsh));
    got.insert(got.end(), tail.payload.begin(), tail.payload.end());
    EXPECT_EQ(got, d);
    pack_ += 20000;
    rx_ack(pack_);
    EXPECT_EQ(stats().bytes_sent, 20000u);
}

// RFC 1122 4.2.3.4 (Nagle): a small segment waits while data is unacknowledged; the ACK
// releases it.
TEST_F(TcpData, NagleHoldsSmallSegmentWhileDataUnacked) {
    ASSERT_NO_FATAL_FAILURE(open_passive());
    send(pattern(100, 1));
    const TcpSeg a = tx_one();
    EXPECT_EQ(a.len(), 100u);
    send(pattern(50, 2));
    send(pattern(50, 3));
    EXPECT_TRUE(tx_segs().empty());
    rx_ack(pack_ + 100);
    const TcpSeg b = tx_one();
    EXPECT_EQ(b.seq, pack_ + 100);
    EXPECT_EQ(b.payload, cat({pattern(50, 2), pattern(50, 3)})) << "coalesced";
}

// TCP_NODELAY: small segments go at once.
TEST_F(TcpData, NodelaySendsSmallSegmentsAtOnce) {
    ASSERT_NO_FATAL_FAILURE(open_passive());
    tcp().set_nodelay(conn_, true);
    send(pattern(100, 1));
    send(pattern(50, 2));
    auto v = tx_segs();
    ASSERT_EQ(v.size(), 2u);
    EXPECT_EQ(v[1].seq, pack_ + 100);
    EXPECT_EQ(v[1].payload, pattern(50, 2));
}

// RFC 2018 4: "SACK options SHOULD be included in all ACKs which do not ACK the highest
// sequence number in the data receiver's queue": our data segments too, while we hold
// out-of-order data. They are cut to leave the room (4 bytes, 8 per block, at most 3 blocks
// beside timestamps), so that the segment stays within the peer's MSS; once the gap fills they
// are full-sized again. (Without the blocks, a peer whose retransmission we lost while we were
// sending data waited for its RTO: stalls of 25-40 s at 10 % loss against Linux.)
TEST_F(TcpData, DataSegmentsCarrySackBlocksWhileDataIsHeldOutOfOrder) {
    ASSERT_NO_FATAL_FAILURE(open_passive());
    const uint32_t base = pseq_;
    rx_seg(kTcpAck, base + 1000, pack_, pattern(1000, 1));
    rx_seg(kTcpAck, base + 3000, pack_, pattern(1000, 3));
    rx_seg(kTcpAck, base + 5000, pack_, pattern(1000, 5));
    rx_seg(kTcpAck, base + 7000, pack_, pattern(1000, 7));
    tx_segs();
    // Four ranges held: three blocks fit beside the timestamps (4 + 3 * 8 bytes).
    send(pattern(5000, 0x55));
    auto v = tx_segs();
    ASSERT_GE(v.size(), 3u);
    uint32_t off = 0;
    for (const TcpSeg& d : v) {
        EXPECT_EQ(d.seq, pack_ + off);
        EXPECT_EQ(d.ack, base);
        EXPECT_LE(d.len(), 1448u - 28) << "room for three blocks";
        EXPECT_EQ(d.sack.size(), 3u);
        off += d.len();
    }
    EXPECT_EQ(v[0].len(), 1448u - 28);
    EXPECT_EQ(v[0].sack[0], (std::pair<uint32_t, uint32_t>{base + 7000, base + 8000}))
        << "the most recent first";
    // The gaps fill: full-sized segments again, no blocks.
    rx_seg(kTcpAck, base, pack_, pattern(1000, 0));
    rx_seg(kTcpAck, base + 2000, pack_, pattern(1000, 2));
    rx_seg(kTcpAck, base + 4000, pack_, pattern(1000, 4));
    rx_seg(kTcpAck, base + 6000, pack_, pattern(1000, 6));
    const uint32_t acked_to = pack_ + off;
    rx_seg(kTcpAck, base + 8000, acked_to, {});
    tx_segs();
    send(pattern(3000, 0x66));
    v = tx_segs();
    ASSERT_FALSE(v.empty());
    EXPECT_EQ(v[0].len(), 1448u);
    EXPECT_TRUE(v[0].sack.empty());
    EXPECT_EQ(v[0].ack, base + 8000);
}

// RFC 5681 4.2 and RFC 2018 4: out-of-order data is acknowledged at once, with SACK blocks,
// the first holding the most recently received segment; the queue delivers in order once the
// gaps fill, and the ACK of a segment that fills a gap is immediate.
TEST_F(TcpData, OutOfOrderSackBlocksAndReassembly) {
    ASSERT_NO_FATAL_FAILURE(open_passive());
    const uint32_t base = pseq_;
    std::vector<Bytes> part;
    for (int i = 0; i < 5; ++i) part.push_back(pattern(1000, uint8_t(10 * i)));
    auto seg = [&](int i) { rx_seg(kTcpAck, base + 1000 * i, pack_, part[size_t(i)]); };
    using Blocks = std::vector<std::pair<uint32_t, uint32_t>>;

    seg(2);
    TcpSeg a = tx_one();
    EXPECT_EQ(a.ack, base);
    EXPECT_EQ(a.sack, (Blocks{{base + 2000, base + 3000}}));
    seg(4);
    a = tx_one();
    EXPECT_EQ(a.ack, base);
    EXPECT_EQ(a.sack, (Blocks{{base + 4000, base + 5000}, {base + 2000, base + 3000}}));
    seg(1);  // joins [2000, 3000): the block holding it comes first
    a = tx_one();
    EXPECT_EQ(a.sack, (Blocks{{base + 1000, base + 3000}, {base + 4000, base + 5000}}));
    EXPECT_TRUE(tapp_.data.empty());
    seg(0);
    a = tx_one();
    EXPECT_EQ(a.ack, base + 3000) << "the gap filled: ACK at once";
    EXPECT_EQ(a.sack, (Blocks{{base + 4000, base + 5000}}));
    EXPECT_EQ(tapp_.data, cat({part[0], part[1], part[2]}));
    seg(3);
    a = tx_one();
    EXPECT_EQ(a.ack, base + 5000);
    EXPECT_TRUE(a.sack.empty());
    EXPECT_EQ(tapp_.data, cat({part[0], part[1], part[2], part[3], part[4]}));
    EXPECT_EQ(stats().bytes_received, 5000u);
    EXPECT_EQ(tctr().ooo_segs, 3u);
}

// RFC 2018 4 with more blocks than fit (3 beside timestamps): the first holds the latest
// arrival and the others are the most recently reported, newest first, not the lowest: a new
// block above several others is reported at once, and again on the next ACKs.
TEST_F(TcpData, SackBlocksAreTheMostRecentNotTheLowest) {
    ASSERT_NO_FATAL_FAILURE(open_passive());
    kbase_ = pseq_;
    // Six blocks: segments 1, 3, 5, 7, 9, 11 arrive in that order (0 and the even ones lost).
    TcpSeg a;
    for (int i = 1; i <= 11; i += 2) {
        kseg(i);
        a = tx_one();
        EXPECT_EQ(a.sack.at(0), kblock(i, i + 1)) << "the latest arrival first";
    }
    EXPECT_EQ(a.sack, (Blocks{kblock(11, 12), kblock(9, 10), kblock(7, 8)}));
    // Segment 8 joins 7 and 9: one block, first; then the others by recency.
    kseg(8);
    a = tx_one();
    EXPECT_EQ(a.sack, (Blocks{kblock(7, 10), kblock(11, 12), kblock(5, 6)}));
    // Segment 0 arrives: 0 and 1 are delivered and drop out of the blocks.
    kseg(0);
    a = tx_one();
    EXPECT_EQ(a.ack, kbase_ + 2000);
    EXPECT_EQ(a.sack, (Blocks{kblock(7, 10), kblock(11, 12), kblock(5, 6)}));
    EXPECT_EQ(stats().bytes_received, 2000u);
}

// Blocks that dropped off the end of the reported ones come back as RCV.NXT passes the
// reported ones: queued data stays reported (else its sender resends it).
TEST_F(TcpData, ForgottenSackBlocksComeBackWhenTheReportedOnesAreAcknowledged) {
    ASSERT_NO_FATAL_FAILURE(open_passive());
    kbase_ = pseq_;
    // Arrivals from the top down: the four reported are the lowest, 9 and 11 dropped off.
    for (int i = 11; i >= 1; i -= 2) kseg(i);
    TcpSeg a = tx_segs().back();
    EXPECT_EQ(a.sack, (Blocks{kblock(1, 2), kblock(3, 4), kblock(5, 6)}));
    kseg(0);  // 0 and 1 delivered
    a = tx_one();
    EXPECT_EQ(a.ack, kbase_ + 2000);
    EXPECT_EQ(a.sack, (Blocks{kblock(3, 4), kblock(5, 6), kblock(7, 8)}));
    kseg(2);  // 2 and 3 delivered: block 9 is reported again
    a = tx_one();
    EXPECT_EQ(a.ack, kbase_ + 4000);
    EXPECT_EQ(a.sack, (Blocks{kblock(5, 6), kblock(7, 8), kblock(9, 10)}));
    kseg(4);
    a = tx_one();
    EXPECT_EQ(a.sack, (Blocks{kblock(7, 8), kblock(9, 10), kblock(11, 12)}));
}

// RFC 2883 4: a duplicate segment is reported as the first SACK block of the ACK it draws
// (a D-SACK), once; below RCV.NXT, or inside a queued block (then that block comes second).
TEST_F(TcpData, DuplicateSegmentsAreReportedWithDsack) {
    ASSERT_NO_FATAL_FAILURE(open_passive());
    kbase_ = pseq_;
    kseg(0);
    kseg(1);
    tx_segs();
    kseg(0);  // all below RCV.NXT
    TcpSeg a = tx_one();
    EXPECT_EQ(a.ack, kbase_ + 2000);
    EXPECT_EQ(a.sack, (Blocks{kblock(0, 1)}));
    EXPECT_EQ(tctr().dup_segs, 1u);
    kseg(3);  // out of order
    a = tx_one();
    EXPECT_EQ(a.sack, (Blocks{kblock(3, 4)})) << "the D-SACK went once";
    kseg(4);
    tx_segs();
    kseg(3);  // again, inside the queued block [3, 5)
    a = tx_one();
    EXPECT_EQ(a.sack, (Blocks{kblock(3, 4), kblock(3, 5)}));
    kseg(2);
    a = tx_one();
    EXPECT_EQ(a.ack, kbase_ + 5000);
    EXPECT_TRUE(a.sack.empty());
}

// Overlapping and duplicate out-of-order segments: each byte is delivered once.
TEST_F(TcpData, OverlappingSegmentsDeliveredOnce) {
    ASSERT_NO_FATAL_FAILURE(open_passive());
    const uint32_t base = pseq_;
    const Bytes all = pattern(3000, 77);
    auto sub = [&](uint32_t off, uint32_t len) {
        return Bytes(all.begin() + off, all.begin() + off + len);
    };
    rx_seg(kTcpAck, base + 1000, pack_, sub(1000, 1000));
    rx_seg(kTcpAck, base + 1500, pack_, sub(1500, 1000));  // overlaps, extends
    rx_seg(kTcpAck, base + 1000, pack_, sub(1000, 1000));  // duplicate
    rx_seg(kTcpAck, base, pack_, sub(0, 1200));            // overlaps the queue's head
    rx_seg(kTcpAck, base + 2500, pack_, sub(2500, 500));
    EXPECT_EQ(tapp_.data, all);
    tx_segs();
    advance(40);
    auto v = tx_segs();
    if (!v.empty()) {
        EXPECT_EQ(v.back().ack, base + 3000);
    }
}

// RFC 9293 3.4: the peer's sequence numbers wrap (ISN 0xfffffff0): data across 2^32, in and
// out of order, is delivered in order and acknowledged with wrapped numbers.
TEST_F(TcpData, PeerSequenceWrapsAround) {
    ASSERT_NO_FATAL_FAILURE(open_passive(linux_syn_opts(), 0xfffffff0u));
    EXPECT_EQ(pseq_, 0xfffffff1u);
    const Bytes a = pattern(1000, 1), b = pattern(1000, 2), c = pattern(1000, 3);
    rx_seg(kTcpAck, pseq_ + 1000, pack_, b);  // [0x3d9, 0x7c1): past the wrap, early
    TcpSeg s = tx_one();
    EXPECT_EQ(s.ack, 0xfffffff1u);
    ASSERT_EQ(s.sack.size(), 1u);
    EXPECT_EQ(s.sack[0].first, 0xfffffff1u + 1000);
    rx_data(a);  // crosses 2^32
    s = tx_one();
    EXPECT_EQ(s.ack, uint32_t(0xfffffff1u + 2000));
    pseq_ += 1000;
    rx_data(c);
    EXPECT_EQ(tapp_.data, cat({a, b, c}));
    advance(40);
    s = tx_one();
    EXPECT_EQ(s.ack, uint32_t(0xfffffff1u + 3000));
    EXPECT_EQ(s.ack, 0xba9u);
}

// Our sequence numbers wrap: the ISN (RFC 6528: a 4 us clock plus a keyed hash of the tuple)
// is steered near 2^32 by moving the virtual clock, then data is sent across the wrap and
// acknowledged.
TEST_F(TcpData, OurSequenceWrapsAround) {
    // The ISN this tuple gets now.
    conn_ = tcp().connect(rte_cpu_to_be_32(kPeerIp), kPeerPort, now_, kLocalPort);
    step();
    const uint32_t iss0 = tx_one().seq;
    tcp().abort(conn_);
    step();
    tx_segs();
    // 2048 below 2^32: the clock moves d * 4 us.
    const uint32_t want = 0xfffff800u;
    const uint32_t d = want - iss0;
    now_ += uint64_t(d) * 4000;
    stack().arp_learned(proto::Stack::ArpFact{rte_cpu_to_be_32(kPeerIp), kPeerMac}, now_);
    start_tcp(tcp_config());
    ASSERT_NO_FATAL_FAILURE(open_active());
    ASSERT_EQ(iss_, want);
    const Bytes data = pattern(5000, 42);
    send(data);
    auto v = tx_segs();
    ASSERT_EQ(v.size(), 3u) << "the tail waits (Nagle)";
    EXPECT_EQ(v[0].seq, 0xfffff801u);
    EXPECT_EQ(v[1].seq, 0xfffff801u + 1448);
    EXPECT_EQ(v[2].seq, uint32_t(0xfffff801u + 2896));  // past the wrap
    EXPECT_LT(v[2].seq, 0x1000u);
    EXPECT_EQ(v[1].payload, Bytes(data.begin() + 1448, data.begin() + 2896)) << "across 2^32";
    rx_ack(uint32_t(0xfffff801u + 2896));
    EXPECT_TRUE(tx_segs().empty()) << "the tail still waits for the last full segment";
    rx_ack(uint32_t(0xfffff801u + 4344));
    v = tx_segs();
    ASSERT_EQ(v.size(), 1u);
    EXPECT_EQ(v[0].seq, uint32_t(0xfffff801u + 4344));
    EXPECT_EQ(v[0].payload, Bytes(data.begin() + 4344, data.end()));
    rx_ack(uint32_t(0xfffff801u + 5000));
    EXPECT_EQ(stats().bytes_sent, 5000u);
    // And the peer's data is acknowledged as usual.
    rx_data(pattern(10));
    EXPECT_EQ(tapp_.data, pattern(10));
}

// RFC 9293 3.4 arithmetic (tcp_seq.hpp): comparisons modulo 2^32.
TEST(TcpSeq, ComparisonsModulo2To32) {
    using namespace proto;
    static_assert(seq_lt(0xfffffff0u, 0x10u));
    static_assert(seq_gt(0x10u, 0xfffffff0u));
    static_assert(seq_leq(5u, 5u) && seq_geq(5u, 5u) && !seq_lt(5u, 5u));
    static_assert(seq_in(0u, 0xfffffff0u, 0x10u));
    static_assert(seq_in(0xfffffff0u, 0xfffffff0u, 0x10u));
    static_assert(!seq_in(0x10u, 0xfffffff0u, 0x10u));  // half-open
    static_assert(!seq_in(0xffffffefu, 0xfffffff0u, 0x10u));
    static_assert(seq_max(0xfffffff0u, 0x10u) == 0x10u);
    static_assert(seq_min(0xfffffff0u, 0x10u) == 0xfffffff0u);
    EXPECT_TRUE(seq_lt(0x7fffffffu, 0x80000000u));
    EXPECT_TRUE(seq_lt(0u, 0x7fffffffu));
    EXPECT_TRUE(seq_gt(0u, 0x80000001u)) << "more than 2^31 behind wraps to ahead";
    EXPECT_FALSE(seq_in(5u, 5u, 5u)) << "an empty window holds nothing";
}

}  // namespace
}  // namespace sluice::test

namespace sluice::test {

// Many small pieces queued by reference (pub/sub frames, pipelined replies) are copied into
// one payload mbuf rather than gathered as one indirect mbuf each: NICs cap the gather list
// (Tcp::kMaxGather); the bytes and their order are the same either way.
TEST_F(TcpData, ManySmallPiecesAreCopiedIntoOneSegment) {
    ASSERT_NO_FATAL_FAILURE(open_passive());
    tcp().set_nodelay(conn_, true);
    Bytes all;
    for (int i = 0; i < 30; ++i) {
        const Bytes piece = pattern(40, uint8_t(i + 1));
        rte_mbuf* m = rte_pktmbuf_alloc(unit_pool());
        ASSERT_NE(m, nullptr);
        memcpy(rte_pktmbuf_append(m, uint16_t(piece.size())), piece.data(), piece.size());
        ASSERT_EQ(tcp().send(conn_, m), 0);
        all.insert(all.end(), piece.begin(), piece.end());
    }
    const uint64_t before = tctr().gather_copies;
    step();
    const TcpSeg s = tx_one();
    EXPECT_EQ(s.payload, all);
    EXPECT_EQ(tctr().gather_copies, before + 1);
    // Three pieces averaging under Tcp::kMinGatherPiece bytes are copied too.
    pack_ += uint32_t(all.size());
    rx_ack(pack_);
    Bytes three;
    for (int i = 0; i < 3; ++i) {
        const Bytes piece = pattern(100, uint8_t(40 + i));
        rte_mbuf* m = rte_pktmbuf_alloc(unit_pool());
        ASSERT_NE(m, nullptr);
        memcpy(rte_pktmbuf_append(m, uint16_t(piece.size())), piece.data(), piece.size());
        ASSERT_EQ(tcp().send(conn_, m), 0);
        three.insert(three.end(), piece.begin(), piece.end());
    }
    step();
    EXPECT_EQ(tx_one().payload, three);
    EXPECT_EQ(tctr().gather_copies, before + 2);
    all = three;
    // Three pieces of 600 bytes are gathered by reference.
    for (int i = 0; i < 3; ++i) {
        rte_mbuf* m = rte_pktmbuf_alloc(unit_pool());
        ASSERT_NE(m, nullptr);
        memset(rte_pktmbuf_append(m, 600), 'a' + i, 600);
        ASSERT_EQ(tcp().send(conn_, m), 0);
    }
    step();
    auto v = tx_segs();
    ASSERT_EQ(v.size(), 2u);  // 1800 bytes: one MSS and the rest
    EXPECT_EQ(tctr().gather_copies, before + 2);
    pack_ += uint32_t(all.size()) + 1800;
    rx_ack(pack_);
    EXPECT_EQ(stats().bytes_sent, 30u * 40 + all.size() + 1800);
}

}  // namespace sluice::test

namespace sluice::test {

// Tcp::set_linear_tx (a port that copies frames anyway): a data segment over several
// send-queue pieces is one mbuf, its payload copied from the queue behind the headers; one
// within a single piece keeps its one indirect mbuf. The queue keeps the app's mbufs by
// reference until the ACK, and a retransmission is built the same way. Without it every
// segment chains indirect mbufs over its pieces.
TEST_F(TcpData, LinearTxBuildsWholeSegmentsAndKeepsThePayloadByReference) {
    proto::TcpConfig c = tcp_config();
    c.tlp = false;  // retransmissions from the timer only: the head, each time
    start_tcp(c);
    ASSERT_NO_FATAL_FAILURE(open_passive());
    tcp().set_nodelay(conn_, true);
    auto queue = [&](std::vector<rte_mbuf*>& pieces, Bytes& all) {
        for (int i = 0; i < 3; ++i) {
            rte_mbuf* m = rte_pktmbuf_alloc(unit_pool());
            ASSERT_NE(m, nullptr);
            const Bytes piece = pattern(600, uint8_t(7 + 13 * i));
            memcpy(rte_pktmbuf_append(m, 600), piece.data(), piece.size());
            all.insert(all.end(), piece.begin(), piece.end());
            pieces.push_back(m);
            ASSERT_EQ(tcp().send(conn_, m), 0);
        }
    };
    // The built segments, as the port would get them: nb_segs of each.
    auto built = [&] {
        tcp().dispatch(tapp_);
        tcp().flush(now_);
        std::vector<uint16_t> segs;
        for (uint16_t i = 0; i < stack().tx().size(); ++i)
            segs.push_back(stack().tx().data()[i]->nb_segs);
        return segs;
    };

    tcp().set_linear_tx(true);
    ASSERT_TRUE(tcp().linear_tx());
    std::vector<rte_mbuf*> pieces;
    Bytes all;
    ASSERT_NO_FATAL_FAILURE(queue(pieces, all));
    const uint64_t before = tctr().tx_linear;
    // 1800 bytes: one MSS over the three pieces, whole; the rest, within the third, chained.
    EXPECT_EQ(built(), (std::vector<uint16_t>{1, 2}));
    EXPECT_EQ(rte_mbuf_refcnt_read(pieces[0]), 1) << "no indirect mbuf on it";
    EXPECT_EQ(rte_mbuf_refcnt_read(pieces[1]), 1) << "no indirect mbuf on it";
    EXPECT_EQ(rte_mbuf_refcnt_read(pieces[2]), 2) << "the second segment's indirect mbuf";
    EXPECT_EQ(tctr().tx_linear, before + 1);
    auto v = tx_segs();
    ASSERT_EQ(v.size(), 2u);
    EXPECT_EQ(cat({v[0].payload, v[1].payload}), all);
    // Retransmission timeouts (backed off): the first segment again, whole, from the queue.
    advance(1000);
    v = tx_segs();
    ASSERT_GE(v.size(), 1u);
    for (const TcpSeg& r : v) {
        EXPECT_EQ(r.seq, pack_);
        EXPECT_EQ(r.payload, Bytes(all.begin(), all.begin() + r.len()));
    }
    EXPECT_EQ(tctr().tx_linear, before + 1 + v.size());
    pack_ += uint32_t(all.size());
    rx_ack(pack_);
    step();
    tx_segs();

    // The same queue without: each segment chains indirect mbufs over the pieces.
    tcp().set_linear_tx(false);
    ASSERT_FALSE(tcp().linear_tx());
    pieces.clear();
    all.clear();
    ASSERT_NO_FATAL_FAILURE(queue(pieces, all));
    const std::vector<uint16_t> chains = built();
    ASSERT_EQ(chains.size(), 2u);
    EXPECT_GT(chains[0], 1);
    EXPECT_GT(chains[1], 1);
    for (rte_mbuf* m : pieces) EXPECT_GT(rte_mbuf_refcnt_read(m), 1) << "referenced by a segment";
    v = tx_segs();
    ASSERT_EQ(v.size(), 2u);
    EXPECT_EQ(cat({v[0].payload, v[1].payload}), all);
    pack_ += uint32_t(all.size());
    rx_ack(pack_);
    EXPECT_EQ(stats().bytes_sent, 3600u);
}

}  // namespace sluice::test
