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
# The tests start some 150 short-lived Spark JVMs on 2 cores: C1 only and the serial collector take about
# 40% off each one's CPU (a cold start of the example counter: 55-59 -> 35-41 CPU-s, docs/performance.md).
# Tests only: a long-running driver wants C2's faster code.
JVM_TEST_OPTS="-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
export SPARK_SUBMIT_OPTS="-Djava.io.tmpdir=$RUN_DIR/jvm-tmp $JVM_TEST_OPTS${SPARK_SUBMIT_OPTS:+ $SPARK_SUBMIT_OPTS}"
export SPARK_LAUNCHER_OPTS="$JVM_TEST_OPTS${SPARK_LAUNCHER_OPTS:+ $SPARK_LAUNCHER_OPTS}"
# ACP_KEEP_RUN_DIR=1 keeps it (the Airflow task logs, the drivers' logs) for a look after a failure.
cleanup() {
  if [ "${ACP_KEEP_RUN_DIR:-0}" = 1 ]; then echo "kept the run's folder: $RUN_DIR" >&2; else rm -rf "$RUN_DIR"; fi
}
trap cleanup EXIT
echo "==> ruff (lint, format, line length)"
ruff check airflow_checkpoint_provider dags tests bench scripts
ruff format --check airflow_checkpoint_provider dags tests bench scripts
echo "==> mypy --strict (airflow_checkpoint_provider)"
mypy
# A class-data archive of a Spark driver JVM (scripts/spark_cds.py): its classes ready to map instead of
# loaded and verified from the jars, about a quarter off each start's CPU. Made once per Java, Spark jars and
# flags (about 60 s). Driver JVMs only: a launcher JVM's warnings would go to the stdout spark-class parses.
cds_key=$( { java -version 2>&1; ls "$VENV"/lib/python3.11/site-packages/pyspark/jars; echo "$JVM_TEST_OPTS"; } \
  | sha1sum | cut -c1-12)
cds_archive="$VENV/spark-cds-$cds_key.jsa"
if [ ! -f "$cds_archive" ]; then
  echo "==> a class-data archive for the tests' Spark drivers"
  rm -f "$VENV"/spark-cds-*.jsa
  python scripts/spark_cds.py "$cds_archive" "$RUN_DIR/cds"
fi
if [ -f "$cds_archive" ]; then export SPARK_SUBMIT_OPTS="$SPARK_SUBMIT_OPTS -XX:SharedArchiveFile=$cds_archive"; fi
echo "==> pytest"
python -m pytest -p no:cacheprovider "$@"
