#!/usr/bin/env bash
# Run one benchmark: bash ./scripts/bench.sh <name> [args]  (bench/<name>_bench.py; prints a table, writes JSON)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
name="${1:?usage: bash ./scripts/bench.sh <name> [args]   names: $(cd bench && ls *_bench.py | sed 's/_bench.py//' | tr '\n' ' ')}"
shift
work="$(mktemp -d "${TMPDIR:-/tmp}/acp-bench.XXXXXX")"
# ACP_BENCH_KEEP=1 keeps the work folder (job roots, driver and Airflow logs) for a look afterwards
trap 'if [ -n "${ACP_BENCH_KEEP:-}" ]; then echo "kept $work" >&2; else rm -rf "$work"; fi' EXIT
export TMPDIR="$work"
# Spark JVMs unpack RocksDB's native library into java.io.tmpdir; a killed one leaves it (see scripts/test.sh).
mkdir -p "$work/jvm-tmp"
export SPARK_SUBMIT_OPTS="-Djava.io.tmpdir=$work/jvm-tmp${SPARK_SUBMIT_OPTS:+ $SPARK_SUBMIT_OPTS}"
python "bench/${name}_bench.py" "$@"
