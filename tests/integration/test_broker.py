#!/usr/bin/env python3
"""sluice-broker against real Redis clients, and the same tests against a real redis-server.

The tests run against either target (--target):

  redis    a real `redis-server --port 6379 --bind 198.18.0.2 --save "" --appendonly no
           --protected-mode no` in a namespace of its own, on a veth end holding 198.18.0.2;
           the clients run in a second namespace holding the other end (198.18.0.1), so that
           every byte crosses the veth. Its pub/sub output limit is set to the one the broker
           is started with (CONFIG SET client-output-buffer-limit "pubsub 4194304 1048576 5").
           This is how every expectation below was developed: they encode Redis 7.0's real
           behaviour, byte for byte where a test says so.
  sluice   sluice-broker on net_tap (or af_packet: --mode) through the harness's ReflectorEnv
           at 198.18.0.2:6379, started with `--client-output-limit 4194304,1048576,5`; the
           clients run in its namespace (kernel side 198.18.0.1). At the end it must exit 0 on
           SIGINT without the engine's "mbufs not back" warning. One worker by default (EAL
           lcore 1, the harness's); --workers N: N workers (EAL -l 0,..,N-1), connections
           spread over them by RSS (net_tap's, or the engine's software RSS).

The clients are real ones only: redis-cli (RESP2, and RESP3 with -3), redis-benchmark, and
Python sockets speaking RESP (created inside the clients' namespace with setns(2), so that the
test process itself reads every frame and checks it exactly).

  redis-cli       SUBSCRIBE / PSUBSCRIBE subscribers as subprocesses, PUBLISH and PUBSUB
                  CHANNELS / NUMSUB / NUMPAT from other redis-cli processes, RESP2 and RESP3
  frames          subscribe / unsubscribe / psubscribe / punsubscribe confirmations and their
                  running count, message and pmessage frames, a client matched by a channel
                  and a pattern counted (and served) twice, (P|S)UNSUBSCRIBE with nothing
                  subscribed, unsubscribe-all, subscribing twice, sharded pub/sub, PING in
                  subscribed state, commands refused in RESP2 subscribed state, unknown
                  commands, RESET, QUIT, CLIENT ID/SETNAME/GETNAME/REPLY, CONFIG GET, ECHO,
                  SELECT, FLUSHALL, FUNCTION FLUSH, COMMAND, INFO, HELLO 2/3, inline commands,
                  pipelining, a request sent one byte per segment, protocol errors
  load            redis-benchmark PUBLISH (100 000 requests, 50 clients, pipeline 16); two
                  subscribers (one RESP2, one RESP3) and a pipelining publisher exchanging
                  100 000 numbered messages, none lost, order kept, bounded time
  slow consumers  a subscriber that stops reading is disconnected at the hard limit (4 MiB)
                  while another one receives everything; one that lags past the soft limit
                  (1 MiB) for longer than 5 s is disconnected before the hard limit
  cross-core      (CrossCoreTest, --workers 2 or more; skipped with one) 16+ connections
                  spread so that every worker owns some (INFO sluice_worker / sluice_workers),
                  a publisher on each worker: PUBLISH counts a subscriber on any core right
                  after its SUBSCRIBE confirmation and not after its UNSUBSCRIBE / RESET
                  answer, disconnected ones stop counting within a bounded time; 20 000
                  numbered messages (half from each core's publisher) reach 16 subscribers
                  in order; causal order (a PUBLISH answered before a subscriber's next
                  command is delivered before that command's reply); PSUBSCRIBE, PUBSUB
                  CHANNELS / NUMSUB / NUMPAT / SHARDCHANNELS / SHARDNUMSUB answered alike on
                  every core; payloads up to 300 kB; pipelined subscription churn; clients
                  that subscribe and vanish at once; PUBLISH counts that race subscription
                  changes on other cores still sum to exactly the deliveries made; CONFIG SET
                  client-output-buffer-limit on one worker applies on all. With --target
                  redis --workers 2 the same tests run against redis-server (the reference).

Between tests every client is closed and the server must forget its subscriptions (PUBSUB
CHANNELS, NUMPAT and SHARDCHANNELS empty within a bounded wait).

Run (root; exit 77 = skipped where the environment lacks something):
  python3 tests/integration/test_broker.py --target redis
  python3 tests/integration/test_broker.py --target sluice --broker build/apps/broker/sluice-broker
    [--mode tap|af_packet] [--workers 2] [unittest options, e.g. BrokerTest.test_pipelining]
Environment: SLUICE_BROKER (the --broker default), SLUICE_BROKER_MESSAGES (the fan-out test's
message count, default 100000), SLUICE_BROKER_XCORE_SUBSCRIBERS / SLUICE_BROKER_XCORE_MESSAGES
(the cross-core fan-out: 16 subscribers, 20000 messages).
--broker-arg OPT (repeatable) passes OPT to sluice-broker, e.g. --broker-arg=--copy-below
--broker-arg=0.
"""

import argparse
import ctypes
import os
import re
import select
import shutil
import socket
import sys
import time
import unittest

import sluice_harness as h

BROKER_IP = h.REFLECTOR_IP  # 198.18.0.2 for both targets
PORT = 6379
# The pub/sub output limit both targets run with (hard, soft, soft seconds): Redis's defaults
# are 32 MiB / 8 MiB / 60 s, too slow for a test.
HARD_LIMIT, SOFT_LIMIT, SOFT_SECONDS = 4 * 1024 * 1024, 1024 * 1024, 5
FANOUT_MESSAGES = int(os.environ.get("SLUICE_BROKER_MESSAGES", "100000"))
# The cross-core tests (--workers 2): subscribers (spread over the workers), messages of the
# ordered fan-out, rounds of the causal-order test, subscription changes per churning client.
XCORE_SUBSCRIBERS = int(os.environ.get("SLUICE_BROKER_XCORE_SUBSCRIBERS", "16"))
XCORE_MESSAGES = int(os.environ.get("SLUICE_BROKER_XCORE_MESSAGES", "20000"))
XCORE_ROUNDS = 50
XCORE_CHURN = 100
XCORE_CHURN_MESSAGES = 5000
READ_TIMEOUT = 10.0  # one reply, on a busy 2-core box
CLEAN_TIMEOUT = 10.0  # the server forgets a closed client's subscriptions within this

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class Target:
    """Set by main()."""
    kind: str = ""
    broker: str | None = None
    mode: str = "tap"
    workers: int = 1  # sluice-broker's worker cores (--workers)
    broker_args: tuple = ()  # more options for sluice-broker (--broker-arg)


TARGET = Target()


# ---------------------------------------------------------------------------------------------
# RESP: encoding, a parser keeping the types, and a socket client.

class Simple(str):
    """+simple string"""


class Err(str):
    """-error (or RESP3 !blob error)"""


class Push(list):
    """RESP3 >push"""


class RSet(list):
    """RESP3 ~set"""


class Verbatim(bytes):
    """RESP3 =verbatim string (the format prefix 'txt:' kept)"""


class Incomplete(Exception):
    pass


def B(x) -> bytes:
    if isinstance(x, bytes):
        return x
    return str(x).encode()


def bulk(x) -> bytes:
    x = B(x)
    return b"$%d\r\n%s\r\n" % (len(x), x)


def command(*args) -> bytes:
    """A request as a RESP multibulk."""
    return b"*%d\r\n" % len(args) + b"".join(bulk(a) for a in args)


def enc(x, p3: bool) -> bytes:
    """A reply value as the server encodes it: None is the null bulk ($-1, RESP3 _), int an
    integer, bytes/str a bulk string, list an array."""
    if x is None:
        return b"_\r\n" if p3 else b"$-1\r\n"
    if isinstance(x, bool):
        raise TypeError("no booleans here")
    if isinstance(x, int):
        return b":%d\r\n" % x
    if isinstance(x, list):
        return b"*%d\r\n" % len(x) + b"".join(enc(i, p3) for i in x)
    return bulk(x)


def push(p3: bool, *items) -> bytes:
    """A pub/sub frame: an array in RESP2, a push (>) in RESP3."""
    return (b">" if p3 else b"*") + b"%d\r\n" % len(items) + b"".join(enc(i, p3) for i in items)


def _line(buf, pos: int) -> tuple[bytes, int]:
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise Incomplete
    return bytes(buf[pos:end]), end + 2


def parse(buf, pos: int = 0):
    """One RESP2/RESP3 value from buf[pos:]: (value, end); raises Incomplete."""
    if pos >= len(buf):
        raise Incomplete
    t = bytes(buf[pos:pos + 1])
    line, pos = _line(buf, pos + 1)
    if t == b"+":
        return Simple(line.decode()), pos
    if t == b"-":
        return Err(line.decode()), pos
    if t in (b":", b"("):
        return int(line), pos
    if t == b",":
        return float(line), pos
    if t == b"#":
        return line == b"t", pos
    if t == b"_":
        return None, pos
    if t in (b"$", b"=", b"!"):
        n = int(line)
        if n < 0:
            return None, pos
        if len(buf) < pos + n + 2:
            raise Incomplete
        data = bytes(buf[pos:pos + n])
        if bytes(buf[pos + n:pos + n + 2]) != b"\r\n":
            raise AssertionError(f"bulk of {n} bytes not followed by CRLF: "
                                 f"{bytes(buf[pos:pos + n + 8])!r}")
        pos += n + 2
        return (Verbatim(data) if t == b"=" else Err(data.decode()) if t == b"!" else data), pos
    if t in (b"*", b">", b"~", b"%"):
        n = int(line)
        if n < 0:
            return None, pos
        items = []
        for _ in range(2 * n if t == b"%" else n):
            v, pos = parse(buf, pos)
            items.append(v)
        if t == b"%":
            return dict(zip(items[::2], items[1::2])), pos
        return (Push(items) if t == b">" else RSet(items) if t == b"~" else items), pos
    raise AssertionError(f"not RESP at {bytes(buf[pos - len(line) - 3:][:60])!r}")


