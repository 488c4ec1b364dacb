# Shared helpers for scripts/*.sh (sourced, not run).
say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
have() { command -v "$1" >/dev/null 2>&1; }

# port_open HOST PORT: true if something accepts TCP connections there.
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# wait_port HOST PORT SECONDS NAME
wait_port() {
  local i
  for ((i = 0; i < $3 * 5; i++)); do
    port_open "$1" "$2" && return 0
    sleep 0.2
  done
  die "$4 did not come up on $1:$2 within $3 s"
}

# can_apt: root on a Debian/Ubuntu machine.
can_apt() { [ "$(id -u)" = 0 ] && have apt-get; }

RUN_DIR="${RUN_DIR:-.run}"
