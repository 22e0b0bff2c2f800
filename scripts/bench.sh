#!/usr/bin/env bash
# Run one benchmark: bash ./scripts/bench.sh <name> [args]  (bench/<name>_bench.py; prints a table, writes JSON)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
name="${1:?usage: bash ./scripts/bench.sh <name> [args]   names: $(cd bench && ls *_bench.py | sed 's/_bench.py//' | tr '\n' ' ')}"
shift
work="$(mktemp -d "${TMPDIR:-/tmp}/acp-bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT
export TMPDIR="$work"
python "bench/${name}_bench.py" "$@"
