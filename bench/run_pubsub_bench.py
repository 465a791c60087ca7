#!/usr/bin/env python3
"""Pub/sub benchmark: sluice-broker on Sluice's TCP against redis-server on Linux TCP, on the
same two cores (Sluice over net_memif, two processes, and over the in-memory wire, one).

    python3 bench/run_pubsub_bench.py --only redis --duration 2 --runs 1   # Redis anchor only
    sudo bench/run_pubsub_bench.py                  # everything: 5 s runs, 3 of each
    sudo bench/run_pubsub_bench.py --markdown       # the same, table as Markdown
    bench/run_pubsub_bench.py --dry-run             # print every command line, run nothing

Workloads: 1 publisher and N subscriber connections (--subs, default 1,10,100,1000) on one
channel, P-byte payloads (--sizes, default 16,1024): every combination. The load generator
(bench/pubsub/pubsub_load.hpp, the same core for both systems) connects all N+1, subscribes the
N and waits for every confirmation, then for --duration seconds pipelines PUBLISH commands with
at most --window (64) of them without their reply and at most --lag (default: the window)
messages not yet delivered to every subscriber; each payload carries its send time and a
sequence number. Per subscriber it checks that every message arrives, in order (lost and
reordered must be 0, and each PUBLISH reply must count N receivers), and it records the
publish-to-delivery latency of each delivery. One line per run:
  pubsub: subs=N size=P published=X delivered=Y seconds=D delivered_per_s=R p50_us=A p99_us=B
          lost=0 reordered=0
delivered_per_s (deliveries to subscribers per second, N per message) is the figure compared.

Systems (--only picks some; default all):
  redis        redis-server (--redis-server, default the one on PATH) on 127.0.0.1:<a free
               port>, --save "" --appendonly no, pinned to CPU 1 with taskset; the generator is
               linux-pubsub-load (Linux sockets, epoll, one thread) on CPU 0, in two modes:
               sleeping in epoll_wait ("redis") and busy-polling with --spin ("redis-spin").
               The better of the two delivered/s medians is the anchor.
  sluice       ("memif") sluice-broker (CPU 1) and sluice-pubsub-load (CPU 0), two processes
               over net_memif (socket /run/sluice-bench-ps.sock), 198.18.0.1 -> 198.18.0.2:6379.
  wire         sluice-pubsub-wire-bench: sluice-broker's Broker app (lcore 1) and the generator's
               app (lcore 0) in ONE process over the in-memory wire (pmd::Wire), EAL lcores 0,1
               (--no-huge, file prefix slpw): Sluice without the memif transport.
Server on CPU 1, generator on CPU 0 everywhere; the runner pins itself to CPU 0 and mostly
sleeps.

Runs alternate (for each workload: redis, redis-spin, sluice, wire, then again, --runs times);
each run is a fresh server and generator. Reported: median (min-max) over the runs that worked;
ratio = median Sluice delivered/s / median of the better Redis mode, for sluice (memif) and
wire each; p99 = median of the runs' p99. Target (the issue): Sluice >= 10x Redis's
delivered/s with a lower p99 than Redis's (the lower of the two modes' p99 medians), judged for
each Sluice system.

Process handling, CPU accounting and noise control are bench/bench_runner.py's (shared with
bench/run_tcp_bench.py):
every process in its own session with a deadline (server ready: 10 s Redis, 60 s Sluice;
generator: --duration + 60 s Redis, + 100 s Sluice, which covers its 30 s setup and 10 s drain
bounds), stopped with SIGINT, then SIGKILL after 10 s; the CPU time of the server and the
generator over the generator's lifetime is recorded; a run during which other processes used
more than --max-foreign cores (0.15) of the two CPUs is redone up to --retries (2) times, then
kept and flagged '*'. /run/sluice-bench-ps.sock and /var/run/dpdk/{slps,slpc} are removed
before and after each memif run (/var/run/dpdk/slpw before and after each wire run), also on
failure and Ctrl-C. A missing binary (sluice-broker
while it is being written) or a failing run is recorded with the reason and its log's tail,
and the runner goes on.

Exit status: 0 if every run worked, 1 if some failed, 2 on bad usage, 130 if interrupted.
"""

import glob
import os
import re
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

# Process handling, CPU accounting, the run loop, tables and results (shared with the TCP
# benchmark).
from bench_runner import (MET, Matrix, PlanBase, Run, RunError, add_common_tail,  # noqa: E402
                          bench_plan, cell_flags, check_built, cleanup_prefix, comma_set, dry_run,
                          fmt_secs, in_workdir, indent, new_parser, pick_systems, render_markdown,
                          render_text, resolve_build, summary_tail, unlink_socket)

