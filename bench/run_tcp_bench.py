#!/usr/bin/env python3
"""TCP benchmark: Sluice's TCP against the Linux kernel's, on the same two cores.

    python3 bench/run_tcp_bench.py --only linux --duration 2 --runs 1   # Linux anchor only
    sudo bench/run_tcp_bench.py                    # everything: 5 s runs, 3 of each (~8 min)
    sudo bench/run_tcp_bench.py --markdown         # the same, table as Markdown
    bench/run_tcp_bench.py --dry-run               # print every command line, run nothing

Workloads (64-byte messages unless said otherwise), each run for --duration seconds:
  rr1, rr64, rr1024   request/response: N connections, each with exactly one 64-byte request
                      outstanding (send, wait for the whole 64-byte echo, send the next);
                      transactions per second, counted from the moment all N are established.
  cps                 connections per second: --cps-conns (256) concurrent loops of connect, one
                      64-byte request, its echo, close (the client closes first). The Linux
                      client spreads its connections over --linux-cps-sources (4) source
                      addresses 127.0.0.2.. so that the ephemeral-port search of connect()
                      in a single 4-tuple space full of TIME_WAIT does not cap it at ~14k/s.
  bulk                single-connection goodput to a discard server, Gbit/s; Sluice's
                      client copies each write in (Tcp::send_copy), as write() does.
  bulk-zc             the same for Sluice only, the stream handed to Tcp::send by reference
                      (--zero-copy: mbufs over one read-only buffer); against bulk's Linux
                      figures (Linux has no copy-free send on loopback).

Systems (--only picks some; default all):
  linux        linux-tcp-bench server + client over loopback (127.0.0.1), epoll, sleeping in
               epoll_wait as ordinary servers do ("linux") and busy-polling with --spin
               ("linux-spin", what a poll-mode DPDK worker does with its core). The better of
               the two medians is the anchor the Sluice ratios are computed against.
  memif        sluice-echo server (CPU 1) and sluice-echo client (CPU 0), two processes over
               net_memif (socket /run/sluice-bench-memif.sock), 198.18.0.1 -> 198.18.0.2:7.
  wire         sluice-tcp-wire-bench: client and server stacks in one process on the in-memory
               wire, EAL lcores 0,1.
Server on CPU 1, client on CPU 0 everywhere (linux-tcp-bench --cpu, EAL -l); the runner pins
itself to CPU 0 and mostly sleeps. Every client prints one line that is parsed here:
  client: rr conns=N size=SIZE transactions=T seconds=D tps=X
  client: cps conns=N connections=C seconds=D cps=X
  client: bulk bytes=B seconds=D gbps=X

Runs alternate (for each workload: linux, linux-spin, memif, wire, then again, --runs times);
each run is a fresh server and client. Reported: median (min-max) over the runs that worked;
ratio = median Sluice / median of the better Linux mode. Targets (the issue): rr >= 5x Linux,
cps >= 10x Linux (same cores), bulk >= 20 Gbit/s on the in-memory wire.

The CPU time of the server and client over the client's lifetime (/proc/PID/stat, wait4
rusage) is recorded per run, in cores: poll-mode Sluice keeps both at ~1.0, Linux sleeping in
epoll_wait may use much less (see bench/TCP_PERF.md). Noise: the busy time of the two CPUs
(/proc/stat) minus the server's and the client's CPU time is what other processes took; a run
where that exceeds --max-foreign cores (0.15) is redone up to --retries (2) times, then kept
and flagged '*'.

Bounded and clean: every process runs in its own session with a deadline (server ready: 10 s
Linux, 60 s Sluice; client: --duration + 30 s Linux, + 60 s Sluice) and is stopped with SIGINT,
then SIGKILL after 10 s; /run/sluice-bench-memif.sock and /var/run/dpdk/{slbs,slbc,slwb} are
removed before and after each run, also on failure and Ctrl-C. A missing or failing Sluice
binary is recorded as a failed run (with the reason and its log's tail) and the runner goes
on. net.ipv4.tcp_tw_reuse: the Linux cps client closes first, so its ports sit in TIME_WAIT;
with tw_reuse = 0 the 28k ephemeral ports run out within seconds on loopback, so the runner
then sets it to 1 for the Linux runs and restores it (Debian's default, 2, already allows
reuse on loopback and is left alone). EADDRNOTAVAIL seen by the client is counted in the JSON.

Exit status: 0 if every run worked, 1 if some failed, 2 on bad usage, 130 if interrupted.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

# Shared with the UDP benchmark: EAL runtime-dir cleanup and machine facts.
from run_bench import (cleanup_prefix, cpu_model, dpdk_version, git_revision,  # noqa: E402
                       indent, log)

MEMIF_SOCK = "/run/sluice-bench-memif.sock"
PREFIXES = {"server": "slbs", "client": "slbc", "wire": "slwb"}
SERVER_IP, CLIENT_IP, ECHO_PORT = "198.18.0.2", "198.18.0.1", 7
MSG = 64
TW_REUSE = "/proc/sys/net/ipv4/tcp_tw_reuse"
ALL_SYSTEMS = ("linux", "linux-spin", "memif", "wire")
SLUICE_SYSTEMS = ("memif", "wire")
LINUX_READY_TIMEOUT, SLUICE_READY_TIMEOUT = 10.0, 60.0
LINUX_CLIENT_SLACK, SLUICE_CLIENT_SLACK = 30.0, 60.0
STOP_TIMEOUT = 10.0
CLK_TCK = os.sysconf("SC_CLK_TCK")

LINE_RX = re.compile(r"^client: (rr|cps|bulk)((?: [A-Za-z_]+=\S+)+)\s*$", re.M)
FIELDS = {"rr": ("conns", "size", "transactions", "seconds", "tps"),
          "cps": ("conns", "connections", "seconds", "cps"),
          "bulk": ("bytes", "seconds", "gbps")}
UNITS = {"rr": "transactions/s", "cps": "connections/s", "bulk": "Gbit/s"}


def workloads(a):
    return [
        {"name": "rr1", "kind": "rr", "conns": 1, "size": MSG},
        {"name": "rr64", "kind": "rr", "conns": 64, "size": MSG},
        {"name": "rr1024", "kind": "rr", "conns": 1024, "size": MSG},
        {"name": "cps", "kind": "cps", "conns": a.cps_conns, "size": MSG},
        {"name": "bulk", "kind": "bulk", "conns": 1, "size": a.bulk_size},
        # Sluice only: the same stream sent by reference (--zero-copy), against the same
        # Linux anchor (write() copies; the bulk row's Linux runs).
        {"name": "bulk-zc", "kind": "bulk", "conns": 1, "size": a.bulk_size, "zero_copy": True,
         "anchor": "bulk"},
    ]


def describe(w):
    if w["kind"] == "rr":
        return f"rr {w['size']} B, {w['conns']} conn{'s' if w['conns'] > 1 else ''}"
    if w["kind"] == "cps":
        return f"cps {w['size']} B, {w['conns']} concurrent"
    if w.get("zero_copy"):
        return "bulk, 1 conn, Sluice zero-copy send"
    return "bulk, 1 conn"


def fmt_secs(s):
    return f"{s:g}"


# ---------------------------------------------------------------------------------------------
# Command lines


class Plan:
    def __init__(self, a, cpus):
        self.a = a
        self.cpus = set(cpus)
        self.client_cpu, self.server_cpu = cpus[0], cpus[1]
        self.bench_cpus = {self.client_cpu, self.server_cpu}
        self.linux_bin = os.path.join(a.build, "bench", "tcp", "linux-tcp-bench")
        self.echo_bin = os.path.join(a.build, "apps", "echo", "sluice-echo")
        self.wire_bin = os.path.join(a.build, "bench", "sluice-tcp-wire-bench")

    def client_args(self, w):
        """The workload part of a client's command line (same for all three clients)."""
        d = fmt_secs(self.a.duration)
        if w["kind"] == "rr":
            return ["--rr", str(w["size"]), "--conns", str(w["conns"]), "--duration", d]
        if w["kind"] == "cps":
            return ["--cps", "--conns", str(w["conns"]), "--duration", d]
        return ["--bulk", "--duration", d] + (["--zero-copy"] if w.get("zero_copy") else [])

    def linux(self, w, spin, port="PORT"):
        extra = ["--spin"] if spin else []
        # --duration: a bound, should the runner die without stopping it (SIGINT ends it).
        server = [self.linux_bin, "server", "--listen", "127.0.0.1:0",
                  "--cpu", str(self.server_cpu),
                  "--duration", fmt_secs(self.a.duration + LINUX_CLIENT_SLACK + 60)] + \
            (["--discard"] if w["kind"] == "bulk" else [])
        client = [self.linux_bin, "client", "--connect", f"127.0.0.1:{port}"] + \
            self.client_args(w) + (["--size", str(w["size"])] if w["kind"] == "bulk" else []) + \
            (["--sources", f"127.0.0.2,{self.a.linux_cps_sources}"]
             if w["kind"] == "cps" and self.a.linux_cps_sources > 0 else []) + \
            ["--cpu", str(self.client_cpu)]
        return {"server": server + extra, "client": client + extra}

    def memif(self, w):
        dev = "net_memif0,role={},socket=" + MEMIF_SOCK + ",id=0"
        server = [self.echo_bin, "--port", dev.format("server"), "--ip", f"{SERVER_IP}/24"] + \
            (["--discard"] if w["kind"] == "bulk" else []) + \
            ["--quiet", "--", "-l", str(self.server_cpu), "--file-prefix", PREFIXES["server"]]
        client = [self.echo_bin, "--port", dev.format("client"), "--ip", f"{CLIENT_IP}/24",
                  "--connect", f"{SERVER_IP}:{ECHO_PORT}"] + self.client_args(w) + \
            ["--quiet", "--", "-l", str(self.client_cpu), "--file-prefix", PREFIXES["client"]]
        return {"server": server, "client": client}

    def wire(self, w):
        client = [self.wire_bin] + self.client_args(w) + [
            "--", "-l", f"{self.client_cpu},{self.server_cpu}", "--no-huge", "-m", "1024",
            "--no-pci", "--file-prefix", PREFIXES["wire"]]
        return {"client": client}

    def commands(self, system, w, port="PORT"):
        if system == "linux":
            return self.linux(w, False, port)
        if system == "linux-spin":
            return self.linux(w, True, port)
        if system == "memif":
            return self.memif(w)
        return self.wire(w)


