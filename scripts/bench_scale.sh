#!/usr/bin/env bash
# make bench-scale: does ingest cost stay flat as stored work grows? In ONE run, two ingest
# processes, one on an empty database and one on a database holding BENCH_SCALE_EVENTS
# (default 20 M) events filled by SQL straight into the partitions (~40-byte keys, 1 KiB
# payloads for the days inside retention.payload, one settled HTTP delivery per event):
# unique-key load on each in turn, three rounds (this shared box drifts by tens of percent
# within minutes, so only alternating runs compare), then the same load on the full one
# while `hookline retention run` makes a maintenance pass (drops a day of events and of
# payloads, switches the key generation, prunes a source's events and payloads in batches,
# and that day's deliveries in batches), measured from the pass's start to its end. Writes
# a section of BENCHMARKS.md between its markers; the bench databases are dropped at the
# end. BENCH_SECS sets each timed step (default 20), BENCH_ROUNDS the rounds (3). Needs
# ~21 GB of free disk for 20 M events; the fill stops (and says so) when free disk falls
# under BENCH_MIN_FREE_GB (default 3), and the run goes on with what it stored.
# BENCH_KEEP_DB=1 keeps the full database afterwards (for EXPLAIN and friends).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

events="${BENCH_SCALE_EVENTS:-20000000}"
secs="${BENCH_SECS:-20}"
rounds="${BENCH_ROUNDS:-3}"
profile="${PROFILE:-release}"
out="${BENCH_OUT:-BENCHMARKS.md}"
days=22          # of stored events, before today; retention.events is 21d, so the oldest day expires
payload_days=4   # the newest days keep payloads; retention.payload is 3d, so the oldest of them expires
conns=64
min_free_gb="${BENCH_MIN_FREE_GB:-3}"
work="$RUN_DIR/bench-scale"
mkdir -p "$work"
rm -f "$work"/*.json "$work"/measure "$work"/stop

scripts/ensure_services.sh
# Free disk where PostgreSQL writes (its data directory when this user can see it).
pg_dir=$(psql "postgres://root@127.0.0.1:5432/postgres" -Atc "SHOW data_directory" 2>/dev/null || true)
[ -n "$pg_dir" ] && [ -d "$pg_dir" ] || pg_dir=.
free_mb() { df -Pk "$pg_dir" | awk 'NR == 2 {printf "%d", $4 / 1024}'; }
free_gb=$(($(free_mb) / 1024))
need_gb=$((events * 900 / 1000000000 + min_free_gb))
[ "$free_gb" -ge "$need_gb" ] || die "about $need_gb GB of free disk needed for $events events, $free_gb GB free"

say "building ($profile)"
cargo build --profile "$profile" --bin hookline-ingest --bin hookline --bin hookline-bench
bin="target/$([ "$profile" = dev ] && echo debug || echo "$profile")"

pg="postgres://root@127.0.0.1:5432"
db="hookline_bench_scale"
empty_db="hookline_bench_scale_empty"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for d in "$db" "$empty_db"; do
    if [ -n "${BENCH_KEEP_DB:-}" ] && [ "$d" = "$db" ]; then
      warn "BENCH_KEEP_DB: kept database $d (drop it when done: it holds the whole fill)"
      continue
    fi
    psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1 || warn "could not drop $d"
  done
}
trap cleanup EXIT
wait_http() { for _ in $(seq 1 300); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; die "$1 not ready"; }
now_unix() { date +%s.%N; }

cat >"$work/hookline.toml" <<TOML
[http]
addr = "127.0.0.1:18190"
[admin]
addr = "127.0.0.1:18191"
[database]
url = "$pg/$db"
pool_size = 16
[amqp]
prefix = "hookline_bench_scale_$$"
[retention]
dedup_horizon = "3d"
payload = "3d"
events = "21d"
interval = "24h"
[telemetry]
log_level = "warn"
[sources.bench]
verifier = "token"
secrets = ["bench-token"]
dedup_key = "{header:x-bench-id}"
resource_key = "{json:/eventData/actorRunId}"
status = "{json:/resource/status}"
lifecycle = "apify-run"
[sources.aux]
verifier = "token"
secrets = ["bench-token"]
dedup_key = "{header:x-bench-id}"
payload = "1d"
events = "14d"
TOML
export HOOKLINE_CONFIG="$work/hookline.toml"
have rabbitmqctl && { rabbitmqctl -q set_policy --apply-to queues hl-bench-expiry '^hookline_bench_' '{"expires":120000}' >/dev/null 2>&1 || true; }

# start_ingest PORT DATABASE: in the background, until /readyz answers.
start_ingest() {
  HOOKLINE__HTTP__ADDR="127.0.0.1:$1" HOOKLINE__ADMIN__ADDR="127.0.0.1:$(($1 + 1))" \
    HOOKLINE__DATABASE__URL="$pg/$2" "$bin/hookline-ingest" >>"$work/ingest-$2.log" 2>&1 &
  pids+=($!)
  wait_http "http://127.0.0.1:$1/readyz"
}
# load PORT LABEL: BENCH_SECS of unique keys spread over the key space, 1 KiB bodies,
# ~40-byte keys; a short unmeasured warm-up first.
load() {
  "$bin/hookline-bench" load --addr "127.0.0.1:$1" --source bench --connections "$conns" --duration 3 \
    --scatter-keys --body-bytes 1024 --run "warm-$2-$$" >/dev/null
  "$bin/hookline-bench" load --addr "127.0.0.1:$1" --source bench --connections "$conns" --duration "$secs" \
    --scatter-keys --body-bytes 1024 --run "scale-$2-$$-0123456" --timeline --label "$2"
}
for d in "$db" "$empty_db"; do
  psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS $d WITH (FORCE)" -qc "CREATE DATABASE $d"
done
# Both ingests migrate their database and make their start-up maintenance pass now, before
# the fill: the pass measured below is the CLI's.
start_ingest 18190 "$db"
start_ingest 18194 "$empty_db"

# --- fill ---------------------------------------------------------------------------------
say "filling $events events over $days days by SQL (payloads for the newest $payload_days days, a delivery per event)"
fill_started=$(now_unix)
per_day=$((events / days))
# The fill stops once free disk falls under $min_free_gb GB: every later step stores no rows
# (the partitions ingest and the pass need are still made, empty), and the run goes on.
stopped=""
room() {
  [ -z "$stopped" ] || return 1
  local mb
  mb=$(free_mb)
  if [ "$mb" -lt $((min_free_gb * 1024)) ]; then
    stopped="free disk fell to $(awk -v m="$mb" 'BEGIN {printf "%.1f", m / 1024}') GB (under $min_free_gb GB) before $1"
    warn "fill stopped: $stopped; going on with what is stored"
    return 1
  fi
}
# The fresh database's legacy partitions (empty) cover everything before tomorrow; a
# long-running database has daily ones. Replace them, and the first key generation.
psql "$pg/$db" -v ON_ERROR_STOP=1 -q <<'SQL'
ALTER TABLE events DETACH PARTITION events_legacy;
DROP TABLE events_legacy;
ALTER TABLE event_payloads DETACH PARTITION event_payloads_legacy;
DROP TABLE event_payloads_legacy;
ALTER TABLE transitions DETACH PARTITION transitions_legacy;
DROP TABLE transitions_legacy;
ALTER TABLE dedup_keys DETACH PARTITION dedup_keys_g1;
ALTER TABLE dedup_keys DETACH PARTITION dedup_keys_g2;
DROP TABLE dedup_keys_g1, dedup_keys_g2;
DELETE FROM dedup_generations;
-- The start-up pass recorded how far batched prunes got; the fill adds rows before that.
DELETE FROM retention_progress;
SQL
# uuid_floor(t): the smallest UUIDv7 of t's millisecond, as the partitions' bounds.
floor_sql="lpad(to_hex((extract(epoch FROM %s) * 1000)::bigint), 12, '0') || '00000000000000000000'"
for ((d = days; d >= 0; d--)); do
  day_sql="date_trunc('day', now(), 'UTC') - interval '$d days'"
  suffix=$(psql "$pg/$db" -Atc "SELECT to_char(($day_sql) AT TIME ZONE 'UTC', 'YYYYMMDD')")
  lo=$(psql "$pg/$db" -Atc "SELECT ($(printf "$floor_sql" "($day_sql)"))::uuid")
  hi=$(psql "$pg/$db" -Atc "SELECT ($(printf "$floor_sql" "($day_sql + interval '1 day')"))::uuid")
  rows=$per_day
  [ "$d" = 0 ] && rows=0 # today: ingest's own
  [ "$rows" = 0 ] || room "day -$d's events" || rows=0
  printf '  day -%s (%s): %s events (%s MB free)\n' "$d" "$suffix" "$rows" "$(free_mb)" >&2
  psql "$pg/$db" -v ON_ERROR_STOP=1 -q <<SQL
BEGIN;
CREATE TABLE events_p$suffix (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
INSERT INTO events_p$suffix (id, source, dedup_key, resource_key, status, state, received_at, processed_at)
SELECT (lpad(to_hex(x.ms), 12, '0') || '7' || substr(x.h, 1, 3) || '8' || substr(x.h, 4, 15))::uuid,
       CASE WHEN i % 50 = 0 THEN 'aux' ELSE 'bench' END,
       'evt_' || substr(x.h, 5, 24) || ':ACTOR.RUN', 'run-' || (i % 100000), 'SUCCEEDED', 'processed',
       to_timestamp(x.ms / 1000.0), to_timestamp(x.ms / 1000.0) + interval '40 milliseconds'
FROM generate_series(1, $rows) i,
     LATERAL (SELECT md5('$suffix:' || i) AS h,
                     (extract(epoch FROM $day_sql) * 1000)::bigint + (i::bigint * 86400000 / ($rows + 1)) AS ms) x;
ALTER TABLE events ATTACH PARTITION events_p$suffix FOR VALUES FROM ('$lo') TO ('$hi');
CREATE TABLE transitions_p$suffix PARTITION OF transitions FOR VALUES FROM ($day_sql) TO ($day_sql + interval '1 day');
COMMIT;
SQL
  # Older days' payload partitions are long gone in a database that has been running.
  if [ "$d" -le "$payload_days" ]; then
    with_payloads=1
    [ "$rows" = 0 ] || room "day -$d's payloads" || with_payloads=0
    psql "$pg/$db" -v ON_ERROR_STOP=1 -q <<SQL
BEGIN;
CREATE TABLE event_payloads_p$suffix (LIKE event_payloads INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
INSERT INTO event_payloads_p$suffix (id, headers, query, body)
SELECT id, '[{"name": "content-type", "value": "application/json"}, {"name": "x-bench-id", "value": "evt"}]',
       '', convert_to(repeat(md5(id::text), 32), 'UTF8')
FROM events_p$suffix WHERE $with_payloads = 1;
ALTER TABLE event_payloads ATTACH PARTITION event_payloads_p$suffix FOR VALUES FROM ('$lo') TO ('$hi');
COMMIT;
SQL
  fi
  # One HTTP delivery per event, settled 50 ms after receipt as a destination's would be
  # (one in a thousand dead, one in five thousand still pending: a paused destination).
  [ "$rows" = 0 ] || ! room "day -$d's deliveries" || psql "$pg/$db" -v ON_ERROR_STOP=1 -q <<SQL
INSERT INTO deliveries (event_id, destination, source, resource_key, status, outcome, state, attempts,
                        last_status, latency_ms, next_attempt_at, created_at, delivered_at)
SELECT id, 'bench-dest', source, resource_key, status, 'applied',
       CASE WHEN n % 5000 = 0 THEN 'pending' WHEN n % 1000 = 0 THEN 'dead' ELSE 'delivered' END,
       CASE WHEN n % 1000 = 0 THEN 8 ELSE 1 END, CASE WHEN n % 1000 = 0 THEN 503 ELSE 204 END, 30,
       received_at + interval '1 day', received_at + interval '50 milliseconds',
       CASE WHEN n % 1000 = 0 THEN NULL ELSE received_at + interval '80 milliseconds' END
FROM (SELECT id, source, resource_key, status, received_at, row_number() OVER (ORDER BY id) AS n
      FROM events_p$suffix) e
ORDER BY id;
SQL
done
# Key generations of 3 days (the dedup horizon), the current one 3 days old, so the pass
# switches it; every stored event's key in the generation current at its receipt.
psql "$pg/$db" -v ON_ERROR_STOP=1 -q <<'SQL'
INSERT INTO dedup_generations (generation, started_at)
  SELECT k, now() - (9 - k) * interval '3 days' FROM generate_series(1, 8) k;
SQL
for ((g = 1; g <= 8; g++)); do
  with_keys=1
  room "key generation $g" || with_keys=0
  psql "$pg/$db" -v ON_ERROR_STOP=1 -q <<SQL
DO \$\$
DECLARE
  g record;
  lo uuid;
  hi uuid;
BEGIN
  SELECT started_at, (SELECT started_at FROM dedup_generations WHERE generation = $g + 1) AS ended_at
    INTO g FROM dedup_generations WHERE generation = $g;
  lo := (lpad(to_hex((extract(epoch FROM g.started_at) * 1000)::bigint), 12, '0') || '00000000000000000000')::uuid;
  hi := (lpad(to_hex((extract(epoch FROM coalesce(g.ended_at, now() + interval '1 day')) * 1000)::bigint), 12, '0')
         || '00000000000000000000')::uuid;
  CREATE TABLE dedup_keys_g$g (LIKE dedup_keys INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
  INSERT INTO dedup_keys_g$g (generation, source, dedup_key, event_id, received_at)
    SELECT $g, source, dedup_key, id, received_at FROM events WHERE id >= lo AND id < hi AND $with_keys = 1;
  ALTER TABLE dedup_keys ATTACH PARTITION dedup_keys_g$g FOR VALUES FROM ($g) TO ($g + 1);
END
\$\$;
SQL
done
psql "$pg/$db" -v ON_ERROR_STOP=1 -q <<'SQL'
CREATE TABLE dedup_keys_g9 PARTITION OF dedup_keys FOR VALUES FROM (9) TO (10);
ANALYZE events;
ANALYZE event_payloads;
ANALYZE dedup_keys;
ANALYZE deliveries;
CHECKPOINT;
SQL
fill_s=$(awk -v a="$fill_started" -v b="$(now_unix)" 'BEGIN {printf "%.0f", b - a}')
[ -z "$stopped" ] || warn "the fill stopped early: $stopped"
HOOKLINE__DATABASE__URL="$pg/$db" "$bin/hookline" retention status --json >"$work/status-filled.json"

# --- alternating rounds, then a maintenance pass under load ---------------------------------
for ((r = 1; r <= rounds; r++)); do
  say "round $r/$rounds: empty database"
  load 18194 "empty-$r" >"$work/empty-$r.json"
  say "round $r/$rounds: $events stored events"
  load 18190 "filled-$r" >"$work/filled-$r.json"
done
say "$events stored events: unique keys during a maintenance pass"
# The load runs on until the pass has ended; its figures cover exactly the pass (from
# $work/measure to $work/stop), its timeline the whole step.
"$bin/hookline-bench" load --addr 127.0.0.1:18190 --source bench --connections "$conns" --duration 3 \
  --scatter-keys --body-bytes 1024 --run "warm-maintenance-$$" >/dev/null
"$bin/hookline-bench" load --addr 127.0.0.1:18190 --source bench --connections "$conns" --duration 1800 \
  --scatter-keys --body-bytes 1024 --run "scale-maintenance-$$-0123456" --timeline --label maintenance \
  --measure-from-file "$work/measure" --stop-file "$work/stop" >"$work/maintenance.json" &
loader=$!
sleep 3
# Per-process CPU over the pass (utime + stime, clock ticks): PostgreSQL's backends, ingest,
# the load generator.
cpu_ticks() {
  local total=0 pid t
  for pid in $(pgrep -d ' ' "$1"); do
    t=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)
    total=$((total + t))
  done
  echo "$total"
}
cpu_before=("$(cpu_ticks postgres)" "$(cpu_ticks hookline-ingest)" "$(cpu_ticks hookline-bench)")
touch "$work/measure"
pass_started=$(now_unix)
HOOKLINE__DATABASE__URL="$pg/$db" "$bin/hookline" retention run --json >"$work/pass.json"
pass_ended=$(now_unix)
cpu_after=("$(cpu_ticks postgres)" "$(cpu_ticks hookline-ingest)" "$(cpu_ticks hookline-bench)")
touch "$work/stop"
wait "$loader"
HOOKLINE__DATABASE__URL="$pg/$db" "$bin/hookline" retention status --json >"$work/status-after.json"
hz=$(getconf CLK_TCK)
cat >"$work/pass-times.json" <<JSON
{"started": $pass_started, "ended": $pass_ended, "fill_s": $fill_s, "fill_stopped": "$stopped",
 "cpu_s": {"postgres": $(((cpu_after[0] - cpu_before[0]) * 100 / hz))e-2,
           "hookline-ingest": $(((cpu_after[1] - cpu_before[1]) * 100 / hz))e-2,
           "hookline-bench": $(((cpu_after[2] - cpu_before[2]) * 100 / hz))e-2}}
JSON

# --- report -------------------------------------------------------------------------------
python3 scripts/bench_scale_report.py "$work" "$out" "$rounds" "$secs"
