#include "tests/unit/packet_builder.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace sluice::test {

bool same_mac(const rte_ether_addr& a, const rte_ether_addr& b) {
    return memcmp(a.addr_bytes, b.addr_bytes, RTE_ETHER_ADDR_LEN) == 0;
}

std::string mac_str(const rte_ether_addr& m) {
    char buf[RTE_ETHER_ADDR_FMT_SIZE];
    rte_ether_format_addr(buf, sizeof buf, &m);
    return buf;
}

std::string hex(uint64_t v) {
    char buf[24];
    snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
    return buf;
}

std::string ip_str(uint32_t a) {
    char buf[16];
    snprintf(buf, sizeof buf, "%u.%u.%u.%u", a >> 24, (a >> 16) & 0xff, (a >> 8) & 0xff, a & 0xff);
    return buf;
}

uint32_t sum_words(const uint8_t* p, size_t n, uint32_t sum) {
    uint64_t s = sum;
    size_t i = 0;
    for (; i + 1 < n; i += 2) s += uint32_t(p[i] << 8 | p[i + 1]);
    if (i < n) s += uint32_t(p[i] << 8);
    while (s >> 32) s = (s & 0xffffffff) + (s >> 32);
    return uint32_t(s);
}

uint16_t fold(uint32_t sum) {
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return uint16_t(sum);
}

uint16_t checksum(const uint8_t* p, size_t n, uint32_t sum) {
    return uint16_t(~fold(sum_words(p, n, sum)));
}

uint32_t pseudo_sum(uint32_t src, uint32_t dst, uint8_t proto, uint16_t l4_len) {
    uint8_t ph[12];
    put32(ph, src);
    put32(ph + 4, dst);
    ph[8] = 0;
    ph[9] = proto;
    put16(ph + 10, l4_len);
    return sum_words(ph, sizeof ph);
}

bool checksum_ok(const uint8_t* p, size_t n, uint32_t sum) {
    return fold(sum_words(p, n, sum)) == 0xffff;
}

Bytes pattern(size_t n, uint8_t seed) {
    Bytes b(n);
    for (size_t i = 0; i < n; ++i) b[i] = uint8_t(seed + i * 7);
    return b;
}

Bytes udp(uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport, const Bytes& payload,
          const UdpOpts& o) {
    Bytes b(8 + payload.size());
    put16(&b[0], sport);
    put16(&b[2], dport);
    const uint16_t real_len = uint16_t(b.size());
    put16(&b[4], o.length.value_or(real_len));
    std::copy(payload.begin(), payload.end(), b.begin() + 8);
    if (o.checksum) {
        put16(&b[6], *o.checksum);
    } else {
        // Over what is sent: the pseudo-header carries the UDP length field as written.
        const uint16_t len_field = get16(&b[4]);
        uint16_t c = checksum(b.data(), b.size(), pseudo_sum(src, dst, kProtoUdp, len_field));
        if (c == 0) c = 0xffff;
        if (o.corrupt_checksum) c ^= 0x0100;
        put16(&b[6], c);
    }
    return b;
}

Bytes icmp(uint8_t type, uint8_t code, uint16_t id, uint16_t seq, const Bytes& data,
           bool corrupt_checksum) {
    Bytes b(8 + data.size());
    b[0] = type;
    b[1] = code;
    put16(&b[4], id);
    put16(&b[6], seq);
    std::copy(data.begin(), data.end(), b.begin() + 8);
    uint16_t c = checksum(b.data(), b.size());
    if (corrupt_checksum) c ^= 0x0100;
    put16(&b[2], c);
    return b;
}

