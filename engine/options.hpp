// The friendly command line shared by every Sluice app:
//   APP --port DEVICE --ip A.B.C.D/N [--gateway A.B.C.D] [engine options] [app options]
//       [-- EAL options]
// Parsing never exits by itself: it returns a status the app turns into exit code 2 (bad
// usage) or 0 (--help), so it can be tested.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <rte_byteorder.h>
#include <rte_ether.h>

#include "pmd/impair.hpp"

namespace sluice::engine {

struct Options {
    std::string port;   // --port: PCI address or vdev devargs
    rte_be32_t ip = 0;  // --ip A.B.C.D/N
    uint8_t prefix_len = 0;
    rte_be32_t gateway = 0;   // --gateway
    uint16_t mtu = 1500;      // --mtu
    uint16_t burst = 32;      // --burst (1..512)
    bool quiet = false;       // --quiet: no live rate line
    double duration_s = 0;    // --duration: stop by itself after this many seconds (0: never)
    double linger_s = 0;      // --linger: port kept open after the workers stop (see README)
    bool no_offload = false;  // --no-offload: checksums in software even if the port has them
    bool soft_rss = false;    // --soft-rss: force the software-RSS ring stage
    bool queues_without_rss = false;  // --queues-without-rss: a queue per worker even so
    pmd::ImpairConfig impair;         // --impair loss=..,reorder=..,dup=..,corrupt=..,delay=..
    bool mac_set = false;             // --mac: the MAC the stack answers to (default: the port's)
    rte_ether_addr mac{};
    uint32_t seed_count = 0;  // --seed COUNT,SIZE: self-addressed UDP frames injected at start
    uint16_t seed_size = 0;   //   (benchmarks on a loopback port such as net_ring0)
    std::vector<std::string> eal_args;  // after "--"
};

// An app-specific option: called with the value (or "" for flags). Return false when the value
// is malformed; `error` then explains.
struct AppOption {
    const char* name;  // without the leading "--"
    bool takes_value;
    const char* help;
    std::function<bool(const std::string& value, std::string& error)> apply;
};

enum class ParseStatus { ok, help, error };

struct ParseResult {
    ParseStatus status = ParseStatus::ok;
    std::string message;  // the error, or the usage text for --help
};

ParseResult parse_options(int argc, const char* const* argv, const char* app_name,
                          const std::vector<AppOption>& app_options, Options& out);

// What a main does with the result: -1 to go on; else prints the usage (--help, exit 0) or
// the error (exit 2) and returns the exit code.
int parse_exit_code(const ParseResult& r);

// Helpers, exposed for tests and apps.
bool parse_ipv4(const std::string& s, rte_be32_t& out);
bool parse_cidr(const std::string& s, rte_be32_t& ip, uint8_t& prefix);
std::string format_ipv4(rte_be32_t ip);
// "7,9000-9100" -> calls set(lo, hi) per range; false on syntax or range errors.
bool parse_port_list(const std::string& s, const std::function<void(uint16_t, uint16_t)>& set,
                     std::string& error);

}  // namespace sluice::engine
