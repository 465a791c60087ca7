// sluice-reflector --port DEVICE --ip A.B.C.D/N [--gateway A.B.C.D] [--udp-ports LIST]
//                  [--quiet] [engine options] [-- EAL options]
#include <cstdio>

#include "apps/reflector/reflector.hpp"
#include "engine/options.hpp"
#include "engine/runtime.hpp"

int main(int argc, char** argv) {
    using namespace sluice;
    auto ports = std::make_shared<std::bitset<65536>>();
    bool ports_given = false;
    std::vector<engine::AppOption> app_opts = {
        {"udp-ports", true, "UDP ports to echo, e.g. 7,9000-9100 (default: all)",
         [&](const std::string& v, std::string& err) {
             ports_given = true;
             return engine::parse_port_list(
                 v,
                 [&](uint16_t lo, uint16_t hi) {
                     for (uint32_t p = lo; p <= hi; ++p) ports->set(p);
                 },
                 err);
         }},
    };
    engine::Options opt;
    const engine::ParseResult r =
        engine::parse_options(argc, argv, "sluice-reflector", app_opts, opt);
    if (const int rc = engine::parse_exit_code(r); rc >= 0) return rc;
    if (!ports_given) ports->set();
    apps::Reflector::Config cfg{ports};
    return engine::Runtime<apps::Reflector>::run("sluice-reflector", opt, cfg);
}
