#!/usr/bin/env bash
# Makes sure PostgreSQL (127.0.0.1:5432) and RabbitMQ (127.0.0.1:5672) are running:
# uses running ones, starts installed ones, installs them with apt on a fresh
# Debian/Ubuntu machine (as root), and otherwise prints the exact commands to run.
# Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

PG_HOST=127.0.0.1 PG_PORT=5432 MQ_HOST=127.0.0.1 MQ_PORT=5672
apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_postgres() {
  if port_open $PG_HOST $PG_PORT; then return 0; fi
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    if can_apt; then
      say "installing PostgreSQL (apt)"
      apt_install postgresql postgresql-contrib
    else
      die "PostgreSQL is not running on $PG_HOST:$PG_PORT and cannot be installed here. Run:
    sudo apt-get install -y postgresql && sudo pg_ctlcluster \$(ls /etc/postgresql) main start
  or point HOOKLINE__DATABASE__URL at a running server."
    fi
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n1)
  say "starting PostgreSQL $version"
  if have pg_ctlcluster; then
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  fi
  wait_port $PG_HOST $PG_PORT 60 PostgreSQL
  # Local development and CI use trust auth for root over TCP (matches the documented URL).
  if [ "$(id -u)" = 0 ] && have psql; then
    if ! psql -h $PG_HOST -U root -d postgres -Atc 'select 1' >/dev/null 2>&1; then
      su postgres -c "psql -Atc \"DO \\\$\\\$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname='root') THEN CREATE ROLE root SUPERUSER LOGIN; END IF; END\\\$\\\$\"" >/dev/null || true
      local hba
      hba=$(su postgres -c "psql -Atc 'show hba_file'" 2>/dev/null || true)
      if [ -n "$hba" ] && ! grep -q '^host all root 127.0.0.1/32 trust' "$hba"; then
        sed -i '1i host all root 127.0.0.1/32 trust' "$hba"
        su postgres -c "psql -Atc 'select pg_reload_conf()'" >/dev/null
      fi
    fi
  fi
}

ensure_rabbitmq() {
  if port_open $MQ_HOST $MQ_PORT; then return 0; fi
  if ! have rabbitmq-server; then
    if can_apt; then
      say "installing RabbitMQ (apt)"
      apt_install rabbitmq-server
    else
      die "RabbitMQ is not running on $MQ_HOST:$MQ_PORT and cannot be installed here. Run:
    sudo apt-get install -y rabbitmq-server && sudo rabbitmq-server -detached
  or point HOOKLINE__AMQP__URL at a running broker."
    fi
  fi
  say "starting RabbitMQ"
  rabbitmq-server -detached >/dev/null 2>&1 || true
  wait_port $MQ_HOST $MQ_PORT 120 RabbitMQ
}

ensure_postgres
ensure_rabbitmq
say "PostgreSQL on $PG_HOST:$PG_PORT and RabbitMQ on $MQ_HOST:$MQ_PORT are up"
