"""Refusals in real DAG runs (no Spark needed: the job roots are written the way drivers and the exporter
write them). Each is a typed error naming job, generation and path, fails the task at once (no retries spent),
and leaves everything in place."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot
from airflow_checkpoint_provider.model.records import DriverStatus
from tests.support.crafted import make_checkpoint, make_snapshot
from tests.support.drivers import checkpoint_digest
from tests.support.lifecycle import run, states

pytestmark = pytest.mark.airflow


def job_with_checkpoint(tmp: Path, committed: int = 4) -> JobRoot:
    root = JobRoot(tmp / "counter")
    make_checkpoint(Path(root.checkpoint(1).path), committed=committed)
    root.write_json(root.location.child("job.json"), {"current_generation": 1})
    root.write_status(
        DriverStatus(
            job="counter",
            generation=1,
            state="STOPPED",
            driver_id="d",
            host="elsewhere",
            pid=1,
            heartbeat_at=time.time() - 600,
        )
    )
    return root


def failure(dag_run, capfd: pytest.CaptureFixture[str], task: str, error: str) -> str:  # type: ignore[no-untyped-def]
    assert dag_run.state == "failed", states(dag_run)
    ti = next(t for t in dag_run.get_task_instances() if t.task_id == task)
    assert ti.try_number == 1  # terminal: no retry was spent
    printed = capfd.readouterr()
    return next(line for line in (printed.out + printed.err).splitlines() if f"{error}: " in line)


def test_cleanup_refuses_without_a_snapshot_of_the_last_batch(
    tmp_path: Path, airflow_db: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from tests.dags import acp_lifecycle_test_dags as dags

    root = job_with_checkpoint(tmp_path, committed=5)
    make_snapshot(Path(root.location.path), "20261101T000000Z-g1-b4", batch=4)  # one batch behind
    before = checkpoint_digest(Path(root.checkpoint(1).path))
    line = failure(
        run(dags.cleanup_dag, job_root=str(root.location.path), generation=1),
        capfd,
        "cleanup",
        "CleanupRefusedError",
    )
    assert "no verified snapshot of its last committed batch 5 (verified: 4)" in line
    assert "job=counter" in line and "generation=1" in line and "generations/1/checkpoint" in line
    assert checkpoint_digest(Path(root.checkpoint(1).path)) == before


def test_cleanup_refuses_while_a_driver_is_alive(
    tmp_path: Path, airflow_db: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from tests.dags import acp_lifecycle_test_dags as dags

    root = job_with_checkpoint(tmp_path, committed=4)
    make_snapshot(Path(root.location.path), "20261101T000000Z-g1-b4", batch=4)
    root.write_status(
        DriverStatus(
            job="counter",
            generation=1,
            state="RUNNING",
            driver_id="d",
            host=socket.gethostname(),
            pid=os.getpid(),
        )
    )  # a live process on this host
    before = checkpoint_digest(Path(root.checkpoint(1).path))
    dag_run = run(dags.cleanup_dag, job_root=str(root.location.path), generation=1)
    assert dag_run.state == "failed", states(dag_run)
    assert checkpoint_digest(Path(root.checkpoint(1).path)) == before
    assert "DriverStillRunningError: refusing to retire generation 1" in capfd.readouterr().out


def test_cleanup_deletes_when_allowed_and_a_rerun_is_a_no_op(tmp_path: Path, airflow_db: Path) -> None:
    from tests.dags import acp_lifecycle_test_dags as dags

    root = job_with_checkpoint(tmp_path, committed=4)
    make_snapshot(Path(root.location.path), "20261101T000000Z-g1-b4", batch=4)
    for _ in range(2):
        dag_run = run(dags.cleanup_dag, job_root=str(root.location.path), generation=1)
        assert dag_run.state == "success", states(dag_run)
    assert not root.checkpoint(1).exists() and root.snapshot_dir("20261101T000000Z-g1-b4").exists()
    record = root.read_generation_record(1) or {}
    assert record["deleted_at"] and record["final_committed_batch"] == 4


@pytest.mark.parametrize(
    ("snapshot", "error"),
    [
        ("20261101T000000Z-g1-b9", "SnapshotNotFoundError"),
        ("20261101T000000Z-g1-b4", "ForeignSnapshotError"),
    ],
)
def test_start_from_a_missing_or_foreign_snapshot_fails_at_once(
    tmp_path: Path, airflow_db: Path, capfd: pytest.CaptureFixture[str], snapshot: str, error: str
) -> None:
    from tests.dags import acp_lifecycle_test_dags as dags

    root = job_with_checkpoint(tmp_path)
    make_snapshot(
        Path(root.location.path), "20261101T000000Z-g1-b4", job="another-job", batch=4, verify=False
    )
    line = failure(
        run(dags.start_from_dag, job_root=str(root.location.path), snapshot=snapshot, app="/nonexistent.py"),
        capfd,
        "start",
        error,
    )
    assert "job=counter" in line and snapshot in line
    assert root.generations() == [1] and root.current_generation() == 1  # no generation was created
