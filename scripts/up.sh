#!/usr/bin/env bash
# Starts the local pipeline: services, database, then hookline-ingest and hookline-worker
# in the background (pids and logs in .run/), and waits until ingest is ready.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

scripts/ensure_services.sh
DATABASE_URL="postgres://root@127.0.0.1:5432/hookline" scripts/init_db.sh

profile="${PROFILE:-release}"
say "building hookline ($profile)"
cargo build --profile "$profile" --bin hookline-ingest --bin hookline-worker --bin hookline
bin="target/$([ "$profile" = dev ] && echo debug || echo "$profile")"

mkdir -p "$RUN_DIR"
export HOOKLINE_CONFIG="${HOOKLINE_CONFIG:-config/hookline.toml}"
export HOOKLINE_ADMIN_TOKEN="${HOOKLINE_ADMIN_TOKEN:-dev-admin-token}"
export APIFY_WEBHOOK_TOKEN="${APIFY_WEBHOOK_TOKEN:-dev-apify-token}"
export HOOKLINE__TELEMETRY__LOG_FORMAT="${HOOKLINE__TELEMETRY__LOG_FORMAT:-json}"

start() {
  local name=$1
  local pidfile="$RUN_DIR/$name.pid"
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    say "$name already running (pid $(cat "$pidfile"))"
    return
  fi
  nohup "$bin/$name" >>"$RUN_DIR/$name.log" 2>&1 &
  echo $! >"$pidfile"
  say "started $name (pid $!, log $RUN_DIR/$name.log)"
}
start hookline-ingest
start hookline-worker

for _ in $(seq 1 150); do
  if curl -fsS http://127.0.0.1:8080/readyz >/dev/null 2>&1; then
    cat <<MSG

Hookline is up.
  webhooks:  http://127.0.0.1:8080/webhooks/{source}
  admin:     http://127.0.0.1:8081  (token: \$HOOKLINE_ADMIN_TOKEN = $HOOKLINE_ADMIN_TOKEN)
  logs:      $RUN_DIR/hookline-ingest.log, $RUN_DIR/hookline-worker.log

Try it:
  curl -i -X POST http://127.0.0.1:8080/webhooks/apify \\
       -H 'x-hookline-token: $APIFY_WEBHOOK_TOKEN' -H 'content-type: application/json' \\
       -d '{"eventType":"ACTOR.RUN.SUCCEEDED","eventData":{"actorRunId":"run-1"},"resource":{"status":"SUCCEEDED"}}'
  curl -s -H 'authorization: Bearer $HOOKLINE_ADMIN_TOKEN' http://127.0.0.1:8081/v1/resources/apify/run-1
Stop with: make down
MSG
    exit 0
  fi
  sleep 0.2
done
tail -n 20 "$RUN_DIR/hookline-ingest.log" >&2 || true
die "hookline-ingest did not become ready within 30 s (see $RUN_DIR/hookline-ingest.log)"