def ns_socket(ns: str, *, rcvbuf: int | None = None) -> socket.socket:
    """A TCP socket in network namespace `ns` (this thread enters it only to create the
    socket; the socket keeps its namespace)."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
        try:
            if _libc.setns(target, CLONE_NEWNET) != 0:
                e = ctypes.get_errno()
                raise OSError(e, f"setns({ns}): {os.strerror(e)}")
            try:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            finally:
                if _libc.setns(own, CLONE_NEWNET) != 0:
                    e = ctypes.get_errno()
                    # This thread would be stuck in the test namespace: fail loudly.
                    raise OSError(e, f"setns back: {os.strerror(e)}")
        finally:
            os.close(target)
    finally:
        os.close(own)
    if rcvbuf is not None:
        # Before connect(): the window scale is chosen from it.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    return sock


class Resp:
    """A RESP client on one TCP connection. Every read is bounded (TimeoutError); EOF while a
    reply is expected is an EOFError."""

    def __init__(self, sock: socket.socket, label: str):
        self.sock = sock
        self.label = label
        self.buf = bytearray()
        self.closed = False

    # -- sending --
    def send(self, data: bytes) -> None:
        self.sock.settimeout(READ_TIMEOUT)
        self.sock.sendall(data)

    def cmd(self, *args) -> None:
        self.send(command(*args))

    def call(self, *args, timeout: float = READ_TIMEOUT):
        self.cmd(*args)
        return self.read(timeout)

    # -- receiving --
    def _fill(self, deadline: float, what: str) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{self.label}: no {what} (have {bytes(self.buf[:200])!r})")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(1 << 16)
        except (socket.timeout, TimeoutError):
            raise TimeoutError(f"{self.label}: no {what} (have {bytes(self.buf[:200])!r})")
        if not data:
            raise EOFError(f"{self.label}: connection closed while waiting for {what} "
                           f"(have {bytes(self.buf[:200])!r})")
        self.buf += data

    def read(self, timeout: float = READ_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            try:
                value, end = parse(self.buf)
            except Incomplete:
                self._fill(deadline, "reply")
                continue
            del self.buf[:end]
            return value

    def expect(self, expected: bytes, timeout: float = READ_TIMEOUT) -> None:
        """The next bytes on the connection are exactly `expected` (fails as soon as one
        differs)."""
        deadline = time.monotonic() + timeout
        checked = 0  # self.buf[:checked] == expected[:checked]
        while len(self.buf) < len(expected):
            n = len(self.buf)
            if self.buf[checked:n] != expected[checked:n]:
                break
            checked = n
            try:
                self._fill(deadline, f"{expected[:120]!r}")
            except (TimeoutError, EOFError) as e:
                lo = max(0, len(self.buf) - 80)
                raise AssertionError(
                    f"{self.label}: {len(self.buf)} of the {len(expected)} bytes expected "
                    f"arrived, then: {type(e).__name__}\n"
                    f"expected ...{expected[lo:lo + 200]!r}\n"
                    f"got      ...{bytes(self.buf[lo:])!r}") from None
        got = bytes(self.buf[:len(expected)])
        if got != expected:
            k = next(i for i in range(len(expected)) if got[i] != expected[i])
            lo = max(0, k - 80)
            raise AssertionError(
                f"{self.label}: differs at byte {k} of {len(expected)} expected\n"
                f"expected ...{expected[lo:k + 120]!r}\n"
                f"got      ...{bytes(self.buf[lo:k + 120])!r}")
        del self.buf[:len(expected)]

    def read_frame(self, timeout: float = READ_TIMEOUT) -> bytes:
        """The bytes of the next complete value, unparsed."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                _, end = parse(self.buf)
            except Incomplete:
                self._fill(deadline, "frame")
                continue
            frame = bytes(self.buf[:end])
            del self.buf[:end]
            return frame

    def expect_unordered(self, frames: list[bytes], timeout: float = READ_TIMEOUT) -> None:
        """The next len(frames) values are exactly `frames`, in any order."""
        got = [self.read_frame(timeout) for _ in frames]
        if sorted(got) != sorted(frames):
            raise AssertionError(f"{self.label}: expected, in any order, {frames!r}\n"
                                 f"got {got!r}")

    def expect_eof(self, timeout: float = READ_TIMEOUT, *, allow_reset: bool = True) -> None:
        """Nothing more arrives, then the connection is closed by the server."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._fill(deadline, "EOF")
            except EOFError:
                break
            except (ConnectionResetError, BrokenPipeError):
                if allow_reset:
                    break
                raise
        if self.buf:
            raise AssertionError(f"{self.label}: unexpected bytes before EOF: "
                                 f"{bytes(self.buf[:200])!r}")

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.sock.close()


# ---------------------------------------------------------------------------------------------
# Targets: where the server runs and where its clients run.

class RedisTarget:
    """redis-server in namespace `server_env` on veth0 (198.18.0.2); the clients in
    `client_env` on veth1 (198.18.0.1). Both namespaces are harness environments: deleted by
    stop(), at exit and on signals (h.cleanup_all), or by the next run's reap_stale()."""

    def __init__(self):
        self.client_env = h.ReflectorEnv("af_packet", "redis-server")
        self.server_env = h.ReflectorEnv("tap", "redis-server")  # tap + create_netns: empty
        self.server: h.NsProcess | None = None

    def start(self) -> None:
        try:
            self.client_env.create_netns()  # veth0 + veth1 (198.18.0.1/24), offloads off
            self.server_env.create_netns()
            self.client_env.ip("link", "set", "veth0", "netns", self.server_env.name)
            self.server_env.ip("addr", "add", f"{BROKER_IP}/{h.PREFIX_LEN}", "dev", "veth0")
            self.server_env.ip("link", "set", "veth0", "up")
            # Its working directory (it writes nothing there: no RDB, no AOF) is the env's
            # runtime dir /var/run/dpdk/sl-<pid>-<n>: removed by stop(), also on signals, and
            # reaped by the next run if this one was SIGKILLed.
            os.makedirs(self.server_env.runtime_dir, exist_ok=True)
            self.server = self.server_env.spawn(
                ["redis-server", "--port", str(PORT), "--bind", BROKER_IP, "--save", "",
                 "--appendonly", "no", "--protected-mode", "no",
                 "--dir", self.server_env.runtime_dir])
            self.server.wait_line("Ready to accept connections", timeout=20, stream="stdout")
            h.wait_for(lambda: "LOWER_UP" in self.client_env.link_flags("veth1"), timeout=10,
                       what="carrier on veth1")
            c = connect_when_up(self.client_env.name, "redis")
            try:
                reply = c.call("CONFIG", "SET", "client-output-buffer-limit",
                               f"pubsub {HARD_LIMIT} {SOFT_LIMIT} {SOFT_SECONDS}")
                if reply != "OK":
                    raise h.CommandError(f"CONFIG SET client-output-buffer-limit: {reply!r}")
            finally:
                c.close()
        except BaseException:
            self.stop()
            raise

    def alive(self) -> bool:
        return self.server is not None and self.server.proc.poll() is None

    def describe(self) -> str:
        return "redis-server" + (self.server.output_tail() if self.server else "")

    def stop(self) -> list[str]:
        problems = []
        if self.server is not None:
            was_alive = self.alive()
            self.server.stop()  # SIGTERM
            if was_alive and self.server.proc.returncode != 0:
                problems.append(f"redis-server exited with {self.server.proc.returncode} "
                                f"after SIGTERM{self.server.output_tail()}")
        self.server_env.stop()
        self.client_env.stop()
        return problems


class BrokerEnv(h.ReflectorEnv):
    """The harness's environment with the broker's EAL lcore list set to `lcores` (one worker
    per lcore); lcores None keeps the harness's single lcore (eal_args)."""

    def __init__(self, *args, lcores: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lcores = lcores

    def reflector_argv(self) -> list[str]:
        argv = super().reflector_argv()
        if self.lcores is not None:
            eal = argv.index("--")
            k = argv.index("-l", eal)
            argv[k + 1] = self.lcores
        return argv


class SluiceTarget:
    """sluice-broker through the harness (ReflectorEnv: namespace, net_tap or af_packet,
    kernel side 198.18.0.1, broker 198.18.0.2, cleanup), with TARGET.workers workers (EAL
    lcores 0..N-1 when N >= 2)."""

    forbidden_drops = ("ipv4_frag_too_big",)

    def __init__(self):
        lcores = (",".join(str(i) for i in range(TARGET.workers)) if TARGET.workers > 1
                  else None)
        self.env = BrokerEnv(
            TARGET.mode, TARGET.broker, lcores=lcores,
            extra_args=("--client-output-limit", f"{HARD_LIMIT},{SOFT_LIMIT},{SOFT_SECONDS}",
                        *TARGET.broker_args))
        self.client_env = self.env

    def start(self) -> None:
        self.env.start()  # cleans up by itself on failure
        try:
            connect_when_up(self.env.name, "sluice-broker").close()
        except BaseException:
            self.env.stop()
            raise

    def alive(self) -> bool:
        return self.env.proc is not None and self.env.proc.poll() is None

    def describe(self) -> str:
        return "sluice-broker" + self.env.output_tail()

    def stop(self) -> list[str]:
        env = self.env
        running = self.alive()
        if running:
            h.wait_tcp_idle(env, timeout=10)  # let closing connections finish first
        code = env.stop()
        # The broker's summary (deliveries, disconnects and why; TCP's resets) in the log.
        for line in env.stdout_lines + env.stderr_lines:
            if "broker worker" in line or line.strip().startswith("tcp:"):
                print(f"sluice-broker: {line.strip()}", file=sys.stderr, flush=True)
        problems = []
        if running and code != 0:
            problems.append(f"sluice-broker exited with {code} after SIGINT (expected 0)")
        leaks = env.leak_warnings()
        if leaks:
            problems.append(f"sluice-broker leaked mbufs: {leaks}")
        drops = env.summary_drops()
        bad = {k: drops[k] for k in self.forbidden_drops if drops.get(k)}
        if bad:
            problems.append(f"sluice-broker dropped packets it built itself: {bad}")
        if problems:
            problems.append(env.output_tail())
        return problems


def kernel_wmem_max() -> int:
    """The most a Linux TCP socket's send buffer autotunes to (tcp_wmem's third field)."""
    try:
        with open("/proc/sys/net/ipv4/tcp_wmem") as f:
            return int(f.read().split()[2])
    except (OSError, ValueError, IndexError):
        return 4 * 1024 * 1024


def connect_when_up(ns: str, what: str, timeout: float = 20.0) -> Resp:
    """Connects (retrying refused/unreachable, bounded) and checks PING."""
    deadline = time.monotonic() + timeout
    while True:
        sock = ns_socket(ns)
        sock.settimeout(2.0)
        try:
            sock.connect((BROKER_IP, PORT))
            c = Resp(sock, what)
            if c.call("PING", timeout=5) != "PONG":
                raise h.CommandError(f"{what}: PING did not answer PONG")
            return c
        except (ConnectionRefusedError, OSError, TimeoutError, EOFError) as e:
            sock.close()
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{what} not serving on {BROKER_IP}:{PORT} within "
                                   f"{timeout}s: {e}") from e
            time.sleep(0.1)


# ---------------------------------------------------------------------------------------------
# The tests.

def confirm(p3: bool, kind: str, channel, count: int) -> bytes:
    return push(p3, kind, channel, count)


def message(p3: bool, channel, payload) -> bytes:
    return push(p3, "message", channel, payload)


def pmessage(p3: bool, pattern, channel, payload) -> bytes:
    return push(p3, "pmessage", pattern, channel, payload)


NOT_ALLOWED = ("-ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / "
               "RESET are allowed in this context\r\n")

HELLO_KEYS = {b"server", b"version", b"proto", b"id", b"mode", b"role", b"modules"}


