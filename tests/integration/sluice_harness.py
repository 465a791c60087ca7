"""Harness for the Sluice integration tests (Python 3 stdlib only, needs root).

Each test runs the real sluice-reflector inside a private network namespace that the test
creates (`sl-<pid>-<n>`), in one of two modes:

  tap        the reflector runs on net_tap (`--port net_tap0,iface=sl0`); the TAP interface
             appears in the namespace and the kernel side gets 198.18.0.1/24 on sl0.
  af_packet  a veth pair in the namespace: the reflector opens veth0 through net_af_packet,
             the kernel uses veth1 (198.18.0.1/24). Offloads are off on both ends, so that
             frames carry complete checksums.

The reflector always uses 198.18.0.2/24. Only 198.18.0.0/15 addresses are used, and nothing
outside the test's namespaces is touched.

Cleanup (reflector killed, namespace deleted, DPDK runtime dir removed) happens in
tearDownClass, at exit (atexit) and on SIGTERM/SIGINT/SIGHUP. The reflector also gets a
parent-death signal, and namespaces/runtime dirs left by a test process that was SIGKILLed
are reaped by the next run (their name carries the dead pid).

Test files call `sluice_harness.main()`, which parses
  --mode tap|af_packet  --reflector PATH  [--udpgen PATH]  [--echo PATH]  [unittest options]
and exits 77 (meson: skipped) when the environment cannot run the tests (not root, no
`ip netns`, no TUN or veth support, or `main(needs=("echo",))` and no --echo given).

The same fixture runs any Sluice app that takes the engine's options (--port --ip --quiet
... and EAL options after `--`) and prints a line containing "ready" once its engine is up:
ReflectorEnv(mode, binary, extra_args=...) starts sluice-echo as well, as a server (stopped by
SIGINT) or as a client that ends by itself (wait_exit()). Helpers it runs in the namespace
(spawn()) are killed before the namespace is deleted. SLUICE_PCAP_DIR=DIR: every environment
also records the kernel side's traffic with tcpdump to DIR/<namespace>.pcap (debugging).
"""

import argparse
import atexit
import itertools
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest


SKIP_EXIT = 77

KERNEL_IP = "198.18.0.1"
REFLECTOR_IP = "198.18.0.2"
PREFIX_LEN = 24
RUNTIME_ROOT = "/var/run/dpdk"
NS_PATTERN = re.compile(r"^sl-(\d+)-(\d+)$")

READY_TIMEOUT_S = 40.0  # EAL init without hugepages takes a few seconds on a small box
STOP_TIMEOUT_S = 10.0
HERE = os.path.dirname(os.path.abspath(__file__))
# What the engine prints at exit when mbufs did not come back to their pool (a leak):
# "<app>: warning: N mbufs not back in <pool>".
LEAK_PATTERN = re.compile(r"mbufs not back")


class Config:
    """Set by main() from the command line."""
    mode: str = ""
    reflector: str = ""
    udpgen: str | None = None
    echo: str | None = None


CONFIG = Config()


class CommandError(AssertionError):
    pass


