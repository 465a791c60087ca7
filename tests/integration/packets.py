"""Frame builders for the integration tests (stdlib only).

Every builder computes correct lengths and checksums unless the caller overrides a field: the
malformed-frame test breaks exactly one field per frame, so that the reflector must count it
under exactly one drop reason.
"""

import ipaddress
import struct

ETH_P_IPV4 = 0x0800
ETH_P_ARP = 0x0806
ETH_P_EXPERIMENTAL = 0x88B5  # IEEE 802 local experimental EtherType: no stack handles it

IPPROTO_ICMP = 1
IPPROTO_UDP = 17


def inet_checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum of `data` (the value to store in the checksum field)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def wrong_checksum(correct: int) -> int:
    """A checksum value that fails verification: neither `correct` nor its one's-complement
    twin (0x0000 and 0xffff are the same number), and never 0 (which means "no checksum" in
    UDP)."""
    for flip in (0x1111, 0x2222, 0x4444):
        bad = correct ^ flip
        if bad not in (0x0000, 0xFFFF):
            return bad
    raise AssertionError("unreachable")


def mac_bytes(mac: str) -> bytes:
    parts = mac.split(":")
    if len(parts) != 6:
        raise ValueError(f"bad MAC address {mac!r}")
    return bytes(int(p, 16) for p in parts)


def mac_str(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def ip_bytes(addr: str) -> bytes:
    return ipaddress.IPv4Address(addr).packed


def ether(dst: str, src: str, ethertype: int, payload: bytes) -> bytes:
    return mac_bytes(dst) + mac_bytes(src) + struct.pack("!H", ethertype) + payload


def ipv4(src: str, dst: str, proto: int, payload: bytes, *, ttl: int = 64, ident: int = 0,
         version: int = 4, ihl: int = 5, total_length: int | None = None,
         bad_checksum: bool = False) -> bytes:
    """An IPv4 packet with a 20-byte header (whatever `ihl` claims) followed by `payload`."""
    if total_length is None:
        total_length = 20 + len(payload)
    header = struct.pack("!BBHHHBBH4s4s", (version << 4) | ihl, 0, total_length, ident, 0,
                         ttl, proto, 0, ip_bytes(src), ip_bytes(dst))
    cksum = inet_checksum(header)
    if bad_checksum:
        cksum = wrong_checksum(cksum)
    return header[:10] + struct.pack("!H", cksum) + header[12:] + payload


def udp(src: str, dst: str, sport: int, dport: int, payload: bytes, *,
        length: int | None = None, checksum: int | None = None,
        bad_checksum: bool = False) -> bytes:
    """A UDP datagram; the checksum covers the RFC 768 pseudo-header. `checksum` forces a
    literal value (0 = none)."""
    if length is None:
        length = 8 + len(payload)
    datagram = struct.pack("!HHHH", sport, dport, length, 0) + payload
    if checksum is None:
        pseudo = ip_bytes(src) + ip_bytes(dst) + struct.pack("!BBH", 0, IPPROTO_UDP, len(datagram))
        checksum = inet_checksum(pseudo + datagram) or 0xFFFF
        if bad_checksum:
            checksum = wrong_checksum(checksum)
    return datagram[:6] + struct.pack("!H", checksum) + datagram[8:]


def icmp_echo_request(ident: int, seq: int, payload: bytes, *, bad_checksum: bool = False) -> bytes:
    message = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + payload
    cksum = inet_checksum(message)
    if bad_checksum:
        cksum = wrong_checksum(cksum)
    return message[:2] + struct.pack("!H", cksum) + message[4:]


def parse_arp(frame: bytes) -> dict | None:
    """Ethernet/IPv4 ARP fields of `frame`, or None if it is not one."""
    if len(frame) < 42 or struct.unpack("!H", frame[12:14])[0] != ETH_P_ARP:
        return None
    htype, ptype, hlen, plen, op = struct.unpack("!HHBBH", frame[14:22])
    if (htype, ptype, hlen, plen) != (1, ETH_P_IPV4, 6, 4):
        return None
    return {
        "eth_src": mac_str(frame[6:12]),
        "eth_dst": mac_str(frame[0:6]),
        "op": op,
        "sha": mac_str(frame[22:28]),
        "spa": str(ipaddress.IPv4Address(frame[28:32])),
        "tha": mac_str(frame[32:38]),
        "tpa": str(ipaddress.IPv4Address(frame[38:42])),
    }
