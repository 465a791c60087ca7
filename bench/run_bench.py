#!/usr/bin/env python3
"""Whole-program benchmark: sluice-reflector against dpdk-testpmd --forward-mode=5tswap.

    sudo bench/run_bench.py                 # everything, 3 runs each (about 7 minutes)
    sudo bench/run_bench.py --quick         # smoke test: 64-byte frames, 1 run of 1 s (< 60 s)
    bench/run_bench.py --dry-run --pretend-cores 5   # print every command line, run nothing
    sudo bench/run_bench.py --oversubscribe 3 --quick  # exercise W=2 on a 2-CPU machine

Both programs reflect the same input on the same core, one after the other, alternating
(sluice, testpmd, sluice, testpmd, ...; --runs of each), and are measured the same way. The
result is a table on stdout, a JSON file (--json) and an SVG plot of Mpps per frame size
(--plot). See bench/PERF.md for how to read the numbers.

Inputs (--inputs)
  replay   net_pcap with infinite_rx=1 over a pcap of valid UDP frames written by
           bench/tools/gen_pcap.py (64, 512, 1518 bytes and IMIX 7:4:1 of 64/594/1518; 256
           flows; correct IPv4 and UDP checksums; dst MAC = BENCH_MAC, passed to Sluice with
           --mac). The PMD copies every frame into a fresh mbuf (its cost is in the numbers);
           with no tx_pcap/tx_iface its TX frees the mbufs and counts them as sent (verified:
           opackets == ipackets). Same devargs for both: --port for Sluice, --vdev for testpmd.
  memory   a net_ring0 loopback port (TX queue i feeds RX queue i, no copy) with a fixed
           population of packets circulating: testpmd injects one burst per forwarding stream
           with --tx-first (txonly frames of --txpkts bytes), Sluice the same number of valid
           self-addressed frames with --seed COUNT,SIZE. What remains is each program's own
           per-packet cost.
  memif    two processes over net_memif: a generator on CPU 0 (dpdk-testpmd, both its lcores
           on CPU 0) is the memif client, the reflector under test (Sluice, or testpmd 5tswap)
           the server on the worker CPU(s). The generator injects --memif-window frames per
           queue with --tx-first (txonly frames: 198.18.0.1 -> 198.18.0.2, UDP 9 -> 9,
           dst MAC = BENCH_MAC) and then reflects whatever comes back (5tswap), so the window
           circulates between the two: a closed loop, as many frames in flight as the window.
           (testpmd's txonly mode never polls RX, so an open-loop generator built from it
           cannot count what comes back.) The rate is counted at the generator: its ipackets,
           i.e. frames that made the round trip.
  IMIX needs frames of mixed sizes; --seed and --txpkts take one size, so IMIX runs on the
  replay input only (memory/memif imix are listed as skipped).

Frame sizes are wire sizes including the 4-byte FCS: "64" is a 60-byte frame in the pcap and
the mbuf, --seed N,60 and --txpkts 60 (see gen_pcap.py).

Cores: the online CPUs (the runner's affinity mask) are c0 < c1 < ... . Packet work runs on
c1..cW for both programs: Sluice `-l c1,..,cW` (every lcore is a worker), testpmd
`-l c0,c1,..,cW --nb-cores W` (c0 is its main lcore, idle apart from a stats line once a
second). The runner itself is pinned to c0 (children get the full mask back).

Measurement, identical for both programs: wait until the process serves (Sluice prints
"ready"; testpmd answers telemetry) and packets flow, wait --warmup seconds, then read
/ethdev/stats,0 over the DPDK telemetry socket at t0 and t0 + --seconds (monotonic midpoint
of each exchange). Mpps = delta ipackets / delta t (RX: what the reflector took in; for memif,
what came back to the generator); TX Mpps from opackets. Cycles per packet =
TSC Hz x W / pps: a poll-mode worker is 100% busy, so this is the cost of one packet in
cycles of the worker core(s), idle polls included. The TSC frequency is what Sluice's EAL
uses (/sluice/runtime tsc_hz, i.e. rte_get_tsc_hz()); if no Sluice run reported it, the
kernel's (/sys/.../tsc_freq_khz, then dmesg "tsc: ... MHz"). For Sluice, the same interval
is cross-checked against its own counters (/sluice/stats: stack rx/tx, drops, per-stage
cycles) and the JSON keeps them. Reported: median, min and max over the runs; the ratio is
median Sluice Mpps / median testpmd Mpps.

Multi-core: W = 1..N workers, N = online CPUs - 1 (or --workers). For each W > 1 and each
input in --scale-inputs at the sizes in --scale-sizes: Sluice with the port's RSS (no flag;
the engine falls back to the software-RSS stage by itself when the port has no RSS, as every
vdev here, and the JSON records what it chose from /sluice/info), Sluice with --soft-rss, and
testpmd with --nb-cores W --rxq W --txq W. The W = 1 row is the matrix's (one worker has
nothing to steer). Scaling efficiency = Mpps(W) / (W x Mpps(1)). Replay with W queues gives
net_pcap W rx_pcap= entries (one queue each); memory with W uses W ring queues and a
population of W x burst; memif gives the generator W queues (all on its one core).

Sluice on memif with W > 1 is reported n/a: memif has no RSS, so the engine opens one RX
queue (+ software RSS) and W TX queues, and a memif client must have the server's queue
counts, while testpmd polls only min(rxq, txq) queues. --oversubscribe N maps the W workers
of a pretend N-CPU machine onto the real worker CPU(s) with --lcores: a functional test of
the multi-core path (rates meaningless).

Noise: during the interval the runner reads the CPU time of the reflector's threads
(/proc/PID/task/*/schedstat); the W busiest (the pollers) should get ~100% of their cores,
and the memif generator's forwarding thread ~100% of CPU 0. If either got less than
--min-cpu-share (0.9), another process ran there: the run is redone (--retries, default 2,
one second apart) and, if still short, kept and flagged '*'. Hypervisor steal time on the
worker CPUs is recorded. A sluice-reflector rebuilt during the invocation is warned about.
A Sluice run that lost > 0.1% of its input (stack drops by reason, full software-RSS rings,
full TX queues) gets a warning; a row whose TX rate is below its RX rate is flagged '!'.

Memory: with no free hugepages (or no hugetlbfs mounted), both get `--no-huge -m 1024`
explicitly (Sluice's engine then adds nothing); --mem huge|nohuge forces a choice.

Robustness: every process is started in its own session and stopped with SIGINT, then
SIGKILL after --stop-timeout, on success, on error and on Ctrl-C/SIGTERM; its
/var/run/dpdk/<prefix> and hugepage files are removed; the work directory (pcaps, logs)
is a temp dir removed at the end (--keep-work keeps it). Every wait has a deadline.
A failed run is reported and left out of the medians; the exit code is then 1.
"""

import argparse
import datetime
import glob
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "tools"))

import dpdk_telemetry as tel  # noqa: E402
import gen_pcap  # noqa: E402
import svg_plot  # noqa: E402

BENCH_MAC = gen_pcap.DST_MAC
REFLECTOR_IP = gen_pcap.DST_IP + "/24"
ALL_INPUTS = ("replay", "memory", "memif")
ALL_SIZES = ("64", "512", "1518", "imix")
PROGRAMS = ("sluice", "testpmd")
TESTPMD_MBUFS = 16384
VDEV_MAX_QUEUES = 16  # RTE_PMD_RING_MAX_RX_RINGS, RTE_PMD_PCAP_MAX_QUEUES
START_TIMEOUT = 60.0  # EAL init, port start, memif connect
TRAFFIC_TIMEOUT = 20.0


