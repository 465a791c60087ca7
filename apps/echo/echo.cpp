#include "apps/echo/echo.hpp"

#include <rte_malloc.h>

#include <cinttypes>
#include <cstring>

namespace sluice::apps {

using proto::Tcp;
using proto::TcpCloseReason;
using proto::TcpConn;

namespace {
constexpr uint32_t kPatternPeriod = 65521;  // prime
}

Echo::~Echo() {
    if (recv_out_) fclose(recv_out_);
    // Every mbuf attached to the buffer is back (the runtime stops TCP first); ours is the
    // last reference.
    if (zc_shinfo_ && rte_mbuf_ext_refcnt_update(zc_shinfo_, -1) == 0) rte_free(zc_buf_);
    for (Peer& p : peer_mem_)
        if (p.held) rte_pktmbuf_free(p.held);
}

Echo::Peer* Echo::new_peer() {
    Peer* p = free_peers_;
    if (!p) return nullptr;
    free_peers_ = p->next_free;
    *p = Peer{};
    return p;
}

void Echo::free_peer(Peer* p) {
    if (p->held) rte_pktmbuf_free(p->held);
    p->held = nullptr;
    p->next_free = free_peers_;
    free_peers_ = p;
}

void Echo::start(Tcp& tcp, uint64_t now) {
    hz_ = rte_get_tsc_hz();
    t_start_ = now;
    window_ = uint64_t(cfg_.duration_s * double(hz_));
    deadline_ = now + uint64_t(cfg_.timeout_s * double(hz_));
    peer_mem_.resize(tcp.config().max_conns + 1);
    for (Peer& p : peer_mem_) {
        p.next_free = free_peers_;
        free_peers_ = &p;
    }
    if (!client()) {
        const int rc = tcp.listen(cfg_.listen_port);
        if (rc != 0 && worker_ == 0)
            fprintf(stderr, "sluice-echo: cannot listen on %u: %s\n", cfg_.listen_port,
                    strerror(-rc));
        return;
    }
    if (worker_ != 0) return;
    if (cfg_.mode == Mode::transfer) {
        pat_.resize(kPatternPeriod + 65536);
        uint32_t x = 2463534242u;
        for (uint32_t i = 0; i < kPatternPeriod; ++i) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            pat_[i] = uint8_t(x);
        }
        // The tail repeats the start: a read of up to 64 KiB from any offset in the period
        // sees the stream as it continues.
        for (size_t i = kPatternPeriod; i < pat_.size(); ++i) pat_[i] = pat_[i - kPatternPeriod];
        if (!cfg_.recv_file.empty()) {
            recv_out_ = fopen(cfg_.recv_file.c_str(), "wb");
            if (!recv_out_) {
                fprintf(stderr, "sluice-echo: cannot write %s\n", cfg_.recv_file.c_str());
                rc_ = 1;
                finish_run("error");
                return;
            }
        }
    }
    msg_.assign(std::max<uint32_t>(cfg_.size, 1), 'x');
    const uint32_t n = cfg_.mode == Mode::bulk ? 1 : cfg_.conns;
    for (uint32_t i = 0; i < n; ++i) open_one(tcp, i, now);
}

void Echo::open_one(Tcp& tcp, unsigned index, uint64_t now) {
    Peer* p = new_peer();
    TcpConn* c = p ? tcp.connect(cfg_.dst, cfg_.dst_port, now) : nullptr;
    if (!c) {
        if (p) free_peer(p);
        // No port or slot now: cps retries on a later poll; the others fail.
        if (cfg_.mode != Mode::cps) {
            failed_++;
            closed_++;
            char line[96];
            snprintf(line, sizeof line, "client: conn %u failed: no_memory", index);
            failures_.push_back(line);
        } else {
            pending_opens_++;
        }
        return;
    }
    p->index = index;
    c->user = p;
    opened_++;
    if (cfg_.mode != Mode::transfer) tcp.set_nodelay(c, cfg_.mode != Mode::bulk);
}

// Bytes of the transfer stream at `off`: the file, or the pattern.
const uint8_t* Echo::pattern(uint64_t off, uint32_t& len) const {
    if (cfg_.file) {
        len = uint32_t(std::min<uint64_t>(len, cfg_.file->size() - off));
        return cfg_.file->data() + off;
    }
    len = std::min<uint32_t>(len, 65536);
    return pat_.data() + off % kPatternPeriod;
}

