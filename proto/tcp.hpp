// TCP (RFC 9293), one instance per core beside the Stack it rides on. Nothing in it is shared:
// each core owns its connections (inbound flows reach it through symmetric RSS or the
// software-RSS stage; an active open picks a source port whose flow hash lands on its own core),
// so nothing is locked.
//
// How a core drives it, once per burst (engine/runtime.hpp does this):
//   stack.input(...)   -> Tcp::input for each segment: state machine, data queued as events
//   tcp.dispatch(app)  -> the app's callbacks, direct calls (a template: no indirect call);
//                         the app replies with send(), which only queues
//   tcp.flush(now)     -> one pass over the connections that have something to say: data
//                         (Nagle, congestion and peer window permitting), ACKs (delayed or
//                         not), FIN; the reply to a request carries the ACK of the request
//   tcp.poll(now)      -> every loop: the timer wheel (1 ms ticks)
//
// Zero copy: received payload is handed to the app as the mbuf chain it arrived in (headers
// trimmed); sent payload is kept by reference in the send queue, and each transmitted segment
// is a header mbuf chained to indirect mbufs over that payload, so retransmission copies
// nothing. The payload mbufs are freed when the peer acknowledges them.
#pragma once

#include <concepts>
#include <cstdint>

#include <rte_hash.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_tcp.h>

#include "proto/stack.hpp"
#include "proto/tcp_cc.hpp"
#include "proto/tcp_seq.hpp"
#include "proto/tcp_timer.hpp"

