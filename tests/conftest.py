"""Shared fixtures: one local[2] SparkSession for every test whose point is not process death."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Airflow reads its configuration once, at first import: point it at this run's folder before anything imports
# it.
_GIVEN_RUN_DIR = os.environ.get("ACP_TEST_RUN_DIR")
_RUN_DIR = Path(_GIVEN_RUN_DIR) if _GIVEN_RUN_DIR else Path(tempfile.mkdtemp(prefix="acp-test-"))
os.environ["ACP_TEST_RUN_DIR"] = str(_RUN_DIR)
os.environ.setdefault("AIRFLOW_HOME", str(_RUN_DIR / "airflow-home"))
_ROOT = Path(__file__).resolve().parents[1]
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(_ROOT / "dags")
# Two DAG bundles: the example DAGs (dags/, the documentation) and the DAGs only the tests run (tests/dags/).
os.environ["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"] = json.dumps(
    [
        {
            "name": name,
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(path)},
        }
        for name, path in (("examples", _ROOT / "dags"), ("tests", _ROOT / "tests" / "dags"))
    ]
)
# Airflow puts the DAGs folder on sys.path; the example DAGs import their shared module from there.
sys.path.insert(0, str(_ROOT / "dags"))
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")


@pytest.fixture(scope="session")
def run_dir() -> Iterator[Path]:
    """A folder for this test run (scripts/test.sh provides one and removes it afterwards)."""
    _RUN_DIR.mkdir(parents=True, exist_ok=True)
    yield _RUN_DIR
    if not _GIVEN_RUN_DIR:
        shutil.rmtree(_RUN_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_db(run_dir: Path) -> Path:
    """An initialised Airflow metadata database (SQLite) in this run's Airflow home."""
    import subprocess
    import sys

    home = Path(os.environ["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    airflow = Path(sys.executable).parent / "airflow"
    done = subprocess.run(
        [str(airflow), "db", "migrate"], capture_output=True, text=True, timeout=600, env=dict(os.environ)
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return home


@pytest.fixture(scope="session")
def spark(run_dir: Path) -> Iterator[Any]:
    from pyspark.sql import SparkSession

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    local_dir = run_dir / "spark-local"
    local_dir.mkdir(exist_ok=True)
    session = (
        SparkSession.builder.master("local[2]")
        .appName("airflow-checkpoint-provider-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.local.dir", str(local_dir))
        .config("spark.sql.shuffle.partitions", "3")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