# Lines of a program's output worth carrying into the results (and those that are not).
WARN_RX = re.compile(r"mbufs not back|[Ww]arning|WARNING|Error|ERROR|[Ff]ailed|FAILED|"
                     r"[Cc]annot|Segmentation|Aborted|PANIC")
BENIGN_RX = re.compile(r"no free hugepages|lsc_interrupt needs to be off|NUMA should be "
                       r"configured|port-topology=paired|/sys/module/vfio")


class BenchError(Exception):
    pass


class Unsupported(BenchError):
    """A combination this setup cannot measure (reported as n/a, not as a failure)."""


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Processes


class Proc:
    """One DPDK process: started in its own session, output to a log file, always stopped."""

    live = []

    def __init__(self, name, argv, prefix, workdir, child_cpus):
        self.name, self.argv, self.prefix = name, argv, prefix
        self.log_path = os.path.join(workdir, f"{prefix}.log")
        self.child_cpus = child_cpus
        self.p = None
        self.rc = None

    def start(self):
        cleanup_prefix(self.prefix)
        logf = open(self.log_path, "wb")
        cpus = self.child_cpus
        try:
            self.p = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=lambda: os.sched_setaffinity(0, cpus))
        finally:
            logf.close()
        Proc.live.append(self)

    def alive(self):
        return self.p is not None and self.p.poll() is None

    def output(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def tail(self, n=15):
        return "\n".join(self.output().rstrip().splitlines()[-n:])

    def check_alive(self, what):
        if not self.alive():
            raise BenchError(f"{self.name} exited (rc {self.p.returncode}) {what}:\n"
                             + indent(self.tail()))

    def wait_for_output(self, pattern, deadline):
        rx = re.compile(pattern)
        while True:
            if rx.search(self.output()):
                return
            self.check_alive(f"before printing /{pattern}/")
            if time.monotonic() >= deadline:
                raise BenchError(f"{self.name}: no /{pattern}/ within the deadline:\n"
                                 + indent(self.tail()))
            time.sleep(0.05)

    def stop(self, timeout):
        """SIGINT, then SIGKILL after timeout; removes the EAL runtime files. Idempotent."""
        if self.p is None:
            return self.rc
        if self.p.poll() is None:
            try:
                self.p.send_signal(signal.SIGINT)
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"  {self.name}: no exit {timeout:.0f} s after SIGINT, SIGKILL")
                try:
                    # Its own session: the group is this process and whatever it started.
                    os.killpg(self.p.pid, signal.SIGKILL)
                except OSError:
                    self.p.kill()
                try:
                    self.p.wait(5)
                except subprocess.TimeoutExpired:
                    pass
        self.rc = self.p.returncode
        if self in Proc.live:
            Proc.live.remove(self)
        cleanup_prefix(self.prefix)
        return self.rc

    @classmethod
    def stop_all(cls, timeout):
        for p in list(reversed(cls.live)):
            p.stop(timeout)


def hugetlbfs_mounts():
    try:
        with open("/proc/mounts") as f:
            return [ln.split()[1] for ln in f if ln.split()[2:3] == ["hugetlbfs"]]
    except OSError:
        return []


def cleanup_prefix(prefix):
    """The EAL's runtime dir and hugepage files of one of our file prefixes."""
    shutil.rmtree(os.path.join(tel.RUN_DIR, prefix), ignore_errors=True)
    for m in hugetlbfs_mounts():
        for f in glob.glob(os.path.join(glob.escape(m), glob.escape(prefix) + "map_*")):
            try:
                os.unlink(f)
            except OSError:
                pass


def indent(s, pre="    | "):
    return "\n".join(pre + ln for ln in s.splitlines())


# ---------------------------------------------------------------------------------------------
# Machine facts


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for ln in f:
                if ln.startswith("model name"):
                    return ln.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def free_hugepages():
    try:
        with open("/proc/meminfo") as f:
            for ln in f:
                if ln.startswith("HugePages_Free:"):
                    return int(ln.split()[1])
    except OSError:
        pass
    return 0


def kernel_tsc_hz():
    """(Hz, source) from the kernel, or (None, None)."""
    for p in glob.glob("/sys/devices/system/cpu/cpu*/tsc_freq_khz")[:1]:
        try:
            with open(p) as f:
                return int(f.read().strip()) * 1000, p
        except (OSError, ValueError):
            pass
    try:
        out = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    best = None
    for ln in out.splitlines():
        m = re.search(r"tsc: Refined TSC clocksource calibration: ([\d.]+) MHz", ln)
        if m:
            best = (float(m.group(1)) * 1e6, "dmesg: refined TSC calibration")
        m = re.search(r"tsc: Detected ([\d.]+) MHz processor", ln)
        if m and best is None:
            best = (float(m.group(1)) * 1e6, "dmesg: tsc detected")
    return best if best else (None, None)


CLK_TCK = os.sysconf("SC_CLK_TCK")


def thread_times(pid):
    """{tid: seconds on a CPU} for every thread of pid (schedstat: ns; else stat: ticks)."""
    out = {}
    for d in glob.glob(f"/proc/{pid}/task/*"):
        tid = os.path.basename(d)
        try:
            with open(os.path.join(d, "schedstat")) as f:
                out[tid] = int(f.read().split()[0]) / 1e9
            continue
        except (OSError, ValueError, IndexError):
            pass
        try:
            with open(os.path.join(d, "stat")) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[tid] = (int(fields[11]) + int(fields[12])) / CLK_TCK
        except (OSError, ValueError, IndexError):
            pass
    return out


def busy_share(t0, t1, dt, n):
    """Fraction of n CPUs that the n busiest threads got between two thread_times()."""
    d = sorted((t1[k] - t0[k] for k in t1 if k in t0), reverse=True)
    if len(d) < n or dt <= 0:
        return None
    return sum(d[:n]) / (n * dt)


def cpu_times():
    """{cpu: [jiffies per /proc/stat column]}."""
    out = {}
    try:
        with open("/proc/stat") as f:
            for ln in f:
                m = re.match(r"cpu(\d+) (.*)", ln)
                if m:
                    out[int(m.group(1))] = [int(x) for x in m.group(2).split()]
    except OSError:
        pass
    return out


def steal_pct(c0, c1, cpus, dt):
    """Hypervisor steal time on the given CPUs, % of the interval (column 8 of /proc/stat)."""
    vals = [(c1[c][7] - c0[c][7]) / CLK_TCK / dt * 100 for c in cpus
            if c in c0 and c in c1 and len(c0[c]) > 7 and dt > 0]
    return max(vals) if vals else None


def file_mtime(path):
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