Bytes ipv4(const Ip4& h, const Bytes& payload) {
    Bytes opts = h.options;
    while (opts.size() % 4) opts.push_back(0);  // EOL padding
    const size_t hlen = 20 + opts.size();
    Bytes b(hlen + payload.size());
    const uint8_t ihl = h.ihl.value_or(uint8_t(hlen / 4));
    b[0] = uint8_t(h.version << 4 | (ihl & 0x0f));
    b[1] = h.tos;
    put16(&b[2], h.total_length.value_or(uint16_t(b.size())));
    put16(&b[4], h.id);
    put16(&b[6], h.frag);
    b[8] = h.ttl;
    b[9] = h.proto;
    put32(&b[12], h.src);
    put32(&b[16], h.dst);
    std::copy(opts.begin(), opts.end(), b.begin() + 20);
    std::copy(payload.begin(), payload.end(), b.begin() + long(hlen));
    if (h.checksum) {
        put16(&b[10], *h.checksum);
    } else {
        uint16_t c = checksum(b.data(), hlen);
        if (h.corrupt_checksum) c ^= 0x0100;
        put16(&b[10], c);
    }
    return b;
}

Bytes ipv4_fragment(Ip4 h, const Bytes& whole, size_t off, size_t len, bool more) {
    h.frag = uint16_t((h.frag & kIpDF) | (more ? kIpMF : 0) | ((off / 8) & 0x1fff));
    const Bytes part(whole.begin() + long(off), whole.begin() + long(off + len));
    return ipv4(h, part);
}

std::vector<Bytes> ipv4_fragments(const Ip4& h, const Bytes& whole, size_t frag_payload) {
    std::vector<Bytes> out;
    for (size_t off = 0; off < whole.size(); off += frag_payload) {
        const size_t len = std::min(frag_payload, whole.size() - off);
        out.push_back(ipv4_fragment(h, whole, off, len, off + len < whole.size()));
    }
    return out;
}

Bytes arp(uint16_t op, const rte_ether_addr& sha, uint32_t spa, const rte_ether_addr& tha,
          uint32_t tpa, const ArpOpts& o) {
    Bytes b(28);
    put16(&b[0], o.htype);
    put16(&b[2], o.ptype);
    b[4] = o.hlen;
    b[5] = o.plen;
    put16(&b[6], op);
    memcpy(&b[8], sha.addr_bytes, 6);
    put32(&b[14], spa);
    memcpy(&b[18], tha.addr_bytes, 6);
    put32(&b[24], tpa);
    return b;
}

Bytes ether(const rte_ether_addr& dst, const rte_ether_addr& src, uint16_t type,
            const Bytes& payload) {
    Bytes b(14 + payload.size());
    memcpy(&b[0], dst.addr_bytes, 6);
    memcpy(&b[6], src.addr_bytes, 6);
    put16(&b[12], type);
    std::copy(payload.begin(), payload.end(), b.begin() + 14);
    return b;
}

rte_mbuf* to_mbuf(rte_mempool* pool, const Bytes& frame, uint64_t ol_flags, size_t seg_size) {
    rte_mbuf* head = rte_pktmbuf_alloc(pool);
    if (!head) return nullptr;
    const size_t room = rte_pktmbuf_tailroom(head);
    if (seg_size == 0 || seg_size > room) seg_size = room;
    size_t off = 0;
    rte_mbuf* seg = head;
    do {
        const size_t n = std::min(seg_size, frame.size() - off);
        if (seg != head && rte_pktmbuf_chain(head, seg) != 0) {
            rte_pktmbuf_free(seg);
            rte_pktmbuf_free(head);
            return nullptr;
        }
        char* dst = rte_pktmbuf_append(head, uint16_t(n));  // to the last segment, `seg`
        if (n) memcpy(dst, frame.data() + off, n);
        off += n;
        if (off < frame.size()) {
            seg = rte_pktmbuf_alloc(pool);
            if (!seg) {
                rte_pktmbuf_free(head);
                return nullptr;
            }
        }
    } while (off < frame.size());
    head->ol_flags = ol_flags;
    return head;
}

Bytes mbuf_bytes(const rte_mbuf* m) {
    Bytes b;
    b.reserve(m->pkt_len);
    for (const rte_mbuf* s = m; s; s = s->next) {
        const uint8_t* p = rte_pktmbuf_mtod(s, const uint8_t*);
        b.insert(b.end(), p, p + s->data_len);
    }
    return b;
}

