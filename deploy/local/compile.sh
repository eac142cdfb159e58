#!/usr/bin/env bash
# The package with its pure core compiled by mypyc (setup.py's COMPILED), as the container image
# runs it, built from the working tree into a directory of its own: the source tree stays plain
# Python, so an edit there never hides behind a stale extension.
set -euo pipefail

usage() {
  cat <<EOF
Usage: deploy/local/compile.sh [DIR]

Builds the package with PROCESSOR_COMPILE=1 into DIR (default <repo>/.build/compiled), for
PYTHONPATH=DIR. Skipped when DIR was built from the same sources, Python and mypy (a stamp
in DIR says which); otherwise under a minute on 2 cores. Prints DIR on stdout.

Needs .venv (deploy/local/bootstrap.sh) and a C compiler.
EOF
}
[[ ${1:-} == -h || ${1:-} == --help ]] && { usage; exit 0; }
[[ $# -le 1 ]] || { usage >&2; exit 2; }

say() { echo "compile.sh: $*" >&2; }
die() { echo "compile.sh: error: $*" >&2; exit 1; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
DIR="${1:-$ROOT/.build/compiled}"
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
PY="$ROOT/.venv/bin/python"
[[ -x $PY ]] || die ".venv is missing: run deploy/local/bootstrap.sh"
command -v cc >/dev/null || die "no C compiler (cc): install gcc"

stamp="$(
  {
    "$PY" -c 'import sys, mypy.version; print(sys.version, mypy.version.__version__)'
    find setup.py pyproject.toml processor topics -type f -not -path '*/__pycache__/*' |
      LC_ALL=C sort | xargs sha256sum
  } | sha256sum | cut -d' ' -f1
)"
if [[ -f $DIR/.stamp && $(cat "$DIR/.stamp") == "$stamp" ]]; then
  say "up to date: $DIR"
  echo "$DIR"
  exit 0
fi

say "compiling into $DIR (under a minute)"
rm -rf "$DIR.tmp"
# From a copy of the sources: built in the working tree, setuptools reuses its build/ directory,
# and an extension left there by a module since removed went into the package with the rest.
SRC="$(mktemp -d)"
trap 'rm -rf "$SRC"' EXIT
cp -r setup.py pyproject.toml README.md processor topics "$SRC/"
find "$SRC" -name __pycache__ -prune -exec rm -rf {} +
# No build isolation: .venv has setuptools and mypy already, and the build type-checks the
# modules against the same libraries the tests use.
(cd "$SRC" && PROCESSOR_COMPILE=1 "$PY" -m pip install -q --no-deps --no-build-isolation \
  --target "$DIR.tmp" . >&2)
echo "$stamp" >"$DIR.tmp/.stamp"
rm -rf "$DIR"
mv "$DIR.tmp" "$DIR"
say "done: $DIR"
echo "$DIR"