namespace sluice::proto {

// The connection table's key compare (rte_hash_set_cmp_func): 0 when the 8-byte keys (remote
// address, remote port, local port) are equal, as memcmp; exposed for its test.
int conn_key_cmp(const void* a, const void* b, size_t len);

// RFC 9293 3.3.2: the eleven states.
enum class TcpState : uint8_t {
    closed,
    listen,
    syn_sent,
    syn_received,
    established,
    fin_wait_1,
    fin_wait_2,
    close_wait,
    closing,
    last_ack,
    time_wait,
};
const char* tcp_state_name(TcpState s);

// Why a connection ended (the closed callback's argument).
enum class TcpCloseReason : uint8_t {
    normal,     // both directions closed in order (FINs exchanged and acknowledged)
    reset,      // the peer sent an acceptable RST
    refused,    // RST in answer to our SYN: nothing listens there
    timeout,    // retransmissions (or keepalive probes) went unanswered
    aborted,    // the app called abort(); an RST was sent
    no_memory,  // no mbuf or no room for the connection's data
};
const char* tcp_close_reason_name(TcpCloseReason r);

struct TcpConfig {
    uint32_t max_conns = 16384;      // per core, TIME_WAIT included
    uint16_t mss = 65495;            // what we announce at most: min(MTU - 40, this)
    uint32_t rcv_buf = 1 << 20;      // receive window we offer (bytes; scaled, RFC 7323 2)
    uint32_t snd_buf = 1 << 20;      // send queue limit: writable() below it
    uint32_t rto_min_ms = 200;       // RFC 6298 2.4 says 1 s; 200 ms as Linux (configurable)
    uint32_t rto_initial_ms = 1000;  // RFC 6298 2.1
    uint32_t rto_max_ms = 60000;     // RFC 6298 2.5
    uint32_t syn_retries = 6;
    uint32_t data_retries = 15;
    uint32_t delack_ms = 40;               // RFC 1122 4.2.3.2: < 500 ms
    uint32_t msl_ms = 30000;               // TIME_WAIT lasts 2 * MSL (RFC 9293 3.4.2)
    uint32_t keepalive_idle_ms = 7200000;  // RFC 1122 4.2.3.6: >= 2 h by default
    uint32_t keepalive_intvl_ms = 75000;
    uint32_t keepalive_probes = 9;
    uint32_t syn_backlog = 256;    // half-open connections per listener before SYN cookies
    uint32_t ooo_max_segs = 1024;  // out-of-order segments held per connection (1 MB / MSS)
    uint32_t ooo_pool = 65536;     // out-of-order segment slots per core
    // Send-queue blocks per core (TcpSqBlock, 16 pieces each); 0: 4 per connection.
    uint32_t sq_blocks = 0;
    TcpCcAlgo cc = TcpCcAlgo::cubic;
    bool sack = true;        // RFC 2018
    bool timestamps = true;  // RFC 7323
    bool window_scale = true;
    bool ecn = false;  // ask for ECN on active opens; always accepted when the peer asks
    bool syn_cookies = true;
    // Tail loss probes (RFC 8985 7) on SACK connections: at 2 SRTT without an ACK, one segment
    // (new data, or the last one again) draws the ACK that shows what the tail lost, instead
    // of waiting for the retransmission timeout.
    bool tlp = true;
    bool nodelay = false;    // Nagle off by default? no: Nagle on (RFC 1122 4.2.3.4)
    bool keepalive = false;  // off by default (RFC 1122 4.2.3.6)
};

// Per-connection statistics (stats()).
struct TcpConnStats {
    uint64_t bytes_sent = 0;      // payload bytes acknowledged by the peer
    uint64_t bytes_received = 0;  // payload bytes delivered to the app
    uint64_t segs_out = 0, segs_in = 0;
    uint64_t retransmits = 0;  // segments sent again
    uint64_t fast_retransmits = 0;
    uint64_t rto_expirations = 0;
    uint32_t srtt_us = 0, rttvar_us = 0, rto_ms = 0;
    uint32_t cwnd = 0, ssthresh = 0;  // bytes
    uint32_t snd_wnd = 0, rcv_wnd = 0;
    TcpState state = TcpState::closed;
};

class Tcp;
struct TcpConn;

// What an app implements to use TCP: callbacks, called from Tcp::dispatch on the connection's
// core. `c` stays valid until on_tcp_closed returns.
template <class A>
concept TcpApp = requires(A a, Tcp& t, TcpConn* c, rte_mbuf* m, TcpCloseReason r) {
    a.on_tcp_connected(t, c);  // passive (accepted) or active open completed
    a.on_tcp_data(t, c, m);    // m: payload chain, the app owns it (send it or free it)
    a.on_tcp_peer_fin(t, c);   // the peer shut down its sending side (half-close)
    a.on_tcp_writable(t, c);   // send space is available again after send() said no
    a.on_tcp_closed(t, c, r);
};

struct TcpEvent {
    enum Type : uint8_t { connected, data, peer_fin, writable, closed };
    Type type;
    TcpCloseReason reason;
    TcpConn* c;
    rte_mbuf* m;
};

// One out-of-order segment held by the receiver.
struct TcpOooSeg {
    uint32_t seq, len;
    rte_mbuf* m;
    TcpOooSeg* next;
    bool fin;  // a FIN follows the payload
};

// A piece of a send queue: `len` bytes at `off` (a data_off: from buf_addr) in m's buffer.
// Pieces never change the mbuf they point into: one buffer may hold pieces of many queues (a
// broker's payload, Tcp::send_ref) or many pieces of one (send_copy's buffer). An `own` piece
// holds one reference to m, dropped when its bytes are acknowledged. The pieces in send_copy's
// buffer hold none: the queue holds one for the buffer, and hands it to the buffer's last piece
// when it moves on to a fresh buffer (pieces are acknowledged in order, so that one goes last).
// `sum`, when has_sum: the 16-bit one's-complement sum of the piece's bytes (fold_sum of
// sum_bytes), given by the app that queued it (Tcp::send_ref): a payload many connections
// share is summed once, and the segments built over it in software use the sum.
struct TcpSqPiece {
    rte_mbuf* m;
    uint16_t off;
    uint16_t len;
    bool own;
    bool has_sum;
    uint16_t sum;
};
static_assert(sizeof(TcpSqPiece) == 16);

// Send queues are arrays of pieces in blocks from a per-core pool (Tcp::init), linked in
// order: acknowledging, seeking and copying walk an array, not a chain of mbufs whose
// headers are cold by the time their ACK comes.
struct TcpSqBlock {
    static constexpr uint32_t kPieces = 16;
    TcpSqBlock* next;
    TcpSqPiece p[kPieces];
};

// SACK blocks (RFC 2018 3): [left, right).
struct TcpSackBlock {
    uint32_t left, right;
};

struct TcpConn {
    // Identity (network order) and state.
    rte_be32_t raddr;
    rte_be16_t rport, lport;
    TcpState state;
    uint8_t listener;  // index of the listener that accepted it, or 0xff
    bool in_flush;     // on the flush list
    bool app_closed;   // close() called: no more data events
    bool fin_queued;   // shutdown(write): FIN after the send queue
    bool fin_sent;
    bool closed_event;  // on_tcp_closed queued
    bool nodelay, keepalive;
    bool sack_ok, ts_ok, ws_ok, ecn_ok;
    bool want_writable;   // send() refused: tell the app when there is room
    bool ack_now;         // send an ACK at the next flush
    bool rtt_timing;      // a segment is timed (Karn's rule, RFC 6298 3)
    bool in_recovery;     // fast recovery (RFC 6582 / RFC 6675)
    bool ecn_ece;         // send ECE until CWR (RFC 3168 6.1.3)
    bool ecn_cwr;         // set CWR on the next new data segment
    bool syn_cookie;      // created from a SYN cookie
    bool manual_window;   // see Tcp::set_manual_window
    bool in_table;        // in the lookup table
    bool freed;           // released while on the flush list
    bool writable_event;  // a writable event is queued
    bool recover_set;     // `recover` holds a value (RFC 6582)
    bool rto_recovery;    // after a timeout, until SND.UNA reaches `recover` (RFC 6675 5.1)
    bool tlp_out;         // a loss probe is unacknowledged (RFC 8985 7.4: TLP.end_seq set)
    bool tlp_retrans;     // ... and it was a retransmission (TLP.is_retrans)
    bool tlp_dsack;       // ... and a D-SACK (RFC 2883) said it arrived twice
    bool wnd_update;      // a reopened window is being announced (Tcp::consumed)
    uint8_t wnd_update_tries;
    uint32_t wnd_update_seq;  // RCV.NXT when the window reopened
    bool app_knows;           // the app has (or will have) heard of it: a closed event is owed
    bool app_done;            // the closed event was delivered (the slot lingers only in TIME_WAIT)
    enum RtxKind : uint8_t {
        rtx_none,
        rtx_rto,
        rtx_persist,
        rtx_keepalive,
        rtx_time_wait,
        rtx_fin_wait_2,
        rtx_tlp  // probe timeout (RFC 8985 7.2), then rtx_rto
    };
    RtxKind rtx_kind;
    uint16_t rcv_mss;       // the peer's usual segment size, as seen (Linux's rcv_mss)
    uint32_t delack_bytes;  // payload received and not yet acknowledged
    uint8_t dupacks;
    uint8_t retries;  // consecutive RTO expirations (or keepalive probes)
    uint8_t snd_wscale, rcv_wscale;
    uint8_t backoff;
    TcpCloseReason close_reason;

