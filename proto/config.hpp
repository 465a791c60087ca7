// Interface configuration of one Sluice stack instance (one per core, all identical).
#pragma once

#include <cstdint>

#include <rte_byteorder.h>
#include <rte_ether.h>

namespace sluice::proto {

struct StackConfig {
    rte_ether_addr mac{};
    rte_be32_t ip = 0;        // our address, network order
    uint8_t prefix_len = 24;  // CIDR prefix of the on-link subnet
    rte_be32_t gateway = 0;   // default gateway, network order; 0 = none (on-link only)
    uint16_t mtu = 1500;      // IP MTU of the port
    uint8_t ttl = 64;         // TTL of what we send (RFC 1700 / RFC 1122 3.2.1.7 default)
    uint64_t tsc_hz = 0;      // clock rate of the `now` values passed in (rte_get_tsc_hz())

    // ICMP error rate limit: token bucket (RFC 1812 4.3.2.8; RFC 1122 3.2.2).
    uint32_t icmp_rate_per_s = 1000;
    uint32_t icmp_burst = 100;

    // IPv4 reassembly (RFC 791 3.2, RFC 1122 3.3.2): bounded table, timeout.
    uint32_t frag_max_flows = 1024;
    uint32_t frag_timeout_ms = 5000;

    // ARP (RFC 826, RFC 1122 2.3.2.1): entry lifetime, retry interval and tries.
    uint32_t arp_timeout_s = 300;
    uint32_t arp_retry_ms = 1000;
    uint32_t arp_max_tries = 3;

    rte_be32_t netmask() const {
        return prefix_len == 0 ? 0 : rte_cpu_to_be_32(~uint32_t{0} << (32 - prefix_len));
    }
    bool on_link(rte_be32_t addr) const { return ((addr ^ ip) & netmask()) == 0; }
    rte_be32_t subnet_broadcast() const { return ip | ~netmask(); }
};

}  // namespace sluice::proto
