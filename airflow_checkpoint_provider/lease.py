"""Who holds a job's lease, in Airflow's terms: the DAG run. Every task of one redeploy run shares the lease;
the restart callback holds it as ``restart:<dag_id>/<run_id>``. The lease itself lives in the job root
(``checkpoint/ledger.py``), which knows nothing of Airflow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow.sdk import Context

#: The prefix the restart callback adds to its run's holder name.
RESTART_PREFIX = "restart:"


def run_holder(context: Context) -> str:
    """Who holds the lease: the DAG run (every task of one redeploy run shares it)."""
    dag_run = context.get("dag_run")
    dag_id = getattr(dag_run, "dag_id", None) or context["ti"].dag_id
    run_id = getattr(dag_run, "run_id", None) or context.get("run_id", "?")
    return f"{dag_id}/{run_id}"


def run_finished(context: Context, holder: str) -> bool:
    """Whether the DAG run ``holder`` (``dag_id/run_id``) is no longer active, so the lease it left is
    free."""
    dag_id, _, run_id = holder.removeprefix(RESTART_PREFIX).partition("/")
    if not dag_id or not run_id:
        return False
    try:  # active = queued or running; a finished, cleared-and-recreated or deleted run holds nothing
        active = context["ti"].get_dr_count(dag_id=dag_id, run_ids=[run_id], states=["queued", "running"])
    # best effort: unknown means "still running", and the lease only expires
    except Exception:  # noqa: BLE001
        return False
    return int(active) == 0
