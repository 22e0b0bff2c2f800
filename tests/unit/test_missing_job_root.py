"""Every sensor, operator and the restart callback refuse a job root that does not exist, with a typed error
and without creating it; only a start (a job's first start) creates a job root."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_checkpoint_provider.callbacks.checkpoint import restart_from_checkpoint
from airflow_checkpoint_provider.exceptions import JobRootNotFoundError
from airflow_checkpoint_provider.operators.checkpoint import (
    CleanupStreamingJobOperator,
    SnapshotStreamingJobOperator,
    StartStreamingJobOperator,
    StopStreamingJobOperator,
)
from airflow_checkpoint_provider.sensors.checkpoint import CheckpointCommittedSensor, StreamingJobHealthSensor


def context() -> dict[str, Any]:
    return {"dag_run": None, "run_id": "manual__1", "ti": None}


@pytest.mark.parametrize(
    "build",
    [
        lambda root: StopStreamingJobOperator(task_id="t", job_root=root),
        lambda root: SnapshotStreamingJobOperator(task_id="t", job_root=root),
        lambda root: CleanupStreamingJobOperator(task_id="t", job_root=root, generation=1),
        lambda root: StreamingJobHealthSensor(task_id="t", job_root=root),
        lambda root: CheckpointCommittedSensor(task_id="t", job_root=root, batch=1),
    ],
)
def test_lifecycle_steps_refuse_a_missing_job_root(tmp_path: Path, build: Any) -> None:
    missing = tmp_path / "jobs" / "countr"
    task = build(str(missing))
    with pytest.raises(AirflowFailException, match="JobRootNotFoundError: the job root does not exist"):
        task.execute(context()) if not hasattr(task, "poke") else task.poke(context())
    assert not missing.exists()


def test_the_restart_callback_refuses_a_missing_job_root(tmp_path: Path) -> None:
    missing = tmp_path / "jobs" / "countr"
    with pytest.raises(JobRootNotFoundError, match="job=countr"):
        restart_from_checkpoint(job_root=str(missing))(context())
    assert not missing.exists()


def test_only_a_start_may_create_a_job_root(tmp_path: Path) -> None:
    start = StartStreamingJobOperator(task_id="t", job_root=str(tmp_path / "new"), application="app.py")
    assert start.root().location.path.endswith("new")  # no refusal: the first start creates it
