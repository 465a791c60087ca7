// TCP: RFC 9293 (the protocol), RFC 7323 (window scale, timestamps, PAWS), RFC 2018 and
// RFC 6675 (SACK and SACK-based recovery), RFC 6298 (retransmission timer), RFC 5681 and
// RFC 6582 (congestion control, fast retransmit, NewReno), RFC 9438 (CUBIC, tcp_cc.hpp),
// RFC 3168 (ECN), RFC 5961 (challenge ACKs), RFC 6528 (ISNs), RFC 1122 4.2 (delayed ACK, Nagle,
// keepalive). The section of the rule each piece implements is cited where it is implemented.
#include "proto/tcp.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include <rte_hash_crc.h>
#include <rte_malloc.h>

namespace sluice::proto {

namespace {

constexpr uint8_t kFin = RTE_TCP_FIN_FLAG, kSyn = RTE_TCP_SYN_FLAG, kRst = RTE_TCP_RST_FLAG,
                  kPsh = RTE_TCP_PSH_FLAG, kAck = RTE_TCP_ACK_FLAG, kEce = RTE_TCP_ECE_FLAG,
                  kCwr = RTE_TCP_CWR_FLAG;
constexpr uint16_t kTcpHdrLen = sizeof(rte_tcp_hdr);
constexpr uint16_t kHdrs = kEthHdrLen + kIpv4HdrLen;
constexpr uint16_t kDefaultMss = 536;  // RFC 9293 3.7.1: when the peer sends no MSS option
constexpr uint16_t kEphemeralLo = 49152, kEphemeralHi = 65535;  // RFC 6335 6
constexpr uint32_t kMaxWindow = 1u << 30;                       // RFC 7323 2.3
constexpr uint32_t kWorstDelAckMs = 200;                        // RFC 8985 7.2 WCDelAckT
constexpr unsigned kDupThresh = 3;                              // RFC 5681 3.2, RFC 6675 2
// SYN cookies: the MSS is encoded as an index into this table.
constexpr uint16_t kCookieMss[4] = {536, 1220, 1440, 1460};
constexpr uint8_t kOptEnd = 0, kOptNop = 1, kOptMss = 2, kOptWs = 3, kOptSackPerm = 4, kOptSack = 5,
                  kOptTs = 8;

// SipHash-2-4 (Aumasson and Bernstein): the keyed pseudorandom function RFC 6528 3 asks for,
// for ISNs and SYN cookies.
inline uint64_t rotl(uint64_t x, int b) {
    return (x << b) | (x >> (64 - b));
}
uint64_t siphash24(const uint8_t key[16], const uint64_t* words, unsigned n) {
    uint64_t k0, k1;
    memcpy(&k0, key, 8);
    memcpy(&k1, key + 8, 8);
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1,
             v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
    auto round = [&] {
        v0 += v1;
        v1 = rotl(v1, 13);
        v1 ^= v0;
        v0 = rotl(v0, 32);
        v2 += v3;
        v3 = rotl(v3, 16);
        v3 ^= v2;
        v0 += v3;
        v3 = rotl(v3, 21);
        v3 ^= v0;
        v2 += v1;
        v1 = rotl(v1, 17);
        v1 ^= v2;
        v2 = rotl(v2, 32);
    };
    for (unsigned i = 0; i < n; ++i) {
        v3 ^= words[i];
        round();
        round();
        v0 ^= words[i];
    }
    const uint64_t b = uint64_t(n * 8) << 56;
    v3 ^= b;
    round();
    round();
    v0 ^= b;
    v2 ^= 0xff;
    round();
    round();
    round();
    round();
    return v0 ^ v1 ^ v2 ^ v3;
}

struct ConnKey {
    rte_be32_t raddr;
    rte_be16_t rport, lport;
};
static_assert(sizeof(ConnKey) == 8);

// The options of a SYN or SYN-ACK (RFC 9293 3.2, RFC 7323, RFC 2018), in Linux's layout:
// MSS; SACK-permitted and timestamps, NOP-padded to whole words; NOP and window scale
// (`wscale` < 0: none). Returns the length (at most 20).
unsigned syn_options(uint8_t* p, uint16_t mss, bool sack, bool ts, uint32_t tsval, uint32_t tsecr,
                     int wscale) {
    unsigned n = 0;
    p[n++] = kOptMss;
    p[n++] = 4;
    p[n++] = uint8_t(mss >> 8);
    p[n++] = uint8_t(mss);
    if (sack) {
        if (!ts) {  // padded on its own: the header length counts 32-bit words
            p[n++] = kOptNop;
            p[n++] = kOptNop;
        }
        p[n++] = kOptSackPerm;
        p[n++] = 2;
    } else if (ts) {
        p[n++] = kOptNop;
        p[n++] = kOptNop;
    }
    if (ts) {
        p[n++] = kOptTs;
        p[n++] = 10;
        const uint32_t tv = rte_cpu_to_be_32(tsval), te = rte_cpu_to_be_32(tsecr);
        memcpy(p + n, &tv, 4);
        memcpy(p + n + 4, &te, 4);
        n += 8;
    }
    if (wscale >= 0) {
        p[n++] = kOptNop;
        p[n++] = kOptWs;
        p[n++] = 3;
        p[n++] = uint8_t(wscale);
    }
    return n;
}

// Options are not aligned: loads through memcpy (RFC 9293 3.1 says nothing of alignment).
inline uint32_t load_be32(const uint8_t* p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return rte_be_to_cpu_32(v);
}

}  // namespace

// rte_hash compares keys whose length is not a multiple of 16 with memcmp (a libc call per
// lookup, on every segment); the 8-byte connection key is one 64-bit compare.
int conn_key_cmp(const void* a, const void* b, size_t) {
    static_assert(sizeof(ConnKey) == sizeof(uint64_t));
    uint64_t x, y;
    memcpy(&x, a, sizeof x);
    memcpy(&y, b, sizeof y);
    return x != y;
}

const char* tcp_state_name(TcpState s) {
    static const char* const names[] = {"CLOSED",      "LISTEN",     "SYN-SENT",   "SYN-RECEIVED",
                                        "ESTABLISHED", "FIN-WAIT-1", "FIN-WAIT-2", "CLOSE-WAIT",
                                        "CLOSING",     "LAST-ACK",   "TIME-WAIT"};
    return names[unsigned(s)];
}

const char* tcp_close_reason_name(TcpCloseReason r) {
    static const char* const names[] = {"normal",  "reset",   "refused",
                                        "timeout", "aborted", "no_memory"};
    return names[unsigned(r)];
}

// ---------------------------------------------------------------------------------------------
// Setup.

Tcp::~Tcp() {
    if (conns_) {
        for (uint32_t i = 0; i < cfg_.max_conns; ++i) {
            TcpConn* c = &conns_[i];
            if (c->state == TcpState::closed && !c->sq_hb && !c->sq_copy_m && !c->ooo) continue;
            sq_release(c);
            ooo_free(c);
        }
    }
    for (unsigned i = 0; i < n_ev_; ++i)
        if (ev_[i].m) rte_pktmbuf_free(ev_[i].m);
    if (stash_i_ < stash_n_)
        rte_mempool_put_bulk(hdr_pool(), reinterpret_cast<void**>(stash_ + stash_i_),
                             stash_n_ - stash_i_);
    if (stack_) stack_->attach_tcp(nullptr);
    if (table_) rte_hash_free(table_);
    rte_free(conns_);
    rte_free(ooo_mem_);
    rte_free(sq_mem_);
    rte_free(ev_);
}

bool Tcp::init(const TcpConfig& cfg, Stack* stack, int socket_id, const uint8_t secret[16],
               uint64_t now) {
    cfg_ = cfg;
    stack_ = stack;
    pool_ = stack->pool();
    pool_room_ = pool_ ? uint32_t(rte_pktmbuf_data_room_size(pool_) - RTE_PKTMBUF_HEADROOM) : 0;
    set_inline_max();
    memcpy(secret_, secret, sizeof secret_);
    hz_ = stack->config().tsc_hz;
    tick_div_ = hz_ / 1000;
    ts_div_ = hz_ / 1000;  // timestamps clock: 1 ms (RFC 7323 5.4: 1 ms .. 1 s per tick)
    if (tick_div_ == 0) return false;
    const uint16_t mtu_mss = uint16_t(stack->config().mtu - kIpv4HdrLen - kTcpHdrLen);
    cfg_.mss = std::min(cfg_.mss, mtu_mss);

    char name[RTE_HASH_NAMESIZE];
    snprintf(name, sizeof name, "sl_tcp_%p", static_cast<void*>(this));
    rte_hash_parameters hp{};
    hp.name = name;
    hp.entries = std::max<uint32_t>(cfg_.max_conns * 2, 1024);
    hp.key_len = sizeof(ConnKey);
    hp.hash_func = rte_hash_crc;
    hp.hash_func_init_val = 0;
    hp.socket_id = socket_id;
    table_ = rte_hash_create(&hp);
    if (table_) rte_hash_set_cmp_func(table_, conn_key_cmp);
    conns_ = static_cast<TcpConn*>(rte_zmalloc_socket(
        "sl_tcp_conns", sizeof(TcpConn) * cfg_.max_conns, RTE_CACHE_LINE_SIZE, socket_id));
    ooo_mem_ = static_cast<TcpOooSeg*>(rte_zmalloc_socket(
        "sl_tcp_ooo", sizeof(TcpOooSeg) * cfg_.ooo_pool, RTE_CACHE_LINE_SIZE, socket_id));
    if (cfg_.sq_blocks == 0) cfg_.sq_blocks = std::max<uint32_t>(4 * cfg_.max_conns, 1024);
    sq_mem_ = static_cast<TcpSqBlock*>(rte_malloc_socket(
        "sl_tcp_sq", sizeof(TcpSqBlock) * cfg_.sq_blocks, RTE_CACHE_LINE_SIZE, socket_id));
    ev_cap_ = 4 * cfg_.max_conns + kDataEvents;
    ev_ = static_cast<TcpEvent*>(rte_zmalloc_socket("sl_tcp_ev", sizeof(TcpEvent) * ev_cap_,
                                                    RTE_CACHE_LINE_SIZE, socket_id));
    if (!table_ || !conns_ || !ooo_mem_ || !sq_mem_ || !ev_) {
        fprintf(stderr, "tcp: out of memory for %u connections\n", cfg_.max_conns);
        return false;
    }
    for (uint32_t i = cfg_.max_conns; i-- > 0;) {
        conns_[i].flush_next = free_conns_;
        free_conns_ = &conns_[i];
    }
    for (uint32_t i = cfg_.ooo_pool; i-- > 0;) {
        ooo_mem_[i].next = ooo_free_;
        ooo_free_ = &ooo_mem_[i];
    }
    for (uint32_t i = cfg_.sq_blocks; i-- > 0;) {
        sq_mem_[i].next = sq_free_;
        sq_free_ = &sq_mem_[i];
    }
    sq_free_n_ = cfg_.sq_blocks;
    now_ = now;
    wheel_.init(now / tick_div_);
    next_port_ =
        uint16_t(kEphemeralLo + (siphash24(secret_, &now, 1) % (kEphemeralHi - kEphemeralLo)));
    stack->attach_tcp(this);
    return true;
}

int Tcp::listen(uint16_t port, uint32_t backlog) {
    if (port == 0) return -EINVAL;
    Listener* free_slot = nullptr;
    for (Listener& l : listeners_) {
        if (l.port == port) return -EADDRINUSE;
        if (!free_slot && l.port == 0) free_slot = &l;
    }
    if (!free_slot) return -ENOSPC;
    free_slot->port = port;
    free_slot->backlog = backlog ? backlog : cfg_.syn_backlog;
    free_slot->half_open = 0;
    return 0;
}

void Tcp::unlisten(uint16_t port) {
    for (Listener& l : listeners_)
        if (l.port == port) l.port = 0;
}

// A one-entry cache in front of the table: a burst is mostly segments of one connection (a
// bulk stream, its ACKs, a request and the next), and the slot's own tuple is the check: a
// slot in the table holds the only entry for its tuple. Slots are never unmapped, so a
// stale pointer is safe to read.
TcpConn* Tcp::lookup(rte_be32_t raddr, rte_be16_t rport, rte_be16_t lport) {
    TcpConn* c = last_;
    if (c && c->in_table && c->raddr == raddr && c->rport == rport && c->lport == lport) return c;
    const ConnKey k{raddr, rport, lport};
    void* data = nullptr;
    if (rte_hash_lookup_data(table_, &k, &data) < 0) return nullptr;
    last_ = static_cast<TcpConn*>(data);
    return last_;
}

TcpConn* Tcp::alloc_conn(rte_be32_t raddr, rte_be16_t rport, rte_be16_t lport) {
    // Out of slots: the oldest TIME-WAIT connection makes room if it may be reused safely.
    if (!free_conns_ && tw_head_) reuse_time_wait(tw_head_);
    TcpConn* c = free_conns_;
    if (!c) return nullptr;
    const ConnKey k{raddr, rport, lport};
    if (rte_hash_add_key_data(table_, &k, c) < 0) return nullptr;
    free_conns_ = c->flush_next;
    memset(static_cast<void*>(c), 0, sizeof *c);
    c->raddr = raddr;
    c->rport = rport;
    c->lport = lport;
    c->listener = 0xff;
    c->rcv_buf = std::min(cfg_.rcv_buf, kMaxWindow);
    c->nodelay = cfg_.nodelay;
    c->keepalive = cfg_.keepalive;
    c->rto_ms = cfg_.rto_initial_ms;
    c->rcv_mss = 536;  // RFC 9293 3.7.1's default until the peer's segments say more
    c->rtx_timer.owner = c;
    c->delack_timer.owner = c;
    c->in_table = true;
    ctr_.open_conns++;
    return c;
}

void Tcp::tw_unlink(TcpConn* c) {
    if (c->state != TcpState::time_wait) return;
    if (c->tw_prev)
        c->tw_prev->tw_next = c->tw_next;
    else
        tw_head_ = c->tw_next;
    if (c->tw_next)
        c->tw_next->tw_prev = c->tw_prev;
    else
        tw_tail_ = c->tw_prev;
    c->tw_prev = c->tw_next = nullptr;
}

void Tcp::closed_delivered(TcpConn* c) {
    c->app_done = true;
    if (c->state != TcpState::time_wait) free_conn(c);
}

void Tcp::unhash(TcpConn* c) {
    tw_unlink(c);
    if (!c->in_table) return;
    const ConnKey k{c->raddr, c->rport, c->lport};
    rte_hash_del_key(table_, &k);
    c->in_table = false;
}

void Tcp::free_conn(TcpConn* c) {
    unhash(c);
    wheel_.cancel(&c->rtx_timer);
    wheel_.cancel(&c->delack_timer);
    release_queues(c);
    if (c->in_flush) {
        // Taken off the flush list lazily: flush() skips free slots.
        c->state = TcpState::closed;
        c->freed = true;
        return;
    }
    c->state = TcpState::closed;
    c->flush_next = free_conns_;
    free_conns_ = c;
    ctr_.open_conns--;
}

void Tcp::release_queues(TcpConn* c) {
    sq_release(c);
    ooo_free(c);
}

void Tcp::set_state(TcpConn* c, TcpState s) {
    if (c->state == TcpState::time_wait && s != TcpState::time_wait) tw_unlink(c);
    if (c->state == TcpState::established) ctr_.established--;
    if (s == TcpState::established) ctr_.established++;
    c->state = s;
}

void Tcp::event(TcpEvent::Type t, TcpConn* c, rte_mbuf* m, TcpCloseReason r) {
    // Room is reserved for every connection's connected, peer_fin, writable and closed
    // events; data events are limited (input() refuses a segment when the queue is that full).
    if (n_ev_ == ev_cap_) {
        if (m) rte_pktmbuf_free(m);
        return;
    }
    ev_[n_ev_++] = TcpEvent{t, r, c, m};
}

// To CLOSED (RFC 9293 3.10.7.4 "enter the CLOSED state, delete the TCB"): timers off,
// queues freed, the tuple out of the table (a later segment gets an RST); the slot is
// released after the app heard of it.
void Tcp::finish(TcpConn* c, TcpCloseReason r) {
    if (c->listener != 0xff && c->state == TcpState::syn_received) {
        Listener& l = listeners_[c->listener];
        if (l.half_open) l.half_open--;
    }
    set_state(c, TcpState::closed);
    wheel_.cancel(&c->rtx_timer);
    wheel_.cancel(&c->delack_timer);
    release_queues(c);
    unhash(c);
    ctr_.conns_closed++;
    if (c->app_done) return free_conn(c);  // TIME_WAIT after the app was told
    if (!c->app_knows) return free_conn(c);
    if (c->closed_event) return;
    c->closed_event = true;
    c->close_reason = r;
    event(TcpEvent::closed, c, nullptr, r);
}

void Tcp::enter_time_wait(TcpConn* c, uint64_t now) {
    (void)now;
    set_state(c, TcpState::time_wait);
    c->tw_prev = tw_tail_;
    c->tw_next = nullptr;
    if (tw_tail_)
        tw_tail_->tw_next = c;
    else
        tw_head_ = c;
    tw_tail_ = c;
    wheel_.cancel(&c->delack_timer);
    release_queues(c);
    c->rtx_kind = TcpConn::rtx_time_wait;
    wheel_.arm(&c->rtx_timer, wheel_.now() + 2ull * cfg_.msl_ms);  // RFC 9293 3.4.2
    if (c->app_knows && !c->closed_event) {
        c->closed_event = true;
        c->close_reason = TcpCloseReason::normal;
        event(TcpEvent::closed, c, nullptr, TcpCloseReason::normal);
    }
}

// ---------------------------------------------------------------------------------------------
// ISNs and SYN cookies.

// RFC 6528 3: ISN = M + F(localip, localport, remoteip, remoteport, secretkey), M a 4 us clock.
uint32_t Tcp::isn(rte_be32_t raddr, rte_be16_t rport, rte_be16_t lport, uint64_t now) const {
    const uint64_t w[2] = {uint64_t(stack_->config().ip) << 32 | raddr,
                           uint64_t(rport) << 16 | lport};
    const uint64_t m = now / (hz_ / 250000 ? hz_ / 250000 : 1);
    return uint32_t(m + siphash24(secret_, w, 2));
}

// A SYN cookie (the idea of Bernstein's; the layout of this one): the ISN of a SYN-ACK sent
// without keeping state, from which the ACK that completes the handshake proves itself.
//   bits 31..8  keyed hash of the tuple, the peer's ISN and the time slot
//   bits  7..2  time slot (64 s each, modulo 64): accepted for the current and the previous
//   bits  1..0  index of the MSS in kCookieMss
uint32_t Tcp::cookie(rte_be32_t raddr, rte_be16_t rport, rte_be16_t lport, uint32_t peer_isn,
                     uint32_t count) const {
    const uint64_t w[3] = {uint64_t(stack_->config().ip) << 32 | raddr,
                           uint64_t(rport) << 16 | lport, uint64_t(peer_isn) << 8 | (count & 63)};
    return uint32_t(siphash24(secret_, w, 3)) & 0xffffff00u;
}

// ---------------------------------------------------------------------------------------------
// Input.

// RFC 9293 3.2 and RFC 7323 2, 3; RFC 2018 2, 3.
bool Tcp::parse_options(const rte_tcp_hdr* th, unsigned hlen, Opts& o) {
    o.has_mss = o.has_ws = o.has_ts = o.sack_ok = false;
    o.n_sack = 0;
    const uint8_t* p = reinterpret_cast<const uint8_t*>(th) + kTcpHdrLen;
    const uint8_t* end = reinterpret_cast<const uint8_t*>(th) + hlen;
    // The common case first: NOP NOP TS (what Linux and we send on every segment).
    if (hlen == kTcpHdrLen + 12 && p[0] == kOptNop && p[1] == kOptNop && p[2] == kOptTs &&
        p[3] == 10) {
        o.has_ts = true;
        o.tsval = load_be32(p + 4);
        o.tsecr = load_be32(p + 8);
        return true;
    }
    while (p < end) {
        const uint8_t kind = p[0];
        if (kind == kOptEnd) break;
        if (kind == kOptNop) {
            ++p;
            continue;
        }
        if (end - p < 2) return false;
        const uint8_t len = p[1];
        if (len < 2 || len > end - p) return false;
        switch (kind) {
            case kOptMss:
                if (len == 4) {
                    o.has_mss = true;
                    o.mss = uint16_t(p[2] << 8 | p[3]);
                }
                break;
            case kOptWs:
                if (len == 3) {
                    o.has_ws = true;
                    o.wscale = std::min<uint8_t>(p[2], 14);  // RFC 7323 2.3
                }
                break;
            case kOptSackPerm:
                if (len == 2) o.sack_ok = true;
                break;
            case kOptSack:
                for (unsigned i = 0; i + 8 <= unsigned(len - 2) && o.n_sack < 4; i += 8) {
                    o.sack[o.n_sack].left = load_be32(p + 2 + i);
                    o.sack[o.n_sack].right = load_be32(p + 6 + i);
                    o.n_sack++;
                }
                break;
            case kOptTs:
                if (len == 10) {
                    o.has_ts = true;
                    o.tsval = load_be32(p + 2);
                    o.tsecr = load_be32(p + 6);
                }
                break;
            default:
                break;  // unknown options are skipped (RFC 9293 3.2 MUST-6)
        }
        p += len;
    }
    return true;
}

void Tcp::input(rte_mbuf* m, rte_ipv4_hdr* ip, uint64_t now) {
    now_ = now;
    ctr_.segs_in++;
    const uint32_t l4_off = kEthHdrLen + m->l3_len;
    const uint32_t l4_len = m->pkt_len - l4_off;
    if (unlikely(l4_len < kTcpHdrLen || m->data_len < l4_off + kTcpHdrLen)) {
        ctr_.malformed++;
        rte_pktmbuf_free(m);
        return;
    }
    auto* th = rte_pktmbuf_mtod_offset(m, rte_tcp_hdr*, l4_off);
    const unsigned hlen = (th->data_off >> 4) * 4u;
    if (unlikely(hlen < kTcpHdrLen || hlen > l4_len || l4_off + hlen > m->data_len)) {
        ctr_.malformed++;
        rte_pktmbuf_free(m);
        return;
    }
    // RFC 9293 3.1: the checksum covers the pseudo-header, header and data. Trust the port's
    // verdict when it has one; verify in software otherwise.
    const uint64_t l4f = m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK;
    if (unlikely(l4f == RTE_MBUF_F_RX_L4_CKSUM_BAD)) {
        ctr_.bad_checksum++;
        rte_pktmbuf_free(m);
        return;
    }
    if (l4f == RTE_MBUF_F_RX_L4_CKSUM_UNKNOWN) {
        stack_->counters().sw_rx_cksum++;
        const bool ok = likely(m->nb_segs == 1)
                            ? l4_checksum_ok(ip, th, uint16_t(l4_len))
                            : l4_checksum_mbuf_ok(m, ip, l4_off, uint16_t(l4_len));
        if (!ok) {
            ctr_.bad_checksum++;
            rte_pktmbuf_free(m);
            return;
        }
    }
    Seg s;
    s.m = m;
    s.th = th;
    s.seq = rte_be_to_cpu_32(th->sent_seq);
    s.ack = rte_be_to_cpu_32(th->recv_ack);
    s.flags = th->tcp_flags;
    s.wnd = rte_be_to_cpu_16(th->rx_win);
    s.len = l4_len - hlen;
    s.payload_off = uint16_t(l4_off + hlen);
    s.ecn = ip->type_of_service & 3;
    if (!parse_options(th, hlen, s.o)) {
        ctr_.malformed++;
        rte_pktmbuf_free(m);
        return;
    }
    // Data events are bounded (the app hears of them once per burst): past the bound a
    // segment is dropped unacknowledged, and the peer sends it again.
    if (unlikely(n_ev_ >= kDataEvents)) {
        ctr_.event_queue_full++;
        rte_pktmbuf_free(m);
        return;
    }
    const rte_be32_t src = ip->src_addr;
    TcpConn* c = lookup(src, th->src_port, th->dst_port);
    if (c) {
        if (c->state == TcpState::syn_sent)
            input_syn_sent(c, s, now);
        else
            input_conn(c, s, now);
        return;
    }
    const uint16_t dport = rte_be_to_cpu_16(th->dst_port);
    for (unsigned i = 0; i < kMaxListeners; ++i) {
        if (listeners_[i].port == dport) return input_listen(s, src, now, i);
    }
    // RFC 9293 3.10.7.1: no connection and no listener — the CLOSED state.
    if (!(s.flags & kRst)) send_rst_for(s, src, now);
    rte_pktmbuf_free(m);
}

// RFC 9293 3.10.7.1: a reset for a segment that belongs to no connection.
void Tcp::send_rst_for(const Seg& s, rte_be32_t src, uint64_t now) {
    uint32_t seq = 0, ack = 0;
    uint8_t flags = kRst;
    if (s.flags & kAck) {
        seq = s.ack;  // <SEQ=SEG.ACK><CTL=RST>
    } else {
        // <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>
        ack = s.seq + s.len + ((s.flags & kSyn) ? 1 : 0) + ((s.flags & kFin) ? 1 : 0);
        flags |= kAck;
    }
    send_raw(src, s.th->src_port, s.th->dst_port, seq, ack, flags, 0, nullptr, 0, now);
    ctr_.rst_out++;
}

// A segment built without a connection (RST, SYN cookie SYN-ACK): headers only.
void Tcp::send_raw(rte_be32_t dst, rte_be16_t dport, rte_be16_t sport, uint32_t seq, uint32_t ack,
                   uint8_t flags, uint16_t wnd, const uint8_t* opts, uint16_t opt_len,
                   uint64_t now) {
    rte_mbuf* m = rte_pktmbuf_alloc(hdr_pool());
    if (!m) {
        ctr_.no_mbuf++;
        return;
    }
    const uint16_t hlen = uint16_t(kTcpHdrLen + opt_len);
    char* p = rte_pktmbuf_append(m, uint16_t(kHdrs + hlen));
    auto* ip = reinterpret_cast<rte_ipv4_hdr*>(p + kEthHdrLen);
    auto* th = reinterpret_cast<rte_tcp_hdr*>(ip + 1);
    fill_ip(m, ip, dst, hlen, false);
    th->src_port = sport;
    th->dst_port = dport;
    th->sent_seq = rte_cpu_to_be_32(seq);
    th->recv_ack = rte_cpu_to_be_32(ack);
    th->data_off = uint8_t((hlen / 4) << 4);
    th->tcp_flags = flags;
    th->rx_win = rte_cpu_to_be_16(wnd);
    th->tcp_urp = 0;
    if (opt_len) memcpy(th + 1, opts, opt_len);
    th->cksum = rte_ipv4_phdr_cksum(ip, m->ol_flags);
    ctr_.segs_out++;
    stack_->send_ipv4(m, now);
}

void Tcp::fill_ip(rte_mbuf* m, rte_ipv4_hdr* ip, rte_be32_t dst, uint16_t l4_len, bool ect) {
    const uint8_t tos = ect ? 0x02 : 0;  // ECT(0), RFC 3168 5
    const rte_be16_t total = rte_cpu_to_be_16(uint16_t(kIpv4HdrLen + l4_len));
    const rte_be16_t id = rte_cpu_to_be_16(ip_id_++);
    const rte_be16_t frag = RTE_BE16(RTE_IPV4_HDR_DF_FLAG);  // RFC 1191: path MTU discovery
    const uint8_t ttl = stack_->config().ttl;
    const rte_be32_t src = stack_->config().ip;
    ip->version_ihl = RTE_IPV4_VHL_DEF;
    ip->type_of_service = tos;
    ip->total_length = total;
    ip->packet_id = id;
    ip->fragment_offset = frag;
    ip->time_to_live = ttl;
    ip->next_proto_id = IPPROTO_TCP;
    ip->src_addr = src;
    ip->dst_addr = dst;
    // The header checksum from the values in registers (a few cycles; IP checksum offload
    // saves nothing worth a store-forwarding stall in pmd/'s software fallback). The TCP
    // checksum goes the offload way: the port's, or pmd/'s batched software one.
    ip->hdr_checksum =
        ipv4_header_checksum_of(RTE_IPV4_VHL_DEF, tos, total, id, frag, ttl, IPPROTO_TCP, src, dst);
    m->l2_len = kEthHdrLen;
    m->l3_len = kIpv4HdrLen;
    m->ol_flags = RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_TCP_CKSUM;
}

// RFC 9293 3.10.7.2: LISTEN.
void Tcp::input_listen(Seg& s, rte_be32_t src, uint64_t now, unsigned li) {
    Listener& l = listeners_[li];
    rte_mbuf* m = s.m;
    if (s.flags & kRst) {
        rte_pktmbuf_free(m);
        return;
    }
    if (s.flags & kAck) {
        // Either the ACK completing a SYN-cookie handshake, or garbage: <SEQ=SEG.ACK><CTL=RST>.
        if (!(s.flags & kSyn) && cfg_.syn_cookies) {
            const uint32_t isn = s.ack - 1;
            const uint32_t cnt = uint32_t(now / hz_ / 64);
            const uint32_t c_in = (isn >> 2) & 63;
            if (((cnt - c_in) & 63) <= 1 &&
                (isn & 0xffffff00u) ==
                    cookie(src, s.th->src_port, s.th->dst_port, s.seq - 1, c_in)) {
                TcpConn* c = alloc_conn(src, s.th->src_port, s.th->dst_port);
                if (!c) {
                    ctr_.syn_dropped++;
                    rte_pktmbuf_free(m);
                    return;
                }
                ctr_.syn_cookies_ok++;
                ctr_.passive_opens++;
                c->syn_cookie = true;
                c->listener = uint8_t(li);
                c->iss = isn;
                c->irs = s.seq - 1;
                c->rcv_nxt = s.seq;
                c->snd_una = c->snd_nxt = c->snd_max = s.ack;
                c->rcv_adv = c->rcv_nxt + std::min<uint32_t>(c->rcv_buf, 65535);
                uint32_t mss = kCookieMss[isn & 3];
                // Options the cookie's timestamp carried (low 6 bits of our TSval, now echoed):
                // window scale 0..14 (15 = none) and SACK permitted.
                if (s.o.has_ts && cfg_.timestamps) {
                    c->ts_ok = true;
                    c->ts_recent = s.o.tsval;
                    c->ts_recent_age = wheel_.now();
                    const uint32_t ws = s.o.tsecr & 15;
                    if (ws != 15) {
                        c->ws_ok = true;
                        c->snd_wscale = uint8_t(ws);
                        c->rcv_wscale = rcv_wscale();
                    }
                    c->sack_ok = (s.o.tsecr >> 4) & 1;
                }
                setup_mss(c, uint16_t(mss));
                c->snd_wnd = s.wnd << c->snd_wscale;
                c->max_snd_wnd = c->snd_wnd;
                c->snd_wl1 = s.seq;
                c->snd_wl2 = s.ack;
                c->cc.init(cfg_.cc, c->snd_mss);
                set_state(c, TcpState::established);
                c->app_knows = true;
                c->last_rx = now;
                event(TcpEvent::connected, c);
                // The ACK may carry data: process it as in ESTABLISHED.
                input_conn(c, s, now);
                return;
            }
            ctr_.syn_cookies_bad++;
        }
        send_rst_for(s, src, now);
        rte_pktmbuf_free(m);
        return;
    }
    if (!(s.flags & kSyn)) {
        rte_pktmbuf_free(m);
        return;
    }
    // A SYN. Past the backlog of half-open connections: a SYN cookie, no state (so a SYN
    // flood cannot take slots from established connections).
    if (l.half_open >= l.backlog || !free_conns_) {
        if (!cfg_.syn_cookies) {
            ctr_.syn_dropped++;
            rte_pktmbuf_free(m);
            return;
        }
        const uint16_t peer_mss = s.o.has_mss ? s.o.mss : kDefaultMss;
        uint32_t mi = 0;
        for (uint32_t i = 0; i < 4; ++i)
            if (kCookieMss[i] <= std::min<uint16_t>(peer_mss, cfg_.mss)) mi = i;
        const uint32_t cnt = uint32_t(now / hz_ / 64) & 63;
        const uint32_t isn =
            cookie(src, s.th->src_port, s.th->dst_port, s.seq, cnt) | cnt << 2 | mi;
        uint8_t opts[40];
        bool ts = false, ws = false, sack = false;
        uint32_t tv = 0;
        if (s.o.has_ts && cfg_.timestamps) {
            ts = true;
            ws = s.o.has_ws && cfg_.window_scale;
            sack = s.o.sack_ok && cfg_.sack;
            tv = (tsval(now) & ~63u) | (ws ? s.o.wscale : 15) | (sack ? 16 : 0);
            // Never ahead of our clock: later segments' TSvals must not look older to the
            // peer's PAWS (RFC 7323 5.3).
            if (seq_gt(tv, tsval(now))) tv -= 64;
        }
        const unsigned n =
            syn_options(opts, kCookieMss[mi], sack, ts, tv, s.o.tsval, ws ? rcv_wscale() : -1);
        send_raw(src, s.th->src_port, s.th->dst_port, isn, s.seq + 1, kSyn | kAck,
                 uint16_t(std::min<uint32_t>(cfg_.rcv_buf, 65535)), opts, uint16_t(n), now);
        ctr_.syn_cookies_sent++;
        rte_pktmbuf_free(m);
        return;
    }
    TcpConn* c = alloc_conn(src, s.th->src_port, s.th->dst_port);
    if (!c) {
        ctr_.syn_dropped++;
        rte_pktmbuf_free(m);
        return;
    }
    l.half_open++;
    c->listener = uint8_t(li);
    c->irs = s.seq;
    c->rcv_nxt = s.seq + 1;
    c->iss = isn(src, s.th->src_port, s.th->dst_port, now);
    c->snd_una = c->snd_nxt = c->snd_max = c->iss;
    negotiate(c, s);
    c->snd_wnd = s.wnd;  // RFC 7323 2.2: the window of a SYN is never scaled
    c->max_snd_wnd = c->snd_wnd;
    c->snd_wl1 = s.seq;
    c->snd_wl2 = c->iss;
    // RFC 3168 6.1.1: an ECN-setup SYN has ECE and CWR set.
    c->ecn_ok = (s.flags & (kEce | kCwr)) == (kEce | kCwr);
    set_state(c, TcpState::syn_received);
    c->last_rx = now;
    send_syn(c, now);
    rte_pktmbuf_free(m);
}

// Options of a SYN (RFC 7323 1.3: window scale and timestamps only if both sides sent them;
// RFC 2018 2: SACK likewise; RFC 9293 3.7.1: MSS 536 when absent).
void Tcp::negotiate(TcpConn* c, const Seg& s) {
    c->ws_ok = cfg_.window_scale && s.o.has_ws;
    if (c->ws_ok) {
        c->snd_wscale = s.o.wscale;
        c->rcv_wscale = rcv_wscale();
    }
    c->ts_ok = cfg_.timestamps && s.o.has_ts;
    if (c->ts_ok) {
        c->ts_recent = s.o.tsval;
        c->ts_recent_age = wheel_.now();
    }
    c->sack_ok = cfg_.sack && s.o.sack_ok;
    setup_mss(c, s.o.has_mss ? s.o.mss : kDefaultMss);
    c->cc.init(cfg_.cc, c->snd_mss);
}

// RFC 6691: the MSS counts neither IP nor TCP options; the payload of a segment is the MSS
// less the options we put in every segment (timestamps: 12 bytes).
void Tcp::setup_mss(TcpConn* c, uint16_t peer_mss) {
    uint32_t mss = std::min<uint32_t>(peer_mss, cfg_.mss);
    if (c->ts_ok) mss -= 12;
    c->snd_mss = std::max<uint32_t>(mss, 64);
}

uint8_t Tcp::rcv_wscale() const {
    // RFC 7323 2.3: the smallest shift that lets the 16-bit field express the buffer.
    uint8_t ws = 0;
    while (ws < 14 && (std::min(cfg_.rcv_buf, kMaxWindow) >> ws) > 65535) ++ws;
    return ws;
}

// RFC 9293 3.10.7.3: SYN-SENT.
void Tcp::input_syn_sent(TcpConn* c, Seg& s, uint64_t now) {
    rte_mbuf* m = s.m;
    const bool ack_ok = (s.flags & kAck) && seq_gt(s.ack, c->iss) && seq_leq(s.ack, c->snd_max);
    if ((s.flags & kAck) && !ack_ok) {
        if (!(s.flags & kRst)) send_rst_for(s, c->raddr, now);
        rte_pktmbuf_free(m);
        return;
    }
    if (s.flags & kRst) {
        rte_pktmbuf_free(m);
        if (ack_ok) {
            ctr_.rst_in++;
            finish(c, TcpCloseReason::refused);  // "error: connection reset"; ECONNREFUSED
        }
        return;
    }
    if (!(s.flags & kSyn)) {
        rte_pktmbuf_free(m);
        return;
    }
    c->irs = s.seq;
    c->rcv_nxt = s.seq + 1;
    // The window our SYN offered, now that it has a left edge: the SYN went out with RCV.NXT
    // 0, and an RCV.ADV left relative to 0 reads, half the time, as a window of up to 2 GB
    // (rcv_window() then offers the most the field can say, whatever the buffer).
    c->rcv_adv = c->rcv_nxt + std::min<uint32_t>(c->rcv_buf, 65535);
    negotiate(c, s);
    // RFC 3168 6.1.1: the SYN-ACK to an ECN-setup SYN has ECE set and CWR clear.
    c->ecn_ok = c->ecn_ok && (s.flags & (kEce | kCwr)) == kEce;
    c->last_rx = now;
    if (ack_ok) {
        c->snd_una = s.ack;
        c->snd_wnd = s.wnd;  // unscaled in a SYN (RFC 7323 2.2)
        c->max_snd_wnd = c->snd_wnd;
        c->snd_wl1 = s.seq;
        c->snd_wl2 = s.ack;
        if (c->rtt_timing && seq_gt(s.ack, c->rtt_seq) && c->retries == 0) {
            rtt_sample(c, uint32_t((now - c->rtt_start) * 1000000 / hz_));
        }
        c->rtt_timing = false;
        c->retries = 0;
        c->backoff = 0;
        wheel_.cancel(&c->rtx_timer);
        c->rtx_kind = TcpConn::rtx_none;
        set_state(c, TcpState::established);
        if (c->keepalive) arm_idle(c);  // RFC 1122 4.2.3.6
        event(TcpEvent::connected, c);
        c->ack_now = true;
        // Data on the SYN-ACK (allowed, rare): deliver it.
        if (s.len) {
            s.seq += 1;
            process_data(c, s, now);
            want_flush(c);
            return;
        }
        rte_pktmbuf_free(m);
        want_flush(c);
        return;
    }
    // Simultaneous open (RFC 9293 3.5, figure 8): SYN-RECEIVED, SYN-ACK with our ISS.
    c->snd_wnd = s.wnd;
    c->snd_wl1 = s.seq;
    set_state(c, TcpState::syn_received);
    c->snd_nxt = c->iss;
    send_syn(c, now);
    rte_pktmbuf_free(m);
}

// RFC 9293 3.10.7.4: SYN-RECEIVED and the synchronized states.
void Tcp::input_conn(TcpConn* c, Seg& s, uint64_t now) {
    rte_mbuf* m = s.m;
    c->st.segs_in++;
    const TcpState st = c->state;

    // TIME_WAIT and a new SYN: reopen if the SYN is provably new (RFC 9293 3.6.1; RFC 6191:
    // its timestamp is newer, or without timestamps its sequence number is above RCV.NXT).
    if (st == TcpState::time_wait && (s.flags & (kSyn | kAck | kRst)) == kSyn) {
        const bool newer =
            (c->ts_ok && s.o.has_ts) ? seq_gt(s.o.tsval, c->ts_recent) : seq_gt(s.seq, c->rcv_nxt);
        if (newer) {
            const rte_be32_t src = c->raddr;
            const uint16_t dport = rte_be_to_cpu_16(c->lport);
            if (c->app_done || !c->app_knows) {
                free_conn(c);
            } else {
                unhash(c);  // the closed event is still queued: the slot goes after it
                c->state = TcpState::closed;
            }
            ctr_.time_wait_reused++;
            for (unsigned i = 0; i < kMaxListeners; ++i)
                if (listeners_[i].port == dport) return input_listen(s, src, now, i);
            send_rst_for(s, src, now);
            rte_pktmbuf_free(m);
            return;
        }
    }
    // SYN-RECEIVED and a retransmitted SYN: the SYN-ACK was lost; send it again.
    if (st == TcpState::syn_received && (s.flags & (kSyn | kAck)) == kSyn && s.seq == c->irs) {
        c->snd_nxt = c->iss;
        send_syn(c, now);
        rte_pktmbuf_free(m);
        return;
    }
    // Simultaneous open (RFC 9293 3.5 figure 8, line 6): in SYN-RECEIVED the peer's SYN-ACK
    // repeats its SYN (SEQ = IRS, already received) and acknowledges ours. The SYN is old; the
    // ACK completes the handshake: process the segment as that ACK (as Linux does), not as an
    // unacceptable segment (which would leave us in SYN-RECEIVED until a retransmission).
    if (st == TcpState::syn_received && c->listener == 0xff &&
        (s.flags & (kSyn | kAck | kRst)) == (kSyn | kAck) && s.seq == c->irs &&
        s.ack == c->iss + 1) {
        s.flags = uint8_t(s.flags & ~kSyn);
        s.seq += 1;
    }

    // RFC 7323 5.3 R1: PAWS. A segment whose timestamp is older than TS.Recent is a duplicate
    // from an old incarnation or a wrapped sequence space; unless it is an RST, ACK it.
    // One tick of slack, as Linux (TCP_PAWS_WINDOW): a segment reordered behind one sent a
    // millisecond later is not an old duplicate.
    if (c->ts_ok && s.o.has_ts && !(s.flags & kRst) && seq_lt(s.o.tsval + 1, c->ts_recent)) {
        // RFC 7323 5.5: TS.Recent older than 24 days is invalid.
        if (wheel_.now() - c->ts_recent_age < 24ull * 86400 * 1000) {
            ctr_.paws_drops++;
            c->ack_now = true;
            want_flush(c);
            rte_pktmbuf_free(m);
            return;
        }
        c->ts_recent = s.o.tsval;
    }

    // RFC 9293 3.10.7.4, first: is the segment acceptable?
    const uint32_t rwnd = c->rcv_adv - c->rcv_nxt;
    uint32_t slen = s.len + ((s.flags & kSyn) ? 1 : 0) + ((s.flags & kFin) ? 1 : 0);
    bool acceptable;
    if (slen == 0) {
        // RCV.NXT =< SEG.SEQ =< RCV.NXT + RCV.WND: the right edge included, as Linux
        // (tcp_sequence) and the BSDs do. A peer that has filled our window up to its right
        // edge numbers its pure ACKs SND.NXT, which is that edge while a hole keeps RCV.NXT
        // back: RFC 9293's "< RCV.NXT + RCV.WND" drops them unread, window updates included
        // (and its zero-window probes, SND.UNA - 1, are unacceptable too: a deadlock).
        acceptable = seq_in(s.seq, c->rcv_nxt, c->rcv_nxt + rwnd + 1);
    } else {
        acceptable = rwnd != 0 && (seq_in(s.seq, c->rcv_nxt, c->rcv_nxt + rwnd) ||
                                   seq_in(s.seq + slen - 1, c->rcv_nxt, c->rcv_nxt + rwnd));
    }
    // A zero window still takes ACKs, URGs and RSTs (RFC 9293 3.10.7.4): and a segment just
    // at RCV.NXT is processed for its control bits, its data trimmed off below.
    if (!acceptable && rwnd == 0 && s.seq == c->rcv_nxt) acceptable = true;
    if (!acceptable) {
        if (!(s.flags & kRst)) {
            ctr_.out_of_window++;
            if (s.len && seq_lt(s.seq, c->rcv_nxt)) {
                ctr_.dup_segs++;
                note_duplicate(c, s.seq, seq_min(s.seq + s.len, c->rcv_nxt));
            }
            c->ack_now = true;  // <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>
            want_flush(c);
            // RFC 9293 3.10.7.4 (TIME-WAIT): a retransmission of the remote FIN (it lies
            // just below RCV.NXT, so it fails the test above) is acknowledged and the 2 MSL
            // timeout restarted.
            if (st == TcpState::time_wait && (s.flags & kFin) &&
                c->rtx_kind == TcpConn::rtx_time_wait)
                wheel_.arm(&c->rtx_timer, wheel_.now() + 2ull * cfg_.msl_ms);
        }
        rte_pktmbuf_free(m);
        return;
    }

    // Second: RST (RFC 5961 3.2). Exactly RCV.NXT: reset; in the window: challenge ACK.
    if (s.flags & kRst) {
        rte_pktmbuf_free(m);
        if (s.seq != c->rcv_nxt) {
            challenge_ack(c);
            return;
        }
        ctr_.rst_in++;
        if (st == TcpState::syn_received && c->listener != 0xff) {
            finish(c, TcpCloseReason::reset);  // passive open: back to LISTEN, silently
        } else if (st == TcpState::syn_received) {
            finish(c, TcpCloseReason::refused);
        } else if (st == TcpState::closing || st == TcpState::last_ack ||
                   st == TcpState::time_wait) {
            finish(c, TcpCloseReason::normal);
        } else {
            finish(c, TcpCloseReason::reset);
        }
        return;
    }

    // Fourth: SYN in a synchronized state (RFC 5961 4.2): challenge ACK, drop.
    if (s.flags & kSyn) {
        rte_pktmbuf_free(m);
        challenge_ack(c);
        return;
    }

    // Fifth: no ACK, drop.
    if (!(s.flags & kAck)) {
        rte_pktmbuf_free(m);
        return;
    }

    // RFC 7323 4.3 (2): remember the timestamp of a segment that covers the last ACK we sent.
    if (c->ts_ok && s.o.has_ts && seq_leq(s.seq, c->last_ack_sent) &&
        seq_geq(s.o.tsval, c->ts_recent)) {
        c->ts_recent = s.o.tsval;
        c->ts_recent_age = wheel_.now();
    }
    c->last_rx = now;
    if (c->keepalive && c->rtx_kind == TcpConn::rtx_keepalive) c->retries = 0;

    if (st == TcpState::syn_received) {
        // RFC 9293 3.10.7.4: SND.UNA < SEG.ACK =< SND.NXT → ESTABLISHED.
        if (!(seq_gt(s.ack, c->snd_una) && seq_leq(s.ack, c->snd_max))) {
            send_rst_for(s, c->raddr, now);
            rte_pktmbuf_free(m);
            return;
        }
        if (c->listener != 0xff) {
            Listener& l = listeners_[c->listener];
            if (l.half_open) l.half_open--;
            ctr_.passive_opens++;
        }
        set_state(c, TcpState::established);
        c->snd_wnd = s.wnd << c->snd_wscale;
        c->max_snd_wnd = std::max(c->max_snd_wnd, c->snd_wnd);
        c->snd_wl1 = s.seq;
        c->snd_wl2 = s.ack;
        c->app_knows = true;
        event(TcpEvent::connected, c);
        if (c->fin_queued) {
            set_state(c, TcpState::fin_wait_1);
        }
    }

    if (!process_ack(c, s, now)) {
        rte_pktmbuf_free(m);
        return;
    }
    if (c->state == TcpState::closed) {  // our FIN in LAST-ACK acknowledged
        rte_pktmbuf_free(m);
        return;
    }

    // RFC 3168 6.1.3: CE on a data segment → ECE on our ACKs until CWR.
    if (c->ecn_ok) {
        if (s.ecn == 3) {
            ctr_.ecn_ce++;
            c->ecn_ece = true;
            c->ack_now = true;
        }
        if (s.flags & kCwr) c->ecn_ece = false;
    }

    // Seventh: segment text. Eighth: FIN.
    const TcpState st2 = c->state;
    if (s.len || (s.flags & kFin)) {
        if (st2 == TcpState::established || st2 == TcpState::fin_wait_1 ||
            st2 == TcpState::fin_wait_2) {
            process_data(c, s, now);  // consumes m
        } else {
            // CLOSE-WAIT, CLOSING, LAST-ACK, TIME-WAIT: the peer already sent its FIN;
            // retransmitted FINs are acknowledged (TIME-WAIT restarts its 2 MSL timer).
            if ((s.flags & kFin) && st2 == TcpState::time_wait)
                wheel_.arm(&c->rtx_timer, wheel_.now() + 2ull * cfg_.msl_ms);
            c->ack_now = true;
            want_flush(c);
            rte_pktmbuf_free(m);
        }
    } else {
        rte_pktmbuf_free(m);
    }
    if (c->sq_bytes || c->fin_queued || c->ack_now) want_flush(c);
}

void Tcp::challenge_ack(TcpConn* c) {
    // RFC 5961 3.2, 4.2, 5.2: <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>.
    ctr_.challenge_acks++;
    c->ack_now = true;
    want_flush(c);
}

// Fifth step of RFC 9293 3.10.7.4: the ACK field. Returns false when the segment is to be
// dropped.
bool Tcp::process_ack(TcpConn* c, Seg& s, uint64_t now) {
    // RFC 5961 5.2: acceptable ACKs are in [SND.UNA - MAX.SND.WND, SND.MAX].
    if (seq_gt(s.ack, c->snd_max)) {
        challenge_ack(c);
        return false;
    }
    if (seq_lt(s.ack, c->snd_una - c->max_snd_wnd)) {
        challenge_ack(c);
        return false;
    }
    const uint32_t wnd = s.wnd << c->snd_wscale;
    const uint32_t flight = c->snd_max - c->snd_una;
    const uint32_t sacked_before = c->sacked_bytes;
    if (c->tlp_out && s.o.n_sack) {
        // RFC 2883 4: a first block below the cumulative ACK, or inside the second, reports
        // a duplicate. One over the probe means the probe was not needed (RFC 8985 7.4.1).
        const TcpSackBlock& d = s.o.sack[0];
        const bool dsack =
            seq_leq(d.right, s.ack) || (s.o.n_sack > 1 && seq_geq(d.left, s.o.sack[1].left) &&
                                        seq_leq(d.right, s.o.sack[1].right));
        if (dsack && seq_lt(d.left, c->tlp_end) && seq_gt(d.right, c->tlp_seq)) c->tlp_dsack = true;
    }
    if (c->sack_ok && s.o.n_sack) sack_update(c, s);
    // A duplicate ACK. RFC 5681 2: no data, same ACK, same window. With SACK, RFC 6675 2:
    // any ACK whose SACK blocks cover octets not SACKed before, "even if it carries new data,
    // changes the advertised window, or moves the cumulative acknowledgment point". A peer
    // that sends data too (an echo, a request/response) acknowledges on its data segments:
    // under RFC 5681's definition alone none of its ACKs counts, and every loss waits for the
    // retransmission timer. (A zero window refusing a probe is not a sign of loss.)
    const bool new_sack = c->sack_ok && c->sacked_bytes > sacked_before;
    const bool dup_ack = c->snd_max != c->snd_una && wnd != 0 && !(s.flags & (kSyn | kFin)) &&
                         (new_sack || (s.ack == c->snd_una && s.len == 0 && wnd == c->snd_wnd));

    const bool advanced = seq_gt(s.ack, c->snd_una);
    if (advanced) {
        uint32_t acked = s.ack - c->snd_una;
        // The FIN takes a sequence number but no byte of the queue.
        const bool fin_acked = c->fin_sent && s.ack == c->fin_seq + 1;
        // RFC 6298 5.3 and Karn: a sample from the timed segment, unless retransmitted.
        if (c->rtt_timing && seq_gt(s.ack, c->rtt_seq)) {
            rtt_sample(c, uint32_t((now - c->rtt_start) * 1000000 / hz_));
            c->rtt_timing = false;
        }
        c->retries = 0;
        c->backoff = 0;
        if (c->rto_ms == 0) c->rto_ms = cfg_.rto_initial_ms;
        uint32_t data_acked = std::min(acked - (fin_acked ? 1u : 0u), c->sq_bytes);
        sq_acked(c, data_acked);
        c->st.bytes_sent += data_acked;
        c->snd_una = s.ack;
        if (seq_lt(c->snd_nxt, c->snd_una)) c->snd_nxt = c->snd_una;
        // Scoreboard entries now below SND.UNA go.
        if (c->n_sacked) sack_trim(c);
        c->dupacks = 0;
        if (c->rto_recovery && seq_geq(s.ack, c->recover)) c->rto_recovery = false;

        if (c->in_recovery) {
            if (seq_geq(s.ack, c->recover)) {
                // Full acknowledgment: leave recovery (RFC 6582 3.2 step 3, option 1;
                // RFC 6675 5 step (C) ... "exit").
                c->in_recovery = false;
                c->cc.cwnd = std::min(c->cc.ssthresh,
                                      std::max(c->snd_max - c->snd_una, c->snd_mss) + c->snd_mss);
                c->high_rxt = c->snd_una;
                c->n_rtx_recs = 0;
            } else if (!c->sack_ok) {
                // Partial acknowledgment (RFC 6582 3.2 step 4): retransmit the next hole,
                // deflate the window by what was acknowledged, add back one SMSS.
                retransmit_head(c, now);
                c->cc.cwnd = c->cc.cwnd > acked ? c->cc.cwnd - acked : 0;
                if (acked >= c->snd_mss) c->cc.cwnd += c->snd_mss;
                c->cc.cwnd = std::max(c->cc.cwnd, c->snd_mss);
                arm_rto(c, true);
            }
        } else {
            c->cc.on_ack(acked, now * 1000000 / hz_, c->srtt_us);
        }
        // ECN (RFC 3168 6.1.2): ECE on a new ACK → reduce once per window, set CWR.
        if (c->ecn_ok && (s.flags & kEce) && !c->in_recovery && seq_geq(s.ack, c->ecn_recover)) {
            c->cc.on_congestion(flight);
            c->ecn_cwr = true;
            c->ecn_recover = c->snd_max;
        }
        // RFC 6298 5.2/5.3: all acknowledged → stop the timer; otherwise restart it.
        if (c->snd_una == c->snd_max) {
            wheel_.cancel(&c->rtx_timer);
            c->rtx_kind = TcpConn::rtx_none;
            // RFC 1122 4.2.3.6: idle from now (also what arms it once the handshake is done).
            if (c->keepalive && c->state == TcpState::established) arm_idle(c);
        } else {
            arm_rto(c, true);
        }
        // Writable again below half the send buffer.
        if (c->want_writable && c->sq_bytes <= cfg_.snd_buf / 2 && !c->writable_event) {
            c->writable_event = true;
            event(TcpEvent::writable, c);
        }
        if (fin_acked) {
            switch (c->state) {
                case TcpState::fin_wait_1:
                    set_state(c, TcpState::fin_wait_2);
                    if (c->app_closed) {
                        // An orphaned FIN-WAIT-2 does not wait forever for the peer's FIN.
                        c->rtx_kind = TcpConn::rtx_fin_wait_2;
                        wheel_.arm(&c->rtx_timer, wheel_.now() + 2ull * cfg_.msl_ms);
                    }
                    break;
                case TcpState::closing:
                    enter_time_wait(c, now);
                    break;
                case TcpState::last_ack:
                    finish(c, TcpCloseReason::normal);
                    return true;
                default:
                    break;
            }
        }
    }
    // RFC 8985 7.4: the end of a loss probe's episode (as Linux's tcp_process_tlp_ack). A
    // probe of new data, or a retransmitted one the peer D-SACKed (it arrived twice), repaired
    // nothing. A retransmitted probe is known to have repaired a loss only once an ACK goes
    // beyond TLP.end_seq with no D-SACK before it (7.4.2): an ACK of exactly TLP.end_seq may
    // be the original's, delayed (the probe's D-SACK then follows), or the probe's. A pure
    // duplicate ACK of TLP.end_seq is the probe's from a peer without D-SACK: no loss either.
    // A loss repaired is answered as fast recovery would be.
    if (c->tlp_out && seq_geq(s.ack, c->tlp_end)) {
        if (!c->tlp_retrans || c->tlp_dsack) {
            c->tlp_out = false;
        } else if (seq_gt(s.ack, c->tlp_end)) {
            c->tlp_out = false;
            if (!c->in_recovery) {
                ctr_.tlp_repairs++;
                c->cc.on_congestion(flight);
            }
        } else if (s.ack == c->snd_una && !advanced && s.len == 0 && !new_sack) {
            c->tlp_out = false;
        }
    }
    // RFC 6675 5: a duplicate ACK counts "regardless of its status as a cumulative
    // acknowledgment" (a cumulative one has just reset DupAcks to zero); outside recovery,
    // DupThresh of them, or IsLost(HighACK + 1) (more than (DupThresh - 1) * SMSS SACKed
    // above SND.UNA), starts fast retransmit.
    if (dup_ack && c->snd_max != c->snd_una) {
        c->dupacks++;
        if (!c->in_recovery) {
            const bool sack_loss = c->sack_ok && c->sacked_bytes > (kDupThresh - 1) * c->snd_mss;
            // RFC 6582 3.2 step 1: not again for losses of the same window. `recover` holds
            // SND.MAX, one above "the highest sequence number transmitted": an ACK that
            // reaches it "covers more than recover".
            const bool new_window = seq_geq(s.ack, c->recover) || !c->recover_set;
            const bool early = !sack_loss && c->dupacks < kDupThresh && early_retransmit(c);
            // RFC 8985 6.2 for the loss probe: it was sent after everything outstanding, at
            // least PTO (2 SRTT) later, beyond any reordering window (at most SRTT). SACKed
            // while data below it is not, that data is lost.
            const bool probe_shows_loss = c->tlp_out && c->sack_ok && !sack_loss &&
                                          seq_lt(c->snd_una, c->tlp_seq) &&
                                          sack_covers(c, c->tlp_seq, c->tlp_end);
            if ((c->dupacks >= kDupThresh || sack_loss || early || probe_shows_loss) &&
                new_window) {
                if (early) ctr_.early_retransmits++;
                if (probe_shows_loss) ctr_.tlp_losses++;
                enter_recovery(c, now);
            } else if (sack_loss && c->rto_recovery) {
                // RFC 6675 5.1: after a timeout no new recovery phase starts below
                // RecoveryPoint, but "the TCP sender SHOULD use the SACK information to
                // determine which data should be retransmitted": a segment of the resent
                // window lost again goes as soon as the SACKs above it say so, without
                // another cut of the window (the timeout made it) and without waiting for
                // another timeout, backed off.
                enter_recovery(c, now, false);
            }
        } else if (!c->sack_ok) {
            c->cc.cwnd += c->snd_mss;  // RFC 5681 3.2 step 4: inflate
        }
    }

    if (c->n_rtx_recs) rtx_detect_lost(c);

    // Window update (RFC 9293 3.10.7.4: SND.WL1 < SEG.SEQ, or equal and SND.WL2 =< SEG.ACK).
    if (seq_lt(c->snd_wl1, s.seq) || (c->snd_wl1 == s.seq && seq_leq(c->snd_wl2, s.ack))) {
        const bool opened = c->snd_wnd == 0 && wnd != 0;
        c->snd_wnd = wnd;
        c->snd_wl1 = s.seq;
        c->snd_wl2 = s.ack;
        c->max_snd_wnd = std::max(c->max_snd_wnd, wnd);
        if (opened && c->rtx_kind == TcpConn::rtx_persist) {
            wheel_.cancel(&c->rtx_timer);
            c->rtx_kind = TcpConn::rtx_none;
            c->backoff = 0;
            // A refused probe byte goes again with what follows it (else Nagle would hold
            // the rest behind it until the RTO).
            c->snd_nxt = c->snd_una;
        }
    }
    return true;
}

void Tcp::enter_recovery(TcpConn* c, uint64_t now, bool reduce) {
    // RFC 5681 3.2 steps 2-3 / RFC 6675 5 steps (1)-(3) / RFC 6582 3.2 step 2.
    const uint32_t flight = c->snd_max - c->snd_una;
    if (reduce) c->cc.on_congestion(flight);
    c->recover = c->snd_max;
    c->recover_set = true;
    c->in_recovery = true;
    c->high_rxt = c->snd_una;
    c->n_rtx_recs = 0;
    c->tlp_out = false;  // RFC 8985 7.4: recovery takes over from the probe
    ctr_.fast_retransmits++;
    c->st.fast_retransmits++;
    if (!c->sack_ok && reduce) {
        c->cc.cwnd = c->cc.ssthresh + kDupThresh * c->snd_mss;
    }
    c->rtt_timing = false;
    retransmit_head(c, now);
    arm_rto(c, true);
}

// RFC 5827 (early retransmit): fewer than four segments outstanding and nothing new that
// could go (none queued, or the peer's window is full), so DupThresh duplicates can never
// come: ER_thresh = outstanding segments - 1 (3.1). With SACK (3.2), counted in bytes: all
// but one segment's worth above SND.UNA is SACKed. Without, duplicate ACKs.
bool Tcp::early_retransmit(const TcpConn* c) const {
    const uint32_t flight = c->snd_max - c->snd_una;
    if (flight >= kDupThresh * c->snd_mss + c->snd_mss || flight <= c->snd_mss) return false;
    if (new_data_fits(c, c->snd_mss)) return false;
    if (c->sack_ok) return c->sacked_bytes && flight - c->sacked_bytes <= c->snd_mss;
    const uint32_t oseg = (flight + c->snd_mss - 1) / c->snd_mss;
    return c->dupacks >= oseg - 1;
}

// Queued data not sent yet, up to `mss`, when the peer's window takes that much (the
// congestion window aside); 0 otherwise.
uint32_t Tcp::new_data_fits(const TcpConn* c, uint32_t mss) const {
    const uint32_t sq_end = c->snd_una + c->sq_bytes;
    const uint32_t avail = seq_gt(sq_end, c->snd_nxt) ? sq_end - c->snd_nxt : 0;
    const uint32_t peer_right = c->snd_una + c->snd_wnd;
    const uint32_t room = seq_gt(peer_right, c->snd_nxt) ? peer_right - c->snd_nxt : 0;
    const uint32_t len = std::min(avail, mss);
    return room >= len ? len : 0;
}

// The first unacknowledged segment, again (fast retransmit, partial ACK).
void Tcp::retransmit_head(TcpConn* c, uint64_t now) {
    uint32_t len = std::min(seg_mss(c), std::min(c->sq_bytes, c->snd_max - c->snd_una));
    if (c->fin_sent && c->snd_una == c->fin_seq) {
        send_segment(c, c->snd_una, 0, kAck | kFin, now, true);
        return;
    }
    if (len == 0) return;
    if (!send_segment(c, c->snd_una, len, kAck, now, true)) return;
    if (seq_gt(c->snd_una + len, c->high_rxt)) c->high_rxt = c->snd_una + len;
    if (c->in_recovery && c->sack_ok) rtx_note(c, c->snd_una, c->snd_una + len);
}

bool Tcp::sack_covers(const TcpConn* c, uint32_t left, uint32_t right) const {
    for (unsigned k = 0; k < c->n_sacked; ++k)
        if (seq_leq(c->sacked[k].left, left) && seq_geq(c->sacked[k].right, right)) return true;
    return false;
}

// A retransmission in SACK recovery: remember when it went, relative to everything else.
void Tcp::rtx_note(TcpConn* c, uint32_t left, uint32_t right) {
    TcpConn::RtxRec* r = nullptr;
    for (unsigned k = 0; k < c->n_rtx_recs; ++k)
        if (c->rtx_recs[k].left == left) r = &c->rtx_recs[k];
    if (!r) {
        // Full: this one goes untracked, and only the timer finds it lost.
        if (c->n_rtx_recs == TcpConn::kRtxRecs) return;
        r = &c->rtx_recs[c->n_rtx_recs++];
        r->left = left;
    }
    r->right = right;
    r->mark = c->snd_max;
    r->order = ++c->rtx_order & 0x7fffffffu;
    r->lost = 0;
}

// RFC 8985 6.2 (RACK), for retransmissions: a segment is lost when one sent after it has
// been delivered (SACKed or cumulatively acknowledged) and it has not. "Sent after" is either
// data first sent after it (at or above its `mark`), or a later retransmission. The reordering
// window is zero in recovery while no reordering has been seen (RFC 8985 6.2 step 4); Sluice
// does not track reordering, so a reordered retransmission costs one needless resend.
void Tcp::rtx_detect_lost(TcpConn* c) {
    if (!c->in_recovery || !c->sack_ok) {
        c->n_rtx_recs = 0;
        return;
    }
    // Delivered: drop them, keeping the latest send order among them.
    uint32_t delivered = 0;
    bool any = false;
    for (unsigned k = 0; k < c->n_rtx_recs;) {
        const TcpConn::RtxRec& r = c->rtx_recs[k];
        if (seq_leq(r.right, c->snd_una) || sack_covers(c, r.left, r.right)) {
            if (!any || int32_t((r.order - delivered) << 1) > 0) delivered = r.order;
            any = true;
            c->rtx_recs[k] = c->rtx_recs[--c->n_rtx_recs];
            continue;
        }
        ++k;
    }
    const uint32_t high_sacked = c->n_sacked ? c->sacked[c->n_sacked - 1].right : c->snd_una;
    for (unsigned k = 0; k < c->n_rtx_recs; ++k) {
        TcpConn::RtxRec& r = c->rtx_recs[k];
        if (r.lost) continue;
        // (31-bit order: compared in the same modular way as sequence numbers.)
        const bool later_delivered = any && int32_t((delivered - r.order) << 1) > 0;
        if (seq_gt(high_sacked, r.mark) || later_delivered) {
            r.lost = 1;
            ctr_.lost_retransmits++;
            want_flush(c);
        }
    }
}

// RFC 2018 / RFC 6675: merge the SACK blocks of an ACK into the scoreboard.
void Tcp::sack_update(TcpConn* c, const Seg& s) {
    for (unsigned i = 0; i < s.o.n_sack; ++i) {
        TcpSackBlock b = s.o.sack[i];
        // Only blocks within what we sent and above SND.UNA mean anything (a D-SACK below
        // SND.UNA, RFC 2883, is ignored).
        if (!seq_lt(b.left, b.right) || seq_leq(b.right, s.ack) || seq_gt(b.right, c->snd_max))
            continue;
        if (seq_lt(b.left, s.ack)) b.left = s.ack;
        // Merge with overlapping or adjacent entries.
        unsigned j = 0;
        while (j < c->n_sacked) {
            TcpSackBlock& e = c->sacked[j];
            if (seq_leq(b.left, e.right) && seq_leq(e.left, b.right)) {
                b.left = seq_min(b.left, e.left);
                b.right = seq_max(b.right, e.right);
                e = c->sacked[--c->n_sacked];
                j = 0;
                continue;
            }
            ++j;
        }
        if (c->n_sacked < TcpConn::kScoreboard) {
            c->sacked[c->n_sacked++] = b;
        } else {
            // Full: replace the lowest block (the highest ones matter most for recovery).
            unsigned lo = 0;
            for (unsigned k = 1; k < c->n_sacked; ++k)
                if (seq_lt(c->sacked[k].left, c->sacked[lo].left)) lo = k;
            c->sacked[lo] = b;
        }
    }
    // Keep sorted by left edge.
    std::sort(c->sacked, c->sacked + c->n_sacked,
              [](const TcpSackBlock& a, const TcpSackBlock& b) { return seq_lt(a.left, b.left); });
    c->sacked_bytes = 0;
    for (unsigned k = 0; k < c->n_sacked; ++k)
        c->sacked_bytes += c->sacked[k].right - c->sacked[k].left;
}

void Tcp::sack_trim(TcpConn* c) {
    unsigned n = 0;
    c->sacked_bytes = 0;
    for (unsigned k = 0; k < c->n_sacked; ++k) {
        TcpSackBlock b = c->sacked[k];
        if (seq_leq(b.right, c->snd_una)) continue;
        if (seq_lt(b.left, c->snd_una)) b.left = c->snd_una;
        c->sacked[n++] = b;
        c->sacked_bytes += b.right - b.left;
    }
    c->n_sacked = uint8_t(n);
}

// RFC 6298 2.2, 2.3: SRTT, RTTVAR and RTO from a measurement (microseconds).
void Tcp::rtt_sample(TcpConn* c, uint32_t r) {
    if (r == 0) r = 1;
    if (c->srtt_us == 0) {
        c->srtt_us = r;
        c->rttvar_us = r / 2;
    } else {
        const uint32_t d = c->srtt_us > r ? c->srtt_us - r : r - c->srtt_us;
        c->rttvar_us = (3 * c->rttvar_us + d) / 4;  // beta = 1/4
        c->srtt_us = (7 * c->srtt_us + r) / 8;      // alpha = 1/8
    }
    // RTO = SRTT + max(G, K * RTTVAR), K = 4, G = the 1 ms clock granularity; clamped to
    // [rto_min, rto_max] (2.4, 2.5).
    const uint32_t rto_us = c->srtt_us + std::max<uint32_t>(1000, 4 * c->rttvar_us);
    c->rto_ms = std::clamp((rto_us + 999) / 1000, cfg_.rto_min_ms, cfg_.rto_max_ms);
}

// Seventh and eighth steps: text and FIN, in order or out of order.
void Tcp::process_data(TcpConn* c, Seg& s, uint64_t now) {
    (void)now;
    rte_mbuf* m = s.m;
    uint32_t seq = s.seq;
    uint32_t len = s.len;
    bool fin = (s.flags & kFin) != 0;
    // Payload only: strip the headers (all in the first segment).
    rte_pktmbuf_adj(m, s.payload_off);
    // Trim what we already have (RFC 9293 3.10.7.4: "trimmed to the window").
    if (seq_lt(seq, c->rcv_nxt)) {
        const uint32_t dup = c->rcv_nxt - seq;
        if (len) note_duplicate(c, seq, seq + std::min(dup, len));
        if (dup >= len) {
            // Only the FIN (or nothing) is new.
            if (dup > len || !fin) {
                ctr_.dup_segs++;
                fin = fin && dup == len;
            }
            len = 0;
        } else {
            trim_front(m, dup);
            len -= dup;
        }
        seq = c->rcv_nxt;
    }
    // Beyond the window: trim the tail (and a FIN past it is not accepted yet).
    const uint32_t wnd_right = c->rcv_nxt + rcv_window(c);
    if (len && seq_gt(seq + len, wnd_right)) {
        const uint32_t keep = seq_gt(wnd_right, seq) ? wnd_right - seq : 0;
        trim_back(m, len - keep);
        len = keep;
        fin = false;
    }
    if (seq != c->rcv_nxt) {
        // Out of order (RFC 5681 4.2: ACK it at once, a duplicate ACK with SACK blocks).
        if (len || fin) {
            ooo_insert(c, m, seq, len, fin);
        } else {
            rte_pktmbuf_free(m);
        }
        c->ack_now = true;
        want_flush(c);
        return;
    }
    const bool filled_gap = c->ooo != nullptr;
    if (len) {
        c->rcv_nxt += len;
        c->st.bytes_received += len;
        deliver(c, m, len);
        m = nullptr;
    } else {
        rte_pktmbuf_free(m);
        m = nullptr;
    }
    if (fin) {
        process_fin(c, now);
    } else if (c->ooo) {
        ooo_drain(c, now);
    }
    if (filled_gap || fin) {
        c->ack_now = true;  // RFC 5681 4.2: ACK at once a segment that fills a gap
    } else if (len) {
        schedule_ack(c, len);
    }
    want_flush(c);
}

void Tcp::deliver(TcpConn* c, rte_mbuf* m, uint32_t len) {
    // Zero-length leading segments (headers only, payload in the chained ones) go.
    while (m->data_len == 0 && m->next) {
        rte_mbuf* nx = m->next;
        nx->nb_segs = uint16_t(m->nb_segs - 1);
        nx->pkt_len = m->pkt_len;
        m->next = nullptr;
        m->nb_segs = 1;
        rte_pktmbuf_free_seg(m);
        m = nx;
    }
    m->pkt_len = len;
    if (c->manual_window) c->rcv_held += len;
    event(TcpEvent::data, c, m);
}

// Removes `n` bytes from the front of a (maybe chained) payload.
void Tcp::trim_front(rte_mbuf*& m, uint32_t n) {
    while (n && m) {
        if (n < m->data_len) {
            m->data_off = uint16_t(m->data_off + n);
            m->data_len = uint16_t(m->data_len - n);
            m->pkt_len -= n;
            return;
        }
        n -= m->data_len;
        rte_mbuf* nx = m->next;
        if (!nx) {
            m->pkt_len -= m->data_len;
            m->data_len = 0;
            return;
        }
        nx->nb_segs = uint16_t(m->nb_segs - 1);
        nx->pkt_len = m->pkt_len - m->data_len;
        m->next = nullptr;
        m->nb_segs = 1;
        rte_pktmbuf_free_seg(m);
        m = nx;
    }
}

void Tcp::trim_back(rte_mbuf* m, uint32_t n) {
    // Removes `n` bytes from the end of a chain.
    uint32_t keep = m->pkt_len - n;
    m->pkt_len = keep;
    rte_mbuf* seg = m;
    rte_mbuf* last = m;
    uint16_t segs = 0;
    while (seg) {
        ++segs;
        if (keep <= seg->data_len) {
            seg->data_len = uint16_t(keep);
            last = seg;
            break;
        }
        keep -= seg->data_len;
        seg = seg->next;
    }
    if (last->next) {
        rte_pktmbuf_free(last->next);
        last->next = nullptr;
    }
    m->nb_segs = segs;
}

void Tcp::process_fin(TcpConn* c, uint64_t now) {
    // RFC 9293 3.10.7.4, eighth step.
    c->rcv_nxt += 1;
    c->ack_now = true;
    if (c->app_knows) event(TcpEvent::peer_fin, c);
    switch (c->state) {
        case TcpState::syn_received:
        case TcpState::established:
            set_state(c, TcpState::close_wait);
            break;
        case TcpState::fin_wait_1:
            // Our FIN not yet acknowledged (else we would be in FIN-WAIT-2): simultaneous close.
            set_state(c, TcpState::closing);
            break;
        case TcpState::fin_wait_2:
            enter_time_wait(c, now);
            break;
        default:
            break;
    }
    ooo_free(c);  // nothing can follow a FIN
}

// RFC 1122 4.2.3.2 / RFC 5681 4.2: an ACK for at least every second full-sized segment,
// and none later than the delayed-ACK timer (cfg delack_ms; 500 ms at most). "Full-sized" is
// the size the peer actually sends (as Linux measures rcv_mss): a sender whose segments are
// all below the MSS (small writes, TCP_NODELAY) still gets an ACK every two of them, instead
// of one per timer tick, which would leave it stalled on its congestion window for 40 ms at a
// time. As Linux's __tcp_ack_snd_check, the ACK goes once more than one full segment's worth
// is unacknowledged, so an ACK is held back for at most rcv_mss bytes, no more than the
// sender's MSS: a sender with more than one MSS in flight may then expect an ACK within a
// round trip, as RFC 8985 7.2's probe timeout does (only a flight of one segment gets the
// worst-case delayed-ACK time added). Holding back up to two of the largest segments seen
// made every flight of three or four smaller ones wait for the timer, and the sender send a
// needless loss probe after two round trips.
void Tcp::schedule_ack(TcpConn* c, uint32_t len) {
    if (c->wnd_update) {  // data came after a reopened window: the peer knows of it
        c->wnd_update = false;
        wheel_.cancel(&c->delack_timer);
    }
    if (len > c->rcv_mss) c->rcv_mss = uint16_t(std::min<uint32_t>(len, cfg_.mss));
    c->delack_bytes += len;
    if (c->delack_bytes > c->rcv_mss) {
        c->ack_now = true;
        return;
    }
    if (!c->delack_timer.armed()) wheel_.arm(&c->delack_timer, wheel_.now() + cfg_.delack_ms);
}

// The out-of-order queue: sorted, non-overlapping, bounded per connection (ooo_max_segs)
// and per core (ooo_pool); what does not fit is dropped (the peer will send it again).
void Tcp::ooo_insert(TcpConn* c, rte_mbuf* m, uint32_t seq, uint32_t len, bool fin) {
    // The queue is sorted and never overlaps: the new segment keeps only its bytes that no
    // queued one holds (queued ones it covers entirely are replaced by it).
    uint32_t end = seq + len;
    TcpOooSeg** pp = &c->ooo;
    // Skip the segments that end at or before this one's start.
    while (*pp && seq_leq((*pp)->seq + (*pp)->len, seq) && !(len == 0 && (*pp)->seq == seq))
        pp = &(*pp)->next;
    if (*pp && seq_leq((*pp)->seq, seq)) {
        // It covers our front: trim it off, or drop us if it covers everything.
        const uint32_t pend = (*pp)->seq + (*pp)->len;
        if (seq_geq(pend, end)) {
            if (fin && pend == end && !(*pp)->fin && (*pp)->next == nullptr) {
                (*pp)->fin = true;  // only the FIN is new
            } else {
                ctr_.dup_segs++;
            }
            rcv_sack_note(c, seq, end);  // already held: its block is the latest again
            if (end != seq) note_duplicate(c, seq, end);
            rte_pktmbuf_free(m);
            return;
        }
        trim_front(m, pend - seq);
        len -= pend - seq;
        seq = pend;
        pp = &(*pp)->next;
    }
    // Every segment from *pp on starts after `seq`. Those inside [seq, end) go.
    while (*pp && seq_leq((*pp)->seq + (*pp)->len, end)) {
        TcpOooSeg* dead = *pp;
        if (dead->fin && dead->seq + dead->len == end) fin = true;
        *pp = dead->next;
        c->ooo_bytes -= dead->len;
        c->ooo_segs--;
        rte_pktmbuf_free(dead->m);
        dead->next = ooo_free_;
        ooo_free_ = dead;
    }
    // One that starts inside and ends beyond: our tail goes.
    if (*pp && seq_lt((*pp)->seq, end)) {
        const uint32_t over = end - (*pp)->seq;
        trim_back(m, over);
        len -= over;
        end = seq + len;
        fin = false;
    }
    if (len == 0 && !fin) {
        rte_pktmbuf_free(m);
        return;
    }
    if (c->ooo_segs >= cfg_.ooo_max_segs || !ooo_free_) {
        ctr_.ooo_dropped++;
        rte_pktmbuf_free(m);
        return;
    }
    TcpOooSeg* n = ooo_free_;
    ooo_free_ = n->next;
    n->seq = seq;
    n->len = len;
    n->m = m;
    n->fin = fin;
    n->next = *pp;
    *pp = n;
    c->ooo_segs++;
    c->ooo_bytes += len;
    rcv_sack_note(c, seq, end + (fin ? 1 : 0));
    ctr_.ooo_segs++;
}

// RFC 2018 4: the block holding the segment just received goes first; blocks it joins or
// touches merge into it; the rest keep their order behind it, the oldest dropping off. (As
// Linux keeps its selective_acks.) Reporting only the lowest blocks instead would leave a
// new block above them unreported: its sender would resend it, and, learning of it late,
// take the delay for a round-trip time.
void Tcp::rcv_sack_note(TcpConn* c, uint32_t left, uint32_t right) {
    TcpSackBlock b{left, right};
    unsigned n = 0;
    TcpSackBlock keep[TcpConn::kRcvSackBlocks];
    for (unsigned k = 0; k < c->n_rcv_sack; ++k) {
        const TcpSackBlock& e = c->rcv_sack[k];
        if (seq_leq(e.left, b.right) && seq_leq(b.left, e.right)) {
            b.left = seq_min(b.left, e.left);
            b.right = seq_max(b.right, e.right);
        } else {
            keep[n++] = e;
        }
    }
    c->rcv_sack[0] = b;
    const unsigned m = std::min<unsigned>(n, TcpConn::kRcvSackBlocks - 1);
    for (unsigned k = 0; k < m; ++k) c->rcv_sack[k + 1] = keep[k];
    c->n_rcv_sack = uint8_t(m + 1);
}

// Blocks RCV.NXT has reached are acknowledged, no longer selectively. Room left is given to
// the lowest blocks still queued that no block reports (they had dropped off the end): held
// data stays reported.
void Tcp::rcv_sack_trim(TcpConn* c) {
    unsigned n = 0;
    for (unsigned k = 0; k < c->n_rcv_sack; ++k)
        if (seq_gt(c->rcv_sack[k].left, c->rcv_nxt)) c->rcv_sack[n++] = c->rcv_sack[k];
    const TcpOooSeg* s = c->ooo;
    for (unsigned steps = 0; s && n < TcpConn::kRcvSackBlocks && steps < 64;) {
        TcpSackBlock r{s->seq, s->seq + s->len + (s->fin ? 1 : 0)};
        for (s = s->next, ++steps; s && s->seq == r.right && steps < 64; s = s->next, ++steps)
            r.right = s->seq + s->len + (s->fin ? 1 : 0);
        bool listed = false;
        for (unsigned k = 0; k < n; ++k)
            listed |=
                seq_leq(c->rcv_sack[k].left, r.right) && seq_leq(r.left, c->rcv_sack[k].right);
        if (!listed) c->rcv_sack[n++] = r;
    }
    c->n_rcv_sack = uint8_t(n);
}

// RFC 2883 4: a segment that brought nothing new is reported as the first block of the next
// SACK option (a D-SACK), so the sender learns its retransmission was not needed (Linux
// undoes a needless window cut and widens its reordering window on it, RFC 8985 7.4.1 and
// 6.2). Without SACK there is no option to carry it.
void Tcp::note_duplicate(TcpConn* c, uint32_t left, uint32_t right) {
    if (!c->sack_ok || left == right) return;
    c->dsack = {left, right};
    c->dsack_pending = true;
    c->ack_now = true;
}

void Tcp::ooo_drain(TcpConn* c, uint64_t now) {
    while (c->ooo && seq_leq(c->ooo->seq, c->rcv_nxt)) {
        TcpOooSeg* n = c->ooo;
        c->ooo = n->next;
        c->ooo_segs--;
        c->ooo_bytes -= n->len;
        uint32_t len = n->len;
        rte_mbuf* m = n->m;
        const bool fin = n->fin;
        n->next = ooo_free_;
        ooo_free_ = n;
        const uint32_t dup = c->rcv_nxt - n->seq;
        if (dup >= len) {
            rte_pktmbuf_free(m);
            len = 0;
        } else {
            if (dup) trim_front(m, dup);
            len -= dup;
            c->rcv_nxt += len;
            c->st.bytes_received += len;
            deliver(c, m, len);
        }
        if (fin) {
            process_fin(c, now);
            return;
        }
    }
    if (c->n_rcv_sack) rcv_sack_trim(c);
}

void Tcp::ooo_free(TcpConn* c) {
    while (c->ooo) {
        TcpOooSeg* n = c->ooo;
        c->ooo = n->next;
        rte_pktmbuf_free(n->m);
        n->next = ooo_free_;
        ooo_free_ = n;
    }
    c->ooo_segs = 0;
    c->ooo_bytes = 0;
    c->n_rcv_sack = 0;
}

// The window we offer: the buffer less what waits out of order; never shrinking the right
// edge already advertised (RFC 9293 3.8.6.2.2 / RFC 7323 2.4).
uint32_t Tcp::rcv_window(const TcpConn* c) const {
    const uint32_t used = c->ooo_bytes + c->rcv_held;
    uint32_t w = c->rcv_buf > used ? c->rcv_buf - used : 0;
    const uint32_t adv = seq_gt(c->rcv_adv, c->rcv_nxt) ? c->rcv_adv - c->rcv_nxt : 0;
    return std::max(w, adv);
}

// ---------------------------------------------------------------------------------------------
// API.

TcpConn* Tcp::connect(rte_be32_t dst, uint16_t dport, uint64_t now, uint16_t sport) {
    now_ = now;
    const rte_be16_t rport = rte_cpu_to_be_16(dport);
    rte_be16_t lport = 0;
    if (sport) {
        lport = rte_cpu_to_be_16(sport);
        if (TcpConn* old = lookup(dst, rport, lport)) {
            if (!reuse_time_wait(old)) return nullptr;
        }
    } else {
        // RFC 6056 3.3.1 (simple hash-based selection) restricted to the ports whose flow
        // comes back to this core.
        const unsigned span = kEphemeralHi - kEphemeralLo + 1;
        for (unsigned tries = 0; tries < span; ++tries) {
            const uint16_t p = next_port_;
            next_port_ = uint16_t(p == kEphemeralHi ? kEphemeralLo : p + 1);
            const rte_be16_t cand = rte_cpu_to_be_16(p);
            bool in_use = false;
            for (const Listener& l : listeners_) in_use |= l.port == p;
            if (in_use) continue;
            if (port_filter_ &&
                !port_filter_(port_filter_ctx_, stack_->config().ip, dst, cand, rport))
                continue;
            if (TcpConn* old = lookup(dst, rport, cand)) {
                if (!reuse_time_wait(old)) continue;
            }
            lport = cand;
            break;
        }
        if (!lport) return nullptr;
    }
    TcpConn* c = alloc_conn(dst, rport, lport);
    if (!c) return nullptr;
    c->iss = isn(dst, rport, lport, now);
    c->snd_una = c->snd_nxt = c->snd_max = c->iss;
    c->ecn_ok = cfg_.ecn;
    c->app_knows = true;
    c->ts_ok = cfg_.timestamps;  // offered; settled by the SYN-ACK
    c->sack_ok = cfg_.sack;
    c->ws_ok = cfg_.window_scale;
    c->rcv_wscale = c->ws_ok ? rcv_wscale() : 0;
    setup_mss(c, cfg_.mss);
    c->cc.init(cfg_.cc, c->snd_mss);
    set_state(c, TcpState::syn_sent);
    ctr_.active_opens++;
    // The SYN goes out with the next flush, which respects the room in the TX burst (an app
    // may open thousands at once).
    want_flush(c);
    return c;
}

// TIME-WAIT reuse by an active open (as Linux's tcp_tw_reuse): only with timestamps, whose
// monotonic values let PAWS tell the old incarnation's duplicates apart (RFC 6191 3,
// RFC 7323 5.8); the new SYN's TSval must be above every one the old connection sent, so at
// least two timestamp ticks (2 ms) into TIME-WAIT.
bool Tcp::reuse_time_wait(TcpConn* old) {
    if (old->state != TcpState::time_wait || !old->ts_ok) return false;
    const uint64_t entered = old->rtx_timer.expires - 2ull * cfg_.msl_ms;
    if (wheel_.now() < entered + 2) return false;
    if (old->app_done || !old->app_knows) {
        free_conn(old);
    } else {
        unhash(old);
        set_state(old, TcpState::closed);
        wheel_.cancel(&old->rtx_timer);
    }
    ctr_.time_wait_reused++;
    return true;
}

void Tcp::consumed(TcpConn* c, uint32_t bytes) {
    c->rcv_held = bytes < c->rcv_held ? c->rcv_held - bytes : 0;
    // RFC 9293 3.8.6.2.2 (receiver SWS avoidance): a window update once the window grew by
    // min(half the buffer, one MSS).
    const uint32_t after = rcv_window(c);
    const uint32_t adv = seq_gt(c->rcv_adv, c->rcv_nxt) ? c->rcv_adv - c->rcv_nxt : 0;
    if (after >= adv + std::min(c->rcv_buf / 2, uint32_t(cfg_.mss))) {
        c->ack_now = true;
        want_flush(c);
        // Reopening a window we had closed: if this update is lost, the peer only learns of
        // it from its persist timer, which backs off to minutes. So the update is repeated,
        // backing off from the RTO, until data arrives (a few times at most).
        if (adv < cfg_.mss) {
            c->wnd_update = true;
            c->wnd_update_tries = 0;
            c->wnd_update_seq = c->rcv_nxt;
        }
    }
}

int Tcp::send(TcpConn* c, rte_mbuf* m) {
    if (c->state == TcpState::closed || c->state == TcpState::listen ||
        c->state == TcpState::time_wait)
        return -ENOTCONN;
    if (c->fin_queued) return -EPIPE;
    if (c->sq_bytes >= cfg_.snd_buf || !sq_room(c, m->nb_segs)) {
        if (c->sq_bytes < cfg_.snd_buf) ctr_.sq_full++;
        c->want_writable = true;
        c->writable_event = false;
        return -EAGAIN;
    }
    const uint32_t len = m->pkt_len;
    for (rte_mbuf* seg = m; seg;) {
        rte_mbuf* nx = seg->next;
        seg->next = nullptr;
        seg->nb_segs = 1;
        seg->pkt_len = seg->data_len;
        if (seg->data_len == 0)
            rte_pktmbuf_free_seg(seg);
        else
            sq_append(c, seg, seg->data_off, seg->data_len, true);  // m's reference, taken
        seg = nx;
    }
    c->sq_bytes += len;
    want_flush(c);
    return 0;
}

int Tcp::send_ref(TcpConn* c, rte_mbuf* m, uint32_t off, uint32_t len, int32_t sum) {
    if (c->state == TcpState::closed || c->state == TcpState::listen ||
        c->state == TcpState::time_wait)
        return -ENOTCONN;
    if (c->fin_queued) return -EPIPE;
    if (!m || len == 0 || uint64_t(off) + len > m->data_len || sum > 0xffff) return -EINVAL;
    if (c->sq_bytes >= cfg_.snd_buf || !sq_room(c, 1)) {
        if (c->sq_bytes < cfg_.snd_buf) ctr_.sq_full++;
        c->want_writable = true;
        c->writable_event = false;
        return -EAGAIN;
    }
    rte_mbuf_refcnt_update(m, 1);
    sq_append(c, m, uint16_t(m->data_off + off), uint16_t(len), true, sum);
    c->sq_bytes += len;
    want_flush(c);
    return 0;
}

int Tcp::send_copy(TcpConn* c, const void* data, uint32_t len) {
    if (c->state == TcpState::closed || c->state == TcpState::listen ||
        c->state == TcpState::time_wait)
        return -ENOTCONN;
    if (c->fin_queued) return -EPIPE;
    uint32_t space = send_space(c);
    if (space == 0) {
        c->want_writable = true;
        c->writable_event = false;
        return -EAGAIN;
    }
    const auto* p = static_cast<const uint8_t*>(data);
    uint32_t done = 0;
    const uint32_t seg = std::max<uint32_t>(c->snd_mss, 1);
    rte_mbuf* b = c->sq_copy_m;
    // No piece in the buffer is queued any more, and no segment over it is in flight (only the
    // queue's reference is left), while other pieces are still queued: its start again.
    if (b && !c->sq_copy_any && rte_mbuf_refcnt_read(b) == 1) b->data_len = 0;
    while (done < len && done < space) {
        const uint32_t want = std::min(len - done, space - done);
        TcpSqPiece* last = c->sq_tb ? &c->sq_tb->p[c->sq_tn - 1] : nullptr;
        uint32_t room = b ? std::min<uint32_t>(rte_pktmbuf_tailroom(b), UINT16_MAX) : 0;
        // The queue's last piece ends where the buffer's free room begins: it grows, up to a
        // multiple of the MSS (segments then take one piece each: a stream of writes).
        bool grow = b && last && last->m == b &&
                    uint32_t(last->off) + last->len == uint32_t(b->data_off) + b->data_len;
        if (grow) {
            const uint32_t fill = (seg - last->len % seg) % seg;
            if (fill == 0 || room == 0)
                grow = false;
            else
                room = std::min({room, fill, uint32_t(UINT16_MAX - last->len)});
        }
        if (!grow) {
            if (!sq_room(c, 1)) {
                ctr_.sq_full++;
                break;
            }
            if (room >= seg && want > room) room -= room % seg;  // whole segments per piece
        }
        if (room == 0) {
            // A fresh buffer; the queue's own reference to the old one goes. The small pool
            // for a small first write; a full buffer means a stream of writes: a big one.
            rte_mempool* mp = (small_ && !b && want <= small_room_) ? small_ : pool_;
            rte_mbuf* nb = rte_pktmbuf_alloc(mp);
            if (!nb) break;
            if (b && c->sq_copy_any) {
                c->sq_copy_lb->p[c->sq_copy_li].own = true;  // its last piece takes the reference
                c->sq_refs++;
            } else if (b) {
                rte_pktmbuf_free_seg(b);
            }
            c->sq_copy_any = false;
            b = c->sq_copy_m = nb;
            continue;
        }
        const uint32_t n = std::min(room, want);
        memcpy(rte_pktmbuf_mtod_offset(b, uint8_t*, b->data_len), p + done, n);
        if (grow) {
            last->len = uint16_t(last->len + n);
            last->has_sum = false;
        } else {
            sq_append(c, b, uint16_t(b->data_off + b->data_len), uint16_t(n), false);
            c->sq_copy_lb = c->sq_tb;
            c->sq_copy_li = uint16_t(c->sq_tn - 1);
            c->sq_copy_any = true;
        }
        b->data_len = uint16_t(b->data_len + n);
        b->pkt_len = b->data_len;
        c->sq_bytes += n;
        done += n;
    }
    if (done < len) {
        c->want_writable = true;
        c->writable_event = false;
    }
    if (done) want_flush(c);
    return int(done);
}

uint32_t Tcp::send_space(const TcpConn* c) const {
    return c->sq_bytes < cfg_.snd_buf ? cfg_.snd_buf - c->sq_bytes : 0;
}

void Tcp::shutdown_write(TcpConn* c) {
    if (c->fin_queued) return;
    switch (c->state) {
        case TcpState::syn_sent:
            finish(c, TcpCloseReason::normal);  // RFC 9293 3.10.4: delete the TCB
            return;
        case TcpState::established:
            set_state(c, TcpState::fin_wait_1);
            break;
        case TcpState::close_wait:
            set_state(c, TcpState::last_ack);
            break;
        case TcpState::syn_received:
            break;  // the FIN follows once established (RFC 9293 3.10.4)
        default:
            return;
    }
    c->fin_queued = true;
    want_flush(c);
}

void Tcp::close(TcpConn* c) {
    c->app_closed = true;
    shutdown_write(c);
}

void Tcp::abort(TcpConn* c) {
    // RFC 9293 3.10.5: <SEQ=SND.NXT><CTL=RST> in the synchronized states.
    if (c->state == TcpState::closed) return;
    if (c->state != TcpState::syn_sent && c->state != TcpState::time_wait) {
        send_raw(c->raddr, c->rport, c->lport, c->snd_nxt, 0, kRst, 0, nullptr, 0, now_);
        ctr_.rst_out++;
    }
    c->app_closed = true;
    finish(c, TcpCloseReason::aborted);
}

void Tcp::set_keepalive(TcpConn* c, bool on, uint64_t now) {
    (void)now;
    c->keepalive = on;
    if (on && c->rtx_kind == TcpConn::rtx_none && c->state == TcpState::established) arm_idle(c);
}

TcpConnStats Tcp::stats(const TcpConn* c) const {
    TcpConnStats s = c->st;
    s.srtt_us = c->srtt_us;
    s.rttvar_us = c->rttvar_us;
    s.rto_ms = c->rto_ms;
    s.cwnd = c->cc.cwnd;
    s.ssthresh = c->cc.ssthresh;
    s.snd_wnd = c->snd_wnd;
    s.rcv_wnd = rcv_window(c);
    s.state = c->state;
    return s;
}

// ---------------------------------------------------------------------------------------------
// Output.

void Tcp::flush(uint64_t now) {
    now_ = now;
    TcpConn* list = flush_list_;
    flush_list_ = nullptr;
    while (list) {
        TcpConn* c = list;
        list = c->flush_next;
        c->in_flush = false;
        if (c->freed) {
            c->freed = false;
            c->flush_next = free_conns_;
            free_conns_ = c;
            ctr_.open_conns--;
            continue;
        }
        if (stack_->tx().room() < 16) {
            // The burst is full: the rest waits for the next round.
            want_flush(c);
            continue;
        }
        output(c, now);
    }
}

void Tcp::output(TcpConn* c, uint64_t now) {
    switch (c->state) {
        case TcpState::established:
        case TcpState::close_wait:
        case TcpState::fin_wait_1:
        case TcpState::closing:
        case TcpState::last_ack:
            break;
        case TcpState::fin_wait_2:
        case TcpState::time_wait:
            if (c->ack_now) send_ack(c, now);
            return;
        case TcpState::syn_sent:
            if (c->snd_max == c->iss) send_syn(c, now);  // not sent yet (connect)
            return;
        default:
            return;
    }
    bool sent_any = false, sent_new = false;
    const uint32_t sq_end = c->snd_una + c->sq_bytes;
    // Our out-of-order queue does not change while we send: its SACK room is counted once.
    const uint32_t mss = seg_mss(c);
    // SACK-based loss recovery (RFC 6675 5, step (C)): while the pipe has room, retransmit
    // the holes below the highest SACKed byte, then send new data.
    if (c->in_recovery && c->sack_ok && c->n_sacked) {
        const uint32_t high_sacked = c->sacked[c->n_sacked - 1].right;
        // Retransmissions found lost again go first: they hold up SND.UNA.
        for (unsigned k = 0; k < c->n_rtx_recs; ++k) {
            TcpConn::RtxRec& r = c->rtx_recs[k];
            if (!r.lost) continue;
            if (sack_pipe(c) + c->snd_mss > c->cc.cwnd || stack_->tx().room() < 16) break;
            const uint32_t from = seq_max(r.left, c->snd_una);
            const uint32_t len = std::min(r.right - from, mss);
            if (!send_segment(c, from, len, kAck, now, true)) break;
            r.left = from;
            rtx_note(c, from, from + len);  // sent again: a new send order, not lost
            sent_any = true;
        }
        for (;;) {
            const uint32_t pipe = sack_pipe(c);
            if (pipe + c->snd_mss > c->cc.cwnd) break;
            uint32_t from = seq_max(c->high_rxt, c->snd_una);
            // NextSeg (rule 1): the first byte at or above `from` not SACKed, below HighSACK.
            for (unsigned k = 0; k < c->n_sacked; ++k) {
                const TcpSackBlock& b = c->sacked[k];
                if (seq_leq(b.left, from) && seq_gt(b.right, from)) from = b.right;
            }
            if (!seq_lt(from, high_sacked)) break;
            uint32_t to = high_sacked;
            for (unsigned k = 0; k < c->n_sacked; ++k)
                if (seq_gt(c->sacked[k].left, from)) {
                    to = c->sacked[k].left;
                    break;
                }
            const uint32_t len = std::min(to - from, mss);
            if (!send_segment(c, from, len, kAck, now, true)) break;
            c->high_rxt = from + len;
            rtx_note(c, from, from + len);
            sent_any = true;
            if (stack_->tx().room() < 16) break;
        }
    }
    // New data: congestion window, peer's window, Nagle and sender SWS avoidance.
    for (;;) {
        if (stack_->tx().room() < 16) {
            want_flush(c);
            break;
        }
        const uint32_t flight =
            (c->in_recovery && c->sack_ok) ? sack_pipe(c) : c->snd_nxt - c->snd_una;
        // Limited transmit (RFC 3042 2): the first two duplicate ACKs each let one new
        // segment out, so that a small window still produces the third.
        const uint32_t lt =
            (!c->in_recovery && c->dupacks < kDupThresh) ? c->dupacks * c->snd_mss : 0;
        const uint32_t wnd = std::min(c->cc.cwnd + lt, c->snd_wnd);
        const uint32_t usable = wnd > flight ? wnd - flight : 0;
        // Also bounded by the peer's window counted from SND.UNA.
        const uint32_t peer_right = c->snd_una + c->snd_wnd;
        const uint32_t peer_room = seq_gt(peer_right, c->snd_nxt) ? peer_right - c->snd_nxt : 0;
        const uint32_t avail = seq_gt(sq_end, c->snd_nxt) ? sq_end - c->snd_nxt : 0;
        uint32_t len = std::min({avail, mss, usable, peer_room});
        if (len == 0) break;
        if (len < mss && len < avail) {
            // Window-limited: RFC 9293 3.8.6.2.1, send only if at least half the largest
            // window the peer offered.
            if (len < c->max_snd_wnd / 2) break;
        }
        if (len < mss && len == avail && !c->nodelay && c->snd_nxt != c->snd_una &&
            !c->fin_queued) {
            break;  // Nagle (RFC 1122 4.2.3.4): small segment while data is unacknowledged
        }
        uint8_t flags = kAck;
        if (c->snd_nxt + len == sq_end) {
            flags |= kPsh;
            if (c->fin_queued) flags |= kFin;
        }
        const bool again = seq_lt(c->snd_nxt, c->snd_max);
        if (!send_segment(c, c->snd_nxt, len, flags, now, again)) break;
        sent_any = true;
        sent_new |= !again;
    }
    // A FIN with nothing (more) to send.
    if (c->fin_queued && c->snd_nxt == sq_end &&
        (!c->fin_sent || seq_leq(c->snd_nxt, c->fin_seq))) {
        if (send_segment(c, c->snd_nxt, 0, kAck | kFin, now, c->fin_sent)) sent_any = true;
    }
    if (c->ack_now && !sent_any) send_ack(c, now);
    // Timers: retransmission while anything is outstanding (RFC 6298 5.1: started if not
    // running), persist when data waits with nothing in flight: the peer's window is closed
    // (RFC 9293 3.8.6.1), or open but too small for SWS avoidance (RFC 1122 4.2.3.4's
    // override timeout). Either way no ACK is coming to move it, and the update that opens
    // it may have been lost.
    if (c->snd_una != c->snd_max &&
        !(c->snd_wnd == 0 && c->rtx_kind == TcpConn::rtx_persist && c->rtx_timer.armed())) {
        // (A zero-window probe outstanding stays under the persist timer: probing goes on
        // while the peer answers, RFC 9293 3.8.6.1.)
        // RFC 8985 7.2: a probe timeout restarts after new data goes out.
        if ((c->rtx_kind != TcpConn::rtx_rto && c->rtx_kind != TcpConn::rtx_tlp) ||
            !c->rtx_timer.armed() || (sent_new && c->rtx_kind == TcpConn::rtx_tlp))
            arm_rto(c, true);
    } else if (c->sq_bytes) {
        if (c->rtx_kind != TcpConn::rtx_persist || !c->rtx_timer.armed()) {
            c->rtx_kind = TcpConn::rtx_persist;
            wheel_.arm(&c->rtx_timer, wheel_.now() + persist_interval(c));
        }
    } else if (c->keepalive && c->rtx_kind != TcpConn::rtx_keepalive) {
        arm_idle(c);
    }
}

uint32_t Tcp::sack_pipe(const TcpConn* c) const {
    // RFC 6675 4 SetPipe, simplified: every byte not SACKed is in flight unless it lies in
    // a hole below the highest SACKed byte (lost) that was not retransmitted since.
    // Above SND.NXT nothing is in flight: after a timeout (SND.NXT back at SND.UNA, RFC 6298
    // 5.4) what was sent beyond it counts as lost until it is sent again.
    if (c->n_sacked == 0) return c->snd_nxt - c->snd_una;
    const uint32_t high_sacked = c->sacked[c->n_sacked - 1].right;
    uint32_t pipe = seq_gt(c->snd_nxt, high_sacked) ? c->snd_nxt - high_sacked : 0;
    // Retransmitted bytes in holes: [snd_una, high_rxt) minus SACKed parts.
    if (seq_gt(c->high_rxt, c->snd_una)) {
        uint32_t r = c->high_rxt - c->snd_una;
        for (unsigned k = 0; k < c->n_sacked; ++k) {
            const TcpSackBlock& b = c->sacked[k];
            if (seq_geq(b.left, c->high_rxt)) break;
            r -= seq_min(b.right, c->high_rxt) - b.left;
        }
        // A retransmission found lost again has left the network (RFC 8985 6.2).
        for (unsigned k = 0; k < c->n_rtx_recs; ++k) {
            const TcpConn::RtxRec& x = c->rtx_recs[k];
            if (x.lost && seq_gt(x.right, c->snd_una) && seq_leq(x.right, c->high_rxt)) {
                const uint32_t n = x.right - seq_max(x.left, c->snd_una);
                r -= std::min(r, n);
            }
        }
        pipe += r;
    }
    return pipe;
}

uint32_t Tcp::backed_off_rto(const TcpConn* c) const {
    uint64_t rto = uint64_t(c->rto_ms ? c->rto_ms : cfg_.rto_initial_ms) << c->backoff;
    return uint32_t(std::min<uint64_t>(rto, cfg_.rto_max_ms));
}

// Zero-window probes back off like the RTO, but to a few seconds at most: a window update
// the peer sent and the network lost is found again within that, instead of after a minute
// (the probe is one byte; RFC 9293 3.8.6.1 sets no maximum).
uint32_t Tcp::persist_interval(const TcpConn* c) const {
    return std::min(backed_off_rto(c), kPersistMaxMs);
}

void Tcp::arm_rto(TcpConn* c, bool restart) {
    if (!restart && c->rtx_timer.armed() &&
        (c->rtx_kind == TcpConn::rtx_rto || c->rtx_kind == TcpConn::rtx_tlp))
        return;
    const uint32_t rto = backed_off_rto(c);
    if (tlp_allowed(c)) {
        // RFC 8985 7.2: PTO = 2 SRTT, plus the peer's worst-case delayed ACK when one
        // segment is in flight (it may be waiting for a second); at most the RTO. Plus two
        // 1 ms ticks, as Linux adds TCP_TIMEOUT_MIN (two jiffies): a timer armed k ticks
        // ahead fires after k - 1 to k ms, and with microsecond round trips 2 SRTT is
        // shorter than one pass of a busy peer's loop. With one tick, a broker fanning out
        // to 100 subscribers sent a needless probe for about one segment in a hundred.
        uint32_t pto = (2 * c->srtt_us + 999) / 1000 + 2;
        if (c->snd_max - c->snd_una <= c->snd_mss) pto += kWorstDelAckMs;
        if (pto < rto) {
            c->rtx_kind = TcpConn::rtx_tlp;
            wheel_.arm(&c->rtx_timer, wheel_.now() + pto);
            return;
        }
    }
    c->rtx_kind = TcpConn::rtx_rto;
    wheel_.arm(&c->rtx_timer, wheel_.now() + rto);
}

// RFC 8985 7.2: a probe is scheduled when SACK is on, the connection is not in loss recovery
// (fast or after a timeout) and no probe is outstanding. Only with an RTT sample, and not
// while the timer is backed off.
bool Tcp::tlp_allowed(const TcpConn* c) const {
    return cfg_.tlp && c->sack_ok && !c->in_recovery && !c->rto_recovery && !c->tlp_out &&
           c->srtt_us != 0 && c->backoff == 0 && c->sq_bytes != 0 && !c->fin_sent &&
           (c->state == TcpState::established || c->state == TcpState::close_wait) &&
           c->snd_una != c->snd_max;
}

// RFC 8985 7.3: the probe timeout. One segment: new data if there is some and the peer's
// window takes it, else the last segment sent, again. Then the retransmission timer.
void Tcp::on_pto(TcpConn* c, uint64_t now) {
    const uint32_t mss = seg_mss(c);
    const uint32_t fresh = c->snd_nxt == c->snd_max ? new_data_fits(c, mss) : 0;
    bool sent = false;
    if (fresh) {
        const bool last = c->snd_nxt + fresh == c->snd_una + c->sq_bytes;
        c->tlp_seq = c->snd_nxt;
        sent = send_segment(c, c->snd_nxt, fresh, kAck | (last ? kPsh : 0), now, false);
        c->tlp_retrans = false;
    } else {
        const uint32_t len = std::min(mss, c->snd_max - c->snd_una);
        c->tlp_seq = c->snd_max - len;
        sent = send_segment(c, c->tlp_seq, len, kAck | kPsh, now, true);
        c->tlp_retrans = true;
    }
    if (sent) {
        ctr_.tlp_probes++;
        c->tlp_out = true;
        c->tlp_dsack = false;
        c->tlp_end = c->snd_max;
    }
    c->rtx_kind = TcpConn::rtx_rto;
    wheel_.arm(&c->rtx_timer, wheel_.now() + backed_off_rto(c));
}

void Tcp::arm_idle(TcpConn* c) {
    c->rtx_kind = TcpConn::rtx_keepalive;
    wheel_.arm(&c->rtx_timer, wheel_.now() + cfg_.keepalive_idle_ms);
    c->retries = 0;
}

// RFC 2018 4: SACK options SHOULD be in every ACK that does not acknowledge the highest
// sequence number held, our data segments included. While out-of-order data is held, a data
// segment leaves room for them (as Linux's tcp_current_mss does): 4 bytes, 8 per block, a block
// per contiguous range held (at most 3 beside timestamps, 4 without). Without them a peer
// whose retransmission we lost while we were sending full-sized segments learns nothing until
// its RTO, backed off perhaps to tens of seconds at 10 % loss.
uint32_t Tcp::seg_mss(const TcpConn* c) {
    if (!c->sack_ok || (!c->ooo && !c->dsack_pending)) return c->snd_mss;
    const unsigned max_blocks = c->ts_ok ? 3 : 4;
    const unsigned blocks = (c->ooo ? c->n_rcv_sack : 0u) + (c->dsack_pending ? 1u : 0u);
    const uint32_t room = 4 + 8 * std::min(blocks, max_blocks);
    return c->snd_mss > room + 64 ? c->snd_mss - room : c->snd_mss;
}

// Options we put in a segment (RFC 9293 3.2; RFC 7323 3.2 and appendix A layout; RFC 2018).
unsigned Tcp::write_options(TcpConn* c, uint8_t flags, uint8_t* p, uint64_t now, uint32_t len) {
    unsigned n = 0;
    if (flags & kSyn)
        return syn_options(p, cfg_.mss, c->sack_ok, c->ts_ok, tsval(now), c->ts_recent,
                           c->ws_ok ? c->rcv_wscale : -1);
    if (c->ts_ok) {
        p[n++] = kOptNop;
        p[n++] = kOptNop;
        p[n++] = kOptTs;
        p[n++] = 10;
        const uint32_t tv = rte_cpu_to_be_32(tsval(now)), te = rte_cpu_to_be_32(c->ts_recent);
        memcpy(p + n, &tv, 4);
        memcpy(p + n + 4, &te, 4);
        n += 8;
    }
    // RFC 6691 / RFC 2018: options and payload together within the segment size (snd_mss
    // counts the timestamps already). Data segments are cut to leave room for the blocks
    // (seg_mss); a segment cut otherwise (a retransmission of an older cut) may carry fewer.
    const uint32_t sack_room = c->snd_mss > len ? c->snd_mss - len : 0;
    if (c->sack_ok && (c->ooo || c->dsack_pending) && sack_room >= 4 + 8) {
        // RFC 2018 4: the first block holds the most recently received segment, then the
        // most recently reported others, up to what fits (3 with timestamps). RFC 2883 4: a
        // D-SACK goes before them all, once.
        const unsigned max_blocks = std::min<unsigned>(c->ts_ok ? 3u : 4u, (sack_room - 4) / 8);
        TcpSackBlock blocks[4];
        unsigned nb = 0;
        if (c->dsack_pending) {
            blocks[nb++] = c->dsack;
            c->dsack_pending = false;
        }
        for (unsigned k = 0; c->ooo && k < c->n_rcv_sack && nb < max_blocks; ++k)
            blocks[nb++] = c->rcv_sack[k];
        p[n++] = kOptNop;
        p[n++] = kOptNop;
        p[n++] = kOptSack;
        p[n++] = uint8_t(2 + 8 * nb);
        for (unsigned i = 0; i < nb; ++i) {
            const uint32_t l = rte_cpu_to_be_32(blocks[i].left),
                           r = rte_cpu_to_be_32(blocks[i].right);
            memcpy(p + n, &l, 4);
            memcpy(p + n + 4, &r, 4);
            n += 8;
        }
    }
    return n;
}

void Tcp::send_syn(TcpConn* c, uint64_t now) {
    uint8_t flags = kSyn;
    if (c->state == TcpState::syn_received) {
        flags |= kAck;
        if (c->ecn_ok) flags |= kEce;  // RFC 3168 6.1.1
    } else if (c->ecn_ok) {
        flags |= kEce | kCwr;
    }
    send_segment(c, c->iss, 0, flags, now, c->snd_max != c->iss);
    if (!c->rtx_timer.armed()) {
        c->rtx_kind = TcpConn::rtx_rto;
        wheel_.arm(&c->rtx_timer, wheel_.now() + backed_off_rto(c));
    }
}

// Room behind the largest headers: Ethernet, IPv4, TCP with 40 bytes of options.
constexpr uint32_t kMaxHdrs = kHdrs + kTcpHdrLen + 40;

void Tcp::set_linear_tx(bool on) {
    linear_max_ = on && pool_room_ > kMaxHdrs ? pool_room_ - kMaxHdrs : 0;
}

void Tcp::set_inline_max() {
    const uint32_t room = small_ ? small_room_ : pool_room_;
    inline_max_ = room > kMaxHdrs ? std::min(kInlinePayload, room - kMaxHdrs) : 0;
}

// Builds and sends one segment [seq, seq + len) of the send queue with `flags`: a header mbuf
// with Ethernet, IPv4 and TCP headers, chained to indirect mbufs over the queued payload.
bool Tcp::send_segment(TcpConn* c, uint32_t seq, uint32_t len, uint8_t flags, uint64_t now,
                       bool retransmit) {
    // A small payload is copied behind the headers (one cache line or two) rather than
    // referenced: an indirect mbuf costs an allocation and an atomic on the payload's
    // reference count, which the receiving core would bounce back when it frees the
    // segment. The send queue still holds the payload by reference until it is
    // acknowledged; a retransmission copies the same few bytes again. For a port that copies
    // frames anyway (set_linear_tx) a payload that fits one mbuf of the stack's pool is too
    // when it spans several send-queue pieces (pub/sub frames, send_copy's buffers): one
    // indirect mbuf over a single piece costs less than copying it (bulk by reference over
    // memif: ~15.5 Gbit/s chained, ~12.9 copied), several cost more (send_copy: 3.2 -> 4.7).
    const bool linear = len > inline_max_ && len <= linear_max_ && sq_pieces(c, seq, len, 2) > 1;
    const bool inline_copy = len && (len <= inline_max_ || linear);
    rte_mbuf* h = linear ? rte_pktmbuf_alloc(pool_) : alloc_small();
    if (!h) {
        ctr_.no_mbuf++;
        want_flush(c);
        return false;
    }
    if (linear) ctr_.tx_linear++;
    rte_mbuf* payload = nullptr;
    if (len && !inline_copy) {
        payload = sq_payload(c, seq, len);
        if (!payload) {
            rte_pktmbuf_free(h);
            ctr_.no_mbuf++;
            want_flush(c);
            return false;
        }
    }
    uint8_t opts[40];
    const unsigned opt_len = write_options(c, flags, opts, now, len);
    const uint16_t hlen = uint16_t(kTcpHdrLen + opt_len);
    char* p = rte_pktmbuf_append(h, uint16_t(kHdrs + hlen));
    auto* ip = reinterpret_cast<rte_ipv4_hdr*>(p + kEthHdrLen);
    auto* th = reinterpret_cast<rte_tcp_hdr*>(ip + 1);
    // RFC 3168 6.1.5: ECT on new data only; never on retransmissions, pure ACKs or SYNs.
    const bool ect = c->ecn_ok && len && !retransmit && !(flags & kSyn);
    fill_ip(h, ip, c->raddr, uint16_t(hlen + len), ect);
    if (c->ecn_ece && (flags & kAck) && !(flags & kSyn)) flags |= kEce;
    if (c->ecn_cwr && len && !retransmit) {
        flags |= kCwr;
        c->ecn_cwr = false;
    }
    th->src_port = c->lport;
    th->dst_port = c->rport;
    th->sent_seq = rte_cpu_to_be_32(seq);
    th->recv_ack = (flags & kAck) ? rte_cpu_to_be_32(c->rcv_nxt) : 0;
    th->data_off = uint8_t((hlen / 4) << 4);
    th->tcp_flags = flags;
    uint32_t wnd = rcv_window(c);
    if (flags & kSyn) {
        wnd = std::min<uint32_t>(wnd, 65535);  // RFC 7323 2.2: never scaled in a SYN
        th->rx_win = rte_cpu_to_be_16(uint16_t(wnd));
    } else {
        const uint32_t scaled = std::min<uint32_t>(wnd >> c->rcv_wscale, 65535);
        th->rx_win = rte_cpu_to_be_16(uint16_t(scaled));
        wnd = scaled << c->rcv_wscale;
    }
    th->tcp_urp = 0;
    memcpy(th + 1, opts, opt_len);
    h->l4_len = hlen;
    if (linear && sw_l4_cksum_) {
        // RFC 9293 3.1: the checksum over the pseudo-header, the header and the payload,
        // summed here as the payload is copied (with the sums send_ref was given: a shared
        // payload is not read again per connection), instead of by pmd/ afterwards.
        uint64_t sum = uint64_t(stack_->config().ip) + c->raddr +
                       rte_cpu_to_be_16(uint16_t(IPPROTO_TCP)) +
                       rte_cpu_to_be_16(uint16_t(hlen + len));
        sq_copy(c, seq, len, rte_pktmbuf_append(h, uint16_t(len)), &sum);
        th->cksum = 0;
        sum = sum_bytes(th, hlen, sum);
        const uint16_t ck = uint16_t(~fold_sum(sum));
        th->cksum = ck == 0 ? 0xffff : ck;
        h->ol_flags &= ~RTE_MBUF_F_TX_L4_MASK;
    } else {
        if (inline_copy) {
            sq_copy(c, seq, len, rte_pktmbuf_append(h, uint16_t(len)));
        } else if (payload) {
            rte_mbuf* last = h;
            last->next = payload;
            h->nb_segs = uint16_t(1 + payload->nb_segs);
            h->pkt_len += len;
        }
        th->cksum =
            pseudo_header_cksum(stack_->config().ip, c->raddr, IPPROTO_TCP, uint16_t(hlen + len));
    }

    if (flags & kAck) {
        c->last_ack_sent = c->rcv_nxt;
        if (seq_gt(c->rcv_nxt + wnd, c->rcv_adv) || c->rcv_adv == 0) c->rcv_adv = c->rcv_nxt + wnd;
        c->ack_now = false;
        c->delack_bytes = 0;
        wheel_.cancel(&c->delack_timer);
        if (unlikely(c->wnd_update)) {
            if (c->rcv_nxt != c->wnd_update_seq || c->wnd_update_tries >= 6) {
                c->wnd_update = false;  // data came: the peer knows; or give up
            } else {
                wheel_.arm(&c->delack_timer,
                           wheel_.now() + (uint64_t(backed_off_rto(c)) << c->wnd_update_tries));
                c->wnd_update_tries++;
            }
        }
    }
    const uint32_t seq_len = len + ((flags & kSyn) ? 1 : 0) + ((flags & kFin) ? 1 : 0);
    if (flags & kFin) {
        c->fin_seq = seq + len;
        c->fin_sent = true;
    }
    if (seq_len) {
        const uint32_t end = seq + seq_len;
        if (seq_geq(seq, c->snd_nxt) || seq_gt(end, c->snd_nxt)) c->snd_nxt = end;
        if (seq_gt(end, c->snd_max)) {
            c->snd_max = end;
            // Time one segment per RTT (RFC 6298 3, Karn: never a retransmitted one).
            if (!c->rtt_timing && !retransmit) {
                c->rtt_timing = true;
                c->rtt_seq = seq;
                c->rtt_start = now;
            }
        }
        if (retransmit) {
            ctr_.retransmits++;
            c->st.retransmits++;
            if (c->rtt_timing && seq_leq(seq, c->rtt_seq)) c->rtt_timing = false;
        }
    }
    ctr_.segs_out++;
    c->st.segs_out++;
    stack_->send_ipv4(h, now);
    return true;
}

// The send-queue piece holding `seq` (and the sequence number of its first byte), from the
// cursor where output left off, else from the head (SND.UNA).
Tcp::SqPos Tcp::sq_seek(TcpConn* c, uint32_t seq, uint32_t& piece_seq) {
    SqPos p{c->sq_hb, c->sq_hi};
    piece_seq = c->snd_una;
    if (c->sq_cb && seq_geq(seq, c->sq_cur_seq) && seq_geq(c->sq_cur_seq, c->snd_una)) {
        p = {c->sq_cb, c->sq_ci};
        piece_seq = c->sq_cur_seq;
    }
    while (p.b && seq_geq(seq, piece_seq + p.b->p[p.i].len)) {
        piece_seq += p.b->p[p.i].len;
        p = sq_next(c, p);
    }
    return p;
}

// The payload of a segment: indirect mbufs over the send queue, or, when the range spans more
// pieces than a NIC gathers (kMaxGather), one copy of it (the queue still holds the pieces):
// in one mbuf of the pool, or in as few as hold it where the segment is longer (a jumbo MTU).
rte_mbuf* Tcp::sq_payload(TcpConn* c, uint32_t seq, uint32_t len) {
    // Pieces averaging below kMinGatherPiece bytes are copied too: an indirect mbuf (an
    // allocation, an atomic, a free on the ACK) costs more than copying that many bytes.
    const uint32_t pieces = sq_pieces(c, seq, len, kMaxGather + 1);
    if (pieces <= kMaxGather && (pieces == 1 || len >= pieces * kMinGatherPiece))
        return sq_clone(c, seq, len);
    const uint32_t room = pool_room_;
    const uint32_t n = room ? (len + room - 1) / room : 0;
    rte_mbuf* segs[kMaxGather];  // n of them behind the header mbuf: at most kMaxGather in all
    if (n && n < kMaxGather && rte_pktmbuf_alloc_bulk(pool_, segs, n) == 0) {
        uint32_t done = 0;
        for (uint32_t i = 0; i < n; ++i) {
            const uint32_t take = std::min(room, len - done);
            sq_copy(c, seq + done, take, rte_pktmbuf_append(segs[i], uint16_t(take)));
            done += take;
            if (i) segs[i - 1]->next = segs[i];
        }
        segs[0]->nb_segs = uint16_t(n);
        segs[0]->pkt_len = len;
        ctr_.gather_copies++;
        return segs[0];
    }
    return sq_clone(c, seq, len);
}

// How many send-queue pieces [seq, seq + len) spans, counting up to `max`.
uint32_t Tcp::sq_pieces(TcpConn* c, uint32_t seq, uint32_t len, uint32_t max) {
    uint32_t piece_seq;
    SqPos p = sq_seek(c, seq, piece_seq);
    uint32_t off = seq - piece_seq, n = 0;
    while (len && p.b && n < max) {
        const uint32_t take = std::min(len, p.b->p[p.i].len - off);
        len -= take;
        ++n;
        p = sq_next(c, p);
        off = 0;
    }
    return n;
}

// Indirect mbufs over [seq, seq + len) of the send queue: the payload stays where the app put
// it, its reference count held by the segment until the port has sent it.
rte_mbuf* Tcp::sq_clone(TcpConn* c, uint32_t seq, uint32_t len) {
    uint32_t piece_seq;
    SqPos p = sq_seek(c, seq, piece_seq);
    rte_mbuf* head = nullptr;
    rte_mbuf* tail = nullptr;
    uint16_t nsegs = 0;
    uint32_t left = len;
    uint32_t off = seq - piece_seq;
    while (left && p.b) {
        const TcpSqPiece& pc = p.b->p[p.i];
        const uint32_t take = std::min(left, pc.len - off);
        rte_mbuf* mi = alloc_small();
        if (!mi) {
            if (head) rte_pktmbuf_free(head);
            return nullptr;
        }
        rte_pktmbuf_attach(mi, pc.m);
        mi->data_off = uint16_t(pc.off + off);
        mi->data_len = uint16_t(take);
        mi->pkt_len = take;
        if (tail)
            tail->next = mi;
        else
            head = mi;
        tail = mi;
        ++nsegs;
        left -= take;
        off += take;
        if (off == pc.len) {
            piece_seq += pc.len;
            p = sq_next(c, p);
            off = 0;
        }
    }
    if (left) {  // the queue is shorter than asked: a bug upstream; send nothing
        if (head) rte_pktmbuf_free(head);
        return nullptr;
    }
    head->nb_segs = nsegs;
    head->pkt_len = len;
    // Output resumes here.
    if (p.b) {
        c->sq_cb = p.b;
        c->sq_ci = uint16_t(p.i);
        c->sq_cur_seq = piece_seq;
    }
    return head;
}

// Copies [seq, seq + len) of the send queue to `dst` (small segments, send_segment).
void Tcp::sq_copy(TcpConn* c, uint32_t seq, uint32_t len, char* dst, uint64_t* sum) {
    uint32_t piece_seq;
    SqPos p = sq_seek(c, seq, piece_seq);
    uint32_t off = seq - piece_seq;
    uint32_t done = 0;
    while (len && p.b) {
        const TcpSqPiece& pc = p.b->p[p.i];
        const uint32_t take = std::min(len, pc.len - off);
        const char* src = static_cast<const char*>(pc.m->buf_addr) + pc.off + off;
        memcpy(dst, src, take);
        if (sum) {
            // RFC 1071 2(B): a sum is byte-order independent, so bytes that land at an odd
            // offset of the segment count byte-swapped.
            uint16_t s = pc.has_sum && take == pc.len ? pc.sum : fold_sum(sum_bytes(src, take));
            if (done & 1) s = uint16_t(s << 8 | s >> 8);
            *sum += s;
        }
        done += take;
        dst += take;
        len -= take;
        off += take;
        if (off == pc.len) {
            piece_seq += pc.len;
            p = sq_next(c, p);
            off = 0;
        }
    }
    if (p.b) {
        c->sq_cb = p.b;
        c->sq_ci = uint16_t(p.i);
        c->sq_cur_seq = piece_seq;
    }
}

bool Tcp::sq_append(TcpConn* c, rte_mbuf* m, uint16_t off, uint16_t len, bool own, int32_t sum) {
    if (!c->sq_tb || c->sq_tn == TcpSqBlock::kPieces) {
        TcpSqBlock* b = sq_free_;
        if (!b) return false;  // sq_room said there was one
        sq_free_ = b->next;
        sq_free_n_--;
        c->sq_nblocks++;
        b->next = nullptr;
        if (c->sq_tb)
            c->sq_tb->next = b;
        else {
            c->sq_hb = b;
            c->sq_hi = 0;
        }
        c->sq_tb = b;
        c->sq_tn = 0;
    }
    c->sq_tb->p[c->sq_tn++] = {m, off, len, own, sum >= 0, uint16_t(sum >= 0 ? sum : 0)};
    c->sq_refs += own;
    return true;
}

// Frees the `bytes` at the head of the send queue (acknowledged).
void Tcp::sq_acked(TcpConn* c, uint32_t bytes) {
    c->sq_bytes -= bytes;
    TcpSqBlock* b = c->sq_hb;
    uint32_t i = c->sq_hi;
    while (bytes) {
        TcpSqPiece& pc = b->p[i];
        if (c->sq_cb == b && c->sq_ci == i) c->sq_cb = nullptr;
        if (bytes < pc.len) {
            pc.off = uint16_t(pc.off + bytes);
            pc.len = uint16_t(pc.len - bytes);
            pc.has_sum = false;  // it was the sum of all of them
            break;
        }
        bytes -= pc.len;
        // The pieces ahead are in this array: their buffers' headers can be on their way.
        if (i + 2 < (b == c->sq_tb ? c->sq_tn : TcpSqBlock::kPieces)) rte_prefetch0(b->p[i + 2].m);
        if (c->sq_copy_any && c->sq_copy_lb == b && c->sq_copy_li == i) c->sq_copy_any = false;
        if (pc.own) {
            rte_pktmbuf_free_seg(pc.m);
            c->sq_refs--;
        }
        ++i;
        const bool last_block = b == c->sq_tb;
        if (last_block ? i == c->sq_tn : i == TcpSqBlock::kPieces) {
            TcpSqBlock* nx = last_block ? nullptr : b->next;
            if (c->sq_cb == b) c->sq_cb = nullptr;
            b->next = sq_free_;
            sq_free_ = b;
            sq_free_n_++;
            c->sq_nblocks--;
            b = nx;
            i = 0;
            if (!b) {
                c->sq_tb = nullptr;
                c->sq_tn = 0;
                // Nothing queued: send_copy's buffer goes back to its pool (an idle
                // connection holds no mbuf; the pool's cache hands the same one back).
                if (c->sq_copy_m) {
                    rte_pktmbuf_free_seg(c->sq_copy_m);
                    c->sq_copy_m = nullptr;
                }
                break;
            }
        }
    }
    c->sq_hb = b;
    c->sq_hi = uint16_t(i);
}

void Tcp::sq_release(TcpConn* c) {
    for (SqPos p{c->sq_hb, c->sq_hi}; p.b;) {
        if (p.b->p[p.i].own) rte_pktmbuf_free_seg(p.b->p[p.i].m);
        const SqPos nx = sq_next(c, p);
        if (nx.b != p.b) {
            p.b->next = sq_free_;
            sq_free_ = p.b;
            sq_free_n_++;
        }
        p = nx;
    }
    c->sq_hb = c->sq_tb = c->sq_cb = nullptr;
    c->sq_hi = c->sq_tn = 0;
    c->sq_bytes = 0;
    c->sq_nblocks = 0;
    c->sq_refs = 0;
    if (c->sq_copy_m) {
        rte_pktmbuf_free_seg(c->sq_copy_m);
        c->sq_copy_m = nullptr;
    }
    c->sq_copy_any = false;
}

// ---------------------------------------------------------------------------------------------
// Timers.

void Tcp::poll(uint64_t now) {
    now_ = now;
    wheel_.advance(now / tick_div_, [&](TcpTimer* t) {
        TcpConn* c = static_cast<TcpConn*>(t->owner);
        if (t == &c->delack_timer) {
            if (c->wnd_update && c->rcv_nxt == c->wnd_update_seq)
                ctr_.window_updates++;  // a repeated window update
            else
                ctr_.delayed_acks++;
            c->ack_now = true;
            want_flush(c);
        } else {
            timer_fired(c, now);
        }
    });
    if (flush_list_) flush(now);
}

void Tcp::timer_fired(TcpConn* c, uint64_t now) {
    switch (c->rtx_kind) {
        case TcpConn::rtx_time_wait:
            c->rtx_kind = TcpConn::rtx_none;
            if (c->app_done || !c->app_knows) {
                free_conn(c);
            } else {
                // The closed event is still queued: the slot goes after it.
                unhash(c);
                c->state = TcpState::closed;
            }
            return;
        case TcpConn::rtx_fin_wait_2:
            c->rtx_kind = TcpConn::rtx_none;
            finish(c, TcpCloseReason::timeout);
            return;
        case TcpConn::rtx_persist:
            // RFC 9293 3.8.6.1: probe the zero window with one byte; back off, never give up
            // while the peer answers.
            ctr_.persist_probes++;
            if (c->sq_bytes && c->snd_wnd != 0 && c->snd_una == c->snd_max) {
                // An open window too small for SWS avoidance, nothing in flight: the override
                // (RFC 1122 4.2.3.4 (4); Linux's tcp_write_wakeup, BSD's persist): send what
                // fits; its ACK brings the peer's window, and the retransmission timer
                // covers it.
                const uint32_t len = std::min({c->sq_bytes, c->snd_mss, c->snd_wnd});
                if (send_segment(c, c->snd_nxt, len, kAck, now, false)) {
                    arm_rto(c, true);
                    return;
                }
            }
            if (c->sq_bytes && c->snd_wnd == 0) {
                if (c->snd_una == c->snd_max)
                    send_segment(c, c->snd_nxt, 1, kAck, now, false);
                else  // the probe byte was refused: the same byte again
                    send_segment(c, c->snd_una, 1, kAck, now, true);
            }
            if (c->backoff < 16) c->backoff++;
            c->rtx_kind = TcpConn::rtx_persist;
            wheel_.arm(&c->rtx_timer, wheel_.now() + persist_interval(c));
            return;
        case TcpConn::rtx_keepalive: {
            // RFC 1122 4.2.3.6: after the idle time, probes <SEQ=SND.UNA-1> every interval;
            // the connection dies after keepalive_probes unanswered ones.
            const uint64_t idle_ms = (now - c->last_rx) * 1000 / hz_;
            if (idle_ms + 1 < cfg_.keepalive_idle_ms && c->retries == 0) {
                wheel_.arm(&c->rtx_timer, wheel_.now() + (cfg_.keepalive_idle_ms - idle_ms));
                return;
            }
            if (c->retries >= cfg_.keepalive_probes) {
                finish(c, TcpCloseReason::timeout);
                return;
            }
            c->retries++;
            ctr_.keepalive_probes++;
            send_segment(c, c->snd_una - 1, 0, kAck, now, false);
            wheel_.arm(&c->rtx_timer, wheel_.now() + cfg_.keepalive_intvl_ms);
            return;
        }
        case TcpConn::rtx_rto:
            on_rto(c, now);
            return;
        case TcpConn::rtx_tlp:
            on_pto(c, now);
            return;
        case TcpConn::rtx_none:
            return;
    }
}

// RFC 6298 5.4-5.7: retransmit the earliest unacknowledged segment, double the RTO, restart
// the timer; RFC 5681 3.1 eq. 4 and LW: ssthresh halved, cwnd one segment (go back N).
void Tcp::on_rto(TcpConn* c, uint64_t now) {
    const uint32_t limit = (c->state == TcpState::syn_sent || c->state == TcpState::syn_received)
                               ? cfg_.syn_retries
                               : cfg_.data_retries;
    if (c->retries >= limit) {
        finish(c, TcpCloseReason::timeout);
        return;
    }
    c->retries++;
    ctr_.rto_expirations++;
    c->st.rto_expirations++;
    if (c->backoff < 16) c->backoff++;
    c->rtt_timing = false;  // Karn
    if (c->state == TcpState::syn_sent || c->state == TcpState::syn_received) {
        c->snd_nxt = c->iss;
        send_syn(c, now);
        c->rtx_kind = TcpConn::rtx_rto;
        wheel_.arm(&c->rtx_timer, wheel_.now() + backed_off_rto(c));
        return;
    }
    if (c->retries == 1)
        c->cc.on_rto(c->snd_max - c->snd_una);
    else
        c->cc.cwnd = c->snd_mss;
    c->in_recovery = false;
    c->recover = c->snd_max;  // RFC 6582 3.2 step 1 after a timeout
    c->recover_set = true;
    c->rto_recovery = true;
    c->dupacks = 0;
    // RFC 2018 8 / RFC 6675 5.1: after a timeout the SACK information may be stale.
    c->n_sacked = 0;
    c->sacked_bytes = 0;
    c->n_rtx_recs = 0;
    c->tlp_out = false;
    c->high_rxt = c->snd_una;
    c->snd_nxt = c->snd_una;
    c->sq_cb = nullptr;
    // First segment now; the rest follows in slow start.
    if (c->fin_sent && c->snd_una == c->fin_seq) {
        send_segment(c, c->snd_una, 0, kAck | kFin, now, true);
    } else {
        const uint32_t len = std::min(seg_mss(c), c->sq_bytes);
        uint8_t flags = kAck;
        if (len == c->sq_bytes && c->fin_queued && c->fin_sent) flags |= kFin;
        if (len)
            send_segment(c, c->snd_una, len, flags, now, true);
        else if (c->fin_sent)
            send_segment(c, c->snd_una, 0, kAck | kFin, now, true);
    }
    c->rtx_kind = TcpConn::rtx_rto;
    wheel_.arm(&c->rtx_timer, wheel_.now() + backed_off_rto(c));
}

// Called by Stack for IPPROTO_TCP.
void tcp_deliver(Tcp* tcp, rte_mbuf* m, rte_ipv4_hdr* ip, uint64_t now) {
    tcp->input(m, ip, now);
}

}  // namespace sluice::proto
