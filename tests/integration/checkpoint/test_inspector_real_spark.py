"""The inspector against checkpoints real Spark wrote during this run, compared with what Spark reported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_checkpoint_provider.checkpoint.inspector import CheckpointReader, inspect_checkpoint
from airflow_checkpoint_provider.exceptions import CorruptCheckpointError
from tests.support import spark_checkpoints
from tests.support.processes import ROOT, kill_group, spark_submit, wait_for

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def made(spark: Any, run_dir: Path) -> dict[str, spark_checkpoints.Made]:
    root = run_dir / "inspector-real"
    return {
        "agg": spark_checkpoints.make_aggregation(spark, str(root)),
        "tws": spark_checkpoints.make_transform_with_state(spark, str(root)),
    }


@pytest.mark.parametrize("kind", ["agg", "tws"])
def test_matches_what_spark_reported(made: dict[str, spark_checkpoints.Made], kind: str) -> None:
    m = made[kind]
    info = inspect_checkpoint(m.checkpoint)
    assert m.last_batch == 2  # 30 events, 10 per batch
    assert info.query_id == m.progress[-1]["id"]
    assert info.last_committed_batch == m.last_batch
    assert info.in_flight_batch is None
    assert info.retained_batches == (0, m.last_batch)
    reader = CheckpointReader(m.checkpoint)
    for batch in range(m.last_batch + 1):
        reported = [json.loads(o) if isinstance(o, str) else o for o in m.end_offsets(batch)]
        assert reader.offsets(batch).end_offsets_json() == reported
    assert info.committed is not None
    assert info.committed.batch_timestamp_ms is not None


def test_aggregation_details(made: dict[str, spark_checkpoints.Made]) -> None:
    info = inspect_checkpoint(made["agg"].checkpoint)
    assert (info.offset_log_version, info.commit_log_version, info.checkpoint_format_version) == (1, 1, 1)
    assert [(op.operator_id, op.name, op.partitions) for op in info.operators] == [(0, "stateStoreSave", 3)]
    assert info.to_json()["committed_end_offsets"] == [{"offset": 30}]


def test_transform_with_state_details(made: dict[str, spark_checkpoints.Made]) -> None:
    info = inspect_checkpoint(made["tws"].checkpoint)
    assert (info.offset_log_version, info.commit_log_version, info.checkpoint_format_version) == (2, 2, 2)
    assert info.state_store_provider == spark_checkpoints.ROCKSDB
    (op,) = info.operators
    assert op.partitions == 3 and op.state_variables == ("counts",) and op.metadata_version == 2
    assert info.to_json()["committed_end_offsets"] == [{"offset": 30}, {"offset": 15}]


def test_cli_json_on_real_checkpoint(made: dict[str, spark_checkpoints.Made]) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "airflow_checkpoint_provider.cli",
            "inspect",
            made["tws"].checkpoint,
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    report = json.loads(out.stdout)
    assert report["last_committed_batch"] == 2
    assert report["committed_end_offsets"] == [{"offset": 30}, {"offset": 15}]
    assert report["retained_batches"] == [0, 2]


def test_in_flight_batch_after_kill_9(run_dir: Path) -> None:
    """kill -9 a real spark-submit driver inside batch 2: offsets/2 planned, commits/2 absent."""
    work = run_dir / "in-flight"
    work.mkdir()
    log, checkpoint = work / "log", work / "checkpoint"
    spark_checkpoints.write_events(str(log), 30)
    driver_log = work / "driver.log"
    proc = spark_submit(
        ROOT / "tests" / "support" / "crash_driver.py",
        str(log),
        str(checkpoint),
        str(work),
        "2",
        run_dir=run_dir,
        log=driver_log,
    )
    try:
        wait_for(
            lambda: (work / "hanging.json").exists(), 180, "the driver to enter batch 2", proc, driver_log
        )
    finally:
        kill_group(proc)
    info = inspect_checkpoint(checkpoint)
    assert info.last_committed_batch == 1
    assert info.in_flight_batch == 2
    assert info.in_flight is not None and info.in_flight.end_offsets_json() == [{"offset": 30}]
    reported = [json.loads(line) for line in (work / "progress.jsonl").read_text().splitlines()]
    committed = {int(p["batchId"]): p for p in reported}
    assert max(committed) == 1
    assert info.committed is not None
    assert info.committed.end_offsets_json() == [
        json.loads(s["endOffset"]) if isinstance(s["endOffset"], str) else s["endOffset"]
        for s in committed[1]["sources"]
    ]
    assert info.query_id == committed[1]["id"]
    report = json.loads(
        subprocess.run(
            [sys.executable, "-m", "airflow_checkpoint_provider.cli", "inspect", str(checkpoint), "--json"],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        ).stdout
    )
    assert (report["last_committed_batch"], report["in_flight_batch"]) == (1, 2)
    assert report["in_flight_end_offsets"] == [{"offset": 30}]


def test_corrupted_copy_of_real_checkpoint(made: dict[str, spark_checkpoints.Made], tmp_path: Path) -> None:
    import shutil

    cp = tmp_path / "cp"
    shutil.copytree(made["agg"].checkpoint, cp)
    (cp / "commits" / "2").write_text("v1\n{broken")
    with pytest.raises(CorruptCheckpointError) as err:
        inspect_checkpoint(cp)
    assert str(cp / "commits" / "2") in str(err.value)