MEMIF_SOCK = "/run/sluice-bench-ps.sock"
PREFIXES = {"server": "slps", "client": "slpc"}
SERVER_IP, CLIENT_IP, BROKER_PORT = "198.18.0.2", "198.18.0.1", 6379
WIRE_PREFIX = "slpw"
ALL_SYSTEMS = ("redis", "redis-spin", "sluice", "wire")
REDIS_SYSTEMS = ("redis", "redis-spin")
SLUICE_SYSTEMS = ("sluice", "wire")  # sluice: over net_memif; wire: one process, pmd::Wire
READY_TIMEOUT = {"redis": 10.0, "sluice": 60.0}  # wire: no server process
# The generator's own bounds: 30 s to connect and subscribe, 10 s to drain (pubsub_load.hpp).
CLIENT_SLACK = {"redis": 60.0, "sluice": 100.0, "wire": 100.0}
REDIS_READY = r"Ready to accept connections"
SLUICE_READY = r"ready"

LINE_RX = re.compile(r"^pubsub: (subs=\S+(?: [A-Za-z_0-9]+=\S+)+)\s*$", re.M)
DETAIL_RX = re.compile(r"^pubsub: detail ((?:[A-Za-z_0-9]+=\S*\s*)+)$", re.M)
FIELDS = ("subs", "size", "published", "delivered", "seconds", "delivered_per_s", "p50_us",
          "p99_us", "lost", "reordered")


def kind_of(system):
    return system if system in SLUICE_SYSTEMS else "redis"


def workloads(a):
    return [{"name": f"{n}x{p}", "subs": n, "size": p} for n in a.subs for p in a.sizes]


def describe(w):
    return f"{w['subs']} sub{'s' if w['subs'] > 1 else ''}, {w['size']} B"


# ---------------------------------------------------------------------------------------------
# Command lines


