#!/usr/bin/env bash
# make chaos: >= 50 000 webhooks (fresh resources, shuffled statuses, duplicates) through a
# release hookline-ingest and two hookline-workers while a schedule SIGKILLs ingest and the
# workers, stops and starts the broker and restarts PostgreSQL (fast and immediate, i.e. a
# crash). Every decision is also POSTed to an HTTP destination (a receiver on 127.0.0.1:18394
# that records each webhook-id and is never killed). Then it drains and checks in PostgreSQL:
# acknowledged events lost, events decided twice, applied downgrades, events not final,
# processed events not delivered or never received (all must be 0); non-zero exit on any.
#
# Everything runs on a private stack under .run/chaos: a PostgreSQL cluster of its own
# (initdb, port 55432) and a RabbitMQ node of its own (hl-chaos@localhost, port 5682, no
# plugins), so it can run beside the shared services and other engineers' tests, and kill
# and restart freely. Nothing here touches 127.0.0.1:5432, 5672 or rabbit@localhost.
# CHAOS_RESOURCES (12 500) x 4 statuses = the events; CHAOS_RATE (500) deliveries/s;
# CHAOS_INTERVAL (8) seconds between chaos actions; CHAOS_KEEP=1 keeps the data dirs.
# About 4 minutes after the build.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

resources="${CHAOS_RESOURCES:-12500}"
statuses=4
rate="${CHAOS_RATE:-500}"
interval="${CHAOS_INTERVAL:-8}"
profile="${PROFILE:-release}"
dir="$(pwd)/$RUN_DIR/chaos"
pg_port=55432 mq_port=5682 mq_dist_port=25682
http_port=18390 admin_port=18391
mq_node="hl-chaos@localhost"
secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
sink_port=18394

say "building ($profile)"
cargo build --profile "$profile" --bin hookline-ingest --bin hookline-worker --bin hookline-bench
bin="$(pwd)/target/$([ "$profile" = dev ] && echo debug || echo "$profile")"

. scripts/private_stack.sh

# --- Hookline -----------------------------------------------------------------------
declare -A pid=()
start() {
  local name=$1
  case $name in
    ingest) "$bin/hookline-ingest" >>"$dir/ingest.log" 2>&1 & ;;
    worker1) HOOKLINE__WORKER__ADMIN_ADDR=127.0.0.1:18392 "$bin/hookline-worker" >>"$dir/worker1.log" 2>&1 & ;;
    worker2) HOOKLINE__WORKER__ADMIN_ADDR=127.0.0.1:18393 "$bin/hookline-worker" >>"$dir/worker2.log" 2>&1 & ;;
  esac
  pid[$name]=$!
}
alive() { [ -n "${pid[$1]:-}" ] && kill -0 "${pid[$1]}" 2>/dev/null; }
sigkill() { alive "$1" && { kill -KILL "${pid[$1]}"; wait "${pid[$1]}" 2>/dev/null || true; }; return 0; }

sender=""
sink=""
cleanup() {
  set +e
  [ -n "$sender" ] && kill -TERM "$sender" 2>/dev/null
  [ -n "$sink" ] && kill -TERM "$sink" 2>/dev/null
  for name in "${!pid[@]}"; do alive "$name" && kill -TERM "${pid[$name]}"; done
  for name in "${!pid[@]}"; do wait "${pid[$name]}" 2>/dev/null; done
  KEEP="${CHAOS_KEEP:-}" stack_down
}

# --- set up -------------------------------------------------------------------------
for port in $http_port $admin_port 18392 18393 $sink_port; do
  port_open 127.0.0.1 $port && die "port $port is in use: is another make chaos running?"
done
trap cleanup EXIT
stack_init "$dir" $pg_port $mq_port $mq_dist_port "$mq_node"
say "private PostgreSQL on 127.0.0.1:$pg_port ($dir/pg)"
pg_up
psql "$PG_URL/postgres" -qc "CREATE DATABASE hookline"
say "private RabbitMQ node $mq_node on 127.0.0.1:$mq_port ($dir/mq)"
mq_up