def dpdk_version():
    try:
        return subprocess.run(["pkg-config", "--modversion", "libdpdk"], capture_output=True,
                              text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


def git_revision():
    try:
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return rev + ("+dirty" if dirty else "") if rev else None
    except (OSError, subprocess.TimeoutExpired):
        return None


# ---------------------------------------------------------------------------------------------
# Command lines


def size_bytes(size):
    """mbuf/pcap length (wire - FCS) for a single-size name."""
    return int(size) - gen_pcap.FCS


class Plan:
    """Everything needed to build the command lines of one invocation."""

    def __init__(self, a, cpus, workdir, real_cpus=None):
        self.a = a
        self.cpus = cpus  # lcore ids: CPU ids, or 0..N-1 with --oversubscribe
        self.real_cpus = real_cpus or cpus
        # lcore -> CPU: the identity, or with --oversubscribe lcore 0 on the first CPU and
        # the workers spread over the others (a functional test of W > 1 on a small machine).
        self.oversubscribed = real_cpus is not None and list(real_cpus) != list(cpus)
        rw = self.real_cpus[1:] or self.real_cpus
        self.phys = {c: (self.real_cpus[0] if i == 0 else rw[(i - 1) % len(rw)])
                     for i, c in enumerate(cpus)}
        self.workdir = workdir
        tag = f"slb{os.getpid()}"
        self.prefix = {"sluice": f"{tag}-sl", "testpmd": f"{tag}-tp", "gen": f"{tag}-gen"}
        free, mounts = free_hugepages(), hugetlbfs_mounts()
        if a.mem == "nohuge" or (a.mem == "auto" and (free == 0 or not mounts)):
            # Given explicitly to both: Sluice's engine then adds nothing of its own.
            self.mem_args = ["--no-huge", "-m", "1024"]
            why = "no free hugepages" if free == 0 else "no hugetlbfs mounted"
            self.mem_desc = f"--no-huge -m 1024 ({why})" if a.mem == "auto" \
                else "--no-huge -m 1024"
        else:
            self.mem_args = []
            self.mem_desc = f"hugepages ({free} free at start, {', '.join(mounts)})"
        self.memif_sock = os.path.join(workdir, "memif.sock")

    def pcap(self, size):
        return os.path.join(self.workdir, f"frames_{size}.pcap")

    def gen_pcap_cmd(self, size):
        return [sys.executable, os.path.join(HERE, "tools", "gen_pcap.py"), self.pcap(size),
                "--size", str(size), "--flows", str(self.a.flows), "--dst-mac", BENCH_MAC]

    def workers(self, w):
        return self.cpus[1:1 + w]

    def lcore_args(self, ids):
        if not self.oversubscribed:
            return ["-l", ",".join(map(str, ids))]
        return ["--lcores", ",".join(f"{i}@{self.phys[i]}" for i in ids)]

    def device(self, inp, size, w, role=None):
        if inp == "replay":
            return ("net_pcap0," + ",".join([f"rx_pcap={self.pcap(size)}"] * w)
                    + ",infinite_rx=1")
        if inp == "memory":
            return "net_ring0"
        return f"net_memif0,role={role},socket={self.memif_sock}"

    def population(self, inp, w):
        if inp == "memory":
            return w * self.a.burst
        if inp == "memif":
            return w * self.a.memif_window
        return None

    def sluice(self, inp, size, w, mode):
        cmd = [self.a.reflector, "--port", self.device(inp, size, w, "server"),
               "--ip", REFLECTOR_IP, "--mac", BENCH_MAC, "--burst", str(self.a.burst), "--quiet"]
        if mode == "soft-rss":
            cmd.append("--soft-rss")
        if inp == "memory":
            cmd += ["--seed", f"{self.population(inp, w)},{size_bytes(size)}"]
        cmd += ["--"] + self.lcore_args(self.workers(w)) + [
                "--file-prefix", self.prefix["sluice"]] + self.mem_args
        return cmd

    def testpmd(self, inp, size, w):
        lcores = [self.cpus[0]] + self.workers(w)
        cmd = [self.a.testpmd] + self.lcore_args(lcores) + ["--file-prefix",
               self.prefix["testpmd"], "--no-pci", "--vdev",
               self.device(inp, size, w, "server")] + self.mem_args
        cmd += ["--", "--forward-mode=5tswap", "--auto-start", "--stats-period", "1",
                f"--total-num-mbufs={TESTPMD_MBUFS}", f"--nb-cores={w}", f"--rxq={w}",
                f"--txq={w}", f"--burst={self.a.burst}"]
        if inp == "memory":
            cmd += ["--tx-first", f"--txpkts={size_bytes(size)}"]
        return cmd

    def generator(self, size, w):
        c0 = self.real_cpus[0]
        cmd = [self.a.testpmd, "--lcores", f"0@{c0},1@{c0}", "--file-prefix", self.prefix["gen"],
               "--no-pci", "--vdev", self.device("memif", size, w, "client")] + self.mem_args
        cmd += ["--", "--forward-mode=5tswap", "--tx-first", "--auto-start", "--stats-period", "1",
                f"--total-num-mbufs={TESTPMD_MBUFS}", "--nb-cores=1", f"--rxq={w}", f"--txq={w}",
                f"--burst={self.a.memif_window}", f"--txpkts={size_bytes(size)}",
                f"--eth-peer=0,{BENCH_MAC}",
                f"--tx-ip={gen_pcap.SRC_IP},{gen_pcap.DST_IP}"]
        return cmd

    def commands(self, case, program):
        inp, size, w, mode = case["input"], case["size"], case["workers"], case["mode"]
        cmds = {}
        if program == "sluice":
            cmds["reflector"] = self.sluice(inp, size, w, mode)
        else:
            cmds["reflector"] = self.testpmd(inp, size, w)
        if inp == "memif":
            cmds["generator"] = self.generator(size, w)
        return cmds


# ---------------------------------------------------------------------------------------------
# One run


def diff(a, b, keys=None):
    keys = keys if keys is not None else [k for k, v in b.items() if isinstance(v, (int, float))]
    return {k: b[k] - a[k] for k in keys if isinstance(a.get(k), (int, float))
            and isinstance(b.get(k), (int, float))}


def wait_telemetry(proc, deadline):
    while True:
        proc.check_alive("before its telemetry answered")
        try:
            t = tel.connect(proc.prefix, min(deadline, time.monotonic() + 0.5))
            if isinstance(t.query("/ethdev/stats,0"), dict):
                return t
            t.close()
        except tel.TelemetryError:
            pass
        if time.monotonic() >= deadline:
            raise BenchError(f"{proc.name}: no telemetry within the deadline:\n"
                             + indent(proc.tail()))
        time.sleep(0.05)


def wait_traffic(t, procs, deadline):
    first = t.query("/ethdev/stats,0")["ipackets"]
    while True:
        time.sleep(0.05)
        for p in procs:
            p.check_alive("while waiting for traffic")
        if t.query("/ethdev/stats,0")["ipackets"] > first:
            return
        if time.monotonic() >= deadline:
            raise BenchError("no packets flow:\n" + "\n".join(
                f"  {p.name}:\n" + indent(p.tail()) for p in procs))


def run_once(plan, case, program, run_index):
    """Starts the reflector (and generator), measures, stops. Returns a dict (ok or error)."""
    a = plan.a
    inp, w = case["input"], case["workers"]
    cmds = plan.commands(case, program)
    res = {"program": program, "run": run_index, "ok": False}
    if program == "sluice":
        res["reflector_mtime"] = file_mtime(a.reflector)
    refl = Proc(f"{program}", cmds["reflector"], plan.prefix[program], plan.workdir,
                plan.real_cpus)
    gen = None
    tels = []
    phase = {}
    t_start = time.monotonic()
    try:
        refl.start()
        deadline = time.monotonic() + a.start_timeout
        if program == "sluice":
            refl.wait_for_output(r"\bready\b", deadline)
        rt = wait_telemetry(refl, deadline)
        tels.append(rt)
        count_t = rt
        if inp == "memif":
            if program == "sluice":
                info = rt.query("/sluice/info") or {}
                rxq, txq = info.get("rx_queues"), info.get("tx_queues")
                if rxq is not None and (str(rxq) != str(w) or str(txq) != str(w)):
                    # memif connects only if the client has the server's queue counts, and
                    # testpmd polls min(rxq, txq) queues: it needs W and W.
                    raise Unsupported(
                        f"Sluice configured {rxq} RX / {txq} TX memif queues for {w} workers "
                        f"(memif has no RSS: one RX queue + software RSS); the testpmd "
                        f"generator needs {w} of each. Not measurable until the engine can "
                        f"give each worker its own RX queue without RSS.")
            if program == "testpmd":
                # testpmd's telemetry answers from EAL init on, before its port is started;
                # the memif server socket must exist before the client comes.
                while not (rt.query("/ethdev/info,0") or {}).get("dev_started"):
                    refl.check_alive("before starting its port")
                    if time.monotonic() >= deadline:
                        raise BenchError("testpmd's memif port did not start:\n"
                                         + indent(refl.tail()))
                    time.sleep(0.05)
            gen = Proc("generator", cmds["generator"], plan.prefix["gen"], plan.workdir,
                       plan.real_cpus)
            gen.start()
            gt = wait_telemetry(gen, time.monotonic() + a.start_timeout)
            tels.append(gt)
            count_t = gt
        procs = [refl] + ([gen] if gen else [])
        phase["start_s"] = time.monotonic() - t_start
        wait_traffic(count_t, procs, time.monotonic() + TRAFFIC_TIMEOUT)
        phase["traffic_s"] = time.monotonic() - t_start
        time.sleep(a.warmup)

        def sample():
            s = {"cpu": cpu_times(), "thr": thread_times(refl.p.pid)}
            if gen:
                s["gthr"] = thread_times(gen.p.pid)
            s["t"], s["count"] = count_t.timed_query("/ethdev/stats,0")
            s["refl"] = rt.query("/ethdev/stats,0") if count_t is not rt else s["count"]
            if program == "sluice":
                s["sluice"] = rt.query("/sluice/stats") or {}
                s["drops"] = rt.query("/sluice/drops") or {}
            return s

        s0 = sample()
        time.sleep(a.seconds)
        s1 = sample()
        for p in procs:
            p.check_alive("during the measurement")
        dt = s1["t"] - s0["t"]
        dc = diff(s0["count"], s1["count"], ["ipackets", "opackets", "ibytes", "obytes",
                                              "imissed", "ierrors", "oerrors", "rx_nombuf"])
        dr = diff(s0["refl"], s1["refl"], ["ipackets", "opackets", "imissed", "oerrors",
                                            "rx_nombuf"])
        res.update({
            "seconds": dt,
            "mpps": dc["ipackets"] / dt / 1e6,
            "tx_mpps": dc["opackets"] / dt / 1e6,
            "delta": dc,
            "reflector_rx_mpps": dr["ipackets"] / dt / 1e6,
            "reflector_tx_mpps": dr["opackets"] / dt / 1e6,
            "reflector_delta": dr,
        })
        # Noise: how much of its core(s) the reflector's W busiest threads (its pollers) got,
        # and the hypervisor's steal time on the worker CPUs.
        # (oversubscribed: W workers share fewer CPUs, so the share is W-fold lower.)
        share = busy_share(s0["thr"], s1["thr"], dt, w)
        res["worker_cpu_share"] = share
        res["steal_pct"] = steal_pct(s0["cpu"], s1["cpu"],
                                     sorted({plan.phys[c] for c in plan.workers(w)}), dt)
        if gen:
            res["generator_cpu_share"] = busy_share(s0["gthr"], s1["gthr"], dt, 1)
        res["noisy"] = share is not None and share < a.min_cpu_share \
            and not plan.oversubscribed
        if gen and res["generator_cpu_share"] is not None \
                and res["generator_cpu_share"] < a.min_cpu_share:
            res["noisy"] = True  # a starved generator slows the loop just the same
        if res["tx_mpps"] < 0.99 * res["mpps"] and inp != "memif":
            res.setdefault("warnings", []).append(
                f"TX {res['tx_mpps']:.3f} < RX {res['mpps']:.3f} Mpps: part of the input was "
                "not reflected")
        if inp in ("memory", "memif"):
            res["population"] = plan.population(inp, w)
        if inp == "memif":
            # Sent by the generator and not back yet, at t1 (<= the window).
            st = s1["count"]
            res["in_flight_at_generator"] = st["opackets"] - st["ipackets"]
        if program == "sluice":
            ds = diff(s0["sluice"], s1["sluice"])
            dd = {k: v for k, v in diff(s0["drops"], s1["drops"]).items() if v}
            pk = ds.get("rx_packets", 0)
            res["sluice"] = {
                "stack_rx_mpps": pk / dt / 1e6,
                "stack_tx_mpps": ds.get("tx_packets", 0) / dt / 1e6,
                "dropped": ds.get("dropped", 0),
                "drops": dd,
                "vector": (ds.get("port_rx", 0) + ds.get("ring_in", 0)) / ds["busy_polls"]
                if ds.get("busy_polls") else None,
                "busy_pct": 100.0 * ds["busy_polls"] / ds["polls"] if ds.get("polls") else None,
                "cycles_per_pkt_by_stage": {
                    k[len("cycles_"):]: ds[k] / pk for k in sorted(ds)
                    if k.startswith("cycles_") and pk} or None,
            }
            info = rt.query("/sluice/info") or {}
            res["sluice_info"] = info
            runtime = rt.query("/sluice/runtime") or {}
            hz = runtime.get("tsc_hz") or info.get("tsc_hz")
            if hz:
                res["tsc_hz"] = int(hz)
            # Everything lost inside Sluice: stack drops by reason, plus the engine's full
            # software-RSS rings and full TX queues.
            lost = dict(dd)
            for k in ("ring_dropped", "port_tx_dropped"):
                if ds.get(k):
                    lost[k] = ds[k]
            res["sluice"]["lost"] = sum(lost.values())
            port_rx = ds.get("port_rx") or pk
            drop_frac = res["sluice"]["lost"] / port_rx if port_rx else 0
            if drop_frac > 0.001:
                top = sorted(lost.items(), key=lambda kv: -kv[1])[:3]
                res.setdefault("warnings", []).append(
                    f"sluice lost {100 * drop_frac:.2f}% of what it received: {top}")
        res["ok"] = res["mpps"] > 0
        if not res["ok"]:
            res["error"] = "no packets counted during the measurement"
    except (BenchError, tel.TelemetryError, KeyError, TypeError) as e:
        res["error"] = f"{type(e).__name__}: {e}" if not isinstance(e, BenchError) else str(e)
        res["unsupported"] = isinstance(e, Unsupported)
    finally:
        for t in tels:
            t.close()
        # Generator first: the reflector must not see its peer vanish mid-measurement... it
        # is past the measurement anyway; stopping the client first keeps the server's exit
        # path the ordinary one.
        if gen:
            res["generator_exit"] = gen.stop(a.stop_timeout)
        t_stop = time.monotonic()
        res["exit"] = refl.stop(a.stop_timeout)
        phase["stop_s"] = time.monotonic() - t_stop
        res["phases"] = phase
        out = refl.output()
        res["log_tail"] = refl.tail(25)
        if inp == "memory":
            # The population that circulated = sent - received over the whole life of the
            # port, from the exit summaries (Sluice's includes its gratuitous ARP, which
            # loops back and is dropped as eth_looped).
            m = (re.findall(r"port:\s+ipackets=(\d+) opackets=(\d+)", out)
                 if program == "sluice" else
                 re.findall(r"RX-packets:\s*(\d+)\s+RX-dropped:\s*\d+\s+RX-total:\s*\d+\s*\n"
                            r"\s*TX-packets:\s*(\d+)", out))
            if m:
                rxp, txp = map(int, m[-1])
                res["population_observed"] = txp - rxp
        warn = [ln.strip() for ln in out.splitlines()
                if WARN_RX.search(ln) and not BENIGN_RX.search(ln)]
        if warn:
            res.setdefault("warnings", []).extend(sorted(set(warn))[:10])
        if res.get("ok") and res["exit"] not in (0,):
            res.setdefault("warnings", []).append(f"{program} exited with {res['exit']}")
    return res


# ---------------------------------------------------------------------------------------------
# Plan of cases and the loop


def build_cases(a, n_max):
    matrix, skipped, scaling = [], [], []
    for inp in a.inputs:
        for size in a.sizes:
            if size == "imix" and inp != "replay":
                skipped.append({"input": inp, "size": size,
                                "reason": "one frame size per population (--seed, --txpkts)"})
                continue
            matrix.append({"input": inp, "size": size, "workers": 1, "mode": "port-rss",
                           "part": "matrix"})
    for w in range(2, n_max + 1):
        for inp in a.scale_inputs:
            for size in a.scale_sizes:
                if size == "imix" and inp != "replay":
                    continue
                if inp in ("replay", "memory") and w > VDEV_MAX_QUEUES:
                    skipped.append({"input": inp, "size": size, "workers": w,
                                    "reason": f"net_pcap/net_ring have {VDEV_MAX_QUEUES} queues"})
                    continue
                for mode in ("port-rss", "soft-rss"):
                    scaling.append({"input": inp, "size": size, "workers": w, "mode": mode,
                                    "part": "scaling"})
    return matrix, scaling, skipped


def summarize(runs):
    ok = [r for r in runs if r.get("ok")]
    if not ok:
        return None
    m = [r["mpps"] for r in ok]
    shares = [r["worker_cpu_share"] for r in ok if r.get("worker_cpu_share") is not None]
    return {"runs_ok": len(ok), "runs": len(runs), "mpps_median": statistics.median(m),
            "mpps_min": min(m), "mpps_max": max(m),
            "tx_mpps_median": statistics.median(r["tx_mpps"] for r in ok),
            "worker_cpu_share_min": min(shares) if shares else None,
            "noisy_runs": sum(1 for r in ok if r.get("noisy")),
            "retried_runs": sum(len(r.get("discarded_noisy", [])) for r in ok)}


def case_key(c):
    return (c["input"], c["size"], c["workers"], c["mode"])


def execute(plan, cases, results, interrupted):
    """Runs the cases, alternating programs; fills results[case_key][program]."""
    a = plan.a
    for ci, case in enumerate(cases):
        k = case_key(case)
        progs = ["sluice", "testpmd"]
        # testpmd has no software-RSS mode: its one measurement per W serves both rows.
        if case["mode"] == "soft-rss":
            progs = ["sluice"]
        entry = results.setdefault(k, {"case": case, "programs": {}})
        for p in progs:
            entry["programs"].setdefault(p, {"commands": {n: shlex.join(c) for n, c in
                                                          plan.commands(case, p).items()},
                                             "runs": []})
        for r in range(a.runs):
            for p in progs:
                t0 = time.monotonic()
                res = run_once(plan, case, p, r)
                tries = 0
                while res.get("ok") and res.get("noisy") and tries < a.retries \
                        and not interrupted[0]:
                    # Another process took the worker's CPU: this run measured the machine,
                    # not the program. Redo it now (the alternation is kept).
                    tries += 1
                    gshare = res.get("generator_cpu_share")
                    log(f"      {p} run {r + 1}: worker got {100 * res['worker_cpu_share']:.0f}%"
                        f" of its core" + (f", generator {100 * gshare:.0f}%" if gshare else "")
                        + f": retry {tries}/{a.retries}")
                    res.setdefault("discarded_noisy", [])
                    prev = res
                    time.sleep(1.0)
                    res = run_once(plan, case, p, r)
                    res["discarded_noisy"] = prev.pop("discarded_noisy") + [
                        {k: prev.get(k) for k in ("mpps", "worker_cpu_share", "steal_pct")}]
                entry["programs"][p]["runs"].append(res)
                tag = f"[{ci + 1}/{len(cases)}] {case['input']:6} {case['size']:>4} " \
                      f"W={case['workers']} {case['mode']:8} {p:7} run {r + 1}/{a.runs}"
                if res.get("ok"):
                    extra = ""
                    if p == "sluice" and res.get("sluice"):
                        extra = f", stack tx {res['sluice']['stack_tx_mpps']:.3f}"
                    ph = res.get("phases", {})
                    if res.get("worker_cpu_share") is not None:
                        extra += f", cpu {100 * res['worker_cpu_share']:.0f}%"
                    if res.get("generator_cpu_share") is not None:
                        extra += f", generator cpu {100 * res['generator_cpu_share']:.0f}%"
                    if res.get("noisy"):
                        extra += " NOISY"
                    log(f"  {tag}: {res['mpps']:8.3f} Mpps (tx {res['tx_mpps']:.3f}{extra})"
                        f"  [{time.monotonic() - t0:.1f} s: start {ph.get('start_s', 0):.1f}, "
                        f"flow {ph.get('traffic_s', 0):.1f}, stop {ph.get('stop_s', 0):.1f}]")
                elif res.get("unsupported"):
                    log(f"  {tag}: n/a: {res.get('error', '?')}")
                else:
                    log(f"  {tag}: FAILED: {res.get('error', '?')}")
                for wmsg in res.get("warnings", []):
                    log(f"      warning: {wmsg}")
                if interrupted[0]:
                    return
        for p in progs:
            entry["programs"][p]["summary"] = summarize(entry["programs"][p]["runs"])


# ---------------------------------------------------------------------------------------------
# Reporting


def cycles(hz, w, mpps):
    return hz * w / (mpps * 1e6) if hz and mpps else None


def fmt_mpps(s, runs=()):
    if not s:
        return "n/a" if runs and all(r.get("unsupported") for r in runs) else "failed"
    flag = "*" if s.get("noisy_runs") else " "
    if s.get("tx_mpps_median") is not None and s["tx_mpps_median"] < 0.99 * s["mpps_median"]:
        flag = "!"
    return f"{s['mpps_median']:.3f} ({s['mpps_min']:.3f}-{s['mpps_max']:.3f}){flag}"


def fmt_num(v, nd=0):
    return "-" if v is None else f"{v:.{nd}f}"


def comparisons(results, hz):
    rows = []
    for k, e in results.items():
        c = e["case"]
        s = e["programs"].get("sluice", {}).get("summary")
        tk = (c["input"], c["size"], c["workers"], "port-rss")
        t = results.get(tk, {}).get("programs", {}).get("testpmd", {}).get("summary")
        w = c["workers"]
        row = dict(c)
        row.update({
            "wire_bytes_mean": gen_pcap.mean_wire_size(c["size"]),
            "sluice": s, "testpmd": t,
            "sluice_cycles_per_pkt": cycles(hz, w, s["mpps_median"]) if s else None,
            "testpmd_cycles_per_pkt": cycles(hz, w, t["mpps_median"]) if t else None,
            "ratio_sluice_over_testpmd": s["mpps_median"] / t["mpps_median"]
            if s and t else None,
        })
        runs = e["programs"].get("sluice", {}).get("runs", [])
        infos = [r.get("sluice_info") for r in runs if r.get("sluice_info")]
        if infos:
            i0 = infos[0]
            row["sluice_port"] = {k2: i0.get(k2) for k2 in ("rx_queues", "tx_queues", "soft_rss",
                                                            "offloads", "driver", "workers")}
        stages = [r["sluice"]["cycles_per_pkt_by_stage"] for r in runs
                  if r.get("ok") and r.get("sluice", {}).get("cycles_per_pkt_by_stage")]
        if stages:
            row["sluice_stage_cycles_per_pkt_median"] = {
                st: statistics.median(x.get(st, 0) for x in stages) for st in stages[0]}
        rows.append(row)
    return rows


def scaling_rows(comp, a):
    """Per (input, size, program, mode): Mpps and efficiency for W = 1..N."""
    base = {(r["input"], r["size"]): r for r in comp if r["workers"] == 1}
    out = []
    for r in comp:
        if r["input"] not in a.scale_inputs or r["size"] not in a.scale_sizes:
            continue
        b = base.get((r["input"], r["size"]))
        if not b:
            continue
        for prog in PROGRAMS:
            if prog == "testpmd" and r["mode"] == "soft-rss":
                continue  # testpmd has no software RSS; its port-queues row is the reference
            s, s1 = r.get(prog), b.get(prog)
            if not s or not s1:
                continue
            mode = r["mode"] if prog == "sluice" else "port queues"
            modes = [mode]
            if prog == "sluice" and r["workers"] == 1:
                modes = ["port-rss", "soft-rss"]  # one worker: nothing to steer, same run
            for m in modes:
                out.append({"input": r["input"], "size": r["size"], "program": prog,
                            "mode": m, "workers": r["workers"], "mpps": s["mpps_median"],
                            "efficiency": s["mpps_median"] / (r["workers"] * s1["mpps_median"]),
                            **({"note": "W=1 baseline, the matrix run"}
                               if r["workers"] == 1 else {})})
    out.sort(key=lambda x: (x["input"], x["size"], x["program"], x["mode"], x["workers"]))
    return out


def render_table(meta, comp, scal, skipped, results):
    def runs_of(row, prog):
        mode = row["mode"] if prog == "sluice" else "port-rss"
        k = (row["input"], row["size"], row["workers"], mode)
        return results.get(k, {}).get("programs", {}).get(prog, {}).get("runs", [])

    L = []
    L.append("Sluice vs dpdk-testpmd --forward-mode=5tswap: whole-program reflect rate")
    L.append(f"  date {meta['date']}  host {meta['hostname']}  sluice {meta['git']}  "
             f"DPDK {meta['dpdk']}")
    L.append(f"  CPU {meta['cpu_model']}, {meta['online_cpus']} online CPUs {meta['cpus']}; "
             f"TSC {meta['tsc_hz'] / 1e9:.4f} GHz ({meta['tsc_source']})" if meta["tsc_hz"]
             else f"  CPU {meta['cpu_model']}; TSC unknown")
    L.append(f"  burst {meta['burst']}; {meta['runs']} run(s) each, alternating; "
             f"{meta['seconds']} s measured after {meta['warmup']} s warm-up; "
             f"memory {meta['memory']}")
    L.append("  Mpps = median (min-max) of RX packets/s at the counting port; cyc/pkt = "
             "TSC Hz x workers / pps; S/T = Sluice/testpmd")
    L.append("")
    hdr = (f"{'input':7} {'size':>5} {'W':>2} {'mode':8} | {'sluice Mpps':>26} {'cyc/pkt':>8} | "
           f"{'testpmd Mpps':>26} {'cyc/pkt':>8} | {'S/T':>5}")
    L.append(hdr)
    L.append("-" * len(hdr))
    order = {v: i for i, v in enumerate(ALL_INPUTS)}
    sorder = {v: i for i, v in enumerate(ALL_SIZES)}
    for r in sorted(comp, key=lambda r: (r["workers"], order.get(r["input"], 9),
                                         sorder.get(r["size"], 9), r["mode"])):
        L.append(f"{r['input']:7} {r['size']:>5} {r['workers']:>2} {r['mode']:8} | "
                 f"{fmt_mpps(r['sluice'], runs_of(r, 'sluice')):>26} "
                 f"{fmt_num(r['sluice_cycles_per_pkt']):>8} | "
                 f"{fmt_mpps(r['testpmd'], runs_of(r, 'testpmd')):>26} "
                 f"{fmt_num(r['testpmd_cycles_per_pkt']):>8} | "
                 f"{fmt_num(r['ratio_sluice_over_testpmd'], 2):>5}")
    for s in skipped:
        L.append(f"{s['input']:7} {s['size']:>5} {s.get('workers', '-'):>2} skipped: "
                 f"{s['reason']}")
    sums = [pe.get("summary") for e in results.values() for pe in e["programs"].values()]
    sums = [x for x in sums if x]
    noisy = sum(x["noisy_runs"] for x in sums)
    retried = sum(x["retried_runs"] for x in sums)
    shares = [x["worker_cpu_share_min"] for x in sums if x["worker_cpu_share_min"] is not None]
    L.append(f"  worker CPU share (the reflector's busiest thread(s), CPU time / interval): min "
             f"{100 * min(shares):.0f}% over all kept runs; {retried} run(s) redone because "
             f"another process took the worker core; {noisy} kept although noisy (*)"
             if shares else "  worker CPU share: not measured")
    if any(r.get("sluice") and r["sluice"].get("tx_mpps_median") is not None
           and r["sluice"]["tx_mpps_median"] < 0.99 * r["sluice"]["mpps_median"]
           for r in comp if r["input"] != "memif"):
        L.append("  (!) TX < RX: the reflector did not send back all it received (see the "
                 "runs' warnings in the JSON)")
    L.append("")
    stage_rows = [r for r in comp if r.get("sluice_stage_cycles_per_pkt_median")]
    if stage_rows:
        L.append("Sluice's own accounting (/sluice/stats over the same interval), median "
                 "cycles per packet by stage:")
        pref = ["rx", "steer", "stack", "tx_prep", "tx", "busy", "idle"]
        found = {st for r in stage_rows for st in r["sluice_stage_cycles_per_pkt_median"]}
        stages = [st for st in pref if st in found] + sorted(found - set(pref))
        L.append(f"  {'input':7} {'size':>5} {'W':>2} {'mode':8} " +
                 " ".join(f"{st:>8}" for st in stages))
        for r in sorted(stage_rows, key=lambda r: (r["workers"], order.get(r["input"], 9),
                                                   sorder.get(r["size"], 9))):
            v = r["sluice_stage_cycles_per_pkt_median"]
            L.append(f"  {r['input']:7} {r['size']:>5} {r['workers']:>2} {r['mode']:8} " +
                     " ".join(f"{v.get(st, 0):8.1f}" for st in stages))
        L.append("")
    L.append(f"Scaling (W = 1..{meta['max_workers']}; efficiency = Mpps(W) / (W x Mpps(1))):")
    if scal:
        for s in scal:
            L.append(f"  {s['input']:7} {s['size']:>5} {s['program']:8} {s['mode']:11} "
                     f"W={s['workers']:<3} {s['mpps']:8.3f} Mpps  efficiency "
                     f"{s['efficiency']:.2f}" + (f"  ({s['note']})" if s.get("note") else ""))
    else:
        L.append("  (no results)")
    if meta["max_workers"] < 2:
        L.append(f"  only {meta['online_cpus']} online CPUs: W=1 is the only worker count here")
    if meta.get("warning"):
        L.append(f"WARNING: {meta['warning']}")
    L.append("")
    L.append("Commands (exactly as run; pcaps and the memif socket are in the run's work dir):")
    for cmd in meta["setup_commands"]:
        L.append(f"  {cmd}")
    for k, e in results.items():
        c = e["case"]
        for p, pe in e["programs"].items():
            for n, cmd in pe["commands"].items():
                L.append(f"  [{c['input']} {c['size']} W={c['workers']} {c['mode']} {p} {n}] "
                         f"{cmd}")
    failures = [(k, p, r) for k, e in results.items() for p, pe in e["programs"].items()
                for r in pe["runs"] if not r.get("ok") and not r.get("unsupported")]
    unsup = sorted({f"{k[0]} {k[1]} W={k[2]} {k[3]} {p}: {r['error']}"
                    for k, e in results.items() for p, pe in e["programs"].items()
                    for r in pe["runs"] if r.get("unsupported")})
    if unsup:
        L.append("")
        L.append("Not measurable here (n/a):")
        L.extend(f"  {u}" for u in unsup)
    if failures:
        L.append("")
        L.append(f"FAILED runs: {len(failures)}")
        for k, p, r in failures:
            L.append(f"  {k} {p} run {r['run'] + 1}: {r.get('error', '?').splitlines()[0]}")
    return "\n".join(L)


def write_plot(path, comp, meta):
    panels = []
    for inp in ALL_INPUTS:
        rows = [r for r in comp if r["input"] == inp and r["workers"] == 1]
        rows.sort(key=lambda r: ALL_SIZES.index(r["size"]) if r["size"] in ALL_SIZES else 9)
        groups = []
        for r in rows:
            bars = []
            for p in PROGRAMS:
                s = r.get(p)
                if s:
                    bars.append({"series": p, "value": s["mpps_median"], "lo": s["mpps_min"],
                                 "hi": s["mpps_max"]})
            if bars:
                label = r["size"].upper() if r["size"] == "imix" else r["size"]
                groups.append({"label": label, "bars": bars})
        if groups:
            title = {"replay": "replay (net_pcap infinite_rx)", "memory": "in memory (net_ring)",
                     "memif": "two processes (memif, at generator)"}[inp]
            panels.append({"title": title, "groups": groups})
    if not panels:
        return False
    sub = (f"1 worker core; burst {meta['burst']}; median of {meta['runs']} run(s), "
           f"{meta['seconds']} s each; {meta['cpu_model']}"
           + (f", TSC {meta['tsc_hz'] / 1e9:.2f} GHz" if meta["tsc_hz"] else ""))
    svg_plot.plot(panels, path, "Sluice vs dpdk-testpmd 5tswap: Mpps per frame size", sub)
    return True


# ---------------------------------------------------------------------------------------------


def parse_args(argv):
    ap = argparse.ArgumentParser(
        description="Whole-program benchmark: sluice-reflector vs dpdk-testpmd 5tswap "
                    "(see the module docstring and bench/PERF.md).",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inputs", default=",".join(ALL_INPUTS),
                    help="comma list of replay,memory,memif (default: all)")
    ap.add_argument("--sizes", default=None,
                    help="comma list of 64..1518 wire sizes and imix (default 64,512,1518,imix; "
                         "--quick: 64)")
    ap.add_argument("--runs", type=int, default=None, help="runs of each program (default 3)")
    ap.add_argument("--seconds", type=float, default=None,
                    help="measured interval per run (default 3)")
    ap.add_argument("--warmup", type=float, default=None,
                    help="seconds between packets flowing and t0 (default 1)")
    ap.add_argument("--burst", type=int, default=32, help="RX/TX burst of both programs")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 1 run of 1 s after 0.5 s, 64-byte frames unless --sizes")
    ap.add_argument("--dry-run", action="store_true", help="print the command lines, run nothing")
    ap.add_argument("--pretend-cores", type=int, default=None,
                    help="with --dry-run: act as if this many CPUs (0..N-1) were online")
    ap.add_argument("--oversubscribe", type=int, default=None, metavar="N",
                    help="functional test of the multi-core path on a small machine: act as if "
                         "N CPUs were online, mapping lcores 1..N-1 onto the real worker "
                         "CPU(s) with --lcores (rates are meaningless; worker-share noise check off)")
    ap.add_argument("--workers", type=int, default=None,
                    help="largest worker count for the scaling part (default: online CPUs - 1)")
    ap.add_argument("--scale-inputs", default="replay,memory,memif",
                    help="inputs measured for W > 1 (default: all selected)")
    ap.add_argument("--scale-sizes", default="64", help="sizes measured for W > 1 (default 64)")
    ap.add_argument("--memif-window", type=int, default=256,
                    help="frames in flight per queue in the memif loop (generator --burst; "
                         "default 256, max 512)")
    ap.add_argument("--flows", type=int, default=256, help="UDP flows in the pcaps")
    ap.add_argument("--min-cpu-share", type=float, default=0.9,
                    help="a run whose worker thread(s) got less of their core(s) than this "
                         "(other processes ran there) is noisy (default 0.9)")
    ap.add_argument("--retries", type=int, default=None,
                    help="times a noisy run is redone before it is kept, flagged (default 2; "
                         "--quick: 0)")
    ap.add_argument("--mem", choices=("auto", "huge", "nohuge"), default="auto",
                    help="EAL memory for both programs (default auto: --no-huge -m 1024 when "
                         "there are no free hugepages)")
    ap.add_argument("--json", default=os.path.join(HERE, "whole_results.json"),
                    help="results file (default bench/whole_results.json)")
    ap.add_argument("--plot", default=os.path.join(HERE, "whole_results.svg"),
                    help="SVG plot of Mpps per frame size (default bench/whole_results.svg)")
    ap.add_argument("--reflector",
                    default=os.path.join(ROOT, "build", "apps", "reflector", "sluice-reflector"),
                    help="the sluice-reflector binary (default build/apps/reflector/...)")
    ap.add_argument("--testpmd", default=shutil.which("dpdk-testpmd") or "/usr/bin/dpdk-testpmd",
                    help="the dpdk-testpmd binary")
    ap.add_argument("--start-timeout", type=float, default=START_TIMEOUT,
                    help=f"seconds for a program to serve (default {START_TIMEOUT:.0f})")
    ap.add_argument("--stop-timeout", type=float, default=10.0,
                    help="seconds between SIGINT and SIGKILL (default 10)")
    ap.add_argument("--keep-work", action="store_true", help="keep the work dir (pcaps, logs)")
    a = ap.parse_args(argv)

    def lst(s, allowed, what):
        v = [x.strip().lower() for x in s.split(",") if x.strip()]
        for x in v:
            if allowed is not None and x not in allowed:
                ap.error(f"unknown {what} '{x}' (expected one of {', '.join(allowed)})")
        return list(dict.fromkeys(v))

    a.inputs = lst(a.inputs, ALL_INPUTS, "input")
    a.scale_inputs = [x for x in lst(a.scale_inputs, ALL_INPUTS, "input") if x in a.inputs]
    a.sizes = lst(a.sizes or ("64" if a.quick else ",".join(ALL_SIZES)), None, "size")
    a.scale_sizes = lst(a.scale_sizes, None, "size")
    for s in a.sizes + a.scale_sizes:
        try:
            gen_pcap.wire_sizes(s)
        except ValueError:
            ap.error(f"bad size '{s}' (64..1518 or imix)")
    a.runs = a.runs if a.runs is not None else (1 if a.quick else 3)
    a.retries = a.retries if a.retries is not None else (0 if a.quick else 2)
    a.seconds = a.seconds if a.seconds is not None else (1.0 if a.quick else 3.0)
    a.warmup = a.warmup if a.warmup is not None else (0.5 if a.quick else 1.0)
    if a.runs < 1 or a.seconds <= 0 or a.warmup < 0:
        ap.error("--runs >= 1, --seconds > 0, --warmup >= 0")
    if not 1 <= a.burst <= 512:
        ap.error("--burst must be 1..512")
    if not 1 <= a.memif_window <= 512:
        ap.error("--memif-window must be 1..512 (testpmd's --burst limit)")
    if a.pretend_cores is not None and not a.dry_run:
        ap.error("--pretend-cores only with --dry-run (see --oversubscribe)")
    if a.oversubscribe is not None and (a.oversubscribe < 2 or a.pretend_cores is not None):
        ap.error("--oversubscribe N needs N >= 2 and no --pretend-cores")
    return a


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    real_cpus = sorted(os.sched_getaffinity(0))
    if a.pretend_cores is not None:
        cpus = list(range(a.pretend_cores))
    elif a.oversubscribe is not None:
        cpus = list(range(a.oversubscribe))
    else:
        cpus = real_cpus
    if len(cpus) < 2 or len(real_cpus) < 2 and not a.dry_run:
        log("need at least 2 CPUs: one for the control/generator side, one worker")
        return 2
    n_max = len(cpus) - 1
    if a.workers is not None:
        if not 1 <= a.workers <= n_max:
            log(f"--workers must be 1..{n_max}")
            return 2
        n_max = a.workers
    matrix, scaling, skipped = build_cases(a, n_max)
    cases = matrix + scaling

    if not a.dry_run:
        if os.geteuid() != 0:
            log("run as root (DPDK needs /var/run/dpdk and raw memory); --dry-run does not")
            return 2
        for exe in (a.reflector, a.testpmd):
            if not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
                log(f"not found or not executable: {exe} (build with `ninja -C build`)")
                return 2
    workdir = tempfile.mkdtemp(prefix="sluice-bench-") if not a.dry_run \
        else "/tmp/sluice-bench-DRYRUN"
    plan = Plan(a, cpus, workdir, real_cpus if a.oversubscribe else None)

    setup_cmds = []
    for size in sorted({c["size"] for c in cases if c["input"] == "replay"},
                       key=lambda s: ALL_SIZES.index(s) if s in ALL_SIZES else 9):
        setup_cmds.append(shlex.join(plan.gen_pcap_cmd(size)))

    if a.dry_run:
        print(f"# dry run: CPUs {cpus} -> workers 1..{n_max}; memory: {plan.mem_desc}")
        for cmd in setup_cmds:
            print(cmd)
        for c in cases:
            progs = ["sluice"] if c["mode"] == "soft-rss" else list(PROGRAMS)
            for p in progs:
                for n, cmd in plan.commands(c, p).items():
                    print(f"# {c['part']} {c['input']} {c['size']} W={c['workers']} "
                          f"{c['mode']} {p} {n} (x{a.runs}, alternating)")
                    print(shlex.join(cmd))
        for s in skipped:
            print(f"# skipped: {s['input']} {s['size']}"
                  + (f" W={s['workers']}" if s.get("workers") else "") + f": {s['reason']}")
        return 0

    try:
        return run_all(a, plan, real_cpus, n_max, cases, skipped, setup_cmds)
    finally:
        Proc.stop_all(a.stop_timeout)
        if a.keep_work:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def run_all(a, plan, cpus, n_max, cases, skipped, setup_cmds):
    workdir = plan.workdir
    interrupted = [False]

    def on_signal(signum, frame):
        interrupted[0] = True
        raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    all_cpus = set(cpus)
    os.sched_setaffinity(0, {cpus[0]})  # the runner stays off the worker cores
    results = {}
    rc = 0
    start = time.monotonic()
    try:
        for size in sorted({c["size"] for c in cases if c["input"] == "replay"}):
            # Same as the recorded gen_pcap.py command line, in-process.
            frames = gen_pcap.frames(size, a.flows, BENCH_MAC)
            gen_pcap.write_pcap(plan.pcap(size), frames)
            bad = [why for fr in gen_pcap.read_pcap(plan.pcap(size))
                   if (why := gen_pcap.check_frame(fr))]
            if bad:
                raise BenchError(f"{plan.pcap(size)}: invalid frames: {bad[:3]}")
            log(f"{plan.pcap(size)}: {len(frames)} frames of {size}, {a.flows} flows")
        log(f"work dir {workdir}; CPUs {cpus}; memory {plan.mem_desc}"
            + ("; OVERSUBSCRIBED: lcore->CPU " + str(plan.phys) + " (functional test only)"
               if plan.oversubscribed else ""))
        execute(plan, cases, results, interrupted)
    except KeyboardInterrupt:
        interrupted[0] = True
        log("interrupted: stopping everything")
        rc = 130
    except BenchError as e:
        log(f"error: {e}")
        rc = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        Proc.stop_all(a.stop_timeout)
        os.sched_setaffinity(0, all_cpus)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        for e in results.values():
            for pe in e["programs"].values():
                if "summary" not in pe:
                    pe["summary"] = summarize(pe["runs"])

    # TSC frequency: what Sluice's EAL uses, else the kernel's.
    hzs = [r["tsc_hz"] for e in results.values() for pe in e["programs"].values()
           for r in pe["runs"] if r.get("tsc_hz")]
    if hzs:
        hz, hz_src = statistics.median(hzs), "rte_get_tsc_hz() via /sluice/runtime"
        if max(hzs) - min(hzs) > hz * 1e-3:
            log(f"warning: TSC frequency differs between runs: {sorted(set(hzs))}")
    else:
        hz, hz_src = kernel_tsc_hz()
    meta = {
        "tool": "bench/run_bench.py",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "hostname": platform.node(), "kernel": platform.release(), "git": git_revision(),
        "dpdk": dpdk_version(), "cpu_model": cpu_model(), "online_cpus": len(cpus),
        "cpus": cpus, "oversubscribed": plan.phys if plan.oversubscribed else None,
        "tsc_hz": hz, "tsc_source": hz_src, "max_workers": n_max,
        "burst": a.burst, "runs": a.runs, "seconds": a.seconds, "warmup": a.warmup,
        "memory": plan.mem_desc, "memif_window": a.memif_window, "flows": a.flows,
        "inputs": a.inputs, "sizes": a.sizes, "bench_mac": BENCH_MAC,
        "reflector_ip": REFLECTOR_IP,
        "frame_size_convention": "wire bytes incl. 4-byte FCS; pcap/mbuf/--seed/--txpkts "
                                 "hold size - 4",
        "cycles_per_packet": "TSC Hz x workers / Mpps (poll-mode workers are 100% busy)",
        "mpps": "delta ipackets / delta t at the counting port (reflector; memif: generator)",
        "setup_commands": setup_cmds, "interrupted": interrupted[0],
        "elapsed_s": round(time.monotonic() - start, 1),
    }
    mtimes = sorted({r["reflector_mtime"] for e in results.values()
                     for r in e["programs"].get("sluice", {}).get("runs", [])
                     if r.get("reflector_mtime")})
    meta["reflector_binary"] = {"path": a.reflector, "mtimes": [
        datetime.datetime.fromtimestamp(t, datetime.timezone.utc).isoformat(timespec="seconds")
        for t in mtimes]}
    if len(mtimes) > 1:
        meta["warning"] = "sluice-reflector was rebuilt during the benchmark: results mix builds"
        log(f"warning: {meta['warning']}")
    comp = comparisons(results, hz)
    scal = scaling_rows(comp, a)
    print(render_table(meta, comp, scal, skipped, results))
    doc = {"meta": meta, "comparisons": comp, "scaling": scal, "skipped": skipped,
           "cases": [{"case": e["case"], "programs": e["programs"]} for e in results.values()]}
    if interrupted[0]:
        log(f"interrupted: {a.json} and {a.plot} left as they were")
    elif results:
        with open(a.json, "w") as f:
            json.dump(doc, f, indent=1, sort_keys=False, default=str)
            f.write("\n")
        log(f"wrote {a.json}")
        if write_plot(a.plot, comp, meta):
            log(f"wrote {a.plot}")
    failed = any(not r.get("ok") and not r.get("unsupported") for e in results.values()
                 for pe in e["programs"].values() for r in pe["runs"])
    if rc == 0 and failed:
        rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
