"""Managed counter drivers as real spark-submit processes, fed by a continuous producer."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from pathlib import Path

from airflow_checkpoint_provider.checkpoint.inspector import inspect_checkpoint
from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot
from airflow_checkpoint_provider.model.launch import LaunchSpec
from airflow_checkpoint_provider.model.records import DriverStatus, StopRequest
from airflow_checkpoint_provider.runtime.eventlog import EventLogWriter
from tests.support.pace import trigger_for
from tests.support.processes import ROOT, spark_submit, wait_for

APPS = {v: ROOT / "dags" / "apps" / f"event_counter_{v}.py" for v in ("v1", "v2", "v3")}
APPS.update({f"d{v}": ROOT / "dags" / "apps" / f"dstream_counter_{v}.py" for v in ("v1", "v2")})
EXPORTER = ROOT / "airflow_checkpoint_provider" / "runtime" / "export.py"


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
            self.writer.append(
                {"key": f"k{(self._i + j) % 7}", "value": (self._i * 7 + j * 13) % 101, "ts": time.time()}
                for j in range(self.per_tick)
            )
            self._i += self.per_tick
            time.sleep(self.tick_s)

    def __enter__(self) -> Producer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.thread.join()
        self.writer.close()


class Job:
    """One job root under ``work`` with its event log and sink, and helpers to drive its generations."""

    def __init__(self, work: Path, run_dir: Path, name: str = "counter") -> None:
        self.work, self.run_dir = work, run_dir
        self.path = work / name
        self.path.mkdir(parents=True, exist_ok=True)
        self.root = JobRoot(self.path)
        self.events = work / "events"
        self.output = work / "out"
        self.launches = 0

    def set_current(self, generation: int) -> None:
        self.root.write_json(self.root.location.child("job.json"), {"current_generation": generation})

    def spec(self, generation: int, **kw: object) -> LaunchSpec:
        return LaunchSpec(job_root=str(self.path), generation=generation, heartbeat_s=0.5, lease_s=5, **kw)  # type: ignore[arg-type]

    def launch(
        self, app: str, spec: LaunchSpec, *app_args: str, conf: dict[str, str] | None = None
    ) -> tuple[subprocess.Popen[bytes], Path]:
        """``spark-submit`` ``app`` for ``spec`` on local[2]; ``conf``: more ``--conf`` settings."""
        self.launches += 1
        log = self.work / f"driver-{self.launches}-{app}-g{spec.generation}.log"
        args = [
            *spec.to_args(),
            "--",
            "--events",
            str(self.events),
            "--output",
            str(self.output),
            "--trigger-seconds",
            trigger_for(app),
            *app_args,
        ]
        return spark_submit(APPS[app], *args, run_dir=self.run_dir, log=log, conf=conf), log

    def status(self, generation: int) -> DriverStatus | None:
        return self.root.read_status(generation)

    def committed(self, generation: int) -> int:
        info = inspect_checkpoint(self.root.checkpoint(generation), allow_empty=True)
        return -1 if info.last_committed_batch is None else info.last_committed_batch

    def in_flight(self, generation: int) -> int | None:
        return inspect_checkpoint(self.root.checkpoint(generation), allow_empty=True).in_flight_batch

    def wait_committed(self, generation: int, batch: int, proc: subprocess.Popen[bytes], log: Path) -> None:
        wait_for(
            lambda: self.committed(generation) >= batch,
            240,
            f"g{generation} to commit batch {batch}",
            proc,
            log,
        )

    def wait_in_flight(self, generation: int, proc: subprocess.Popen[bytes], log: Path) -> int:
        """Wait until a batch is planned but not committed (the driver is inside it)."""
        wait_for(
            lambda: self.in_flight(generation) is not None,
            240,
            f"a batch in flight in g{generation}",
            proc,
            log,
        )
        return int(self.in_flight(generation))  # type: ignore[arg-type]

    def request_stop(self, generation: int, timeout_s: float = 60, **kw: object) -> StopRequest:
        request = StopRequest(
            request_id=uuid.uuid4().hex, requested_at=time.time(), timeout_s=timeout_s, **kw
        )  # type: ignore[arg-type]
        self.root.write_stop_request(generation, request)
        return request

    def export(self, generation: int, *extra: str) -> dict[str, object]:
        """Run the exporter as its own spark-submit; return its result line."""
        log = self.work / f"export-g{generation}-{uuid.uuid4().hex[:6]}.log"
        proc = spark_submit(
            EXPORTER,
            "--job-root",
            str(self.path),
            "--generation",
            str(generation),
            *extra,
            run_dir=self.run_dir,
            log=log,
        )
        rc = proc.wait(timeout=300)
        text = log.read_text()
        assert rc == 0, text[-3000:]
        last = [line for line in text.splitlines() if line.startswith('{"snapshot_id"')][-1]
        return json.loads(last)  # type: ignore[no-any-return]


def checkpoint_digest(path: Path) -> dict[str, bytes]:
    """Every file below a folder with its content (to show a checkpoint was not touched)."""
    return (
        {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}
        if path.exists()
        else {}
    )
