#!/usr/bin/env python3
"""Valid Ethernet/IPv4/UDP test frames and pcap files for the whole-program benchmark.

Size convention (the one RFC 2544 and every traffic generator use): a "64-byte frame" is
64 bytes on the wire *including* the 4-byte FCS, so 60 bytes are captured in the pcap and
held in the mbuf. The same convention is used for `sluice-reflector --seed COUNT,SIZE` and
`dpdk-testpmd --txpkts SIZE` (both take the mbuf length, i.e. wire size - 4):

    wire size   64   512   594   1518
    mbuf/pcap   60   508   590   1514

Every frame: Ethernet II (dst = the MAC given to the reflector with --mac, src = a fixed
locally administered MAC), IPv4 (IHL 5, DF clear, TTL 64, a distinct IP ID per frame,
correct header checksum), UDP (correct checksum over the pseudo-header), a deterministic
payload. Addresses: 198.18.0.1 -> 198.18.0.2 (RFC 2544's 198.18.0.0/15 only). Flows: the
UDP source port takes `flows` distinct values (1024, 1025, ...), so port or software RSS
spreads them; the destination port is 9 (discard), echoed by the reflector.

IMIX is the classic simple IMIX, 7:4:1 of 64/594/1518-byte frames, interleaved
(64,594,64,64,594,64,1518,64,594,64,64,594 ...) so a burst sees the mix, not runs.

A file holds lcm(flows, pattern length) frames (768 for 256 flows and IMIX) so that every
flow sees every size; net_pcap's infinite_rx mode loads the whole file into mbufs once and
replays it forever, so the file stays small (it must fit the port's mbuf pool).

Usage:
    gen_pcap.py OUT.pcap --size 64|512|1518|imix [--flows 256] [--dst-mac MAC]
    gen_pcap.py --verify FILE.pcap      # parse every frame and check both checksums
"""

import argparse
import math
import struct
import sys

SRC_MAC = "02:53:4c:00:00:01"
DST_MAC = "02:53:4c:00:00:02"  # default; the runner passes the same MAC to --mac
SRC_IP = "198.18.0.1"
DST_IP = "198.18.0.2"
FCS = 4
UDP_DST_PORT = 9
UDP_SRC_BASE = 1024
MIN_WIRE, MAX_WIRE = 64, 1518
ETH_HLEN, IP_HLEN, UDP_HLEN = 14, 20, 8

# Classic simple IMIX: 7 x 64, 4 x 594, 1 x 1518 (wire sizes), interleaved.
IMIX_PATTERN = (64, 594, 64, 64, 594, 64, 1518, 64, 594, 64, 64, 594)
assert sorted(IMIX_PATTERN) == sorted([64] * 7 + [594] * 4 + [1518])


def wire_sizes(size):
    """The list of wire frame sizes for a size name: '64' -> [64]; 'imix' -> the pattern."""
    if str(size).lower() == "imix":
        return list(IMIX_PATTERN)
    n = int(size)
    if not MIN_WIRE <= n <= MAX_WIRE:
        raise ValueError(f"frame size {n} outside {MIN_WIRE}..{MAX_WIRE}")
    return [n]


def mean_wire_size(size):
    s = wire_sizes(size)
    return sum(s) / len(s)


def mac_bytes(mac):
    b = bytes(int(x, 16) for x in mac.split(":"))
    if len(b) != 6:
        raise ValueError(f"bad MAC {mac!r}")
    return b


def ip_bytes(ip):
    b = bytes(int(x) for x in ip.split("."))
    if len(b) != 4:
        raise ValueError(f"bad IPv4 address {ip!r}")
    if not (b[0] == 198 and b[1] in (18, 19)):
        raise ValueError(f"{ip} is outside 198.18.0.0/15")
    return b


