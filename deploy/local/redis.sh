#!/usr/bin/env bash
# Throwaway Redis on loopback for development and tests: no persistence, state under .run/.
set -euo pipefail

usage() {
  cat <<EOF
Usage: deploy/local/redis.sh {install|start|stop|status}

  install  make sure redis-server and redis-cli exist (as root with apt-get: installs them)
  start    install if needed, start redis-server on 127.0.0.1 and wait for PONG;
           prints REDIS_URL=redis://127.0.0.1:<port>/0 (already running: says so, exits 0)
  stop     SIGTERM, then SIGKILL after 10 s
  status   exit 0 if running, 1 if not

Environment:
  REDIS_PORT      port on 127.0.0.1 (default 6379)
  REDIS_HOME_DIR  pid file, log and working dir (default <repo>/.run/redis-\$REDIS_PORT)
EOF
}

die() { echo "redis.sh: error: $*" >&2; exit 1; }
say() { echo "redis.sh: $*" >&2; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
REDIS_PORT="${REDIS_PORT:-6379}"
[[ $REDIS_PORT =~ ^[0-9]+$ ]] || die "REDIS_PORT must be a number, got '$REDIS_PORT'"
REDIS_HOME_DIR="${REDIS_HOME_DIR:-$ROOT/.run/redis-$REDIS_PORT}"
PIDFILE="$REDIS_HOME_DIR/redis.pid"
LOG="$REDIS_HOME_DIR/redis.log"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# kill -0 is not enough: a dead process left unreaped (e.g. no init in a container) is a zombie.
alive() { local s; s="$(ps -p "$1" -o stat= 2>/dev/null)" && [[ $s != Z* ]]; }

running_pid() {
  local pid
  [[ -f $PIDFILE ]] || return 1
  pid="$(cat "$PIDFILE")"
  [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" && ps -p "$pid" -o args= | grep -q redis-server || return 1
  echo "$pid"
}

install() {
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null && return 0
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    say "installing redis-server with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    # The Debian package may start its own service on 6379; we run our own instances.
    service redis-server stop >/dev/null 2>&1 || true
    command -v redis-server >/dev/null || die "apt-get install redis-server did not put redis-server on PATH"
  else
    die "redis-server not found: install it (Debian/Ubuntu: sudo apt-get install redis-server, macOS: brew install redis)"
  fi
}

start() {
  local pid i
  if pid="$(running_pid)"; then
    say "already running (pid $pid)"
    echo "REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0"
    return 0
  fi
  install
  port_open "$REDIS_PORT" && die "port $REDIS_PORT on 127.0.0.1 is already in use (another Redis? set REDIS_PORT)"
  mkdir -p "$REDIS_HOME_DIR"
  rm -f "$PIDFILE"
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
    --daemonize yes --pidfile "$PIDFILE" --logfile "$LOG" --dir "$REDIS_HOME_DIR" \
    || die "redis-server failed to start (log: $LOG)"
  for ((i = 0; i < 100; i++)); do
    if [[ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]; then
      say "started on 127.0.0.1:$REDIS_PORT (pid $(cat "$PIDFILE" 2>/dev/null), log $LOG)"
      echo "REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0"
      return 0
    fi
    sleep 0.1
  done
  tail -n 20 "$LOG" >&2 || true
  stop
  die "redis-server did not answer PING within 10 s (log above)"
}

stop() {
  local pid i
  if ! pid="$(running_pid)"; then
    rm -f "$PIDFILE"
    say "not running"
    return 0
  fi
  say "stopping (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    alive "$pid" || break
    sleep 0.1
  done
  if alive "$pid"; then
    say "still alive after 10 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDFILE"
}

status() {
  local pid
  if pid="$(running_pid)"; then
    echo "redis running (pid $pid) on 127.0.0.1:$REDIS_PORT"
  else
    echo "redis not running"
    return 1
  fi
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  -h | --help | help) usage ;;
  *) [[ -n ${1:-} ]] && echo "redis.sh: unknown command '$1'" >&2; usage >&2; exit 2 ;;
esac
