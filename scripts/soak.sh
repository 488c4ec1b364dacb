#!/usr/bin/env bash
# make soak: hookline-ingest under steady load for SOAK_SECS (default 600) at SOAK_RATE req/s
# (default 8000), sampling its RSS every 30 s. Memory must stay flat: the last sample may
# not exceed the one after warm-up by more than 10 %.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
secs="${SOAK_SECS:-600}"; rate="${SOAK_RATE:-8000}"; profile="${PROFILE:-release}"
work="$RUN_DIR/soak"; mkdir -p "$work"
scripts/ensure_services.sh
cargo build --profile "$profile" --bin hookline-ingest --bin hookline-bench
bin="target/$([ "$profile" = dev ] && echo debug || echo "$profile")"
pg="postgres://root@127.0.0.1:5432"
psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS hookline_soak WITH (FORCE)" -qc "CREATE DATABASE hookline_soak"
cat >"$work/hookline.toml" <<TOML
[http]
addr = "127.0.0.1:18190"
[admin]
addr = "127.0.0.1:18191"
[database]
url = "$pg/hookline_soak"
[amqp]
prefix = "hookline_soak_$$"
[telemetry]
log_level = "warn"
[sources.bench]
verifier = "token"
secrets = ["bench-token"]
dedup_key = "{header:x-bench-id}"
TOML
have rabbitmqctl && { rabbitmqctl -q set_policy --apply-to queues hl-soak-expiry '^hookline_soak_' '{"expires":120000}' >/dev/null 2>&1 || true; }
HOOKLINE_CONFIG="$work/hookline.toml" "$bin/hookline-ingest" >"$work/ingest.log" 2>&1 & ingest=$!
trap 'kill -TERM $ingest 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -fsS http://127.0.0.1:18190/readyz >/dev/null 2>&1 && break; sleep 0.1; done
"$bin/hookline-bench" load --addr 127.0.0.1:18190 --source bench --rate "$rate" --duration "$secs" --dup-ratio 0.3 \
  --label soak >"$work/soak.json" &
loadpid=$!
echo "elapsed_s rss_mib"
samples=()
for ((t = 30; t <= secs; t += 30)); do
  sleep 30
  rss=$(awk '/VmRSS/ {printf "%.1f", $2/1024}' /proc/$ingest/status)
  samples+=("$rss"); echo "$t $rss"
done
wait $loadpid
cat "$work/soak.json"
first=${samples[1]:-${samples[0]}}; last=${samples[-1]}
peak=$(awk '/VmHWM/ {printf "%.1f", $2/1024}' /proc/$ingest/status)
python3 -c "import sys; f,l,p=float('$first'),float('$last'),float('$peak'); print(f'RSS after warm-up {f} MiB, at end {l} MiB, peak {p} MiB'); sys.exit(0 if l <= f*1.10 and p <= 64 else 1)" \
  && say "memory flat and under 64 MiB" || die "memory grew more than 10 % during the soak or peaked over 64 MiB"