static rte_ether_addr mac_at(const uint8_t* p) {
    rte_ether_addr m;
    memcpy(m.addr_bytes, p, 6);
    return m;
}
rte_ether_addr Frame::eth_dst() const {
    return mac_at(&b[0]);
}
rte_ether_addr Frame::eth_src() const {
    return mac_at(&b[6]);
}
rte_ether_addr Frame::arp_sha() const {
    return mac_at(arp() + 8);
}
rte_ether_addr Frame::arp_tha() const {
    return mac_at(arp() + 18);
}

::testing::AssertionResult valid_ipv4(const Frame& f) {
    if (f.size() < 14 + 20)
        return ::testing::AssertionFailure() << "frame of " << f.size() << " bytes";
    if (f.ether_type() != kEthTypeIpv4)
        return ::testing::AssertionFailure() << "EtherType " << f.ether_type();
    if (f.version() != 4) return ::testing::AssertionFailure() << "version " << int(f.version());
    if (f.ihl() < 20 || 14u + f.ihl() > f.size())
        return ::testing::AssertionFailure() << "IHL " << int(f.ihl());
    if (size_t(f.total_length()) + 14 != f.size())
        return ::testing::AssertionFailure()
               << "total length " << f.total_length() << " but frame of " << f.size() << " bytes";
    if (!checksum_ok(f.ip(), f.ihl()))
        return ::testing::AssertionFailure() << "bad IP header checksum " << hex(f.ip_checksum());
    if (f.ol_flags & (RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_L4_MASK))
        return ::testing::AssertionFailure()
               << "TX checksum request left in ol_flags " << hex(f.ol_flags);
    if (f.is_fragment()) return ::testing::AssertionSuccess();
    if (f.proto() == kProtoUdp) {
        if (f.l4_len() < 8) return ::testing::AssertionFailure() << "UDP of " << f.l4_len();
        if (f.udp_length() != f.l4_len())
            return ::testing::AssertionFailure()
                   << "UDP length " << f.udp_length() << " in an IP payload of " << f.l4_len();
        if (f.udp_checksum() != 0 &&
            !checksum_ok(f.l4(), f.l4_len(),
                         pseudo_sum(f.src(), f.dst(), kProtoUdp, uint16_t(f.l4_len()))))
            return ::testing::AssertionFailure() << "bad UDP checksum " << hex(f.udp_checksum());
    } else if (f.proto() == kProtoIcmp) {
        if (f.l4_len() < 8) return ::testing::AssertionFailure() << "ICMP of " << f.l4_len();
        if (!checksum_ok(f.l4(), f.l4_len()))
            return ::testing::AssertionFailure() << "bad ICMP checksum";
    }
    return ::testing::AssertionSuccess();
}

::testing::AssertionResult reassemble(const std::vector<Frame>& frags, uint16_t mtu, Bytes& header,
                                      Bytes& payload) {
    if (frags.empty()) return ::testing::AssertionFailure() << "no fragments";
    std::vector<const Frame*> v;
    for (const Frame& f : frags) {
        if (auto r = valid_ipv4(f); !r) return r;
        if (f.total_length() > mtu)
            return ::testing::AssertionFailure()
                   << "fragment of " << f.total_length() << " bytes over the MTU " << mtu;
        if (f.ip_id() != frags[0].ip_id() || f.src() != frags[0].src() ||
            f.dst() != frags[0].dst() || f.proto() != frags[0].proto())
            return ::testing::AssertionFailure() << "fragments of different datagrams";
        v.push_back(&f);
    }
    std::sort(v.begin(), v.end(),
              [](const Frame* a, const Frame* b) { return a->frag_offset() < b->frag_offset(); });
    payload.clear();
    for (size_t i = 0; i < v.size(); ++i) {
        const Frame& f = *v[i];
        if (f.frag_offset() != payload.size())
            return ::testing::AssertionFailure() << "fragment at offset " << f.frag_offset()
                                                 << " after " << payload.size() << " bytes";
        const bool last = i + 1 == v.size();
        if (f.mf() == last)
            return ::testing::AssertionFailure()
                   << "MF " << f.mf() << " on fragment " << i << " of " << v.size();
        if (!last && f.l4_len() % 8 != 0)
            return ::testing::AssertionFailure()
                   << "non-last fragment of " << f.l4_len() << " bytes";
        const Bytes part = f.l4_bytes();
        payload.insert(payload.end(), part.begin(), part.end());
    }
    header.assign(v[0]->ip(), v[0]->ip() + v[0]->ihl());
    return ::testing::AssertionSuccess();
}

