#!/usr/bin/env bash
# Run everything locally: Kafka, Redis, topics, and the worker in the foreground.
# Ctrl-C (or SIGTERM) stops the worker and the servers this script started.
set -euo pipefail

usage() {
  cat <<EOF
Usage: deploy/local/run.sh

Bootstraps the clone, starts Kafka and Redis (deploy/local/kafka.sh, redis.sh), creates the
topics (processor topics create) and runs 'processor worker' in the foreground with
KAFKA_BOOTSTRAP_SERVERS and REDIS_URL exported. Ctrl-C stops the worker, then Kafka and Redis
(servers that were already running before are left running).

Environment: KAFKA_PORT, REDIS_PORT and the rest of kafka.sh / redis.sh;
PROCESSOR_WEB_PORT (dashboard port, default 6066) and the other PROCESSOR_* settings
(see: .venv/bin/processor settings).
EOF
}
[[ ${1:-} == -h || ${1:-} == --help ]] && { usage; exit 0; }
[[ $# -eq 0 ]] || { usage >&2; exit 2; }

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"
say() { echo "run: $*" >&2; }

worker_pid="" stop_kafka="" stop_redis=""
# shellcheck disable=SC2317  # only reached through the traps
cleanup() {
  trap - EXIT INT TERM
  local i
  if [[ -n $worker_pid ]] && kill -0 "$worker_pid" 2>/dev/null; then
    say "stopping worker (pid $worker_pid)"
    kill -TERM "$worker_pid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do kill -0 "$worker_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$worker_pid" 2>/dev/null || true
    wait "$worker_pid" 2>/dev/null || true
  fi
  [[ -z $stop_kafka ]] || "$HERE/kafka.sh" stop || true
  [[ -z $stop_redis ]] || "$HERE/redis.sh" stop || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$HERE/bootstrap.sh"
[[ -x .venv/bin/processor ]] || { echo "run: error: .venv/bin/processor missing (pip install failed?)" >&2; exit 1; }

"$HERE/kafka.sh" status >/dev/null || stop_kafka=1
line="$("$HERE/kafka.sh" start)"
export "${line?}"
"$HERE/redis.sh" status >/dev/null || stop_redis=1
line="$("$HERE/redis.sh" start)"
export "${line?}"

say "creating topics on $KAFKA_BOOTSTRAP_SERVERS"
.venv/bin/processor topics create

say "dashboard: http://127.0.0.1:${PROCESSOR_WEB_PORT:-6066}/dashboard  (Ctrl-C stops everything)"
# In the background so the INT/TERM traps run at once instead of after the worker exits;
# cleanup forwards the stop to it.
.venv/bin/processor worker &
worker_pid=$!
status=0
wait "$worker_pid" || status=$?
worker_pid=""
exit "$status"