# ---------------------------------------------------------------------------------------------
# Processes


def proc_cpu_seconds(pid):
    """utime + stime of the whole process (all threads), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


def cpu_ticks(cpus):
    """{cpu: (busy, steal)} in seconds from /proc/stat (busy: user..softirq, not idle/iowait)."""
    out = {}
    try:
        with open("/proc/stat") as f:
            for ln in f:
                name, *v = ln.split()
                if not name.startswith("cpu") or name == "cpu":
                    continue
                c = int(name[3:])
                if c in cpus:
                    v = [int(x) for x in v]
                    # user nice system idle iowait irq softirq steal
                    out[c] = ((v[0] + v[1] + v[2] + v[5] + v[6]) / CLK_TCK, v[7] / CLK_TCK)
    except (OSError, ValueError, IndexError):
        pass
    return out


class Proc:
    """A benchmark process in its own session; stdout and stderr to files; always stopped."""

    live = []

    def __init__(self, name, argv, workdir, tag, cpus):
        self.name, self.argv, self.cpus = name, argv, cpus
        self.out_path = os.path.join(workdir, f"{tag}.out")
        self.err_path = os.path.join(workdir, f"{tag}.err")
        self.p = None
        self.rusage = None
        self.started = None

    def start(self):
        cpus = self.cpus  # the runner pins itself; children get the whole mask back
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.p = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out,
                                      stderr=err, start_new_session=True,
                                      preexec_fn=lambda: os.sched_setaffinity(0, cpus))
        self.started = time.monotonic()
        Proc.live.append(self)

    def _read(self, path):
        try:
            with open(path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def stdout(self):
        return self._read(self.out_path)

    def stderr(self):
        return self._read(self.err_path)

    def tail(self, n=12):
        text = (self.stdout().rstrip() + "\n" + self.stderr().rstrip()).strip()
        return "\n".join(text.splitlines()[-n:])

    def reap(self, block=False):
        """wait4 (for the rusage); True once the process has exited."""
        if self.p.returncode is not None:
            return True
        try:
            pid, status, ru = os.wait4(self.p.pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            self.p.poll()
            return self.p.returncode is not None
        if pid == 0:
            return False
        self.p.returncode = os.waitstatus_to_exitcode(status)
        self.rusage = ru
        return True

    def alive(self):
        return self.p is not None and not self.reap()

    def wait(self, deadline):
        """True if it exited before the deadline."""
        while not self.reap():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def wait_for(self, pattern, deadline):
        """The first stdout line matching pattern; raises RunError on exit or deadline."""
        rx = re.compile(pattern)
        while True:
            for ln in self.stdout().splitlines():
                if rx.search(ln):
                    return ln
            if not self.alive():
                raise RunError(f"{self.name} exited (rc {self.p.returncode}) before /{pattern}/"
                               + ":\n" + indent(self.tail()))
            if time.monotonic() >= deadline:
                raise RunError(f"{self.name}: no /{pattern}/ within the deadline:\n"
                               + indent(self.tail()))
            time.sleep(0.02)

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGINT, then SIGKILL (the whole session) after timeout. Idempotent; the exit code."""
        if self.p is None:
            return None
        if not self.reap():
            try:
                self.p.send_signal(signal.SIGINT)
            except OSError:
                pass
            if not self.wait(time.monotonic() + timeout):
                log(f"  {self.name}: no exit {timeout:.0f} s after SIGINT, SIGKILL")
                try:
                    os.killpg(self.p.pid, signal.SIGKILL)
                except OSError:
                    self.p.kill()
                self.wait(time.monotonic() + 5)
        if self in Proc.live:
            Proc.live.remove(self)
        return self.p.returncode

    @classmethod
    def stop_all(cls):
        for p in list(reversed(cls.live)):
            p.stop()


