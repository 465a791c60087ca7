// The fixture of the protocol-stack tests: one proto::Stack on the shared pool, a test app,
// a virtual clock and a TX stage that finishes checksums in software and hands the frames
// back as bytes. Every test ends with the pool full again (checked in TearDown, after the
// Stack, which frees what it still holds, is destroyed).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <set>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "proto/stack.hpp"
#include "tests/unit/packet_builder.hpp"
#include "tests/unit/unit_env.hpp"

namespace sluice::test {

// Our interface and its neighbours.
inline constexpr rte_ether_addr kOurMac = mac(0x02, 0x00, 0x00, 0x00, 0x00, 0x01);
inline constexpr uint32_t kOurIp = ip(198, 18, 0, 2);  // /24
inline constexpr rte_ether_addr kPeerMac = mac(0x02, 0x00, 0x00, 0x00, 0x00, 0x02);
inline constexpr uint32_t kPeerIp = ip(198, 18, 0, 1);
inline constexpr rte_ether_addr kOtherMac = mac(0x02, 0x00, 0x00, 0x00, 0x00, 0x03);
inline constexpr uint32_t kOtherIp = ip(198, 18, 0, 3);
inline constexpr uint32_t kGatewayIp = ip(198, 18, 0, 254);
inline constexpr rte_ether_addr kGatewayMac = mac(0x02, 0x00, 0x00, 0x00, 0x00, 0xfe);
inline constexpr uint32_t kRemoteIp = ip(203, 0, 113, 9);  // off-link
inline constexpr uint16_t kEchoPort = 7;
inline constexpr uint16_t kClosedPort = 9;
inline constexpr uint16_t kPeerPort = 40000;

// The virtual clock: 1 GHz "TSC", starting 1000 s in.
inline constexpr uint64_t kHz = 1'000'000'000;
inline constexpr uint64_t kT0 = 1000 * kHz;
inline constexpr uint64_t ms(uint64_t n) {
    return n * kHz / 1000;
}
inline constexpr uint64_t sec(uint64_t n) {
    return n * kHz;
}

// A proto::UdpApp: serves `open_ports`, records every datagram, then reflects it (or frees
// it when `reflect` is false).
struct TestApp {
    std::set<uint16_t> open_ports{kEchoPort};
    bool reflect = true;
    struct Seen {
        Bytes payload;
        uint16_t sport, dport;
        bool reassembled;
        uint16_t nb_segs;
    };
    std::vector<Seen> seen;

    bool udp_port_open(uint16_t port) const { return open_ports.count(port) != 0; }
    void on_udp(proto::Stack& s, proto::UdpDatagram& d) {
        Seen x;
        x.payload.resize(d.payload_len);
        const void* p = rte_pktmbuf_read(d.m, d.payload_off, d.payload_len, x.payload.data());
        if (p != nullptr && p != x.payload.data()) memcpy(x.payload.data(), p, d.payload_len);
        x.sport = rte_be_to_cpu_16(d.udp->src_port);
        x.dport = rte_be_to_cpu_16(d.udp->dst_port);
        x.reassembled = d.reassembled;
        x.nb_segs = d.m->nb_segs;
        seen.push_back(std::move(x));
        if (reflect)
            s.reflect_udp(d);
        else
            rte_pktmbuf_free(d.m);
    }
};
static_assert(proto::UdpApp<TestApp>);

proto::StackConfig default_config();

class StackTest : public ::testing::Test {
  protected:
    void SetUp() override;
    void TearDown() override;

    // Replaces the stack with a fresh one configured with `c`.
    void start(const proto::StackConfig& c);

    proto::Stack& stack() { return *stack_; }
    const proto::Counters& counters() const { return stack_->counters(); }
    uint64_t dropped(proto::Drop d) const { return stack_->counters().dropped(d); }

    // Feeds frames to the stack as one burst, at `now_`.
    void rx(const Bytes& frame, uint64_t ol_flags = 0);
    void rx_burst(const std::vector<Bytes>& frames, uint64_t ol_flags = 0);
    void rx_mbufs(std::vector<rte_mbuf*> pkts);

    // The TX stage: finishes checksums in software (pmd::finish_tx_checksums<false, false>),
    // copies every frame out, frees the mbufs and empties the batch. Every frame is checked on
    // the way: from our MAC; IPv4 well formed with valid checksums (valid_ipv4); ARP from us.
    std::vector<Frame> transmit();

    // The drop counters are exactly `expected` (every other reason 0).
    void expect_drops(std::initializer_list<std::pair<proto::Drop, uint64_t>> expected);

    // Frames from the peer (peer MAC/IP to our MAC/IP).
    Bytes udp_frame(const Bytes& payload, uint16_t dport = kEchoPort, const Ip4* ip_over = nullptr,
                    const UdpOpts& uo = {}) const;
    Ip4 peer_ip4(uint8_t proto = kProtoUdp) const;
    Bytes eth_from_peer(const Bytes& l3, uint16_t type = kEthTypeIpv4) const {
        return ether(kOurMac, kPeerMac, type, l3);
    }

    // An IPv4/UDP packet we originate, ready for Stack::send_ipv4 (offload contract: IP
    // checksum 0 with TX_IP_CKSUM, UDP pseudo-header sum with TX_UDP_CKSUM).
    rte_mbuf* make_outgoing_udp(uint32_t dst, const Bytes& payload, uint16_t dport = 5000);

    proto::StackConfig cfg_{};
    std::unique_ptr<proto::Stack> stack_;
    TestApp app_;
    uint64_t now_ = kT0;
};

}  // namespace sluice::test
