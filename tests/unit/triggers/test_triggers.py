"""Every trigger round-trips its serialization and runs to an event (``asyncio.wait_for``) on a job root
written the way a driver writes it."""

from __future__ import annotations

import asyncio
import importlib
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot
from airflow_checkpoint_provider.model.records import DriverStatus, StopAck
from airflow_checkpoint_provider.triggers.checkpoint import (
    BatchCommittedTrigger,
    DriverStartedTrigger,
    JobHealthyTrigger,
    StopAcknowledgedTrigger,
)
from tests.support.crafted import make_checkpoint


def status(root: JobRoot, **kw: Any) -> None:
    base = {
        "job": "counter",
        "generation": 1,
        "state": "RUNNING",
        "driver_id": "d1",
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "launch_id": "L1",
        "last_committed_batch": 3,
        "lease_s": 30.0,
    }
    root.write_status(DriverStatus(**{**base, **kw}))


def events(trigger: Any) -> list[dict[str, Any]]:
    async def collect() -> list[dict[str, Any]]:
        return [e.payload async for e in trigger.run()]

    return asyncio.run(asyncio.wait_for(collect(), timeout=20))


ALL = [
    DriverStartedTrigger(
        job_root="/j/counter",
        job_name="counter",
        generation=2,
        timeout_s=60,
        poll_interval_s=1,
        launch_id="abc",
        need_commit=True,
        pid=123,
        host="h",
        echo={"generation": 2},
    ),
    StopAcknowledgedTrigger(job_root="/j/counter", generation=2, request_id="r1"),
    BatchCommittedTrigger(job_root="/j/counter", generation=None, batch=5),
    JobHealthyTrigger(job_root="/j/counter", max_heartbeat_age_s=10.0, max_batch_age_s=None, max_lag=100),
]


@pytest.mark.parametrize("trigger", ALL, ids=lambda t: type(t).__name__)
def test_serialize_round_trip(trigger: Any) -> None:
    path, kwargs = trigger.serialize()
    module, name = path.rsplit(".", 1)
    again = getattr(importlib.import_module(module), name)(**kwargs)
    assert again.serialize() == (path, kwargs)
    import json

    assert json.loads(json.dumps(kwargs)) == kwargs  # plain JSON: the wire format


def test_unknown_argument_is_refused() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'bach'"):
        BatchCommittedTrigger(job_root="/j", batch=1, bach=2)


def test_driver_started_done_and_failed(tmp_path: Path) -> None:
    root = JobRoot(tmp_path / "counter")
    status(root)
    done = events(
        DriverStartedTrigger(
            job_root=str(root.location.path),
            generation=1,
            launch_id="L1",
            need_commit=True,
            poll_interval_s=0.1,
            echo={"k": 1},
        )
    )
    assert done[0]["status"] == "done" and done[0]["echo"] == {"k": 1}
    status(root, state="FAILED", error="ForeignSnapshotError: not ours")
    failed = events(
        DriverStartedTrigger(
            job_root=str(root.location.path), generation=1, launch_id="L1", poll_interval_s=0.1
        )
    )
    assert failed[0]["status"] == "failed" and "ForeignSnapshotError" in failed[0]["message"]


def test_timeout_event(tmp_path: Path) -> None:
    root = JobRoot(tmp_path / "counter")
    out = events(
        DriverStartedTrigger(
            job_root=str(root.location.path), generation=1, launch_id="L9", timeout_s=0.3, poll_interval_s=0.1
        )
    )
    assert out[0]["status"] == "timeout" and "waiting for the driver" in out[0]["message"]


def test_stop_acknowledged(tmp_path: Path) -> None:
    root = JobRoot(tmp_path / "counter")
    status(root, state="STOPPED")
    ack = StopAck(
        request_id="r1",
        outcome="stopped",
        method="fence",
        final_committed_batch=3,
        end_offsets=[{"offset": 40}],
        in_flight_batch=None,
        acknowledged_at=time.time(),
        stop_latency_s=0.4,
    )
    root.write_json(root.stop_ack_file(1), ack.to_json())
    out = events(
        StopAcknowledgedTrigger(
            job_root=str(root.location.path), generation=1, request_id="r1", poll_interval_s=0.1
        )
    )
    assert out[0]["status"] == "done" and out[0]["payload"]["final_committed_batch"] == 3


def test_batch_committed_on_a_checkpoint(tmp_path: Path) -> None:
    root = JobRoot(tmp_path / "counter")
    make_checkpoint(Path(root.checkpoint(1).path), committed=4)
    root.write_json(root.location.child("job.json"), {"current_generation": 1})
    out = events(BatchCommittedTrigger(job_root=str(root.location.path), batch=3, poll_interval_s=0.1))
    assert out[0]["status"] == "done" and out[0]["payload"] == {"generation": 1, "last_committed_batch": 4}


def test_health_fails_at_once_for_a_dead_driver(tmp_path: Path) -> None:
    root = JobRoot(tmp_path / "counter")
    root.write_json(root.location.child("job.json"), {"current_generation": 1})
    status(root, heartbeat_at=time.time() - 120, pid=0)
    out = events(JobHealthyTrigger(job_root=str(root.location.path), timeout_s=60, poll_interval_s=0.1))
    assert out[0]["status"] == "failed" and "has not sent a heartbeat" in out[0]["message"]
    status(root, source_lag=[500])
    out = events(
        JobHealthyTrigger(job_root=str(root.location.path), max_lag=100, timeout_s=0.3, poll_interval_s=0.1)
    )
    assert out[0]["status"] == "timeout" and "lag 500" in out[0]["message"]


def test_a_driver_error_keeps_its_type(tmp_path: Path) -> None:
    """The driver writes ``TypeName: message`` in status.json; the start operator raises that type when it is
    ours (so a terminal one stays terminal), else a retryable DriverFailedError."""
    from airflow_checkpoint_provider.exceptions import DriverFailedError, ForeignSnapshotError
    from airflow_checkpoint_provider.operators.checkpoint import driver_error

    root = JobRoot(tmp_path / "counter")
    ours = driver_error(
        root, 2, "did not start", {"error": "ForeignSnapshotError: snapshot s1 belongs to job x"}
    )
    assert isinstance(ours, ForeignSnapshotError) and ours.terminal and "belongs to job x" in str(ours)
    other = driver_error(root, 2, "did not start", {"error": "Py4JJavaError: boom"})
    assert isinstance(other, DriverFailedError) and not other.terminal and "generation=2" in str(other)
