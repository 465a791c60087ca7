// sluice-pubsub-load: the pub/sub load generator (bench/pubsub/pubsub_load.hpp) as a Sluice TCP
// app on the engine (engine::Runtime), the "Sluice TCP transport" of bench/run_pubsub_bench.py:
// it drives sluice-broker over net_memif (two processes), or any RESP broker it can reach.
//
//   sluice-pubsub-load --port DEVICE --ip A.B.C.D/N --connect A.B.C.D:PORT [--subs N]
//       [--size P] [--duration S] [--window W] [--lag L] [--channel NAME]
//       [--setup-timeout S] [--drain-timeout S] [--max-conns N] [engine options]
//       [-- EAL options]
//
// The workload and the output are those of linux-pubsub-load (see pubsub_load.hpp): one
// publisher and N subscriber connections, opened at once from worker 0 (run it on one lcore),
// Nagle off on all of them; the clock is the TSC. The TCP configuration's max_conns is raised
// to N + 1 and some if it is below. The run ends by itself once the window and the drain are
// over: the connections are closed and the engine stopped.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <rte_cycles.h>
#include <rte_mbuf.h>

#include "bench/pubsub/pubsub_load.hpp"
#include "engine/options.hpp"
#include "engine/runtime.hpp"
#include "proto/tcp.hpp"

