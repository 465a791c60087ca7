// sluice-echo: TCP echo and discard servers (RFC 862, RFC 863), and a client, built only on
// proto/tcp.hpp's API. The example app of the README and the peer of the TCP tests and
// benchmarks.
//
// Server: echoes each payload chain back as it came (zero copy: the received mbufs become the
// send queue), or frees it (discard). Flow control is end to end: what the send queue cannot
// take yet stays held, and counts against the receive window (Tcp::set_manual_window), so a
// peer that does not read its echoes is throttled instead of filling memory. When the peer
// half-closes, the server finishes echoing and closes its side.
//
// Client modes (worker 0 only):
//   transfer  each connection sends its bytes, half-closes, reads until the peer closes;
//             --verify compares what comes back with what was sent
//   rr        request/response: each connection keeps one SIZE-byte request outstanding
//   cps       connect, one request, close, again (connections per second)
//   bulk      one connection streams to a discard server (goodput); with zero_copy the
//             stream is mbufs attached to one read-only buffer (rte_pktmbuf_attach_extbuf)
//             and handed to Tcp::send by reference, the way an app serving data it already
//             holds uses the API; without, each write is copied in by Tcp::send_copy
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <rte_cycles.h>
#include <rte_mbuf.h>

#include "engine/runtime.hpp"
#include "proto/tcp.hpp"

namespace sluice::apps {

class Echo {
  public:
    enum class Mode { server, transfer, rr, cps, bulk };

    struct Config {
        Mode mode = Mode::server;
        uint16_t listen_port = 7;
        bool discard = false;
        rte_be32_t dst = 0;
        uint16_t dst_port = 7;
        uint32_t conns = 1;
        uint64_t bytes = 0;                                // transfer: per connection
        std::shared_ptr<const std::vector<uint8_t>> file;  // transfer: --send-file contents
        std::string recv_file;                             // connection 0's received bytes
        bool verify = false;
        double timeout_s = 60;
        uint32_t size = 64;      // rr / cps request size; bulk write size
        bool zero_copy = false;  // bulk: send by reference from one shared buffer (below)
        double duration_s = 5;
        proto::TcpConfig tcp;
    };

    Echo(const Config& c, unsigned worker) : cfg_(c), worker_(worker) {}
    ~Echo();

    // UDP: none served (ICMP port unreachable).
    bool udp_port_open(uint16_t) const { return false; }
    void on_udp(proto::Stack&, proto::UdpDatagram& d) { rte_pktmbuf_free(d.m); }

    void tcp_config(proto::TcpConfig& t) {
        const uint16_t mss = t.mss;
        t = cfg_.tcp;
        t.mss = std::min(t.mss, mss);
    }

    void start(proto::Tcp& tcp, uint64_t now);
    void poll(proto::Tcp& tcp, uint64_t now);
    int exit_code() const { return rc_; }

    void on_tcp_connected(proto::Tcp& tcp, proto::TcpConn* c);
    void on_tcp_data(proto::Tcp& tcp, proto::TcpConn* c, rte_mbuf* m);
    void on_tcp_peer_fin(proto::Tcp& tcp, proto::TcpConn* c);
    void on_tcp_writable(proto::Tcp& tcp, proto::TcpConn* c);
    void on_tcp_closed(proto::Tcp& tcp, proto::TcpConn* c, proto::TcpCloseReason r);

  private:
    // Per connection, the app's state (TcpConn::user), from a pool sized at start.
    struct Peer {
        Peer* next_free = nullptr;
        unsigned index = 0;
        uint64_t sent = 0, received = 0;
        uint64_t verified = 0, mismatches = 0;
        uint32_t rr_got = 0;
        rte_mbuf* held = nullptr;  // server: received, not yet queued for sending
        uint32_t held_bytes = 0;
        bool peer_fin = false, fin_sent = false, done = false;
    };

    bool client() const { return cfg_.mode != Mode::server; }
    uint64_t to_send() const { return cfg_.file ? cfg_.file->size() : cfg_.bytes; }
    const uint8_t* pattern(uint64_t off, uint32_t& len) const;
    void pump(proto::Tcp& tcp, proto::TcpConn* c, Peer* p);
    void echo_held(proto::Tcp& tcp, proto::TcpConn* c, Peer* p);
    void open_one(proto::Tcp& tcp, unsigned index, uint64_t now);
    void finish_run(const char* why);
    Peer* peer(proto::TcpConn* c) { return static_cast<Peer*>(c->user); }

    Config cfg_;
    unsigned worker_;
    int rc_ = 0;
    bool finished_ = false;
    uint64_t hz_ = 0, t_start_ = 0, t_measure_ = 0, deadline_ = 0, window_ = 0;
    std::vector<Peer> peer_mem_;  // max_conns + 1 slots
    Peer* free_peers_ = nullptr;
    Peer* new_peer();
    void free_peer(Peer* p);
    std::vector<uint8_t> pat_;  // transfer pattern (period 65521: no alignment with MSS)
    uint32_t opened_ = 0, established_ = 0, closed_ = 0, ok_ = 0, failed_ = 0;
    uint64_t total_sent_ = 0, total_received_ = 0, mismatches_ = 0;
    uint64_t transactions_ = 0, completed_conns_ = 0;
    bool measuring_ = false;
    uint32_t pending_opens_ = 0;  // cps: connects to retry (no port or slot free)
    proto::TcpConn* bulk_conn_ = nullptr;
    FILE* recv_out_ = nullptr;
    std::vector<std::string> failures_;
    std::vector<uint8_t> msg_;
    // bulk --zero-copy: the shared buffer and its reference count (one held by the app).
    uint8_t* zc_buf_ = nullptr;
    rte_mbuf_ext_shared_info* zc_shinfo_ = nullptr;
    bool bulk_zero_copy(proto::Tcp& tcp, proto::TcpConn* c, Peer* p);
};

}  // namespace sluice::apps
