#!/usr/bin/env python3
"""Traffic helpers that run INSIDE a test namespace (`ip netns exec NS python3 ns_tools.py ...`).

Each subcommand is bounded in packets and time and prints one JSON object on stdout:

  udp-echo     sends datagrams of seeded random sizes to the reflector and checks that each
               comes back byte-identical (bounded window, per-datagram timeout and retries)
  send-frames  sends raw Ethernet frames (hex, one per line on stdin) on an interface
  udp-probe    sends one datagram from a connected socket; reports "reply", "refused"
               (ICMP port unreachable came back) or "timeout"
  capture-garp waits for a gratuitous ARP (sender IP = target IP = the given address); prints
               "listening" on stderr once its socket is bound
"""

import argparse
import json
import random
import select
import socket
import sys
import time

import packets

ETH_P_ALL = 0x0003


def udp_echo(args) -> dict:
    # Payloads are generated up front and are pairwise distinct, so a reply identifies its
    # datagram by content alone: a reply that equals no payload is a mismatch.
    rng = random.Random(args.seed)
    payloads: list[bytes] = []
    seen: set[bytes] = set()
    for _ in range(args.count):
        while True:
            p = rng.randbytes(rng.randint(args.min_size, args.max_size))
            if p not in seen:
                break
        seen.add(p)
        payloads.append(p)
    index = {p: i for i, p in enumerate(payloads)}

    dst = (args.dst, args.port)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for opt in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
        if opt is None:
            continue
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, 4 << 20)
            break
        except OSError:
            continue
    sock.setblocking(False)

    done = [False] * args.count
    outstanding: dict[int, list] = {}  # index -> [deadline, tries]
    given_up: set[int] = set()
    stats = {"sent": 0, "retransmits": 0, "identical": 0, "mismatched": 0, "duplicates": 0,
             "unexpected_source": 0, "send_errors": 0}
    mismatch_sizes: list[int] = []
    next_i = 0
    start = time.monotonic()
    hard_deadline = start + args.deadline

    def send(i: int) -> None:
        try:
            sock.sendto(payloads[i], dst)
        except (BlockingIOError, OSError):
            stats["send_errors"] += 1  # retried by the timeout below

    while time.monotonic() < hard_deadline:
        now = time.monotonic()
        while len(outstanding) < args.window and next_i < args.count:
            send(next_i)
            stats["sent"] += 1
            outstanding[next_i] = [now + args.timeout, 1]
            next_i += 1
        for i, slot in list(outstanding.items()):
            if now >= slot[0]:
                if slot[1] > args.retries:
                    del outstanding[i]
                    given_up.add(i)
                else:
                    send(i)
                    stats["retransmits"] += 1
                    slot[0] = now + args.timeout
                    slot[1] += 1
        if not outstanding and next_i >= args.count:
            break
        readable, _, _ = select.select([sock], [], [], 0.05)
        if not readable:
            continue
        for _ in range(4 * args.window):
            try:
                data, src = sock.recvfrom(65535)
            except BlockingIOError:
                break
            if src != dst:
                stats["unexpected_source"] += 1
                continue
            i = index.get(data)
            if i is None:
                stats["mismatched"] += 1
                if len(mismatch_sizes) < 20:
                    mismatch_sizes.append(len(data))
            elif done[i]:
                stats["duplicates"] += 1
            else:
                done[i] = True
                stats["identical"] += 1
                outstanding.pop(i, None)
                given_up.discard(i)
    sock.close()
    missing = [i for i in range(args.count) if not done[i]]
    stats.update({
        "count": args.count,
        "missing": len(missing),
        "missing_examples": [{"index": i, "size": len(payloads[i])} for i in missing[:10]],
        "mismatch_sizes": mismatch_sizes,
        "bytes": sum(len(p) for p in payloads),
        "elapsed_s": round(time.monotonic() - start, 3),
    })
    return stats


def send_frames(args) -> dict:
    frames = [bytes.fromhex(line.strip()) for line in sys.stdin if line.strip()]
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((args.iface, 0))
    sent, errors = 0, []
    for n, frame in enumerate(frames):
        try:
            sock.send(frame)
            sent += 1
        except OSError as e:
            errors.append({"frame": n, "length": len(frame), "errno": e.errno, "error": e.strerror})
    sock.close()
    return {"frames": len(frames), "sent": sent, "errors": errors}


def udp_probe(args) -> dict:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(args.timeout)
    sock.connect((args.dst, args.port))
    payload = b"sluice-probe"
    try:
        sock.send(payload)
        data = sock.recv(65535)
        return {"result": "reply", "identical": data == payload}
    except ConnectionRefusedError:
        return {"result": "refused"}
    except TimeoutError:
        return {"result": "timeout"}
    finally:
        sock.close()


def capture_garp(args) -> dict:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(packets.ETH_P_ARP))
    sock.bind((args.iface, 0))
    print("listening", file=sys.stderr, flush=True)
    deadline = time.monotonic() + args.timeout
    seen = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return {"found": False, "arp_frames_seen": seen}
        readable, _, _ = select.select([sock], [], [], min(left, 0.2))
        if not readable:
            continue
        frame = sock.recv(65535)
        arp = packets.parse_arp(frame)
        if arp is None:
            continue
        seen += 1
        if arp["spa"] == args.ip and arp["tpa"] == args.ip:
            arp["found"] = True
            return arp


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("udp-echo")
    p.add_argument("--dst", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--min-size", type=int, default=1)
    p.add_argument("--max-size", type=int, default=8000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--window", type=int, default=32)
    p.add_argument("--timeout", type=float, default=1.0, help="per-datagram reply timeout (s)")
    p.add_argument("--retries", type=int, default=3)
    p.add_argument("--deadline", type=float, default=60.0, help="bound on the whole run (s)")

    p = sub.add_parser("send-frames")
    p.add_argument("--iface", required=True)

    p = sub.add_parser("udp-probe")
    p.add_argument("--dst", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--timeout", type=float, default=2.0)

    p = sub.add_parser("capture-garp")
    p.add_argument("--iface", required=True)
    p.add_argument("--ip", required=True)
    p.add_argument("--timeout", type=float, default=20.0)

    args = parser.parse_args()
    handler = {"udp-echo": udp_echo, "send-frames": send_frames, "udp-probe": udp_probe,
               "capture-garp": capture_garp}
    print(json.dumps(handler[args.cmd](args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
