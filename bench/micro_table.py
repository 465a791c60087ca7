#!/usr/bin/env python3
"""Markdown tables of a sluice-bench run: benchmark x burst (1, 8, 32, 64) -> cycles/pkt.

Reads the JSON that sluice-bench writes with
  --benchmark_repetitions=N --benchmark_report_aggregates_only=true
  --benchmark_out=FILE --benchmark_out_format=json
and prints, per benchmark (its name without the burst:B part), the "_min" aggregate of
cycles/pkt: the fastest of the N repetitions. Without "min" aggregates (a run without
repetitions) the single runs are used. BM_Reassembly3Frag gets extra rows: cycles/dgram, the
in-process alloc+copy baseline, and net = min(cycles) - min(baseline), per fragment and per
datagram (the difference of the two minimums, not the minimum of the per-repetition
differences, which would favour the repetition whose baseline was disturbed most).
Benchmarks without a burst argument (BM_RawSum) are listed in a second table.

  python3 bench/micro_table.py results.json [more.json ...] > table.md

Several files (e.g. one per --benchmark_filter run) are read in order, as one run.
"""
import json
import re
import sys

BURSTS = (1, 8, 32, 64)
REASM = "BM_Reassembly3Frag"


def fmt(v):
    return f"{v:.1f}"


def main(paths):
    benchmarks = []
    for path in paths:
        with open(path) as f:
            benchmarks += json.load(f)["benchmarks"]
    rows = [b for b in benchmarks if b.get("aggregate_name") == "min"]
    if not rows:
        rows = [b for b in benchmarks if b.get("run_type") == "iteration"]
    table = {}  # (name, counter) -> {burst: value}
    order = []
    flat = []  # (name, cycles/pkt) of benchmarks without a burst
    failed = []

    def put(base, counter, burst, value):
        key = (base, counter)
        if key not in table:
            table[key] = {}
            order.append(key)
        table[key][burst] = value

    for b in rows:
        name = b.get("run_name", b["name"])
        if b.get("error_occurred"):
            failed.append(name)
            continue
        m = re.search(r"/burst:(\d+)", name)
        if not m:
            flat.append((name, b["cycles/pkt"]))
            continue
        burst = int(m.group(1))
        base = name[: m.start()] + name[m.end():]
        put(base, "cycles/pkt", burst, b["cycles/pkt"])
        if base.startswith(REASM):
            dgram, pkt, basepkt = b["cycles/dgram"], b["cycles/pkt"], b["base_cycles/pkt"]
            frags = dgram / pkt if pkt else 3.0
            put(base, "cycles/dgram", burst, dgram)
            put(base, "base_cycles/pkt", burst, basepkt)
            put(base, "net cycles/pkt", burst, pkt - basepkt)
            put(base, "net cycles/dgram", burst, (pkt - basepkt) * frags)

    out = ["| benchmark | counter | " + " | ".join(f"burst {n}" for n in BURSTS) + " |",
           "|---|---|" + "---:|" * len(BURSTS)]
    for key in order:
        base, counter = key
        vals = table[key]
        cells = [fmt(vals[n]) if n in vals else "" for n in BURSTS]
        out.append(f"| `{base}` | {counter} | " + " | ".join(cells) + " |")
    if flat:
        out += ["", "| benchmark (no burst) | cycles/pkt |", "|---|---:|"]
        out += [f"| `{n}` | {fmt(v)} |" for n, v in flat]
    if failed:
        out += ["", "Failed (skipped): " + ", ".join(f"`{n}`" for n in failed)]
    print("\n".join(out))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
