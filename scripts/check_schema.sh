#!/usr/bin/env bash
# Fails if crates/hookline_db/src/schema.rs is not what `diesel print-schema` generates
# from a fresh database built by migrations/. Installs what it needs on a fresh
# Debian/Ubuntu machine (libpq-dev with apt as root, diesel_cli with cargo, once).
# Regenerate the file with: scripts/check_schema.sh --write
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

# The diesel_cli release matching diesel in Cargo.lock (2.3.x).
DIESEL_CLI_VERSION="${DIESEL_CLI_VERSION:-2.3.14}"
SCHEMA=crates/hookline_db/src/schema.rs
write=""
[ "${1:-}" = "--write" ] && write=1

ensure_libpq() {
  if [ -e /usr/include/postgresql/libpq-fe.h ] || pkg-config --exists libpq 2>/dev/null; then
    return 0
  fi
  if can_apt; then
    say "installing libpq-dev (apt)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libpq-dev >/dev/null
  else
    die "diesel_cli needs libpq. Run:
    sudo apt-get install -y libpq-dev"
  fi
}

ensure_diesel() {
  PATH="$HOME/.cargo/bin:$PATH"
  if have diesel; then return 0; fi
  ensure_libpq
  say "installing diesel_cli $DIESEL_CLI_VERSION (compiles for a few minutes, once)"
  cargo install diesel_cli --version "=$DIESEL_CLI_VERSION" \
    --no-default-features --features postgres --locked --quiet
}

ensure_diesel
have psql || die "psql not found (apt-get install postgresql-client)"

server="${HOOKLINE_TEST_DATABASE_URL:-postgres://root@127.0.0.1:5432}"
# Keep the server URL's query (e.g. ?sslmode=…) after the database name.
query=""
case "$server" in *\?*) query="?${server#*\?}"; server="${server%%\?*}" ;; esac
server="${server%/}"
name="hl_schema_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
url="$server/$name$query"
admin="$server/postgres$query"
tmp=$(mktemp -d)
cleanup() {
  psql "$admin" -qc "DROP DATABASE IF EXISTS $name WITH (FORCE)" >/dev/null 2>&1 ||
    warn "could not drop database $name"
  rm -rf "$tmp"
}
trap cleanup EXIT

psql "$admin" -qc "CREATE DATABASE $name" >/dev/null
# A config without print_schema.file: `migration run` must not rewrite the committed
# schema (that would make the check compare the file with itself).
printf '[migrations_directory]\ndir = "%s"\n' "$PWD/migrations" >"$tmp/diesel.toml"
diesel migration run --database-url "$url" --config-file "$tmp/diesel.toml" >/dev/null
# rustfmt, as `cargo fmt` (which CI checks) formats the committed file.
diesel print-schema --database-url "$url" --config-file diesel.toml >"$tmp/raw.rs"
rustfmt --edition 2024 <"$tmp/raw.rs" >"$tmp/schema.rs"

if [ -n "$write" ]; then
  cp "$tmp/schema.rs" "$SCHEMA"
  say "wrote $SCHEMA"
  exit 0
fi
if ! diff -u --label "$SCHEMA (committed)" --label "$SCHEMA (from migrations/)" \
  "$SCHEMA" "$tmp/schema.rs"; then
  die "$SCHEMA differs from what migrations/ produce; regenerate it with scripts/check_schema.sh --write"
fi
say "$SCHEMA matches migrations/"
