// Building test frames byte by byte, and reading frames back.
//
// Frames are plain byte vectors (network order throughout), built from the outside in:
// ether(..., ipv4(..., udp(...))). Every field is computed correctly by default (lengths,
// checksums); each builder has knobs to override or corrupt exactly one field. Checksums are
// computed here independently of DPDK, so a test verifies the stack against a second
// implementation. Addresses are uint32_t in host order (ip(198, 18, 0, 2)).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <ostream>
#include <utility>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <rte_ether.h>
#include <rte_mbuf.h>

namespace sluice::test {

using Bytes = std::vector<uint8_t>;

inline constexpr uint16_t kEthTypeIpv4 = 0x0800;
inline constexpr uint16_t kEthTypeArp = 0x0806;
inline constexpr uint16_t kEthTypeIpv6 = 0x86dd;
inline constexpr uint16_t kEthTypeVlan = 0x8100;
inline constexpr uint8_t kProtoIcmp = 1;
inline constexpr uint8_t kProtoUdp = 17;
inline constexpr uint16_t kIpMF = 0x2000;
inline constexpr uint16_t kIpDF = 0x4000;

constexpr uint32_t ip(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
    return uint32_t(a) << 24 | uint32_t(b) << 16 | uint32_t(c) << 8 | d;
}
constexpr rte_ether_addr mac(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint8_t e, uint8_t f) {
    return rte_ether_addr{{a, b, c, d, e, f}};
}
inline constexpr rte_ether_addr kBroadcastMac = mac(0xff, 0xff, 0xff, 0xff, 0xff, 0xff);

bool same_mac(const rte_ether_addr& a, const rte_ether_addr& b);
std::string mac_str(const rte_ether_addr& m);
std::string ip_str(uint32_t host_order);
std::string hex(uint64_t v);  // "0x..."

// Big-endian field access.
inline uint16_t get16(const uint8_t* p) {
    return uint16_t(p[0] << 8 | p[1]);
}
inline uint32_t get32(const uint8_t* p) {
    return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
}
inline void put16(uint8_t* p, uint16_t v) {
    p[0] = uint8_t(v >> 8);
    p[1] = uint8_t(v);
}
inline void put32(uint8_t* p, uint32_t v) {
    p[0] = uint8_t(v >> 24);
    p[1] = uint8_t(v >> 16);
    p[2] = uint8_t(v >> 8);
    p[3] = uint8_t(v);
}

// RFC 1071 one's-complement arithmetic over big-endian 16-bit words (an odd last byte is
// padded with zero).
uint32_t sum_words(const uint8_t* p, size_t n, uint32_t sum = 0);
uint16_t fold(uint32_t sum);
// The checksum to store: ~fold(sum).
uint16_t checksum(const uint8_t* p, size_t n, uint32_t sum = 0);
// The pseudo-header sum of UDP/TCP (RFC 768).
uint32_t pseudo_sum(uint32_t src, uint32_t dst, uint8_t proto, uint16_t l4_len);
// True when the data, checksum field included, sums to 0xffff.
bool checksum_ok(const uint8_t* p, size_t n, uint32_t sum = 0);

// A recognisable payload: byte i is (seed + i * 7) & 0xff.
Bytes pattern(size_t n, uint8_t seed = 0);

// ---------------------------------------------------------------------------------------------
// Builders.

struct UdpOpts {
    std::optional<uint16_t> length;    // the UDP length field (default: 8 + payload)
    std::optional<uint16_t> checksum;  // the checksum field as is (0 = none)
    bool corrupt_checksum = false;     // a valid checksum, then one bit flipped
};
Bytes udp(uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport, const Bytes& payload,
          const UdpOpts& o = {});

// An ICMP message: type, code, the 4 bytes of "rest of header" (id, seq), data.
Bytes icmp(uint8_t type, uint8_t code, uint16_t id, uint16_t seq, const Bytes& data,
           bool corrupt_checksum = false);
inline Bytes icmp_echo_request(uint16_t id, uint16_t seq, const Bytes& data,
                               bool corrupt_checksum = false) {
    return icmp(8, 0, id, seq, data, corrupt_checksum);
}

struct Ip4 {
    uint32_t src = 0;
    uint32_t dst = 0;
    uint8_t proto = kProtoUdp;
    uint8_t ttl = 64;
    uint8_t tos = 0;
    uint16_t id = 0x4242;
    uint16_t frag = 0;  // flags and offset (in 8-byte units) as the 16-bit field
    Bytes options;      // padded with EOL to a multiple of 4
    uint8_t version = 4;
    std::optional<uint8_t> ihl;            // default: 5 + options / 4
    std::optional<uint16_t> total_length;  // default: header + payload
    std::optional<uint16_t> checksum;      // default: computed
    bool corrupt_checksum = false;
};
Bytes ipv4(const Ip4& h, const Bytes& payload);

// One fragment of the datagram whose whole payload is `whole`: it carries whole[off, off+len)
// at offset `off` (a multiple of 8 unless testing), with MF as given. The rest of `h` is kept
// (h.frag is replaced).
Bytes ipv4_fragment(Ip4 h, const Bytes& whole, size_t off, size_t len, bool more);
// Splits `whole` into fragments of `frag_payload` bytes (a multiple of 8).
std::vector<Bytes> ipv4_fragments(const Ip4& h, const Bytes& whole, size_t frag_payload);

struct ArpOpts {
    uint16_t htype = 1;
    uint16_t ptype = 0x0800;
    uint8_t hlen = 6;
    uint8_t plen = 4;
};
Bytes arp(uint16_t op, const rte_ether_addr& sha, uint32_t spa, const rte_ether_addr& tha,
          uint32_t tpa, const ArpOpts& o = {});

Bytes ether(const rte_ether_addr& dst, const rte_ether_addr& src, uint16_t type,
            const Bytes& payload);

// Copies `frame` into a fresh mbuf of `pool` (a chain of `seg_size`-byte segments when
// seg_size is given, or when the frame does not fit one segment), with RX `ol_flags`.
rte_mbuf* to_mbuf(rte_mempool* pool, const Bytes& frame, uint64_t ol_flags = 0,
                  size_t seg_size = 0);
// The bytes of a (possibly chained) mbuf.
Bytes mbuf_bytes(const rte_mbuf* m);

// ---------------------------------------------------------------------------------------------
// Reading frames.

struct Frame {
    Bytes b;
    uint64_t ol_flags = 0;  // after the TX checksum stage
    uint16_t nb_segs = 1;