class RunError(Exception):
    pass


def sluice_cleanup():
    try:
        os.unlink(MEMIF_SOCK)
    except FileNotFoundError:
        pass
    except OSError as e:
        log(f"  cannot remove {MEMIF_SOCK}: {e}")
    for prefix in PREFIXES.values():
        cleanup_prefix(prefix)


def parse_client(text, w):
    """The `client: ...` line's fields, checked against the workload; raises RunError."""
    found = LINE_RX.findall(text)
    if not found:
        raise RunError("no `client: ...` line in its output")
    kind, rest = found[-1]
    if kind != w["kind"]:
        raise RunError(f"client reported `{kind}`, expected `{w['kind']}`")
    kv = dict(item.split("=", 1) for item in rest.split())
    missing = [f for f in FIELDS[kind] if f not in kv]
    if missing:
        raise RunError(f"client line lacks {', '.join(missing)}: client: {kind}{rest}")
    try:
        vals = {k: float(v) for k, v in kv.items() if k in FIELDS[kind]}
    except ValueError:
        raise RunError(f"client line has a non-number: client: {kind}{rest}")
    if "conns" in vals and int(vals["conns"]) != w["conns"]:
        raise RunError(f"client ran {int(vals['conns'])} connections, asked for {w['conns']}")
    if vals["seconds"] <= 0:
        raise RunError(f"client measured no time: client: {kind}{rest}")
    value = vals[{"rr": "tps", "cps": "cps", "bulk": "gbps"}[kind]]
    return value, {"line": f"client: {kind}{rest}", "fields": vals, "count": len(found)}


