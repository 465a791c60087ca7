#!/usr/bin/env python3
"""Linux TCP peers for the Sluice TCP tests; they run INSIDE a test namespace
(`ip netns exec NS python3 tcp_tools.py ...`). Python 3 stdlib only.

Every subcommand is bounded in bytes, connections and time (an overall --deadline, and a
--stall bound on the time without progress), never blocks without a timeout, and prints one
JSON object (its result) as the last line of stdout:

  bulk     one connection to an echo server: sends --bytes of a seeded pattern while it reads
           (epoll, non-blocking: sending and receiving concurrently, so that neither side's
           window can deadlock the transfer), then shuts down its write side (half-close) and
           reads until EOF. Reports the SHA-256 of what it sent and of what it received, the
           offset of the first byte that differs from the pattern, whether EOF came, the
           kernel's retransmission count. --sequential: send everything, shut down, and only
           then read (the half-close test; --bytes must fit in the sockets' buffers).
  many     --count connections opened at once (RLIMIT_NOFILE raised); when all are
           established, each sends a distinct message and checks its echo; when all have
           (--pause: prints "echoed N" on stderr and waits for a line on stdin, all still
           open), each shuts down its write side, waits for EOF (the server's FIN) and closes.
  connect  one connect(): "connected", "refused" (ECONNREFUSED), "timeout" or "error".
  server   a Linux TCP server on --bind:--port for --conns connections, concurrently (epoll).
           --mode echo: echoes, and after the peer's FIN (once everything is echoed) shuts
           down its own side. --mode sink-reply: reads until the peer's FIN, then sends a
           reply (the SHA-256 of what it received, then --reply-bytes of a seeded pattern)
           and shuts down. Reports the SHA-256 of every connection's received bytes. Prints
           "listening" on stderr once it listens.

The pattern of a seed is the concatenation of random.Random(seed).randbytes(65536) blocks
(see Pattern); the tests regenerate it to know what to expect.
"""

import argparse
import errno
import hashlib
import json
import random
import resource
import select
import socket
import struct
import sys
import time

BLOCK = 65536
IP_FREEBIND = 15


class Pattern:
    """The byte stream of a seed, read sequentially."""

    def __init__(self, seed: int):
        self._rng = random.Random(seed)
        self._buf = b""
        self._off = 0

    def take(self, n: int) -> bytes:
        out = []
        while n > 0:
            if self._off == len(self._buf):
                self._buf, self._off = self._rng.randbytes(BLOCK), 0
            k = min(n, len(self._buf) - self._off)
            out.append(self._buf[self._off:self._off + k])
            self._off += k
            n -= k
        return b"".join(out)


def pattern_bytes(seed: int, n: int) -> bytes:
    return Pattern(seed).take(n)


def errno_name(e: OSError) -> str:
    return errno.errorcode.get(e.errno, str(e.errno)) if e.errno else type(e).__name__


# struct tcp_info (linux/tcp.h): the fields that say which side's timer a stall waits on.
_TCP_INFO_FIELDS = (  # name, struct format, offset
    ("ca_state", "B", 1), ("retransmits", "B", 2), ("backoff", "B", 4), ("rto_us", "I", 8),
    ("unacked", "I", 24), ("sacked", "I", 28), ("lost", "I", 32), ("retrans", "I", 36),
    ("last_data_sent_ms", "I", 44), ("last_data_recv_ms", "I", 52),
    ("last_ack_recv_ms", "I", 56), ("rtt_us", "I", 68), ("rttvar_us", "I", 72),
    ("snd_cwnd", "I", 80), ("total_retrans", "I", 100), ("rwnd_limited_us", "Q", 176))
_CA_STATES = ("open", "disorder", "cwr", "recovery", "loss")


