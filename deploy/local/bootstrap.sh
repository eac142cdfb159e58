#!/usr/bin/env bash
# Idempotent setup of a fresh clone: Python venv with the project, Redis binary, Kafka jars.
# Cheap to re-run: each step is skipped when already done.
set -euo pipefail

usage() {
  cat <<EOF
Usage: deploy/local/bootstrap.sh

Creates .venv (python >= 3.11) and runs pip install -e '.[dev]' when pyproject.toml changed
since the last install, makes sure redis-server is installed (deploy/local/redis.sh install)
and fetches the Kafka jars (deploy/local/kafka.sh fetch).

Environment:
  PYTHON  interpreter used to create .venv (default python3)
  plus those of kafka.sh (KAFKA_CACHE_DIR, MAVEN_REPO_URL)
EOF
}
[[ ${1:-} == -h || ${1:-} == --help ]] && { usage; exit 0; }
[[ $# -eq 0 ]] || { usage >&2; exit 2; }

say() { echo "bootstrap: $*"; }
die() { echo "bootstrap: error: $*" >&2; exit 1; }

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
VENV="$ROOT/.venv"
MARKER="$VENV/.installed"

version_ok() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; }

if [[ ! -x $VENV/bin/python ]]; then
  command -v "$PYTHON" >/dev/null || die "$PYTHON not found: install Python 3.11+ or set PYTHON"
  version_ok "$PYTHON" || die "$PYTHON is $("$PYTHON" -V 2>&1); 3.11+ is needed (set PYTHON)"
  say "creating .venv with $("$PYTHON" -V 2>&1)"
  "$PYTHON" -m venv "$VENV"
fi
version_ok "$VENV/bin/python" || die ".venv has $("$VENV/bin/python" -V 2>&1); 3.11+ is needed: rm -rf .venv and re-run"

if [[ ! -f pyproject.toml ]]; then
  say "no pyproject.toml yet; skipping pip install"
elif [[ -f $MARKER && ! pyproject.toml -nt $MARKER ]]; then
  say "python packages up to date"
else
  say "pip install -e '.[dev]'"
  "$VENV/bin/python" -m pip install -q -e '.[dev]'
  touch "$MARKER"
fi

say "checking redis-server"
"$HERE/redis.sh" install
say "fetching Kafka jars (cached)"
"$HERE/kafka.sh" fetch
say "done"
