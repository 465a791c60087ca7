// sluice-echo --port DEVICE --ip A.B.C.D/N [--listen PORT] [--discard] [engine options]
//             [-- EAL options]                                       TCP echo / discard server
// sluice-echo ... --connect A.B.C.D:PORT [--conns N] [--bytes N | --send-file F]
//             [--recv-file F] [--verify] [--timeout S]               transfer client
// sluice-echo ... --connect A.B.C.D:PORT (--rr SIZE | --cps | --bulk) [--conns N]
//             [--duration S]                                         benchmark client
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>

#include "apps/echo/echo.hpp"
#include "engine/options.hpp"
#include "engine/runtime.hpp"

namespace {

bool parse_u64(const std::string& v, uint64_t lo, uint64_t hi, uint64_t& out, std::string& err,
               const char* what) {
    char* end = nullptr;
    errno = 0;
    const unsigned long long x = strtoull(v.c_str(), &end, 10);
    if (v.empty() || *end || errno || x < lo || x > hi) {
        err = std::string(what) + ": expected an integer in " + std::to_string(lo) + ".." +
              std::to_string(hi) + ", got '" + v + "'";
        return false;
    }
    out = x;
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    using namespace sluice;
    apps::Echo::Config cfg;
    bool connect = false, rr = false, cps = false, bulk = false;
    std::string send_file;
    auto num = [](uint64_t lo, uint64_t hi, auto set, const char* what) {
        return [=](const std::string& v, std::string& err) {
            uint64_t x;
            if (!parse_u64(v, lo, hi, x, err, what)) return false;
            set(x);
            return true;
        };
    };
    std::vector<engine::AppOption> app_opts = {
        {"listen", true, "server: TCP port to serve (default 7)",
         num(
             1, 65535, [&](uint64_t x) { cfg.listen_port = uint16_t(x); }, "--listen")},
        {"discard", false, "server: discard (RFC 863) instead of echo (RFC 862)",
         [&](const std::string&, std::string&) { return cfg.discard = true; }},
        {"connect", true, "client: connect to A.B.C.D:PORT",
         [&](const std::string& v, std::string& err) {
             const size_t colon = v.rfind(':');
             uint64_t port = 0;
             if (colon == std::string::npos || !engine::parse_ipv4(v.substr(0, colon), cfg.dst) ||
                 !parse_u64(v.substr(colon + 1), 1, 65535, port, err, "--connect port")) {
                 if (err.empty()) err = "--connect: expected A.B.C.D:PORT, got '" + v + "'";
                 return false;
             }
             cfg.dst_port = uint16_t(port);
             return connect = true;
         }},
        {"conns", true, "client: concurrent connections (default 1)",
         num(
             1, 60000, [&](uint64_t x) { cfg.conns = uint32_t(x); }, "--conns")},
        {"bytes", true, "client: bytes each connection sends (a fixed pseudorandom pattern)",
         num(
             0, uint64_t(1) << 40, [&](uint64_t x) { cfg.bytes = x; }, "--bytes")},
        {"send-file", true, "client: each connection sends this file's contents",
         [&](const std::string& v, std::string&) {
             send_file = v;
             return true;
         }},
        {"recv-file", true, "client: write what connection 0 receives to this file",
         [&](const std::string& v, std::string&) {
             cfg.recv_file = v;
             return true;
         }},
        {"verify", false, "client: check that what comes back equals what was sent",
         [&](const std::string&, std::string&) { return cfg.verify = true; }},
        {"timeout", true, "client: give up after this many seconds (default 60)",
         num(
             1, 86400, [&](uint64_t x) { cfg.timeout_s = double(x); }, "--timeout")},
        {"rr", true, "client: request/response with SIZE-byte messages",
         num(
             1, 65536, [&](uint64_t x) { cfg.size = uint32_t(x), rr = true; }, "--rr")},
        {"cps", false, "client: connect, one request, close, repeat",
         [&](const std::string&, std::string&) { return cps = true; }},
        {"bulk", false, "client: stream to a discard server on one connection",
         [&](const std::string&, std::string&) { return bulk = true; }},
        {"zero-copy", false,
         "client --bulk: send mbufs over one shared buffer by reference (no copy)",
         [&](const std::string&, std::string&) { return cfg.zero_copy = true; }},
        {"size", true, "client: message size for --cps, write size for --bulk",
         num(
             1, 65536, [&](uint64_t x) { cfg.size = uint32_t(x); }, "--size")},
        {"cc", true, "TCP congestion control: cubic (default) or newreno",
         [&](const std::string& v, std::string& err) {
             if (v == "cubic")
                 cfg.tcp.cc = proto::TcpCcAlgo::cubic;
             else if (v == "newreno")
                 cfg.tcp.cc = proto::TcpCcAlgo::newreno;
             else {
                 err = "--cc: cubic or newreno, got '" + v + "'";
                 return false;
             }
             return true;
         }},
        {"rto-min-ms", true, "TCP minimum retransmission timeout (default 200)",
         num(
             1, 60000, [&](uint64_t x) { cfg.tcp.rto_min_ms = uint32_t(x); }, "--rto-min-ms")},
        {"msl-ms", true, "TCP maximum segment lifetime; TIME-WAIT is twice it (default 30000)",
         num(
             1, 600000, [&](uint64_t x) { cfg.tcp.msl_ms = uint32_t(x); }, "--msl-ms")},
        {"max-conns", true, "TCP connections per core (default 16384)",
         num(
             16, 1 << 20, [&](uint64_t x) { cfg.tcp.max_conns = uint32_t(x); }, "--max-conns")},
        {"ecn", false, "TCP: ask for ECN on connections we open (RFC 3168)",
         [&](const std::string&, std::string&) { return cfg.tcp.ecn = true; }},
        {"no-sack", false, "TCP: do not offer SACK",
         [&](const std::string&, std::string&) { return !(cfg.tcp.sack = false); }},
        {"no-timestamps", false, "TCP: do not offer timestamps",
         [&](const std::string&, std::string&) { return !(cfg.tcp.timestamps = false); }},
        {"no-tlp", false, "TCP: no tail loss probes (RFC 8985 7); the RTO alone",
         [&](const std::string&, std::string&) { return !(cfg.tcp.tlp = false); }},
    };
    engine::Options opt;
    const engine::ParseResult r = engine::parse_options(argc, argv, "sluice-echo", app_opts, opt);
    if (const int rc = engine::parse_exit_code(r); rc >= 0) return rc;
    if (cfg.zero_copy && !bulk) {
        fprintf(stderr, "sluice-echo: --zero-copy goes with --bulk\n");
        return 2;
    }
    if (int(rr) + int(cps) + int(bulk) > 1 || ((rr || cps || bulk) && !connect)) {
        fprintf(stderr, "sluice-echo: --rr, --cps and --bulk are exclusive and need --connect\n");
        return 2;
    }
    if (!send_file.empty() && cfg.bytes) {
        fprintf(stderr, "sluice-echo: --bytes and --send-file are exclusive\n");
        return 2;
    }
    if (connect) {
        cfg.mode = rr     ? apps::Echo::Mode::rr
                   : cps  ? apps::Echo::Mode::cps
                   : bulk ? apps::Echo::Mode::bulk
                          : apps::Echo::Mode::transfer;
        if (cfg.mode != apps::Echo::Mode::transfer) {
            // The measurement window starts once connected: the app stops the run itself.
            cfg.duration_s = opt.duration_s > 0 ? opt.duration_s : 5;
            opt.duration_s = 0;
        }
    }
    if (!send_file.empty()) {
        std::ifstream in(send_file, std::ios::binary);
        if (!in) {
            fprintf(stderr, "sluice-echo: cannot read %s\n", send_file.c_str());
            return 2;
        }
        cfg.file = std::make_shared<const std::vector<uint8_t>>(std::istreambuf_iterator<char>(in),
                                                                std::istreambuf_iterator<char>());
    }
    return engine::Runtime<apps::Echo>::run("sluice-echo", opt, cfg);
}