class Plan(PlanBase):
    def __init__(self, a, cpus):
        super().__init__(a, cpus)
        self.linux_bin = os.path.join(a.build, "bench", "pubsub", "linux-pubsub-load")
        self.sluice_bin = os.path.join(a.build, "bench", "pubsub", "sluice-pubsub-load")
        self.broker_bin = os.path.join(a.build, "apps", "broker", "sluice-broker")
        self.wire_bin = os.path.join(a.build, "bench", "pubsub", "sluice-pubsub-wire-bench")

    def load_args(self, w):
        """The workload part of the generator's command line (the same for both)."""
        args = ["--subs", str(w["subs"]), "--size", str(w["size"]),
                "--duration", fmt_secs(self.a.duration), "--window", str(self.a.window)]
        if self.a.lag:
            args += ["--lag", str(self.a.lag)]
        return args

    def redis(self, w, spin, port="PORT"):
        server = ["taskset", "-c", str(self.server_cpu), self.a.redis_server,
                  "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                  "--daemonize", "no"]
        client = [self.linux_bin, "--connect", f"127.0.0.1:{port}"] + self.load_args(w) + \
            ["--cpu", str(self.client_cpu)] + (["--spin"] if spin else [])
        return {"server": server, "client": client}

    def sluice(self, w):
        dev = "net_memif0,role={},socket=" + MEMIF_SOCK + ",id=0"
        copy = (["--copy-below", str(self.a.copy_below)] if self.a.copy_below is not None
                else [])
        huge = ["--huge-unlink"] if self.a.hugepages else []  # else: the engine's choice
        server = [self.broker_bin, "--port", dev.format("server"), "--ip", f"{SERVER_IP}/24",
                  "--quiet"] + copy + ["--", "-l", str(self.server_cpu), "--file-prefix",
                  PREFIXES["server"]] + huge
        # --linger: the generator's port stays open until the runner has stopped the broker
        # (Run.run_client), so neither memif side closes under a polling peer.
        client = [self.sluice_bin, "--port", dev.format("client"), "--ip", f"{CLIENT_IP}/24",
                  "--connect", f"{SERVER_IP}:{BROKER_PORT}"] + self.load_args(w) + \
            ["--quiet", "--linger", "30", "--", "-l", str(self.client_cpu), "--file-prefix",
             PREFIXES["client"]] + huge
        return {"server": server, "client": client}

    def wire(self, w):
        """One process: the broker on the second lcore, the generator on the first."""
        copy = (["--copy-below", str(self.a.copy_below)] if self.a.copy_below is not None
                else [])
        mem = ["--huge-unlink"] if self.a.hugepages else ["--no-huge", "-m", "1024"]
        mtu = ["--mtu", str(self.a.wire_mtu)] if self.a.wire_mtu != 1500 else []
        client = [self.wire_bin] + self.load_args(w) + copy + mtu + [
            "--", "-l", f"{self.client_cpu},{self.server_cpu}"] + mem + [
            "--no-pci", "--file-prefix", WIRE_PREFIX]
        return {"client": client}

    def commands(self, system, w, port="PORT"):
        if system == "sluice":
            return self.sluice(w)
        if system == "wire":
            return self.wire(w)
        return self.redis(w, system == "redis-spin", port)


def free_port():
    """A TCP port free on 127.0.0.1 now (the kernel's pick); Redis binds it a moment later."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sluice_cleanup(system="sluice"):
    prefixes = [WIRE_PREFIX] if system == "wire" else list(PREFIXES.values())
    if system != "wire":
        unlink_socket(MEMIF_SOCK)
    for prefix in prefixes:
        cleanup_prefix(prefix)
        # Hugepage files a process that did not exit cleanly may leave (--huge-unlink
        # normally removes them at once).
        for f in glob.glob(os.path.join(HUGE_DIR, prefix + "map_*")):
            try:
                os.unlink(f)
            except OSError:
                pass


HUGE_NR = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"
HUGE_DIR = "/dev/hugepages"


class Hugepages:
    """--hugepages N: at least N 2 MiB hugepages reserved and hugetlbfs mounted for the Sluice
    runs (DPDK's usual memory; without them the engine runs with --no-huge), and the machine
    put back as it was afterwards (the page count, the mount)."""

    def __init__(self, n):
        self.n, self.old, self.mounted = n, None, False

    def __enter__(self):
        if not self.n:
            return self
        with open(HUGE_NR) as f:
            self.old = int(f.read())
        if self.old < self.n:
            with open(HUGE_NR, "w") as f:
                f.write(str(self.n))
        with open(HUGE_NR) as f:
            got = int(f.read())
        if got < self.n:
            print(f"warning: only {got} of {self.n} hugepages could be reserved",
                  file=sys.stderr)
        with open("/proc/mounts") as f:
            mounted = any(line.split()[2] == "hugetlbfs" for line in f if line.strip())
        if not mounted:
            os.makedirs(HUGE_DIR, exist_ok=True)
            subprocess.run(["mount", "-t", "hugetlbfs", "nodev", HUGE_DIR], check=True)
            self.mounted = True
        return self

    def __exit__(self, *exc):
        if self.mounted:
            subprocess.run(["umount", HUGE_DIR], check=False)
        if self.old is not None and self.old < self.n:
            with open(HUGE_NR, "w") as f:
                f.write(str(self.old))
        return False


def parse_kv(text):
    return dict(item.split("=", 1) for item in text.split() if "=" in item)


def parse_client(stdout, stderr, w):
    """The `pubsub: ...` line's fields, checked against the workload; raises RunError."""
    found = LINE_RX.findall(stdout)
    if not found:
        raise RunError("no `pubsub: subs=...` line in the generator's output")
    kv = parse_kv(found[-1])
    line = "pubsub: " + found[-1]
    missing = [f for f in FIELDS if f not in kv]
    if missing:
        raise RunError(f"generator line lacks {', '.join(missing)}: {line}")
    try:
        vals = {k: float(kv[k]) for k in FIELDS}
    except ValueError:
        raise RunError(f"generator line has a non-number: {line}")
    if int(vals["subs"]) != w["subs"] or int(vals["size"]) != w["size"]:
        raise RunError(f"generator ran subs={int(vals['subs'])} size={int(vals['size'])}, "
                       f"asked for subs={w['subs']} size={w['size']}")
    if vals["seconds"] <= 0:
        raise RunError(f"generator measured no time: {line}")
    detail = {}
    d = DETAIL_RX.findall(stderr)
    if d:
        for k, v in parse_kv(d[-1]).items():
            try:
                detail[k] = float(v)
            except ValueError:
                detail[k] = v
    return {"line": line, "fields": vals, "detail": detail, "count": len(found)}


# ---------------------------------------------------------------------------------------------
# One run


def start_server(plan, run, system, w):
    """Starts the server and waits for its ready line; the commands. Redis: a free port, one
    more try on another should the first be taken in between."""
    kind = kind_of(system)
    for attempt in range(2):
        port = free_port() if kind == "redis" else BROKER_PORT
        cmds = plan.commands(system, w, port)
        server = run.start_server(f"{system} server", cmds["server"], f"-server{attempt}")
        try:
            server.wait_for(REDIS_READY if kind == "redis" else SLUICE_READY,
                            time.monotonic() + READY_TIMEOUT[kind])
            return cmds
        except RunError:
            server.stop()
            run.server = None
            if kind != "redis" or attempt == 1 or "Address already in use" not in server.tail():
                raise
    raise RunError("unreachable")


def run_once(plan, system, w, run_index, workdir):
    kind = kind_of(system)
    rec = {"system": system, "workload": w["name"], "subs": w["subs"], "size": w["size"],
           "run": run_index, "ok": False}
    cmds = plan.commands(system, w)
    rec["commands"] = {k: shlex.join(v) for k, v in cmds.items()}
    run = Run(plan, rec, workdir, f"{w['name']}-{system}-{run_index}")

    def body():
        nonlocal cmds
        check_built(cmds, not_found_outside=True)
        if kind in SLUICE_SYSTEMS:
            if os.geteuid() != 0:
                raise RunError("Sluice runs need root (DPDK)")
            sluice_cleanup(system)
        if "server" in cmds:
            cmds = start_server(plan, run, system, w)
            rec["commands"] = {k: shlex.join(v) for k, v in cmds.items()}
            rec["server_ready_s"] = round(time.monotonic() - run.server.started, 3)
        # wire: one process, broker and generator (two lcores) together: cpu_cores' "process".
        client = run.run_client(f"{system} generator", cmds["client"], "generator",
                                CLIENT_SLACK[kind], solo_key="process",
                                linger=r"lingering" if system == "sluice" else None)
        server_died = run.server_died()
        parsed = None
        try:
            parsed = parse_client(client.stdout(), client.stderr(), w)
        except RunError:
            if client.p.returncode == 0:
                raise
        if parsed:
            rec.update(parsed)
            rec["value"] = parsed["fields"]["delivered_per_s"]
            rec["p50_us"] = parsed["fields"]["p50_us"]
            rec["p99_us"] = parsed["fields"]["p99_us"]
            if parsed["count"] != 1:
                rec["warning"] = f"{parsed['count']} generator lines; the last one taken"
        if client.p.returncode != 0:
            raise RunError(f"generator exited with {client.p.returncode}:\n"
                           + indent(client.tail()))
        f = parsed["fields"]
        if f["lost"] or f["reordered"]:
            raise RunError(f"lost={int(f['lost'])} reordered={int(f['reordered'])}: "
                           + parsed["line"])
        if server_died:
            raise run.server_died_error()

    cleanup = (lambda: sluice_cleanup(system)) \
        if kind in SLUICE_SYSTEMS and os.geteuid() == 0 else None
    return run.execute(body, cleanup)


# ---------------------------------------------------------------------------------------------
# Summary and tables


def summarize(runs):
    ok = [r for r in runs if r.get("ok")]
    s = {"runs": len(runs), "ok": len(ok)}
    if ok:
        for key, name in (("value", "delivered_per_s"), ("p50_us", "p50_us"),
                          ("p99_us", "p99_us")):
            v = [r[key] for r in ok]
            s[name] = {"median": statistics.median(v), "min": min(v), "max": max(v)}
        s["median"] = s["delivered_per_s"]["median"]
        s["noisy"] = sum(1 for r in ok if r.get("noisy"))
    return summary_tail(s, runs, ok, ("server", "client", "process"))


def comparisons(results, wls, systems):
    rows = []
    for w in wls:
        per = {s: summarize(results[w["name"]][s]) for s in systems if results[w["name"]].get(s)}
        row = {"workload": w["name"], "description": describe(w), "subs": w["subs"],
               "size": w["size"], "systems": per}
        redis = [(per[s]["median"], s) for s in REDIS_SYSTEMS if s in per and "median" in per[s]]
        if redis:
            row["redis_best"], row["redis_best_mode"] = max(redis)
            row["redis_p99_us"] = min(per[s]["p99_us"]["median"] for _, s in redis)
        row["target"] = ">= 10x Redis delivered/s, lower p99"
        # sluice (memif): ratio, sluice_p99_us, p99_lower, target_met (the first keys, kept);
        # wire: wire_ratio, wire_p99_us, wire_p99_lower, wire_target_met.
        for s, pre in (("sluice", ""), ("wire", "wire_")):
            sl = per.get(s, {})
            if "median" in sl:
                row[f"{s}_p99_us"] = sl["p99_us"]["median"]
                if row.get("redis_best"):
                    row[pre + "ratio"] = sl["median"] / row["redis_best"]
                    row[pre + "p99_lower"] = row[f"{s}_p99_us"] < row["redis_p99_us"]
            row[pre + "target_met"] = (row[pre + "ratio"] >= 10.0 and row[pre + "p99_lower"]) \
                if pre + "ratio" in row else None
        rows.append(row)
    return rows


def fmt_rate(v):
    return "-" if v is None else f"{v:,.0f}"


def fmt_us(v):
    if v is None:
        return "-"
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def cell(s, with_range=False):
    if s is None:
        return "not run"
    if "median" not in s:
        return "FAILED: " + s.get("error", "?")[:60]
    txt = fmt_rate(s["median"])
    if with_range and s["ok"] > 1:
        d = s["delivered_per_s"]
        txt += f" ({fmt_rate(d['min'])}-{fmt_rate(d['max'])})"
    return cell_flags(s, txt)


def lat(s):
    if s is None or "median" not in s:
        return "-"
    return f"{fmt_us(s['p50_us']['median'])} / {fmt_us(s['p99_us']['median'])}"


def table_rows(rows, systems):
    out = []
    for r in rows:
        per = r["systems"]
        red, red_lat = [], []
        for s in REDIS_SYSTEMS:
            if s in systems:
                tag = " (epoll)" if s == "redis" else " (spin)"
                red.append(cell(per.get(s)) + tag)
                red_lat.append(lat(per.get(s)))
        sl, mets = [], []
        for s, pre in (("sluice", ""), ("wire", "wire_")):
            c = cell(per.get(s)) if s in systems else "not run"
            if pre + "ratio" in r:
                c += f" = {r[pre + 'ratio']:.2f}x"
            sl += [c, lat(per.get(s)) if s in systems else "-"]
            mets.append(MET[r[pre + "target_met"]])
        out.append([r["description"], " / ".join(red) or "not run", " ; ".join(red_lat) or "-",
                    *sl, " / ".join(mets)])
    return out


HEAD = ["workload", "Redis delivered/s", "Redis p50 / p99 us",
        "Sluice memif delivered/s (x Redis)", "memif p50 / p99 us",
        "Sluice wire delivered/s (x Redis)", "wire p50 / p99 us",
        ">= 10x, lower p99 (memif / wire)"]


# ---------------------------------------------------------------------------------------------
# Main


def int_list(text, what, lo, hi, ap):
    try:
        v = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        v = []
    if not v or any(not lo <= x <= hi for x in v):
        ap.error(f"{what}: a comma list of integers in {lo}..{hi}")
    return v


def parse_args(argv):
    ap = new_parser(
        "Pub/sub benchmark: sluice-broker (Sluice TCP over memif, and over the in-memory wire "
        "in one process) vs redis-server (Linux TCP over loopback); see the module docstring "
        "and bench/PUBSUB_PERF.md.",
        "comma list of redis, sluice (or memif), wire (default all); redis means both "
        "generator modes unless --redis-modes says otherwise",
        "--redis-modes",
        "linux-pubsub-load's modes against Redis: epoll (sleep in epoll_wait), spin (--spin, "
        "busy-poll); default both")
    ap.add_argument("--subs", default="1,10,100,1000",
                    help="subscriber counts (default 1,10,100,1000)")
    ap.add_argument("--sizes", default="16,1024", help="payload sizes, >= 16 (default 16,1024)")
    ap.add_argument("--window", type=int, default=64,
                    help="PUBLISH commands without their reply, at most (default 64)")
    ap.add_argument("--lag", type=int, default=0,
                    help="messages not yet delivered to every subscriber, at most (default: "
                         "the window)")
    ap.add_argument("--redis-server", default=None,
                    help="the redis-server binary (default: redis-server on PATH)")
    ap.add_argument("--copy-below", type=int, default=None,
                    help="sluice-broker's --copy-below: payloads shorter than this are copied "
                         "into each frame instead of shared by reference (default: the "
                         "broker's, 128; 0: never)")
    ap.add_argument("--hugepages", type=int, default=0,
                    help="reserve at least this many 2 MiB hugepages (and mount hugetlbfs) "
                         "for the Sluice runs, as DPDK is deployed, and put the machine back "
                         "afterwards; root (default 0: as the machine is; the wire runs with "
                         "--no-huge)")
    ap.add_argument("--wire-mtu", type=int, default=1500,
                    help="the in-memory wire's IP MTU, 576..9000 (default 1500; Linux's "
                         "loopback, Redis's transport, has 65536); net_memif carries 1500 at "
                         "most in DPDK 22.11")
    add_common_tail(ap, "pubsub_results.json")
    a = ap.parse_args(argv)
    if not 576 <= a.wire_mtu <= 9000:
        ap.error("--wire-mtu: 576..9000")
    if a.hugepages < 0 or (a.hugepages and not a.dry_run and os.geteuid() != 0):
        ap.error("--hugepages: a count >= 0, and root to reserve them")
    if not a.duration > 0 or a.runs < 1 or a.retries < 0 or not 1 <= a.window <= 65536 \
            or not 0 <= a.lag <= 65536:
        ap.error("--duration and --runs must be positive, --retries >= 0, --window 1..65536, "
                 "--lag 0..65536")
    a.subs = int_list(a.subs, "--subs", 1, 100000, ap)
    a.sizes = int_list(a.sizes, "--sizes", 16, 1 << 20, ap)
    resolve_build(a)
    only = comma_set(a.only or "redis,sluice,wire")
    if not only or only - {"redis", "sluice", "memif", "wire"}:
        ap.error(f"--only: redis, sluice (memif), wire (got {a.only})")
    if "memif" in only:
        only = (only - {"memif"}) | {"sluice"}
    modes = comma_set(a.redis_modes)
    if not modes or modes - {"epoll", "spin"}:
        ap.error("--redis-modes: epoll, spin")
    a.systems = pick_systems(ALL_SYSTEMS, only, modes, "redis", SLUICE_SYSTEMS)
    if a.redis_server is None:
        a.redis_server = shutil.which("redis-server") or "/usr/bin/redis-server"
    a.redis_server = os.path.abspath(a.redis_server)
    return a


def redis_version(path):
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True,
                             timeout=5).stdout
        m = re.search(r"v=(\S+)", out)
        return m.group(1) if m else out.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    plan = bench_plan(Plan, a, "the generator on the first, the server on the second")
    if plan is None:
        return 2
    wls = workloads(a)
    if a.dry_run:
        return dry_run(a, plan, wls, "generator", lambda w: a.systems)
    with Hugepages(a.hugepages):
        return in_workdir(a, "sluice-pubsub-bench-",
                          lambda workdir: run_all(a, plan, wls, workdir))


def run_all(a, plan, wls, workdir):
    def cleanup():
        if os.geteuid() == 0:
            for s in SLUICE_SYSTEMS:
                if s in a.systems:
                    sluice_cleanup(s)

    def cpu_note(system, cpu):
        if system == "wire":
            return f"process {cpu.get('process', '-')}"
        return f"server {cpu.get('server', '-')}, generator {cpu.get('client', '-')}"

    m = Matrix(a, plan, wls, workdir).run(run_once, lambda w: a.systems, cpu_note,
                                                cleanup=cleanup)
    rows = comparisons(m.results, wls, a.systems)
    meta = m.meta("bench/run_pubsub_bench.py", {"redis": redis_version(a.redis_server)})
    meta.update({
        "window": a.window, "lag": a.lag or a.window, "hugepages": a.hugepages,
        "wire_mtu": a.wire_mtu,
        "value": "delivered_per_s: deliveries to subscribers within the window, per second",
        "ratio": "median Sluice delivered/s / median of the better Redis mode (epoll or spin): "
                 "ratio for sluice (memif), wire_ratio for wire (one process, pmd::Wire)",
        "p99": "median over the runs of each run's p99 publish-to-delivery latency; Sluice's "
               "is compared with the lower of the Redis modes'",
        "cpu_cores": "CPU time / wall time over the generator's lifetime, per process (wire: "
                     "'process', broker and generator together)",
        "foreign_cores": "busy time of the two CPUs (/proc/stat) minus server and generator, "
                         "per second; > max_foreign: noisy (redone, then kept, flagged *)",
    })
    rendered = table_rows(rows, a.systems)
    table = render_markdown(HEAD, rendered) if a.markdown else render_text(HEAD, rendered)
    return m.finish(meta, rows, table)


if __name__ == "__main__":
    sys.exit(main())