    // Send sequence space (RFC 9293 3.3.1).
    uint32_t iss, snd_una, snd_nxt, snd_max, snd_wnd, snd_wl1, snd_wl2, snd_up;
    uint32_t snd_mss;           // effective: peer's MSS minus the options we put in every segment
    uint32_t recover;           // NewReno (RFC 6582 3.2)
    uint32_t tlp_seq, tlp_end;  // the loss probe's range; tlp_end is TLP.end_seq (SND.MAX)
    uint32_t fin_seq;           // sequence number of our FIN (valid once fin_queued and sent)
    uint32_t max_snd_wnd;
    uint32_t ecn_recover;  // no second ECN reduction before this is acknowledged
    // Receive sequence space.
    uint32_t irs, rcv_nxt, rcv_adv;  // rcv_adv: right edge last advertised
    uint32_t rcv_buf;
    uint32_t rcv_held;  // delivered, not yet consumed (manual_window)
    // Timestamps (RFC 7323 3, 4.3, 5).
    uint32_t ts_recent, last_ack_sent;
    uint64_t ts_recent_age;  // tick
    // RTT (RFC 6298 2), in microseconds.
    uint32_t srtt_us, rttvar_us, rto_ms;
    uint32_t rtt_seq;
    uint64_t rtt_start;  // TSC
    uint64_t last_rx;    // TSC of the last segment received (keepalive)

    TcpCc cc;

    // Send queue: payload not yet acknowledged, pieces from SND.UNA on (TcpSqBlock): the
    // first at sq_hb->p[sq_hi], the last at sq_tb->p[sq_tn - 1]; empty: sq_hb == nullptr.
    TcpSqBlock* sq_hb;
    TcpSqBlock* sq_tb;
    uint16_t sq_hi, sq_tn;
    uint32_t sq_bytes;  // snd_una .. end of the queue
    // Blocks the queue holds (of the core's TcpConfig::sq_blocks): what the connection takes
    // from the core's pool, kPieces pieces each.
    uint32_t sq_nblocks;
    // Its pieces that hold a reference to their mbuf (TcpSqPiece::own): with sq_copy_m, the
    // mbufs the queue keeps from going back to their pools.
    uint32_t sq_refs;
    // Cursor: the piece sq_cb->p[sq_ci] starts at sequence number sq_cur_seq (where output
    // resumes); sq_cb == nullptr: none.
    TcpSqBlock* sq_cb;
    uint16_t sq_ci;
    uint32_t sq_cur_seq;
    // send_copy's buffer: its pieces sit one after another in it; the queue holds a reference
    // of its own (TcpSqPiece). Its last piece, while queued (sq_copy_any), is at
    // sq_copy_lb->p[sq_copy_li]; once none is, the buffer is written from its start again.
    rte_mbuf* sq_copy_m;
    TcpSqBlock* sq_copy_lb;
    uint16_t sq_copy_li;
    bool sq_copy_any;

