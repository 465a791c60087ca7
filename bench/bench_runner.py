"""What the two-core benchmark runners share (bench/run_tcp_bench.py, bench/run_pubsub_bench.py).

A runner starts a server (on the second CPU) and a client (on the first) for every run, each in
its own session with a deadline, and always stops them (SIGINT, then SIGKILL); it records the
CPU time of both over the client's lifetime and the busy time of the two CPUs, so that a run
during which other processes took more than --max-foreign cores is redone up to --retries
times, then kept and flagged '*'. Runs alternate between the systems; the runner pins itself
to the client's CPU and mostly sleeps. Here: the processes (Proc, Run), CPU accounting, the
loop over workloads, runs and systems with its signal handling and cleanup, the options both
take, the table renderers and the JSON results file. Each runner keeps its workloads, command
lines, output parsing, summaries and tables' contents.
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
from run_bench import (cleanup_prefix, cpu_model, dpdk_version, git_revision,  # noqa: E402,F401
                       indent, log)

STOP_TIMEOUT = 10.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


def fmt_secs(s):
    return f"{s:g}"


def comma_set(text):
    """The non-empty items of a comma list, as a set."""
    return set(x.strip() for x in text.split(",") if x.strip())


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


def unlink_socket(path):
    """Removes a memif socket left behind (a missing one is fine)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        log(f"  cannot remove {path}: {e}")


def check_built(cmds, not_found_outside=False):
    """RunError for the first command whose program (after a `taskset -c CPUS`) is not an
    executable file: `not built: PATH` (relative to the repository), with not_found_outside
    `not found: PATH` for a program outside the repository."""
    for argv in cmds.values():
        exe = argv[3] if argv[0] == "taskset" else argv[0]
        if not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
            if not_found_outside and not exe.startswith(ROOT):
                raise RunError(f"not found: {exe}")
            raise RunError(f"not built: {os.path.relpath(exe, ROOT)}")


# ---------------------------------------------------------------------------------------------
# One run