def csum16(data):
    """RFC 1071 one's-complement sum, folded, complemented."""
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def udp_frame(wire_size, src_port, ip_id, dst_mac=DST_MAC, src_mac=SRC_MAC, src_ip=SRC_IP,
              dst_ip=DST_IP, dst_port=UDP_DST_PORT):
    """One frame of wire_size bytes on the wire (wire_size - 4 bytes returned, no FCS)."""
    frame_len = wire_size - FCS
    payload_len = frame_len - ETH_HLEN - IP_HLEN - UDP_HLEN
    if payload_len < 0:
        raise ValueError("frame too small")
    payload = bytes((ip_id * 7 + src_port + i) & 0xFF for i in range(payload_len))
    sip, dip = ip_bytes(src_ip), ip_bytes(dst_ip)
    udp_len = UDP_HLEN + payload_len
    udp_nock = struct.pack("!HHHH", src_port, dst_port, udp_len, 0) + payload
    pseudo = sip + dip + struct.pack("!BBH", 0, 17, udp_len)
    uck = csum16(pseudo + udp_nock) or 0xFFFF  # 0 means "no checksum" in UDP/IPv4
    udp = struct.pack("!HHHH", src_port, dst_port, udp_len, uck) + payload
    ip_nock = struct.pack("!BBHHHBBH4s4s", 0x45, 0, IP_HLEN + udp_len, ip_id & 0xFFFF, 0, 64,
                          17, 0, sip, dip)
    ip = ip_nock[:10] + struct.pack("!H", csum16(ip_nock)) + ip_nock[12:]
    eth = mac_bytes(dst_mac) + mac_bytes(src_mac) + struct.pack("!H", 0x0800)
    frame = eth + ip + udp
    assert len(frame) == frame_len
    return frame


def frames(size, flows=256, dst_mac=DST_MAC):
    sizes = wire_sizes(size)
    n = math.lcm(flows, len(sizes))
    return [udp_frame(sizes[i % len(sizes)], UDP_SRC_BASE + i % flows, i, dst_mac=dst_mac)
            for i in range(n)]


def write_pcap(path, frame_list):
    with open(path, "wb") as f:
        # Classic pcap, microsecond timestamps, LINKTYPE_ETHERNET.
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, fr in enumerate(frame_list):
            f.write(struct.pack("<IIII", 0, i, len(fr), len(fr)))
            f.write(fr)


def read_pcap(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    if magic != 0xA1B2C3D4:
        raise ValueError(f"{path}: not a little-endian microsecond pcap")
    off, out = 24, []
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack("<IIII", data[off:off + 16])
        out.append(data[off + 16:off + 16 + incl])
        off += 16 + incl
    return out


def check_frame(fr):
    """Returns None if fr is a valid Ethernet/IPv4/UDP frame with good checksums, else why."""
    if len(fr) < ETH_HLEN + IP_HLEN + UDP_HLEN:
        return "short"
    if fr[12:14] != b"\x08\x00":
        return "not IPv4"
    ip = fr[ETH_HLEN:ETH_HLEN + IP_HLEN]
    if ip[0] != 0x45:
        return "IPv4 version/IHL"
    if csum16(ip) != 0:
        return "IPv4 header checksum"
    total = struct.unpack("!H", ip[2:4])[0]
    if ETH_HLEN + total != len(fr) or ip[9] != 17:
        return "IPv4 length/protocol"
    udp = fr[ETH_HLEN + IP_HLEN:]
    ulen = struct.unpack("!H", udp[4:6])[0]
    if ulen != len(udp):
        return "UDP length"
    if struct.unpack("!H", udp[6:8])[0] != 0:
        pseudo = ip[12:16] + ip[16:20] + struct.pack("!BBH", 0, 17, ulen)
        if csum16(pseudo + udp) != 0:
            return "UDP checksum"
    return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", nargs="?", help="pcap file to write")
    ap.add_argument("--size", default="64", help="64..1518 (wire bytes incl. FCS) or imix")
    ap.add_argument("--flows", type=int, default=256, help="distinct UDP source ports")
    ap.add_argument("--dst-mac", default=DST_MAC)
    ap.add_argument("--verify", metavar="PCAP", help="check every frame of a pcap and exit")
    a = ap.parse_args(argv)
    if a.verify:
        fl = read_pcap(a.verify)
        bad = [(i, why) for i, fr in enumerate(fl) if (why := check_frame(fr))]
        sizes = sorted({len(fr) + FCS for fr in fl})
        print(f"{a.verify}: {len(fl)} frames, wire sizes {sizes}, {len(bad)} bad"
              + (f": first {bad[0]}" if bad else ""))
        return 1 if bad or not fl else 0
    if not a.out:
        ap.error("an output file (or --verify) is needed")
    if not 1 <= a.flows <= 64512:
        ap.error("--flows must be 1..64512")
    fl = frames(a.size, a.flows, a.dst_mac)
    write_pcap(a.out, fl)
    print(f"{a.out}: {len(fl)} frames of {a.size} (wire bytes), {a.flows} flows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
