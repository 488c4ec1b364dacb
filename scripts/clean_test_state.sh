#!/usr/bin/env bash
# Drops databases and RabbitMQ queues left by earlier test runs (names start with hl_test_),
# and installs a policy that expires idle test queues, so runs never pile up state.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
server="${HOOKLINE_TEST_DATABASE_URL:-postgres://root@127.0.0.1:5432}"
if have psql; then
  for db in $(psql "$server/postgres" -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'hl_test_%'"); do
    psql "$server/postgres" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" || true
  done
fi
if have rabbitmqctl; then
  rabbitmqctl -q set_policy --apply-to queues hl-test-expiry '^hl_test_' '{"expires":120000}' >/dev/null 2>&1 || true
fi