class BrokerCase(unittest.TestCase):
    """One server (TARGET) per test class, its helpers; every test's clients are closed at its
    end and the server must then forget their subscriptions."""
    maxDiff = None
    target = None

    @classmethod
    def setUpClass(cls) -> None:
        cls.target = RedisTarget() if TARGET.kind == "redis" else SluiceTarget()
        cls.target.start()

    @classmethod
    def tearDownClass(cls) -> None:
        problems = cls.target.stop()
        if problems:
            raise AssertionError("\n".join(problems))

    def setUp(self) -> None:
        if not self.target.alive():
            self.fail(f"the server is not running{self.target.describe()}")
        self.ns = self.target.client_env.name
        self._clients: list[Resp] = []
        self._procs: list[h.NsProcess] = []
        self.addCleanup(self.close_all)

    # -- helpers ------------------------------------------------------------------------------

    def client(self, proto: int = 2, *, label: str | None = None,
               rcvbuf: int | None = None) -> Resp:
        """A new connection (closed at the end of the test); proto 3: after HELLO 3."""
        sock = ns_socket(self.ns, rcvbuf=rcvbuf)
        sock.settimeout(READ_TIMEOUT)
        sock.connect((BROKER_IP, PORT))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c = Resp(sock, label or f"client{len(self._clients)}/resp{proto}")
        self._clients.append(c)
        if proto == 3:
            hello = c.call("HELLO", "3")
            self.assertIsInstance(hello, dict, f"HELLO 3 answered {hello!r}")
            self.assertEqual(hello.get(b"proto"), 3, hello)
        return c

    def server_state(self) -> tuple:
        c = connect_when_up(self.ns, "state probe", timeout=5)
        try:
            return (sorted(c.call("PUBSUB", "CHANNELS")), c.call("PUBSUB", "NUMPAT"),
                    sorted(c.call("PUBSUB", "SHARDCHANNELS")))
        finally:
            c.close()

    def close_all(self) -> None:
        """Closes this test's clients and stops its redis-cli processes, then waits (bounded)
        until the server has forgotten every subscription."""
        for c in self._clients:
            c.close()
        self._clients.clear()
        for p in self._procs:
            p.stop()
        self._procs.clear()
        if not self.target.alive():
            self.fail(f"the server died{self.target.describe()}")
        last = [None]

        def clean():
            last[0] = self.server_state()
            return last[0] == ([], 0, [])
        try:
            h.wait_for(clean, timeout=CLEAN_TIMEOUT, what="no subscriptions left", interval=0.1)
        except TimeoutError:
            self.fail(f"subscriptions of closed clients left on the server after "
                      f"{CLEAN_TIMEOUT}s (channels, numpat, shard channels): {last[0]}")

    def cli(self, *args: str, proto: int = 2) -> list[str]:
        """redis-cli (raw output: one element a line) run to its end; its stdout lines."""
        argv = ["redis-cli", *(["-3"] if proto == 3 else []), "-h", BROKER_IP, "-p", str(PORT),
                *args]
        r = self.target.client_env.exec(argv, timeout=20, check=False)
        self.assertEqual(r.returncode, 0, f"{argv}: {r.stdout}{r.stderr}")
        self.assertEqual(r.stderr.strip(), "", argv)
        return r.stdout.splitlines()

    def cli_subscriber(self, proto: int, *args: str) -> h.NsProcess:
        p = self.target.client_env.spawn(["redis-cli", *(["-3"] if proto == 3 else []), "-h",
                                          BROKER_IP, "-p", str(PORT), *args])
        self._procs.append(p)
        return p

    def wait_lines(self, p: h.NsProcess, lines: list[str], timeout: float = 10.0) -> None:
        """The process's stdout is exactly `lines` (waits until it has that many lines)."""
        try:
            h.wait_for(lambda: len(p.stdout_lines) >= len(lines) or p.proc.poll() is not None,
                       timeout=timeout, what=f"{len(lines)} lines from {p.argv}")
        except TimeoutError as e:
            raise AssertionError(f"{e}{p.output_tail()}") from None
        self.assertEqual(p.stdout_lines, lines, p.output_tail())
        self.assertIsNone(p.proc.poll(), f"redis-cli exited{p.output_tail()}")

    def subscribe(self, c: Resp, p3: bool, kind: str, names: list, first_count: int) -> None:
        """(P|S)SUBSCRIBE names: one confirmation each, counts from first_count up."""
        c.cmd(kind.upper(), *names)
        c.expect(b"".join(confirm(p3, kind, n, first_count + i) for i, n in enumerate(names)))

    def restore_limit(self, c: Resp) -> None:
        self.assertEqual(c.call("CONFIG", "SET", "client-output-buffer-limit",
                                f"pubsub {HARD_LIMIT} {SOFT_LIMIT} {SOFT_SECONDS}"), "OK")

    def for_each_proto(self, body) -> None:
        """body(proto) in RESP2 and in RESP3, each with clean server state."""
        for proto in (2, 3):
            with self.subTest(proto=proto):
                body(proto)
            self.close_all()

    def pump(self, pub: Resp, messages: int, make_cmd, replies: bytes,
             readers: list, *, window: int, deadline_s: float) -> float:
        """Sends `messages` PUBLISH commands (make_cmd(i), all of one length) pipelined, at
        most `window` messages ahead of the slowest reader, while reading everything: the
        publisher's replies must be `replies` exactly, reader r's stream expected[r] exactly
        (readers: [(Resp, expected bytes, frame length)]). Returns the seconds it took."""
        for c in [pub] + [r[0] for r in readers]:
            self.assertEqual(bytes(c.buf), b"", f"{c.label}: unread bytes before the pump")
            c.sock.setblocking(False)
        names = {pub.sock: "publisher"}
        pos = {pub.sock: 0}
        expect = {pub.sock: replies}
        frame = {pub.sock: len(b":0\r\n")}
        for c, exp, flen in readers:
            names[c.sock], pos[c.sock], expect[c.sock], frame[c.sock] = c.label, 0, exp, flen
        sent_msgs, out = 0, b""
        start = time.monotonic()
        deadline = start + deadline_s
        while any(pos[s] < len(expect[s]) for s in pos):
            now = time.monotonic()
            if now >= deadline:
                progress = {names[s]: f"{pos[s] // frame[s]}/{len(expect[s]) // frame[s]}"
                            for s in pos}
                self.fail(f"not done within {deadline_s}s: sent {sent_msgs}/{messages}, "
                          f"messages received {progress}")
            slowest = min(pos[c.sock] // flen for c, _, flen in readers)
            limit = min(messages, slowest + window)
            if not out and sent_msgs < limit:
                upto = min(limit, sent_msgs + 512)
                out = b"".join(make_cmd(i) for i in range(sent_msgs, upto))
                sent_msgs = upto
            rlist = list(pos)
            wlist = [pub.sock] if out else []
            readable, writable, _ = select.select(rlist, wlist, [], min(0.5, deadline - now))
            if writable:
                try:
                    n = pub.sock.send(out)
                    out = out[n:]
                except BlockingIOError:
                    pass
            for s in readable:
                try:
                    data = s.recv(1 << 18)
                except BlockingIOError:
                    continue
                if not data:
                    self.fail(f"{names[s]}: connection closed after "
                              f"{pos[s] // frame[s]} messages")
                p = pos[s]
                if data != expect[s][p:p + len(data)]:
                    k = next(i for i in range(len(data))
                             if p + i >= len(expect[s]) or data[i] != expect[s][p + i])
                    at = (p + k) // frame[s]
                    self.fail(f"{names[s]}: stream differs at message {at} (byte {p + k}): "
                              f"expected {expect[s][at * frame[s]:(at + 1) * frame[s]]!r}, got "
                              f"{data[max(0, k - 20):k + 60]!r}")
                pos[s] = p + len(data)
        for c in [pub] + [r[0] for r in readers]:
            c.sock.setblocking(True)
        self.assertEqual(sent_msgs, messages)
        self.assertEqual(out, b"")
        return time.monotonic() - start


class BrokerTest(BrokerCase):
    """The protocol and the single-server behaviour (any number of workers)."""

    # -- redis-cli ----------------------------------------------------------------------------

    def test_cli_subscribe_publish(self):
        def body(proto):
            a, b = f"cli{proto}.news", f"cli{proto}.sport"
            sub = self.cli_subscriber(proto, "SUBSCRIBE", a, b)
            lines = ["subscribe", a, "1", "subscribe", b, "2"]
            self.wait_lines(sub, lines)
            self.assertEqual(self.cli("PUBSUB", "NUMSUB", a, b, "nobody", proto=proto),
                             [a, "1", b, "1", "nobody", "0"])
            self.assertEqual(sorted(self.cli("PUBSUB", "CHANNELS", proto=proto)), sorted([a, b]))
            self.assertEqual(sorted(self.cli("PUBSUB", "CHANNELS", f"cli{proto}.n*",
                                             proto=proto)), [a])
            self.assertEqual(self.cli("PUBSUB", "NUMPAT", proto=proto), ["0"])
            self.assertEqual(self.cli("PUBLISH", a, "hello world", proto=proto), ["1"])
            self.assertEqual(self.cli("PUBLISH", "nobody", "lost", proto=proto), ["0"])
            self.assertEqual(self.cli("PUBLISH", b, "2:1 ü", proto=proto), ["1"])
            lines += ["message", a, "hello world", "message", b, "2:1 ü"]
            self.wait_lines(sub, lines)
        self.for_each_proto(body)

    def test_cli_psubscribe_publish(self):
        def body(proto):
            pattern = f"clip{proto}.*"
            sub = self.cli_subscriber(proto, "PSUBSCRIBE", pattern)
            lines = ["psubscribe", pattern, "1"]
            self.wait_lines(sub, lines)
            self.assertEqual(self.cli("PUBSUB", "NUMPAT", proto=proto), ["1"])
            # A pattern is no channel (redis-cli prints an empty array as one empty line).
            self.assertEqual(self.cli("PUBSUB", "CHANNELS", proto=proto), [""])
            self.assertEqual(self.cli("PUBSUB", "NUMSUB", pattern, proto=proto), [pattern, "0"])
            self.assertEqual(self.cli("PUBLISH", f"clip{proto}.x", "one", proto=proto), ["1"])
            self.assertEqual(self.cli("PUBLISH", f"clip{proto}", "no match", proto=proto),
                             ["0"])
            self.assertEqual(self.cli("PUBLISH", f"clip{proto}.y.z", "two", proto=proto), ["1"])
            lines += ["pmessage", pattern, f"clip{proto}.x", "one",
                      "pmessage", pattern, f"clip{proto}.y.z", "two"]
            self.wait_lines(sub, lines)
        self.for_each_proto(body)

    # -- frames -------------------------------------------------------------------------------

    def test_subscribe_counts(self):
        def body(proto):
            p3 = proto == 3
            c = self.client(proto)
            self.subscribe(c, p3, "subscribe", ["a", "b"], 1)
            self.subscribe(c, p3, "psubscribe", ["p.*"], 3)
            # Again: confirmed, the count unchanged.
            self.subscribe(c, p3, "subscribe", ["a"], 3)
            self.subscribe(c, p3, "psubscribe", ["p.*"], 3)
            # Mixed order of channels and patterns: one count for both.
            self.subscribe(c, p3, "subscribe", ["c"], 4)
            self.subscribe(c, p3, "psubscribe", ["q?"], 5)
            c.cmd("UNSUBSCRIBE", "a")
            c.expect(confirm(p3, "unsubscribe", "a", 4))
            # Not subscribed to it: confirmed anyway, the count unchanged.
            c.cmd("UNSUBSCRIBE", "zz")
            c.expect(confirm(p3, "unsubscribe", "zz", 4))
            c.cmd("PUNSUBSCRIBE", "p.*", "nope*")
            c.expect(confirm(p3, "punsubscribe", "p.*", 3)
                     + confirm(p3, "punsubscribe", "nope*", 3))
            c.cmd("UNSUBSCRIBE", "b", "c")
            c.expect(confirm(p3, "unsubscribe", "b", 2) + confirm(p3, "unsubscribe", "c", 1))
            c.cmd("PUNSUBSCRIBE", "q?")
            c.expect(confirm(p3, "punsubscribe", "q?", 0))
            # Out of the subscribed state: any command again, plain PONG.
            c.cmd("PING")
            c.expect(b"+PONG\r\n")
            c.cmd("ECHO", "x")
            c.expect(bulk("x"))
        self.for_each_proto(body)

    def test_message_and_pmessage_frames(self):
        def body(proto):
            p3 = proto == 3
            sub = self.client(proto)
            pub = self.client(2)
            self.subscribe(sub, p3, "subscribe", ["news.a"], 1)
            self.subscribe(sub, p3, "psubscribe", ["news.*", "n*"], 2)
            # One client matched by a channel and two patterns: counted and served three times,
            # the channel first, then the patterns (in an unspecified order: Redis walks a hash
            # table).
            def delivered(channel, payload, patterns, direct=True):
                if direct:
                    sub.expect(message(p3, channel, payload))
                sub.expect_unordered([pmessage(p3, pat, channel, payload) for pat in patterns])
            self.assertEqual(pub.call("PUBLISH", "news.a", "hello"), 3)
            delivered("news.a", "hello", ["news.*", "n*"])
            self.assertEqual(pub.call("PUBLISH", "news.b", "b"), 2)
            self.assertEqual(pub.call("PUBLISH", "other", "x"), 0)
            # Binary-safe payloads, the empty one included.
            binary = b"\x00\r\n$3\r\n*1\xff" * 50
            self.assertEqual(pub.call("PUBLISH", "news.a", binary), 3)
            self.assertEqual(pub.call("PUBLISH", "news.a", ""), 3)
            delivered("news.b", "b", ["news.*", "n*"], direct=False)
            delivered("news.a", binary, ["news.*", "n*"])
            delivered("news.a", "", ["news.*", "n*"])
            # Glob patterns: ?, [...] and escapes.
            self.subscribe(sub, p3, "psubscribe", ["g?[xy]\\*"], 4)
            self.assertEqual(pub.call("PUBLISH", "g1y*", "m"), 1)
            self.assertEqual(pub.call("PUBLISH", "g1z*", "no match"), 0)
            sub.expect(pmessage(p3, "g?[xy]\\*", "g1y*", "m"))
            self.assertEqual(pub.call("PUBLISH", "nz", "last"), 1)
            sub.expect(pmessage(p3, "n*", "nz", "last"))
        self.for_each_proto(body)

    def test_unsubscribe_with_nothing_subscribed(self):
        def body(proto):
            p3 = proto == 3
            c = self.client(proto)
            for kind in ("unsubscribe", "punsubscribe", "sunsubscribe"):
                c.cmd(kind.upper())
                c.expect(confirm(p3, kind, None, 0))
            # A channel but no pattern: PUNSUBSCRIBE answers the null frame with the count of
            # what is left (and UNSUBSCRIBE of a shard-less client likewise for shards).
            self.subscribe(c, p3, "subscribe", ["only"], 1)
            c.cmd("PUNSUBSCRIBE")
            c.expect(confirm(p3, "punsubscribe", None, 1))
            c.cmd("SUNSUBSCRIBE")
            c.expect(confirm(p3, "sunsubscribe", None, 0))
            c.cmd("UNSUBSCRIBE")
            c.expect(confirm(p3, "unsubscribe", "only", 0))
            c.cmd("UNSUBSCRIBE")
            c.expect(confirm(p3, "unsubscribe", None, 0))
            c.cmd("PING")
            c.expect(b"+PONG\r\n")
        self.for_each_proto(body)

    def test_unsubscribe_all(self):
        def body(proto):
            p3 = proto == 3
            c = self.client(proto)
            pub = self.client(2)
            self.subscribe(c, p3, "subscribe", ["u.a", "u.b", "u.c"], 1)
            self.subscribe(c, p3, "psubscribe", ["x*", "y*"], 4)
            # One frame per channel, in any order, the count going down.
            c.cmd("UNSUBSCRIBE")
            got = [c.read() for _ in range(3)]
            for v in got:
                self.assertIsInstance(v, Push if p3 else list, got)
            self.assertEqual(sorted(v[1] for v in got), [b"u.a", b"u.b", b"u.c"], got)
            self.assertEqual([(v[0], v[2]) for v in got],
                             [(b"unsubscribe", 4), (b"unsubscribe", 3), (b"unsubscribe", 2)], got)
            self.assertEqual(pub.call("PUBLISH", "u.a", "gone"), 0)
            self.assertEqual(pub.call("PUBSUB", "NUMPAT"), 2)
            c.cmd("PUNSUBSCRIBE")
            got = [c.read() for _ in range(2)]
            self.assertEqual(sorted(v[1] for v in got), [b"x*", b"y*"], got)
            self.assertEqual([(v[0], v[2]) for v in got],
                             [(b"punsubscribe", 1), (b"punsubscribe", 0)], got)
            self.assertEqual(pub.call("PUBLISH", "x1", "gone"), 0)
            self.assertEqual(pub.call("PUBSUB", "NUMPAT"), 0)
            self.assertEqual(pub.call("PUBSUB", "CHANNELS"), [])
        self.for_each_proto(body)

    def test_subscribe_twice_delivers_once(self):
        def body(proto):
            p3 = proto == 3
            c = self.client(proto)
            pub = self.client(2)
            c.cmd("SUBSCRIBE", "twice", "twice")
            c.expect(confirm(p3, "subscribe", "twice", 1) * 2)
            c.cmd("PSUBSCRIBE", "tw*", "tw*")
            c.expect(confirm(p3, "psubscribe", "tw*", 2) * 2)
            self.assertEqual(pub.call("PUBSUB", "NUMSUB", "twice"), [b"twice", 1])
            self.assertEqual(pub.call("PUBSUB", "NUMPAT"), 1)
            self.assertEqual(pub.call("PUBLISH", "twice", "one"), 2)
            self.assertEqual(pub.call("PUBLISH", "twice", "two"), 2)
            c.expect(message(p3, "twice", "one") + pmessage(p3, "tw*", "twice", "one")
                     + message(p3, "twice", "two") + pmessage(p3, "tw*", "twice", "two"))
        self.for_each_proto(body)

    def test_sharded_pubsub(self):
        def body(proto):
            p3 = proto == 3
            c = self.client(proto)
            pub = self.client(2)
            self.subscribe(c, p3, "ssubscribe", ["s.a", "s.b"], 1)
            # Shard channels have their own count: the first channel counts 1.
            self.subscribe(c, p3, "subscribe", ["s.a"], 1)
            self.subscribe(c, p3, "psubscribe", ["s.*"], 2)
            self.assertEqual(sorted(pub.call("PUBSUB", "SHARDCHANNELS")), [b"s.a", b"s.b"])
            self.assertEqual(pub.call("PUBSUB", "SHARDCHANNELS", "*.a"), [b"s.a"])
            self.assertEqual(pub.call("PUBSUB", "SHARDNUMSUB", "s.a", "zz"),
                             [b"s.a", 1, b"zz", 0])
            self.assertEqual(pub.call("PUBSUB", "CHANNELS"), [b"s.a"])
            # SPUBLISH reaches shard subscribers only (no channel, no pattern); PUBLISH never
            # reaches a shard subscriber.
            self.assertEqual(pub.call("SPUBLISH", "s.a", "sharded"), 1)
            self.assertEqual(pub.call("PUBLISH", "s.a", "plain"), 2)
            self.assertEqual(pub.call("SPUBLISH", "s.c", "nobody"), 0)
            c.expect(push(p3, "smessage", "s.a", "sharded") + message(p3, "s.a", "plain")
                     + pmessage(p3, "s.*", "s.a", "plain"))
            c.cmd("SUNSUBSCRIBE", "s.a")
            c.expect(confirm(p3, "sunsubscribe", "s.a", 1))
            c.cmd("SUNSUBSCRIBE")
            c.expect(confirm(p3, "sunsubscribe", "s.b", 0))
            c.cmd("SUNSUBSCRIBE")
            c.expect(confirm(p3, "sunsubscribe", None, 0))
            self.assertEqual(pub.call("SPUBLISH", "s.a", "gone"), 0)
            # Still subscribed to the channel and the pattern.
            c.cmd("UNSUBSCRIBE")
            c.expect(confirm(p3, "unsubscribe", "s.a", 1))
            c.cmd("PUNSUBSCRIBE")
            c.expect(confirm(p3, "punsubscribe", "s.*", 0))
        self.for_each_proto(body)

    def test_pubsub_introspection(self):
        a, b, q = self.client(2), self.client(3), self.client(2)
        self.subscribe(a, False, "subscribe", ["i.one", "i.two"], 1)
        self.subscribe(b, True, "subscribe", ["i.two", "j.three"], 1)
        self.subscribe(a, False, "psubscribe", ["i.*"], 3)
        self.subscribe(b, True, "psubscribe", ["i.*", "k*"], 3)
        self.assertEqual(sorted(q.call("PUBSUB", "CHANNELS")), [b"i.one", b"i.two", b"j.three"])
        self.assertEqual(sorted(q.call("PUBSUB", "CHANNELS", "i.*")), [b"i.one", b"i.two"])
        self.assertEqual(q.call("PUBSUB", "CHANNELS", "nothing*"), [])
        self.assertEqual(q.call("PUBSUB", "NUMSUB", "i.one", "i.two", "j.three", "i.*"),
                         [b"i.one", 1, b"i.two", 2, b"j.three", 1, b"i.*", 0])
        self.assertEqual(q.call("PUBSUB", "NUMSUB"), [])
        # Distinct patterns.
        self.assertEqual(q.call("PUBSUB", "NUMPAT"), 2)
        # RESP3: NUMSUB is still a flat array in Redis 7.0, NUMPAT an integer.
        q3 = self.client(3)
        q3.cmd("PUBSUB", "NUMSUB", "i.two")
        q3.expect(b"*2\r\n$5\r\ni.two\r\n:2\r\n")
        q3.cmd("PUBSUB", "NUMPAT")
        q3.expect(b":2\r\n")
        # A channel or pattern nobody is subscribed to any more disappears.
        a.close()
        h.wait_for(lambda: q.call("PUBSUB", "NUMSUB", "i.one") == [b"i.one", 0], timeout=10,
                   what="i.one gone after its only subscriber closed")
        self.assertEqual(sorted(q.call("PUBSUB", "CHANNELS")), [b"i.two", b"j.three"])
        self.assertEqual(q.call("PUBSUB", "NUMPAT"), 2)
        b.cmd("PUNSUBSCRIBE", "k*")
        b.expect(confirm(True, "punsubscribe", "k*", 3))
        self.assertEqual(q.call("PUBSUB", "NUMPAT"), 1)
        # Errors.
        q.cmd("PUBSUB")
        q.expect(b"-ERR wrong number of arguments for 'pubsub' command\r\n")
        q.cmd("PUBSUB", "FOO")
        q.expect(b"-ERR unknown subcommand 'FOO'. Try PUBSUB HELP.\r\n")

    def test_ping(self):
        def body(proto):
            p3 = proto == 3
            c = self.client(proto)
            c.cmd("PING")
            c.expect(b"+PONG\r\n")
            c.cmd("PING", "hi")
            c.expect(bulk("hi"))
            self.subscribe(c, p3, "subscribe", ["pingch"], 1)
            c.cmd("PING")
            c.cmd("PING", "hello")
            if p3:  # RESP3: plain replies in the subscribed state too
                c.expect(b"+PONG\r\n$5\r\nhello\r\n")
            else:
                c.expect(b"*2\r\n$4\r\npong\r\n$0\r\n\r\n*2\r\n$4\r\npong\r\n$5\r\nhello\r\n")
            c.cmd("PING", "a", "b")
            c.expect(b"-ERR wrong number of arguments for 'ping' command\r\n")
        self.for_each_proto(body)

    def test_commands_in_subscribed_state(self):
        # RESP2: only (P|S)SUBSCRIBE, (P|S)UNSUBSCRIBE, PING, QUIT, RESET; the others are
        # refused with Redis 7.0's text (subcommands by their full name) and the connection
        # stays usable. An unknown command is unknown first.
        c = self.client(2)
        pub = self.client(2)
        self.subscribe(c, False, "subscribe", ["ctx"], 1)
        for args, name in ((("PUBLISH", "x", "y"), "publish"), (("ECHO", "hi"), "echo"),
                           (("CLIENT", "ID"), "client|id"), (("PUBSUB", "NUMPAT"), "pubsub|numpat"),
                           (("SPUBLISH", "x", "y"), "spublish"), (("HELLO", "3"), "hello"),
                           (("SELECT", "0"), "select")):
            c.cmd(*args)
            c.expect(NOT_ALLOWED.format(name).encode())
        c.cmd("NOSUCHCMD", "a")
        c.expect(b"-ERR unknown command 'NOSUCHCMD', with args beginning with: 'a' \r\n")
        self.assertEqual(pub.call("PUBLISH", "ctx", "still here"), 1)
        c.expect(message(False, "ctx", "still here"))
        # RESP3: everything is allowed; a message to ourselves comes before PUBLISH's reply.
        c3 = self.client(3)
        self.subscribe(c3, True, "subscribe", ["ctx3"], 1)
        self.subscribe(c3, True, "psubscribe", ["ctx*"], 2)
        c3.cmd("ECHO", "hi")
        c3.expect(bulk("hi"))
        c3.cmd("PUBLISH", "ctx3", "self")
        c3.expect(message(True, "ctx3", "self") + pmessage(True, "ctx*", "ctx3", "self")
                  + b":2\r\n")
        ident = c3.call("CLIENT", "ID")
        self.assertIsInstance(ident, int)
        c3.cmd("PUBSUB", "NUMSUB", "ctx3")
        c3.expect(b"*2\r\n$4\r\nctx3\r\n:1\r\n")
        self.assertEqual(pub.call("PUBLISH", "ctx", "both"), 2)
        c.expect(message(False, "ctx", "both"))
        c3.expect(pmessage(True, "ctx*", "ctx", "both"))

    def test_unknown_command_and_arity_errors(self):
        def body(proto):
            c = self.client(proto)
            c.cmd("FOO", "bar", "baz")
            c.expect(b"-ERR unknown command 'FOO', with args beginning with: 'bar' 'baz' \r\n")
            c.cmd("foo")
            c.expect(b"-ERR unknown command 'foo', with args beginning with: \r\n")
            for args, name in ((("ECHO",), "echo"), (("ECHO", "a", "b"), "echo"),
                               (("PUBLISH", "x"), "publish"), (("SUBSCRIBE",), "subscribe"),
                               (("PSUBSCRIBE",), "psubscribe"), (("SPUBLISH", "x"), "spublish")):
                c.cmd(*args)
                c.expect(f"-ERR wrong number of arguments for '{name}' command\r\n".encode())
            c.cmd("PING")
            c.expect(b"+PONG\r\n")
        self.for_each_proto(body)

    def test_reset(self):
        def body(proto):
            p3 = proto == 3
            c = self.client(proto)
            pub = self.client(2)
            self.assertEqual(c.call("CLIENT", "SETNAME", "resetme"), "OK")
            self.subscribe(c, p3, "subscribe", ["r.ch"], 1)
            self.subscribe(c, p3, "psubscribe", ["r.*"], 2)
            self.subscribe(c, p3, "ssubscribe", ["r.s"], 1)
            c.cmd("RESET")
            c.expect(b"+RESET\r\n")
            # Everything is gone: subscriptions, RESP3, the name.
            self.assertEqual(pub.call("PUBLISH", "r.ch", "x"), 0)
            self.assertEqual(pub.call("SPUBLISH", "r.s", "x"), 0)
            self.assertEqual(pub.call("PUBSUB", "NUMPAT"), 0)
            c.cmd("CLIENT", "GETNAME")
            c.expect(b"$-1\r\n")
            c.cmd("PING")
            c.expect(b"+PONG\r\n")
            c.cmd("HELLO")
            hello = c.read()
            self.assertIsInstance(hello, list, hello)
            self.assertEqual(dict(zip(hello[::2], hello[1::2]))[b"proto"], 2, hello)
        self.for_each_proto(body)

    def test_quit(self):
        def body(proto):
            p3 = proto == 3
            c = self.client(proto)
            c.cmd("QUIT")
            c.expect(b"+OK\r\n")
            c.expect_eof()
            # In the subscribed state too (RESP2: QUIT is allowed there); pipelined commands
            # after QUIT are not executed.
            s = self.client(proto)
            pub = self.client(2)
            self.subscribe(s, p3, "subscribe", ["q.ch"], 1)
            s.send(command("QUIT") + command("UNSUBSCRIBE", "q.ch"))
            s.expect(b"+OK\r\n")
            s.expect_eof()
            h.wait_for(lambda: pub.call("PUBLISH", "q.ch", "x") == 0, timeout=10,
                       what="the subscription of a client that quit gone")
        self.for_each_proto(body)

    def test_client_id_setname_getname(self):
        def body(proto):
            p3 = proto == 3
            c, d = self.client(proto), self.client(proto)
            ident = c.call("CLIENT", "ID")
            self.assertIsInstance(ident, int)
            self.assertGreater(ident, 0)
            self.assertEqual(c.call("CLIENT", "ID"), ident)
            self.assertNotEqual(d.call("CLIENT", "ID"), ident)
            hello = c.call("HELLO", str(proto))
            self.assertEqual(hello[b"id"] if p3 else dict(zip(hello[::2], hello[1::2]))[b"id"],
                             ident, hello)
            c.cmd("CLIENT", "GETNAME")
            c.expect(enc(None, p3))
            c.cmd("CLIENT", "SETNAME", "worker-1")
            c.expect(b"+OK\r\n")
            c.cmd("CLIENT", "GETNAME")
            c.expect(bulk("worker-1"))
            d.cmd("CLIENT", "GETNAME")
            d.expect(enc(None, p3))
            for bad in ("a b", "new\nline"):
                c.cmd("CLIENT", "SETNAME", bad)
                c.expect(b"-ERR Client names cannot contain spaces, newlines or special "
                         b"characters.\r\n")
            c.cmd("CLIENT", "GETNAME")
            c.expect(bulk("worker-1"))
            c.cmd("CLIENT", "SETNAME", "")  # the empty name clears it
            c.expect(b"+OK\r\n")
            c.cmd("CLIENT", "GETNAME")
            c.expect(enc(None, p3))
        self.for_each_proto(body)

    def test_client_reply(self):
        c = self.client(2)
        # OFF: nothing until ON, whose +OK is the next reply; SKIP: the next command only.
        c.send(command("CLIENT", "REPLY", "OFF") + command("PING") + command("ECHO", "lost")
               + command("CLIENT", "REPLY", "ON") + command("PING")
               + command("CLIENT", "REPLY", "SKIP") + command("ECHO", "skipped")
               + command("ECHO", "seen"))
        c.expect(b"+OK\r\n+PONG\r\n$4\r\nseen\r\n")

    def test_config_get(self):
        def body(proto):
            c = self.client(proto)
            for pattern in ("*", "save", "appendonly", "*max*", "no-such-parameter"):
                v = c.call("CONFIG", "GET", pattern)
                if proto == 3:  # a map in RESP3
                    self.assertIsInstance(v, dict, (pattern, v))
                    items = [x for kv in v.items() for x in kv]
                else:  # an even-length array of names and values
                    self.assertIsInstance(v, list, (pattern, v))
                    self.assertEqual(len(v) % 2, 0, (pattern, v))
                    items = v
                for x in items:
                    self.assertIsInstance(x, bytes, (pattern, v))
                if pattern == "no-such-parameter":
                    self.assertEqual(len(items), 0, v)
                if pattern in ("save", "appendonly") and items:
                    self.assertEqual(items[0], pattern.encode(), v)
            c.cmd("CONFIG", "GET", "no-such-parameter")
            c.expect(b"%0\r\n" if proto == 3 else b"*0\r\n")
        self.for_each_proto(body)

    def test_echo_select_flush_command_info(self):
        def body(proto):
            c = self.client(proto)
            payload = b"binary\x00\r\n\xff" * 100
            c.cmd("ECHO", payload)
            c.expect(bulk(payload))
            c.cmd("ECHO", "")
            c.expect(b"$0\r\n\r\n")
            for args in (("SELECT", "0"), ("FLUSHALL",), ("FUNCTION", "FLUSH")):
                c.cmd(*args)
                c.expect(b"+OK\r\n")
            v = c.call("COMMAND")
            self.assertIsInstance(v, list, v)
            info = c.call("INFO")
            self.assertIsInstance(info, Verbatim if proto == 3 else bytes, info)
            text = info[4:] if proto == 3 else info
            if proto == 3:
                self.assertTrue(info.startswith(b"txt:"), info[:20])
            self.assertIn(b"# Server\r\n", text)
            self.assertRegex(text.decode(errors="replace"), r"(?m)^redis_version:\S+\r$")
        self.for_each_proto(body)

    def test_hello(self):
        c = self.client(2)
        v = c.call("HELLO", "3")
        self.assertIsInstance(v, dict, v)
        self.assertEqual(set(v), HELLO_KEYS, v)
        self.assertEqual(v[b"proto"], 3)
        self.assertIsInstance(v[b"id"], int)
        self.assertEqual(v[b"modules"], [])
        c.cmd("HELLO", "4")
        c.expect(b"-NOPROTO unsupported protocol version\r\n")
        v = c.call("HELLO", "2")
        self.assertIsInstance(v, list, v)
        self.assertEqual(len(v), 14, v)
        d = dict(zip(v[::2], v[1::2]))
        self.assertEqual(set(d), HELLO_KEYS, v)
        self.assertEqual(d[b"proto"], 2)
        c.cmd("CLIENT", "GETNAME")
        c.expect(b"$-1\r\n")  # RESP2 again
        v = c.call("HELLO")  # no version: the current protocol
        self.assertEqual(dict(zip(v[::2], v[1::2]))[b"proto"], 2, v)

    def test_inline_commands(self):
        c = self.client(2)
        c.send(b"PING\r\n")
        c.expect(b"+PONG\r\n")
        c.send(b"ping\n")  # LF alone ends an inline command too
        c.expect(b"+PONG\r\n")
        c.send(b"\r\n\r\nECHO   hello\r\n")  # empty lines ignored, blanks separate
        c.expect(bulk("hello"))
        c.send(b'ECHO "a\\x41\\n b"\r\n' + b"ECHO 'x y'\r\n")  # quoting as in redis-cli
        c.expect(bulk(b"aA\n b") + bulk("x y"))
        c.send(b"SUBSCRIBE in.a in.b\r\n")
        c.expect(confirm(False, "subscribe", "in.a", 1) + confirm(False, "subscribe", "in.b", 2))
        pub = self.client(2)
        pub.send(b"PUBLISH in.b inline\r\n")
        pub.expect(b":1\r\n")
        c.expect(message(False, "in.b", "inline"))
        c.send(b"PING\r\n")
        c.expect(b"*2\r\n$4\r\npong\r\n$0\r\n\r\n")
        # Unbalanced quotes: a protocol error, then the server closes the connection.
        d = self.client(2)
        d.send(b'ECHO "abc\r\n')
        d.expect(b"-ERR Protocol error: unbalanced quotes in request\r\n")
        d.expect_eof()

    def test_payload_of_many_megabytes(self):
        # A PUBLISH longer than the received mbufs one connection may hold (~8 MB): past a few
        # dozen segments its bytes are gathered into big buffers as they arrive (InBuf
        # coalescing); it is delivered byte for byte, by reference to those buffers. The
        # output limits are lifted for it (a 24 MB message is over the tests' hard limit).
        pub = self.client(2)
        self.addCleanup(self.restore_limit, pub)
        self.assertEqual(pub.call("CONFIG", "SET", "client-output-buffer-limit",
                                  "pubsub 0 0 0"), "OK")
        sub = self.client(2)
        self.subscribe(sub, False, "subscribe", ["huge"], 1)
        size = 24 * 1024 * 1024 + 7
        payload = (bytes(range(251)) * (size // 251 + 1))[:size]
        pub.sock.settimeout(60)
        pub.cmd("PUBLISH", "huge", payload)
        self.assertEqual(pub.read(60), 1)
        sub.expect(message(False, "huge", payload), timeout=60)
        self.assertEqual(pub.call("PUBLISH", "huge", "after"), 1)
        sub.expect(message(False, "huge", "after"))

    def test_pipelining(self):
        c = self.client(2)
        pub = self.client(2)
        sub = self.client(3)
        self.subscribe(sub, True, "subscribe", ["pipe"], 1)
        requests, replies, messages = [], [], []
        for i in range(1000):
            k = i % 4
            if k == 0:
                requests.append(command("PING"))
                replies.append(b"+PONG\r\n")
            elif k == 1:
                requests.append(command("ECHO", f"e{i}"))
                replies.append(bulk(f"e{i}"))
            elif k == 2:
                requests.append(b"ECHO i%d\r\n" % i)  # inline, mixed in
                replies.append(bulk(f"i{i}"))
            else:
                requests.append(command("PUBLISH", "pipe", f"m{i}"))
                replies.append(b":1\r\n")
                messages.append(message(True, "pipe", f"m{i}"))
        c.send(b"".join(requests))  # one send (about 25 KB)
        c.expect(b"".join(replies))
        sub.expect(b"".join(messages))
        # Pipelined subscribe and publish on one connection, one send.
        pub.send(command("SUBSCRIBE", "pipe2") + command("PING") + command("UNSUBSCRIBE")
                 + command("PUBLISH", "pipe2", "x") + command("PUBLISH", "pipe", "last"))
        pub.expect(confirm(False, "subscribe", "pipe2", 1) + b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"
                   + confirm(False, "unsubscribe", "pipe2", 0) + b":0\r\n:1\r\n")
        sub.expect(message(True, "pipe", "last"))

    def test_request_in_one_byte_segments(self):
        c = self.client(2)
        sub = self.client(2)
        self.subscribe(sub, False, "subscribe", ["split"], 1)
        data = (command("ECHO", "hello world") + b"PING\r\n"
                + command("PUBLISH", "split", "x" * 20) + command("ECHO", ""))
        for i in range(len(data)):
            c.send(data[i:i + 1])  # TCP_NODELAY: one segment each
            time.sleep(0.001)  # pacing only: gives the server a chance to see each one alone
        c.expect(bulk("hello world") + b"+PONG\r\n:1\r\n$0\r\n\r\n")
        sub.expect(message(False, "split", "x" * 20))
        # A request split in two at every possible offset, as two segments.
        req = command("ECHO", "abcdef")
        for cut in range(1, len(req)):
            c.send(req[:cut])
            time.sleep(0.001)
            c.send(req[cut:])
        c.expect(bulk("abcdef") * (len(req) - 1))

    def test_protocol_errors_close_connection(self):
        cases = [
            (b"*abc\r\n", b"-ERR Protocol error: invalid multibulk length\r\n"),
            (b"*1\r\nfoo\r\n", b"-ERR Protocol error: expected '$', got 'f'\r\n"),
            (b"*1\r\n$abc\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
            (b"*1\r\n$-5\r\n", b"-ERR Protocol error: invalid bulk length\r\n"),
            # What came before the error is answered first.
            (b"PING\r\n" + command("ECHO", "ok") + b"*abc\r\nPING\r\n",
             b"+PONG\r\n$2\r\nok\r\n-ERR Protocol error: invalid multibulk length\r\n"),
        ]
        for data, reply in cases:
            with self.subTest(data=data):
                c = self.client(2)
                c.send(data)
                c.expect(reply)
                c.expect_eof()
        # Empty multibulks are no requests: nothing answered, the connection goes on.
        c = self.client(2)
        c.send(b"*0\r\n*-1\r\nPING\r\n")
        c.expect(b"+PONG\r\n")

    # -- load ---------------------------------------------------------------------------------

    def test_benchmark_publish(self):
        argv = ["redis-benchmark", "-h", BROKER_IP, "-p", str(PORT), "-n", "100000", "-c", "50",
                "-P", "16", "-q", "PUBLISH", "bench.ch", "hello"]
        r = self.target.client_env.exec(argv, timeout=60, check=False)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, out)
        m = re.search(r"(?m)^PUBLISH bench\.ch hello: ([0-9.]+) requests per second", r.stdout)
        self.assertIsNotNone(m, out)
        self.assertGreater(float(m.group(1)), 0.0, out)
        self.assertNotRegex(out.lower(), r"error|warning", out)
        print(f"redis-benchmark PUBLISH ({TARGET.kind}): {m.group(1)} requests/s", flush=True)

    def test_fanout_two_subscribers_ordered(self):
        n = FANOUT_MESSAGES
        chan = "fan.out"
        s2, s3 = self.client(2, label="subscriber/resp2"), self.client(3, label="subscriber/resp3")
        self.subscribe(s2, False, "subscribe", [chan], 1)
        self.subscribe(s3, True, "subscribe", [chan], 1)
        pub = self.client(2, label="publisher")
        payload = lambda i: b"m%09d" % i  # noqa: E731 (numbered, all of one length)
        make_cmd = lambda i: command("PUBLISH", chan, payload(i))  # noqa: E731
        frames = [message(False, chan, payload(0)), message(True, chan, payload(0))]
        exp2 = b"".join(message(False, chan, payload(i)) for i in range(n))
        exp3 = b"".join(message(True, chan, payload(i)) for i in range(n))
        elapsed = self.pump(pub, n, make_cmd, b":2\r\n" * n,
                            [(s2, exp2, len(frames[0])), (s3, exp3, len(frames[1]))],
                            window=4096, deadline_s=60.0)
        print(f"fan-out ({TARGET.kind}): {n} messages to 2 subscribers in {elapsed:.2f} s "
              f"({n / elapsed:.0f} msg/s published)", flush=True)
        # Both still subscribed and served.
        self.assertEqual(pub.call("PUBLISH", chan, "end"), 2)
        s2.expect(message(False, chan, "end"))
        s3.expect(message(True, chan, "end"))

    # -- slow consumers -----------------------------------------------------------------------

    def slow_subscriber(self, chan: str) -> Resp:
        """A subscriber with a tiny receive buffer that reads nothing after its confirmation."""
        slow = self.client(2, label="slow subscriber", rcvbuf=4096)
        slow.cmd("CLIENT", "SETNAME", "slow")
        slow.expect(b"+OK\r\n")
        self.subscribe(slow, False, "subscribe", [chan], 1)
        return slow

    def drain_slow(self, slow: Resp, expected: bytes, published: int, frame_len: int) -> int:
        """Reads what the disconnected slow subscriber still gets, then EOF (or a reset):
        an in-order prefix of its stream, short of what was published. Returns its bytes."""
        got = bytearray(slow.buf)
        slow.buf.clear()
        deadline = time.monotonic() + 20
        slow.sock.settimeout(2)
        while True:
            if time.monotonic() >= deadline:
                self.fail(f"the slow subscriber still had its connection 20 s after the "
                          f"server stopped counting it ({len(got)} bytes read)")
            try:
                data = slow.sock.recv(1 << 18)
            except (socket.timeout, TimeoutError):
                continue
            except ConnectionResetError:
                break
            if not data:
                break
            got += data
        self.assertTrue(expected.startswith(bytes(got)),
                        f"what the slow subscriber got is not a prefix of its stream "
                        f"({len(got)} bytes)")
        self.assertLess(len(got), published * frame_len, "the slow subscriber got everything")
        return len(got)

    def test_slow_consumer_hard_limit(self):
        self.slow_consumer("slow.ch", 16384, 16, exact=True)

    def test_slow_consumer_small_messages(self):
        # 16-byte messages: many frames for few bytes. sluice-broker holds mbufs per frame and
        # also cuts off a reader holding more frames than a quarter of its pools (before the
        # byte limit); either way the fast subscriber keeps receiving everything, in order.
        self.slow_consumer("slow.small", 16, 512, exact=False)

    def test_slow_consumers_together_exhaust_the_pools(self):
        # Six readers that stop, each under the limits for a while, together holding more
        # frames than the broker's fan-out pools: deliveries must not stall for good, and the
        # fast subscriber must not be the one cut off; the stuck ones go (sluice-broker: the
        # biggest holder first when the pools run short; Redis: at the hard limit).
        self.slow_consumer("slow.many", 16, 512, exact=False, n_slow=6)

    def slow_consumer(self, chan: str, size: int, batch: int, exact: bool,
                      n_slow: int = 1) -> None:
        slows = [self.slow_subscriber(chan) for _ in range(n_slow)]
        fast = self.client(2, label="fast subscriber")
        self.subscribe(fast, False, "subscribe", [chan], 1)
        pub = self.client(2, label="publisher")
        payload = lambda i: (b"%08d" % i) + b"." * (size - 8)  # noqa: E731
        flen = len(message(False, chan, payload(0)))
        max_msgs = (HARD_LIMIT * 10) // size  # bound: fail if never disconnected
        fast_got = bytearray()
        first_single = None  # index of the first PUBLISH that counted 1 receiver
        last_count = n_slow + 1  # receivers counted by the last reply: never goes up
        sent = replied = 0  # PUBLISH commands sent / answered
        out = b""
        start = time.monotonic()
        deadline = start + 60
        # One loop, nothing blocking: the publisher's batches go out while the fast
        # subscriber and the publisher's replies are read (a server that holds the publisher
        # back until its subscribers read must not deadlock the test).
        pub.sock.setblocking(False)
        fast.sock.setblocking(False)

        def receive(sock, sink, who):
            while True:
                try:
                    data = sock.recv(1 << 18)
                except BlockingIOError:
                    return
                if not data:
                    self.fail(f"the {who} was disconnected")
                sink.extend(data)

        while first_single is None or replied < first_single + 4 * batch:
            self.assertLess(time.monotonic(), deadline,
                            f"not done in 60 s: {sent} PUBLISH sent, {replied} answered")
            if not out and replied == sent:
                self.assertLess(sent, max_msgs, f"the slow subscriber was not disconnected "
                                                f"after {sent * size} bytes published")
                out = b"".join(command("PUBLISH", chan, payload(i))
                               for i in range(sent, sent + batch))
                sent += batch
            select.select([pub.sock, fast.sock], [pub.sock] if out else [], [], 0.5)
            if out:
                try:
                    out = out[pub.sock.send(out):]
                except BlockingIOError:
                    pass
            receive(fast.sock, fast_got, "fast subscriber")
            receive(pub.sock, pub.buf, "publisher")
            while True:
                try:
                    v, end = parse(pub.buf)
                except Incomplete:
                    break
                del pub.buf[:end]
                if v == 1 and first_single is None:
                    first_single = replied
                self.assertTrue(1 <= v <= last_count,
                                f"PUBLISH {replied} counted {v} after {last_count} (first "
                                f"single-receiver PUBLISH: {first_single})")
                last_count = v
                replied += 1
        pub.sock.setblocking(True)
        elapsed = time.monotonic() - start
        # The rest of the last batch's replies (the loop may stop inside a batch).
        pub.sock.settimeout(30)
        while replied < sent:
            try:
                _, end = parse(pub.buf)
            except Incomplete:
                data = pub.sock.recv(1 << 16)
                self.assertTrue(data, "the publisher was disconnected")
                pub.buf.extend(data)
                continue
            del pub.buf[:end]
            replied += 1
        # Disconnected at the hard limit: not before (what the server holds for it is the
        # published bytes less what the small socket buffers absorbed), not much after.
        at = first_single * size
        print(f"slow consumer ({TARGET.kind}, {n_slow}): the last disconnected after "
              f"{first_single} messages ({at / 2**20:.2f} MiB) in {elapsed:.2f} s", flush=True)
        if exact:
            self.assertGreaterEqual(at, HARD_LIMIT - 512 * 1024,
                                    "disconnected before the hard limit was reached")
        # redis-server counts only what its socket has not taken: the kernel's send buffer
        # (autotuned up to tcp_wmem's maximum, 4 MiB by default) comes on top of its limit.
        slack = 1024 * 1024 + (kernel_wmem_max() if TARGET.kind == "redis" else 0)
        self.assertLessEqual(at, HARD_LIMIT + slack,
                             "disconnected long after the hard limit was passed")
        self.assertLess(elapsed, SOFT_SECONDS, "too slow to tell the hard limit from the soft")
        # The fast subscriber gets every message, in order.
        expected_fast = b"".join(message(False, chan, payload(i)) for i in range(sent))
        fast.sock.setblocking(True)
        fast.buf += fast_got
        fast.expect(expected_fast, timeout=30)
        self.assertEqual(pub.call("PUBSUB", "NUMSUB", chan), [chan.encode(), 1])
        expected_slow = (confirm(False, "subscribe", chan, 1)
                         + b"".join(message(False, chan, payload(i)) for i in range(sent)))
        for s in slows:
            self.drain_slow(s, expected_slow[len(confirm(False, "subscribe", chan, 1)):],
                            sent, flen)
        # Nothing held for it any more.
        if TARGET.kind == "redis":
            clients = pub.call("CLIENT", "LIST").decode()
            self.assertNotIn("name=slow ", clients)
            h.wait_for(lambda: "connected_clients:2\r\n" in pub.call("INFO", "clients").decode(),
                       timeout=10, what="2 clients left (fast and the publisher)")
        # (sluice: the broker must exit 0 with every mbuf back: tearDownClass.)
        fast.cmd("UNSUBSCRIBE")
        fast.expect(confirm(False, "unsubscribe", chan, 0))

    def test_slow_consumer_soft_limit(self):
        # 16 KiB every 50 ms (320 KiB/s): over the soft limit (1 MiB) after about 3 s, then
        # disconnected 5 s later, long before the hard limit (4 MiB, about 13 s).
        chan, size, period = "soft.ch", 16384, 0.05
        slow = self.slow_subscriber(chan)
        pub = self.client(2, label="publisher")
        payload = lambda i: (b"%08d" % i) + b"-" * (size - 8)  # noqa: E731
        flen = len(message(False, chan, payload(0)))
        start = time.monotonic()
        i, gone_at = 0, None
        while gone_at is None:
            now = time.monotonic()
            self.assertLess(now - start, 30, "the slow subscriber was not disconnected in 30 s")
            self.assertLess(i * size, HARD_LIMIT, "the hard limit was reached first: the "
                                                  "soft limit did not disconnect")
            n = pub.call("PUBLISH", chan, payload(i))
            i += 1
            if n == 0:
                gone_at = time.monotonic() - start
                break
            self.assertEqual(n, 1)
            pause = start + i * period - time.monotonic()
            if pause > 0:
                time.sleep(pause)  # pacing the publisher
        print(f"slow consumer, soft limit ({TARGET.kind}): disconnected after {i - 1} messages "
              f"({(i - 1) * size / 2**20:.2f} MiB) in {gone_at:.2f} s", flush=True)
        # Not before it had been over the soft limit for the soft seconds.
        self.assertGreater(gone_at, SOFT_SECONDS, "disconnected before the soft time had passed")
        self.assertGreater((i - 1) * size, SOFT_LIMIT)
        expected = b"".join(message(False, chan, payload(k)) for k in range(i))
        self.drain_slow(slow, expected, i, flen)


def info_fields(reply) -> dict:
    """INFO's reply (a RESP2 bulk, or RESP3's verbatim string) as {field: value}."""
    text = reply[4:] if isinstance(reply, Verbatim) else reply
    fields = {}
    for line in bytes(text).decode(errors="replace").split("\r\n"):
        if line and not line.startswith("#") and ":" in line:
            k, v = line.split(":", 1)
            fields[k] = v
    return fields


class CrossCoreTest(BrokerCase):
    """sluice-broker with several workers (--workers N >= 2): connections are spread over the
    worker cores (RSS), each core holds the subscriptions of the connections it owns, published
    messages cross cores on the bus, and every core acknowledges a subscription change before
    the client sees its confirmation. So, as with one Redis:

      - PUBLISH counts a subscriber on any core exactly, right after its (P|S)SUBSCRIBE was
        confirmed, and no longer right after its (P)UNSUBSCRIBE or RESET was answered; a
        subscriber that disconnects stops being counted within a bounded time;
      - PUBSUB CHANNELS / NUMSUB / NUMPAT / SHARDCHANNELS / SHARDNUMSUB, asked on any core,
        count every core's subscriptions;
      - every subscriber receives every message of a publisher in publish order, whichever
        cores they are on; a message whose PUBLISH was answered before a subscriber's next
        command reaches it before that command's reply.

    Which core owns a connection: INFO's sluice_worker (sluice_workers: how many). The
    subscribers are opened until every core owns some. Skipped with one worker; with --target
    redis (and --workers 2) the same tests run against redis-server, the reference, without the
    INFO checks."""

    @classmethod
    def setUpClass(cls) -> None:
        if TARGET.workers < 2:
            raise unittest.SkipTest("cross-core tests: run with --workers 2 (or more)")
        super().setUpClass()

    # -- helpers ------------------------------------------------------------------------------

    def cores(self) -> int:
        return 1 if TARGET.kind == "redis" else TARGET.workers

    def owner(self, c: Resp) -> int:
        """The worker core that owns c's connection (INFO); 0 on redis-server."""
        if TARGET.kind == "redis":
            return 0
        f = info_fields(c.call("INFO"))
        self.assertEqual(f.get("sluice_workers"), str(TARGET.workers), f"{c.label}: INFO {f}")
        w = int(f["sluice_worker"])
        self.assertIn(w, range(TARGET.workers), f"{c.label}: INFO {f}")
        return w

    def open_on(self, label: str, proto: int) -> Resp:
        c = self.client(proto, label=label)
        c.worker = self.owner(c)
        c.p3 = proto == 3
        c.label = f"{label} (worker {c.worker}, resp{proto})"
        return c

    def spread(self, n: int, label: str, *, per_core: int = 2) -> list:
        """n connections (RESP2 and RESP3 alternately), and more (at most 4n in all) until each
        worker core owns at least `per_core` of them."""
        conns = []
        while True:
            have = [sum(1 for c in conns if c.worker == w) for w in range(self.cores())]
            if len(conns) >= n and min(have) >= per_core:
                return conns
            self.assertLess(len(conns), 4 * n,
                            f"{len(conns)} connections, by worker {have}: RSS put none or few "
                            f"on some worker")
            conns.append(self.open_on(f"{label}{len(conns)}", 2 + len(conns) % 2))

    def publishers(self) -> list:
        """One RESP2 connection on each worker core (two on redis-server)."""
        pubs: dict = {}
        tries = 0
        while len(pubs) < max(2, self.cores()):
            self.assertLess(tries, 64, f"no connection landed on some worker: {sorted(pubs)}")
            tries += 1
            c = self.open_on(f"publisher{tries}", 2)
            key = c.worker if TARGET.kind != "redis" else len(pubs)
            if key in pubs:
                c.close()
            else:
                pubs[key] = c
        return [pubs[k] for k in sorted(pubs)]

    def churn_model(self, commands: list) -> bytes:
        """The confirmations a RESP2 client gets for (kind, names) subscription commands."""
        subs: set = set()
        out = b""
        for kind, names in commands:
            for n in names:
                if kind == "subscribe":
                    subs.add(n)
                else:
                    subs.discard(n)
                out += confirm(False, kind, n, len(subs))
        return out

    # -- tests --------------------------------------------------------------------------------

    def test_workers_own_connections(self):
        conns = self.spread(XCORE_SUBSCRIBERS, "conn", per_core=2)
        by = [sum(1 for c in conns if c.worker == w) for w in range(self.cores())]
        print(f"cross-core ({TARGET.kind}): {len(conns)} connections by worker: {by}", flush=True)
        # A connection stays on its core.
        for c in conns[:4]:
            self.assertEqual(self.owner(c), c.worker, c.label)
        # CLIENT IDs are unique over all cores.
        ids = [c.call("CLIENT", "ID") for c in conns]
        self.assertEqual(len(set(ids)), len(ids), ids)

    def test_publish_counts_across_cores(self):
        chan = "xc.count"
        pubs = self.publishers()
        subs = self.spread(XCORE_SUBSCRIBERS, "subscriber")
        n = len(subs)

        def publish_all(tag: str, members: list) -> None:
            """Each publisher publishes once: counted exactly `members`, received by them."""
            for k, p in enumerate(pubs):
                payload = f"{tag}|p{k}"
                self.assertEqual(p.call("PUBLISH", chan, payload), len(members),
                                 f"PUBLISH {payload} from {p.label}: subscribers: "
                                 f"{[s.label for s in members]}")
                for s in members:
                    s.expect(message(s.p3, chan, payload))

        # Subscribing, one at a time: counted by every core as soon as confirmed.
        for i, s in enumerate(subs):
            self.subscribe(s, s.p3, "subscribe", [chan], 1)
            for p in pubs:
                self.assertEqual(p.call("PUBSUB", "NUMSUB", chan), [chan.encode(), i + 1],
                                 f"NUMSUB on {p.label} after {s.label} subscribed")
            publish_all(f"sub{i}", subs[:i + 1])
        # UNSUBSCRIBE (the first quarter) and RESET (the second): no longer counted once
        # answered.
        q = n // 4
        members = list(subs)
        for s in subs[:q]:
            s.cmd("UNSUBSCRIBE", chan)
            s.expect(confirm(s.p3, "unsubscribe", chan, 0))
            members.remove(s)
            publish_all(f"unsub.{s.label}", members)
        for s in subs[q:2 * q]:
            s.cmd("RESET")
            s.expect(b"+RESET\r\n")
            members.remove(s)
            publish_all(f"reset.{s.label}", members)
        # Those got nothing more (a PING answered in the unsubscribed state comes next).
        for s in subs[:2 * q]:
            s.cmd("PING")
            s.expect(b"+PONG\r\n")
        for p in pubs:
            self.assertEqual(p.call("PUBSUB", "NUMSUB", chan), [chan.encode(), len(members)])
        # Disconnected: not counted any more within a bounded time, on every core.
        for s in members:
            s.close()
        for p in pubs:
            h.wait_for(lambda: p.call("PUBLISH", chan, "gone?") == 0, timeout=CLEAN_TIMEOUT,
                       what=f"{p.label}: disconnected subscribers no longer counted")
            self.assertEqual(p.call("PUBSUB", "NUMSUB", chan), [chan.encode(), 0])
            self.assertEqual(p.call("PUBSUB", "CHANNELS"), [])

    def test_fanout_ordered_across_cores(self):
        chan = "xc.fan"
        pubs = self.publishers()
        subs = self.spread(XCORE_SUBSCRIBERS, "subscriber")
        for s in subs:
            self.subscribe(s, s.p3, "subscribe", [chan], 1)
        payload = lambda i: b"m%09d" % i  # noqa: E731 (numbered, all of one length)
        make_cmd = lambda i: command("PUBLISH", chan, payload(i))  # noqa: E731
        flen = len(message(False, chan, payload(0)))
        # The messages, split between the publishers (one per core): each publisher's share
        # reaches every subscriber in order.
        share = XCORE_MESSAGES // len(pubs)
        for k, pub in enumerate(pubs):
            base = k * share
            cmd_k = lambda i, base=base: make_cmd(base + i)  # noqa: E731
            readers = [(s, b"".join(message(s.p3, chan, payload(base + i))
                                    for i in range(share)), flen) for s in subs]
            # At most 1024 messages ahead of the slowest reader: a reader that lags holds fewer
            # frames than sluice-broker's pool relief takes as the biggest holder (2048: when
            # the fan-out pools run short it cuts that one off, reading or not; with 2048 a
            # reader lagging the whole window could go, once in CI). Pool pressure has its own
            # tests (test_slow_consumers_together_exhaust_the_pools).
            elapsed = self.pump(pub, share, cmd_k, b":%d\r\n" % len(subs) * share, readers,
                                window=1024, deadline_s=120.0)
            print(f"cross-core fan-out ({TARGET.kind}): {share} messages from {pub.label} to "
                  f"{len(subs)} subscribers in {elapsed:.2f} s", flush=True)
        for p in pubs:
            self.assertEqual(p.call("PUBLISH", chan, "end"), len(subs))
            for s in subs:
                s.expect(message(s.p3, chan, "end"))

    def test_causal_order_across_cores(self):
        # Publisher A's PUBLISH answered, then publisher B's: a subscriber gets A's message
        # first. A PUBLISH answered, then the subscriber's UNSUBSCRIBE: the message comes
        # before the confirmation. (Redis: one thread; here: the cores' rings and polls.)
        pubs = self.publishers()
        subs = self.spread(4, "subscriber", per_core=1)
        for r in range(XCORE_ROUNDS):
            chan = f"xc.causal.{r}"
            for s in subs:
                self.subscribe(s, s.p3, "subscribe", [chan], 1)
            order = pubs if r % 2 == 0 else pubs[::-1]
            for k, p in enumerate(order):
                self.assertEqual(p.call("PUBLISH", chan, f"r{r}.{k}"), len(subs))
            for s in subs:
                s.cmd("UNSUBSCRIBE", chan)
            for s in subs:
                s.expect(b"".join(message(s.p3, chan, f"r{r}.{k}") for k in range(len(order)))
                         + confirm(s.p3, "unsubscribe", chan, 0))
        # The same after a pipelined burst (more than one poll's worth of bus messages).
        burst = 1000
        for r in range(XCORE_ROUNDS // 10):
            chan = f"xc.burst.{r}"
            for s in subs:
                self.subscribe(s, s.p3, "subscribe", [chan], 1)
            p = pubs[r % len(pubs)]
            p.send(b"".join(command("PUBLISH", chan, f"b{r}.{i}") for i in range(burst)))
            p.expect(b":%d\r\n" % len(subs) * burst, timeout=30)
            for s in subs:
                s.cmd("UNSUBSCRIBE", chan)
            for s in subs:
                s.expect(b"".join(message(s.p3, chan, f"b{r}.{i}") for i in range(burst))
                         + confirm(s.p3, "unsubscribe", chan, 0), timeout=30)

    def test_patterns_across_cores(self):
        pubs = self.publishers()
        subs = self.spread(XCORE_SUBSCRIBERS, "psubscriber")
        n = len(subs)

        def numpat(expected: int, after: str) -> None:
            for p in pubs:
                self.assertEqual(p.call("PUBSUB", "NUMPAT"), expected,
                                 f"NUMPAT on {p.label} after {after}")

        # Each subscriber: a shared pattern and one of its own (NUMPAT: distinct patterns).
        for i, s in enumerate(subs):
            self.subscribe(s, s.p3, "psubscribe", ["xp.*", f"xp.{i}.*"], 1)
            numpat(1 + i + 1, f"{s.label} psubscribed")
        # The first one also subscribes to a channel its patterns match.
        s0 = subs[0]
        self.subscribe(s0, s0.p3, "subscribe", ["xp.0.a"], 3)
        for p in pubs:
            self.assertEqual(p.call("PUBSUB", "NUMSUB", "xp.*", "xp.0.a"),
                             [b"xp.*", 0, b"xp.0.a", 1])
            self.assertEqual(p.call("PUBSUB", "CHANNELS"), [b"xp.0.a"])
        # Publishing from each core: one delivery per matching (subscriber, pattern or
        # channel); one subscriber of each core has its own pattern matched too.
        targets = list(dict.fromkeys([0] + [next(i for i, s in enumerate(subs) if s.worker == w)
                                            for w in range(self.cores())]))
        for p in pubs:
            for j in targets:
                chan = f"xp.{j}.a"
                payload = f"to {j} from {p.label}"
                extra = j == 0  # subs[0]'s channel
                self.assertEqual(p.call("PUBLISH", chan, payload), n + 1 + extra,
                                 f"PUBLISH {chan} from {p.label}")
                for i, s in enumerate(subs):
                    frames = [pmessage(s.p3, "xp.*", chan, payload)]
                    if i == j:
                        frames.append(pmessage(s.p3, f"xp.{j}.*", chan, payload))
                        if extra:
                            frames.append(message(s.p3, chan, payload))
                    s.expect_unordered(frames)
            self.assertEqual(p.call("PUBLISH", "xp", "no match"), 0)
            self.assertEqual(p.call("PUBLISH", "xq.1.a", "no match"), 0)
        # PUNSUBSCRIBE: NUMPAT drops exactly, on every core, as soon as confirmed.
        for i, s in enumerate(subs):
            s.cmd("PUNSUBSCRIBE", f"xp.{i}.*")
            s.expect(confirm(s.p3, "punsubscribe", f"xp.{i}.*", 2 if i == 0 else 1))
            numpat(1 + n - i - 1, f"{s.label} punsubscribed its own pattern")
        for i, s in enumerate(subs):
            s.cmd("PUNSUBSCRIBE")  # all of them: the shared one
            s.expect(confirm(s.p3, "punsubscribe", "xp.*", 1 if i == 0 else 0))
            numpat(0 if i == n - 1 else 1, f"{s.label} punsubscribed everything")
            for p in pubs:
                self.assertEqual(p.call("PUBLISH", "xp.z", "x"), n - i - 1)
            for s2 in subs[i + 1:]:  # one from each publisher
                s2.expect(pmessage(s2.p3, "xp.*", "xp.z", "x") * len(pubs))
        for p in pubs:
            self.assertEqual(p.call("PUBLISH", "xp.0.a", "last"), 1)
        for _ in pubs:
            s0.expect(message(s0.p3, "xp.0.a", "last"))

    def test_pubsub_introspection_across_cores(self):
        pubs = self.publishers()
        subs = self.spread(XCORE_SUBSCRIBERS, "subscriber")
        n = len(subs)
        groups = 4
        for i, s in enumerate(subs):
            self.subscribe(s, s.p3, "subscribe", ["xn.all", f"xn.{i % groups}"], 1)
            self.subscribe(s, s.p3, "ssubscribe", [f"xs.{i % 2}"], 1)

        def count(k: int, mod: int, alive) -> int:
            return sum(1 for i in range(n) if i % mod == k and alive(i))

        def check(p: Resp, alive) -> None:
            live = [i for i in range(n) if alive(i)]
            chans = sorted({b"xn.all"} | {b"xn.%d" % (i % groups) for i in live}) if live else []
            self.assertEqual(sorted(p.call("PUBSUB", "CHANNELS")), chans, p.label)
            self.assertEqual(sorted(p.call("PUBSUB", "CHANNELS", "xn.[01]")),
                             [c for c in chans if c in (b"xn.0", b"xn.1")], p.label)
            names = ["xn.all"] + [f"xn.{g}" for g in range(groups)] + ["nobody"]
            want = [len(live)] + [count(g, groups, alive) for g in range(groups)] + [0]
            self.assertEqual(p.call("PUBSUB", "NUMSUB", *names),
                             [x for nm, c in zip(names, want) for x in (nm.encode(), c)],
                             p.label)
            shards = sorted({b"xs.%d" % (i % 2) for i in live})
            self.assertEqual(sorted(p.call("PUBSUB", "SHARDCHANNELS")), shards, p.label)
            self.assertEqual(p.call("PUBSUB", "SHARDNUMSUB", "xs.0", "xs.1"),
                             [b"xs.0", count(0, 2, alive), b"xs.1",
                              count(1, 2, alive)], p.label)
            self.assertEqual(p.call("PUBSUB", "NUMPAT"), 0, p.label)

        everyone = lambda i: True  # noqa: E731
        for p in pubs:
            check(p, everyone)
            if TARGET.kind == "sluice":
                f = info_fields(p.call("INFO"))
                self.assertEqual((f["pubsub_channels"], f["pubsubshard_channels"]),
                                 (str(1 + groups), "2"), f"{p.label}: INFO")
        # SPUBLISH and PUBLISH from every core.
        for p in pubs:
            payload = f"from {p.label}"
            self.assertEqual(p.call("SPUBLISH", "xs.1", payload), count(1, 2, everyone))
            self.assertEqual(p.call("PUBLISH", "xn.2", payload),
                             count(2, groups, everyone))
            for i, s in enumerate(subs):
                if i % 2 == 1:
                    s.expect(push(s.p3, "smessage", "xs.1", payload))
                if i % groups == 2:
                    s.expect(message(s.p3, "xn.2", payload))
        # The subscribers of group 0 disconnect: gone from every core's answers, bounded.
        for i, s in enumerate(subs):
            if i % groups == 0:
                s.close()
        remaining = lambda i: i % groups != 0  # noqa: E731
        for p in pubs:
            def settled(p=p):
                try:
                    check(p, remaining)
                    return True
                except AssertionError:
                    return False
            h.wait_for(settled, timeout=CLEAN_TIMEOUT,
                       what=f"{p.label}: the disconnected subscribers' channels gone")
            check(p, remaining)

    def test_counts_match_deliveries_under_churn(self):
        # Publishers on every core stream PUBLISH while subscribers on every core keep
        # subscribing and unsubscribing (each change sent once the previous one is confirmed):
        # what the PUBLISH replies counted, summed, is what the subscribers received (Redis: a
        # PUBLISH counts exactly the subscribers it queues the message to).
        pubs = self.publishers()
        subs = self.spread(8, "churner", per_core=2)
        chan, msgs, batch = "xe.ch", XCORE_CHURN_MESSAGES, 32
        conns = pubs + subs
        for c in conns:
            c.sock.setblocking(False)
        out = {c.sock: b"" for c in conns}
        bufs = {c.sock: bytearray() for c in conns}
        by_sock = {c.sock: c for c in conns}
        sent = {p.sock: 0 for p in pubs}
        replies = {p.sock: 0 for p in pubs}
        tag = {p.sock: k for k, p in enumerate(pubs)}
        waiting = {}  # subscriber -> the confirmation it waits for
        rounds = {s.sock: 0 for s in subs}
        counted = received = 0

        def next_change(s, kind: str) -> None:
            out[s] += command(kind.upper(), chan)
            waiting[s] = kind

        for s in subs:
            next_change(s.sock, "subscribe")
        deadline = time.monotonic() + 60
        while any(v < msgs for v in replies.values()) or waiting:
            self.assertLess(time.monotonic(), deadline,
                            f"not done in 60 s: replies {list(replies.values())}, "
                            f"rounds {list(rounds.values())}")
            for p in pubs:
                ps = p.sock
                if sent[ps] < msgs and sent[ps] - replies[ps] < batch:
                    k = min(msgs, sent[ps] + batch)
                    out[ps] += b"".join(command("PUBLISH", chan, f"p{tag[ps]}.{i}")
                                        for i in range(sent[ps], k))
                    sent[ps] = k
            wl = [s for s, d in out.items() if d]
            r, w, _ = select.select(list(bufs), wl, [], 0.5)
            for s in w:
                try:
                    out[s] = out[s][s.send(out[s]):]
                except BlockingIOError:
                    pass
            for s in r:
                try:
                    data = s.recv(1 << 18)
                except BlockingIOError:
                    continue
                self.assertTrue(data, f"{by_sock[s].label}: closed")
                buf = bufs[s]
                buf += data
                pos = 0
                while True:
                    try:
                        v, end = parse(buf, pos)
                    except Incomplete:
                        break
                    pos = end
                    if s in replies:
                        self.assertIsInstance(v, int, v)
                        counted += v
                        replies[s] += 1
                        continue
                    if v[0] == b"message":
                        received += 1
                        continue
                    kind = v[0].decode()
                    self.assertEqual(kind, waiting.get(s), f"{by_sock[s].label}: {v}")
                    del waiting[s]
                    if kind == "subscribe":
                        next_change(s, "unsubscribe")
                    else:
                        rounds[s] += 1
                        if any(x < msgs for x in replies.values()):
                            next_change(s, "subscribe")
                del buf[:pos]
        for c in conns:
            c.sock.setblocking(True)
        print(f"churn ({TARGET.kind}): {sum(rounds.values())} subscribe/unsubscribe rounds, "
              f"PUBLISH counted {counted}, subscribers received {received}", flush=True)
        self.assertGreater(counted, 0, "no PUBLISH while subscribed: no overlap tested")
        # Settled: nobody counted, nothing more delivered.
        for p in pubs:
            self.assertEqual(p.call("PUBLISH", chan, "after"), 0, p.label)
            self.assertEqual(p.call("PUBSUB", "NUMSUB", chan), [chan.encode(), 0], p.label)
        for s in subs:
            s.cmd("PING")
            s.expect(b"+PONG\r\n")
        # A core's directory of the others is updated asynchronously, so a PUBLISH races
        # subscription changes on other cores; the subscriber's core delivers it by the
        # subscriptions as the publishing core counted them (Broker::seen_state), so that the
        # sum of the replies is exactly what arrived.
        self.assertEqual(received, counted,
                         f"PUBLISH counted {counted} deliveries, subscribers received {received}")

    def test_large_payloads_across_cores(self):
        # Payloads spanning many received segments (zero-copy clones handed to another core),
        # to channel and pattern subscribers on every core, byte for byte.
        pubs = self.publishers()
        subs = self.spread(4, "subscriber", per_core=2)
        for i, s in enumerate(subs):
            if i % 2:
                self.subscribe(s, s.p3, "psubscribe", ["xl*"], 1)
            else:
                self.subscribe(s, s.p3, "subscribe", ["xl.big"], 1)
        pattern = bytes(range(256)) * (300000 // 256 + 2)
        for k, p in enumerate(pubs):
            for size in (0, 1, 1459, 1460, 2921, 16384, 65536, 300000):
                payload = pattern[k + size % 251:][:size]
                self.assertEqual(p.call("PUBLISH", "xl.big", payload, timeout=30), len(subs),
                                 f"{size} bytes from {p.label}")
                for i, s in enumerate(subs):
                    s.expect(pmessage(s.p3, "xl*", "xl.big", payload) if i % 2
                             else message(s.p3, "xl.big", payload), timeout=30)

    def test_vanishing_subscribers_across_cores(self):
        # Clients that subscribe and go at once (closed, reset, QUIT pipelined), while the
        # other cores have not acknowledged yet: every core forgets them, bounded.
        pubs = self.publishers()
        for i in range(XCORE_SUBSCRIBERS):
            c = self.client(2, label=f"vanishing{i}")
            req = command("SUBSCRIBE", "xv.a", f"xv.{i}") + command("PSUBSCRIBE", "xv.*")
            if i % 3 == 0:
                req += command("QUIT")
            c.send(req)
            if i % 3 == 1:  # an RST instead of a FIN
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                  b"\x01\x00\x00\x00\x00\x00\x00\x00")
            c.close()
        for p in pubs:
            h.wait_for(lambda p=p: (p.call("PUBLISH", "xv.a", "x") == 0
                                    and p.call("PUBSUB", "NUMPAT") == 0
                                    and p.call("PUBSUB", "CHANNELS") == []),
                       timeout=CLEAN_TIMEOUT, what=f"{p.label}: vanished subscribers forgotten")

    def test_config_set_applies_to_every_core(self):
        # CONFIG SET client-output-buffer-limit on one core: every core answers CONFIG GET
        # with it (Redis: one server-wide setting).
        pubs = self.publishers()
        self.addCleanup(self.restore_limit, pubs[0])
        self.assertEqual(pubs[0].call("CONFIG", "SET", "client-output-buffer-limit",
                                      "pubsub 1048576 524288 3"), "OK")
        for p in pubs:
            v = p.call("CONFIG", "GET", "client-output-buffer-limit")
            self.assertEqual(len(v), 2, v)
            # The limits live in the Bus, shared by the workers (CONFIG SET stores there).
            self.assertIn(b"pubsub 1048576 524288 3", v[1],
                          f"CONFIG SET on {pubs[0].label}; {p.label} answers {v[1]!r}")

    def test_subscription_churn_across_cores(self):
        # Every subscriber pipelines many subscription changes in one send: each change goes
        # to the other cores and is acknowledged before its confirmation; in the end every
        # core's directory agrees.
        pubs = self.publishers()
        subs = self.spread(XCORE_SUBSCRIBERS, "churner", per_core=2)
        for s in subs:
            if s.p3:  # RESP2 only, for the model below
                s.call("HELLO", "2")
                s.p3 = False
        commands = []
        for r in range(XCORE_CHURN):
            commands.append(("subscribe", ["xh.all", f"xh.{r % 5}"]))
            commands.append(("unsubscribe", [f"xh.{r % 5}"]))
            if r % 7 == 3:
                commands.append(("unsubscribe", ["xh.all"]))
        commands.append(("subscribe", ["xh.final", "xh.all"]))
        request = b"".join(command(kind.upper(), *names) for kind, names in commands)
        expected = self.churn_model(commands)
        for s in subs:
            s.send(request)
        for s in subs:
            s.expect(expected, timeout=30)
        n = len(subs)
        for p in pubs:
            self.assertEqual(sorted(p.call("PUBSUB", "CHANNELS")), [b"xh.all", b"xh.final"])
            self.assertEqual(p.call("PUBSUB", "NUMSUB", "xh.all", "xh.final", "xh.0", "xh.4"),
                             [b"xh.all", n, b"xh.final", n, b"xh.0", 0, b"xh.4", 0])
            self.assertEqual(p.call("PUBLISH", "xh.final", p.label), n)
            for s in subs:
                s.expect(message(False, "xh.final", p.label))
        # And all of it undone at once by the disconnects (close_all checks the cores agree).


# ---------------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--target", choices=("redis", "sluice"),
                        default=os.environ.get("SLUICE_BROKER_TARGET", "sluice"))
    parser.add_argument("--broker", default=os.environ.get("SLUICE_BROKER"))
    parser.add_argument("--mode", choices=("tap", "af_packet"), default="tap",
                        help="how sluice-broker reaches the kernel (--target sluice)")
    # The harness's binaries (meson passes them to every integration test): not used here.
    for opt in ("--reflector", "--udpgen", "--echo"):
        parser.add_argument(opt)
    parser.add_argument("--broker-arg", action="append", default=[], dest="broker_args",
                        help="one more option for sluice-broker (repeatable), e.g. "
                             "--broker-arg=--copy-below --broker-arg=0")
    parser.add_argument("--workers", type=int, default=1,
                        help="sluice-broker's worker cores (EAL -l 0,..,N-1 for N >= 2); with "
                             "N >= 2 the cross-core tests run too (--target redis: they run "
                             "against redis-server as the reference)")
    args, rest = parser.parse_known_args()
    if args.workers < 1:
        parser.error("--workers: at least 1")
    TARGET.kind, TARGET.mode, TARGET.workers = args.target, args.mode, args.workers
    TARGET.broker_args = tuple(args.broker_args)
    tools = ["redis-cli", "redis-benchmark"] + (["redis-server"] if args.target == "redis" else [])
    for tool in tools:
        if shutil.which(tool) is None:
            h._skip(f"{tool} is not installed")
    if args.target == "sluice":
        if not args.broker:
            h._skip("no sluice-broker given (--broker PATH or SLUICE_BROKER)")
        if not os.access(args.broker, os.X_OK):
            print(f"broker binary {args.broker!r} is missing or not executable", file=sys.stderr)
            sys.exit(1)
        TARGET.broker = os.path.abspath(args.broker)
    # The redis target uses a veth pair (the harness's af_packet set-up).
    h._check_environment("af_packet" if args.target == "redis" else args.mode)
    h.CONFIG.mode = args.mode
    h.install_cleanup_handlers()
    h.reap_stale()
    if args.target == "sluice" and args.workers > (os.cpu_count() or 1):
        h._skip(f"--workers {args.workers}: only {os.cpu_count()} CPUs")
    print(f"target: {args.target}" + (f", broker: {TARGET.broker}, mode: {args.mode}, "
                                      f"workers: {args.workers}"
                                      if args.target == "sluice" else ""), flush=True)
    prog = unittest.main(module="__main__", argv=[sys.argv[0], *rest], exit=False, verbosity=2)
    h.cleanup_all()
    sys.exit(0 if prog.result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