class Run:
    """One run of a server (optional) and a client: its record (rec), its processes (stopped
    and summed up by execute(), whatever happens) and its CPU accounting."""

    def __init__(self, plan, rec, workdir, tag):
        self.plan, self.rec, self.workdir, self.tag = plan, rec, workdir, tag
        self.server = self.client = None
        self.server_stopped = False  # stopped by run_client (linger), not died

    def start_server(self, name, argv, tag_suffix="-server"):
        self.server = Proc(name, argv, self.workdir, self.tag + tag_suffix, self.plan.cpus)
        self.server.start()
        return self.server

    def run_client(self, name, argv, what, slack, solo_key="client", linger=None):
        """Runs the client to its end (--duration + slack at most) and records its exit code,
        wall time, the CPU time of the client and the server over it (in cores; solo_key names
        the client's figure when there is no server) and the foreign load of the two CPUs.

        linger: a pattern the client prints once its workers have stopped, its port still open
        (the engine's --linger). Then the server is stopped first, and the client after it: a
        net_memif side must not close while its peer's workers still poll (README, known
        issue), and neither side polls at either close this way."""
        plan, rec, server = self.plan, self.rec, self.server
        self.client = client = Proc(name, argv, self.workdir, self.tag + "-client", plan.cpus)
        srv_cpu0 = proc_cpu_seconds(server.p.pid) if server else None
        ticks0 = cpu_ticks(plan.bench_cpus)
        client.start()
        deadline = time.monotonic() + plan.a.duration + slack
        cli_cpu = None
        if linger:
            try:
                client.wait_for(linger, deadline)
            except RunError:
                if client.alive():
                    client.stop()
                    raise RunError(f"{what} did not finish within --duration + {slack:.0f} s:\n"
                                   + indent(client.tail()))
                raise RunError(f"{what} exited with {client.p.returncode}:\n"
                               + indent(client.tail()))
            cli_cpu = proc_cpu_seconds(client.p.pid)
        elif not client.wait(deadline):
            client.stop()
            raise RunError(f"{what} did not finish within --duration + {slack:.0f} s:\n"
                           + indent(client.tail()))
        client_wall = time.monotonic() - client.started
        srv_cpu1 = proc_cpu_seconds(server.p.pid) if server else None
        ticks1 = cpu_ticks(plan.bench_cpus)
        if linger:
            if server is not None:
                if not server.alive():
                    raise self.server_died_error()
                rc = server.stop()
                self.server_stopped = True
                if rc != 0:
                    raise RunError(f"server exited with {rc} after SIGINT:\n"
                                   + indent(server.tail()))
            client.stop()
        rec["client_rc"] = client.p.returncode
        rec["client_wall_s"] = round(client_wall, 3)
        cpu = {}
        if cli_cpu is not None and client_wall > 0:
            cpu[solo_key if server is None else "client"] = round(cli_cpu / client_wall, 3)
        elif client.rusage is not None and client_wall > 0:
            cpu[solo_key if server is None else "client"] = round(
                (client.rusage.ru_utime + client.rusage.ru_stime) / client_wall, 3)
        if srv_cpu0 is not None and srv_cpu1 is not None and client_wall > 0:
            cpu["server"] = round((srv_cpu1 - srv_cpu0) / client_wall, 3)
        rec["cpu_cores"] = cpu
        # Noise: CPU time spent on our two CPUs by anything but the server and the client
        # (other people's builds on a shared machine; also a little kernel softirq work and
        # this runner's polling).
        procs = 1 if server is None else 2
        if client_wall > 0 and ticks0 and set(ticks0) == set(ticks1) and len(cpu) == procs:
            busy = sum(ticks1[c][0] - ticks0[c][0] for c in ticks0) / client_wall
            steal = sum(ticks1[c][1] - ticks0[c][1] for c in ticks0) / client_wall
            rec["foreign_cores"] = round(max(0.0, busy - sum(cpu.values())), 3)
            rec["steal_cores"] = round(steal, 3)
            rec["noisy"] = rec["foreign_cores"] > plan.a.max_foreign
        return client

    def server_died(self):
        return self.server is not None and not self.server_stopped and not self.server.alive()

    def server_died_error(self):
        return RunError(f"server exited during the run (rc {self.server.p.returncode}):\n"
                        + indent(self.server.tail()))

    def execute(self, body, cleanup=None):
        """body() does the run (raising RunError when it fails); then the processes are
        stopped, the server's exit code checked, the tails kept and cleanup() run. The record."""
        rec = self.rec
        t_start = time.monotonic()
        try:
            body()
            rec["ok"] = True
        except RunError as e:
            rec["error"] = str(e)
        except OSError as e:  # could not start it (exec format, permissions, ...)
            rec["error"] = f"cannot run: {e}"
        finally:
            server, client = self.server, self.client
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
            if cleanup is not None:
                cleanup()
            rec["elapsed_s"] = round(time.monotonic() - t_start, 2)
        return rec


# ---------------------------------------------------------------------------------------------
# All runs


class PlanBase:
    """What a runner's Plan (its command lines) starts with: the options (a), the CPUs (a set),
    the client's (the first), the server's (the second) and bench_cpus (those two)."""

    def __init__(self, a, cpus):
        self.a = a
        self.cpus = set(cpus)
        self.client_cpu, self.server_cpu = cpus[0], cpus[1]
        self.bench_cpus = {self.client_cpu, self.server_cpu}