// Client: queue as much of the stream as the send buffer takes; half-close at the end.
// bulk --zero-copy: mbufs over the shared buffer, handed over by reference. Each is a whole
// number of segments long, so that every segment is one indirect mbuf.
bool Echo::bulk_zero_copy(Tcp& tcp, TcpConn* c, Peer* p) {
    if (!zc_buf_) {
        const size_t off = RTE_ALIGN_CEIL(size_t(UINT16_MAX), RTE_CACHE_LINE_SIZE);
        zc_buf_ = static_cast<uint8_t*>(
            rte_malloc("echo_zc", off + sizeof(rte_mbuf_ext_shared_info), RTE_CACHE_LINE_SIZE));
        if (!zc_buf_) return false;
        memset(zc_buf_, 'x', UINT16_MAX);
        zc_shinfo_ = reinterpret_cast<rte_mbuf_ext_shared_info*>(zc_buf_ + off);
        zc_shinfo_->free_cb = [](void*, void*) {};  // static: freed by ~Echo
        zc_shinfo_->fcb_opaque = nullptr;
        rte_mbuf_ext_refcnt_set(zc_shinfo_, 1);
    }
    const uint32_t mss = std::max<uint32_t>(c->snd_mss, 1);
    const uint16_t chunk = uint16_t(std::max<uint32_t>(UINT16_MAX / mss, 1) * mss);
    rte_mempool* mp = tcp.stack().pool();
    for (;;) {
        rte_mbuf* m = rte_pktmbuf_alloc(mp);
        if (!m) return true;  // writable comes back as the queue drains
        rte_mbuf_ext_refcnt_update(zc_shinfo_, 1);
        rte_pktmbuf_attach_extbuf(m, zc_buf_, rte_malloc_virt2iova(zc_buf_), chunk, zc_shinfo_);
        m->data_off = 0;
        m->data_len = chunk;
        m->pkt_len = chunk;
        if (tcp.send(c, m) != 0) {
            rte_pktmbuf_free(m);
            return true;
        }
        p->sent += chunk;
    }
}

void Echo::pump(Tcp& tcp, TcpConn* c, Peer* p) {
    if (cfg_.mode == Mode::bulk) {
        if (cfg_.zero_copy && bulk_zero_copy(tcp, c, p)) return;
        for (;;) {
            const int n = tcp.send_copy(c, msg_.data(), uint32_t(msg_.size()));
            if (n <= 0) return;
            p->sent += uint32_t(n);
        }
    }
    const uint64_t total = to_send();
    while (p->sent < total) {
        uint32_t len = uint32_t(std::min<uint64_t>(total - p->sent, 1u << 20));
        const uint8_t* d = pattern(p->sent, len);
        const int n = tcp.send_copy(c, d, len);
        if (n <= 0) return;  // on_tcp_writable resumes
        p->sent += uint32_t(n);
        total_sent_ += uint32_t(n);
    }
    if (!p->fin_sent) {
        p->fin_sent = true;
        tcp.shutdown_write(c);  // half-close: keep reading until the peer closes
    }
}

void Echo::on_tcp_connected(Tcp& tcp, TcpConn* c) {
    if (!client()) {
        Peer* p = new_peer();
        if (!p) {
            tcp.abort(c);
            return;
        }
        c->user = p;
        if (!cfg_.discard) tcp.set_manual_window(c, true);
        return;
    }
    Peer* p = peer(c);
    established_++;
    switch (cfg_.mode) {
        case Mode::transfer:
            pump(tcp, c, p);
            break;
        case Mode::rr:
            if (tcp.send_copy(c, msg_.data(), uint32_t(msg_.size())) > 0) p->sent += msg_.size();
            if (!measuring_ && established_ == cfg_.conns) {
                measuring_ = true;
                t_measure_ = rte_rdtsc();
                transactions_ = 0;
            }
            break;
        case Mode::cps:
            if (!measuring_) {
                measuring_ = true;
                t_measure_ = rte_rdtsc();
            }
            tcp.send_copy(c, msg_.data(), uint32_t(msg_.size()));
            break;
        case Mode::bulk:
            measuring_ = true;
            t_measure_ = rte_rdtsc();
            bulk_conn_ = c;
            pump(tcp, c, p);
            break;
        case Mode::server:
            break;
    }
}