# ---------------------------------------------------------------------------------------------
# One run


def run_once(plan, system, w, run_index, workdir):
    a = plan.a
    tag = f"{w['name']}-{system}-{run_index}"
    rec = {"system": system, "workload": w["name"], "run": run_index, "ok": False}
    sluice = system in SLUICE_SYSTEMS
    cmds = plan.commands(system, w)
    rec["commands"] = {k: shlex.join(v) for k, v in cmds.items()}
    server = client = None
    t_start = time.monotonic()
    try:
        for role, argv in cmds.items():
            if not (os.path.isfile(argv[0]) and os.access(argv[0], os.X_OK)):
                raise RunError(f"not built: {os.path.relpath(argv[0], ROOT)}")
        if sluice and os.geteuid() != 0:
            raise RunError("Sluice runs need root (DPDK)")
        if sluice:
            sluice_cleanup()
        ready_timeout = SLUICE_READY_TIMEOUT if sluice else LINUX_READY_TIMEOUT
        slack = SLUICE_CLIENT_SLACK if sluice else LINUX_CLIENT_SLACK
        if "server" in cmds:
            server = Proc(f"{system} server", cmds["server"], workdir, tag + "-server",
                          plan.cpus)
            server.start()
            ready = server.wait_for(r"ready", time.monotonic() + ready_timeout)
            rec["server_ready_s"] = round(time.monotonic() - server.started, 3)
            if system.startswith("linux"):
                m = re.search(r"port=(\d+)", ready)
                if not m:
                    raise RunError(f"no port= in the server's ready line: {ready}")
                cmds = plan.commands(system, w, m.group(1))
                rec["commands"]["client"] = shlex.join(cmds["client"])
        client = Proc(f"{system} client", cmds["client"], workdir, tag + "-client", plan.cpus)
        srv_cpu0 = proc_cpu_seconds(server.p.pid) if server else None
        ticks0 = cpu_ticks(plan.bench_cpus)
        client.start()
        if not client.wait(time.monotonic() + a.duration + slack):
            client.stop()
            raise RunError(f"client did not finish within --duration + {slack:.0f} s:\n"
                           + indent(client.tail()))
        client_wall = time.monotonic() - client.started
        srv_cpu1 = proc_cpu_seconds(server.p.pid) if server else None
        ticks1 = cpu_ticks(plan.bench_cpus)
        rec["client_rc"] = client.p.returncode
        rec["client_wall_s"] = round(client_wall, 3)
        cpu = {}
        if client.rusage is not None and client_wall > 0:
            cpu["client"] = round((client.rusage.ru_utime + client.rusage.ru_stime)
                                  / client_wall, 3)
        if srv_cpu0 is not None and srv_cpu1 is not None and client_wall > 0:
            cpu["server"] = round((srv_cpu1 - srv_cpu0) / client_wall, 3)
        rec["cpu_cores"] = cpu
        # Noise: CPU time spent on our two CPUs by anything but the server and the client
        # (other people's builds on a shared machine; also a little kernel softirq work and
        # this runner's polling).
        if client_wall > 0 and ticks0 and set(ticks0) == set(ticks1) and len(cpu) == len(cmds):
            busy = sum(ticks1[c][0] - ticks0[c][0] for c in ticks0) / client_wall
            steal = sum(ticks1[c][1] - ticks0[c][1] for c in ticks0) / client_wall
            rec["foreign_cores"] = round(max(0.0, busy - sum(cpu.values())), 3)
            rec["steal_cores"] = round(steal, 3)
            rec["noisy"] = rec["foreign_cores"] > a.max_foreign
        err = client.stderr()
        m = re.search(r"eaddrnotavail=(\d+)", err)
        if m:
            rec["eaddrnotavail"] = int(m.group(1))
        server_died = server is not None and not server.alive()
        if client.p.returncode != 0:
            raise RunError(f"client exited with {client.p.returncode}:\n" + indent(client.tail()))
        value, parsed = parse_client(client.stdout(), w)
        if parsed["count"] != 1:
            rec["warning"] = f"{parsed['count']} client lines; the last one taken"
        rec.update(parsed)
        rec["value"] = value
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
        if sluice:
            sluice_cleanup()
        rec["elapsed_s"] = round(time.monotonic() - t_start, 2)
    return rec


