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
// over: the connections are closed and the engine stopped. The app is SluicePubSub
// (sluice_pubsub_app.hpp), shared with sluice-pubsub-wire-bench.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench/pubsub/pubsub_load.hpp"
#include "bench/pubsub/sluice_pubsub_app.hpp"
#include "engine/options.hpp"
#include "engine/runtime.hpp"

namespace sluice::bench {
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
