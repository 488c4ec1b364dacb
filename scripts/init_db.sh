#!/usr/bin/env bash
# Creates the database named in DATABASE_URL (default postgres://root@127.0.0.1:5432/hookline)
# if it does not exist. Migrations are applied by the binaries at start-up
# (database.migrate = true) or by `hookline migrate`.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
url="${DATABASE_URL:-postgres://root@127.0.0.1:5432/hookline}"
name="${url##*/}"
server="${url%/*}"
have psql || die "psql not found (apt-get install postgresql-client)"
if [ "$(psql "$server/postgres" -Atc "SELECT 1 FROM pg_database WHERE datname = '$name'")" != 1 ]; then
  say "creating database $name"
  psql "$server/postgres" -qc "CREATE DATABASE \"$name\""
fi