# ---------------------------------------------------------------------------------------------
# Summary and tables


def summarize(runs):
    vals = [r["value"] for r in runs if r.get("ok")]
    s = {"runs": len(runs), "ok": len(vals)}
    if vals:
        s.update(median=statistics.median(vals), min=min(vals), max=max(vals))
        s["noisy"] = sum(1 for r in runs if r.get("ok") and r.get("noisy"))
    else:
        errs = [r.get("error", "") for r in runs]
        s["error"] = errs[0].splitlines()[0] if errs and errs[0] else "no run"
    cpus = [r["cpu_cores"] for r in runs if r.get("ok") and r.get("cpu_cores")]
    for role in ("server", "client"):
        v = [c[role] for c in cpus if role in c]
        if v:
            s[f"cpu_{role}"] = round(statistics.median(v), 3)
    return s


def comparisons(results, wls, systems):
    rows = []
    for w in wls:
        per = {s: summarize(results[w["name"]][s]) for s in systems
               if results[w["name"]].get(s)}
        if w.get("anchor") in results:  # Linux runs borrowed from the anchor workload
            for s in ("linux", "linux-spin"):
                if results[w["anchor"]].get(s):
                    per[s] = summarize(results[w["anchor"]][s])
        row = {"workload": w["name"], "description": describe(w), "unit": UNITS[w["kind"]],
               "systems": per}
        linux = [(per[s]["median"], s) for s in ("linux", "linux-spin")
                 if s in per and "median" in per[s]]
        if linux:
            row["linux_best"], row["linux_best_mode"] = max(linux)
        for s in SLUICE_SYSTEMS:
            if s in per and "median" in per[s] and row.get("linux_best"):
                row[f"{s}_ratio"] = per[s]["median"] / row["linux_best"]
        row["target"], row["target_met"] = target(w, row, per)
        rows.append(row)
    return rows