namespace sluice::bench {

class SluicePubSub {
  public:
    struct Config {
        PubSubConfig load;
        rte_be32_t dst = 0;
        uint16_t dst_port = 6379;
        proto::TcpConfig tcp;
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
    std::vector<uint8_t> out_;  // the publisher's bytes not yet taken by TCP: [head_, tail_)
    size_t head_ = 0, tail_ = 0;
};

void SluicePubSub::start(proto::Tcp& tcp, uint64_t now) {
    if (worker_ != 0) return;
    if (!core_.init(cfg_.load, rte_get_tsc_hz(), now)) {
        fprintf(stderr, "sluice-pubsub-load: %s\n", core_.error().c_str());
        rc_ = 2;
        finished_ = true;
        engine::stop_flag().store(true);
        return;
    }
    started_ = true;
    const size_t len = core_.publish_len();
    out_.resize(std::max<size_t>(len, std::min<size_t>(size_t(8) << 20, len * cfg_.load.window)));
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

void SluicePubSub::on_tcp_connected(proto::Tcp& tcp, proto::TcpConn* c) {
    Slot* s = slot(c);
    if (!s || finished_) return;
    s->up = true;
    core_.on_connected(s->id, rte_rdtsc());
    const std::string_view hello = core_.hello(s->id);
    if (!hello.empty() &&
        tcp.send_copy(c, hello.data(), uint32_t(hello.size())) != int(hello.size()))
        core_.fail("sending SUBSCRIBE", "the send queue did not take it");
}

void SluicePubSub::on_tcp_data(proto::Tcp& tcp, proto::TcpConn* c, rte_mbuf* m) {
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

void SluicePubSub::on_tcp_peer_fin(proto::Tcp& tcp, proto::TcpConn* c) {
    Slot* s = slot(c);
    if (s && !finished_) core_.on_closed(s->id, "FIN from the broker");
    tcp.close(c);
}

void SluicePubSub::on_tcp_writable(proto::Tcp& tcp, proto::TcpConn* c) {
    Slot* s = slot(c);
    if (s && s->id == PubSubLoad::kPublisher && !finished_) pump(tcp, rte_rdtsc());
}

void SluicePubSub::on_tcp_closed(proto::Tcp&, proto::TcpConn* c, proto::TcpCloseReason r) {
    Slot* s = slot(c);
    if (!s) return;
    c->user = nullptr;
    s->c = nullptr;
    if (!finished_) core_.on_closed(s->id, proto::tcp_close_reason_name(r));
}

void SluicePubSub::pump(proto::Tcp& tcp, uint64_t now) {
    Slot& p = slots_[PubSubLoad::kPublisher];
    if (!p.c || !p.up) return;
    if (head_ == tail_) head_ = tail_ = 0;
    if (core_.publishing()) {
        if (out_.size() - tail_ < core_.publish_len() && head_ > 0) {
            memmove(out_.data(), out_.data() + head_, tail_ - head_);
            tail_ -= head_;
            head_ = 0;
        }
        tail_ += core_.fill_publishes(out_.data() + tail_, out_.size() - tail_, now);
    }
    while (head_ < tail_) {
        const int n = tcp.send_copy(p.c, out_.data() + head_, uint32_t(tail_ - head_));
        if (n <= 0) return;  // on_tcp_writable resumes (or the connection is gone)
        head_ += size_t(n);
    }
}

void SluicePubSub::poll(proto::Tcp& tcp, uint64_t now) {
    if (worker_ != 0 || finished_ || !started_) return;
    core_.tick(now);
    if (!core_.done()) {
        pump(tcp, now);
        return;
    }
    finish(tcp);
}

void SluicePubSub::finish(proto::Tcp& tcp) {
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

namespace {

bool parse_u64(const std::string& v, uint64_t lo, uint64_t hi, uint64_t& out, std::string& err,
               const char* what) {
    char* end = nullptr;
    errno = 0;
    const unsigned long long x = strtoull(v.c_str(), &end, 10);
    if (v.empty() || *end || errno || x < lo || x > hi) {
        // The engine's message names the option already; `what` only for parts of a value.
        err = what ? std::string(what) + ": " : std::string();
        err += "expected an integer in " + std::to_string(lo) + ".." + std::to_string(hi) +
               ", got '" + v + "'";
        return false;
    }
    out = x;
    return true;
}

bool parse_secs(const std::string& v, double& out, std::string& err) {
    char* end = nullptr;
    errno = 0;
    const double x = strtod(v.c_str(), &end);
    if (v.empty() || *end || errno || !(x > 0) || x > 1e6) {
        err = "expected seconds > 0, got '" + v + "'";
        return false;
    }
    out = x;
    return true;
}

}  // namespace
}  // namespace sluice::bench

int main(int argc, char** argv) {
    using namespace sluice;
    using bench::PubSubLoad;
    bench::SluicePubSub::Config cfg;
    bool connect = false;
    auto num = [](uint64_t lo, uint64_t hi, auto set) {
        return [=](const std::string& v, std::string& err) {
            uint64_t x;
            if (!bench::parse_u64(v, lo, hi, x, err, nullptr)) return false;
            set(x);
            return true;
        };
    };
    auto secs = [](double& dst) {
        return [&dst](const std::string& v, std::string& err) {
            return bench::parse_secs(v, dst, err);
        };
    };
    std::vector<engine::AppOption> app_opts = {
        {"connect", true, "the broker: A.B.C.D:PORT",
         [&](const std::string& v, std::string& err) {
             const size_t colon = v.rfind(':');
             uint64_t port = 0;
             if (colon == std::string::npos || !engine::parse_ipv4(v.substr(0, colon), cfg.dst) ||
                 !bench::parse_u64(v.substr(colon + 1), 1, 65535, port, err, "port")) {
                 if (err.empty()) err = "expected A.B.C.D:PORT, got '" + v + "'";
                 return false;
             }
             cfg.dst_port = uint16_t(port);
             return connect = true;
         }},
        {"subs", true, "subscriber connections (default 1)",
         num(1, PubSubLoad::kMaxSubs, [&](uint64_t x) { cfg.load.subs = uint32_t(x); })},
        {"size", true, "payload bytes, >= 16 (default 16)",
         num(PubSubLoad::kMinSize, PubSubLoad::kMaxSize,
             [&](uint64_t x) { cfg.load.size = uint32_t(x); })},
        {"window", true, "PUBLISH commands without their reply, at most (default 64)",
         num(1, PubSubLoad::kMaxWindow, [&](uint64_t x) { cfg.load.window = uint32_t(x); })},
        {"lag", true, "messages not yet at every subscriber, at most (default: --window)",
         num(1, PubSubLoad::kMaxWindow, [&](uint64_t x) { cfg.load.lag = uint32_t(x); })},
        {"channel", true, "the channel (default sluice-bench)",
         [&](const std::string& v, std::string& err) {
             if (v.empty() || v.size() > PubSubLoad::kMaxChannel) {
                 err = "1..128 bytes";
                 return false;
             }
             cfg.load.channel = v;
             return true;
         }},
        {"setup-timeout", true, " seconds to connect and subscribe, at most (default 30)",
         secs(cfg.load.setup_s)},
        {"drain-timeout", true,
         " seconds after the window for the last replies and deliveries (default 10)",
         secs(cfg.load.drain_s)},
        {"max-conns", true, "TCP connections per core (default 16384; at least subs + 65)",
         num(16, 1 << 20, [&](uint64_t x) { cfg.tcp.max_conns = uint32_t(x); })},
    };
    engine::Options opt;
    const engine::ParseResult r =
        engine::parse_options(argc, argv, "sluice-pubsub-load", app_opts, opt);
    if (r.status == engine::ParseStatus::help) {
        printf("%s", r.message.c_str());
        return 0;
    }
    if (r.status == engine::ParseStatus::error) {
        fprintf(stderr, "%s\n", r.message.c_str());
        return 2;
    }
    if (!connect) {
        fprintf(stderr, "sluice-pubsub-load: --connect A.B.C.D:PORT is required\n");
        return 2;
    }
    // The window starts once everyone is subscribed: the app stops the run itself.
    cfg.load.duration_s = opt.duration_s > 0 ? opt.duration_s : 5;
    opt.duration_s = 0;
    return engine::Runtime<bench::SluicePubSub>::run("sluice-pubsub-load", opt, cfg);
}