// ---------------------------------------------------------------------------------------------
// TCP.

// push_back one by one: GCC 12 at -O3 warns (falsely: -Wstringop-overflow) on
// vector::insert of an initializer list at the end of a vector that may be empty.
static void append(Bytes& b, std::initializer_list<uint8_t> l) {
    for (uint8_t x : l) b.push_back(x);
}

Bytes tcp_options(const TcpOpts& o) {
    Bytes b;
    const bool syn_layout = o.mss || o.ws || o.sack_perm;
    auto ts = [&] {
        b.push_back(8);
        b.push_back(10);
        b.resize(b.size() + 8);
        put32(&b[b.size() - 8], *o.ts_val);
        put32(&b[b.size() - 4], o.ts_ecr);
    };
    if (o.mss) {
        append(b, {2, 4, 0, 0});
        put16(&b[b.size() - 2], *o.mss);
    }
    if (syn_layout) {
        if (o.sack_perm && o.ts_val) {
            append(b, {4, 2});
            ts();
        } else if (o.ts_val) {
            append(b, {1, 1});
            ts();
        } else if (o.sack_perm) {
            append(b, {1, 1, 4, 2});
        }
        if (o.ws) append(b, {1, 3, 3, *o.ws});
    } else if (o.ts_val) {
        append(b, {1, 1});
        ts();
    }
    if (!o.sack.empty()) {
        append(b, {1, 1, 5, uint8_t(2 + 8 * o.sack.size())});
        for (const auto& [l, r] : o.sack) {
            b.resize(b.size() + 8);
            put32(&b[b.size() - 8], l);
            put32(&b[b.size() - 4], r);
        }
    }
    b.insert(b.end(), o.raw.begin(), o.raw.end());
    while (b.size() % 4) b.push_back(0);
    return b;
}

Bytes tcp(uint32_t src, uint32_t dst, const TcpHdr& h, const Bytes& payload) {
    Bytes opts = h.options;
    while (opts.size() % 4) opts.push_back(0);
    const size_t hlen = 20 + opts.size();
    Bytes b(hlen + payload.size());
    put16(&b[0], h.sport);
    put16(&b[2], h.dport);
    put32(&b[4], h.seq);
    put32(&b[8], h.ack);
    b[12] = uint8_t(h.data_off.value_or(uint8_t(hlen / 4)) << 4);
    b[13] = h.flags;
    put16(&b[14], h.wnd);
    put16(&b[18], h.urp);
    std::copy(opts.begin(), opts.end(), b.begin() + 20);
    std::copy(payload.begin(), payload.end(), b.begin() + long(hlen));
    if (h.checksum) {
        put16(&b[16], *h.checksum);
    } else {
        uint16_t c =
            checksum(b.data(), b.size(), pseudo_sum(src, dst, kProtoTcp, uint16_t(b.size())));
        if (h.corrupt_checksum) c ^= 0x0100;
        put16(&b[16], c);
    }
    return b;
}

std::string tcp_flags_str(uint8_t f) {
    std::string s;
    if (f & kTcpSyn) s += 'S';
    if (f & kTcpFin) s += 'F';
    if (f & kTcpRst) s += 'R';
    if (f & kTcpPsh) s += 'P';
    if (f & kTcpUrg) s += 'U';
    if (f & kTcpEce) s += 'E';
    if (f & kTcpCwr) s += 'W';
    if (f & kTcpAck) s += '.';
    return s.empty() ? "none" : s;
}

