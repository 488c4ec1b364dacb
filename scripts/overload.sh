#!/usr/bin/env bash
# make overload: a release hookline-ingest with its database stalled (a transaction holding
# LOCK TABLE events) under OVERLOAD_CONNECTIONS (default 10 000) connections, then the
# recovery; crates/hookline_bench/src/overload.rs does the measuring. Prints the figures and
# fails when a target is missed: ingest peak RSS <= 128 MiB, every request answered within
# http.request_timeout + 1 s, throughput back to normal within 2 s of the stall ending.
# Runs on a private PostgreSQL cluster and RabbitMQ node under .run/overload
# (scripts/private_stack.sh), so it never stalls or loads the shared services. About 1 min
# (most of it RabbitMQ starting).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

profile="${PROFILE:-release}"
connections="${OVERLOAD_CONNECTIONS:-10000}"
timeout_s="${OVERLOAD_REQUEST_TIMEOUT_S:-8}"
work="$(pwd)/$RUN_DIR/overload"

cargo build --profile "$profile" --bin hookline-ingest --bin hookline-bench
bin="target/$([ "$profile" = dev ] && echo debug || echo "$profile")"

# Each connection is a descriptor on both ends (ingest and the load tool are two processes).
need=$((connections + 1000))
[ "$(ulimit -Hn)" -ge "$need" ] || die "ulimit -Hn is $(ulimit -Hn); $need descriptors are needed"
ulimit -n "$need"

. scripts/private_stack.sh
ingest=""
cleanup() {
  set +e
  [ -n "$ingest" ] && { kill -TERM "$ingest" 2>/dev/null; wait "$ingest" 2>/dev/null; }
  stack_down
}
port_open 127.0.0.1 18290 && die "port 18290 is in use: is another make overload running?"
trap cleanup EXIT
stack_init "$work" 55433 5683 25683 hl-overload@localhost
say "private PostgreSQL on 127.0.0.1:55433 and RabbitMQ node hl-overload@localhost on 127.0.0.1:5683"
pg_up
psql "$PG_URL/postgres" -qc "CREATE DATABASE hookline"
mq_up

cat >"$work/hookline.toml" <<TOML
[http]
addr = "127.0.0.1:18290"
request_timeout = "${timeout_s}s"
[admin]
addr = "127.0.0.1:18291"
[database]
url = "$PG_URL/hookline"
[amqp]
url = "$MQ_URL"
[telemetry]
log_level = "warn"
[sources.bench]
verifier = "token"
secrets = ["bench-token"]
dedup_key = "{header:x-bench-id}"
TOML
HOOKLINE_CONFIG="$work/hookline.toml" "$bin/hookline-ingest" >"$work/ingest.log" 2>&1 &
ingest=$!
for _ in $(seq 1 300); do curl -fsS http://127.0.0.1:18290/readyz >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS http://127.0.0.1:18290/readyz >/dev/null || die "ingest not ready (see $work/ingest.log)"

say "overload: $connections connections against a stalled database"
status=0
"$bin/hookline-bench" overload --addr 127.0.0.1:18290 --source bench --database-url "$PG_URL/hookline" \
  --pid "$ingest" --connections "$connections" --request-timeout-secs "$timeout_s" \
  >"$work/overload.json" || status=$?
cat "$work/overload.json"
[ "$status" = 0 ] && say "overload targets met" || die "overload targets missed (figures above)"
