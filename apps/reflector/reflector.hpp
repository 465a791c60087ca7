// sluice-reflector: echoes every UDP datagram to its sender, payload byte-identical, in the
// mbuf it arrived in.
#pragma once

#include <bitset>
#include <memory>

#include "proto/stack.hpp"

namespace sluice::apps {

class Reflector {
  public:
    struct Config {
        std::shared_ptr<const std::bitset<65536>> ports;  // served UDP ports
    };

    Reflector(const Config& c, unsigned /*worker*/) : ports_(*c.ports) {}

    bool udp_port_open(uint16_t port) const { return ports_.test(port); }
    void on_udp(proto::Stack& s, proto::UdpDatagram& d) { s.reflect_udp(d); }

  private:
    std::bitset<65536> ports_;  // a copy per worker: no sharing on the fast path
};

}  // namespace sluice::apps