// Server: send what is held (zero copy), as far as the send queue takes it; what it takes
// no longer counts against our receive window.
void Echo::echo_held(Tcp& tcp, TcpConn* c, Peer* p) {
    if (!p->held) return;
    rte_mbuf* m = p->held;
    const uint32_t len = p->held_bytes;
    if (tcp.send(c, m) != 0) return;  // on_tcp_writable comes back
    p->held = nullptr;
    p->held_bytes = 0;
    tcp.consumed(c, len);
}

void Echo::on_tcp_data(Tcp& tcp, TcpConn* c, rte_mbuf* m) {
    Peer* p = peer(c);
    const uint32_t len = m->pkt_len;
    if (!client()) {
        p->received += len;
        if (cfg_.discard) {
            rte_pktmbuf_free(m);
            return;
        }
        if (p->held) {
            // Behind what is still waiting: keep the order.
            rte_mbuf* last = rte_pktmbuf_lastseg(p->held);
            last->next = m;
            p->held->nb_segs = uint16_t(p->held->nb_segs + m->nb_segs);
            p->held->pkt_len += len;
            p->held_bytes += len;
            return;
        }
        p->held = m;
        p->held_bytes = len;
        echo_held(tcp, c, p);
        return;
    }
    p->received += len;
    total_received_ += len;
    switch (cfg_.mode) {
        case Mode::transfer: {
            if (cfg_.verify || (recv_out_ && p->index == 0)) {
                for (rte_mbuf* s = m; s; s = s->next) {
                    const uint8_t* d = rte_pktmbuf_mtod(s, const uint8_t*);
                    uint32_t off = 0;
                    if (recv_out_ && p->index == 0) fwrite(d, 1, s->data_len, recv_out_);
                    while (cfg_.verify && off < s->data_len) {
                        uint32_t n = s->data_len - off;
                        if (p->verified >= to_send()) {
                            p->mismatches += n;  // more came back than was sent
                            break;
                        }
                        n = uint32_t(std::min<uint64_t>(n, to_send() - p->verified));
                        const uint8_t* want = pattern(p->verified, n);
                        if (memcmp(d + off, want, n) != 0) p->mismatches++;
                        p->verified += n;
                        off += n;
                    }
                }
            }
            break;
        }
        case Mode::rr:
            p->rr_got += len;
            while (p->rr_got >= msg_.size()) {
                p->rr_got -= uint32_t(msg_.size());
                if (measuring_) transactions_++;
                if (!finished_ && tcp.send_copy(c, msg_.data(), uint32_t(msg_.size())) > 0)
                    p->sent += msg_.size();
            }
            break;
        case Mode::cps:
            p->rr_got += len;
            if (p->rr_got >= msg_.size() && !p->fin_sent) {
                p->fin_sent = true;
                tcp.close(c);
            }
            break;
        default:
            break;
    }
    rte_pktmbuf_free(m);
}

void Echo::on_tcp_peer_fin(Tcp& tcp, TcpConn* c) {
    Peer* p = peer(c);
    p->peer_fin = true;
    if (!client()) {
        // Echo what is left, then close our side (the FIN follows the queued data).
        echo_held(tcp, c, p);
        if (!p->held) tcp.close(c);
        return;
    }
    if (cfg_.mode == Mode::transfer) {
        pump(tcp, c, p);
        if (p->sent >= to_send()) tcp.close(c);
    } else {
        tcp.close(c);
    }
}

void Echo::on_tcp_writable(Tcp& tcp, TcpConn* c) {
    Peer* p = peer(c);
    if (!client()) {
        echo_held(tcp, c, p);
        if (!p->held && p->peer_fin) tcp.close(c);
        return;
    }
    if (cfg_.mode == Mode::transfer || cfg_.mode == Mode::bulk) pump(tcp, c, p);
}