def tcp_info(sock: socket.socket) -> dict | None:
    """The kernel's view of a connection: RTO and its backoff, congestion state, how long
    since data went out or came in, time limited by the peer's receive window."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 184)
    except OSError:
        return None
    out = {}
    for name, fmt, off in _TCP_INFO_FIELDS:
        if off + struct.calcsize(fmt) <= len(info):
            out[name] = struct.unpack_from("=" + fmt, info, off)[0]
    if "ca_state" in out and out["ca_state"] < len(_CA_STATES):
        out["ca_state"] = _CA_STATES[out["ca_state"]]
    return out


# ---------------------------------------------------------------------------------------------

def progress(res: dict, last: float) -> float:
    """Bytes moved now: records the longest time without progress; returns now."""
    now = time.monotonic()
    res["longest_stall_s"] = max(res["longest_stall_s"], round(now - last, 3))
    return now


def describe_mismatch(got: bytes, want: bytes, max_runs: int = 8) -> dict:
    """Where `got` differs from `want`: the differing runs [start, end) (the first
    `max_runs`), and for each the offset in `want` its bytes come from, if found (data
    placed at the wrong sequence number), with a few bytes of both."""
    runs, i, n = [], 0, min(len(got), len(want))
    total = 0
    while i < n:
        if got[i] == want[i]:
            # Skip equal stretches quickly, 4 KiB at a time.
            j = i
            while j + 4096 <= n and got[j:j + 4096] == want[j:j + 4096]:
                j += 4096
            while j < n and got[j] == want[j]:
                j += 1
            i = j
            continue
        j = i
        while j < n and got[j] != want[j]:
            j += 1
        # A run ends at 16 equal bytes (random data matches by chance 1 byte in 256).
        while j < n and got[j:j + 16] != want[j:j + 16]:
            j += 1
            while j < n and got[j] != want[j]:
                j += 1
        total += j - i
        if len(runs) < max_runs:
            sample = got[i:i + 32]
            src = want.find(sample) if len(sample) >= 16 else -1
            runs.append({"start": i, "end": j, "len": j - i, "source_offset": src,
                         "got": got[i:i + 16].hex(), "want": want[i:i + 16].hex()})
        i = j
    return {"differing_bytes": total, "runs": runs, "length_got": len(got),
            "length_want": len(want)}


def bulk(args) -> dict:
    start = time.monotonic()
    deadline = start + args.deadline
    res = {"connected": False, "error": None, "bytes": args.bytes, "bytes_sent": 0,
           "bytes_received": 0, "eof": False, "first_mismatch": None, "sent_sha256": None,
           "recv_sha256": None, "total_retrans": None, "elapsed_s": None, "stalled": False,
           "longest_stall_s": 0.0, "tcp_info": None, "max_backoff": 0}
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(min(args.stall, args.deadline))
    try:
        sock.connect((args.dst, args.port))
    except OSError as e:
        res["error"] = f"connect: {errno_name(e)}"
        sock.close()
        return res
    res["connected"] = True
    sock.setblocking(False)
    send_pat, expect_pat = Pattern(args.seed), Pattern(args.seed)
    sent_h, recv_h = hashlib.sha256(), hashlib.sha256()
    pending = b""  # taken from the pattern, not yet accepted by the socket
    # What came back, kept for the analysis of a mismatch (up to --keep bytes).
    kept = bytearray() if args.bytes <= args.keep else None
    shut = False
    last_progress = time.monotonic()
    ep = select.epoll()
    ep.register(sock.fileno(), select.EPOLLIN | select.EPOLLOUT)
    try:
        while True:
            now = time.monotonic()
            if now >= deadline:
                res["error"] = f"deadline ({args.deadline}s)"
                break
            if now - last_progress >= args.stall:
                res["error"], res["stalled"] = f"no progress for {args.stall}s", True
                break
            sending = not shut
            reading = shut or not args.sequential
            mask = (select.EPOLLOUT if sending else 0) | (select.EPOLLIN if reading else 0)
            ep.modify(sock.fileno(), mask)
            events = ep.poll(min(0.5, max(0.0, deadline - now)))
            if not events:
                # Idle: note how far the kernel's retransmission timer has backed off.
                info = tcp_info(sock)
                if info:
                    res["max_backoff"] = max(res["max_backoff"], info.get("backoff", 0))
                continue
            ev = events[0][1]
            if sending and ev & (select.EPOLLOUT | select.EPOLLERR | select.EPOLLHUP):
                for _ in range(64):
                    if not pending:
                        left = args.bytes - res["bytes_sent"]
                        if left == 0:
                            break
                        pending = send_pat.take(min(args.chunk, left))
                    try:
                        n = sock.send(pending)
                    except BlockingIOError:
                        break
                    sent_h.update(pending[:n])
                    pending = pending[n:]
                    res["bytes_sent"] += n
                    last_progress = progress(res, last_progress)
                if res["bytes_sent"] == args.bytes and not pending:
                    sock.shutdown(socket.SHUT_WR)
                    shut = True
            if reading and ev & (select.EPOLLIN | select.EPOLLERR | select.EPOLLHUP):
                done = False
                for _ in range(64):
                    try:
                        data = sock.recv(1 << 18)
                    except BlockingIOError:
                        break
                    if not data:
                        res["eof"] = True
                        done = True
                        break
                    last_progress = progress(res, last_progress)
                    recv_h.update(data)
                    if kept is not None:
                        kept += data
                    expected = expect_pat.take(len(data))
                    if res["first_mismatch"] is None and data != expected:
                        i = next(k for k in range(len(data)) if data[k] != expected[k])
                        res["first_mismatch"] = res["bytes_received"] + i
                    res["bytes_received"] += len(data)
                if done:
                    break
    except OSError as e:
        res["error"] = errno_name(e)
    finally:
        res["tcp_info"] = tcp_info(sock)  # at the end: at a stall, the state it stalled in
        res["total_retrans"] = (res["tcp_info"] or {}).get("total_retrans")
        ep.close()
        sock.close()
    res["sent_sha256"] = sent_h.hexdigest()
    res["recv_sha256"] = recv_h.hexdigest()
    if res["first_mismatch"] is not None and kept is not None:
        res["mismatch"] = describe_mismatch(bytes(kept), pattern_bytes(args.seed, args.bytes))
    res["elapsed_s"] = round(time.monotonic() - start, 3)
    if res["elapsed_s"] > 0:
        res["mb_per_s"] = round(res["bytes_received"] / res["elapsed_s"] / 1e6, 2)
    return res


# ---------------------------------------------------------------------------------------------

def raise_nofile(n: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= n:
        return
    hard = max(hard, n) if hard != resource.RLIM_INFINITY else hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard))


def many(args) -> dict:
    start = time.monotonic()
    deadline = start + args.deadline
    raise_nofile(args.count + 256)
    rng = random.Random(args.seed)
    msgs = [b"%06d:" % i + rng.randbytes(rng.randint(args.min_size, args.max_size))
            for i in range(args.count)]
    ep = select.epoll()
    conns: dict[int, dict] = {}  # fd -> state
    res = {"count": args.count, "connected": 0, "connect_failures": {}, "max_open": 0,
           "echoed_ok": 0, "mismatched": 0, "clean_closes": 0, "errors": {},
           "unfinished": 0, "examples": []}

    def fail(c: dict, what: str) -> None:
        res["errors"][what] = res["errors"].get(what, 0) + 1
        if len(res["examples"]) < 10:
            res["examples"].append({"conn": c["i"], "phase": c["phase"], "error": what,
                                    "received": len(c["rx"]), "expected": len(msgs[c["i"]])})
        close(c)

    def close(c: dict) -> None:
        ep.unregister(c["sock"].fileno())
        del conns[c["sock"].fileno()]
        c["sock"].close()

    # Phase 1: every connection opened at once.
    for i in range(args.count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        rc = s.connect_ex((args.dst, args.port))
        if rc not in (0, errno.EINPROGRESS):
            name = errno.errorcode.get(rc, str(rc))
            res["connect_failures"][name] = res["connect_failures"].get(name, 0) + 1
            s.close()
            continue
        conns[s.fileno()] = {"i": i, "sock": s, "phase": "connecting", "tx": msgs[i], "rx": b""}
        ep.register(s.fileno(), select.EPOLLOUT)
    while time.monotonic() < deadline and any(c["phase"] == "connecting" for c in conns.values()):
        for fd, ev in ep.poll(0.2):
            c = conns.get(fd)
            if c is None or c["phase"] != "connecting":
                continue
            err = c["sock"].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                name = errno.errorcode.get(err, str(err))
                res["connect_failures"][name] = res["connect_failures"].get(name, 0) + 1
                close(c)
                continue
            c["phase"] = "connected"
            res["connected"] += 1
            ep.modify(fd, 0)
    res["max_open"] = sum(1 for c in conns.values() if c["phase"] == "connected")
    res["connect_s"] = round(time.monotonic() - start, 3)
    for c in list(conns.values()):
        if c["phase"] == "connecting":
            fail(c, "connect timeout")

    # Phase 2: each sends its message and reads its echo; all stay open.
    for fd, c in conns.items():
        c["phase"] = "echo"
        ep.modify(fd, select.EPOLLIN | select.EPOLLOUT)
    while time.monotonic() < deadline and any(c["phase"] == "echo" for c in conns.values()):
        for fd, ev in ep.poll(0.2):
            c = conns.get(fd)
            if c is None or c["phase"] != "echo":
                continue
            s = c["sock"]
            try:
                if c["tx"] and ev & select.EPOLLOUT:
                    n = s.send(c["tx"])
                    c["tx"] = c["tx"][n:]
                    if not c["tx"]:
                        ep.modify(fd, select.EPOLLIN)
                if ev & (select.EPOLLIN | select.EPOLLERR | select.EPOLLHUP):
                    data = s.recv(65536)
                    if not data:
                        fail(c, "EOF before the whole echo")
                        continue
                    c["rx"] += data
                    want = msgs[c["i"]]
                    if len(c["rx"]) >= len(want):
                        if c["rx"] != want:
                            res["mismatched"] += 1
                            fail(c, "echo differs")
                            continue
                        res["echoed_ok"] += 1
                        c["phase"] = "echoed"
                        ep.modify(fd, 0)
            except BlockingIOError:
                pass
            except OSError as e:
                fail(c, errno_name(e))
    res["open_after_echo"] = sum(1 for c in conns.values() if c["phase"] == "echoed")
    if args.pause:
        print(f"echoed {res['open_after_echo']}", file=sys.stderr, flush=True)
        ready, _, _ = select.select([sys.stdin], [], [], max(0.0, deadline - time.monotonic()))
        if ready:
            sys.stdin.readline()

    # Phase 3: each shuts down its write side, waits for EOF (the server's FIN) and closes.
    for fd, c in list(conns.items()):
        if c["phase"] != "echoed":
            continue
        c["phase"] = "closing"
        try:
            c["sock"].shutdown(socket.SHUT_WR)
            ep.modify(fd, select.EPOLLIN)
        except OSError as e:
            fail(c, errno_name(e))
    while conns and time.monotonic() < deadline:
        for fd, ev in ep.poll(0.2):
            c = conns.get(fd)
            if c is None or c["phase"] != "closing":
                continue
            try:
                data = c["sock"].recv(65536)
                if data:
                    fail(c, "data after the echo")
                    continue
                res["clean_closes"] += 1
                close(c)
            except BlockingIOError:
                pass
            except OSError as e:
                fail(c, errno_name(e))
    res["unfinished"] = len(conns)
    for c in list(conns.values()):
        fail(c, f"unfinished at the deadline ({args.deadline}s)")
    ep.close()
    res["elapsed_s"] = round(time.monotonic() - start, 3)
    return res


# ---------------------------------------------------------------------------------------------

def connect(args) -> dict:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(args.timeout)
    start = time.monotonic()
    try:
        sock.connect((args.dst, args.port))
        return {"result": "connected"}
    except ConnectionRefusedError as e:
        return {"result": "refused", "errno": errno_name(e),
                "elapsed_s": round(time.monotonic() - start, 3)}
    except TimeoutError:
        return {"result": "timeout"}
    except OSError as e:
        return {"result": "error", "errno": errno_name(e)}
    finally:
        sock.close()


# ---------------------------------------------------------------------------------------------

def server(args) -> dict:
    start = time.monotonic()
    deadline = start + args.deadline
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)  # in tap mode the address comes later
    ls.bind((args.bind, args.port))
    ls.listen(max(16, args.conns))
    ls.setblocking(False)
    ep = select.epoll()
    ep.register(ls.fileno(), select.EPOLLIN)
    print("listening", file=sys.stderr, flush=True)
    conns: dict[int, dict] = {}
    finished: list[dict] = []
    accepted = 0
    max_outbuf = 4 << 20

    def finish(c: dict, error: str | None) -> None:
        ep.unregister(c["sock"].fileno())
        del conns[c["sock"].fileno()]
        c["sock"].close()
        finished.append({"conn": c["n"], "peer": c["peer"], "bytes_received": c["rx"],
                         "sha256": c["h"].hexdigest(), "bytes_sent": c["tx"], "eof": c["eof"],
                         "error": error})

    def update_mask(c: dict) -> None:
        mask = 0
        if not c["eof"] and len(c["out"]) < max_outbuf:
            mask |= select.EPOLLIN
        if c["out"]:
            mask |= select.EPOLLOUT
        ep.modify(c["sock"].fileno(), mask)

    while len(finished) < args.conns and time.monotonic() < deadline:
        for fd, ev in ep.poll(0.2):
            if fd == ls.fileno():
                while accepted < args.conns:
                    try:
                        s, peer = ls.accept()
                    except BlockingIOError:
                        break
                    s.setblocking(False)
                    conns[s.fileno()] = {"n": accepted, "sock": s, "peer": f"{peer[0]}:{peer[1]}",
                                         "h": hashlib.sha256(), "rx": 0, "tx": 0, "eof": False,
                                         "out": bytearray()}
                    accepted += 1
                    ep.register(s.fileno(), select.EPOLLIN)
                continue
            c = conns.get(fd)
            if c is None:
                continue
            s = c["sock"]
            try:
                if ev & (select.EPOLLIN | select.EPOLLERR | select.EPOLLHUP) and not c["eof"]:
                    for _ in range(16):
                        try:
                            data = s.recv(1 << 18)
                        except BlockingIOError:
                            break
                        if not data:
                            c["eof"] = True
                            if args.mode == "sink-reply":
                                c["out"] += (f"sha256={c['h'].hexdigest()}\n".encode()
                                             + pattern_bytes(args.reply_seed, args.reply_bytes))
                            break
                        c["h"].update(data)
                        c["rx"] += len(data)
                        if args.mode == "echo":
                            c["out"] += data
                        if len(c["out"]) >= max_outbuf:
                            break
                if c["out"]:
                    try:
                        n = s.send(c["out"])
                        del c["out"][:n]
                        c["tx"] += n
                    except BlockingIOError:
                        pass
                if c["eof"] and not c["out"]:
                    s.shutdown(socket.SHUT_WR)
                    finish(c, None)
                    continue
                update_mask(c)
            except OSError as e:
                finish(c, errno_name(e))
    for c in list(conns.values()):
        finish(c, f"unfinished at the deadline ({args.deadline}s)")
    ep.close()
    ls.close()
    finished.sort(key=lambda c: c["conn"])
    return {"accepted": accepted, "conns": finished,
            "elapsed_s": round(time.monotonic() - start, 3)}


# ---------------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("bulk")
    p.add_argument("--dst", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--bytes", type=int, required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--chunk", type=int, default=1 << 16)
    p.add_argument("--sequential", action="store_true",
                   help="send all, shut down, then read (the data must fit in the buffers)")
    p.add_argument("--stall", type=float, default=20.0, help="bound on a time without progress")
    p.add_argument("--keep", type=int, default=64 << 20,
                   help="keep what comes back, up to this size, to describe a mismatch")
    p.add_argument("--deadline", type=float, default=120.0, help="bound on the whole run (s)")

    p = sub.add_parser("many")
    p.add_argument("--dst", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--min-size", type=int, default=1)
    p.add_argument("--max-size", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--pause", action="store_true",
                   help="once all have their echo, print 'echoed N' and wait for a stdin line")
    p.add_argument("--deadline", type=float, default=60.0)

    p = sub.add_parser("connect")
    p.add_argument("--dst", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--timeout", type=float, default=5.0)

    p = sub.add_parser("server")
    p.add_argument("--bind", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--conns", type=int, default=1, help="exit after this many connections")
    p.add_argument("--mode", choices=("echo", "sink-reply"), default="echo")
    p.add_argument("--reply-bytes", type=int, default=0)
    p.add_argument("--reply-seed", type=int, default=1)
    p.add_argument("--deadline", type=float, default=120.0)

    args = parser.parse_args()
    handler = {"bulk": bulk, "many": many, "connect": connect, "server": server}
    print(json.dumps(handler[args.cmd](args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
