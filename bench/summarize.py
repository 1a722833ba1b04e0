#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
#
# summarize.py - the median table of a run_all.sh sitting.  Reads the raw
# JSON lines ({"scenario","impl","load1","result"}) and prints Markdown:
# throughput, memory per in-flight run, fan-out, wrk, and the council/node
# ratios measured in the same sitting.  Medians over the repetitions; the
# range (min-max) is shown next to each throughput median.
import json
import statistics
import sys
from collections import defaultdict


def load(path):
    rows = defaultdict(list)
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            d = json.loads(line)
            rows[(d["scenario"], d["impl"])].append(d["result"])
    return rows


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, nd=0):
    if x is None:
        return "-"
    return f"{x:,.{nd}f}"


def main():
    rows = load(sys.argv[1])
    out = []
    failures = []
    for (sc, impl), rs in rows.items():
        for r in rs:
            bad = r.get("failed") or r.get("bad", 0) or (
                r.get("hold_valid") is False)
            if bad:
                failures.append((sc, impl, r))

    out.append("### Council runs/s (9 streamed calls per run)\n")
    out.append("| scenario | impl | reps | runs/s median (min-max) | "
               "p50 ms | mean in flight | client CPU % | peak RSS MiB | "
               "others CPU % | server CPU % |")
    out.append("|---|---|---|---|---|---|---|---|---|---|")
    tp = {}
    order = ["nginx-c256", "nginx-c256-1loop", "nginx-c256-s64", "nginx-c16",
             "nginx-c1",
             "mockllm-c256", "mockllm-c16", "mockllm-c1"]
    for sc in order:
        for impl in ("council", "node"):
            rs = [r for r in rows.get((sc, impl), []) if "runs_per_s" in r]
            if not rs:
                continue
            rps = [r["runs_per_s"] for r in rs]
            tp[(sc, impl)] = med(rps)
            inflight = med([r.get("mean_in_flight") for r in rs])
            if impl == "council":
                p50 = med([r["p50_ms"] for r in rs])
                rss = med([r["peak_rss_kib"] / 1024 for r in rs])
            else:
                p50 = None
                rss = med([r["maxrss_mb"] for r in rs])
            out.append(
                f"| {sc} | {impl} | {len(rs)} | {fmt(med(rps), 1)} "
                f"({fmt(min(rps), 1)}-{fmt(max(rps), 1)}) | {fmt(p50, 1)} | "
                f"{fmt(inflight, 0)} | "
                f"{fmt(med([r.get('cpu_pct') for r in rs]), 0)} | "
                f"{fmt(rss, 1)} | "
                f"{fmt(med([r.get('others_cpu_pct') for r in rs]), 0)} | "
                f"{fmt(med([r.get('server_cpu_pct') for r in rs]), 0)} |")
    out.append("")
    for sc in ("nginx-c256", "nginx-c16"):
        c, n = tp.get((sc, "council")), tp.get((sc, "node"))
        if c and n:
            out.append(f"- {sc}: council/node = **{c / n:.1f}x** "
                       f"({c:,.0f} vs {n:,.0f} runs/s)")
    n = tp.get(("nginx-c256", "node"))
    for sc, what in (("nginx-c256-s64", "64 starters (all 256 in flight)"),
                     ("nginx-c256-1loop", "one loop thread (4 starters)")):
        c2 = tp.get((sc, "council"))
        if c2 and n:
            out.append(f"- nginx-c256 with {what}: council/node = "
                       f"**{c2 / n:.1f}x** ({c2:,.0f} vs {n:,.0f} runs/s)")
    out.append("")

    out.append("### Memory per in-flight run (1,000 runs, 2 s per call)\n")
    out.append("| scenario | impl | reps | KiB per run (in flight - "
               "before) | peak RSS MiB | peak RSS / 1000, KiB | ok/bad |")
    out.append("|---|---|---|---|---|---|---|")
    idle = [r["maxrss_mb"] for r in rows.get(("node-idle", "node"), [])
            if "maxrss_mb" in r]
    idle_mb = med(idle)
    mem = {}
    for sc in ("hold1000-slowjs", "hold1000-mockllm2s"):
        rs = [r for r in rows.get((sc, "council"), []) if "kib_per_run" in r]
        if rs:
            k = med([r["kib_per_run"] for r in rs])
            mem[(sc, "council")] = k
            out.append(
                f"| {sc} | council | {len(rs)} | {fmt(k, 1)} | "
                f"{fmt(med([r['peak_rss_kib'] / 1024 for r in rs]), 1)} | "
                f"{fmt(med([r['peak_rss_kib'] / 1000 for r in rs]), 1)} | "
                f"{sum(r['ok'] for r in rs)}/{sum(r['bad'] for r in rs)} |")
        rs = [r for r in rows.get((sc, "node"), []) if "maxrss_mb" in r]
        if rs:
            peak = med([r["maxrss_mb"] for r in rs])
            per = (peak - idle_mb) * 1024 / 1000 if idle_mb else None
            mem[(sc, "node")] = per
            out.append(
                f"| {sc} | node | {len(rs)} | {fmt(per, 1)} (peak - "
                f"idle {fmt(idle_mb, 1)} MiB) | {fmt(peak, 1)} | "
                f"{fmt(peak * 1024 / 1000, 1)} | "
                f"{sum(r['ok'] for r in rs)}/{sum(r['bad'] for r in rs)} |")
    c, n = mem.get(("hold1000-slowjs", "council")), mem.get(
        ("hold1000-slowjs", "node"))
    if c and n:
        out.append(f"\n- node/council memory per in-flight run = "
                   f"**{n / c:.1f}x** ({n:,.0f} vs {c:,.1f} KiB)")
    out.append("")

    out.append("### Event fan-out (bench_fanout, 1M events)\n")
    out.append("| subscribers | reps | events/s median | deliveries/s median "
               "| Elixir reference (peers README) |")
    out.append("|---|---|---|---|---|")
    ref = {1: "~1.2 M events/s", 8: "~1.1 M deliveries/s"}
    for s in (1, 8):
        rs = rows.get((f"fanout-{s}", "council"), [])
        if rs:
            out.append(
                f"| {s} | {len(rs)} | "
                f"{fmt(med([r['events_per_s'] for r in rs]))} | "
                f"{fmt(med([r['deliveries_per_s'] for r in rs]))} | "
                f"{ref[s]} |")
    out.append("")
    w = rows.get(("wrk-nginx", "wrk"), [])
    if w:
        out.append(f"nginx alone (wrk -t2 -c64 -d10s, streamed): "
                   f"{fmt(med([r['requests_per_s'] for r in w]))} "
                   f"requests/s\n")
    if failures:
        out.append("### FAILURES\n")
        for sc, impl, r in failures:
            out.append(f"- {sc} {impl}: `{json.dumps(r)[:600]}`")
    else:
        out.append("No failed run in any scenario.")
    print("\n".join(out))


if __name__ == "__main__":
    main()
