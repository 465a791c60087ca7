#include "engine/options.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <arpa/inet.h>

namespace sluice::engine {

bool parse_ipv4(const std::string& s, rte_be32_t& out) {
    in_addr a{};
    // inet_pton accepts exactly dotted-quad decimal, no shorthand forms.
    if (inet_pton(AF_INET, s.c_str(), &a) != 1) return false;
    out = a.s_addr;
    return true;
}

bool parse_cidr(const std::string& s, rte_be32_t& ip, uint8_t& prefix) {
    const size_t slash = s.find('/');
    if (slash == std::string::npos) return false;
    if (!parse_ipv4(s.substr(0, slash), ip)) return false;
    const std::string p = s.substr(slash + 1);
    if (p.empty() || p.size() > 2) return false;
    for (char c : p)
        if (c < '0' || c > '9') return false;
    const int n = atoi(p.c_str());
    if (n < 1 || n > 32) return false;
    prefix = uint8_t(n);
    return true;
}

std::string format_ipv4(rte_be32_t ip) {
    char buf[INET_ADDRSTRLEN];
    in_addr a{};
    a.s_addr = ip;
    inet_ntop(AF_INET, &a, buf, sizeof buf);
    return buf;
}

// Seconds in (0, max].
static bool parse_seconds(const std::string& s, double max, double& out) {
    if (s.empty()) return false;
    char* end = nullptr;
    const double d = strtod(s.c_str(), &end);
    if (*end != '\0' || !(d > 0) || d > max) return false;
    out = d;
    return true;
}

static bool parse_uint(const std::string& s, uint64_t max, uint64_t& out) {
    if (s.empty() || s.size() > 20) return false;
    for (char c : s)
        if (c < '0' || c > '9') return false;
    errno = 0;
    const unsigned long long v = strtoull(s.c_str(), nullptr, 10);
    if (errno != 0 || v > max) return false;
    out = v;
    return true;
}

bool parse_port_list(const std::string& s, const std::function<void(uint16_t, uint16_t)>& set,
                     std::string& error) {
    if (s.empty()) {
        error = "empty port list";
        return false;
    }
    size_t pos = 0;
    while (pos <= s.size()) {
        const size_t comma = s.find(',', pos);
        const std::string item =
            s.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
        const size_t dash = item.find('-');
        uint64_t lo = 0, hi = 0;
        const bool ok = dash == std::string::npos
                            ? parse_uint(item, 65535, lo) && (hi = lo, true)
                            : parse_uint(item.substr(0, dash), 65535, lo) &&
                                  parse_uint(item.substr(dash + 1), 65535, hi);
        if (!ok || lo > hi) {
            error = "bad port or range '" + item + "' (expected N or N-M, 0..65535)";
            return false;
        }
        set(uint16_t(lo), uint16_t(hi));
        if (comma == std::string::npos) break;
        pos = comma + 1;
    }
    return true;
}

static std::string usage(const char* app, const std::vector<AppOption>& app_options) {
    std::string u =
        std::string("usage: ") + app +
        " --port DEVICE --ip A.B.C.D/N [options] [-- EAL options]\n"
        "\n"
        "  --port DEVICE       PCI address (0000:01:00.0) or vdev devargs\n"
        "                      (net_tap0,iface=sl0  net_af_packet0,iface=veth0 ...)\n"
        "  --ip A.B.C.D/N      our address and on-link prefix\n"
        "  --gateway A.B.C.D   default gateway for off-link destinations\n"
        "  --mtu N             IP MTU (576..9000, default 1500; TCP segments fill it; a port\n"
        "                      that cannot carry it keeps its own, said on stderr)\n"
        "  --burst N           RX/TX burst size (1..512, default 32)\n"
        "  --duration SEC      stop by itself after SEC seconds\n"
        "  --linger SEC        once the workers stop, print a line with 'lingering' and keep\n"
        "                      the port open until SIGINT/SIGTERM (at most SEC s)\n"
        "  --quiet             no live rate line\n"
        "  --no-offload        compute checksums in software even if the port can\n"
        "  --soft-rss          spread flows over workers with the software-RSS stage\n"
        "  --queues-without-rss  an RX queue per worker on a port without RSS (memif,\n"
        "                      net_ring: the peer picks the queue; for stateless apps)\n"
        "  --impair SPEC       inject faults: loss=P,reorder=P,dup=P,corrupt=P,delay=2ms,\n"
        "                      seed=N (rx: or tx: before a key: one direction only)\n"
        "  --mac MAC           the MAC the stack answers to (default: the port's)\n"
        "  --seed COUNT,SIZE   inject COUNT self-addressed UDP frames of SIZE bytes at\n"
        "                      start (benchmarks on a loopback port: net_ring0)\n";
    for (const AppOption& o : app_options) {
        std::string left = std::string("  --") + o.name + (o.takes_value ? " VALUE" : "");
        // A long option takes a line of its own, its text on the next, aligned.
        left = left.size() < 22 ? left.append(22 - left.size(), ' ')
                                : left + "\n" + std::string(22, ' ');
        u += left + o.help + "\n";
    }
    u += "  --help              this text\n"
         "\nEAL options after -- (e.g. -l 0,1  --file-prefix NAME  --huge-dir DIR).\n";
    return u;
}

ParseResult parse_options(int argc, const char* const* argv, const char* app_name,
                          const std::vector<AppOption>& app_options, Options& out) {
    ParseResult r;
    auto fail = [&](const std::string& msg) {
        r.status = ParseStatus::error;
        r.message = std::string(app_name) + ": " + msg + " (see --help)";
        return r;
    };
    bool have_ip = false;
    int i = 1;
    for (; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg == "--") {
            ++i;
            break;
        }
        if (arg == "--help" || arg == "-h") {
            r.status = ParseStatus::help;
            r.message = usage(app_name, app_options);
            return r;
        }
        if (arg.rfind("--", 0) != 0) return fail("unexpected argument '" + arg + "'");
        std::string name = arg.substr(2), value;
        bool inline_value = false;
        if (const size_t eq = name.find('='); eq != std::string::npos) {
            value = name.substr(eq + 1);
            name = name.substr(0, eq);
            inline_value = true;
        }
        auto need_value = [&]() -> bool {
            if (inline_value) return true;
            if (i + 1 >= argc) return false;
            value = argv[++i];
            return true;
        };
        uint64_t n = 0;
        if (name == "port") {
            if (!need_value() || value.empty()) return fail("--port needs a device");
            out.port = value;
        } else if (name == "ip") {
            if (!need_value() || !parse_cidr(value, out.ip, out.prefix_len))
                return fail("--ip needs A.B.C.D/N, got '" + value + "'");
            have_ip = true;
        } else if (name == "gateway") {
            if (!need_value() || !parse_ipv4(value, out.gateway))
                return fail("--gateway needs A.B.C.D, got '" + value + "'");
        } else if (name == "mtu") {
            if (!need_value() || !parse_uint(value, 9000, n) || n < 576)
                return fail("--mtu needs 576..9000, got '" + value + "'");
            out.mtu = uint16_t(n);
        } else if (name == "burst") {
            if (!need_value() || !parse_uint(value, 512, n) || n < 1)
                return fail("--burst needs 1..512, got '" + value + "'");
            out.burst = uint16_t(n);
        } else if (name == "duration") {
            if (!need_value() || !parse_seconds(value, 1e7, out.duration_s))
                return fail("--duration needs seconds > 0, got '" + value + "'");
        } else if (name == "linger") {
            if (!need_value() || !parse_seconds(value, 3600, out.linger_s))
                return fail("--linger needs seconds in (0, 3600], got '" + value + "'");
        } else if (name == "mac") {
            if (!need_value() || rte_ether_unformat_addr(value.c_str(), &out.mac) != 0 ||
                rte_is_multicast_ether_addr(&out.mac) || rte_is_zero_ether_addr(&out.mac))
                return fail("--mac needs a unicast XX:XX:XX:XX:XX:XX, got '" + value + "'");
            out.mac_set = true;
        } else if (name == "seed") {
            uint64_t count = 0, size = 0;
            size_t comma = std::string::npos;
            if (!need_value() || (comma = value.find(',')) == std::string::npos ||
                !parse_uint(value.substr(0, comma), 65536, count) || count == 0 ||
                !parse_uint(value.substr(comma + 1), 9014, size) || size < 60)
                return fail("--seed needs COUNT,SIZE (1..65536 frames of 60..9014 bytes), got '" +
                            value + "'");
            out.seed_count = uint32_t(count);
            out.seed_size = uint16_t(size);
        } else if (name == "quiet" && !inline_value) {
            out.quiet = true;
        } else if (name == "no-offload" && !inline_value) {
            out.no_offload = true;
        } else if (name == "soft-rss" && !inline_value) {
            out.soft_rss = true;
        } else if (name == "impair") {
            std::string err;
            if (!need_value() || !pmd::parse_impair(value, out.impair, err))
                return fail("--impair: " + (err.empty() ? std::string("needs a value") : err));
        } else if (name == "queues-without-rss" && !inline_value) {
            out.queues_without_rss = true;
        } else {
            const AppOption* found = nullptr;
            for (const AppOption& o : app_options)
                if (name == o.name) found = &o;
            if (!found) return fail("unknown option '" + arg + "'");
            if (found->takes_value) {
                if (!need_value()) return fail("--" + name + " needs a value");
            } else if (inline_value) {
                return fail("--" + name + " takes no value");
            }
            std::string err;
            if (!found->apply(value, err)) return fail("--" + name + ": " + err);
        }
    }
    for (; i < argc; ++i) out.eal_args.emplace_back(argv[i]);
    if (out.port.empty()) return fail("--port is required");
    if (!have_ip) return fail("--ip is required");
    if (out.gateway != 0) {
        const rte_be32_t mask = rte_cpu_to_be_32(~uint32_t{0} << (32 - out.prefix_len));
        if (((out.gateway ^ out.ip) & mask) != 0)
            return fail("--gateway " + format_ipv4(out.gateway) + " is not on-link for --ip");
    }
    return r;
}

int parse_exit_code(const ParseResult& r) {
    if (r.status == ParseStatus::help) {
        printf("%s", r.message.c_str());
        return 0;
    }
    if (r.status == ParseStatus::error) {
        fprintf(stderr, "%s\n", r.message.c_str());
        return 2;
    }
    return -1;
}

}  // namespace sluice::engine
