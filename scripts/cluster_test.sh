#!/usr/bin/env bash
# make cluster-test: a broker node dies under load, and nothing is lost.
#
# Starts a private 3-node RabbitMQ cluster on this machine (hl-c1..3@localhost, AMQP on
# 127.0.0.1:5691..5693, distribution on 25691..25693, no plugins, a cookie of its own,
# data and logs under .run/cluster), a release hookline-ingest and two hookline-workers
# with amqp.url = the three nodes, against a fresh database hl_cluster_test on the local
# PostgreSQL. It sends CLUSTER_EVENTS (default 20000) events plus CLUSTER_DUP_RATIO
# (default 0.3) duplicates, SIGKILLs the node leading the work queue a third of the way
# in, lets the load finish and the workers drain, and checks PostgreSQL against the keys
# the load generator was acknowledged (200/202) for: 0 lost, 0 decided twice, all
# processed. Prints the figures; exits non-zero on a violation. Cleans up everything it
# started (the shared rabbit@localhost node is never touched).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

events="${CLUSTER_EVENTS:-20000}"
dup_ratio="${CLUSTER_DUP_RATIO:-0.3}"
rate="${CLUSTER_RATE:-1500}"
profile="${PROFILE:-release}"
work="$PWD/$RUN_DIR/cluster"
rmq=/usr/lib/rabbitmq/bin
nodes=(hl-c1 hl-c2 hl-c3)
amqp_ports=(5691 5692 5693)
dist_ports=(25691 25692 25693)
pg="postgres://root@127.0.0.1:5432"
db=hl_cluster_test
prefix=hl_cluster
http=27180 admin=27181 worker_admin=(27182 27183)

[ -x "$rmq/rabbitmq-server" ] || die "RabbitMQ is not installed (apt-get install rabbitmq-server)"
have psql || die "psql is not installed (apt-get install postgresql-client)"
port_open 127.0.0.1 5432 || die "PostgreSQL is not running on 127.0.0.1:5432 (make services)"
for port in "${amqp_ports[@]}" "${dist_ports[@]}" "$http" "$admin" "${worker_admin[@]}"; do
  port_open 127.0.0.1 "$port" && die "port $port is in use (another cluster test running?)"
done

say "building ($profile)"
cargo build --profile "$profile" --bin hookline-ingest --bin hookline-worker --bin hookline-bench
bin="$PWD/target/$([ "$profile" = dev ] && echo debug || echo "$profile")"

rm -rf "$work"
mkdir -p "$work/home"
# A cookie of our own: the private nodes and our rabbitmqctl calls share it, and nothing
# here can reach the shared node.
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/home/.erlang.cookie"
chmod 400 "$work/home/.erlang.cookie"
echo '[].' >"$work/enabled_plugins" # no management/prometheus: nothing binds 15672/15692
: >"$work/rabbitmq-env.conf"          # not /etc/rabbitmq/rabbitmq-env.conf (rabbit@localhost's)

# rmq_env I CMD...: CMD in node I's environment.
rmq_env() {
  local i=$1 n=${nodes[$1]}
  shift
  mkdir -p "$work/$n"
  printf 'listeners.tcp.local = 127.0.0.1:%s\n' "${amqp_ports[$i]}" >"$work/$n/rabbitmq.conf"
  env HOME="$work/home" \
    RABBITMQ_CONF_ENV_FILE="$work/rabbitmq-env.conf" \
    RABBITMQ_CONFIG_FILE="$work/$n/rabbitmq.conf" \
    RABBITMQ_ADVANCED_CONFIG_FILE="$work/$n/advanced.config" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$work/enabled_plugins" \
    RABBITMQ_NODENAME="$n@localhost" \
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT="${amqp_ports[$i]}" \
    RABBITMQ_DIST_PORT="${dist_ports[$i]}" \
    RABBITMQ_MNESIA_BASE="$work/$n/mnesia" \
    RABBITMQ_LOG_BASE="$work/$n/log" \
    RABBITMQ_PID_FILE="$work/$n/pid" \
    ERL_EPMD_ADDRESS=127.0.0.1 \
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
    "$@"
}
# ctl NODE ARGS...: rabbitmqctl against one of our nodes (never rabbit@localhost).
ctl() {
  env HOME="$work/home" RABBITMQ_CONF_ENV_FILE="$work/rabbitmq-env.conf" ERL_EPMD_ADDRESS=127.0.0.1 \
    "$rmq/rabbitmqctl" -q -n "$1@localhost" "${@:2}"
}

