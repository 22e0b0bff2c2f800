#!/usr/bin/env bash
# Run the whole test suite (lint, unit, integration against real Spark and Airflow). Extra args go to pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
ensure_browser
# Everything a run creates (Spark scratch, Airflow home and DB, checkpoints) lives here and is removed after.
RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/acp-test.XXXXXX")
export ACP_TEST_RUN_DIR="$RUN_DIR"
export AIRFLOW_HOME="$RUN_DIR/airflow-home"
# Every Spark JVM unpacks RocksDB's native library (15 MB) into java.io.tmpdir, and one that is killed (the
# tests kill many) leaves it there: 297 of them filled this machine's disk. Keep them in the run's folder.
mkdir -p "$RUN_DIR/jvm-tmp"
export SPARK_SUBMIT_OPTS="-Djava.io.tmpdir=$RUN_DIR/jvm-tmp${SPARK_SUBMIT_OPTS:+ $SPARK_SUBMIT_OPTS}"
cleanup() { rm -rf "$RUN_DIR"; }
trap cleanup EXIT
echo "==> ruff (lint, format, line length)"
ruff check airflow_checkpoint_provider dags tests bench scripts
ruff format --check airflow_checkpoint_provider dags tests bench scripts
echo "==> mypy --strict (airflow_checkpoint_provider)"
mypy
echo "==> pytest"
python -m pytest -p no:cacheprovider "$@"
