#!/usr/bin/env bash
# make bench: ceilings and Hookline figures from ONE run on this machine, as one table
# written to BENCHMARKS.md. BENCH_SMOKE=1 runs every step for ~1 s (CI: keeps it from rotting;
# the figures mean nothing then). BENCH_SECS sets the length of each timed step (default 10).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

smoke="${BENCH_SMOKE:-}"
secs="${BENCH_SECS:-10}"
profile="${PROFILE:-release}"
e2e_events=40000
drain_events=100000
amqp_messages=100000
if [ -n "$smoke" ]; then secs=1; e2e_events=300; drain_events=300; amqp_messages=2000; profile="${PROFILE:-dev}"; fi
conns=64
out="${BENCH_OUT:-BENCHMARKS.md}"
work="$RUN_DIR/bench"
mkdir -p "$work"
rm -f "$work"/*.json

scripts/ensure_services.sh
have pgbench || { can_apt && apt-get install -y -qq postgresql-contrib >/dev/null; } || true
say "building ($profile)"
cargo build --profile "$profile" --bin hookline-ingest --bin hookline-worker --bin hookline-bench
bin="target/$([ "$profile" = dev ] && echo debug || echo "$profile")"

pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

wait_http() { for _ in $(seq 1 300); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; die "$1 not ready"; }
peak_rss_mib() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status" 2>/dev/null || echo "?"; }
load() { "$bin/hookline-bench" load --connections "$conns" "$@"; }

# CPU accounting (scripts/proc_cpu.py): a snapshot of every process group's CPU seconds
# before and after each timed step; the report divides the difference by the step's events.
pg="postgres://root@127.0.0.1:5432"
db="hookline_bench"
ceiling_db="hookline_bench_ceiling"
postmaster=$(head -1 "$(psql "$pg/postgres" -Atc 'SHOW data_directory' 2>/dev/null)/postmaster.pid" 2>/dev/null || echo 0)
rabbit=$(rabbitmqctl -q eval 'list_to_integer(os:getpid()).' 2>/dev/null | grep -E '^[0-9]+$' || pgrep -o -x beam.smp || echo 0)
[ "$postmaster" != 0 ] || warn "PostgreSQL's postmaster not found: no PostgreSQL CPU figures"
[ "$rabbit" != 0 ] || warn "RabbitMQ's beam.smp not found: no RabbitMQ CPU figures"
cpu_snap() {
  local name=$1; shift
  python3 scripts/proc_cpu.py "$work/cpu_$name.json" --postmaster "$postmaster" --rabbit "$rabbit" \
    --pg-db "$db,$ceiling_db" "$@"
}
csv() { local IFS=,; echo "$*"; }
# What autovacuum would have done by now. This machine's PostgreSQL (like CI's) runs with
# autovacuum off, so without this every step pays for the dead rows and the missing
# statistics of all the steps before it, and later steps compare unfairly with earlier ones.
settle_db() { psql "$pg/$db" -qc "VACUUM (ANALYZE)" || warn "VACUUM failed; later steps pay for earlier ones"; }

# --- ceilings -----------------------------------------------------------------------
say "ceiling: actix hello world"
"$bin/hookline-bench" hello-server --addr 127.0.0.1:18080 --workers 2 & hello=$!; pids+=($hello)
sleep 0.5
cpu_snap hello-before --group ingest=$hello
load --addr 127.0.0.1:18080 --scheme none --duration "$secs" --label hello >"$work/hello.json"
cpu_snap hello-after --group ingest=$hello
kill -TERM $hello; wait $hello 2>/dev/null || true

psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS hookline_bench_pg" -qc "CREATE DATABASE hookline_bench_pg"
psql "$pg/hookline_bench_pg" -qc "CREATE TABLE t (id uuid PRIMARY KEY, k text UNIQUE, body bytea)"
echo "INSERT INTO t VALUES (gen_random_uuid(), md5(random()::text), repeat('x', 459)::bytea) ON CONFLICT (k) DO NOTHING;" >"$work/one.sql"
echo "INSERT INTO t SELECT gen_random_uuid(), md5(random()::text), repeat('x', 459)::bytea FROM generate_series(1, 64) ON CONFLICT (k) DO NOTHING;" >"$work/batch.sql"
pgtps() { pgbench -n -h 127.0.0.1 -U root -T "$secs" "$@" hookline_bench_pg 2>/dev/null | awk '/^tps/ {print $3; exit}'; }
say "ceiling: pgbench"
pg_one=$(pgtps -c 16 -j 2 -f "$work/one.sql")
pg_batch_tps=$(pgtps -c 4 -j 2 -f "$work/batch.sql")
pg_batch_rows=$(awk -v t="$pg_batch_tps" 'BEGIN {printf "%.0f", t * 64}')

say "ceiling: RabbitMQ publish with confirms"
"$bin/hookline-bench" amqp-publish --messages "$amqp_messages" >"$work/amqp.json"

# Ceiling (a), bare durable ingest: the request ingest gets, group-committed into one
# table with a unique key and answered after the commit; no signatures, no publish.
say "ceiling: bare durable ingest (actix + group-commit INSERT … ON CONFLICT into one table)"
psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS $ceiling_db WITH (FORCE)" -qc "CREATE DATABASE $ceiling_db"
"$bin/hookline-bench" ceiling-server --addr 127.0.0.1:18085 --database-url "$pg/$ceiling_db" & ceiling=$!; pids+=($ceiling)
wait_port 127.0.0.1 18085 30 ceiling-server
cpu_snap ceiling-before --group ingest=$ceiling
load --addr 127.0.0.1:18085 --source bench --duration "$secs" --label ceiling >"$work/ceiling.json"
cpu_snap ceiling-after --group ingest=$ceiling
kill -TERM $ceiling; wait $ceiling 2>/dev/null || true

# --- Hookline -----------------------------------------------------------------------
# Each run declares its own queues (prefix hookline_bench_<pid>); they expire once idle.
have rabbitmqctl && { rabbitmqctl -q set_policy --apply-to queues hl-bench-expiry '^hookline_bench_' '{"expires":120000}' >/dev/null 2>&1 || true; }
psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -qc "CREATE DATABASE $db"
cat >"$work/hookline.toml" <<TOML
[http]
addr = "127.0.0.1:18090"
[admin]
addr = "127.0.0.1:18091"
[database]
url = "$pg/$db"
pool_size = 16
[amqp]
prefix = "hookline_bench_$$"
[worker]
admin_addr = "127.0.0.1:18092"
concurrency = 128
[telemetry]
log_level = "warn"
[sources.bench]
verifier = "token"
secrets = ["bench-token"]
dedup_key = "{header:x-bench-id}"
resource_key = "{json:/eventData/actorRunId}"
status = "{json:/resource/status}"
lifecycle = "apify-run"
[sources.sw]
preset = "standard-webhooks"
secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
TOML
export HOOKLINE_CONFIG="$work/hookline.toml"
"$bin/hookline-ingest" >"$work/ingest.log" 2>&1 & ingest=$!; pids+=($ingest)
wait_http http://127.0.0.1:18090/readyz

say "hookline: durable ingest, unique keys"
cpu_snap unique-before --group ingest=$ingest
load --addr 127.0.0.1:18090 --source bench --duration "$secs" --label unique >"$work/unique.json"
cpu_snap unique-after --group ingest=$ingest
say "hookline: durable ingest, Standard Webhooks signatures, unique keys"
cpu_snap sw-before --group ingest=$ingest
load --addr 127.0.0.1:18090 --source sw --scheme standard-webhooks --secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw \
  --duration "$secs" --label sw-unique >"$work/sw.json"
cpu_snap sw-after --group ingest=$ingest
say "hookline: 100 % duplicates"
cpu_snap dup100-before --group ingest=$ingest
load --addr 127.0.0.1:18090 --source bench --duration "$secs" --dup-ratio 1 --seed-events 2000 --label dup100 >"$work/dup100.json"
cpu_snap dup100-after --group ingest=$ingest
say "hookline: 100 % duplicates, committed-key cache off (every retry asks PostgreSQL)"
HOOKLINE__HTTP__ADDR=127.0.0.1:18095 HOOKLINE__ADMIN__ADDR=127.0.0.1:18096 HOOKLINE__INGEST__DEDUP_CACHE_BYTES=0 \
  "$bin/hookline-ingest" >"$work/ingest-nocache.log" 2>&1 & nocache=$!; pids+=($nocache)
wait_http http://127.0.0.1:18095/readyz
load --addr 127.0.0.1:18095 --source bench --duration "$secs" --dup-ratio 1 --seed-events 2000 --label dup100-nocache >"$work/dup100-nocache.json"
kill -TERM $nocache; wait $nocache 2>/dev/null || true
say "hookline: 30 % duplicates"
load --addr 127.0.0.1:18090 --source bench --duration "$secs" --dup-ratio 0.3 --label dup30 >"$work/dup30.json"
ingest_rss=$(peak_rss_mib $ingest)

# The steps above ran without workers, so their events wait in the work queue. End to end
# runs on fresh queues (a new prefix, a restarted ingest), or the workers would first
# chew through that backlog and the figures would measure it.
kill -TERM $ingest; wait $ingest 2>/dev/null || true
export HOOKLINE__AMQP__PREFIX="hookline_bench_$$_e2e"
"$bin/hookline-ingest" >"$work/ingest-e2e.log" 2>&1 & ingest=$!; pids+=($ingest)
wait_http http://127.0.0.1:18090/readyz

for workers in 1 2; do
  say "hookline: end to end, $workers worker(s)"
  settle_db
  wpids=()
  for i in $(seq 1 $workers); do
    HOOKLINE__WORKER__ADMIN_ADDR="127.0.0.1:$((18092 + i))" "$bin/hookline-worker" >"$work/worker$i.log" 2>&1 &
    wpids+=($!); pids+=($!)
  done
  sleep 1
  cpu_snap "e2e$workers-before" --group ingest=$ingest --group worker="$(csv "${wpids[@]}")"
  load --addr 127.0.0.1:18090 --source bench --events "$e2e_events" --dup-ratio 0.3 --resources 1000 \
    --database-url "$pg/$db" --label "e2e-$workers" >"$work/e2e$workers.json"
  cpu_snap "e2e$workers-after" --group ingest=$ingest --group worker="$(csv "${wpids[@]}")"
  worker_rss=$(peak_rss_mib "${wpids[0]}")
  echo "$worker_rss" >"$work/worker_rss_$workers"
  for p in "${wpids[@]}"; do kill -TERM "$p"; wait "$p" 2>/dev/null || true; done
done

# The same end-to-end load, 2 workers, each decided event also POSTed (signed) to one HTTP
# destination: a local receiver that answers 204 at once.
say "hookline: end to end, 2 workers, one HTTP destination"
settle_db
"$bin/hookline-bench" sink-server --addr 127.0.0.1:18081 --workers 1 & sink=$!; pids+=($sink)
cp "$work/hookline.toml" "$work/hookline-dest.toml"
cat >>"$work/hookline-dest.toml" <<TOML
[destinations.sink]
url = "http://127.0.0.1:18081/hooks"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
outcomes = ["applied", "unchanged", "rejected_downgrade", "rejected_terminal"]
concurrency = 64
TOML
wpids=()
for i in 1 2; do
  HOOKLINE_CONFIG="$work/hookline-dest.toml" HOOKLINE__WORKER__ADMIN_ADDR="127.0.0.1:$((18092 + i))" \
    "$bin/hookline-worker" >"$work/worker-dest$i.log" 2>&1 &
  wpids+=($!); pids+=($!)
done
sleep 1
cpu_snap e2e-dest-before --group ingest=$ingest --group worker="$(csv "${wpids[@]}")" --group sink=$sink
load --addr 127.0.0.1:18090 --source bench --events "$e2e_events" --dup-ratio 0.3 --resources 1000 \
  --database-url "$pg/$db" --destination sink --label "e2e-dest" >"$work/e2e-dest.json"
cpu_snap e2e-dest-after --group ingest=$ingest --group worker="$(csv "${wpids[@]}")" --group sink=$sink
echo "$(peak_rss_mib "${wpids[0]}")" >"$work/worker_rss_dest"
for p in "${wpids[@]}"; do kill -TERM "$p"; wait "$p" 2>/dev/null || true; done
kill -TERM $sink; wait $sink 2>/dev/null || true

# Drain only: with no worker running, fill the (empty) work queue, then start 2 workers
# and time how fast they empty it: the worker path's own rate and CPU per event.
say "hookline: drain only, $drain_events events queued, then 2 workers"
drain_run="drain$$"
load --addr 127.0.0.1:18090 --source bench --events "$drain_events" --resources 1000 --run "$drain_run" \
  --label drain-fill >"$work/drain-fill.json"
drain_expected=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["statuses"].get("202", 0))' "$work/drain-fill.json")
drain_since=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["since_unix"])' "$work/drain-fill.json")
sleep 1 # the last commits' publishes reach the queue
settle_db
cpu_snap drain-before --group ingest=$ingest
wpids=()
for i in 1 2; do
  HOOKLINE__WORKER__ADMIN_ADDR="127.0.0.1:$((18092 + i))" "$bin/hookline-worker" >"$work/worker-drain$i.log" 2>&1 &
  wpids+=($!); pids+=($!)
done
"$bin/hookline-bench" drain-wait --database-url "$pg/$db" --run "$drain_run" --expected "$drain_expected" \
  --since-unix "$drain_since" >"$work/drain.json"
cpu_snap drain-after --group ingest=$ingest --group worker="$(csv "${wpids[@]}")"
for p in "${wpids[@]}"; do kill -TERM "$p"; wait "$p" 2>/dev/null || true; done

# --- report -------------------------------------------------------------------------
python3 - "$work" "$out" "$pg_one" "$pg_batch_rows" "$ingest_rss" "$secs" "${smoke:+smoke}" "$drain_events" <<'PY'
import json, sys, platform, subprocess, datetime
work, out, pg_one, pg_batch, ingest_rss, secs, smoke, drain_events = sys.argv[1:9]
j = lambda n: json.load(open(f"{work}/{n}.json"))
hello, amqp, ceiling, unique = j("hello"), j("amqp"), j("ceiling"), j("unique")
rows = []
def lat(r): l = r["latency_ms"]; return f'{l["p50"]:.2f} / {l["p90"]:.2f} / {l["p99"]:.2f} / {l["max"]:.1f}'
def codes(r): return ", ".join(f"{k}: {v}" for k, v in r["statuses"].items()) + (f', errors: {r["errors"]}' if r["errors"] else "")
def ratio(x, c): return f"{x / c:.2f}× " if c else ""
def target(ok): return "met" if ok else "**missed**"
f = lambda v: f"{v:.0f}" if v is not None else "?"
pg1, pgb = float(pg_one or 0), float(pg_batch or 0)
ceil_a = ceiling["rps"]
rows.append(("Ceiling (a): bare durable ingest (the same request, group-commit INSERT … ON CONFLICT into one table "
             "with a unique key, answered after commit; no signatures, no publish)",
             f'{ceil_a:,.0f} req/s', lat(ceiling), "", codes(ceiling), ""))
rows.append(("Ceiling (b): actix hello world (parse JSON, 202)", f'{hello["rps"]:,.0f} req/s', lat(hello), "", codes(hello), ""))
rows.append(("Ceiling (b): RabbitMQ publish + confirms, quorum, persistent 450 B", f'{amqp["msgs_per_s"]:,.0f} msg/s', "", "", "", ""))
rows.append(("Informational: pgbench 1-row INSERT … ON CONFLICT, 16 clients (no HTTP)", f"{pg1:,.0f} rows/s", "", "", "", ""))
rows.append(("Informational: pgbench 64-row batches, 4 clients (no HTTP)", f"{pgb:,.0f} rows/s", "", "", "", ""))
for name, label, ceil, cname, goal in [
    ("unique", "Hookline: durable ingest, unique keys (token)", ceil_a, "ceiling (a)", 0.7),
    ("sw", "Hookline: durable ingest, unique keys (Standard Webhooks HMAC)", ceil_a, "ceiling (a)", None),
    ("dup100", "Hookline: 100 % duplicates (answered from the committed-key cache)", hello["rps"], "hello world", 0.75),
    ("dup100-nocache", "Hookline: 100 % duplicates, cache off (each batch asks PostgreSQL)", hello["rps"], "hello world", None),
    ("dup30", "Hookline: 30 % duplicates", ceil_a, "ceiling (a)", None),
]:
    r = j(name)
    vs = f'{ratio(r["rps"], ceil)}of {cname}'
    if goal is not None and ceil:
        ok = r["rps"] / ceil >= goal
        if name == "unique":
            vs += f' (target ≥ {goal}× and p99 ≤ 20 ms: {target(ok and r["latency_ms"]["p99"] <= 20)})'
        else:
            vs += f" (target ≥ {goal}×: {target(ok)})"
    rows.append((label, f'{r["rps"]:,.0f} req/s', lat(r), vs, codes(r), f"ingest {ingest_rss} MiB"))
for w in ("1", "2"):
    r = j(f"e2e{w}"); e = r["e2e"]; l = e["lag_ms"]
    rss = open(f"{work}/worker_rss_{w}").read().strip()
    vs = f'{ratio(e["processed_per_s"], unique["rps"])}of unique-key ingest'
    if w == "2":
        vs += f' (target ≥ 0.7×: {target(unique["rps"] and e["processed_per_s"] / unique["rps"] >= 0.7)})'
    rows.append((f"Hookline: end to end, {w} worker(s), 30 % dups, 1000 resources",
                 f'{e["processed_per_s"]:,.0f} events/s' + ("" if e["complete"] else " (INCOMPLETE)"),
                 f'lag {f(l["p50"])} / {f(l["p90"])} / {f(l["p99"])} / {f(l["max"])}',
                 vs, f'{e["processed"]}/{e["expected"]} processed', f"worker {rss} MiB"))

# CPU per event, from /proc (scripts/proc_cpu.py snapshots around each step).
def cpu(step):
    try:
        b, a = j(f"cpu_{step}-before"), j(f"cpu_{step}-after")
    except FileNotFoundError:
        return None
    d = {k: v - b["groups"].get(k, 0.0) for k, v in a["groups"].items()}
    d["machine"], d["wall"] = a["machine"] - b["machine"], a["t"] - b["t"]
    # The busiest processes outside the groups (by name), to say what else ran.
    others = {}
    for pid, (name, used) in a.get("others", {}).items():
        before = b.get("others", {}).get(pid, [name, 0.0])[1]
        name = "kernel workers" if name.startswith("kworker/") else name  # their names change
        others[name] = others.get(name, 0.0) + used - before
    d["others"] = sorted(((n, v) for n, v in others.items() if v >= 0.1), key=lambda x: -x[1])
    return d
drain = j("drain")
def path_us(step, events, own):
    """µs of CPU per event: own process(es), PostgreSQL, RabbitMQ, their sum."""
    c = cpu(step)
    if not c or not events:
        return None
    us = {k: c.get(k, 0.0) * 1e6 / events for k in ("ingest", "worker", "postgres", "rabbitmq", "postgres_all", "machine")}
    us["path"] = sum(us[k] for k in own + ["postgres", "rabbitmq"])
    return us
ingest_path = path_us("unique", unique["statuses"].get("202", 0), ["ingest"])
worker_path = path_us("drain", drain["processed"], ["worker"])
share = worker_path["path"] / ingest_path["path"] if ingest_path and worker_path and ingest_path["path"] else None
rows.append((f"Hookline: drain only, 2 workers, a queue filled with {int(drain_events):,} events while no worker ran",
             f'{drain["processed_per_s"]:,.0f} events/s' + ("" if drain["complete"] else " (INCOMPLETE)"),
             "", (f"worker path (worker + PostgreSQL + RabbitMQ) {share * 100:.0f} % of the ingest path's CPU per event "
                  f"(target < 40 %: {target(share < 0.4)})") if share is not None else "",
             f'{drain["processed"]}/{drain["expected"]} processed in {drain["busy_span_s"]:.2f} s', ""))
r = j("e2e-dest"); e = r["e2e"]; d = r["delivery"]; l = d["lag_ms"]
base = j("e2e2")["e2e"]["processed_per_s"]
rate = min(e["processed_per_s"], d["delivered_per_s"])
rss = open(f"{work}/worker_rss_dest").read().strip()
rows.append(("Hookline: end to end, 2 workers, + one HTTP destination (every decision POSTed, signed; receiver answers 204)",
             f'{rate:,.0f} events/s processed and delivered' + ("" if e["complete"] and d["complete"] else " (INCOMPLETE)"),
             f'received → delivered {f(l["p50"])} / {f(l["p90"])} / {f(l["p99"])} / {f(l["max"])}',
             f'{ratio(rate, base)}of end to end without destinations (target ≥ 0.8×)',
             f'{d["delivered"]}/{d["expected"]} delivered', f"worker {rss} MiB"))

cpu_rows, busy_elsewhere = [], []
for step, label, events, unit in [
    ("hello", "Hello world (the server in the ingest column)", hello["requests"], "answered request"),
    ("ceiling", "Ceiling (a) (the server in the ingest column)", ceiling["statuses"].get("202", 0), "accepted webhook"),
    ("unique", "Durable ingest, unique keys (token)", unique["statuses"].get("202", 0), "accepted webhook"),
    ("sw", "Durable ingest, Standard Webhooks HMAC", j("sw")["statuses"].get("202", 0), "accepted webhook"),
    ("dup100", "100 % duplicates (cache)", j("dup100")["requests"], "answered request"),
    ("e2e1", "End to end, 1 worker (30 % dups)", j("e2e1")["e2e"]["processed"], "processed event"),
    ("e2e2", "End to end, 2 workers (30 % dups)", j("e2e2")["e2e"]["processed"], "processed event"),
    ("drain", "Drain only, 2 workers", drain["processed"], "processed event"),
    ("e2e-dest", "End to end, 2 workers, + one HTTP destination (the receiver counted as load generator)",
     j("e2e-dest")["e2e"]["processed"], "processed and delivered event"),
]:
    c = cpu(step)
    if not c or not events:
        continue
    # drain-wait sends nothing: no figure; the destination step's receiver is load too.
    load_s = j(step).get("load_cpu_s", 0.0) + c.get("sink", 0.0)
    us = lambda k: c.get(k, 0.0) * 1e6 / events
    known = sum(c.get(k, 0.0) for k in ("ingest", "worker", "postgres", "rabbitmq")) + load_s
    cells = [us("ingest"), us("postgres"), us("rabbitmq"), us("worker")]
    if c["machine"] > 0 and (c["machine"] - known) / c["machine"] > 0.15:
        top = ", ".join(f"{n} {v:.1f} s" for n, v in c["others"][:3])
        busy_elsewhere.append(f'{label.lower()} ({(c["machine"] - known) / c["machine"] * 100:.0f} %{": " + top if top else ""})')
    cpu_rows.append((label, unit, f"{events:,}", *(f"{v:.0f}" for v in cells), f"{sum(cells):.0f}",
                     f"{load_s * 1e6 / events:.0f}", f"{(c['machine'] - known) * 1e6 / events:.0f}",
                     f"{c['machine'] / c['wall']:.2f}" if c["wall"] > 0 else ""))

cpuinfo = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = next((int(l.split()[1]) // 1024 // 1024 for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
ver = lambda cmd: (subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip().splitlines() or ["?"])[0]
# Keep the hand-written analysis that follows the tables (from "## Targets" on).
try:
    old = open(out).read()
    analysis = old[old.index("\n## Targets"):] if "\n## Targets" in old else ""
except FileNotFoundError:
    analysis = ""
with open(out, "w") as fh:
    fh.write("# Benchmarks\n\n")
    if smoke:
        fh.write("**Smoke run (1 s steps): these figures mean nothing; run `make bench`.**\n\n")
    fh.write(f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC by `make bench`, every figure from this one run, "
             f"{secs} s per step, load generator on the same machine, 64 connections.\n\n")
    fh.write(f"Machine: {cpuinfo}, {subprocess.run('nproc', capture_output=True, text=True).stdout.strip()} cores, {mem} GiB; "
             f"{ver('psql --version')}; RabbitMQ {ver('rabbitmqctl version 2>/dev/null')}; {platform.system()} {platform.release()}.\n\n")
    fh.write("| What | Throughput | Latency ms p50 / p90 / p99 / max | vs ceiling | Answers | Peak RSS |\n|---|---|---|---|---|---|\n")
    for r in rows:
        fh.write("| " + " | ".join(r) + " |\n")
    fh.write("\nEnd-to-end latency is received → processed (PostgreSQL timestamps); end-to-end throughput is "
             "processed events over first receipt → last processing; drain-only throughput is processed events over "
             "first → last processing. Ratios: unique-key ingest over ceiling (a), duplicates over hello world, "
             "end to end over Hookline's own unique-key ingest of this run; pgbench has no HTTP in it and is "
             "shown for reference only.\n\n")
    fh.write("### CPU per event (µs, user + system from /proc, sampled around each step)\n\n"
             "| Step | Per | Events | Ingest | PostgreSQL | RabbitMQ | Worker(s) | Sum | Load generator | Other | Cores busy |\n"
             "|---|---|---|---|---|---|---|---|---|---|---|\n")
    for r in cpu_rows:
        fh.write("| " + " | ".join(r) + " |\n")
    fh.write("\nPostgreSQL: the postmaster, its auxiliary processes and the backends of the benchmark's databases; "
             "RabbitMQ: beam.smp and its children; Other: the rest of the machine's busy time (the kernel's "
             "share not charged to a process, other users of the shared services). PostgreSQL and RabbitMQ also carry "
             "background work an earlier step left (autovacuum, queue persistence): the cached-duplicates step stores nothing. "
             "Cores busy: machine busy time "
             "over wall time (2 = saturated).\n")
    if busy_elsewhere:
        fh.write("\n**Other work took more than 15 % of the machine during: " + ", ".join(busy_elsewhere) +
                 "; those figures are low.**\n")
    if ingest_path and worker_path:
        fh.write(f"\nIngest path (unique keys: ingest + PostgreSQL + RabbitMQ): {ingest_path['path']:.0f} µs per event; "
                 f"worker path (drain only: worker + PostgreSQL + RabbitMQ): {worker_path['path']:.0f} µs per event "
                 f"(worker + PostgreSQL alone: {worker_path['worker'] + worker_path['postgres']:.0f} µs), "
                 f"{share * 100:.0f} % of the ingest path (target < 40 %).\n")
    plain_cpu, dest_cpu = cpu("e2e2"), cpu("e2e-dest")
    plain_n, dest_n = j("e2e2")["e2e"]["processed"], j("e2e-dest")["e2e"]["processed"]
    if plain_cpu and dest_cpu and plain_n and dest_n:
        extra = {k: dest_cpu.get(k, 0.0) * 1e6 / dest_n - plain_cpu.get(k, 0.0) * 1e6 / plain_n
                 for k in ("machine", "postgres", "worker", "sink", "ingest", "rabbitmq")}
        fh.write(f"\nOne HTTP destination costs {extra['machine']:.0f} µs of machine CPU per event more than end to end "
                 f"without it (PostgreSQL {extra['postgres']:+.0f}, worker {extra['worker']:+.0f}, receiver "
                 f"{extra['sink']:+.0f}, ingest {extra['ingest']:+.0f}, RabbitMQ {extra['rabbitmq']:+.0f}).\n")
    if not smoke:
        fh.write(analysis)
print(open(out).read())
# A smoke run asserts no timing, only that the pipeline lost nothing.
if smoke and not all(j(f"e2e{w}")["e2e"]["complete"] for w in ("1", "2", "-dest")):
    sys.exit("smoke: not every accepted event was processed")
if smoke and not j("e2e-dest")["delivery"]["complete"]:
    sys.exit("smoke: not every delivery reached the destination")
if smoke and not drain["complete"]:
    sys.exit("smoke: the drain-only step did not process every queued event")
if smoke and not ceiling["statuses"].get("202"):
    sys.exit("smoke: the ceiling server stored nothing")
PY
