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

Process handling, CPU accounting and noise control are bench/run_tcp_bench.py's (imported):
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

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

# The TCP benchmark's process handling, CPU accounting and machine facts.
from run_tcp_bench import (Proc, RunError, cleanup_prefix, cpu_model, cpu_ticks,  # noqa: E402
                           dpdk_version, fmt_secs, git_revision, indent, log,
                           proc_cpu_seconds)

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


class Plan:
    def __init__(self, a, cpus):
        self.a = a
        self.cpus = set(cpus)
        self.client_cpu, self.server_cpu = cpus[0], cpus[1]
        self.bench_cpus = {self.client_cpu, self.server_cpu}
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
        copy = ["--copy-below", str(self.a.copy_below)] if self.a.copy_below else []
        server = [self.broker_bin, "--port", dev.format("server"), "--ip", f"{SERVER_IP}/24",
                  "--quiet"] + copy + ["--", "-l", str(self.server_cpu), "--file-prefix",
                  PREFIXES["server"]]
        client = [self.sluice_bin, "--port", dev.format("client"), "--ip", f"{CLIENT_IP}/24",
                  "--connect", f"{SERVER_IP}:{BROKER_PORT}"] + self.load_args(w) + \
            ["--quiet", "--", "-l", str(self.client_cpu), "--file-prefix", PREFIXES["client"]]
        return {"server": server, "client": client}

    def wire(self, w):
        """One process: the broker on the second lcore, the generator on the first."""
        copy = ["--copy-below", str(self.a.copy_below)] if self.a.copy_below else []
        client = [self.wire_bin] + self.load_args(w) + copy + [
            "--", "-l", f"{self.client_cpu},{self.server_cpu}", "--no-huge", "-m", "1024",
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
    if system == "wire":
        cleanup_prefix(WIRE_PREFIX)
        return
    try:
        os.unlink(MEMIF_SOCK)
    except FileNotFoundError:
        pass
    except OSError as e:
        log(f"  cannot remove {MEMIF_SOCK}: {e}")
    for prefix in PREFIXES.values():
        cleanup_prefix(prefix)


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


def start_server(plan, system, w, workdir, tag):
    """Starts the server and waits for its ready line; (Proc, commands). Redis: a free port,
    one more try on another should the first be taken in between."""
    kind = kind_of(system)
    for attempt in range(2):
        port = free_port() if kind == "redis" else BROKER_PORT
        cmds = plan.commands(system, w, port)
        server = Proc(f"{system} server", cmds["server"], workdir, f"{tag}-server{attempt}",
                      plan.cpus)
        server.start()
        try:
            server.wait_for(REDIS_READY if kind == "redis" else SLUICE_READY,
                            time.monotonic() + READY_TIMEOUT[kind])
            return server, cmds
        except RunError:
            server.stop()
            if kind != "redis" or attempt == 1 or "Address already in use" not in server.tail():
                raise
    raise RunError("unreachable")


def run_once(plan, system, w, run_index, workdir):
    a = plan.a
    kind = kind_of(system)
    tag = f"{w['name']}-{system}-{run_index}"
    rec = {"system": system, "workload": w["name"], "subs": w["subs"], "size": w["size"],
           "run": run_index, "ok": False}
    cmds = plan.commands(system, w)
    rec["commands"] = {k: shlex.join(v) for k, v in cmds.items()}
    server = client = None
    t_start = time.monotonic()
    try:
        for role, argv in cmds.items():
            exe = argv[3] if argv[0] == "taskset" else argv[0]
            if not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
                raise RunError(f"not built: {os.path.relpath(exe, ROOT)}"
                               if exe.startswith(ROOT) else f"not found: {exe}")
        if kind in SLUICE_SYSTEMS:
            if os.geteuid() != 0:
                raise RunError("Sluice runs need root (DPDK)")
            sluice_cleanup(system)
        if "server" in cmds:
            server, cmds = start_server(plan, system, w, workdir, tag)
            rec["commands"] = {k: shlex.join(v) for k, v in cmds.items()}
            rec["server_ready_s"] = round(time.monotonic() - server.started, 3)
        client = Proc(f"{system} generator", cmds["client"], workdir, tag + "-client", plan.cpus)
        srv_cpu0 = proc_cpu_seconds(server.p.pid) if server else None
        ticks0 = cpu_ticks(plan.bench_cpus)
        client.start()
        slack = CLIENT_SLACK[kind]
        if not client.wait(time.monotonic() + a.duration + slack):
            client.stop()
            raise RunError(f"generator did not finish within --duration + {slack:.0f} s:\n"
                           + indent(client.tail()))
        client_wall = time.monotonic() - client.started
        srv_cpu1 = proc_cpu_seconds(server.p.pid) if server else None
        ticks1 = cpu_ticks(plan.bench_cpus)
        rec["client_rc"] = client.p.returncode
        rec["client_wall_s"] = round(client_wall, 3)
        cpu = {}
        if client.rusage is not None and client_wall > 0:
            # wire: the one process, broker and generator (two lcores) together.
            cpu["process" if server is None else "client"] = round(
                (client.rusage.ru_utime + client.rusage.ru_stime) / client_wall, 3)
        if srv_cpu0 is not None and srv_cpu1 is not None and client_wall > 0:
            cpu["server"] = round((srv_cpu1 - srv_cpu0) / client_wall, 3)
        rec["cpu_cores"] = cpu
        # Noise: CPU time on our two CPUs taken by anything but the server and the generator.
        if client_wall > 0 and ticks0 and set(ticks0) == set(ticks1) and len(cpu) == len(cmds):
            busy = sum(ticks1[c][0] - ticks0[c][0] for c in ticks0) / client_wall
            steal = sum(ticks1[c][1] - ticks0[c][1] for c in ticks0) / client_wall
            rec["foreign_cores"] = round(max(0.0, busy - sum(cpu.values())), 3)
            rec["steal_cores"] = round(steal, 3)
            rec["noisy"] = rec["foreign_cores"] > a.max_foreign
        server_died = server is not None and not server.alive()
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
            raise RunError(f"server exited during the run (rc {server.p.returncode}):\n"
                           + indent(server.tail()))
        rec["ok"] = True
    except RunError as e:
        rec["error"] = str(e)
    except OSError as e:  # could not start it (exec format, permissions, ...)
        rec["error"] = f"cannot run: {e}"
    finally:
        for p in (client, server):
            if p is not None:
                rc = p.stop()
                if p is server:
                    rec["server_rc"] = rc
                    if rec["ok"] and rc not in (0, None):
                        rec["ok"] = False
                        rec["error"] = (f"server exited with {rc} after SIGINT:\n"
                                        + indent(server.tail()))
        if server is not None:
            rec["server_tail"] = server.tail(6)
        if client is not None:
            rec["client_tail"] = client.tail(6)
        if kind in SLUICE_SYSTEMS and os.geteuid() == 0:
            sluice_cleanup(system)
        rec["elapsed_s"] = round(time.monotonic() - t_start, 2)
    return rec


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
    else:
        errs = [r.get("error", "") for r in runs]
        s["error"] = errs[0].splitlines()[0] if errs and errs[0] else "no run"
    cpus = [r["cpu_cores"] for r in ok if r.get("cpu_cores")]
    for role in ("server", "client", "process"):
        v = [c[role] for c in cpus if role in c]
        if v:
            s[f"cpu_{role}"] = round(statistics.median(v), 3)
    return s


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
    if s.get("noisy"):
        txt += "*"
    if s["ok"] < s["runs"]:
        txt += f" [{s['runs'] - s['ok']} failed]"
    return txt


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
            mets.append({True: "met", False: "not met", None: "-"}[r[pre + "target_met"]])
        out.append([r["description"], " / ".join(red) or "not run", " ; ".join(red_lat) or "-",
                    *sl, " / ".join(mets)])
    return out


HEAD = ["workload", "Redis delivered/s", "Redis p50 / p99 us",
        "Sluice memif delivered/s (x Redis)", "memif p50 / p99 us",
        "Sluice wire delivered/s (x Redis)", "wire p50 / p99 us",
        ">= 10x, lower p99 (memif / wire)"]


def render_markdown(rows, systems):
    lines = ["| " + " | ".join(HEAD) + " |", "|" + "|".join(["---"] * len(HEAD)) + "|"]
    for r in table_rows(rows, systems):
        lines.append("| " + " | ".join(c.replace("|", "/") for c in r) + " |")
    return "\n".join(lines)


def render_text(rows, systems):
    body = table_rows(rows, systems)
    widths = [max(len(x[i]) for x in [HEAD] + body) for i in range(len(HEAD))]
    fmt = "  ".join("{:<%d}" % wd for wd in widths)
    lines = [fmt.format(*HEAD), "-" * (sum(widths) + 2 * (len(widths) - 1))]
    lines += [fmt.format(*r) for r in body]
    return "\n".join(lines)


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
    ap = argparse.ArgumentParser(
        description="Pub/sub benchmark: sluice-broker (Sluice TCP over memif, and over the "
                    "in-memory wire in one process) vs redis-server (Linux TCP over loopback); "
                    "see the module docstring and "
                    "bench/PUBSUB_PERF.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build", help="the build directory (default build)")
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per run (default 5)")
    ap.add_argument("--runs", type=int, default=3,
                    help="runs of each system, alternating; the median is reported (default 3)")
    ap.add_argument("--only", default=None,
                    help="comma list of redis, sluice (or memif), wire (default all); redis "
                         "means both generator modes unless --redis-modes says otherwise")
    ap.add_argument("--redis-modes", default="epoll,spin",
                    help="linux-pubsub-load's modes against Redis: epoll (sleep in epoll_wait), "
                         "spin (--spin, busy-poll); default both")
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
    ap.add_argument("--copy-below", type=int, default=0,
                    help="sluice-broker's --copy-below: payloads shorter than this are copied "
                         "into each frame instead of shared by reference (default 0: never)")
    ap.add_argument("--json", default=os.path.join(HERE, "pubsub_results.json"),
                    help="results file (default bench/pubsub_results.json)")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    ap.add_argument("--dry-run", action="store_true", help="print the command lines, run nothing")
    ap.add_argument("--max-foreign", type=float, default=0.15,
                    help="a run during which other processes used more than this many cores "
                         "of the two CPUs is noisy: redone, then kept and flagged * (default "
                         "0.15)")
    ap.add_argument("--retries", type=int, default=2,
                    help="times a noisy run is redone (default 2)")
    ap.add_argument("--keep-logs", action="store_true",
                    help="keep the work dir with every process's stdout/stderr")
    a = ap.parse_args(argv)
    if not a.duration > 0 or a.runs < 1 or a.retries < 0 or not 1 <= a.window <= 65536 \
            or not 0 <= a.lag <= 65536:
        ap.error("--duration and --runs must be positive, --retries >= 0, --window 1..65536, "
                 "--lag 0..65536")
    a.subs = int_list(a.subs, "--subs", 1, 100000, ap)
    a.sizes = int_list(a.sizes, "--sizes", 16, 1 << 20, ap)
    if not os.path.isabs(a.build):
        a.build = os.path.abspath(a.build if os.path.isdir(a.build)
                                  else os.path.join(ROOT, a.build))
    only = set(x.strip() for x in (a.only or "redis,sluice,wire").split(",") if x.strip())
    if not only or only - {"redis", "sluice", "memif", "wire"}:
        ap.error(f"--only: redis, sluice (memif), wire (got {a.only})")
    if "memif" in only:
        only = (only - {"memif"}) | {"sluice"}
    modes = set(x.strip() for x in a.redis_modes.split(",") if x.strip())
    if not modes or modes - {"epoll", "spin"}:
        ap.error("--redis-modes: epoll, spin")
    a.systems = [s for s in ALL_SYSTEMS
                 if (s == "redis" and "redis" in only and "epoll" in modes)
                 or (s == "redis-spin" and "redis" in only and "spin" in modes)
                 or (s in SLUICE_SYSTEMS and s in only)]
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
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        log("need 2 CPUs: the generator on the first, the server on the second")
        return 2
    plan = Plan(a, cpus)
    wls = workloads(a)
    if a.dry_run:
        print(f"# CPUs: generator {plan.client_cpu}, server {plan.server_cpu}; "
              f"{a.runs} run(s) of {fmt_secs(a.duration)} s each, alternating")
        for w in wls:
            for s in a.systems:
                for role, cmd in plan.commands(s, w).items():
                    print(f"# {w['name']} {s} {role}")
                    print(shlex.join(cmd))
        return 0
    workdir = tempfile.mkdtemp(prefix="sluice-pubsub-bench-")
    try:
        return run_all(a, plan, wls, cpus, workdir)
    finally:
        Proc.stop_all()
        if a.keep_logs:
            log(f"kept {workdir}")
        else:
            subprocess.run(["rm", "-rf", "--", workdir], timeout=30)


def run_all(a, plan, wls, cpus, workdir):
    interrupted = [False]

    def on_signal(signum, frame):
        interrupted[0] = True
        raise KeyboardInterrupt

    old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM,
                                                           signal.SIGHUP)}
    os.sched_setaffinity(0, {plan.client_cpu})  # the runner sleeps; keep it off the server CPU
    results = {w["name"]: {s: [] for s in a.systems} for w in wls}
    start = time.monotonic()
    rc = 0
    try:
        total = len(wls) * len(a.systems) * a.runs
        n = 0
        for w in wls:
            for run in range(a.runs):
                for s in a.systems:
                    n += 1
                    log(f"[{n}/{total}] {w['name']} {s} run {run + 1}/{a.runs}")
                    for attempt in range(a.retries + 1):
                        if attempt:
                            time.sleep(1)
                        rec = run_once(plan, s, w, run, workdir)
                        rec["attempt"] = attempt
                        if rec["ok"]:
                            cpu = rec.get("cpu_cores", {})
                            who = (f"process {cpu.get('process', '-')}" if s == "wire" else
                                   f"server {cpu.get('server', '-')}, "
                                   f"generator {cpu.get('client', '-')}")
                            log(f"    {rec['line']}   (cpu: {who}, others "
                                f"{rec.get('foreign_cores', '?')} cores)")
                        else:
                            log("    FAILED: " + rec["error"].replace("\n", "\n    "))
                        if not (rec["ok"] and rec.get("noisy")):
                            break
                        log(f"    noisy: other processes used {rec['foreign_cores']} cores of "
                            f"CPUs {sorted(plan.bench_cpus)}"
                            + ("; again" if attempt < a.retries else "; kept, flagged *"))
                    results[w["name"]][s].append(rec)
    except KeyboardInterrupt:
        interrupted[0] = True
        rc = 130
        log("interrupted: stopping everything")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        Proc.stop_all()
        if os.geteuid() == 0:
            for s in SLUICE_SYSTEMS:
                if s in a.systems:
                    sluice_cleanup(s)
        os.sched_setaffinity(0, set(cpus))
        for sig, h in old.items():
            signal.signal(sig, h)

    rows = comparisons(results, wls, a.systems)
    meta = {
        "tool": "bench/run_pubsub_bench.py",
        "argv": sys.argv,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "hostname": platform.node(), "kernel": platform.release(), "git": git_revision(),
        "dpdk": dpdk_version(), "redis": redis_version(a.redis_server),
        "cpu_model": cpu_model(), "online_cpus": len(cpus),
        "client_cpu": plan.client_cpu, "server_cpu": plan.server_cpu,
        "duration_s": a.duration, "runs": a.runs, "systems": a.systems,
        "window": a.window, "lag": a.lag or a.window,
        "value": "delivered_per_s: deliveries to subscribers within the window, per second",
        "ratio": "median Sluice delivered/s / median of the better Redis mode (epoll or spin): "
                 "ratio for sluice (memif), wire_ratio for wire (one process, pmd::Wire)",
        "p99": "median over the runs of each run's p99 publish-to-delivery latency; Sluice's "
               "is compared with the lower of the Redis modes'",
        "cpu_cores": "CPU time / wall time over the generator's lifetime, per process (wire: "
                     "'process', broker and generator together)",
        "foreign_cores": "busy time of the two CPUs (/proc/stat) minus server and generator, "
                         "per second; > max_foreign: noisy (redone, then kept, flagged *)",
        "max_foreign": a.max_foreign, "retries": a.retries,
        "interrupted": interrupted[0], "elapsed_s": round(time.monotonic() - start, 1),
    }
    print(render_markdown(rows, a.systems) if a.markdown else render_text(rows, a.systems))
    doc = {"meta": meta, "comparisons": rows,
           "runs": [r for w in wls for s in a.systems for r in results[w["name"]][s]]}
    if interrupted[0]:
        log(f"interrupted: {a.json} left as it was")
    elif any(results[w["name"]][s] for w in wls for s in a.systems):
        with open(a.json, "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
        log(f"wrote {a.json}")
    if rc == 0 and any(not r["ok"] for r in doc["runs"]):
        rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
