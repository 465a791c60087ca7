// The pub/sub load generator (bench/pubsub/pubsub_load.hpp) as a Sluice TCP app: the app of
// sluice-pubsub-load (sluice_pubsub_load.cpp: on the engine Runtime, against sluice-broker over
// net_memif or any RESP broker) and of sluice-pubsub-wire-bench (sluice_pubsub_wire.cpp: against
// sluice-broker's Broker app in the same process, over pmd::Wire).
//
// One publisher and N subscriber connections, opened at once from worker 0 (other workers do
// nothing), Nagle off on all of them; the clock is the TSC. tcp_config raises max_conns to
// N + 1 and some if it is below. The run ends by itself once the window and the drain are over:
// the `pubsub:` lines are printed, the connections closed and engine::stop_flag() set.
#pragma once

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <rte_cycles.h>
#include <rte_mbuf.h>

#include "bench/pubsub/pubsub_load.hpp"
#include "engine/runtime.hpp"
#include "proto/tcp.hpp"

namespace sluice::bench {

// On cache lines of its own: the wire bench allocates it next to the broker, which runs on
// the other core.
class alignas(RTE_CACHE_LINE_SIZE) SluicePubSub {
  public:
    struct Config {
        PubSubConfig load;
        rte_be32_t dst = 0;
        uint16_t dst_port = 6379;
        proto::TcpConfig tcp;
        const char* prog = "sluice-pubsub-load";  // for its messages
    };

    SluicePubSub(const Config& c, unsigned worker) : cfg_(c), worker_(worker) {}
    ~SluicePubSub() {
        // Stopped from outside (a signal) before the run was over: say so.
        if (worker_ == 0 && started_ && !finished_) {
            core_.fail("interrupted");
            core_.report(stdout, stderr);
        }
    }

    bool udp_port_open(uint16_t) const { return false; }
    void on_udp(proto::Stack&, proto::UdpDatagram& d) { rte_pktmbuf_free(d.m); }

    void tcp_config(proto::TcpConfig& t) {
        const uint16_t mss = t.mss;
        t = cfg_.tcp;
        t.mss = std::min(t.mss, mss);
        t.max_conns = std::max<uint32_t>(t.max_conns, cfg_.load.subs + 1 + 64);
    }

    void start(proto::Tcp& tcp, uint64_t now);
    void poll(proto::Tcp& tcp, uint64_t now);
    int exit_code() const { return worker_ != 0 ? 0 : finished_ ? rc_ : 1; }

    void on_tcp_connected(proto::Tcp& tcp, proto::TcpConn* c);
    void on_tcp_data(proto::Tcp& tcp, proto::TcpConn* c, rte_mbuf* m);
    void on_tcp_peer_fin(proto::Tcp& tcp, proto::TcpConn* c);
    void on_tcp_writable(proto::Tcp& tcp, proto::TcpConn* c);
    void on_tcp_closed(proto::Tcp& tcp, proto::TcpConn* c, proto::TcpCloseReason r);

  private:
    struct Slot {
        proto::TcpConn* c = nullptr;
        uint32_t id = 0;
        bool up = false;
    };
    Slot* slot(proto::TcpConn* c) { return static_cast<Slot*>(c->user); }
    void pump(proto::Tcp& tcp, uint64_t now);
    void finish(proto::Tcp& tcp);

