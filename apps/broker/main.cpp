// sluice-broker --port DEVICE --ip A.B.C.D/N [--listen 6379] [--client-output-limit H[,S,T]]
//               [--proto-max-bulk-len N] [--copy-below N] [engine options] [-- EAL options]
// A Redis-compatible publish/subscribe broker (apps/broker/DESIGN.md): point redis-cli at it.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "apps/broker/broker.hpp"
#include "engine/options.hpp"
#include "engine/runtime.hpp"

namespace {

bool parse_u64(const std::string& v, uint64_t lo, uint64_t hi, uint64_t& out) {
    char* end = nullptr;
    errno = 0;
    const unsigned long long x = strtoull(v.c_str(), &end, 10);
    if (v.empty() || *end || errno || x < lo || x > hi) return false;
    out = x;
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    using namespace sluice;
    apps::broker::Broker::Config cfg;
    cfg.tcp.max_conns = 16384;
    std::vector<engine::AppOption> app_opts = {
        {"listen", true, "TCP port to serve (default 6379)",
         [&](const std::string& v, std::string& err) {
             uint64_t x;
             if (!parse_u64(v, 1, 65535, x)) {
                 err = "--listen: expected a port, got '" + v + "'";
                 return false;
             }
             cfg.listen_port = uint16_t(x);
             return true;
         }},
        {"client-output-limit", true,
         "pub/sub clients' output limit in bytes: HARD[,SOFT,SECONDS] (default "
         "33554432,8388608,60, Redis's)",
         [&](const std::string& v, std::string& err) {
             uint64_t h = 0, s = 0, t = 0;
             const size_t c1 = v.find(',');
             bool ok;
             if (c1 == std::string::npos) {
                 ok = parse_u64(v, 0, uint64_t(1) << 40, h);
             } else {
                 const size_t c2 = v.find(',', c1 + 1);
                 ok = c2 != std::string::npos &&
                      parse_u64(v.substr(0, c1), 0, uint64_t(1) << 40, h) &&
                      parse_u64(v.substr(c1 + 1, c2 - c1 - 1), 0, uint64_t(1) << 40, s) &&
                      parse_u64(v.substr(c2 + 1), 0, 86400, t);
             }
             if (!ok) {
                 err = "--client-output-limit: expected HARD[,SOFT,SECONDS], got '" + v + "'";
                 return false;
             }
             cfg.out_hard = h;
             if (c1 != std::string::npos) {
                 cfg.out_soft = s;
                 cfg.out_soft_s = uint32_t(t);
             }
             return true;
         }},
        {"proto-max-bulk-len", true, "the longest bulk argument accepted (default 536870912)",
         [&](const std::string& v, std::string& err) {
             uint64_t x;
             if (!parse_u64(v, 1, uint64_t(1) << 40, x)) {
                 err = "--proto-max-bulk-len: expected a positive integer, got '" + v + "'";
                 return false;
             }
             cfg.limits.max_bulk = x;
             return true;
         }},
        {"copy-below", true,
         "copy payloads shorter than N bytes into each subscriber's frame instead of sharing "
         "them by reference (default 128; 0: never)",
         [&](const std::string& v, std::string& err) {
             uint64_t x;
             if (!parse_u64(v, 0, 65536, x)) {
                 err = "--copy-below: expected 0..65536, got '" + v + "'";
                 return false;
             }
             cfg.copy_below = uint32_t(x);
             return true;
         }},
        {"max-conns", true, "TCP connections per core (default 16384)",
         [&](const std::string& v, std::string& err) {
             uint64_t x;
             if (!parse_u64(v, 16, 1 << 20, x)) {
                 err = "--max-conns: expected 16..1048576, got '" + v + "'";
                 return false;
             }
             cfg.tcp.max_conns = uint32_t(x);
             return true;
         }},
    };
    engine::Options opt;
    const engine::ParseResult r = engine::parse_options(argc, argv, "sluice-broker", app_opts, opt);
    if (const int rc = engine::parse_exit_code(r); rc >= 0) return rc;
    cfg.bus = std::make_shared<apps::broker::Bus>();
    cfg.bus->out_hard = cfg.out_hard;  // the limits every core applies (CONFIG SET changes them)
    cfg.bus->out_soft = cfg.out_soft;
    cfg.bus->out_soft_s = cfg.out_soft_s;
    return engine::Runtime<apps::broker::Broker>::run("sluice-broker", opt, cfg);
}