    // SACK scoreboard (sender, RFC 6675): ranges the peer holds above snd_una.
    static constexpr unsigned kScoreboard = 8;
    TcpSackBlock sacked[kScoreboard];
    uint8_t n_sacked;
    uint32_t high_rxt;  // RFC 6675 HighRxt
    uint32_t sacked_bytes;
    // Segments resent in the current SACK recovery, in the order sent (RFC 8985's transmit
    // order, kept only for retransmissions): one is lost again when something sent after it
    // is delivered and it is not (RFC 8985 6.2 with no reordering window in recovery).
    // NextSeg (RFC 6675 4) never resends below HighRxt, so without this a lost
    // retransmission waits for the retransmission timer.
    struct RtxRec {
        uint32_t left, right;  // the range resent
        uint32_t mark;         // SND.MAX when resent: everything from here was sent after it
        uint32_t order : 31;   // when resent, counted per connection
        uint32_t lost : 1;     // found lost, not yet resent
    };
    static constexpr unsigned kRtxRecs = 8;
    RtxRec rtx_recs[kRtxRecs];
    uint8_t n_rtx_recs;
    uint32_t rtx_order;

    // Receiver: out-of-order segments in sequence order; the most recent for SACK (RFC 2018 4).
    TcpOooSeg* ooo;
    uint32_t ooo_segs, ooo_bytes;
    // The blocks our SACK options report, most recent first (RFC 2018 4): the one holding
    // the latest arrival, then those reported before it. Older blocks drop off the end.
    static constexpr unsigned kRcvSackBlocks = 4;
    TcpSackBlock rcv_sack[kRcvSackBlocks];
    uint8_t n_rcv_sack;
    bool dsack_pending;  // report `dsack` as the first block of the next SACK (RFC 2883)
    TcpSackBlock dsack;  // a duplicate received

    TcpTimer rtx_timer;     // retransmission / persist / keepalive / TIME_WAIT
    TcpTimer delack_timer;  // delayed ACK
    TcpConn* flush_next;
    TcpConn* tw_prev;  // TIME-WAIT list, oldest first
    TcpConn* tw_next;
    void* user;  // the app's
    TcpConnStats st;
};

class Tcp {
  public:
    Tcp() = default;
    ~Tcp();
    Tcp(const Tcp&) = delete;
    Tcp& operator=(const Tcp&) = delete;

    // `stack` is the core's IPv4 stack (TCP sends through it and registers with it); `secret`
    // keys the ISN and SYN-cookie function (RFC 6528 3), the same on every core.
    bool init(const TcpConfig& cfg, Stack* stack, int socket_id, const uint8_t secret[16],
              uint64_t now);

    // Mbufs for headers, indirect clones and small copies: a pool of small buffers keeps the
    // working set in cache (default: the stack's pool).
    void set_small_pool(rte_mempool* p) {
        if (stash_i_ < stash_n_)  // from the previous pool: back there
            rte_mempool_put_bulk(hdr_pool(), reinterpret_cast<void**>(stash_ + stash_i_),
                                 stash_n_ - stash_i_);
        stash_i_ = stash_n_ = 0;
        small_ = p;
        small_room_ = p ? uint32_t(rte_pktmbuf_data_room_size(p) - RTE_PKTMBUF_HEADROOM) : 0;
        set_inline_max();
    }

    // For a port that copies every frame out of its mbufs anyway (net_memif, net_tap,
    // net_af_packet: pmd::Port::tx_copies): data segments over several send-queue pieces are
    // built whole, the payload copied from the send queue behind the headers into one mbuf of
    // the stack's pool, instead of chaining an indirect mbuf per piece (a segment within one
    // piece keeps its one indirect mbuf). The driver's copy then reads one buffer,
    // and no reference count is taken and dropped per piece (an allocation, two atomics and a
    // free each). The send queue still holds the payload by reference until it is
    // acknowledged. Off by default: a NIC gathers the pieces by DMA, and the in-memory wire
    // hands the mbufs over as they are.
    void set_linear_tx(bool on);
    bool linear_tx() const { return linear_max_ != 0; }
    // The port does not compute TCP checksums (no offload): a segment built whole
    // (set_linear_tx) gets its checksum here, summed as its payload is copied in, from the
    // sums send_ref was given where there are some, and leaves without the offload request,
    // so that pmd/ does not read it again. Other segments keep the offload contract.
    void set_sw_l4_cksum(bool on) { sw_l4_cksum_ = on; }
    bool sw_l4_cksum() const { return sw_l4_cksum_; }

