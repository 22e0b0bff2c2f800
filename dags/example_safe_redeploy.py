"""A redeploy that checks the new code before the cutover and rolls back on evidence after it.

plan (what will change; refuse a state shape, source count or migration the new code cannot take) → baseline
(a snapshot of the running job) → dry run (the new code on a scratch copy of that snapshot, the live events
after it, a scratch checkpoint and a scratch sink: two batches must commit, the check must pass, the job is
not touched) → the redeploy of ``example_redeploy`` (standby, stop, snapshot, cleanup, start) → readiness
(a window after the cutover: batches commit, the lag does not grow, no failure) → rollback if the start or the
readiness failed: the previous code starts again as a new generation from the snapshot taken at the cutover
and re-reads every event since, so nothing is lost or doubled and nothing the bad code computed is kept.

A plan that finds nothing to change skips everything after it (a scheduled run with an unchanged release does
nothing). A plan that finds only settings changed (application arguments, Spark confs the checkpoint does not
pin: its ``resume``) takes the resume branch instead of the redeploy: the same generation stops at a batch
boundary and resumes on its own checkpoint with the new settings, then the readiness window; a failure there
puts the old settings back the same way.

Params: those of ``example_redeploy``, plus ``dry_run`` (false skips it), ``intent`` (``upgrade`` or
``rotate``) and ``readiness_window_s``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from airflow.sdk import DAG, chain
from example_common import PARAMS, START_DATE

from airflow_checkpoint_provider.operators.checkpoint import (
    CleanupStreamingJobOperator,
    DiscardStandbyOperator,
    LaunchStandbyOperator,
    SnapshotStreamingJobOperator,
    StartStreamingJobOperator,
    StopStreamingJobOperator,
)
from airflow_checkpoint_provider.operators.upgrade import (
    DryRunStreamingJobOperator,
    PlanRedeployOperator,
    ReadinessOperator,
    RedeployFailedOperator,
    RollbackStreamingJobOperator,
)

SNAPSHOT = "{{ ti.xcom_pull(task_ids='snapshot') }}"
SAFE_PARAMS = {**PARAMS, "dry_run": True, "intent": "upgrade", "readiness_window_s": 30}


def counts_are_sane(report: Mapping[str, Any]) -> bool:
    """The user check the example runs on the dry run's scratch output: some keys were written, and every
    key was counted at least once with a total of its values (what any counter version must produce)."""
    from pathlib import Path

    import pyarrow.parquet as pq

    rows = [
        row
        for folder in Path(report["output"]).glob("*/g=*/batch=*")
        if (folder / "_SUCCESS").exists()
        for row in pq.read_table(folder).to_pylist()
    ]
    return bool(rows) and all(r["n"] >= 1 and r["total"] is not None for r in rows)


def release_fields(release: str) -> tuple[dict[str, str], dict[str, str], str]:
    """The job, the application and the migration as templates over ``release``: ``params`` (a triggered
    run's conf) or, for a scheduled run, an Airflow Variable a deployment pipeline sets
    (``var.json.acp_release``): the same keys either way."""
    job = {"job_root": f"{{{{ {release}.job_root }}}}", "conn_id": f"{{{{ {release}.conn_id }}}}"}
    application = {
        "application": f"{{{{ {release}.application }}}}",
        "application_args": f"{{{{ {release}.application_args + ['--migration', {release}.migration] }}}}",
        "code_version": f"{{{{ {release}.code_version }}}}",
        "spark_conf": f"{{{{ {release}.spark_conf }}}}",
    }
    return job, application, f"{{{{ {release}.migration }}}}"


def safe_redeploy_dag(
    dag_id: str = "example_safe_redeploy",
    default_args: dict[str, Any] | None = None,
    schedule: Any = None,
    params: dict[str, Any] | None = None,
    release: str = "params",
    intent: str = "{{ params.intent }}",
    tags: tuple[str, ...] = (),
    adopt_dry_run: bool = True,
) -> DAG:
    """The safe redeploy DAG (a function so a test or a scheduled variant can build it with its own id,
    schedule, params, the template namespace its release comes from, and its intent). ``adopt_dry_run``:
    the dry run's driver becomes the standby (False: the standby task launches its own, as before)."""
    JOB, APPLICATION, migration = release_fields(release)
    # [START example_safe_redeploy]
    with DAG(
        dag_id,
        schedule=schedule,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        is_paused_upon_creation=schedule is not None,  # a scheduled one runs once a user unpauses it
        tags=["example", *tags],
        params=params or SAFE_PARAMS,
        render_template_as_native_obj=True,
        default_args=default_args or {},
        # registered by the variable a DAG file assigns it to, not by this block: importing this file for
        # the factory (example_scheduled_redeploy) would otherwise register example_safe_redeploy there too
        auto_register=False,
    ) as dag:
        plan = PlanRedeployOperator(
            task_id="plan",
            intent=intent,
            migration=migration,
            skip_unless_redeploy=True,  # nothing changes: everything after is skipped
            resume_task_id="resume_stop",  # only settings change: the resume branch, not the redeploy
            **APPLICATION,
            **JOB,
        )
        baseline = SnapshotStreamingJobOperator(task_id="baseline", **JOB)  # of the running job
        dry_run = DryRunStreamingJobOperator(
            task_id="dry_run",
            enabled="{{ params.dry_run }}",
            snapshot="{{ ti.xcom_pull(task_ids='baseline') }}",
            check=counts_are_sane,
            # passed, its driver waits to become the standby below
            stay_as_standby="{{ params.standby }}" if adopt_dry_run else False,
            **APPLICATION,
            **JOB,
        )
        standby = LaunchStandbyOperator(
            task_id="standby",
            enabled="{{ params.standby }}",
            dry_run_task_id="dry_run" if adopt_dry_run else None,  # adopt its driver: no second JVM
            **APPLICATION,
            **JOB,
        )
        stop = StopStreamingJobOperator(
            task_id="stop",
            timeout_s=120,
            on_timeout="fail",
            snapshot=True,
            retries=2,
            retry_delay=dt.timedelta(seconds=5),
            **JOB,
        )
        snapshot = SnapshotStreamingJobOperator(task_id="snapshot", require_stopped=True, **JOB)
        cleanup = CleanupStreamingJobOperator(
            task_id="cleanup", snapshot_id=SNAPSHOT, stop_task_id="stop", mode="retire", keep_last=10, **JOB
        )
        start = StartStreamingJobOperator(task_id="start", snapshot=SNAPSHOT, **APPLICATION, **JOB)
        ready = ReadinessOperator(
            task_id="ready",
            window_s="{{ params.readiness_window_s }}",
            trigger_rule="none_failed_min_one_success",  # after the redeploy's start or the resume's
            **JOB,
        )
        chain(plan, baseline, dry_run, standby, stop, snapshot, cleanup, start, ready)
        # only settings change (the plan's resume): the same generation stops at a batch boundary and
        # resumes from its own checkpoint with them; no snapshot, no new generation
        resume_stop = StopStreamingJobOperator(
            task_id="resume_stop", timeout_s=120, on_timeout="fail", retries=2, **JOB
        )
        resume_start = StartStreamingJobOperator(
            task_id="resume_start", settings="apply", **APPLICATION, **JOB
        )
        chain(plan, resume_stop, resume_start, ready)
        # a failure before the cutover: the standby goes, the job stays as it was
        discard = DiscardStandbyOperator(task_id="discard_standby", trigger_rule="one_failed", **JOB)
        chain([stop, snapshot, cleanup, start], discard)
        # a failure after it: the previous code again, from the cutover's snapshot (only a generation this
        # run created is ever rolled back); after a resume, the settings the generation ran with before
        rollback = RollbackStreamingJobOperator(task_id="rollback", trigger_rule="one_failed", **JOB)
        chain([start, resume_start, ready], rollback)
        # the run fails when a step failed, even though the rollback (a leaf) succeeded
        failed = RedeployFailedOperator(task_id="redeploy_failed")  # trigger_rule="one_failed"
        chain(
            [plan, baseline, dry_run, stop, snapshot, cleanup, start, resume_stop, resume_start, ready],
            failed,
        )
    # [END example_safe_redeploy]
    return dag


dag = safe_redeploy_dag()
