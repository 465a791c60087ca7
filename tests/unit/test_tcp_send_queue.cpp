// The send queue (proto::TcpSqBlock): pieces of the app's buffers held by reference in blocks
// of a per-core pool; Tcp::send_ref queues bytes of a buffer that other queues share, without
// an mbuf per reference; send_copy's buffer is reused once nothing refers to it.
#include "tests/unit/tcp_fixture.hpp"

namespace sluice::test {
namespace {

class TcpSendQueue : public TcpTest {
  protected:
    rte_mbuf* buffer(const Bytes& b) {
        rte_mbuf* m = rte_pktmbuf_alloc(unit_pool());
        if (m) memcpy(rte_pktmbuf_append(m, uint16_t(b.size())), b.data(), b.size());
        return m;
    }
    static Bytes cat(const Bytes& a, const Bytes& b) {
        Bytes r = a;
        r.insert(r.end(), b.begin(), b.end());
        return r;
    }
    Bytes sent_payload() {
        Bytes all;
        for (const TcpSeg& s : tx_segs()) all.insert(all.end(), s.payload.begin(), s.payload.end());
        return all;
    }
};

// send_ref: the queue takes one more reference to the caller's buffer per call (no indirect
// mbuf), sends the bytes in order with what else is queued, and drops its references on the
// ACK. A range outside the buffer's data is refused.
TEST_F(TcpSendQueue, SendRefQueuesASharedBufferByReference) {
    ASSERT_NO_FATAL_FAILURE(open_passive());
    tcp().set_nodelay(conn_, true);
    const Bytes body = pattern(1000, 3);
    rte_mbuf* shared = buffer(body);
    ASSERT_NE(shared, nullptr);
    const unsigned free_before = rte_mempool_avail_count(unit_pool());
    Bytes want;
    for (int i = 0; i < 3; ++i) {
        const Bytes hdr = pattern(20, uint8_t(50 + i));
        ASSERT_EQ(tcp().send_copy(conn_, hdr.data(), uint32_t(hdr.size())), int(hdr.size()));
        ASSERT_EQ(tcp().send_ref(conn_, shared, 100 * i, 300), 0);
        want.insert(want.end(), hdr.begin(), hdr.end());
        want.insert(want.end(), body.begin() + 100 * i, body.begin() + 100 * i + 300);
    }
    EXPECT_EQ(rte_mbuf_refcnt_read(shared), 4) << "the caller's and one per send_ref";
    EXPECT_EQ(rte_mempool_avail_count(unit_pool()) + 1, free_before)
        << "one mbuf for the three headers (send_copy's buffer), none per reference";
    EXPECT_EQ(tcp().send_ref(conn_, shared, 900, 101), -EINVAL) << "past the data";
    EXPECT_EQ(tcp().send_ref(conn_, shared, 0, 0), -EINVAL);
    step();
    EXPECT_EQ(sent_payload(), want);
    pack_ += uint32_t(want.size());
    rx_ack(pack_);
    EXPECT_EQ(rte_mbuf_refcnt_read(shared), 1) << "the ACK dropped the queue's references";
    rte_pktmbuf_free(shared);
    EXPECT_EQ(stats().bytes_sent, want.size());
}

// A queue longer than a block (TcpSqBlock::kPieces pieces), acknowledged in steps that end
// inside pieces and on block boundaries: the bytes go out in order, every retransmission
// comes from the right place, and every buffer is freed (TearDown checks the pools).
TEST_F(TcpSendQueue, PiecesAcrossBlocksAndPartialAcks) {
    proto::TcpConfig c = tcp_config();
    c.tlp = false;
    start_tcp(c);
    ASSERT_NO_FATAL_FAILURE(open_passive());
    tcp().set_nodelay(conn_, true);
    constexpr int kPieces = 3 * int(proto::TcpSqBlock::kPieces) + 5;
    Bytes all;
    std::vector<rte_mbuf*> bufs;
    for (int i = 0; i < kPieces; ++i) {
        const Bytes b = pattern(37 + i, uint8_t(i));
        rte_mbuf* m = buffer(b);
        ASSERT_NE(m, nullptr);
        rte_mbuf_refcnt_update(m, 1);  // ours, to watch it go back
        bufs.push_back(m);
        ASSERT_EQ(tcp().send(conn_, m), 0);
        all.insert(all.end(), b.begin(), b.end());
    }
    step();
    EXPECT_EQ(sent_payload(), all) << "over " << kPieces << " pieces";
    EXPECT_EQ(conn_->sq_nblocks, 4u) << "the blocks the connection holds";
    EXPECT_EQ(conn_->sq_refs, unsigned(kPieces)) << "a reference per piece sent by send()";
    const unsigned kBlock = proto::TcpSqBlock::kPieces;
    const uint32_t base = pack_;
    // Acknowledge into the middle of piece 5, then the rest of the first block and a bit
    // more, then to a piece boundary in the third block; check what a timeout resends.
    uint32_t acked = 0;
    auto piece_end = [&](int i) {
        uint32_t n = 0;
        for (int k = 0; k <= i; ++k) n += 37 + k;
        return n;
    };
    for (uint32_t to : {piece_end(4) + 10, piece_end(int(proto::TcpSqBlock::kPieces) - 1) + 1,
                        piece_end(2 * int(proto::TcpSqBlock::kPieces) + 3)}) {
        rx_ack(base + to);
        tx_segs();  // what the ACK let go
        acked = to;
        for (int i = 0; i < kPieces && piece_end(i) <= acked; ++i)
            EXPECT_EQ(rte_mbuf_refcnt_read(bufs[i]), 1) << "piece " << i << " acknowledged";
        unsigned whole = 0;  // pieces acknowledged whole: their blocks go back when full
        while (whole < unsigned(kPieces) && piece_end(int(whole)) <= acked) ++whole;
        EXPECT_EQ(conn_->sq_nblocks, 4u - whole / kBlock) << "acknowledged to " << acked;
        EXPECT_EQ(conn_->sq_refs, unsigned(kPieces) - whole);
        EXPECT_EQ(tcp().sq_free_pieces(), (tcp().config().sq_blocks - conn_->sq_nblocks) * kBlock);
        advance(1000);  // the timeout resends from SND.UNA
        auto v = tx_segs();
        ASSERT_FALSE(v.empty());
        EXPECT_EQ(v[0].seq, base + acked);
        EXPECT_EQ(v[0].payload, Bytes(all.begin() + acked, all.begin() + acked + v[0].len()));
    }
    rx_ack(base + uint32_t(all.size()));
    EXPECT_EQ(conn_->sq_nblocks, 0u);
    EXPECT_EQ(conn_->sq_refs, 0u);
    for (rte_mbuf* m : bufs) {
        EXPECT_EQ(rte_mbuf_refcnt_read(m), 1);
        rte_pktmbuf_free(m);
    }
}

// The per-core block pool is finite (TcpConfig::sq_blocks): a send that needs a block when
// none is left is refused with -EAGAIN and counted; the ACK that frees blocks brings the
// writable event, and the send goes through.
TEST_F(TcpSendQueue, NoBlockLeftRefusesTheSendUntilTheAck) {
    proto::TcpConfig c = tcp_config();
    c.sq_blocks = 2;
    start_tcp(c);
    ASSERT_NO_FATAL_FAILURE(open_passive());
    tcp().set_nodelay(conn_, true);
    constexpr uint32_t kFit = 2 * proto::TcpSqBlock::kPieces;
    for (uint32_t i = 0; i < kFit; ++i) {
        rte_mbuf* m = buffer(pattern(10, uint8_t(i)));
        ASSERT_NE(m, nullptr);
        ASSERT_EQ(tcp().send(conn_, m), 0) << i;
    }
    rte_mbuf* m = buffer(pattern(10, 99));
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(tcp().send(conn_, m), -EAGAIN);
    EXPECT_EQ(tctr().sq_full, 1u);
    EXPECT_EQ(tcp().send_copy(conn_, "x", 1), 0) << "send_copy takes nothing either";
    EXPECT_EQ(tcp().send_ref(conn_, m, 0, 5), -EAGAIN);
    step();
    auto v = tx_segs();
    ASSERT_FALSE(v.empty());
    const int writable_before = tapp_.n_writable;
    pack_ += kFit * 10;
    rx_ack(pack_);
    EXPECT_EQ(tapp_.n_writable, writable_before + 1) << "on_tcp_writable after the ACK";
    EXPECT_EQ(tcp().send(conn_, m), 0);
    step();
    EXPECT_EQ(sent_payload(), pattern(10, 99));
    pack_ += 10;
    rx_ack(pack_);
}

// send_copy writes into one buffer the queue keeps while it holds anything: once the bytes
// in it are acknowledged (and nothing else refers to it) it is written from its start again,
// not behind the old bytes and not in a fresh mbuf. An idle connection keeps no buffer.
TEST_F(TcpSendQueue, SendCopyBufferIsReusedAndGivenBackWhenIdle) {
    ASSERT_NO_FATAL_FAILURE(open_passive());
    tcp().set_nodelay(conn_, true);
    const Bytes body = pattern(600, 77);
    rte_mbuf* shared = buffer(body);
    ASSERT_NE(shared, nullptr);
    ASSERT_EQ(tcp().send_copy(conn_, pattern(300, 1).data(), 300), 300);
    ASSERT_EQ(tcp().send_ref(conn_, shared, 0, 600), 0);
    step();
    EXPECT_EQ(sent_payload(), cat(pattern(300, 1), body));
    rte_mbuf* const buf = conn_->sq_copy_m;
    ASSERT_NE(buf, nullptr);
    EXPECT_EQ(buf->data_len, 300);
    EXPECT_EQ(rte_mbuf_refcnt_read(buf), 1) << "the queue's one reference: none per piece";
    pack_ += 300;
    rx_ack(pack_);  // the copied bytes only: the reference is still queued
    EXPECT_EQ(rte_mbuf_refcnt_read(buf), 1) << "only the queue's own reference is left";
    ASSERT_EQ(tcp().send_copy(conn_, pattern(200, 2).data(), 200), 200);
    EXPECT_EQ(conn_->sq_copy_m, buf);
    EXPECT_EQ(buf->data_len, 200) << "written from its start again";
    // Unacknowledged bytes in it stay: the next write goes behind them.
    ASSERT_EQ(tcp().send_copy(conn_, pattern(100, 3).data(), 100), 100);
    EXPECT_EQ(conn_->sq_copy_m, buf);
    EXPECT_EQ(buf->data_len, 300);
    step();
    EXPECT_EQ(sent_payload(), cat(pattern(200, 2), pattern(100, 3)));
    pack_ += 900;
    rx_ack(pack_);
    EXPECT_EQ(conn_->sq_copy_m, nullptr) << "nothing queued: the buffer went back";
    EXPECT_EQ(rte_mbuf_refcnt_read(shared), 1);
    rte_pktmbuf_free(shared);
}

// A full copy buffer is replaced while its pieces are still queued: its last piece takes over
// the queue's reference, so the old buffer lives until that piece is acknowledged (a timeout
// resends from it), then goes back to its pool (TearDown checks every mbuf is back).
TEST_F(TcpSendQueue, ReplacedCopyBufferLivesUntilItsLastPieceIsAcked) {
    proto::TcpConfig c = tcp_config();
    c.tlp = false;
    start_tcp(c);
    ASSERT_NO_FATAL_FAILURE(open_passive());
    tcp().set_nodelay(conn_, true);
    const Bytes body = pattern(100, 200);
    rte_mbuf* shared = buffer(body);
    ASSERT_NE(shared, nullptr);
    Bytes all;
    std::vector<rte_mbuf*> bufs;
    for (int i = 0; i < 8; ++i) {
        const Bytes b = pattern(500, uint8_t(i));
        ASSERT_EQ(tcp().send_copy(conn_, b.data(), 500), 500);
        ASSERT_EQ(tcp().send_ref(conn_, shared, 0, 100), 0);
        if (bufs.empty() || bufs.back() != conn_->sq_copy_m) bufs.push_back(conn_->sq_copy_m);
        all.insert(all.end(), b.begin(), b.end());
        all.insert(all.end(), body.begin(), body.end());
    }
    ASSERT_GE(bufs.size(), 2u) << "4000 bytes of copies need more than one buffer";
    EXPECT_EQ(conn_->sq_refs, 8u + unsigned(bufs.size()) - 1)
        << "one per send_ref, and one per replaced copy buffer (its last piece's)";
    step();
    EXPECT_EQ(sent_payload(), all);
    EXPECT_EQ(rte_mbuf_refcnt_read(bufs[0]), 1) << "held by its last piece";
    advance(1000);  // a timeout: the head again, from the first buffer
    auto v = tx_segs();
    ASSERT_FALSE(v.empty());
    EXPECT_EQ(v[0].seq, pack_);
    EXPECT_EQ(v[0].payload, Bytes(all.begin(), all.begin() + v[0].len()));
    pack_ += uint32_t(all.size());
    rx_ack(pack_);
    EXPECT_EQ(conn_->sq_copy_m, nullptr);
    EXPECT_EQ(conn_->sq_refs, 0u);
    EXPECT_EQ(rte_mbuf_refcnt_read(shared), 1);
    rte_pktmbuf_free(shared);
}

// Segments built whole for a port without TCP checksum offload (set_linear_tx and
// set_sw_l4_cksum, as the engine sets them for net_memif): TCP sums each as it copies the
// payload in, using the sums send_ref was given for whole pieces (a piece at an odd offset
// byte-swapped, a piece cut by the segment's end summed from its bytes), and the segment
// leaves without the offload request. The fixture's TX stage then verifies every checksum.
// A payload of up to Tcp::kInlinePayload (256) bytes is copied behind the headers into the
// header mbuf (one mbuf, no reference on the app's buffer); a larger one is chained by
// reference. With header mbufs too small for that (a small pool of 160 bytes), only what fits
// behind the largest headers is copied: a 100-byte payload goes by reference, intact.
TEST_F(TcpSendQueue, SmallPayloadsGoBehindTheHeadersWhereTheHeaderMbufHasRoom) {
    ASSERT_NO_FATAL_FAILURE(open_passive());
    tcp().set_nodelay(conn_, true);
    const Bytes body = pattern(1000, 9);
    rte_mbuf* shared = buffer(body);
    ASSERT_NE(shared, nullptr);
    // The data segments in the TX batch: their mbuf counts, then their payloads (tx_segs).
    auto send = [&](uint32_t off, uint32_t len) {
        EXPECT_EQ(tcp().send_ref(conn_, shared, uint16_t(off), uint16_t(len)), 0);
        tcp().flush(now_);
        std::vector<uint16_t> segs;
        proto::TxBatch& tx = stack().tx();
        for (uint16_t i = 0; i < tx.size(); ++i) {
            const rte_mbuf* m = tx.data()[i];
            if (m->pkt_len > 14 + 20 + 20 + 12) segs.push_back(m->nb_segs);
        }
        Bytes got;
        for (const TcpSeg& sg : tx_segs())
            got.insert(got.end(), sg.payload.begin(), sg.payload.end());
        EXPECT_EQ(got, Bytes(body.begin() + off, body.begin() + off + len));
        pack_ += len;
        rx_ack(pack_);
        tx_segs();
        return segs;
    };
    using Segs = std::vector<uint16_t>;
    EXPECT_EQ(send(0, 256), Segs{1}) << "copied behind the headers";
    EXPECT_EQ(send(300, 257), Segs{2}) << "chained by reference";
    rte_mempool* tiny =
        rte_pktmbuf_pool_create("ut_tcp_tiny", 255, 0, 0, uint16_t(RTE_PKTMBUF_HEADROOM + 160), 0);
    ASSERT_NE(tiny, nullptr);
    tcp().set_small_pool(tiny);
    EXPECT_EQ(send(10, 100), Segs{2}) << "no room behind the largest headers: by reference";
    EXPECT_EQ(send(600, 60), Segs{1}) << "room for 60";
    tcp().set_small_pool(nullptr);
    EXPECT_EQ(rte_mempool_avail_count(tiny), tiny->size);
    rte_mempool_free(tiny);
    EXPECT_EQ(rte_mbuf_refcnt_read(shared), 1);
    rte_pktmbuf_free(shared);
}

// A jumbo segment (MTU 9000) over more send-queue pieces than a NIC gathers is copied into as
// few pool mbufs as hold it: its chain stays within kMaxGather, whatever the segment's length.
TEST_F(TcpSendQueue, JumboSegmentsOverManyPiecesStayWithinWhatANicGathers) {
    tcp_.reset();
    proto::StackConfig sc = default_config();
    sc.mtu = 9000;
    ASSERT_NO_FATAL_FAILURE(start(sc));
    stack().arp_learned(proto::Stack::ArpFact{rte_cpu_to_be_32(kPeerIp), kPeerMac}, now_);
    ASSERT_NO_FATAL_FAILURE(start_tcp(tcp_config()));
    TcpOpts syn = linux_syn_opts();
    syn.mss = 8960;
    ASSERT_NO_FATAL_FAILURE(open_passive(syn));
    tcp().set_nodelay(conn_, true);
    const Bytes body = pattern(1200, 5);
    rte_mbuf* shared = buffer(body);
    ASSERT_NE(shared, nullptr);
    Bytes want;
    for (int i = 0; i < 24; ++i) {  // 24 frames of a 20-byte header and 700 shared bytes
        const Bytes hdr = pattern(20, uint8_t(70 + i));
        ASSERT_EQ(tcp().send_copy(conn_, hdr.data(), uint32_t(hdr.size())), int(hdr.size()));
        ASSERT_EQ(tcp().send_ref(conn_, shared, uint16_t(20 * i), 700), 0);
        want.insert(want.end(), hdr.begin(), hdr.end());
        want.insert(want.end(), body.begin() + 20 * i, body.begin() + 20 * i + 700);
    }
    tcp().flush(now_);
    std::vector<uint16_t> segs;
    proto::TxBatch& tx = stack().tx();
    for (uint16_t i = 0; i < tx.size(); ++i) segs.push_back(tx.data()[i]->nb_segs);
    std::vector<TcpSeg> sent = tx_segs();
    ASSERT_EQ(sent.size(), 2u) << "17,280 bytes in segments of 8,948";
    EXPECT_EQ(sent[0].len(), 8960u - 12) << "full: the MSS less the timestamps";
    Bytes got;
    for (const TcpSeg& sg : sent) got.insert(got.end(), sg.payload.begin(), sg.payload.end());
    EXPECT_EQ(got, want);
    for (uint16_t n : segs) {
        EXPECT_GT(n, 2) << "longer than one mbuf of the pool";
        EXPECT_LE(n, 7) << "Tcp::kMaxGather";
    }
    EXPECT_EQ(tctr().gather_copies, 2u);
    pack_ += uint32_t(want.size());
    rx_ack(pack_);
    tx_segs();
    EXPECT_EQ(rte_mbuf_refcnt_read(shared), 1);
    rte_pktmbuf_free(shared);
}

TEST_F(TcpSendQueue, SoftwareChecksumUsesTheSumsSendRefWasGiven) {
    proto::TcpConfig cfg = tcp_config();
    cfg.tlp = false;
    start_tcp(cfg);
    tcp().set_linear_tx(true);
    tcp().set_sw_l4_cksum(true);
    ASSERT_NO_FATAL_FAILURE(open_passive());
    tcp().set_nodelay(conn_, true);
    const Bytes body = pattern(1000, 7);
    rte_mbuf* shared = buffer(body);
    ASSERT_NE(shared, nullptr);
    auto sum_of = [&](size_t off, size_t len) {
        return int32_t(proto::fold_sum(proto::sum_bytes(body.data() + off, len)));
    };
    // The TCP segments waiting in the TX batch that TCP summed itself (no offload request):
    // each built whole, its checksum (pseudo-header, header, payload) right, or wrong when
    // `right` is false. Segments not built whole keep the offload request, as before.
    auto check_batch = [&](bool right) {
        proto::TxBatch& tx = stack().tx();
        unsigned n = 0;
        for (uint16_t i = 0; i < tx.size(); ++i) {
            rte_mbuf* m = tx.data()[i];
            const auto* ip = rte_pktmbuf_mtod_offset(m, const rte_ipv4_hdr*, m->l2_len);
            if (ip->next_proto_id != IPPROTO_TCP || (m->ol_flags & RTE_MBUF_F_TX_L4_MASK)) continue;
            ++n;
            const uint16_t l4_len = uint16_t(rte_be_to_cpu_16(ip->total_length) - m->l3_len);
            EXPECT_EQ(m->nb_segs, 1) << "built whole";
            EXPECT_EQ(
                proto::l4_checksum_ok(
                    ip, rte_pktmbuf_mtod_offset(m, const void*, m->l2_len + m->l3_len), l4_len),
                right);
        }
        return n;
    };
    const Bytes h1 = pattern(21, 1), h2 = pattern(3, 2);
    Bytes all;
    ASSERT_EQ(tcp().send_copy(conn_, h1.data(), 21), 21);
    ASSERT_EQ(tcp().send_ref(conn_, shared, 0, 1000, sum_of(0, 1000)), 0);  // at offset 21
    ASSERT_EQ(tcp().send_copy(conn_, h2.data(), 3), 3);
    ASSERT_EQ(tcp().send_ref(conn_, shared, 100, 500, sum_of(100, 500)), 0);  // cut by the MSS
    for (const Bytes* b : {&h1, &body}) all.insert(all.end(), b->begin(), b->end());
    all.insert(all.end(), h2.begin(), h2.end());
    all.insert(all.end(), body.begin() + 100, body.begin() + 600);
    EXPECT_EQ(tcp().send_ref(conn_, shared, 0, 10, 0x10000), -EINVAL) << "not a 16-bit sum";
    tcp().flush(now_);
    EXPECT_EQ(check_batch(true), 1u) << "the full segment; the 76 bytes after it are one piece";
    EXPECT_EQ(tctr().tx_linear, 1u);
    EXPECT_EQ(sent_payload(), all);
    // A partial ACK into the 1000-byte piece: its sum no longer covers what is queued of it;
    // the timeout's retransmission is summed from the bytes (the fixture verifies it).
    const uint32_t base = pack_;
    rx_ack(base + 500);
    tx_segs();
    advance(1000);
    auto v = tx_segs();
    ASSERT_FALSE(v.empty());
    EXPECT_EQ(v[0].seq, base + 500);
    EXPECT_EQ(v[0].payload, Bytes(all.begin() + 500, all.begin() + 500 + v[0].len()));
    pack_ = base + uint32_t(all.size());
    rx_ack(pack_);
    tx_segs();
    // The sum given is what counts: a wrong one makes a wrong checksum (nothing reads the
    // bytes again). That segment is dropped here, not sent.
    ASSERT_EQ(tcp().send_copy(conn_, h1.data(), 21), 21);
    ASSERT_EQ(tcp().send_ref(conn_, shared, 0, 1000, sum_of(0, 1000) ^ 0x0101), 0);
    tcp().flush(now_);
    EXPECT_EQ(check_batch(false), 1u);
    stack().tx().free_all();
    stack().tx().clear();
    pack_ += 1021;
    rx_ack(pack_);
    tx_segs();
    EXPECT_EQ(rte_mbuf_refcnt_read(shared), 1);
    rte_pktmbuf_free(shared);
}

}  // namespace
}  // namespace sluice::test