    // --- API -----------------------------------------------------------------------------
    // Passive open on `port` (host order). Returns 0, or -EADDRINUSE / -ENOSPC.
    int listen(uint16_t port, uint32_t backlog = 0);
    void unlisten(uint16_t port);
    // Active open from our address. `sport` 0: a free port whose flow hash maps to this core
    // (see set_port_filter). Returns nullptr when no port or slot is free. The outcome comes
    // as on_tcp_connected or on_tcp_closed (refused, timeout).
    TcpConn* connect(rte_be32_t dst, uint16_t dport, uint64_t now, uint16_t sport = 0);
    // Queues the payload chain `m` (any length; the mbufs are held by reference until
    // acknowledged, then freed). Returns 0, or -EAGAIN when the send queue is above snd_buf
    // (the app keeps `m`; on_tcp_writable follows), or -ENOTCONN / -EPIPE.
    int send(TcpConn* c, rte_mbuf* m);
    // Queues `len` bytes at `off` of m's data (one segment: off + len <= m->data_len) by
    // reference: m's reference count goes up by one, and down again when they are
    // acknowledged. The caller keeps its own reference and must not change those bytes.
    // Many connections can queue one buffer so, with no mbuf per reference (a broker's
    // fan-out). Returns 0, or -EAGAIN (above snd_buf, or no send-queue block left; then
    // on_tcp_writable follows), -EINVAL, -ENOTCONN / -EPIPE. `sum` (0..0xffff), when the
    // caller knows it: the bytes' 16-bit one's-complement sum (proto::fold_sum of sum_bytes),
    // which a segment checksummed in software (sw_l4_cksum) uses instead of reading them
    // again; -1: not known.
    int send_ref(TcpConn* c, rte_mbuf* m, uint32_t off, uint32_t len, int32_t sum = -1);
    // Copies `len` bytes into the connection's send buffer mbufs and queues them. Returns the
    // bytes taken (maybe fewer than len: send space or mbufs), or a negative errno.
    int send_copy(TcpConn* c, const void* data, uint32_t len);
    uint32_t send_space(const TcpConn* c) const;
    // Send-queue pieces this core can still give out (TcpConfig::sq_blocks): every send,
    // send_ref and send_copy piece takes one until it is acknowledged.
    uint32_t sq_free_pieces() const { return sq_free_n_ * TcpSqBlock::kPieces; }
    void shutdown_write(TcpConn* c);  // FIN after what is queued
    void close(TcpConn* c);           // shutdown_write, and no more data events
    void abort(TcpConn* c);           // RST now; on_tcp_closed(aborted) follows
    void set_nodelay(TcpConn* c, bool on) { c->nodelay = on; }
    // Receive flow control. By default what is handed to the app counts as read at once. With
    // manual_window, it counts against the window until the app calls consumed(): an app that
    // cannot keep up (an echo server whose send queue is full) closes the peer's window
    // instead of buffering without bound.
    void set_manual_window(TcpConn* c, bool on) { c->manual_window = on; }
    void consumed(TcpConn* c, uint32_t bytes);
    void set_keepalive(TcpConn* c, bool on, uint64_t now);
    TcpConnStats stats(const TcpConn* c) const;
    // Decides whether a source port's flow (our address and port, peer's address and port,
    // network order) comes back to this core; nullptr: every port does.
    using PortFilter = bool (*)(void* ctx, rte_be32_t laddr, rte_be32_t raddr, rte_be16_t lport,
                                rte_be16_t rport);
    void set_port_filter(PortFilter f, void* ctx) {
        port_filter_ = f;
        port_filter_ctx_ = ctx;
    }

    // --- Driving -------------------------------------------------------------------------
    // A segment for us (from Stack): `m` starts at Ethernet, l3_len set, IP validated.
    void input(rte_mbuf* m, rte_ipv4_hdr* ip, uint64_t now);
    template <TcpApp App>
    void dispatch(App& app);
    void flush(uint64_t now);
    void poll(uint64_t now);

    const TcpCounters& counters() const { return ctr_; }
    const TcpConfig& config() const { return cfg_; }
    uint32_t open_conns() const { return uint32_t(ctr_.open_conns); }
    bool events_pending() const { return n_ev_ != 0; }
    bool has_work() const { return n_ev_ != 0 || flush_list_ != nullptr; }
    TcpConn* lookup(rte_be32_t raddr, rte_be16_t rport, rte_be16_t lport);
    Stack& stack() { return *stack_; }
    // The pool of small buffers (set_small_pool), else the stack's: what apps use for their
    // own headers and indirect mbufs.
    rte_mempool* small_pool() const { return hdr_pool(); }

  private:
    struct Listener {
        uint16_t port;  // host order; 0 = free slot
        uint32_t backlog;
        uint32_t half_open;
    };
    static constexpr unsigned kMaxListeners = 64;
    static constexpr unsigned kDataEvents = 4096;

