# A private PostgreSQL cluster and a private RabbitMQ node (sourced, not run), for the
# scripts that stall, kill and restart their services (make chaos, make overload): they
# can then run beside the shared services (127.0.0.1:5432, 5672, rabbit@localhost) and
# other engineers' tests, and never touch them.
#
#   stack_init DIR PG_PORT MQ_PORT MQ_DIST_PORT MQ_NODE   (once; DIR is emptied)
#   pg_up | pg_restart_fast | pg_crash_restart | pg_down     PG_URL = postgres://root@127.0.0.1:PG_PORT
#   mq_up | mq_down                                          MQ_URL = amqp://guest:guest@127.0.0.1:MQ_PORT/%2f
#   stack_down                                               (both down; data removed unless KEEP=1)

stack_init() {
  STACK_DIR=$1 PG_PORT=$2 MQ_PORT=$3 MQ_DIST_PORT=$4 MQ_NODE=$5
  PG_URL="postgres://root@127.0.0.1:$PG_PORT"
  MQ_URL="amqp://guest:guest@127.0.0.1:$MQ_PORT/%2f"
  PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)"
  [ -x "$PG_BIN/initdb" ] || die "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (apt-get install postgresql)"
  [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || die "no RabbitMQ under /usr/lib/rabbitmq/bin (apt-get install rabbitmq-server)"
  # Leftovers of an interrupted run (its own services only) go first.
  [ -f "$STACK_DIR/pg/data/postmaster.pid" ] && { _pg_ctl -m immediate stop >/dev/null 2>&1 || true; }
  mq_down
  local port
  for port in "$PG_PORT" "$MQ_PORT" "$MQ_DIST_PORT"; do
    port_open 127.0.0.1 "$port" && die "port $port is in use (another run of this script?)"
  done
  rm -rf "$STACK_DIR"
  mkdir -p "$STACK_DIR/pg/log" "$STACK_DIR/pg/sock" "$STACK_DIR/mq/home" "$STACK_DIR/mq/log" "$STACK_DIR/mq/mnesia"
  # initdb and postgres refuse to run as root: as root, they run as the postgres user.
  [ "$(id -u)" = 0 ] && chown -R postgres "$STACK_DIR/pg"
  _as_pg "$PG_BIN/initdb" -D "$STACK_DIR/pg/data" -U root --auth=trust -E UTF8 >"$STACK_DIR/pg/log/initdb.log"
  # Its own config (not /etc/rabbitmq's, which binds 5672), no plugins (management and
  # prometheus would want 15672/15692), its own Erlang cookie (HOME).
  cat >"$STACK_DIR/mq/rabbitmq.conf" <<CONF
listeners.tcp.local = 127.0.0.1:$MQ_PORT
loopback_users.guest = true
CONF
  echo "[]." >"$STACK_DIR/mq/advanced.config"
  echo "[]." >"$STACK_DIR/mq/enabled_plugins"
  : >"$STACK_DIR/mq/rabbitmq-env.conf"
}

_as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
_pg_ctl() { _as_pg "$PG_BIN/pg_ctl" -D "$STACK_DIR/pg/data" -l "$STACK_DIR/pg/log/postgres.log" "$@"; }
_pg_opts="-c listen_addresses=127.0.0.1 -c max_connections=200"
pg_up() { _pg_ctl -w -t 120 -o "-p $PG_PORT -c unix_socket_directories=$STACK_DIR/pg/sock $_pg_opts" start >/dev/null; }
pg_restart_fast() { _pg_ctl -m fast -w -t 120 -o "-p $PG_PORT -c unix_socket_directories=$STACK_DIR/pg/sock $_pg_opts" restart >/dev/null; }
# A crash: no checkpoint, no clean shutdown; the restart replays the WAL.
pg_crash_restart() { _pg_ctl -m immediate stop >/dev/null; sleep 1; pg_up; }
pg_down() { [ -f "$STACK_DIR/pg/data/postmaster.pid" ] && _pg_ctl -m fast stop >/dev/null 2>&1; return 0; }

_mq_env() {
  env HOME="$STACK_DIR/mq/home" RABBITMQ_NODENAME="$MQ_NODE" RABBITMQ_NODE_PORT="$MQ_PORT" \
    RABBITMQ_DIST_PORT="$MQ_DIST_PORT" RABBITMQ_MNESIA_BASE="$STACK_DIR/mq/mnesia" RABBITMQ_LOG_BASE="$STACK_DIR/mq/log" \
    RABBITMQ_CONFIG_FILE="$STACK_DIR/mq/rabbitmq.conf" RABBITMQ_ADVANCED_CONFIG_FILE="$STACK_DIR/mq/advanced.config" \
    RABBITMQ_CONF_ENV_FILE="$STACK_DIR/mq/rabbitmq-env.conf" RABBITMQ_ENABLED_PLUGINS_FILE="$STACK_DIR/mq/enabled_plugins" \
    RABBITMQ_PID_FILE="$STACK_DIR/mq/rabbit.pid" \
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" "$@"
}
# Up once its AMQP port accepts connections. Stopped by SIGTERM to its own pid (a
# graceful stop, as `rabbitmqctl stop` does, without the CLI's start-up time and without
# any chance of naming the shared node).
mq_up() {
  rm -f "$STACK_DIR/mq/rabbit.pid"
  _mq_env /usr/lib/rabbitmq/bin/rabbitmq-server >>"$STACK_DIR/mq/log/server.out" 2>&1 &
  wait_port 127.0.0.1 "$MQ_PORT" 180 "the private RabbitMQ node $MQ_NODE"
}
mq_down() {
  local p
  p=$(cat "$STACK_DIR/mq/rabbit.pid" 2>/dev/null) || return 0
  kill -TERM "$p" 2>/dev/null || return 0
  for _ in $(seq 1 120); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.5; done
  kill -KILL "$p" 2>/dev/null || true
}

stack_down() {
  mq_down
  pg_down
  [ "${KEEP:-}" = 1 ] || rm -rf "$STACK_DIR/pg/data" "$STACK_DIR/mq/mnesia"
}
