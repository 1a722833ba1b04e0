#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
#
# summarize_isolation.py - the median table of an isolation_bench.sh
# sitting: each figure of the issue "Supervised for real" with its target,
# and the ratios measured in the same sitting.  Medians over the
# repetitions, the range (min-max) beside them.
import json
import statistics
import sys
from collections import defaultdict


def load(path):
    rows = defaultdict(list)
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                d = json.loads(line)
                rows[(d["scenario"], d["impl"])].append(d["result"])
    return rows


def vals(rows, sc, impl, key):
    return [r[key] for r in rows.get((sc, impl), [])
            if isinstance(r, dict) and r.get(key) is not None]


def med(xs):
    return statistics.median(xs) if xs else None


def fmt(x, nd=0):
    return "-" if x is None else f"{x:,.{nd}f}"


def cell(rows, sc, impl, key, nd=0, scale=1.0):
    xs = [x * scale for x in vals(rows, sc, impl, key)]
    if not xs:
        return "-", None
    m = med(xs)
    rng = f" ({fmt(min(xs), nd)}-{fmt(max(xs), nd)})" if len(xs) > 1 else ""
    return fmt(m, nd) + rng, m


def ratio(a, b, nd=2):
    return "-" if a is None or b in (None, 0) else f"{a / b:.{nd}f}"


def main():
    rows = load(sys.argv[1])
    out = ["| figure | measured (median, range) | target | |",
           "|---|---|---|---|"]

    def line(fig, meas, target, verdict=""):
        out.append(f"| {fig} | {meas} | {target} | {verdict} |")

    # Throughput, canned nginx, c256.
    iso, iso_m = cell(rows, "nginx-c256", "isolated", "runs_per_s")
    fresh, fresh_m = cell(rows, "nginx-c256", "isolated-fresh", "runs_per_s")
    inp, inp_m = cell(rows, "nginx-c256", "inproc", "runs_per_s")
    base, base_m = cell(rows, "nginx-c256", "base", "runs_per_s")
    r = ratio(iso_m, inp_m)
    line("isolated runs/s at c256, children reused / in-process runs/s",
         f"{iso} / {inp} = {r}", ">= 0.50",
         "met" if iso_m and inp_m and iso_m / inp_m >= 0.5 else "not met")
    line("isolated runs/s at c256, a fresh child per run / in-process",
         f"{fresh} / {inp} = {ratio(fresh_m, inp_m)}", "reported")
    # Memory per isolated run in flight.
    kib, kib_m = cell(rows, "hold200-slowjs", "isolated", "kib_per_run", 1)
    child, _ = cell(rows, "hold200-slowjs", "isolated",
                    "child_private_kib_per_run", 1)
    par, _ = cell(rows, "hold200-slowjs", "isolated", "parent_kib_per_run", 1)
    line("KiB per isolated run in flight, 200 runs on 2 s models "
         "(child private + parent)", f"{kib} (child {child}, parent {par})",
         "<= 2048", "met" if kib_m is not None and kib_m <= 2048 else "not met")
    # Crash to finalize.
    p99, p99_m = cell(rows, "crash", "council", "p99_us", 1)
    p50, _ = cell(rows, "crash", "council", "p50_us", 1)
    e50, _ = cell(rows, "crash", "elixir", "kill_to_finalize_p50_us", 1)
    e99, _ = cell(rows, "crash", "elixir", "kill_to_finalize_p99_us", 1)
    d99, d99_m = cell(rows, "crash", "council", "dead_to_final_p99_us", 1)
    d50, _ = cell(rows, "crash", "council", "dead_to_final_p50_us", 1)
    line("child's death (its pidfd readable) -> handle_finalize, us: "
         "p50 / p99", f"{d50} / {d99}", "p99 <= 1000",
         "met" if d99_m is not None and d99_m <= 1000 else "not met")
    line("child SIGKILL -> handle_finalize, us: p50 / p99 (with the "
         "kernel's teardown of the child)", f"{p50} / {p99}", "p99 <= 1000",
         "met" if p99_m is not None and p99_m <= 1000 else "not met")
    line("the peer: Process.exit(:kill) -> finalize, us: p50 / p99 "
         "(in one VM, no OS process)", f"{e50} / {e99}", "reported")
    # Lifecycle.
    s, s_m = cell(rows, "short", "council", "runs_per_s")
    es, es_m = cell(rows, "short", "elixir", "runs_per_s")
    line("short runs/s one at a time (10 events, recorder, finalize) / the "
         "peer", f"{s} / {es} = {ratio(s_m, es_m)}", ">= 10",
         "met" if s_m and es_m and s_m / es_m >= 10 else "not met")
    m, m_m = cell(rows, "memory", "council", "kib_per_idle_run", 2)
    em, _ = cell(rows, "memory", "elixir", "rss_per_run_B", 2, 1 / 1024)
    line("KiB per idle run with its recorder (peer: RSS per run)",
         f"{m} (peer {em})", "<= 2",
         "met" if m_m is not None and m_m <= 2 else "not met")
    # In-process regression against BASE.
    line("in-process runs/s c256, this tree / base", f"{inp} / {base} = "
         f"{ratio(inp_m, base_m)}", "0.90-1.10 or better")
    i16, i16_m = cell(rows, "nginx-c16", "inproc", "runs_per_s")
    b16, b16_m = cell(rows, "nginx-c16", "base", "runs_per_s")
    line("in-process runs/s c16, this tree / base",
         f"{i16} / {b16} = {ratio(i16_m, b16_m)}", "0.90-1.10 or better")
    ih, ih_m = cell(rows, "hold1000-slowjs", "inproc", "kib_per_run", 1)
    bh, bh_m = cell(rows, "hold1000-slowjs", "base", "kib_per_run", 1)
    line("in-process KiB per run in flight (1,000 on 2 s models), this tree "
         "/ base", f"{ih} / {bh} = {ratio(ih_m, bh_m)}", "<= 1.10")
    for subs in (1, 8):
        f_i, fi_m = cell(rows, f"fanout-{subs}", "inproc", "deliveries_per_s",
                         1, 1e-6)
        f_b, fb_m = cell(rows, f"fanout-{subs}", "base", "deliveries_per_s",
                         1, 1e-6)
        line(f"fan-out to {subs}: M deliveries/s, this tree / base",
             f"{f_i} / {f_b} = {ratio(fi_m, fb_m)}", "0.90-1.10 or better")
    loads = [json.loads(l)["load1"] for l in open(sys.argv[1]) if l.strip()]
    out.append("")
    out.append(f"load1 during the sitting: {min(loads):.2f}-{max(loads):.2f}")
    print("\n".join(out))


if __name__ == "__main__":
    main()
