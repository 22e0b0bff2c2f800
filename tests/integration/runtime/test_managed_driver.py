"""The managed runtime in real spark-submit drivers: kill -9 and resume, graceful stop, fencing."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import pytest

from airflow_checkpoint_provider.checkpoint.inspector import inspect_checkpoint
from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot
from airflow_checkpoint_provider.model.launch import LaunchSpec
from airflow_checkpoint_provider.model.records import StopRequest
from airflow_checkpoint_provider.runtime.eventlog import EventLogWriter
from tests.support.counting import fold_log, partial_batches, sink_totals
from tests.support.processes import ROOT, kill_group, spark_submit, wait_for

pytestmark = pytest.mark.spark
APP_V1 = ROOT / "dags" / "apps" / "event_counter_v1.py"


class Producer:
    """Writes events continuously to the log until stopped."""

    def __init__(self, log: Path, per_tick: int = 20, tick_s: float = 0.1) -> None:
        self.writer = EventLogWriter(str(log), segment_records=500)
        self.per_tick, self.tick_s = per_tick, tick_s
        self._stop = threading.Event()
        self._i = self.writer.next_offset
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.writer.append({"key": f"k{(self._i + j) % 7}", "value": (self._i + j) % 11, "ts": time.time()}
                               for j in range(self.per_tick))
            self._i += self.per_tick
            time.sleep(self.tick_s)

    def __enter__(self) -> Producer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.thread.join()
        self.writer.close()


def launch(spec: LaunchSpec, work: Path, run_dir: Path, name: str, *app: str):  # type: ignore[no-untyped-def]
    log = work / f"{name}.log"
    args = [*spec.to_args(), "--", "--events", str(work / "events"), "--output", str(work / "out"),
            "--trigger-seconds", "0.5", *app]
    return spark_submit(APP_V1, *args, run_dir=run_dir, log=log), log


def test_kill_9_resume_and_graceful_stop(run_dir: Path) -> None:
    work = run_dir / "managed-resume"
    (work / "job").mkdir(parents=True)
    root = JobRoot(work / "job")
    root.write_json(root.location.child("job.json"), {"job": "job", "current_generation": 1})
    spec = LaunchSpec(job_root=str(work / "job"), generation=1, code_version="v1", heartbeat_s=0.5, lease_s=5)
    with Producer(work / "events"):
        proc, log = launch(spec, work, run_dir, "first")
        try:
            wait_for(lambda: (s := root.read_status(1)) is not None and (s.last_committed_batch or -1) >= 2,
                     240, "three committed batches", proc, log)
            first = root.read_status(1)
            assert first is not None and first.start_mode == "first"
        finally:
            kill_group(proc)  # kill -9, mid-stream
        time.sleep(6)  # let the dead driver's lease expire
        proc, log = launch(spec, work, run_dir, "second")
        try:
            wait_for(lambda: (s := root.read_status(1)) is not None and s.start_mode == "resume"
                     and s.state == "RUNNING", 240, "the restarted driver to resume", proc, log)
            resumed = root.read_status(1)
            assert resumed is not None and resumed.snapshot is None and "initial state is not loaded" in str(resumed.start_reason)
            assert resumed.query_id == first.query_id and resumed.run_id != first.run_id
            time.sleep(2)
            request = StopRequest(request_id=uuid.uuid4().hex, requested_at=time.time(), timeout_s=60)
            root.write_stop_request(1, request)
            assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
        finally:
            kill_group(proc)
    ack = root.read_stop_ack(1)
    assert ack is not None and ack.outcome == "stopped" and ack.method == "fence"
    info = inspect_checkpoint(root.checkpoint(1))
    assert info.in_flight_batch is None
    assert ack.final_committed_batch == info.last_committed_batch
    assert ack.end_offsets == info.committed.end_offsets_json()  # type: ignore[union-attr]
    status = root.read_status(1)
    assert status is not None and status.state == "STOPPED"
    end = ack.end_offsets[0]["offset"]  # type: ignore[index]
    assert partial_batches(work / "out") == []
    assert sink_totals(work / "out") == fold_log(work / "events", end)
    print(json.dumps({"stop_latency_s": ack.stop_latency_s, "final_batch": ack.final_committed_batch, "end": end}))