def bench_plan(plan_class, a, which_where):
    """plan_class(a, cpus) over the CPUs this runner may use (sorted: the client on the first,
    the server on the second), or None (logged) when there are fewer than two."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        log(f"need 2 CPUs: {which_where}")
        return None
    return plan_class(a, cpus)


def dry_run(a, plan, wls, who, systems_of):
    print(f"# CPUs: {who} {plan.client_cpu}, server {plan.server_cpu}; "
          f"{a.runs} run(s) of {fmt_secs(a.duration)} s each, alternating")
    for w in wls:
        for s in systems_of(w):
            for role, cmd in plan.commands(s, w).items():
                print(f"# {w['name']} {s} {role}")
                print(shlex.join(cmd))
    return 0


def in_workdir(a, prefix, fn):
    """fn(workdir) in a fresh temporary directory, removed afterwards (unless --keep-logs);
    every process still running is stopped either way."""
    workdir = tempfile.mkdtemp(prefix=prefix)
    try:
        return fn(workdir)
    finally:
        Proc.stop_all()
        if a.keep_logs:
            log(f"kept {workdir}")
        else:
            subprocess.run(["rm", "-rf", "--", workdir], timeout=30)


class Matrix:
    """Every workload, --runs times, every system of it (systems_of(w)), alternating; a noisy
    run redone up to --retries times. run_once(plan, system, w, run_index, workdir) gives each
    run's record; cpu_note(system, cpu_cores) says whose CPU time the log shows; prepare() runs
    first (under the signal handlers), cleanup() after everything is stopped, also on Ctrl-C."""

    def __init__(self, a, plan, wls, workdir):
        self.a, self.plan, self.wls, self.workdir = a, plan, wls, workdir
        self.results = {w["name"]: {s: [] for s in a.systems} for w in wls}
        self.interrupted = False
        self.rc = 0
        self.start = None

    def run(self, run_once, systems_of, cpu_note, prepare=None, cleanup=None):
        a, plan, results = self.a, self.plan, self.results

        def on_signal(signum, frame):
            self.interrupted = True
            raise KeyboardInterrupt

        old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM,
                                                               signal.SIGHUP)}
        os.sched_setaffinity(0, {plan.client_cpu})  # the runner sleeps; keep it off the server
        self.start = time.monotonic()
        try:
            if prepare is not None:
                prepare()
            total = sum(len(systems_of(w)) for w in self.wls) * a.runs
            n = 0
            for w in self.wls:
                for run in range(a.runs):
                    for s in systems_of(w):
                        n += 1
                        log(f"[{n}/{total}] {w['name']} {s} run {run + 1}/{a.runs}")
                        results[w["name"]][s].append(self._retried(run_once, s, w, run,
                                                                   cpu_note))
        except KeyboardInterrupt:
            self.interrupted = True
            self.rc = 130
            log("interrupted: stopping everything")
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            Proc.stop_all()
            if cleanup is not None:
                cleanup()
            os.sched_setaffinity(0, set(plan.cpus))
            for sig, h in old.items():
                signal.signal(sig, h)
        return self

    def _retried(self, run_once, s, w, run, cpu_note):
        a = self.a
        for attempt in range(a.retries + 1):
            if attempt:
                time.sleep(1)
            rec = run_once(self.plan, s, w, run, self.workdir)
            rec["attempt"] = attempt
            if rec["ok"]:
                log(f"    {rec['line']}   (cpu: {cpu_note(s, rec.get('cpu_cores', {}))}, "
                    f"others {rec.get('foreign_cores', '?')} cores)")
            else:
                log("    FAILED: " + rec["error"].replace("\n", "\n    "))
            if not (rec["ok"] and rec.get("noisy")):
                break
            log(f"    noisy: other processes used {rec['foreign_cores']} cores of "
                f"CPUs {sorted(self.plan.bench_cpus)}"
                + ("; again" if attempt < a.retries else "; kept, flagged *"))
        return rec

    def meta(self, tool, extra_after_dpdk=None):
        """The results file's meta, first part: the tool, the machine, the run plan."""
        a, plan = self.a, self.plan
        meta = {
            "tool": tool,
            "argv": sys.argv,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "hostname": platform.node(), "kernel": platform.release(), "git": git_revision(),
            "dpdk": dpdk_version(),
        }
        meta.update(extra_after_dpdk or {})
        meta.update({
            "cpu_model": cpu_model(), "online_cpus": len(plan.cpus),
            "client_cpu": plan.client_cpu, "server_cpu": plan.server_cpu,
            "duration_s": a.duration, "runs": a.runs, "systems": a.systems,
        })
        return meta

    def finish(self, meta, rows, table):
        """Completes meta, prints the table, writes the JSON results (unless interrupted);
        the exit status (1 if a run failed)."""
        a = self.a
        meta.update({
            "max_foreign": a.max_foreign, "retries": a.retries,
            "interrupted": self.interrupted,
            "elapsed_s": round(time.monotonic() - self.start, 1),
        })
        print(table)
        doc = {"meta": meta, "comparisons": rows,
               "runs": [r for w in self.wls for s in a.systems
                        for r in self.results[w["name"]][s]]}
        if self.interrupted:
            log(f"interrupted: {a.json} left as it was")
        elif any(self.results[w["name"]][s] for w in self.wls for s in a.systems):
            with open(a.json, "w") as f:
                json.dump(doc, f, indent=1)
                f.write("\n")
            log(f"wrote {a.json}")
        rc = self.rc
        if rc == 0 and any(not r["ok"] for r in doc["runs"]):
            rc = 1
        return rc