def target(w, row, per):
    """(text, met?) for the issue's target; met is None when it cannot be judged."""
    if w["kind"] == "bulk":
        wire = per.get("wire", {})
        return ">= 20 Gbit/s (wire)", (wire["median"] >= 20.0) if "median" in wire else None
    want = 5.0 if w["kind"] == "rr" else 10.0
    ratios = [row[k] for k in ("memif_ratio", "wire_ratio") if k in row]
    return f">= {want:g}x Linux", (max(ratios) >= want) if ratios else None


def fmt_value(v, kind):
    if v is None:
        return "-"
    return f"{v:.2f}" if kind == "bulk" else f"{v:,.0f}"


def cell(s, kind, with_range=True):
    if s is None:
        return "not run"
    if "median" not in s:
        return "FAILED: " + s.get("error", "?")[:60]
    txt = fmt_value(s["median"], kind)
    if with_range and s["ok"] > 1:
        txt += f" ({fmt_value(s['min'], kind)}-{fmt_value(s['max'], kind)})"
    if s.get("noisy"):
        txt += "*"
    if s["ok"] < s["runs"]:
        txt += f" [{s['runs'] - s['ok']} failed]"
    return txt


def table_rows(rows, wls):
    kinds = {w["name"]: w["kind"] for w in wls}
    out = []
    for r in rows:
        kind = kinds[r["workload"]]
        per = r["systems"]
        lin = []
        for s in ("linux", "linux-spin"):
            if s in per:
                lin.append(cell(per[s], kind, False) + (" (epoll)" if s == "linux" else " (spin)"))
        sl = []
        for s in SLUICE_SYSTEMS:
            c = cell(per.get(s), kind, False)
            if f"{s}_ratio" in r:
                c += f" = {r[f'{s}_ratio']:.2f}x"
            sl.append(c)
        met = {True: "met", False: "not met", None: "-"}[r["target_met"]]
        out.append([f"{r['description']} [{r['unit']}]", " / ".join(lin) or "not run",
                    *sl, f"{r['target']}: {met}"])
    return out


HEAD = ["workload", "Linux (epoll / spin)", "Sluice memif (x Linux)", "Sluice wire (x Linux)",
        "target"]