pids=()       # hookline processes
beams=()      # the nodes' Erlang VMs (OS pids), for a last-resort kill
killed=""
cleanup() {
  set +e
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  for n in "${nodes[@]}"; do [ "$n" = "$killed" ] || ctl "$n" stop >/dev/null 2>&1; done
  for p in "${beams[@]}"; do kill -KILL "$p" 2>/dev/null; done
  psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
  rm -rf "$work"/hl-c*/mnesia
}
trap cleanup EXIT

say "starting 3 RabbitMQ nodes"
for i in 0 1 2; do
  rmq_env "$i" "$rmq/rabbitmq-server" >"$work/${nodes[$i]}.out" 2>&1 &
done
for i in 0 1 2; do
  n=${nodes[$i]}
  for _ in $(seq 1 120); do ctl "$n" status >/dev/null 2>&1 && break; sleep 1; done
  ctl "$n" await_startup >/dev/null || die "$n did not start (see $work/$n.out, $work/$n/log)"
  beams+=("$(ctl "$n" eval 'list_to_integer(os:getpid()).')")
done
for n in hl-c2 hl-c3; do
  ctl "$n" stop_app >/dev/null
  ctl "$n" join_cluster hl-c1@localhost >/dev/null
  ctl "$n" start_app >/dev/null
done
say "running nodes: $(ctl hl-c1 eval 'rabbit_nodes:all_running().' | tr -d '\n ')"
# The work queue's delivery limit and dead-letter target, as a policy (docs/cluster.md):
# a message redelivered 20 times (a poison message that kills workers) goes to the dead
# queue instead of crash-looping the workers forever.
ctl hl-c1 set_policy --apply-to queues hookline-work "^$prefix\\.work\$" \
  "{\"delivery-limit\":20,\"dead-letter-exchange\":\"$prefix\",\"dead-letter-routing-key\":\"dead\"}" >/dev/null

say "starting hookline-ingest and 2 hookline-workers"
psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" -qc "CREATE DATABASE $db"
urls=""
for port in "${amqp_ports[@]}"; do urls="$urls\"amqp://guest:guest@127.0.0.1:$port/%2f\", "; done
cat >"$work/hookline.toml" <<TOML
[http]
addr = "127.0.0.1:$http"
[admin]
addr = "127.0.0.1:$admin"
[database]
url = "$pg/$db"
pool_size = 16
[amqp]
url = [${urls%, }]
prefix = "$prefix"
[worker]
admin_addr = "127.0.0.1:${worker_admin[0]}"
[telemetry]
log_format = "json"
log_level = "info"
[sources.bench]
verifier = "token"
secrets = ["bench-token"]
dedup_key = "{header:x-bench-id}"
resource_key = "{json:/eventData/actorRunId}"
status = "{json:/resource/status}"
lifecycle = "apify-run"
TOML
export HOOKLINE_CONFIG="$work/hookline.toml"
wait_http() { for _ in $(seq 1 300); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.2; done; die "$1 not ready"; }
"$bin/hookline-ingest" >"$work/ingest.log" 2>&1 & pids+=($!)
wait_http "http://127.0.0.1:$http/readyz"
for i in 0 1; do
  HOOKLINE__WORKER__ADMIN_ADDR="127.0.0.1:${worker_admin[$i]}" "$bin/hookline-worker" >"$work/worker$i.log" 2>&1 &
  pids+=($!)
  wait_http "http://127.0.0.1:${worker_admin[$i]}/readyz"
