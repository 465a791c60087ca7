#include "tests/unit/tcp_fixture.hpp"

#include <cstring>

namespace sluice::test {

using proto::TcpState;

void TcpRecApp::on_tcp_data(proto::Tcp& t, proto::TcpConn* c, rte_mbuf* m) {
    const size_t n = m->pkt_len;
    const size_t at = data.size();
    data.resize(at + n);
    const void* p = rte_pktmbuf_read(m, 0, uint32_t(n), data.data() + at);
    EXPECT_NE(p, nullptr) << "payload chain shorter than its pkt_len";
    if (p != nullptr && p != data.data() + at) memcpy(data.data() + at, p, n);
    log.push_back({ev_data, c, proto::TcpCloseReason::normal, n});
    ++n_data;
    if (echo) {
        if (t.send(c, m) != 0) rte_pktmbuf_free(m);
    } else {
        rte_pktmbuf_free(m);
    }
}

proto::TcpConfig TcpTest::tcp_config() {
    proto::TcpConfig c;
    c.max_conns = 64;
    c.ooo_pool = 1024;
    return c;
}

void TcpTest::SetUp() {
    StackTest::SetUp();
    stack().arp_learned(proto::Stack::ArpFact{rte_cpu_to_be_32(kPeerIp), kPeerMac}, now_);
    start_tcp(tcp_config());
}

void TcpTest::start_tcp(const proto::TcpConfig& c) {
    tcfg_ = c;
    tcp_.reset();
    listening_ = false;
    conn_ = nullptr;
    tcp_ = std::make_unique<proto::Tcp>();
    uint8_t secret[16];
    for (unsigned i = 0; i < 16; ++i) secret[i] = uint8_t(0x51 + 3 * i);
    ASSERT_TRUE(tcp_->init(tcfg_, stack_.get(), int(rte_socket_id()), secret, now_));
}

void TcpTest::TearDown() {
    tcp_.reset();  // frees the send queues, out-of-order segments, undelivered events
    out_.clear();
    StackTest::TearDown();
}

void TcpTest::drain() {
    for (Frame& f : transmit()) {
        if (f.ether_type() != kEthTypeIpv4) {
            ADD_FAILURE() << "a frame of EtherType " << hex(f.ether_type()) << " was sent";
            continue;
        }
        TcpSeg s;
        if (!parse_tcp(f, s)) {
            ADD_FAILURE() << "not a good TCP segment: " << parse_tcp(f, s).message();
            continue;
        }
        EXPECT_TRUE(same_mac(f.eth_dst(), kPeerMac));
        EXPECT_EQ(f.src(), kOurIp);
        EXPECT_EQ(f.dst(), kPeerIp);
        EXPECT_TRUE(f.df()) << "TCP segments are sent with DF (RFC 1191)";
        s.at = now_;
        if (s.has_ts) our_tsval_ = s.ts_val;
        out_.push_back(std::move(s));
    }
}

void TcpTest::rx_seg(uint8_t flags, uint32_t seq, uint32_t ack, const Bytes& payload, TcpOpts o,
                     uint32_t wnd, uint8_t tos, uint16_t sport, uint16_t dport) {
    if (peer_ts_ && !o.ts_val && !o.no_ts) {
        o.ts_val = ++peer_tsval_;
        o.ts_ecr = (flags & kTcpAck) ? our_tsval_ : 0;
    }
    TcpHdr h;
    h.sport = sport;
    h.dport = dport ? dport : lport_;
    h.seq = seq;
    h.ack = ack;
    h.flags = flags;
    h.wnd = uint16_t(wnd == 0xffffffff ? peer_wnd_ : wnd);
    h.options = tcp_options(o);
    Ip4 ih = peer_ip4(kProtoTcp);
    ih.tos = tos;
    ih.frag = kIpDF;
    rx(eth_from_peer(ipv4(ih, test::tcp(kPeerIp, kOurIp, h, payload))));
    tcp_->dispatch(tapp_);
    tcp_->flush(now_);
    drain();
}

void TcpTest::rx_data(const Bytes& payload, uint8_t flags) {
    rx_seg(flags, pseq_, pack_, payload);
    pseq_ += uint32_t(payload.size());
    if (flags & kTcpFin) pseq_ += 1;
}

void TcpTest::rx_ack(uint32_t ack, TcpOpts o, uint32_t wnd) {
    rx_seg(kTcpAck, pseq_, ack, {}, std::move(o), wnd);
}

void TcpTest::rx_fin() {
    rx_seg(kTcpFin | kTcpAck, pseq_, pack_);
    pseq_ += 1;
}

void TcpTest::advance(uint64_t n) {
    for (uint64_t i = 0; i < n; ++i) {
        now_ += ms(1);
        // Keep the peer's ARP entry fresh through long waits.
        if ((now_ / ms(1)) % 60000 == 0)
            stack().arp_learned(proto::Stack::ArpFact{rte_cpu_to_be_32(kPeerIp), kPeerMac}, now_);
        tcp_->poll(now_);
        tcp_->dispatch(tapp_);
        tcp_->flush(now_);
        drain();
    }
}

void TcpTest::step() {
    tcp_->dispatch(tapp_);
    tcp_->flush(now_);
    drain();
}

std::vector<TcpSeg> TcpTest::tx_segs() {
    drain();
    std::vector<TcpSeg> v;
    v.swap(out_);
    return v;
}

TcpSeg TcpTest::tx_one() {
    auto v = tx_segs();
    if (v.size() != 1) {
        ADD_FAILURE() << "expected exactly one segment, got " << v.size();
        for (const TcpSeg& s : v) std::cerr << "  sent: " << s << "\n";
    }
    return v.empty() ? TcpSeg{} : v[0];
}

TcpOpts TcpTest::linux_syn_opts() {
    TcpOpts o;
    o.mss = 1460;
    o.sack_perm = true;
    o.ws = 7;
    return o;  // TS added by rx_seg while peer_ts_
}

proto::TcpConn* TcpTest::lookup(uint16_t lport) {
    return tcp_->lookup(rte_cpu_to_be_32(kPeerIp), rte_cpu_to_be_16(kPeerPort),
                        rte_cpu_to_be_16(lport ? lport : lport_));
}

void TcpTest::open_passive(TcpOpts syn, uint32_t peer_isn, uint16_t wnd) {
    if (!listening_) {
        ASSERT_EQ(tcp_->listen(kSrvPort), 0);
        listening_ = true;
    }
    lport_ = kSrvPort;
    irs_ = peer_isn;
    rx_seg(kTcpSyn, peer_isn, 0, {}, syn, wnd);
    auto v = tx_segs();
    ASSERT_EQ(v.size(), 1u);
    synack_ = v[0];
    ASSERT_EQ(synack_.flags & (kTcpSyn | kTcpAck | kTcpRst | kTcpFin), kTcpSyn | kTcpAck);
    ASSERT_EQ(synack_.ack, peer_isn + 1);
    iss_ = synack_.seq;
    pseq_ = peer_isn + 1;
    pack_ = iss_ + 1;
    if (!synack_.has_ts) peer_ts_ = false;
    const int before = tapp_.n_connected;
    rx_seg(kTcpAck, pseq_, pack_, {}, {}, wnd);
    ASSERT_EQ(tapp_.n_connected, before + 1);
    conn_ = tapp_.conn;
    ASSERT_NE(conn_, nullptr);
    ASSERT_EQ(state(), TcpState::established);
    ASSERT_TRUE(tx_segs().empty());
}

void TcpTest::open_active(TcpOpts synack, uint32_t peer_isn, uint16_t wnd) {
    lport_ = kLocalPort;
    conn_ = tcp_->connect(rte_cpu_to_be_32(kPeerIp), kPeerPort, now_, kLocalPort);
    ASSERT_NE(conn_, nullptr);
    step();
    auto v = tx_segs();
    ASSERT_EQ(v.size(), 1u);
    syn_ = v[0];
    ASSERT_EQ(syn_.flags & (kTcpSyn | kTcpAck), kTcpSyn);
    iss_ = syn_.seq;
    irs_ = peer_isn;
    rx_seg(kTcpSyn | kTcpAck, peer_isn, iss_ + 1, {}, synack, wnd, 0, kPeerPort, 0);
    if (!synack.ts_val && synack.no_ts) peer_ts_ = false;
    pseq_ = peer_isn + 1;
    pack_ = iss_ + 1;
    ASSERT_EQ(tapp_.n_connected, 1);
    ASSERT_EQ(state(), TcpState::established);
    auto a = tx_segs();
    ASSERT_EQ(a.size(), 1u);
    ASSERT_EQ(a[0].flags, kTcpAck);
    ASSERT_EQ(a[0].seq, iss_ + 1);
    ASSERT_EQ(a[0].ack, peer_isn + 1);
}

void TcpTest::send(const Bytes& data) {
    ASSERT_NE(conn_, nullptr);
    ASSERT_EQ(tcp_->send_copy(conn_, data.data(), uint32_t(data.size())), int(data.size()));
    step();
}

}  // namespace sluice::test