def render_markdown(rows, wls):
    lines = ["| " + " | ".join(HEAD) + " |", "|" + "|".join(["---"] * len(HEAD)) + "|"]
    for r in table_rows(rows, wls):
        lines.append("| " + " | ".join(c.replace("|", "/") for c in r) + " |")
    return "\n".join(lines)


def render_text(rows, wls):
    body = table_rows(rows, wls)
    widths = [max(len(x[i]) for x in [HEAD] + body) for i in range(len(HEAD))]
    fmt = "  ".join("{:<%d}" % wd for wd in widths)
    lines = [fmt.format(*HEAD), "-" * (sum(widths) + 2 * (len(widths) - 1))]
    lines += [fmt.format(*r) for r in body]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Main


def parse_args(argv):
    ap = argparse.ArgumentParser(
        description="TCP benchmark: Sluice (memif, in-memory wire) vs Linux TCP over loopback "
                    "(see the module docstring and bench/TCP_PERF.md).",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build", help="the build directory (default build)")
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per run (default 5)")
    ap.add_argument("--runs", type=int, default=3,
                    help="runs of each system, alternating; the median is reported (default 3)")
    ap.add_argument("--only", default=None,
                    help="comma list of linux, memif, wire (default: all); linux means both "
                         "Linux modes unless --linux-modes says otherwise")
    ap.add_argument("--linux-modes", default="epoll,spin",
                    help="Linux modes: epoll (sleep in epoll_wait), spin (busy-poll with "
                         "--spin); default both")
    ap.add_argument("--workloads", default="rr1,rr64,rr1024,cps,bulk,bulk-zc",
                    help="comma list of rr1, rr64, rr1024, cps, bulk, bulk-zc (default all; "
                         "bulk-zc borrows bulk's Linux runs)")
    ap.add_argument("--cps-conns", type=int, default=256,
                    help="concurrent connect/request/close loops of the cps workload (default 64)")
    ap.add_argument("--linux-cps-sources", type=int, default=4,
                    help="source addresses (127.0.0.2, ...) of the Linux cps client; 0: one, "
                         "the kernel's choice, which caps Linux at ~14k connections/s by the "
                         "ephemeral-port search (default 4; see bench/TCP_PERF.md)")
    ap.add_argument("--bulk-size", type=int, default=65536,
                    help="linux-tcp-bench's write size for bulk (default 65536)")
    ap.add_argument("--json", default=os.path.join(HERE, "tcp_results.json"),
                    help="results file (default bench/tcp_results.json)")
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
    if not a.duration > 0 or a.runs < 1 or a.cps_conns < 1 or a.bulk_size < 1 \
            or a.retries < 0 or not 0 <= a.linux_cps_sources <= 250:
        ap.error("--duration, --runs, --cps-conns, --bulk-size must be positive, --retries >= 0, "
                 "--linux-cps-sources 0..250")
    # Relative to the current directory if it is there, else to the repository.
    if not os.path.isabs(a.build):
        a.build = os.path.abspath(a.build if os.path.isdir(a.build)
                                  else os.path.join(ROOT, a.build))
    only = set(x.strip() for x in (a.only or "linux,memif,wire").split(",") if x.strip())
    bad = only - {"linux", "memif", "wire"}
    if bad or not only:
        ap.error(f"--only: linux, memif, wire (got {a.only})")
    modes = set(x.strip() for x in a.linux_modes.split(",") if x.strip())
    if not modes or modes - {"epoll", "spin"}:
        ap.error("--linux-modes: epoll, spin")
    a.systems = [s for s in ALL_SYSTEMS
                 if (s == "linux" and "linux" in only and "epoll" in modes)
                 or (s == "linux-spin" and "linux" in only and "spin" in modes)
                 or (s in only and s in SLUICE_SYSTEMS)]
    names = [x.strip() for x in a.workloads.split(",") if x.strip()]
    known = [w["name"] for w in workloads(a)]
    if not names or set(names) - set(known):
        ap.error(f"--workloads: {', '.join(known)}")
    a.workload_names = names
    return a


def tw_reuse_get():
    try:
        with open(TW_REUSE) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def tw_reuse_set(v):
    try:
        with open(TW_REUSE, "w") as f:
            f.write(f"{v}\n")
        return True
    except OSError as e:
        log(f"cannot set {TW_REUSE} to {v}: {e}")
        return False


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        log("need 2 CPUs: client on the first, server on the second")
        return 2
    plan = Plan(a, cpus)
    wls = [w for w in workloads(a) if w["name"] in a.workload_names]
    if a.dry_run:
        print(f"# CPUs: client {plan.client_cpu}, server {plan.server_cpu}; "
              f"{a.runs} run(s) of {fmt_secs(a.duration)} s each, alternating")
        for w in wls:
            for s in a.systems:
                if w.get("anchor") and s.startswith("linux"):
                    continue
                for role, cmd in plan.commands(s, w).items():
                    print(f"# {w['name']} {s} {role}")
                    print(shlex.join(cmd))
        return 0
    workdir = tempfile.mkdtemp(prefix="sluice-tcp-bench-")
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
    tw0 = tw_reuse_get()
    tw_changed = False
    results = {w["name"]: {s: [] for s in a.systems} for w in wls}
    start = time.monotonic()
    rc = 0
    try:
        if any(s.startswith("linux") for s in a.systems) and \
                any(w["kind"] == "cps" for w in wls) and tw0 == 0:
            if tw_reuse_set(1):
                tw_changed = True
                log("net.ipv4.tcp_tw_reuse 0 -> 1 for the run (restored at the end)")
            else:
                log("warning: tcp_tw_reuse is 0: the Linux cps client may run out of ports")
        def systems_of(w):  # a workload with an anchor runs only Sluice
            return [s for s in a.systems if not (w.get("anchor") and s.startswith("linux"))]

        total = sum(len(systems_of(w)) for w in wls) * a.runs
        n = 0
        for w in wls:
            for run in range(a.runs):
                for s in systems_of(w):
                    n += 1
                    log(f"[{n}/{total}] {w['name']} {s} run {run + 1}/{a.runs}")
                    for attempt in range(a.retries + 1):
                        if attempt:
                            time.sleep(1)
                        rec = run_once(plan, s, w, run, workdir)
                        rec["attempt"] = attempt
                        if rec["ok"]:
                            cpu = rec.get("cpu_cores", {})
                            log(f"    {rec['line']}   (cpu: server {cpu.get('server', '-')}, "
                                f"client {cpu.get('client', '-')}, others "
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
        if any(s in SLUICE_SYSTEMS for s in a.systems) and os.geteuid() == 0:
            sluice_cleanup()
        if tw_changed:
            tw_reuse_set(tw0)
        os.sched_setaffinity(0, set(cpus))
        for sig, h in old.items():
            signal.signal(sig, h)

    rows = comparisons(results, wls, a.systems)
    meta = {
        "tool": "bench/run_tcp_bench.py",
        "argv": sys.argv,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "hostname": platform.node(), "kernel": platform.release(), "git": git_revision(),
        "dpdk": dpdk_version(), "cpu_model": cpu_model(), "online_cpus": len(cpus),
        "client_cpu": plan.client_cpu, "server_cpu": plan.server_cpu,
        "duration_s": a.duration, "runs": a.runs, "systems": a.systems,
        "tcp_tw_reuse": tw0, "tcp_tw_reuse_changed": tw_changed,
        "linux_cps_sources": a.linux_cps_sources,
        "ratio": "median Sluice / median of the better Linux mode (epoll or spin)",
        "cpu_cores": "CPU time / wall time over the client's lifetime, per process",
        "foreign_cores": "busy time of the two CPUs (/proc/stat) minus server and client, "
                         "per second; > max_foreign: noisy (redone, then kept, flagged *)",
        "max_foreign": a.max_foreign, "retries": a.retries,
        "interrupted": interrupted[0], "elapsed_s": round(time.monotonic() - start, 1),
    }
    print(render_markdown(rows, wls) if a.markdown else render_text(rows, wls))
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