done
queue_line() { ctl "$1" list_queues name type leader members | awk -v q="$prefix.work" '$1 == q'; }
say "work queue: $(queue_line hl-c1)"

say "loading $events events (+${dup_ratio} duplicates) at $rate req/s"
run="c$(date +%s)"
"$bin/hookline-bench" load --addr "127.0.0.1:$http" --source bench --secret bench-token \
  --events "$events" --dup-ratio "$dup_ratio" --rate "$rate" --connections 32 --resources 500 \
  --run "$run" --acked-out "$work/acked.txt" --label cluster >"$work/load.json" 2>"$work/load.err" &
load=$!

accepted() {
  curl -fsS "http://127.0.0.1:$admin/metrics" 2>/dev/null |
    awk '/^hookline_ingest_requests_total/ && /outcome="accepted"/ {s += $NF} END {printf "%d", s}'
}
until [ "$(accepted)" -ge $((events / 3)) ]; do
  kill -0 "$load" 2>/dev/null || die "the load ended before a third of it was accepted (see $work/load.err)"
  sleep 0.2
done
leader=$(queue_line hl-c1 | awk '{print $3}')
leader=${leader%@localhost}
for i in 0 1 2; do [ "${nodes[$i]}" = "$leader" ] && victim=$i; done
[ -n "${victim:-}" ] || die "no leader found for $prefix.work"
kill -KILL "${beams[$victim]}"
killed=$leader
at_kill=$(accepted)
say "killed $leader (the work queue's leader, SIGKILL) after $at_kill accepted events"
survivor=$(for n in "${nodes[@]}"; do [ "$n" = "$leader" ] || { echo "$n"; break; }; done)

wait "$load" || die "the load generator failed (see $work/load.err)"
cat "$work/load.err" >&2
say "work queue now: $(queue_line "$survivor")"

say "draining, then auditing PostgreSQL"
status=0
"$bin/hookline-bench" audit --database-url "$pg/$db" --source bench --run "$run" \
  --acked "$work/acked.txt" --wait-secs 300 >"$work/audit.json" || status=$?

metric() { # PORT NAME FILTER: the sum of a counter's samples matching FILTER
  curl -fsS "http://127.0.0.1:$1/metrics" 2>/dev/null |
    awk -v m="$2" -v f="$3" 'index($0, m) == 1 && (f == "" || index($0, f)) {s += $NF} END {printf "%d", s}'
}
redelivered=0
for port in "${worker_admin[@]}"; do
  redelivered=$((redelivered + $(metric "$port" hookline_worker_events_total 'outcome="redelivered"')))
done
republished=$(metric "$admin" hookline_outbox_republished_total "")
failovers=$(cat "$work"/ingest.log "$work"/worker*.log | grep -c '"connected to broker node"' || true)

echo
echo "cluster test: 3 nodes, killed $leader (work queue leader) at $at_kill accepted events"
python3 - "$work/load.json" "$work/audit.json" <<'PY' || cat "$work/load.json" "$work/audit.json"
import json, sys
load = json.load(open(sys.argv[1])); audit = json.load(open(sys.argv[2]))
print(f"  load:   {load['requests']} requests in {load['duration_s']:.1f} s ({load['rps']:.0f} req/s), statuses {load['statuses']}, errors {load['errors']}")
print(f"  audit:  {audit['acked']} acknowledged events, {audit['lost']} lost, {audit['stored']} stored, "
      f"{audit['processed']} processed, {audit['unprocessed']} unprocessed, {audit['decided_twice']} decided twice "
      f"({audit['transitions']} transitions), drained in {audit['drain_wait_s']:.1f} s")
PY
echo "  broker: $redelivered redeliveries caught by the workers (already processed), $republished outbox republishes, $failovers connections made to a node (start-up and failover)"
[ "$status" = 0 ] && echo "PASS: 0 acknowledged events lost, 0 processed twice, every event processed" ||
  { echo "FAIL: see $work/audit.json"; exit 1; }