    Config cfg_;
    unsigned worker_;
    int rc_ = 1;
    bool started_ = false, finished_ = false;
    PubSubLoad core_;
    std::vector<Slot> slots_;
    PublishBuffer out_;  // the publisher's bytes not yet taken by TCP
};

inline void SluicePubSub::start(proto::Tcp& tcp, uint64_t now) {
    if (worker_ != 0) return;
    if (!core_.init(cfg_.load, rte_get_tsc_hz(), now)) {
        fprintf(stderr, "%s: %s\n", cfg_.prog, core_.error().c_str());
        rc_ = 2;
        finished_ = true;
        engine::stop_flag().store(true);
        return;
    }
    started_ = true;
    out_.size_for(core_, cfg_.load.window);
    slots_.resize(core_.conns());
    for (uint32_t id = 0; id < core_.conns(); ++id) {
        Slot& s = slots_[id];
        s.id = id;
        s.c = tcp.connect(cfg_.dst, cfg_.dst_port, now);
        if (!s.c) {
            char d[64];
            snprintf(d, sizeof d, "connection %u: no free port or connection slot", id);
            core_.fail("connect", d);
            return;
        }
        s.c->user = &s;
        tcp.set_nodelay(s.c, true);
    }
}

inline void SluicePubSub::on_tcp_connected(proto::Tcp& tcp, proto::TcpConn* c) {
    Slot* s = slot(c);
    if (!s || finished_) return;
    s->up = true;
    core_.on_connected(s->id, rte_rdtsc());
    const std::string_view hello = core_.hello(s->id);
    if (!hello.empty() &&
        tcp.send_copy(c, hello.data(), uint32_t(hello.size())) != int(hello.size()))
        core_.fail("sending SUBSCRIBE", "the send queue did not take it");
}

inline void SluicePubSub::on_tcp_data(proto::Tcp& tcp, proto::TcpConn* c, rte_mbuf* m) {
    Slot* s = slot(c);
    if (s && !finished_) {
        const uint64_t now = rte_rdtsc();
        for (rte_mbuf* seg = m; seg && !core_.done(); seg = seg->next)
            core_.on_data(s->id, rte_pktmbuf_mtod(seg, const uint8_t*), seg->data_len, now);
        rte_pktmbuf_free(m);
        // A reply or a delivery may have opened the window: the commands go out with this
        // iteration's flush.
        pump(tcp, now);
        return;
    }
    rte_pktmbuf_free(m);
}

inline void SluicePubSub::on_tcp_peer_fin(proto::Tcp& tcp, proto::TcpConn* c) {
    Slot* s = slot(c);
    if (s && !finished_) core_.on_closed(s->id, "FIN from the broker");
    tcp.close(c);
}

inline void SluicePubSub::on_tcp_writable(proto::Tcp& tcp, proto::TcpConn* c) {
    Slot* s = slot(c);
    if (s && s->id == PubSubLoad::kPublisher && !finished_) pump(tcp, rte_rdtsc());
}

inline void SluicePubSub::on_tcp_closed(proto::Tcp&, proto::TcpConn* c, proto::TcpCloseReason r) {
    Slot* s = slot(c);
    if (!s) return;
    c->user = nullptr;
    s->c = nullptr;
    if (!finished_) core_.on_closed(s->id, proto::tcp_close_reason_name(r));
}

inline void SluicePubSub::pump(proto::Tcp& tcp, uint64_t now) {
    Slot& p = slots_[PubSubLoad::kPublisher];
    if (!p.c || !p.up) return;
    out_.refill(core_, now);
    while (out_.size()) {
        const int n = tcp.send_copy(p.c, out_.data(), uint32_t(out_.size()));
        if (n <= 0) return;  // on_tcp_writable resumes (or the connection is gone)
        out_.consume(size_t(n));
    }
}

inline void SluicePubSub::poll(proto::Tcp& tcp, uint64_t now) {
    if (worker_ != 0 || finished_ || !started_) return;
    core_.tick(now);
    if (!core_.done()) {
        pump(tcp, now);
        return;
    }
    finish(tcp);
}

inline void SluicePubSub::finish(proto::Tcp& tcp) {
    finished_ = true;
    core_.report(stdout, stderr);
    rc_ = core_.exit_code();
    // FINs go out with this iteration's flush; the engine stops at the next.
    for (Slot& s : slots_) {
        if (!s.c) continue;
        s.c->user = nullptr;
        tcp.close(s.c);
        s.c = nullptr;
    }
    engine::stop_flag().store(true);
}

}  // namespace sluice::bench