    // Parsed options of one segment.
    struct Opts {
        uint16_t mss;
        uint8_t wscale;
        bool has_mss, has_ws, has_ts, sack_ok;
        uint32_t tsval, tsecr;
        uint8_t n_sack;
        TcpSackBlock sack[4];
    };
    struct Seg {
        rte_mbuf* m;
        const rte_tcp_hdr* th;
        uint32_t seq, ack, len;  // len: payload bytes
        uint32_t wnd;            // unscaled
        uint8_t flags;
        uint8_t ecn;           // IP ECN bits
        uint16_t payload_off;  // in the first mbuf segment
        Opts o;
    };

    void event(TcpEvent::Type t, TcpConn* c, rte_mbuf* m = nullptr,
               TcpCloseReason r = TcpCloseReason::normal);
    bool parse_options(const rte_tcp_hdr* th, unsigned hlen, Opts& o);
    void input_listen(Seg& s, rte_be32_t src, uint64_t now, unsigned li);
    void input_syn_sent(TcpConn* c, Seg& s, uint64_t now);
    void input_conn(TcpConn* c, Seg& s, uint64_t now);
    void negotiate(TcpConn* c, const Seg& s);
    void setup_mss(TcpConn* c, uint16_t peer_mss);
    uint8_t rcv_wscale() const;
    bool process_ack(TcpConn* c, Seg& s, uint64_t now);
    void process_data(TcpConn* c, Seg& s, uint64_t now);
    void process_fin(TcpConn* c, uint64_t now);
    void deliver(TcpConn* c, rte_mbuf* m, uint32_t len);
    static void trim_front(rte_mbuf*& m, uint32_t n);
    static void trim_back(rte_mbuf* m, uint32_t n);
    void challenge_ack(TcpConn* c);
    void ooo_insert(TcpConn* c, rte_mbuf* m, uint32_t seq, uint32_t len, bool fin);
    void ooo_drain(TcpConn* c, uint64_t now);
    void ooo_free(TcpConn* c);
    void rcv_sack_note(TcpConn* c, uint32_t left, uint32_t right);
    void rcv_sack_trim(TcpConn* c);
    void note_duplicate(TcpConn* c, uint32_t left, uint32_t right);
    void sack_update(TcpConn* c, const Seg& s);
    void sack_trim(TcpConn* c);
    uint32_t sack_pipe(const TcpConn* c) const;
    bool sack_covers(const TcpConn* c, uint32_t left, uint32_t right) const;
    void rtx_note(TcpConn* c, uint32_t left, uint32_t right);
    void rtx_detect_lost(TcpConn* c);
    void enter_recovery(TcpConn* c, uint64_t now, bool reduce = true);
    void retransmit_head(TcpConn* c, uint64_t now);
    bool early_retransmit(const TcpConn* c) const;
    uint32_t new_data_fits(const TcpConn* c, uint32_t mss) const;
    void rtt_sample(TcpConn* c, uint32_t rtt_us);

    TcpConn* alloc_conn(rte_be32_t raddr, rte_be16_t rport, rte_be16_t lport);
    void free_conn(TcpConn* c);
    void closed_delivered(TcpConn* c);  // the slot goes now, or when TIME-WAIT ends
    void unhash(TcpConn* c);
    void release_queues(TcpConn* c);
    bool reuse_time_wait(TcpConn* old);
    void tw_unlink(TcpConn* c);
    void set_state(TcpConn* c, TcpState s);
    void finish(TcpConn* c, TcpCloseReason r);  // to CLOSED: timers off, queues freed, event
    void enter_time_wait(TcpConn* c, uint64_t now);
    void want_flush(TcpConn* c) {
        if (!c->in_flush) {
            c->in_flush = true;
            c->flush_next = flush_list_;
            flush_list_ = c;
        }
    }
    void schedule_ack(TcpConn* c, uint32_t len);