    size_t size() const { return b.size(); }
    rte_ether_addr eth_dst() const;
    rte_ether_addr eth_src() const;
    uint16_t ether_type() const { return get16(&b[12]); }

    // IPv4 (at offset 14).
    const uint8_t* ip() const { return b.data() + 14; }
    uint8_t version() const { return ip()[0] >> 4; }
    uint8_t ihl() const { return uint8_t((ip()[0] & 0x0f) * 4); }
    uint16_t total_length() const { return get16(ip() + 2); }
    uint16_t ip_id() const { return get16(ip() + 4); }
    uint16_t frag_field() const { return get16(ip() + 6); }
    uint32_t frag_offset() const { return uint32_t(frag_field() & 0x1fff) * 8; }
    bool mf() const { return frag_field() & kIpMF; }
    bool df() const { return frag_field() & kIpDF; }
    bool is_fragment() const { return mf() || frag_offset() != 0; }
    uint8_t ttl() const { return ip()[8]; }
    uint8_t proto() const { return ip()[9]; }
    uint16_t ip_checksum() const { return get16(ip() + 10); }
    uint32_t src() const { return get32(ip() + 12); }
    uint32_t dst() const { return get32(ip() + 16); }
    const uint8_t* l4() const { return ip() + ihl(); }
    size_t l4_len() const { return size_t(total_length()) - ihl(); }
    Bytes l4_bytes() const { return Bytes(l4(), l4() + l4_len()); }

    // UDP.
    uint16_t sport() const { return get16(l4()); }
    uint16_t dport() const { return get16(l4() + 2); }
    uint16_t udp_length() const { return get16(l4() + 4); }
    uint16_t udp_checksum() const { return get16(l4() + 6); }
    Bytes udp_payload() const { return Bytes(l4() + 8, l4() + udp_length()); }

    // ICMP.
    uint8_t icmp_type() const { return l4()[0]; }
    uint8_t icmp_code() const { return l4()[1]; }
    uint16_t icmp_id() const { return get16(l4() + 4); }
    uint16_t icmp_seq() const { return get16(l4() + 6); }
    Bytes icmp_data() const { return Bytes(l4() + 8, l4() + l4_len()); }

