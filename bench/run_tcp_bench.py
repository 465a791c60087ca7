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

Bounded and clean (bench/bench_runner.py, shared with bench/run_pubsub_bench.py): every
process runs in its own session with a deadline (server ready: 10 s Linux, 60 s Sluice;
client: --duration + 30 s Linux, + 60 s Sluice) and is stopped with SIGINT, then SIGKILL
after 10 s; /run/sluice-bench-memif.sock and /var/run/dpdk/{slbs,slbc,slwb} are
removed before and after each run, also on failure and Ctrl-C. A missing or failing Sluice
binary is recorded as a failed run (with the reason and its log's tail) and the runner goes
on. net.ipv4.tcp_tw_reuse: the Linux cps client closes first, so its ports sit in TIME_WAIT;
with tw_reuse = 0 the 28k ephemeral ports run out within seconds on loopback, so the runner
then sets it to 1 for the Linux runs and restores it (Debian's default, 2, already allows
reuse on loopback and is left alone). EADDRNOTAVAIL seen by the client is counted in the JSON.

Exit status: 0 if every run worked, 1 if some failed, 2 on bad usage, 130 if interrupted.
"""

import os
import re
import shlex
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

# Process handling, CPU accounting, the run loop, tables and results (shared with the pub/sub
# benchmark); EAL runtime-dir cleanup (the UDP benchmark's).
from bench_runner import (MET, Matrix, PlanBase, Run, RunError, add_common_tail,  # noqa: E402
                          bench_plan, cell_flags, check_built, cleanup_prefix, comma_set, dry_run,
                          fmt_secs, in_workdir, indent, log, new_parser, pick_systems,
                          render_markdown, render_text, resolve_build, summary_tail, unlink_socket)

MEMIF_SOCK = "/run/sluice-bench-memif.sock"
PREFIXES = {"server": "slbs", "client": "slbc", "wire": "slwb"}
SERVER_IP, CLIENT_IP, ECHO_PORT = "198.18.0.2", "198.18.0.1", 7
MSG = 64
TW_REUSE = "/proc/sys/net/ipv4/tcp_tw_reuse"
ALL_SYSTEMS = ("linux", "linux-spin", "memif", "wire")
SLUICE_SYSTEMS = ("memif", "wire")
LINUX_READY_TIMEOUT, SLUICE_READY_TIMEOUT = 10.0, 60.0
LINUX_CLIENT_SLACK, SLUICE_CLIENT_SLACK = 30.0, 60.0

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


# ---------------------------------------------------------------------------------------------
# Command lines


class Plan(PlanBase):
    def __init__(self, a, cpus):
        super().__init__(a, cpus)
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
        # --linger: the client's port stays open until the runner has stopped the server
        # (Run.run_client), so neither memif side closes under a polling peer.
        client = [self.echo_bin, "--port", dev.format("client"), "--ip", f"{CLIENT_IP}/24",
                  "--connect", f"{SERVER_IP}:{ECHO_PORT}"] + self.client_args(w) + \
            ["--quiet", "--linger", "30", "--", "-l", str(self.client_cpu), "--file-prefix",
             PREFIXES["client"]]
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


def sluice_cleanup():
    unlink_socket(MEMIF_SOCK)
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
    rec = {"system": system, "workload": w["name"], "run": run_index, "ok": False}
    sluice = system in SLUICE_SYSTEMS
    cmds = plan.commands(system, w)
    rec["commands"] = {k: shlex.join(v) for k, v in cmds.items()}
    run = Run(plan, rec, workdir, f"{w['name']}-{system}-{run_index}")

    def body():
        nonlocal cmds
        check_built(cmds)
        if sluice and os.geteuid() != 0:
            raise RunError("Sluice runs need root (DPDK)")
        if sluice:
            sluice_cleanup()
        ready_timeout = SLUICE_READY_TIMEOUT if sluice else LINUX_READY_TIMEOUT
        slack = SLUICE_CLIENT_SLACK if sluice else LINUX_CLIENT_SLACK
        if "server" in cmds:
            server = run.start_server(f"{system} server", cmds["server"])
            ready = server.wait_for(r"ready", time.monotonic() + ready_timeout)
            rec["server_ready_s"] = round(time.monotonic() - server.started, 3)
            if system.startswith("linux"):
                m = re.search(r"port=(\d+)", ready)
                if not m:
                    raise RunError(f"no port= in the server's ready line: {ready}")
                cmds = plan.commands(system, w, m.group(1))
                rec["commands"]["client"] = shlex.join(cmds["client"])
        client = run.run_client(f"{system} client", cmds["client"], "client", slack,
                                linger=r"lingering" if system == "memif" else None)
        err = client.stderr()
        m = re.search(r"eaddrnotavail=(\d+)", err)
        if m:
            rec["eaddrnotavail"] = int(m.group(1))
        server_died = run.server_died()
        if client.p.returncode != 0:
            raise RunError(f"client exited with {client.p.returncode}:\n" + indent(client.tail()))
        value, parsed = parse_client(client.stdout(), w)
        if parsed["count"] != 1:
            rec["warning"] = f"{parsed['count']} client lines; the last one taken"
        rec.update(parsed)
        rec["value"] = value
        if server_died:
            raise run.server_died_error()

    return run.execute(body, sluice_cleanup if sluice else None)


# ---------------------------------------------------------------------------------------------
# Summary and tables


def summarize(runs):
    vals = [r["value"] for r in runs if r.get("ok")]
    s = {"runs": len(runs), "ok": len(vals)}
    if vals:
        s.update(median=statistics.median(vals), min=min(vals), max=max(vals))
        s["noisy"] = sum(1 for r in runs if r.get("ok") and r.get("noisy"))
    return summary_tail(s, runs, [r for r in runs if r.get("ok")], ("server", "client"))


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
    return cell_flags(s, txt)


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
        met = MET[r["target_met"]]
        out.append([f"{r['description']} [{r['unit']}]", " / ".join(lin) or "not run",
                    *sl, f"{r['target']}: {met}"])
    return out


HEAD = ["workload", "Linux (epoll / spin)", "Sluice memif (x Linux)", "Sluice wire (x Linux)",
        "target"]


# ---------------------------------------------------------------------------------------------
# Main


def parse_args(argv):
    ap = new_parser(
        "TCP benchmark: Sluice (memif, in-memory wire) vs Linux TCP over loopback (see the "
        "module docstring and bench/TCP_PERF.md).",
        "comma list of linux, memif, wire (default: all); linux means both Linux modes unless "
        "--linux-modes says otherwise",
        "--linux-modes",
        "Linux modes: epoll (sleep in epoll_wait), spin (busy-poll with --spin); default both")
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
    add_common_tail(ap, "tcp_results.json")
    a = ap.parse_args(argv)
    if not a.duration > 0 or a.runs < 1 or a.cps_conns < 1 or a.bulk_size < 1 \
            or a.retries < 0 or not 0 <= a.linux_cps_sources <= 250:
        ap.error("--duration, --runs, --cps-conns, --bulk-size must be positive, --retries >= 0, "
                 "--linux-cps-sources 0..250")
    resolve_build(a)
    only = comma_set(a.only or "linux,memif,wire")
    bad = only - {"linux", "memif", "wire"}
    if bad or not only:
        ap.error(f"--only: linux, memif, wire (got {a.only})")
    modes = comma_set(a.linux_modes)
    if not modes or modes - {"epoll", "spin"}:
        ap.error("--linux-modes: epoll, spin")
    a.systems = pick_systems(ALL_SYSTEMS, only, modes, "linux", SLUICE_SYSTEMS)
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
    plan = bench_plan(Plan, a, "client on the first, server on the second")
    if plan is None:
        return 2
    wls = [w for w in workloads(a) if w["name"] in a.workload_names]

    def systems_of(w):  # a workload with an anchor runs only Sluice
        return [s for s in a.systems if not (w.get("anchor") and s.startswith("linux"))]

    if a.dry_run:
        return dry_run(a, plan, wls, "client", systems_of)
    return in_workdir(a, "sluice-tcp-bench-",
                      lambda workdir: run_all(a, plan, wls, workdir, systems_of))


def run_all(a, plan, wls, workdir, systems_of):
    tw0 = tw_reuse_get()
    tw_changed = False

    def prepare():
        nonlocal tw_changed
        if any(s.startswith("linux") for s in a.systems) and \
                any(w["kind"] == "cps" for w in wls) and tw0 == 0:
            if tw_reuse_set(1):
                tw_changed = True
                log("net.ipv4.tcp_tw_reuse 0 -> 1 for the run (restored at the end)")
            else:
                log("warning: tcp_tw_reuse is 0: the Linux cps client may run out of ports")

    def cleanup():
        if any(s in SLUICE_SYSTEMS for s in a.systems) and os.geteuid() == 0:
            sluice_cleanup()
        if tw_changed:
            tw_reuse_set(tw0)

    def cpu_note(system, cpu):
        return f"server {cpu.get('server', '-')}, client {cpu.get('client', '-')}"

    m = Matrix(a, plan, wls, workdir).run(run_once, systems_of, cpu_note, prepare, cleanup)
    rows = comparisons(m.results, wls, a.systems)
    meta = m.meta("bench/run_tcp_bench.py")
    meta.update({
        "tcp_tw_reuse": tw0, "tcp_tw_reuse_changed": tw_changed,
        "linux_cps_sources": a.linux_cps_sources,
        "ratio": "median Sluice / median of the better Linux mode (epoll or spin)",
        "cpu_cores": "CPU time / wall time over the client's lifetime, per process",
        "foreign_cores": "busy time of the two CPUs (/proc/stat) minus server and client, "
                         "per second; > max_foreign: noisy (redone, then kept, flagged *)",
    })
    table = render_markdown(HEAD, table_rows(rows, wls)) if a.markdown else \
        render_text(HEAD, table_rows(rows, wls))
    return m.finish(meta, rows, table)


if __name__ == "__main__":
    sys.exit(main())