    // Output.
    void output(TcpConn* c, uint64_t now);
    bool send_segment(TcpConn* c, uint32_t seq, uint32_t len, uint8_t flags, uint64_t now,
                      bool retransmit);
    // A pure ACK is numbered SND.MAX, not SND.NXT: after a timeout SND.NXT goes back to
    // SND.UNA (go back N), and an ACK numbered below what the peer has received is
    // unacceptable to it (RFC 9293 3.10.7.4), dropped without its ACK field being read. Nor
    // beyond the right edge of the peer's window (a window that closed with data in flight;
    // a persist probe): unacceptable too. As Linux's tcp_acceptable_seq().
    void send_ack(TcpConn* c, uint64_t now) {
        const uint32_t wnd_end = c->snd_una + c->snd_wnd;
        const uint32_t seq = seq_leq(c->snd_max, wnd_end) ? c->snd_max : wnd_end;
        send_segment(c, seq, 0, RTE_TCP_ACK_FLAG, now, false);
    }
    void send_syn(TcpConn* c, uint64_t now);
    void send_rst_for(const Seg& s, rte_be32_t src, uint64_t now);
    void send_raw(rte_be32_t dst, rte_be16_t dport, rte_be16_t sport, uint32_t seq, uint32_t ack,
                  uint8_t flags, uint16_t wnd, const uint8_t* opts, uint16_t opt_len, uint64_t now);
    void fill_ip(rte_mbuf* m, rte_ipv4_hdr* ip, rte_be32_t dst, uint16_t l4_len, bool ect);
    // `len`: the payload the segment carries (SACK blocks take only the room it leaves).
    unsigned write_options(TcpConn* c, uint8_t flags, uint8_t* p, uint64_t now, uint32_t len);
    uint32_t rcv_window(const TcpConn* c) const;
    uint32_t tsval(uint64_t now) const { return uint32_t(now / ts_div_); }
    uint32_t isn(rte_be32_t raddr, rte_be16_t rport, rte_be16_t lport, uint64_t now) const;
    uint32_t cookie(rte_be32_t raddr, rte_be16_t rport, rte_be16_t lport, uint32_t peer_isn,
                    uint32_t count) const;
    // Send queue (TcpSqBlock). A position is a block and an index in it; b == nullptr: the end.
    struct SqPos {
        TcpSqBlock* b;
        uint32_t i;
    };
    static SqPos sq_next(const TcpConn* c, SqPos p) {
        ++p.i;
        if (p.b == c->sq_tb) {
            if (p.i == c->sq_tn) p.b = nullptr;
        } else if (p.i == TcpSqBlock::kPieces) {
            p.b = p.b->next;
            p.i = 0;
        }
        return p;
    }
    // Room for `n` more pieces (in the tail block and the free blocks).
    bool sq_room(const TcpConn* c, uint32_t n) const {
        const uint32_t tail = c->sq_tb ? TcpSqBlock::kPieces - c->sq_tn : 0;
        return n <= tail ||
               (n - tail + TcpSqBlock::kPieces - 1) / TcpSqBlock::kPieces <= sq_free_n_;
    }
    // sq_room checked; `own`: the piece holds a reference to m (TcpSqPiece).
    bool sq_append(TcpConn* c, rte_mbuf* m, uint16_t off, uint16_t len, bool own, int32_t sum = -1);
    void sq_release(TcpConn* c);  // drops every piece and the copy buffer
    void sq_acked(TcpConn* c, uint32_t bytes);
    rte_mbuf* sq_clone(TcpConn* c, uint32_t seq, uint32_t len);
    // Copies [seq, seq + len) of the queue to dst; with `sum`, adds the bytes' sum to it (as
    // the payload of a segment that starts at seq: a piece at an odd offset byte-swapped),
    // from the pieces' own sums where they are whole and have one.
    void sq_copy(TcpConn* c, uint32_t seq, uint32_t len, char* dst, uint64_t* sum = nullptr);
    SqPos sq_seek(TcpConn* c, uint32_t seq, uint32_t& piece_seq);
    // Payloads up to this many bytes are copied behind the headers, into the header mbuf,
    // rather than referenced (an indirect mbuf: an allocation, an atomic on the payload's
    // count, a free on the receiving side). 256 bytes are four cache lines; pub/sub segments
    // of a few small frames each (1000 subscribers x 16 B) went from 7.4-8.6M to 9.0-13.0M
    // deliveries/s on the wire when this rose from 128.
    static constexpr uint32_t kInlinePayload = 256;
    uint32_t inline_max_ = 0;  // kInlinePayload, or less when the header mbufs are smaller
    void set_inline_max();
    // The most send-queue pieces one segment gathers by reference: NICs cap the gather list
    // (i40e and ice: 8 descriptors for a packet without TSO), and past a few pieces a copy of
    // at most one MSS costs less than an indirect mbuf each (many small app writes: pub/sub
    // frames, pipelined replies). Such a segment is copied instead, into as few mbufs as hold it.
    static constexpr uint32_t kMaxGather = 7;
    static constexpr uint32_t kMinGatherPiece = 256;  // average bytes per gathered piece
    uint32_t sq_pieces(TcpConn* c, uint32_t seq, uint32_t len, uint32_t max);
    rte_mbuf* sq_payload(TcpConn* c, uint32_t seq, uint32_t len);

    // Timers.
    uint32_t backed_off_rto(const TcpConn* c) const;
    uint32_t persist_interval(const TcpConn* c) const;
    // The most payload one of our segments carries now: snd_mss, less room for SACK blocks
    // while we hold out-of-order data (seg_mss).
    static uint32_t seg_mss(const TcpConn* c);
    static constexpr uint32_t kPersistMaxMs = 2000;
    void arm_rto(TcpConn* c, bool restart);
    bool tlp_allowed(const TcpConn* c) const;
    void on_pto(TcpConn* c, uint64_t now);
    void arm_idle(TcpConn* c);
    void timer_fired(TcpConn* c, uint64_t now);
    void on_rto(TcpConn* c, uint64_t now);