    // ARP (at offset 14).
    const uint8_t* arp() const { return b.data() + 14; }
    uint16_t arp_htype() const { return get16(arp()); }
    uint16_t arp_ptype() const { return get16(arp() + 2); }
    uint8_t arp_hlen() const { return arp()[4]; }
    uint8_t arp_plen() const { return arp()[5]; }
    uint16_t arp_op() const { return get16(arp() + 6); }
    rte_ether_addr arp_sha() const;
    uint32_t arp_spa() const { return get32(arp() + 14); }
    rte_ether_addr arp_tha() const;
    uint32_t arp_tpa() const { return get32(arp() + 24); }
};

// An outgoing IPv4 frame is well formed: version 4, IHL >= 5, total length equal to the frame
// (no padding on TX), a valid header checksum, no TX offload request left; and, when it is
// not a fragment, a valid UDP (or zero) or ICMP checksum and a UDP length matching the IP one.
::testing::AssertionResult valid_ipv4(const Frame& f);

// Reassembles the fragments `frags` (in any order, all of one datagram) the way a receiver
// would: each well formed, at most `mtu` bytes of IP, offsets contiguous from 0, the last
// without MF. On success `header` is the first fragment's IP header and `payload` the whole
// IP payload.
::testing::AssertionResult reassemble(const std::vector<Frame>& frags, uint16_t mtu, Bytes& header,
                                      Bytes& payload);

// ---------------------------------------------------------------------------------------------
// TCP (RFC 9293 3.1): a segment builder and a parser of the segments we send.

inline constexpr uint8_t kProtoTcp = 6;
inline constexpr uint8_t kTcpFin = 0x01, kTcpSyn = 0x02, kTcpRst = 0x04, kTcpPsh = 0x08,
                         kTcpAck = 0x10, kTcpUrg = 0x20, kTcpEce = 0x40, kTcpCwr = 0x80;

// Options of a segment, written in Linux's layout: on a SYN, MSS, SACK-permitted + TS (or
// NOP NOP TS), NOP WS; on others NOP NOP TS, then NOP NOP SACK blocks. `raw` is appended
// verbatim (then everything is padded with EOL to a multiple of 4).
struct TcpOpts {
    std::optional<uint16_t> mss;
    std::optional<uint8_t> ws;
    bool sack_perm = false;
    std::optional<uint32_t> ts_val;  // the TS option is present when ts_val is set
    uint32_t ts_ecr = 0;
    std::vector<std::pair<uint32_t, uint32_t>> sack;  // [left, right)
    bool no_ts = false;  // for fixtures that add timestamps on their own: do not
    Bytes raw;
};
Bytes tcp_options(const TcpOpts& o);

struct TcpHdr {
    uint16_t sport = 0, dport = 0;
    uint32_t seq = 0, ack = 0;
    uint8_t flags = 0;
    uint16_t wnd = 65535;
    uint16_t urp = 0;
    Bytes options;                     // as written (see tcp_options), padded to 4
    std::optional<uint8_t> data_off;   // in 32-bit words; default: computed
    std::optional<uint16_t> checksum;  // default: computed
    bool corrupt_checksum = false;
};
Bytes tcp(uint32_t src, uint32_t dst, const TcpHdr& h, const Bytes& payload);

// A TCP segment as read back from a frame.
struct TcpSeg {
    uint16_t sport = 0, dport = 0;
    uint32_t seq = 0, ack = 0;
    uint8_t flags = 0;
    uint16_t wnd = 0;
    uint8_t ecn = 0;  // the IP header's ECN bits
    std::optional<uint16_t> mss;
    std::optional<uint8_t> ws;
    bool sack_perm = false;
    bool has_ts = false;
    uint32_t ts_val = 0, ts_ecr = 0;
    std::vector<std::pair<uint32_t, uint32_t>> sack;
    Bytes payload;
    uint64_t at = 0;  // when it was sent (filled by fixtures)

    bool has(uint8_t f) const { return (flags & f) == f; }
    // Exactly these flags.
    bool is(uint8_t f) const { return flags == f; }
    uint32_t len() const { return uint32_t(payload.size()); }
    // Sequence space taken: payload, SYN, FIN.
    uint32_t seq_len() const { return len() + (has(kTcpSyn) ? 1 : 0) + (has(kTcpFin) ? 1 : 0); }
};
std::string tcp_flags_str(uint8_t flags);  // "S.", "F.", "R", "P." as tcpdump writes them
std::ostream& operator<<(std::ostream& os, const TcpSeg& s);

// Parses an IPv4/TCP frame: well formed, data offset within the segment, options well formed,
// and the checksum over the pseudo-header and segment right (RFC 9293 3.1).
::testing::AssertionResult parse_tcp(const Frame& f, TcpSeg& out);

}  // namespace sluice::test
