#!/usr/bin/env python3
"""The BENCHMARKS.md section of `make bench-scale` (scripts/bench_scale.sh), from its JSON files.

Usage: bench_scale_report.py WORK_DIR BENCHMARKS.md ROUNDS SECS. Replaces the section between
its markers, or appends it; every other part of the file stays as it is.
"""
import datetime
import json
import statistics
import sys

work, out, rounds, secs = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]


def load(name):
    with open(f"{work}/{name}.json") as f:
        return json.load(f)


empty = [load(f"empty-{r}") for r in range(1, rounds + 1)]
filled = [load(f"filled-{r}") for r in range(1, rounds + 1)]
maint, pass_report, times = load("maintenance"), load("pass"), load("pass-times")
status, after = load("status-filled"), load("status-after")


def lat(r):
    l = r["latency_ms"]
    return f'{l["p50"]:.2f} / {l["p99"]:.2f} / {l["max"]:.1f}'


def codes(r):
    text = ", ".join(f"{k}: {v}" for k, v in r["statuses"].items())
    return text + (f', errors: {r["errors"]}' if r["errors"] else "")


def table(st, name, field):
    return next(t[field] for t in st["tables"] if t["table"] == name)


def gib(st):
    return sum(t["bytes"] for t in st["tables"]) / 2**30


median = statistics.median
empty_rps, filled_rps = median(r["rps"] for r in empty), median(r["rps"] for r in filled)
empty_p99 = median(r["latency_ms"]["p99"] for r in empty)
filled_p99 = median(r["latency_ms"]["p99"] for r in filled)
# The maintenance step's own figures cover exactly the pass (hookline-bench
# --measure-from-file/--stop-file). Its per-second timeline also gives the worst second of
# the pass, compared with the worst second of the full database's rounds without one.
pass_p99 = maint["latency_ms"]["p99"]
pass_rps = maint["rps"]
t0 = maint["started_unix"]
window = [
    s
    for s in maint["timeline"]
    if s["count"] and t0 + s["second"] + 1 > times["started"] and t0 + s["second"] < times["ended"]
]
pass_worst = max((s["p99"] for s in window), default=float("nan"))
worst_second = lambda r: max((s["p99"] for s in r.get("timeline", []) if s["count"]), default=float("nan"))
filled_worst = median(worst_second(r) for r in filled)
events = table(status, "events", "rows")
stopped = times.get("fill_stopped") or ""
cpu = times.get("cpu_s", {})

lines = [
    "<!-- bench-scale: written by scripts/bench_scale.sh (make bench-scale) -->",
    "## Scale (issue 12): cost as stored work grows",
    "",
    f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC by `make bench-scale`, every figure "
    f"from this one run: two ingest processes, one on an empty database and one on a full one, loaded in turn "
    f"({rounds} rounds of {secs} s, each after a 3 s warm-up: this shared 2-core box drifts by tens of percent within "
    "minutes, so only neighbouring runs compare), 64 connections, unique keys spread over the key space (~40 bytes), "
    "1 KiB bodies, load generator on the same machine. "
    f"Full: {events:,} events over 22 days in {table(status, 'events', 'partitions')} daily partitions, "
    f"{table(status, 'event_payloads', 'rows'):,} payloads (4 days), {table(status, 'dedup_keys', 'rows'):,} keys in "
    f"8 generations, {table(status, 'deliveries', 'rows'):,} HTTP deliveries (one per event, settled; 1 in 5 000 "
    f"pending), {gib(status):.1f} GiB, filled by SQL in {times['fill_s']} s"
    + (f" (**the fill stopped early: {stopped}**)" if stopped else "")
    + ". Retention: dedup horizon 3d, payload 3d, events 21d; source `aux` (2 % of the stored events) payload 1d "
    "and events 14d, so the pass also prunes events and payloads in batches. PostgreSQL runs with autovacuum off "
    "on this box, so nothing cleans the rows a prune deletes.",
    "",
    "| Step | Throughput | Latency ms p50 / p99 / max | Answers |",
    "|---|---|---|---|",
]
for r in range(rounds):
    lines.append(f"| Round {r + 1}: empty database | {empty[r]['rps']:,.0f} req/s | {lat(empty[r])} | {codes(empty[r])} |")
    lines.append(
        f"| Round {r + 1}: {events / 1e6:.1f} M stored events | {filled[r]['rps']:,.0f} req/s "
        f"({filled[r]['rps'] / empty[r]['rps']:.2f}× the round's empty) | {lat(filled[r])} | {codes(filled[r])} |"
    )
lines.append(
    f"| Full database during a maintenance pass ({pass_report['duration_ms'] / 1000:.1f} s, measured from its start "
    f"to its end) | {pass_rps:,.0f} req/s ({pass_rps / filled_rps:.2f}× the full rounds' median) | {lat(maint)}; "
    f"worst second's p99 {pass_worst:.2f} | {codes(maint)} (whole step) |"
)
met = lambda ok: "met" if ok else "**not met**"
lines += [
    "",
    "| Target | Measured | |",
    "|---|---|---|",
    f"| unique-key throughput with ≥ 20 M stored events ≥ 0.8× the empty database's | medians {filled_rps:,.0f} vs "
    f"{empty_rps:,.0f} req/s: **{filled_rps / empty_rps:.2f}×** | {met(filled_rps >= 0.8 * empty_rps)} |",
    f"| p99 during a maintenance pass at full load ≤ 2× the p99 without one | p99 over the pass {pass_p99:.2f} ms vs "
    f"the full rounds' median {filled_p99:.2f} ms: **{pass_p99 / filled_p99:.2f}×** | {met(pass_p99 <= 2 * filled_p99)} |",
    f"| (the same, worst second against worst second) | worst second of the pass {pass_worst:.2f} ms vs the full rounds' "
    f"median worst second {filled_worst:.2f} ms: {pass_worst / filled_worst:.2f}× | {met(pass_worst <= 2 * filled_worst)} |",
    "",
]
pruned = ", ".join(f"{n:,} rows of {t}" for t, n in pass_report["pruned"].items()) or "nothing"
lines.append(
    f"The pass ({pass_report['duration_ms']:,} ms) dropped {len(pass_report['dropped'])} partitions "
    f"({', '.join(pass_report['dropped']) or 'none'}), created {len(pass_report['created'])}, switched the key generation "
    f"to {pass_report['generation']} and pruned {pruned} in batches. Stored afterwards: "
    f"{table(after, 'events', 'rows'):,} events, {table(after, 'event_payloads', 'rows'):,} payloads, "
    f"{table(after, 'deliveries', 'rows'):,} deliveries, {gib(after):.1f} GiB (estimates; the deleted rows' space stays "
    "until VACUUM). "
    f"p99 medians: empty {empty_p99:.2f} ms, full {filled_p99:.2f} ms. CPU during the pass "
    f"({times['ended'] - times['started']:.1f} s): "
    + ", ".join(f"{k} {v:.1f} s" for k, v in cpu.items())
    + " (PostgreSQL: every backend on this shared server). Per-second figures: `.run/bench-scale/*.json` (`timeline`)."
)
lines += ["", "<!-- /bench-scale -->"]
section = "\n".join(lines) + "\n"

try:
    with open(out) as f:
        text = f.read()
except FileNotFoundError:
    text = "# Benchmarks\n"
start, end = "<!-- bench-scale", "<!-- /bench-scale -->"
if start in text and end in text:
    text = text[: text.index(start)] + section + text[text.index(end) + len(end) + 1 :]
else:
    text = text.rstrip("\n") + "\n\n" + section
with open(out, "w") as f:
    f.write(text)
print(section)
