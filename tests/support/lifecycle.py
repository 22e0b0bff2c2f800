"""Real Airflow DAG runs (``dag.test()`` on SQLite) of the lifecycle operators against real local Spark."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot
from tests.support.drivers import APPS, Job
from tests.support.pace import trigger_for


def file_mtimes(folder: Path) -> dict[Path, float]:
    """Every file under ``folder`` with its mtime; a file a live driver renames away meanwhile is left out."""
    found: dict[Path, float] = {}
    for path in folder.rglob("*") if folder.exists() else ():
        try:
            if path.is_file():
                found[path] = path.stat().st_mtime
        except FileNotFoundError:  # Spark's .tmp and .crc files live for milliseconds
            continue
    return found


def run(dag: Any, **conf: Any) -> Any:
    """One real DAG run; returns the DagRun (``dag.test()`` does not raise when a task fails). Params not
    given get the DAG file's defaults (an in-process DAG otherwise keeps what an earlier run's conf set)."""
    from tests.dags.acp_lifecycle_test_dags import PARAMS

    return dag.test(run_conf={**PARAMS, **conf})


def states(dag_run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


def xcom(dag_run: Any, task_id: str, key: str = "return_value") -> Any:
    ti = next(t for t in dag_run.get_task_instances() if t.task_id == task_id)
    return ti.xcom_pull(task_ids=task_id, key=key)


def kill_drivers(path: Path) -> None:
    """Kill -9 every local driver ever launched under a job root (test teardown: nothing outlives the
    test)."""
    root = JobRoot(path)
    for record in root.generation_records().values():
        for launch in record.get("launches", []):
            pid = launch.get("pid")
            if pid:
                try:
                    os.killpg(int(pid), signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass


def driver_pid(job: Job, generation: int) -> int | None:
    """The pid of a generation's latest driver launch (None before its first launch)."""
    launches = (job.root.read_generation_record(generation) or {}).get("launches") or []
    return int(launches[-1]["pid"]) if launches and launches[-1].get("pid") else None


def kill_driver(job: Job, generation: int) -> int | None:
    """kill -9 a generation's latest driver (its own process group: the JVM and its Python workers); return
    its pid, or None when there was nothing to kill."""
    pid = driver_pid(job, generation)
    if pid is None:
        return None
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return None
    return pid


def kill_current_driver(job: Job, generation: int) -> int:
    """kill -9 the running driver of a generation and wait until it is gone; return its pid."""
    status = job.status(generation)
    assert status is not None and status.state == "RUNNING", status
    pid = kill_driver(job, generation)
    assert pid is not None, f"generation {generation} has no live driver launch"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.1)
    return pid


def params(job: Job, run_dir: Path, app: str, **extra: Any) -> dict[str, Any]:
    """``run_conf`` for the DAGs in tests/dags: where this job's root, log, sink and Spark scratch are."""
    (run_dir / "spark-local").mkdir(parents=True, exist_ok=True)
    # Every param, every time: dag.test() on an in-process DAG keeps params a previous run's conf set.
    return {
        "job_root": str(job.path),
        "app": str(APPS[app]),
        "events": str(job.events),
        "output": str(job.output),
        "run_dir": str(run_dir),
        "code_version": f"event-counter-{app}",
        "master": "",
        "conn_id": "",
        "generation": "",
        "snapshot": "",
        "slow_batch_seconds": "0",
        **extra,
    }


def example_params(job: Job, run_dir: Path, app: str, **extra: Any) -> dict[str, Any]:
    """``run_conf`` for the example DAGs (dags/): this job's root, log, sink and Spark scratch, the app's
    code."""
    (run_dir / "spark-local").mkdir(parents=True, exist_ok=True)
    return {
        "job_root": str(job.path),
        "application": str(APPS[app]),
        "code_version": f"dstream-counter-{app[1:]}" if app.startswith("d") else f"event-counter-{app}",
        "application_args": [
            "--events",
            str(job.events),
            "--output",
            str(job.output),
            "--trigger-seconds",
            trigger_for(app),
        ],
        "spark_conf": {
            "spark.ui.enabled": "false",
            "spark.sql.shuffle.partitions": "3",
            "spark.local.dir": str(run_dir / "spark-local"),
            "spark.driver.bindAddress": "127.0.0.1",
        },
        "conn_id": "",
        "migration": "auto",  # every param, every time (dag.test() keeps earlier runs' conf)
        **extra,
    }
