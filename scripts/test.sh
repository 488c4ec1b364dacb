#!/usr/bin/env bash
# Runs every test against the real PostgreSQL and RabbitMQ (started if needed).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
scripts/ensure_services.sh
scripts/clean_test_state.sh
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  warn "cargo-nextest not found; using cargo test (install: cargo install cargo-nextest --locked)"
  cargo test --workspace --no-fail-fast "$@" -- --test-threads 4
fi
