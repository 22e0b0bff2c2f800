"""The example redeploy DAG (an airflow DAG) with a fault after every task: each task does its work, then
fails once (its ``post_execute``), so the next run must finish the work without repeating any of it
wrongly. And the same DAG with a stop that gives up after 2 s (no retries): a driver inside a long batch
refuses it, and the run fails before the standby's go."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from example_redeploy import redeploy_dag


class FailOnce:
    """``post_execute`` hook: the first time a task id finishes, fail it (a marker next to the job root)."""

    def __call__(self, context: Any, result: Any = None) -> None:
        task_id = context["ti"].task_id
        marker = Path(context["params"]["job_root"]).parent / "injected-faults" / task_id
        if not marker.exists():
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text("failed once")
            raise RuntimeError(f"injected fault: {task_id} did its work, then its task failed")


faults_dag = redeploy_dag("example_redeploy_faults", default_args={"post_execute": FailOnce()})

stuck_stop_dag = redeploy_dag("example_redeploy_stuck_stop", stop_timeout_s=2, stop_retries=0)