void Echo::on_tcp_closed(Tcp& tcp, TcpConn* c, TcpCloseReason r) {
    Peer* p = peer(c);
    if (!p) return;
    c->user = nullptr;
    if (!client()) {
        free_peer(p);
        return;
    }
    closed_++;
    bool ok = r == TcpCloseReason::normal;
    if (cfg_.mode == Mode::transfer) {
        ok = ok && p->sent == to_send() && p->peer_fin;
        if (cfg_.verify && (p->mismatches || p->verified != to_send())) {
            mismatches_ += p->mismatches + (p->verified != to_send() ? 1 : 0);
        }
    }
    if (cfg_.mode == Mode::cps && ok) {
        if (measuring_ && !finished_) completed_conns_++;
    }
    if (ok) {
        ok_++;
    } else {
        failed_++;
        if (failures_.size() < 32) {
            char line[128];
            snprintf(line, sizeof line, "client: conn %u failed: %s", p->index,
                     proto::tcp_close_reason_name(r));
            failures_.push_back(line);
        }
    }
    const unsigned idx = p->index;
    if (c == bulk_conn_) bulk_conn_ = nullptr;
    free_peer(p);
    if (cfg_.mode == Mode::cps && !finished_) open_one(tcp, idx, rte_rdtsc());
    if (cfg_.mode == Mode::rr && !finished_ && !ok) finish_run("error");
}

void Echo::poll(Tcp& tcp, uint64_t now) {
    if (!client() || worker_ != 0 || finished_) return;
    if (pending_opens_) {
        const uint32_t n = pending_opens_;
        pending_opens_ = 0;
        for (uint32_t i = 0; i < n; ++i) open_one(tcp, i, now);
    }
    if (now > deadline_ && cfg_.mode == Mode::transfer) {
        printf("client: timeout\n");
        rc_ = 1;
        finish_run("timeout");
        return;
    }
    // The benchmark modes look at the clock once their window could have ended (every
    // loop of the worker calls this: no division on the way).
    if (cfg_.mode != Mode::transfer && measuring_ && now < t_measure_ + window_ && now <= deadline_)
        return;
    const double elapsed = measuring_ ? double(now - t_measure_) / double(hz_) : 0;
    switch (cfg_.mode) {
        case Mode::transfer:
            if (closed_ == cfg_.conns) {
                printf("client: done conns=%u ok=%u failed=%u bytes_sent=%" PRIu64
                       " bytes_received=%" PRIu64 " mismatches=%" PRIu64 "\n",
                       cfg_.conns, ok_, failed_, total_sent_, total_received_, mismatches_);
                for (const std::string& f : failures_) printf("%s\n", f.c_str());
                rc_ = (failed_ == 0 && mismatches_ == 0) ? 0 : 1;
                finish_run("done");
            }
            return;
        case Mode::rr:
            if (measuring_ && elapsed >= cfg_.duration_s) {
                printf(
                    "client: rr conns=%u size=%u transactions=%" PRIu64 " seconds=%.3f tps=%.0f\n",
                    cfg_.conns, cfg_.size, transactions_, elapsed, double(transactions_) / elapsed);
                finish_run("done");
            } else if (!measuring_ && now > deadline_) {
                printf("client: timeout (%u of %u connections established)\n", established_,
                       cfg_.conns);
                rc_ = 1;
                finish_run("timeout");
            }
            return;
        case Mode::cps:
            if (measuring_ && elapsed >= cfg_.duration_s) {
                printf("client: cps conns=%u connections=%" PRIu64 " seconds=%.3f cps=%.0f\n",
                       cfg_.conns, completed_conns_, elapsed, double(completed_conns_) / elapsed);
                if (failed_) printf("client: %u connections failed\n", failed_);
                finish_run("done");
            }
            return;
        case Mode::bulk:
            if (measuring_ && elapsed >= cfg_.duration_s) {
                // Goodput: bytes the peer acknowledged.
                const uint64_t acked = bulk_conn_ ? tcp.stats(bulk_conn_).bytes_sent : 0;
                printf("client: bulk bytes=%" PRIu64 " seconds=%.3f gbps=%.3f\n", acked, elapsed,
                       double(acked) * 8 / elapsed / 1e9);
                finish_run("done");
            }
            return;
        case Mode::server:
            return;
    }
}

void Echo::finish_run(const char*) {
    finished_ = true;
    fflush(stdout);
    if (recv_out_) {
        fclose(recv_out_);
        recv_out_ = nullptr;
    }
    engine::stop_flag().store(true);
}

}  // namespace sluice::apps
