// ICMP (RFC 792; RFC 1122 3.2.2).
#include "tests/unit/stack_fixture.hpp"

namespace sluice::test {
namespace {

using proto::Drop;

class Icmp : public StackTest {
  protected:
    Bytes icmp_frame(const Bytes& msg) const {
        return eth_from_peer(ipv4(peer_ip4(kProtoIcmp), msg));
    }
};

TEST_F(Icmp, EchoRequestAnsweredInPlace) {
    const Bytes data = pattern(56, 21);
    rx(icmp_frame(icmp_echo_request(0xbeef, 0x0102, data)));
    const auto out = transmit();
    ASSERT_EQ(out.size(), 1u);
    const Frame& f = out[0];
    EXPECT_TRUE(valid_ipv4(f));  // includes the ICMP checksum
    EXPECT_TRUE(same_mac(f.eth_dst(), kPeerMac));
    EXPECT_TRUE(same_mac(f.eth_src(), kOurMac));
    EXPECT_EQ(f.src(), kOurIp);
    EXPECT_EQ(f.dst(), kPeerIp);
    EXPECT_EQ(f.proto(), kProtoIcmp);
    EXPECT_EQ(f.ttl(), cfg_.ttl);
    EXPECT_EQ(f.icmp_type(), 0);
    EXPECT_EQ(f.icmp_code(), 0);
    EXPECT_EQ(f.icmp_id(), 0xbeef);
    EXPECT_EQ(f.icmp_seq(), 0x0102);
    EXPECT_EQ(f.icmp_data(), data);
    EXPECT_EQ(f.total_length(), 20u + 8 + 56);
    EXPECT_EQ(counters().icmp_echo_in, 1u);
    EXPECT_EQ(counters().icmp_echo_out, 1u);
    expect_drops({});
    EXPECT_EQ(rte_mempool_in_use_count(unit_pool()), 0u);  // answered in the same mbuf
}

TEST_F(Icmp, EchoReplyChecksumRightForManySizes) {
    // The reply's checksum is updated incrementally (RFC 1624): exercise odd sizes and
    // checksums near 0x0000/0xffff. (The all-zero message is EchoReplyOfAllZeroMessage.)
    for (size_t n = 0; n < 80; ++n) {
        for (uint16_t id : {uint16_t(0), uint16_t(0xffff), uint16_t(0x0800), uint16_t(n + 1)}) {
            const uint16_t seq = uint16_t(n == 0 && id == 0 ? 1 : n);
            rx(icmp_frame(icmp_echo_request(id, seq, pattern(n, uint8_t(n)))));
            const auto out = transmit();
            ASSERT_EQ(out.size(), 1u);
            ASSERT_TRUE(valid_ipv4(out[0])) << "data " << n << " id " << id;
            EXPECT_EQ(out[0].icmp_type(), 0);
            EXPECT_EQ(out[0].icmp_id(), id);
            EXPECT_EQ(out[0].icmp_seq(), seq);
        }
    }
    expect_drops({});
}

TEST_F(Icmp, EchoReplyOfAllZeroMessage) {
    for (size_t n : {size_t(0), size_t(2), size_t(56)}) {
        rx(icmp_frame(icmp_echo_request(0, 0, Bytes(n, 0))));
        const auto out = transmit();
        ASSERT_EQ(out.size(), 1u);
        EXPECT_EQ(out[0].icmp_type(), 0);
        EXPECT_EQ(get16(out[0].l4() + 2), 0xffff) << "data " << n;
        EXPECT_TRUE(valid_ipv4(out[0])) << "data " << n;
    }
}

TEST_F(Icmp, BadChecksumDropped_icmp_bad_checksum) {
    rx(icmp_frame(icmp_echo_request(1, 1, pattern(32), /*corrupt_checksum=*/true)));
    EXPECT_TRUE(transmit().empty());
    expect_drops({{Drop::icmp_bad_checksum, 1}});
    EXPECT_EQ(counters().icmp_echo_in, 0u);
}

TEST_F(Icmp, TruncatedDropped_icmp_truncated) {
    const Bytes msg = icmp_echo_request(1, 1, {});
    for (size_t n = 0; n < 8; ++n) rx(icmp_frame(Bytes(msg.begin(), msg.begin() + long(n))));
    EXPECT_TRUE(transmit().empty());
    expect_drops({{Drop::icmp_truncated, 8}});
}

TEST_F(Icmp, OtherTypesDropped_icmp_unhandled_type) {
    rx(icmp_frame(icmp(0, 0, 1, 1, pattern(8))));    // echo reply
    rx(icmp_frame(icmp(3, 3, 0, 0, pattern(28))));   // destination unreachable
    rx(icmp_frame(icmp(13, 0, 1, 1, pattern(12))));  // timestamp
    rx(icmp_frame(icmp(17, 0, 1, 1, pattern(4))));   // address mask request
    EXPECT_TRUE(transmit().empty());
    expect_drops({{Drop::icmp_unhandled_type, 4}});
}

}  // namespace
}  // namespace sluice::test