std::ostream& operator<<(std::ostream& os, const TcpSeg& s) {
    os << s.sport << " > " << s.dport << " " << tcp_flags_str(s.flags) << " " << s.seq << ":"
       << s.seq + s.len() << "(" << s.len() << ")";
    if (s.has(kTcpAck)) os << " ack " << s.ack;
    os << " win " << s.wnd;
    if (s.mss) os << " mss " << *s.mss;
    if (s.sack_perm) os << " sackOK";
    if (s.has_ts) os << " TS val " << s.ts_val << " ecr " << s.ts_ecr;
    if (s.ws) os << " wscale " << int(*s.ws);
    if (!s.sack.empty()) {
        os << " sack";
        for (const auto& [l, r] : s.sack) os << " " << l << ":" << r;
    }
    if (s.ecn) os << " ecn " << int(s.ecn);
    return os;
}

::testing::AssertionResult parse_tcp(const Frame& f, TcpSeg& out) {
    if (auto r = valid_ipv4(f); !r) return r;
    if (f.proto() != kProtoTcp)
        return ::testing::AssertionFailure() << "IP protocol " << int(f.proto()) << ", not TCP";
    if (f.is_fragment()) return ::testing::AssertionFailure() << "a fragment";
    const uint8_t* t = f.l4();
    const size_t len = f.l4_len();
    if (len < 20) return ::testing::AssertionFailure() << "TCP segment of " << len << " bytes";
    if (!checksum_ok(t, len, pseudo_sum(f.src(), f.dst(), kProtoTcp, uint16_t(len))))
        return ::testing::AssertionFailure() << "bad TCP checksum " << hex(get16(t + 16));
    const size_t hlen = size_t(t[12] >> 4) * 4;
    if (hlen < 20 || hlen > len)
        return ::testing::AssertionFailure() << "data offset " << hlen << " in " << len;
    if (t[12] & 0x0f) return ::testing::AssertionFailure() << "reserved bits set";
    out = TcpSeg{};
    out.sport = get16(t);
    out.dport = get16(t + 2);
    out.seq = get32(t + 4);
    out.ack = get32(t + 8);
    out.flags = t[13];
    out.wnd = get16(t + 14);
    out.ecn = f.ip()[1] & 3;
    if (get16(t + 18) != 0) return ::testing::AssertionFailure() << "urgent pointer set";
    for (size_t i = 20; i < hlen;) {
        const uint8_t kind = t[i];
        if (kind == 0) break;
        if (kind == 1) {
            ++i;
            continue;
        }
        if (i + 1 >= hlen || t[i + 1] < 2 || i + t[i + 1] > hlen)
            return ::testing::AssertionFailure() << "malformed option at " << i;
        const uint8_t ol = t[i + 1];
        const uint8_t* p = t + i + 2;
        switch (kind) {
            case 2:
                if (ol != 4) return ::testing::AssertionFailure() << "MSS option of " << int(ol);
                out.mss = get16(p);
                break;
            case 3:
                if (ol != 3) return ::testing::AssertionFailure() << "WS option of " << int(ol);
                out.ws = p[0];
                break;
            case 4:
                if (ol != 2)
                    return ::testing::AssertionFailure() << "SACK-permitted of " << int(ol);
                out.sack_perm = true;
                break;
            case 5:
                if ((ol - 2) % 8 != 0 || ol < 10)
                    return ::testing::AssertionFailure() << "SACK option of " << int(ol);
                for (unsigned k = 0; k + 8 <= unsigned(ol - 2); k += 8)
                    out.sack.emplace_back(get32(p + k), get32(p + k + 4));
                break;
            case 8:
                if (ol != 10) return ::testing::AssertionFailure() << "TS option of " << int(ol);
                out.has_ts = true;
                out.ts_val = get32(p);
                out.ts_ecr = get32(p + 4);
                break;
            default:
                return ::testing::AssertionFailure() << "unexpected option kind " << int(kind);
        }
        i += ol;
    }
    out.payload.assign(t + hlen, t + len);
    return ::testing::AssertionSuccess();
}

}  // namespace sluice::test