def run(argv: list[str], *, timeout: float = 30.0, check: bool = True,
        stdin: str | None = None) -> subprocess.CompletedProcess:
    """Runs a command with a bounded wall time; raises CommandError on failure if `check`."""
    try:
        proc = subprocess.run(argv, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise CommandError(f"timed out after {timeout}s: {' '.join(argv)}") from e
    if check and proc.returncode != 0:
        raise CommandError(f"exit {proc.returncode}: {' '.join(argv)}\n"
                           f"stdout: {proc.stdout.strip()}\nstderr: {proc.stderr.strip()}")
    return proc


def wait_for(condition, *, timeout: float, what: str, interval: float = 0.05):
    """Polls `condition` until it returns a truthy value (returned) or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# Cleanup bookkeeping.

_LIVE: set = set()
_LIVE_LOCK = threading.RLock()


def cleanup_all() -> None:
    with _LIVE_LOCK:
        envs = list(_LIVE)
    for env in envs:
        try:
            env.stop()
        except Exception as e:  # keep cleaning the others
            print(f"cleanup of {env.name} failed: {e}", file=sys.stderr)


def _on_signal(signum, _frame) -> None:
    print(f"\nsignal {signum}: cleaning up test namespaces", file=sys.stderr, flush=True)
    signal.signal(signum, signal.SIG_DFL)
    cleanup_all()
    os._exit(128 + signum)


def install_cleanup_handlers() -> None:
    atexit.register(cleanup_all)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_signal)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_stale() -> None:
    """Deletes namespaces and runtime dirs named sl-<pid>-<n> whose test process is gone
    (left behind only by a SIGKILLed test run)."""
    listing = run(["ip", "netns", "list"], check=False).stdout
    for line in listing.splitlines():
        name = line.split()[0] if line.split() else ""
        m = NS_PATTERN.match(name)
        if m and not _pid_alive(int(m.group(1))):
            run(["ip", "netns", "del", name], check=False)
    if os.path.isdir(RUNTIME_ROOT):
        for name in os.listdir(RUNTIME_ROOT):
            m = NS_PATTERN.match(name)
            if m and not _pid_alive(int(m.group(1))):
                shutil.rmtree(os.path.join(RUNTIME_ROOT, name), ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# DPDK telemetry v2 client (protocol as in /usr/bin/dpdk-telemetry.py).

def telemetry_query(path: str, command: str, timeout: float = 5.0) -> dict:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
        greeting = json.loads(sock.recv(16384).decode())
        sock.send(command.encode())
        reply = json.loads(sock.recv(int(greeting.get("max_output_len", 16384))).decode())
    finally:
        sock.close()
    key = command.split(",", 1)[0]
    if key not in reply:
        raise CommandError(f"telemetry {command!r}: unexpected reply {reply!r}")
    return reply[key]


def eal_args(prefix: str) -> list[str]:
    """EAL options for a reflector: one lcore (core 1, so that the kernel side and the test
    keep core 0) and a private runtime dir /var/run/dpdk/<prefix>."""
    lcore = "1" if (os.cpu_count() or 1) >= 2 else "0"
    return ["--", "-l", lcore, "--file-prefix", prefix]


# ---------------------------------------------------------------------------------------------
# Helper processes in a namespace.

class NsProcess:
    """A background process inside a test namespace (ReflectorEnv.spawn): its stdout and
    stderr are collected by reader threads; every wait is bounded. Killed by the env's stop()
    (it also gets SIGTERM if the test process dies)."""

    def __init__(self, env: "ReflectorEnv", argv: list[str], *, stdin: bool = False):
        self.argv = argv
        self.proc = subprocess.Popen(
            ["setpriv", "--pdeathsig", "TERM", "ip", "netns", "exec", env.name, *argv],
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, errors="replace")
        self.stdout_lines: list[str] = []
        self.stderr_lines: list[str] = []
        self._cond = threading.Condition()
        self._readers = []
        for stream, sink in ((self.proc.stdout, self.stdout_lines),
                             (self.proc.stderr, self.stderr_lines)):
            t = threading.Thread(target=self._read, args=(stream, sink), daemon=True)
            t.start()
            self._readers.append(t)

    def _read(self, stream, sink: list) -> None:
        for line in stream:
            with self._cond:
                sink.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_line(self, text: str, *, timeout: float, stream: str = "stderr") -> str:
        """Waits for a line containing `text`; raises if the process exits first or on timeout."""
        sink = self.stderr_lines if stream == "stderr" else self.stdout_lines
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in sink:
                    if text in line:
                        return line
                if self.proc.poll() is not None and not any(t.is_alive() for t in self._readers):
                    raise CommandError(f"{self.argv[:3]} exited with {self.proc.returncode} "
                                       f"before printing {text!r}{self.output_tail()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no {text!r} line from {self.argv[:3]} within "
                                       f"{timeout}s{self.output_tail()}")
                self._cond.wait(min(left, 0.2))

    def send_line(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def wait(self, timeout: float) -> int:
        """Waits for the exit (bounded) and for the output; returns the exit code."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise TimeoutError(f"{self.argv[:3]} still running after {timeout}s"
                               f"{self.output_tail()}") from e
        for t in self._readers:
            t.join(timeout=5)
        return self.proc.returncode

    def json_result(self, timeout: float) -> dict:
        """Waits for the exit and returns the JSON object on the last stdout line."""
        code = self.wait(timeout)
        if code != 0 or not self.stdout_lines:
            raise CommandError(f"{self.argv[:3]} exited with {code}{self.output_tail()}")
        return json.loads(self.stdout_lines[-1])

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        for t in self._readers:
            t.join(timeout=2)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass

    def output_tail(self, n: int = 20) -> str:
        return (f"\n--- {os.path.basename(self.argv[0])} stdout ---\n"
                + "\n".join(self.stdout_lines[-n:])
                + f"\n--- stderr ---\n" + "\n".join(self.stderr_lines[-n:]))