# ---------------------------------------------------------------------------------------------
# Summaries and tables


def summary_tail(s, runs, ok_runs, roles):
    """Adds a failed summary's first error (when nothing worked) and the median CPU time of
    each role (cpu_server, ...) over the runs that worked."""
    if not ok_runs:
        errs = [r.get("error", "") for r in runs]
        s["error"] = errs[0].splitlines()[0] if errs and errs[0] else "no run"
    cpus = [r["cpu_cores"] for r in ok_runs if r.get("cpu_cores")]
    for role in roles:
        v = [c[role] for c in cpus if role in c]
        if v:
            s[f"cpu_{role}"] = round(statistics.median(v), 3)
    return s


def cell_flags(s, txt):
    """A table cell's marks: '*' for noisy runs, '[N failed]'."""
    if s.get("noisy"):
        txt += "*"
    if s["ok"] < s["runs"]:
        txt += f" [{s['runs'] - s['ok']} failed]"
    return txt


MET = {True: "met", False: "not met", None: "-"}


def render_markdown(head, body):
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    for r in body:
        lines.append("| " + " | ".join(c.replace("|", "/") for c in r) + " |")
    return "\n".join(lines)


def render_text(head, body):
    widths = [max(len(x[i]) for x in [head] + body) for i in range(len(head))]
    fmt = "  ".join("{:<%d}" % wd for wd in widths)
    lines = [fmt.format(*head), "-" * (sum(widths) + 2 * (len(widths) - 1))]
    lines += [fmt.format(*r) for r in body]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Options


def new_parser(description, only_help, modes_option, modes_help):
    """An argument parser with the first options of both runners: --build, --duration, --runs,
    --only and the anchor's modes (modes_option: epoll, spin; default both)."""
    ap = argparse.ArgumentParser(description=description,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build", help="the build directory (default build)")
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per run (default 5)")
    ap.add_argument("--runs", type=int, default=3,
                    help="runs of each system, alternating; the median is reported (default 3)")
    ap.add_argument("--only", default=None, help=only_help)
    ap.add_argument(modes_option, default="epoll,spin", help=modes_help)
    return ap


def add_common_tail(ap, json_name):
    """--json (default bench/<json_name>), --markdown, --dry-run, --max-foreign, --retries,
    --keep-logs (the last options of both runners)."""
    ap.add_argument("--json", default=os.path.join(HERE, json_name),
                    help=f"results file (default bench/{json_name})")
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


def resolve_build(a):
    """--build relative to the current directory if it is there, else to the repository."""
    if not os.path.isabs(a.build):
        a.build = os.path.abspath(a.build if os.path.isdir(a.build)
                                  else os.path.join(ROOT, a.build))


def pick_systems(all_systems, only, modes, anchor, sluice_systems):
    """The systems to run, in all_systems' order: the anchor's epoll mode (`anchor`) and spin
    mode (`anchor`-spin) when `anchor` is in only and the mode in modes, and the Sluice ones
    in only."""
    return [s for s in all_systems
            if (s == anchor and anchor in only and "epoll" in modes)
            or (s == anchor + "-spin" and anchor in only and "spin" in modes)
            or (s in sluice_systems and s in only)]