cat >"$dir/hookline.toml" <<TOML
[http]
addr = "127.0.0.1:$http_port"
[admin]
addr = "127.0.0.1:$admin_port"
[database]
url = "$PG_URL/hookline"
[amqp]
url = "$MQ_URL"
prefix = "chaos"
[worker]
admin_addr = "127.0.0.1:18392"
retry_base_ms = 500
retry_cap_ms = 5000
max_attempts = 20
[telemetry]
log_level = "info"
[sources.chaos]
preset = "standard-webhooks"
secrets = ["$secret"]
resource_key = "{json:/data/run}"
status = "{json:/data/status}"
lifecycle = "apify-run"

# Every decision is also POSTed to a receiver that is never killed; the check wants each
# processed event delivered, and in the receiver's record, after the drain.
[destinations.sink]
url = "http://127.0.0.1:$sink_port/hooks"
secret = "$secret"
outcomes = ["applied", "unchanged", "rejected_downgrade", "rejected_terminal"]
timeout = "2s"
retry = ["500ms", "1s", "2s", "5s"]
max_attempts = 1000
concurrency = 16
TOML
"$bin/hookline-bench" sink-server --addr "127.0.0.1:$sink_port" --record "$dir/received.txt" \
  >"$dir/sink.log" 2>&1 &
sink=$!
export HOOKLINE_CONFIG="$dir/hookline.toml" HOOKLINE__TELEMETRY__LOG_FORMAT=json
start ingest
for _ in $(seq 1 300); do curl -fsS "http://127.0.0.1:$http_port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS "http://127.0.0.1:$http_port/readyz" >/dev/null || die "ingest not ready (see $dir/ingest.log)"
start worker1
start worker2

# --- the run ------------------------------------------------------------------------
events=$((resources * statuses))
say "sending $events events ($resources resources x $statuses shuffled statuses, 30 % sent twice) at $rate/s"
started=$(date +%s)
"$bin/hookline-bench" chaos-send --addr "127.0.0.1:$http_port" --secret "$secret" --resources "$resources" \
  --statuses $statuses --rate "$rate" --acks "$dir/acks.txt" >"$dir/send.json" 2> >(tee "$dir/send.log" >&2) &
sender=$!

actions=0
act() { actions=$((actions + 1)); printf '  [%3ss] %s\n' $(($(date +%s) - started)) "$*" >&2; }
schedule=(
  "kill-ingest" "kill-worker1" "broker-restart" "kill-ingest-and-worker2" "pg-restart-fast"
  "kill-both-workers" "pg-restart-immediate" "broker-restart" "kill-ingest"
)
step=0
while kill -0 "$sender" 2>/dev/null; do
  for ((i = 0; i < interval * 2; i++)); do kill -0 "$sender" 2>/dev/null || break 2; sleep 0.5; done
  action=${schedule[$((step % ${#schedule[@]}))]}
  step=$((step + 1))
  case $action in
    kill-ingest) act "SIGKILL ingest"; sigkill ingest; sleep 1; start ingest ;;
    kill-worker1) act "SIGKILL worker1"; sigkill worker1; sleep 1; start worker1 ;;
    kill-ingest-and-worker2) act "SIGKILL ingest and worker2"; sigkill ingest; sigkill worker2; sleep 2; start ingest; start worker2 ;;
    kill-both-workers) act "SIGKILL both workers"; sigkill worker1; sigkill worker2; sleep 2; start worker1; start worker2 ;;
    broker-restart) act "stop the broker (5 s)"; mq_down; sleep 5; mq_up; act "broker started" ;;
    pg-restart-fast) act "restart PostgreSQL (fast)"; pg_restart_fast ;;
    pg-restart-immediate) act "restart PostgreSQL (immediate: a crash, then recovery)"; pg_crash_restart ;;
  esac
done
send_status=0
wait "$sender" || send_status=$?
sender=""
took=$(($(date +%s) - started))
say "sending done in ${took}s after $actions chaos actions; draining"
for name in ingest worker1 worker2; do alive "$name" || { warn "$name was not running; starting it"; start "$name"; }; done

check_status=0
"$bin/hookline-bench" chaos-check --database-url "$PG_URL/hookline" --acks "$dir/acks.txt" --events "$events" \
  --destination sink --received "$dir/received.txt" >"$dir/check.json" || check_status=$?
say "figures in $dir/check.json, logs in $dir/*.log"
[ "$send_status" = 0 ] || die "not every delivery was acknowledged (see $dir/send.log)"
[ "$check_status" = 0 ] || die "chaos check failed: see the figures above"
say "chaos: nothing lost, nothing decided twice, no downgrade applied, everything final and delivered"