# ---------------------------------------------------------------------------------------------
# The fixture.

class ReflectorEnv:
    """A namespace with a running reflector and a configured kernel peer. create_netns()
    alone gives an empty namespace (only lo) in tap mode. `reflector` is the binary: any app
    with the engine's options (sluice-echo as well); `extra_args` are its own options."""

    _seq = itertools.count()

    def __init__(self, mode: str, reflector: str, *, udp_ports: str | None = None,
                 extra_args: tuple = ()):
        if mode not in ("tap", "af_packet"):
            raise ValueError(f"unknown mode {mode!r}")
        self.mode = mode
        self.reflector = reflector
        self.app_name = os.path.basename(reflector)
        self.udp_ports = udp_ports
        self.extra_args = tuple(extra_args)
        self.name = f"sl-{os.getpid()}-{next(self._seq)}"
        self.prefix = self.name  # DPDK --file-prefix
        self.runtime_dir = os.path.join(RUNTIME_ROOT, self.prefix)
        self.telemetry_path = os.path.join(self.runtime_dir, "dpdk_telemetry.v2")
        self.kernel_if = "sl0" if mode == "tap" else "veth1"
        self.dpdk_if = "sl0" if mode == "tap" else "veth0"
        self.devargs = ("net_tap0,iface=sl0" if mode == "tap" else "net_af_packet0,iface=veth0")
        # DPDK 22.11's net_af_packet joins a PACKET_FANOUT group with PACKET_FANOUT_FLAG_DEFRAG:
        # the kernel reassembles IPv4 fragments before the reflector sees them, so the
        # reflector's own reassembly is only exercised in tap mode (its fragmentation in both).
        self.kernel_defrags = mode == "af_packet"
        self.proc: subprocess.Popen | None = None
        self.stdout_lines: list[str] = []
        self.stderr_lines: list[str] = []
        self.returncode: int | None = None
        self._lines: queue.Queue = queue.Queue()
        self._readers: list[threading.Thread] = []
        self._ns_created = False
        self._stopped = False
        self._children: list[NsProcess] = []
        self._pcap: NsProcess | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> "ReflectorEnv":
        """create_netns() + start_reflector(); on failure everything is cleaned up."""
        try:
            self.create_netns()
            self.start_reflector()
        except BaseException:
            self.stop()
            raise
        return self

    def create_netns(self) -> None:
        with _LIVE_LOCK:
            _LIVE.add(self)
        run(["ip", "netns", "add", self.name])
        self._ns_created = True
        self.ip("link", "set", "lo", "up")
        # No IPv6 in the namespace: its router/neighbour solicitations would be noise.
        self.exec(["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1",
                   "net.ipv6.conf.default.disable_ipv6=1"], check=False)
        if self.mode == "af_packet":
            self.ip("link", "add", "veth0", "type", "veth", "peer", "name", "veth1")
            for dev in ("veth0", "veth1"):
                self.exec(["ethtool", "-K", dev, "tx", "off", "rx", "off", "tso", "off",
                           "gso", "off", "gro", "off"])
            self.configure_kernel_side()
            self.ip("link", "set", "veth0", "up")

    def configure_kernel_side(self) -> None:
        self.ip("addr", "add", f"{KERNEL_IP}/{PREFIX_LEN}", "dev", self.kernel_if)
        self.ip("link", "set", self.kernel_if, "up")

    def reflector_argv(self) -> list[str]:
        argv = [self.reflector, "--port", self.devargs, "--ip", f"{REFLECTOR_IP}/{PREFIX_LEN}",
                "--quiet"]
        if self.udp_ports:
            argv += ["--udp-ports", self.udp_ports]
        argv += list(self.extra_args)
        return argv + eal_args(self.prefix)

    def start_reflector(self) -> None:
        # setpriv: the reflector gets SIGTERM if this test process dies without cleaning up.
        argv = ["setpriv", "--pdeathsig", "TERM", "ip", "netns", "exec", self.name,
                *self.reflector_argv()]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, errors="replace")
        for stream, sink in ((self.proc.stdout, self.stdout_lines),
                             (self.proc.stderr, self.stderr_lines)):
            is_stdout = sink is self.stdout_lines
            t = threading.Thread(target=self._read_lines, args=(stream, sink, is_stdout),
                                 daemon=True)
            t.start()
            self._readers.append(t)
        self._wait_ready()
        # An app that ends by itself (a client) may be gone by now: then there is nothing
        # left to wait for (its exit code and output tell the test what happened).
        exited = lambda: self.proc.poll() is not None
        if self.mode == "tap":
            wait_for(lambda: self.link_exists(self.kernel_if) or exited(), timeout=10,
                     what=f"{self.kernel_if} in {self.name}")
            if exited():
                return
            self.configure_kernel_side()
        wait_for(lambda: "LOWER_UP" in self.link_flags(self.kernel_if) or exited(), timeout=10,
                 what=f"carrier on {self.kernel_if}")
        self._start_pcap()
        wait_for(lambda: os.path.exists(self.telemetry_path) or exited(), timeout=10,
                 what=f"telemetry socket {self.telemetry_path}")

    def _start_pcap(self) -> None:
        pcap_dir = os.environ.get("SLUICE_PCAP_DIR")
        if not pcap_dir or self._pcap is not None or shutil.which("tcpdump") is None:
            return
        os.makedirs(pcap_dir, exist_ok=True)
        path = os.path.join(os.path.abspath(pcap_dir), f"{self.name}.pcap")
        self._pcap = self.spawn(["tcpdump", "-n", "-i", self.kernel_if, "-s", "200", "-U",
                                 "-w", path])
        self._pcap.wait_line("listening on", timeout=10)
        print(f"pcap: {path}", file=sys.stderr, flush=True)

    def _read_lines(self, stream, sink: list, signal_queue: bool) -> None:
        for line in stream:
            sink.append(line.rstrip("\n"))
            if signal_queue:
                self._lines.put(line)
        if signal_queue:
            self._lines.put(None)  # EOF

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"reflector printed no 'ready' line within {READY_TIMEOUT_S}s"
                                   f"{self.output_tail()}")
            try:
                line = self._lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            if line is None:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
                raise CommandError(f"reflector exited with {self.proc.returncode} before "
                                   f"'ready'{self.output_tail()}")
            if "ready" in line:
                return

    def wait_exit(self, timeout: float) -> int:
        """Waits (bounded) for an app that ends by itself, and for all its output."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise TimeoutError(f"{self.app_name} still running after {timeout}s"
                               f"{self.output_tail()}") from e
        for t in self._readers:
            t.join(timeout=5)
        self.returncode = self.proc.returncode
        return self.returncode

    def spawn(self, argv: list[str], *, stdin: bool = False) -> NsProcess:
        """Starts `argv` in the namespace in the background; stop() kills it."""
        p = NsProcess(self, argv, stdin=stdin)
        self._children.append(p)
        return p

    def spawn_tool(self, tool: str, *args: str, stdin: bool = False) -> NsProcess:
        """A helper script of this directory (ns_tools.py, tcp_tools.py) in the background."""
        return self.spawn([sys.executable, os.path.join(HERE, tool), *args], stdin=stdin)

    def summary_drops(self) -> dict:
        """The drop counters of the summary the engine printed at exit ("drops:  total=N
        reason=N ..."); empty if there is none."""
        for line in self.stdout_lines:
            m = re.match(r"\s*drops:\s+(.*)$", line)
            if m:
                return {k: int(v) for k, v in
                        (f.split("=", 1) for f in m.group(1).split() if "=" in f)}
        return {}

    def leak_warnings(self) -> list[str]:
        """The engine's 'mbufs not back' lines (meaningful once the app has exited)."""
        return [l for l in self.stdout_lines + self.stderr_lines if LEAK_PATTERN.search(l)]

    def stop(self) -> int | None:
        """Stops the reflector (SIGINT, then SIGKILL), deletes the namespace and the runtime
        dir. Idempotent. Returns the reflector's exit code (None if it never ran)."""
        with _LIVE_LOCK:
            if self._stopped:
                return self.returncode
            self._stopped = True
            _LIVE.discard(self)
        try:
            for child in self._children:
                try:
                    # tcpdump writes its buffered packets on SIGINT.
                    child.stop(signal.SIGINT if child is self._pcap else signal.SIGTERM)
                except Exception as e:  # keep cleaning up
                    print(f"stopping {child.argv[:3]} failed: {e}", file=sys.stderr)
            if self.proc is not None:
                if self.proc.poll() is None:
                    self.proc.send_signal(signal.SIGINT)
                    try:
                        self.proc.wait(timeout=STOP_TIMEOUT_S)
                    except subprocess.TimeoutExpired:
                        self.proc.kill()
                        self.proc.wait(timeout=5)
                self.returncode = self.proc.returncode
                for t in self._readers:
                    t.join(timeout=2)
                for stream in (self.proc.stdout, self.proc.stderr):
                    if stream is not None:
                        stream.close()
        finally:
            if self._ns_created:
                run(["ip", "netns", "del", self.name], check=False, timeout=10)
            shutil.rmtree(self.runtime_dir, ignore_errors=True)
        return self.returncode

    # -- helpers ------------------------------------------------------------------------------

    def output_tail(self, n: int = 30) -> str:
        out = "\n".join(self.stdout_lines[-n:])
        err = "\n".join(self.stderr_lines[-n:])
        return (f"\n--- {self.app_name} stdout ---\n{out}\n--- {self.app_name} stderr ---\n"
                f"{err}")

    def assert_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            code = None if self.proc is None else self.proc.returncode
            raise AssertionError(f"{self.app_name} is not running (exit {code})"
                                 f"{self.output_tail()}")

    def exec(self, argv: list[str], *, timeout: float = 30.0, check: bool = True,
             stdin: str | None = None) -> subprocess.CompletedProcess:
        """Runs `argv` inside the namespace."""
        return run(["ip", "netns", "exec", self.name, *argv], timeout=timeout, check=check,
                   stdin=stdin)

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return run(["ip", "-n", self.name, *args], check=check)

    def ns_tool(self, *args: str, timeout: float = 90.0, stdin: str | None = None,
                tool: str = "ns_tools.py") -> dict:
        """Runs a subcommand of ns_tools.py (or `tool`) inside the namespace; returns its JSON
        result."""
        proc = self.exec([sys.executable, os.path.join(HERE, tool), *args],
                         timeout=timeout, stdin=stdin)
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def tcp_tool(self, *args: str, timeout: float = 90.0) -> dict:
        """A subcommand of tcp_tools.py inside the namespace (run to its end)."""
        return self.ns_tool(*args, timeout=timeout, tool="tcp_tools.py")

    def link_exists(self, dev: str) -> bool:
        return self.ip("link", "show", "dev", dev, check=False).returncode == 0

    def link_info(self, dev: str) -> dict:
        out = self.ip("-j", "link", "show", "dev", dev).stdout
        return json.loads(out)[0]

    def link_flags(self, dev: str) -> list[str]:
        if not self.link_exists(dev):
            return []
        return self.link_info(dev).get("flags", [])

    def link_mac(self, dev: str) -> str:
        return self.link_info(dev)["address"].lower()

    def telemetry(self, command: str) -> dict:
        return telemetry_query(self.telemetry_path, command)

    def stats(self) -> dict:
        return self.telemetry("/sluice/stats")

    def drops(self) -> dict:
        return self.telemetry("/sluice/drops")

    def info(self) -> dict:
        return self.telemetry("/sluice/info")

    def tcp_stats(self) -> dict | None:
        """/sluice/tcp (TCP counters), or None where the app does not publish it."""
        try:
            reply = self.telemetry("/sluice/tcp")
        except (OSError, ValueError, CommandError):
            return None
        return reply if isinstance(reply, dict) else None

    def reflector_mac(self) -> str:
        return str(self.info()["mac"]).lower()

    def ping(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
        return self.exec(["ping", "-n", *args, REFLECTOR_IP], timeout=timeout, check=False)

    def udp_echo(self, *, count: int, min_size: int, max_size: int, seed: int, port: int = 9000,
                 window: int = 32, timeout: float = 1.0, retries: int = 3,
                 deadline: float = 60.0) -> dict:
        return self.ns_tool("udp-echo", "--dst", REFLECTOR_IP, "--port", str(port),
                            "--count", str(count), "--min-size", str(min_size),
                            "--max-size", str(max_size), "--seed", str(seed),
                            "--window", str(window), "--timeout", str(timeout),
                            "--retries", str(retries), "--deadline", str(deadline),
                            timeout=deadline + 30)

    def udp_probe(self, port: int, timeout: float = 2.0) -> dict:
        return self.ns_tool("udp-probe", "--dst", REFLECTOR_IP, "--port", str(port),
                            "--timeout", str(timeout), timeout=timeout + 30)

    def send_frames(self, frames: list[bytes]) -> dict:
        return self.ns_tool("send-frames", "--iface", self.kernel_if,
                            stdin="".join(f.hex() + "\n" for f in frames))


# ---------------------------------------------------------------------------------------------
# Test base class and entry point.

class ReflectorTestCase(unittest.TestCase):
    """One reflector (and namespace) per test class. Subclasses may set `udp_ports` and
    `extra_args`; `env` is the running ReflectorEnv."""

    udp_ports: str | None = None
    extra_args: tuple = ()
    env: ReflectorEnv
    maxDiff = None

    @classmethod
    def setUpClass(cls) -> None:
        cls.env = ReflectorEnv(CONFIG.mode, CONFIG.reflector, udp_ports=cls.udp_ports,
                               extra_args=cls.extra_args)
        cls.env.start()

    @classmethod
    def tearDownClass(cls) -> None:
        env = cls.env
        alive = env.proc is not None and env.proc.poll() is None
        code = env.stop()
        # Contract: SIGINT makes the reflector print a summary and exit 0.
        if alive and code != 0:
            raise AssertionError(f"reflector exited with {code} after SIGINT (expected 0)"
                                 f"{env.output_tail()}")

    def setUp(self) -> None:
        self.env.assert_alive()

    def assertCountersDelta(self, before: dict, after: dict, expected: dict) -> None:
        """after[k] - before[k] == expected[k] for every k in expected."""
        got = {k: after.get(k, 0) - before.get(k, 0) for k in expected}
        self.assertEqual(got, expected)


class AppTestCase(unittest.TestCase):
    """Tests that start their own app environments, one or more per test (new_env()):
    sluice-echo as a server (start_server()) or as a client. Each environment is stopped when
    its test ends (a cleanup: also when setUp fails), and the test fails if an app that was
    still running did not exit 0 on SIGINT, or if an app printed the engine's "mbufs not back"
    warning at its exit (a leak), or if its summary counts a drop reason of
    `forbidden_drops`."""

    maxDiff = None
    # ipv4_frag_too_big: a TCP segment built larger than the MTU, dropped by our own IP layer.
    forbidden_drops: tuple = ("ipv4_frag_too_big",)

    def new_env(self, *app_args: str, binary: str | None = None) -> ReflectorEnv:
        """An environment (not started) for `binary` (default: sluice-echo) with `app_args`."""
        env = ReflectorEnv(CONFIG.mode, binary or CONFIG.echo, extra_args=app_args)
        self.addCleanup(self.stop_env, env)
        return env

    def start_server(self, *app_args: str, binary: str | None = None) -> ReflectorEnv:
        return self.new_env(*app_args, binary=binary).start()

    def stop_env(self, env: ReflectorEnv) -> None:
        running = env.proc is not None and env.proc.poll() is None
        if running:
            # Let connections that are closing (LAST_ACK) finish before SIGINT.
            wait_tcp_idle(env, timeout=10)
        code = env.stop()
        problems = []
        if running and code != 0:
            problems.append(f"{env.app_name} exited with {code} after SIGINT (expected 0)")
        leaks = env.leak_warnings()
        if leaks:
            problems.append(f"{env.app_name} leaked mbufs: {leaks}")
        drops = env.summary_drops()
        bad = {k: drops[k] for k in self.forbidden_drops if drops.get(k)}
        if bad:
            problems.append(f"{env.app_name} dropped packets it built itself: {bad} "
                            f"(all drops: {drops})")
        if problems:
            raise AssertionError("\n".join(problems) + env.output_tail())


def wait_tcp_idle(env: ReflectorEnv, timeout: float) -> dict | None:
    """Waits (bounded, no failure) until /sluice/tcp shows no open connection; returns the
    last counters, or None where the app does not publish them."""
    last = env.tcp_stats()
    if last is None or "open_conns" not in last:
        return last

    def idle() -> bool:
        nonlocal last
        if env.proc is None or env.proc.poll() is not None:
            return True
        last = env.tcp_stats() or last
        return last.get("open_conns", 0) == 0

    try:
        wait_for(idle, timeout=timeout, what="no open TCP connection", interval=0.1)
    except TimeoutError:
        pass
    return last


def _skip(reason: str) -> None:
    print(f"SKIP: {reason}", flush=True)
    sys.exit(SKIP_EXIT)


def _check_environment(mode: str) -> None:
    if os.geteuid() != 0:
        _skip("integration tests need root (network namespaces, raw sockets)")
    for tool in ("ip", "setpriv", "ethtool", "ping", "traceroute"):
        if shutil.which(tool) is None:
            _skip(f"{tool} is not installed")
    probe = f"sl-{os.getpid()}-9999"  # same pattern: reaped if we get SIGKILLed here
    if run(["ip", "netns", "add", probe], check=False).returncode != 0:
        _skip("cannot create network namespaces (ip netns add failed)")
    try:
        if mode == "tap" and not os.path.exists("/dev/net/tun"):
            _skip("/dev/net/tun is missing (no TUN/TAP support)")
        if mode == "af_packet":
            r = run(["ip", "-n", probe, "link", "add", "veth0", "type", "veth", "peer", "name",
                     "veth1"], check=False)
            if r.returncode != 0:
                _skip(f"cannot create veth pairs: {r.stderr.strip()}")
    finally:
        run(["ip", "netns", "del", probe], check=False)


def main(needs: tuple = ()) -> None:
    """`needs`: optional binaries the file's tests need ("udpgen", "echo"); without them
    the file is skipped (exit 77)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--mode", choices=("tap", "af_packet", "none"), required=True,
                        help="none: the tests start no reflector port (command-line tests)")
    parser.add_argument("--reflector", default=os.environ.get("SLUICE_REFLECTOR"))
    parser.add_argument("--udpgen", default=os.environ.get("SLUICE_UDPGEN"))
    parser.add_argument("--echo", default=os.environ.get("SLUICE_ECHO"))
    args, rest = parser.parse_known_args()
    if not args.reflector:
        parser.error("--reflector PATH (or SLUICE_REFLECTOR) is required")
    if not os.access(args.reflector, os.X_OK):
        print(f"reflector binary {args.reflector!r} is missing or not executable", file=sys.stderr)
        sys.exit(1)
    CONFIG.mode = args.mode
    CONFIG.reflector = os.path.abspath(args.reflector)
    CONFIG.udpgen = os.path.abspath(args.udpgen) if args.udpgen else None
    CONFIG.echo = os.path.abspath(args.echo) if args.echo else None
    for name in needs:
        path = getattr(CONFIG, name)
        if not path:
            _skip(f"no sluice-{name} given (--{name} PATH)")
        if not os.access(path, os.X_OK):
            print(f"{name} binary {path!r} is missing or not executable", file=sys.stderr)
            sys.exit(1)

    _check_environment(args.mode)
    install_cleanup_handlers()
    reap_stale()
    print(f"mode: {args.mode}, reflector: {CONFIG.reflector}", flush=True)
    prog = unittest.main(module="__main__", argv=[sys.argv[0], *rest], exit=False, verbosity=2)
    cleanup_all()
    sys.exit(0 if prog.result.wasSuccessful() else 1)
