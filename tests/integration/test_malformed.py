#!/usr/bin/env python3
"""Malformed frames, sent raw (AF_PACKET) from the kernel side straight to the reflector's MAC:
each kind must be dropped and counted under exactly its reason in /sluice/drops, nothing
else may be dropped, and the reflector must keep serving afterwards.

Each frame is correct except for the one field under test (checksums are computed over what is
sent), so the reason it is counted under is unambiguous.
"""

import errno

import packets as p
import sluice_harness as h

N = 5  # frames of each kind

SRC, DST = h.KERNEL_IP, h.REFLECTOR_IP


def udp_packet(k: int, **ip_kw) -> bytes:
    src = ip_kw.pop("src", SRC)
    dst = ip_kw.pop("dst", DST)
    payload = bytes([k]) * 18
    return p.ipv4(src, dst, p.IPPROTO_UDP, p.udp(src, dst, 40000 + k, 9000, payload),
                  ident=0x5100 + k, **ip_kw)


def bad_frames(dst_mac: str, src_mac: str, k: int) -> dict[str, bytes]:
    """One frame per drop reason; `k` varies the IDs and ports between the N copies."""

    def eth(payload: bytes, ethertype: int = p.ETH_P_IPV4) -> bytes:
        return p.ether(dst_mac, src_mac, ethertype, payload)

    udp_ok = p.udp(SRC, DST, 40000 + k, 9000, bytes([k]) * 18)
    return {
        "eth_unknown_type": eth(bytes(46), p.ETH_P_EXPERIMENTAL),
        "arp_malformed": eth(bytes.fromhex("00010800060400"), p.ETH_P_ARP),  # 7 of 28 bytes
        "ipv4_truncated": eth(bytes.fromhex("4500001c0000000040110000")),  # 12 of 20 bytes
        "ipv4_bad_version": eth(udp_packet(k, version=6)),
        "ipv4_bad_ihl": eth(udp_packet(k, ihl=4)),
        "ipv4_bad_total_length": eth(p.ipv4(SRC, DST, p.IPPROTO_UDP, udp_ok,
                                            total_length=20 + len(udp_ok) + 100)),
        "ipv4_bad_checksum": eth(udp_packet(k, bad_checksum=True)),
        "ipv4_ttl_zero": eth(udp_packet(k, ttl=0)),
        "ipv4_bad_src": eth(udp_packet(k, src="0.0.0.0")),
        "ipv4_not_for_us": eth(udp_packet(k, dst="198.18.0.77")),
        "ipv4_broadcast": eth(udp_packet(k, dst="198.18.0.255")),
        "ipv4_unknown_proto": eth(p.ipv4(SRC, DST, 253, bytes(20), ident=0x5200 + k)),
        "udp_truncated": eth(p.ipv4(SRC, DST, p.IPPROTO_UDP, bytes.fromhex("9c409c40"),
                                    ident=0x5300 + k)),  # 4 bytes of UDP header
        "udp_bad_length": eth(p.ipv4(SRC, DST, p.IPPROTO_UDP,
                                     p.udp(SRC, DST, 40000 + k, 9000, bytes(16), length=4,
                                           checksum=0), ident=0x5400 + k)),
        "udp_bad_checksum": eth(p.ipv4(SRC, DST, p.IPPROTO_UDP,
                                       p.udp(SRC, DST, 40000 + k, 9000, bytes([k]) * 18,
                                             bad_checksum=True), ident=0x5500 + k)),
        "icmp_truncated": eth(p.ipv4(SRC, DST, p.IPPROTO_ICMP, bytes.fromhex("08000000"),
                                     ident=0x5600 + k)),  # 4 of 8 header bytes
        "icmp_bad_checksum": eth(p.ipv4(SRC, DST, p.IPPROTO_ICMP,
                                        p.icmp_echo_request(0x77, k, bytes(32),
                                                            bad_checksum=True),
                                        ident=0x5700 + k)),
    }


class MalformedTest(h.ReflectorTestCase):

    def macs(self) -> tuple[str, str]:
        return self.env.reflector_mac(), self.env.link_mac(self.env.kernel_if)

    def test_malformed_frames_counted_by_reason(self):
        dst_mac, src_mac = self.macs()
        batches = [bad_frames(dst_mac, src_mac, k) for k in range(N)]
        reasons = list(batches[0])
        frames = [batch[r] for batch in batches for r in reasons]

        before = self.env.drops()
        missing = [r for r in reasons if r not in before]
        self.assertEqual(missing, [], f"/sluice/drops lacks reasons: {before}")
        result = self.env.send_frames(frames)
        self.assertEqual(result["errors"], [])
        self.assertEqual(result["sent"], len(frames))

        expected = {r: N for r in reasons}
        # Bounded poll until every reason has its N (or the timeout); then compare all drops:
        # the reasons under test moved by exactly N and no other reason moved.
        def settled():
            now = self.env.drops()
            return now if all(now[r] - before[r] >= N for r in reasons) else None
        try:
            after = h.wait_for(settled, timeout=5, what="drop counters", interval=0.1)
        except TimeoutError:
            after = self.env.drops()
        delta = {r: after[r] - before.get(r, 0) for r in after if after[r] != before.get(r, 0)}
        if self.env.mode == "af_packet":
            # An af_packet socket also captures what the port sends: the reflector's own
            # frames come back as eth_not_for_us (unicast) or eth_looped (broadcast), e.g. an
            # ARP reply to a kernel probe that happened to fall in this window.
            for own in ("eth_not_for_us", "eth_looped"):
                delta.pop(own, None)
        self.assertEqual(delta, expected)

        self.env.assert_alive()
        echo = self.env.udp_echo(count=20, min_size=1, max_size=3000, seed=77, deadline=15)
        self.assertEqual((echo["identical"], echo["mismatched"], echo["missing"]), (20, 0, 0), echo)

    def test_runt_frame(self):
        dst_mac, src_mac = self.macs()
        runt = p.mac_bytes(dst_mac) + p.mac_bytes(src_mac)[:4]  # 10 bytes
        before = self.env.drops()
        result = self.env.send_frames([runt])
        if result["errors"] and result["errors"][0]["errno"] == errno.EINVAL:
            self.skipTest("the kernel refuses to transmit frames shorter than an Ethernet header "
                          "(dev_validate_header: EINVAL), so no runt can reach the reflector "
                          "through tap or veth")
        self.assertEqual(result["sent"], 1)
        after = h.wait_for(lambda: (d := self.env.drops())["eth_runt"] > before["eth_runt"] and d,
                           timeout=5, what="eth_runt")
        self.assertEqual(after["eth_runt"] - before["eth_runt"], 1)


if __name__ == "__main__":
    h.main()
