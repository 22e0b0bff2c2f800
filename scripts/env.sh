# Sourced by scripts/test.sh and scripts/demo.sh: create or refresh the project's virtualenv, check Java,
# and export what Spark and Airflow need. Works on a fresh machine with only Python 3.11 and Java 17.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

pick_python() {
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' 2>/dev/null; then
      command -v "$candidate"; return 0
    fi
  done
  echo "error: Python 3.11 is required (python3.11 or python3 on PATH)" >&2; return 1
}

check_java() {
  if ! command -v java >/dev/null 2>&1; then
    echo "error: Java 17+ is required for Spark (java not found on PATH)" >&2; return 1
  fi
  local version
  version=$(java -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')
  local major=${version%%.*}
  if [ -z "$major" ] || [ "$major" -lt 17 ]; then
    echo "error: Java 17+ is required for Spark, found '$version'" >&2; return 1
  fi
}

ensure_venv() {
  local python stamp want
  python=$(pick_python)
  want=$(cat "$ROOT/pyproject.toml" "$ROOT/scripts/excludes.txt" | sha256sum | cut -c1-16)
  stamp="$VENV/.installed-$want"
  if [ -f "$stamp" ] && [ -x "$VENV/bin/python" ]; then return 0; fi
  echo "==> setting up $VENV (first run downloads Airflow and Spark: a few minutes)"
  if [ ! -x "$VENV/bin/python" ]; then "$python" -m venv "$VENV"; fi
  if [ ! -x "$VENV/bin/uv" ]; then
    "$VENV/bin/python" -m pip --version >/dev/null 2>&1 || "$VENV/bin/python" -m ensurepip >/dev/null
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check uv
  fi
  # The Spark provider pulls pyspark-client, which writes into the same pyspark/ folder as full pyspark:
  # exclude it so the environment holds exactly one, complete pyspark (with its jars).
  (cd "$ROOT" && "$VENV/bin/uv" pip install --quiet --python "$VENV/bin/python" \
      --excludes scripts/excludes.txt -e '.[spark,test]')
  rm -f "$VENV"/.installed-* "$VENV/.compiled-zips"
  touch "$stamp"
}

ensure_bytecode() {
  # Compile the environment's packages once. With PYTHONDONTWRITEBYTECODE set (as on this project's
  # machines) Python never caches bytecode, so every fresh process compiled pyspark, pandas, pyarrow and
  # Airflow from source: importing pyspark, pandas and pyarrow took 1.1 s instead of 0.3 s, Airflow 2.3 s
  # instead of 1.0 s. Spark starts a fresh Python process per streaming query (the Python source's runner,
  # transformWithState's planner) and Airflow one per task: they all pay it (docs/performance.md).
  if [ -f "$VENV/.compiled-zips" ]; then return 0; fi
  echo "==> compiling the virtualenv's packages to bytecode (once)"
  "$VENV/bin/python" -m compileall -q -j 0 "$VENV"/lib/python3.11/site-packages >/dev/null 2>&1 || true
  # spark-submit puts pyspark.zip and py4j's zip first on every Spark Python process's PYTHONPATH, and
  # Python caches no bytecode for a zip: put it in the zips (0.83 s -> 0.29 s to import pyspark.sql).
  "$VENV/bin/python" -W ignore "$ROOT/scripts/zip_bytecode.py" "$VENV"/lib/python3.11/site-packages/pyspark/python/lib/*.zip
  touch "$VENV/.compiled-zips"
}

ensure_browser() {
  # The browser tests drive Debian's chromium with its chromedriver (a browser's own download fails here).
  if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then return 0; fi
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "warning: chromium and chromium-driver are missing (install them; the browser test needs them)" >&2
    return 0
  fi
  echo "==> installing chromium and chromium-driver (Debian packages, for the browser test)"
  { apt-get update -qq >/dev/null &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } ||
    echo "warning: could not install chromium and chromium-driver; the browser test will fail" >&2
}

ensure_venv
ensure_bytecode
check_java
export PATH="$VENV/bin:$PATH"
export SPARK_LOCAL_IP=127.0.0.1
export PYSPARK_PYTHON="$VENV/bin/python"
export PYSPARK_DRIVER_PYTHON="$VENV/bin/python"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
