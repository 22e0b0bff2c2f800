"""Shared fixtures: one local[2] SparkSession for every test whose point is not process death."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def run_dir() -> Iterator[Path]:
    """A folder for this test run (scripts/test.sh provides one and removes it afterwards)."""
    given = os.environ.get("ACP_TEST_RUN_DIR")
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    path = Path(tempfile.mkdtemp(prefix="acp-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


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
