// A SYN flood against a listener (RFC 4987 3.6, SYN cookies): half-open connections stop at
// the backlog, the rest are answered statelessly, no slot is taken, and an established
// connection keeps being served all along; a flooder that completes the handshake from a
// cookie gets a real connection.
#include <gtest/gtest.h>

#include "tests/unit/tcp_fixture.hpp"

namespace sluice::test {
namespace {

class SynFloodTest : public TcpTest {};

TEST_F(SynFloodTest, EstablishedConnectionServesThroughAFloodOfSyns) {
    proto::TcpConfig c = tcp_config();
    c.max_conns = 64;
    c.syn_backlog = 8;
    start_tcp(c);
    tapp_.echo = true;
    open_passive();
    ASSERT_EQ(state(), proto::TcpState::established);
    const uint64_t slots_before = tcp().open_conns();

    constexpr unsigned kFlood = 5000;
    unsigned synacks = 0, cookies_seen = 0;
    for (unsigned i = 0; i < kFlood; ++i) {
        // Spoofed SYNs: a new source port each, never completed.
        rx_seg(kTcpSyn, 5000 + i * 7919, 0, {}, linux_syn_opts(), 65535, 0,
               uint16_t(1024 + i % 60000), kSrvPort);
        for (const TcpSeg& s : tx_segs()) {
            if (s.has(kTcpSyn) && s.has(kTcpAck)) ++synacks;
        }
        // Every 500 SYNs the established connection still echoes, byte for byte.
        if (i % 500 == 499) {
            const Bytes msg(100, uint8_t(i));
            const size_t before = tapp_.data.size();
            rx_data(msg);
            ASSERT_EQ(tapp_.data.size(), before + msg.size());
            bool echoed = false;
            for (const TcpSeg& s : tx_segs())
                if (s.payload == msg) echoed = true;
            ASSERT_TRUE(echoed) << "after " << i + 1 << " SYNs";
            pack_ += uint32_t(msg.size());
            rx_ack(pack_);
            tx_segs();
        }
    }
    cookies_seen = unsigned(tctr().syn_cookies_sent);
    // Every SYN was answered: the first `backlog` with state, the rest with cookies.
    EXPECT_EQ(synacks, kFlood);
    EXPECT_EQ(cookies_seen, kFlood - c.syn_backlog);
    // Only the backlog's half-open connections hold slots; the table is not exhausted.
    EXPECT_EQ(tcp().open_conns(), slots_before + c.syn_backlog);
    EXPECT_EQ(tctr().syn_dropped, 0u);
    EXPECT_EQ(state(), proto::TcpState::established);
}

TEST_F(SynFloodTest, HandshakeCompletedFromACookieMakesAConnection) {
    proto::TcpConfig c = tcp_config();
    c.syn_backlog = 1;
    start_tcp(c);
    tcp().listen(kSrvPort, 1);
    // The first SYN takes the only backlog slot.
    rx_seg(kTcpSyn, 1000, 0, {}, linux_syn_opts(), 65535, 0, 40001, kSrvPort);
    tx_segs();
    // The second is answered with a cookie...
    rx_seg(kTcpSyn, 9000, 0, {}, linux_syn_opts(), 65535, 0, 40002, kSrvPort);
    const std::vector<TcpSeg> out = tx_segs();
    ASSERT_EQ(out.size(), 1u);
    const TcpSeg synack = out[0];
    ASSERT_TRUE(synack.has(kTcpSyn) && synack.has(kTcpAck));
    EXPECT_EQ(tctr().syn_cookies_sent, 1u);
    // ...and its ACK (echoing the cookie's timestamp) creates the connection, with data.
    TcpOpts o;
    o.ts_val = kPeerTs0 + 5;
    o.ts_ecr = synack.ts_val;
    const Bytes hello = {'h', 'i'};
    rx_seg(kTcpAck | kTcpPsh, 9001, synack.seq + 1, hello, o, 65535, 0, 40002, kSrvPort);
    EXPECT_EQ(tctr().syn_cookies_ok, 1u);
    EXPECT_EQ(tapp_.n_connected, 1);
    EXPECT_EQ(tapp_.data, hello);
    // A forged ACK (wrong cookie) gets an RST and no connection.
    rx_seg(kTcpAck, 7777, 12345, {}, o, 65535, 0, 40003, kSrvPort);
    EXPECT_EQ(tctr().syn_cookies_bad, 1u);
    bool rst = false;
    for (const TcpSeg& s : tx_segs())
        if (s.has(kTcpRst)) rst = true;
    EXPECT_TRUE(rst);
    EXPECT_EQ(tapp_.n_connected, 1);
}

}  // namespace
}  // namespace sluice::test
