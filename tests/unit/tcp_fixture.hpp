// The fixture of the TCP tests, in the manner of packetdrill: a proto::Stack with a proto::Tcp
// attached, the peer's MAC already known, a virtual clock (1 GHz), and a scripted peer. A test
// feeds segments from the peer (rx_seg builds an Ethernet/IPv4/TCP frame with a correct
// checksum and runs one engine loop: stack.input, tcp.dispatch, tcp.flush), moves the clock
// (advance: tcp.poll every millisecond, then dispatch and flush) and reads back what we sent
// (tx_segs: checksums finished as the TX stage does, the TCP checksum verified, every segment
// parsed). Every test ends with the pool full: TearDown destroys the Tcp, then the Stack, then
// checks it.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "proto/tcp.hpp"
#include "tests/unit/stack_fixture.hpp"

namespace sluice::test {

inline constexpr uint16_t kSrvPort = 80;       // where we listen
inline constexpr uint16_t kLocalPort = 50000;  // our port in active opens
inline constexpr uint32_t kPeerIsn = 1000;
inline constexpr uint32_t kPeerTs0 = 700000;  // the peer's timestamp clock at the start

// A proto::TcpApp that records everything and can echo, or close when the peer closes.
struct TcpRecApp {
    enum Kind { ev_connected, ev_data, ev_peer_fin, ev_writable, ev_closed };
    struct Ev {
        Kind kind;
        proto::TcpConn* c;
        proto::TcpCloseReason reason;
        size_t bytes;
    };
    std::vector<Ev> log;
    Bytes data;                      // every byte received, in order
    proto::TcpConn* conn = nullptr;  // the last connected one (nullptr once closed)
    int n_connected = 0, n_data = 0, n_peer_fin = 0, n_writable = 0, n_closed = 0;
    std::optional<proto::TcpCloseReason> reason;  // of the last close
    bool echo = false;                            // send back what arrives
    bool close_on_fin = false;                    // close() when the peer's FIN arrives

    void on_tcp_connected(proto::Tcp&, proto::TcpConn* c) {
        log.push_back({ev_connected, c, proto::TcpCloseReason::normal, 0});
        conn = c;
        ++n_connected;
    }
    void on_tcp_data(proto::Tcp& t, proto::TcpConn* c, rte_mbuf* m);
    void on_tcp_peer_fin(proto::Tcp& t, proto::TcpConn* c) {
        log.push_back({ev_peer_fin, c, proto::TcpCloseReason::normal, 0});
        ++n_peer_fin;
        if (close_on_fin) t.close(c);
    }
    void on_tcp_writable(proto::Tcp&, proto::TcpConn* c) {
        log.push_back({ev_writable, c, proto::TcpCloseReason::normal, 0});
        ++n_writable;
    }
    void on_tcp_closed(proto::Tcp&, proto::TcpConn* c, proto::TcpCloseReason r) {
        log.push_back({ev_closed, c, r, 0});
        ++n_closed;
        reason = r;
        if (conn == c) conn = nullptr;
    }
};
static_assert(proto::TcpApp<TcpRecApp>);

class TcpTest : public StackTest {
  protected:
    void SetUp() override;
    void TearDown() override;

    // Small tables; the rest as the defaults.
    static proto::TcpConfig tcp_config();
    // Replaces the Tcp with a fresh one (initialised at now_).
    void start_tcp(const proto::TcpConfig& c);
    proto::Tcp& tcp() { return *tcp_; }
    const proto::TcpCounters& tctr() const { return tcp_->counters(); }

    // --- The peer -----------------------------------------------------------------------
    // A segment from the peer (kPeerIp:sport to our dport; dport 0: lport_). When the peer
    // uses timestamps (peer_ts_) and `o` has none, a TS option is added: TSval from the
    // peer's clock (one more per segment), TSecr the last TSval we sent. `wnd` 0xffffffff:
    // peer_wnd_. Runs one loop: stack.input, tcp.dispatch, tcp.flush.
    void rx_seg(uint8_t flags, uint32_t seq, uint32_t ack, const Bytes& payload = {},
                TcpOpts o = {}, uint32_t wnd = 0xffffffff, uint8_t tos = 0,
                uint16_t sport = kPeerPort, uint16_t dport = 0);
    // Conveniences on the conversation's state (pseq_, pack_): data (ACK|PSH), a pure ACK,
    // a FIN.
    void rx_data(const Bytes& payload, uint8_t flags = kTcpAck | kTcpPsh);
    void rx_ack(uint32_t ack, TcpOpts o = {}, uint32_t wnd = 0xffffffff);
    void rx_fin();

    // Moves the clock `n` ms, a millisecond at a time: tcp.poll, dispatch, flush each time.
    void advance(uint64_t n);
    // One loop without input (after an API call): dispatch and flush.
    void step();
    // What we sent since the last call, parsed (and the mbufs freed).
    std::vector<TcpSeg> tx_segs();
    // Exactly one segment was sent: it.
    TcpSeg tx_one();

    // --- Handshakes ---------------------------------------------------------------------
    static TcpOpts linux_syn_opts();  // MSS 1460, SACK-permitted, TS, WS 7
    // listen(kSrvPort) if not yet, SYN, SYN-ACK, ACK: conn_ ESTABLISHED. iss_/irs_,
    // pseq_/pack_ set; the SYN-ACK is in synack_.
    void open_passive(TcpOpts syn = linux_syn_opts(), uint32_t peer_isn = kPeerIsn,
                      uint16_t wnd = 65535);
    // connect(kPeerIp:kPeerPort from kLocalPort), SYN, SYN-ACK with `synack` options, ACK.
    void open_active(TcpOpts synack = linux_syn_opts(), uint32_t peer_isn = kPeerIsn,
                     uint16_t wnd = 65535);
    // Sends `data` from our side (send_copy) and runs a loop.
    void send(const Bytes& data);
    // Our state of conn_.
    proto::TcpState state() const { return tcp_->stats(conn_).state; }
    proto::TcpConnStats stats() const { return tcp_->stats(conn_); }
    // The connection of the conversation, looked up (nullptr: gone).
    proto::TcpConn* lookup(uint16_t lport = 0);

    proto::TcpConfig tcfg_{};
    std::unique_ptr<proto::Tcp> tcp_;
    TcpRecApp tapp_;
    std::vector<TcpSeg> out_;  // sent, not yet taken by tx_segs
    bool listening_ = false;

    // The conversation.
    proto::TcpConn* conn_ = nullptr;
    uint16_t lport_ = kSrvPort;
    uint32_t iss_ = 0, irs_ = 0;
    uint32_t pseq_ = 0;  // the peer's next sequence number
    uint32_t pack_ = 0;  // what the peer acknowledges (our next sequence number)
    bool peer_ts_ = true;
    uint32_t peer_tsval_ = kPeerTs0;
    uint32_t our_tsval_ = 0;     // the last TSval we sent
    uint32_t peer_wnd_ = 65535;  // the window field of the peer's segments
    TcpSeg synack_;              // ours (open_passive)
    TcpSeg syn_;                 // ours (open_active)

  private:
    void drain();
};

}  // namespace sluice::test