    TcpConfig cfg_{};
    Stack* stack_ = nullptr;
    rte_mempool* pool_ = nullptr;
    uint32_t pool_room_ = 0;  // data room of pool_'s mbufs behind their headroom
    rte_mempool* small_ = nullptr;
    uint32_t small_room_ = 0;
    bool sw_l4_cksum_ = false;
    uint32_t linear_max_ = 0;  // set_linear_tx: payloads up to this many bytes are copied whole
    rte_mempool* hdr_pool() const { return small_ ? small_ : pool_; }
    TcpConn* last_ = nullptr;  // lookup's one-entry cache
    // Header and indirect mbufs come from a stash filled in bulk, the next ones prefetched:
    // they were last freed by another core (the receiver of the segments), and a cold mbuf
    // per allocation was the sender's largest cost.
    static constexpr unsigned kStash = 64, kPrefetch = 4;
    rte_mbuf* stash_[kStash];
    unsigned stash_n_ = 0, stash_i_ = 0;
    rte_mbuf* alloc_small() {
        if (unlikely(stash_i_ == stash_n_)) {
            if (rte_mempool_get_bulk(hdr_pool(), reinterpret_cast<void**>(stash_), kStash) != 0) {
                stash_n_ = stash_i_ = 0;
                return rte_pktmbuf_alloc(hdr_pool());
            }
            stash_n_ = kStash;
            stash_i_ = 0;
            for (unsigned i = 0; i < kPrefetch; ++i) {
                rte_prefetch0(stash_[i]);
                rte_prefetch0(reinterpret_cast<char*>(stash_[i]) + RTE_CACHE_LINE_SIZE);
            }
        }
        if (stash_i_ + kPrefetch < stash_n_) {
            rte_mbuf* ahead = stash_[stash_i_ + kPrefetch];
            rte_prefetch0(ahead);
            rte_prefetch0(reinterpret_cast<char*>(ahead) + RTE_CACHE_LINE_SIZE);
            rte_prefetch0(static_cast<char*>(ahead->buf_addr) + RTE_PKTMBUF_HEADROOM);
        }
        rte_mbuf* m = stash_[stash_i_++];
        rte_pktmbuf_reset(m);
        return m;
    }
    rte_hash* table_ = nullptr;
    TcpConn* conns_ = nullptr;
    TcpConn* free_conns_ = nullptr;
    TcpOooSeg* ooo_mem_ = nullptr;
    TcpOooSeg* ooo_free_ = nullptr;
    TcpSqBlock* sq_mem_ = nullptr;
    TcpSqBlock* sq_free_ = nullptr;  // a stack: the block freed last is reused first
    uint32_t sq_free_n_ = 0;
    TcpConn* flush_list_ = nullptr;
    TcpConn* tw_head_ = nullptr;  // TIME-WAIT connections, oldest first
    TcpConn* tw_tail_ = nullptr;
    Listener listeners_[kMaxListeners]{};
    TcpTimerWheel wheel_;
    TcpEvent* ev_ = nullptr;  // ev_cap_
    unsigned n_ev_ = 0, ev_cap_ = 0;
    uint16_t ip_id_ = 1;
    TcpCounters ctr_;
    uint64_t hz_ = 0, tick_div_ = 0, ts_div_ = 0;
    uint64_t now_ = 0;
    uint8_t secret_[16]{};
    uint16_t next_port_ = 0;
    PortFilter port_filter_ = nullptr;
    void* port_filter_ctx_ = nullptr;
};

template <TcpApp App>
void Tcp::dispatch(App& app) {
    // Callbacks may queue more events (a send that fails, a close): run until none is left.
    for (unsigned i = 0; i < n_ev_; ++i) {
        TcpEvent e = ev_[i];
        switch (e.type) {
            case TcpEvent::connected:
                app.on_tcp_connected(*this, e.c);
                break;
            case TcpEvent::data:
                if (e.c->app_closed) {
                    rte_pktmbuf_free(e.m);
                } else {
                    app.on_tcp_data(*this, e.c, e.m);
                }
                break;
            case TcpEvent::peer_fin:
                if (!e.c->app_closed) app.on_tcp_peer_fin(*this, e.c);
                break;
            case TcpEvent::writable:
                e.c->want_writable = false;
                if (!e.c->app_closed) app.on_tcp_writable(*this, e.c);
                break;
            case TcpEvent::closed:
                app.on_tcp_closed(*this, e.c, e.reason);
                e.c->user = nullptr;
                closed_delivered(e.c);
                break;
        }
    }
    n_ev_ = 0;
}

}  // namespace sluice::proto
