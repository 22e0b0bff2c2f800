"""The environment is consistent: one complete pyspark 4.3.0 (not the Spark provider's pyspark-client)."""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_checkpoint_provider import __version__


def test_full_pyspark_is_installed() -> None:
    import pyspark

    assert pyspark.__version__ == "4.3.0"
    jars = Path(pyspark.__file__).parent / "jars"
    assert jars.is_dir()
    assert any(p.name.startswith("spark-core_") for p in jars.iterdir())
    assert md.version("pyspark") == "4.3.0"
    with pytest.raises(md.PackageNotFoundError):
        md.version("pyspark-client")


@pytest.mark.spark
def test_a_spark_session_starts(spark: Any) -> None:
    assert spark.version == "4.3.0"
    assert spark.range(5).count() == 5


def test_airflow_lists_the_provider(run_dir: Path) -> None:
    env = dict(os.environ)
    env.setdefault("AIRFLOW_HOME", str(run_dir / "airflow-home"))
    airflow = Path(sys.executable).parent / "airflow"
    out = subprocess.run(
        [str(airflow), "providers", "list", "--output", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    listed = json.loads(out.stdout[out.stdout.index("[") :])
    ours = [p for p in listed if p["package_name"] == "airflow-checkpoint-provider"]
    assert ours == [ours[0]] and ours[0]["version"] == __version__
    # A mismatched package-name would break the listing for every provider; the others are still there.
    assert any(p["package_name"] == "apache-airflow-providers-apache-spark" for p in listed)


def test_provider_info_matches_distribution() -> None:
    from airflow_checkpoint_provider.get_provider_info import get_provider_info

    info = get_provider_info()
    eps = [
        ep
        for ep in md.entry_points(group="apache_airflow_provider")
        if ep.value.startswith("airflow_checkpoint")
    ]
    assert len(eps) == 1
    assert info["package-name"] == md.metadata("airflow-checkpoint-provider")["Name"].lower().replace(
        "_", "-"
    )
    assert info["versions"][0] == md.version("airflow-checkpoint-provider")


@pytest.mark.spark
def test_the_tests_spark_drivers_map_their_classes_from_the_archive(run_dir: Path) -> None:
    """scripts/test.sh gives every test driver a class-data archive (scripts/spark_cds.py): a JVM started as
    spark-submit starts the drivers loads Spark's classes from it, not from the jars."""
    opts = os.environ.get("SPARK_SUBMIT_OPTS", "")
    if "-XX:SharedArchiveFile=" not in opts:
        pytest.skip("no class-data archive in SPARK_SUBMIT_OPTS (run through scripts/test.sh)")
    env = {**os.environ, "SPARK_SUBMIT_OPTS": f"{opts} -Xlog:class+load=info"}
    out = subprocess.run(
        [str(Path(sys.executable).parent / "spark-submit"), "--version"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    spark = [line for line in out.stdout.splitlines() if " org.apache.spark." in line]
    shared = [line for line in spark if "source: shared objects file" in line]
    from_jars = [line for line in spark if "source: file:" in line or "source: jar:" in line]
    assert out.returncode == 0, out.stderr[-2000:]
    assert len(shared) > 100 and len(from_jars) < 0.1 * len(shared), (len(shared), from_jars[:5])
