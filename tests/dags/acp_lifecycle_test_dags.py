"""DAGs the integration tests run with ``dag.test(run_conf=...)``: every path comes in through ``params``, so
the files parse cheaply (no storage, no pyspark) and one file serves every test's job root."""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import DAG, chain

from airflow_checkpoint_provider.callbacks.checkpoint import restart_from_checkpoint
from airflow_checkpoint_provider.operators.checkpoint import (
    CleanupStreamingJobOperator,
    SnapshotStreamingJobOperator,
    StartStreamingJobOperator,
    StopStreamingJobOperator,
)
from airflow_checkpoint_provider.sensors.checkpoint import CheckpointCommittedSensor, StreamingJobHealthSensor
from tests.support.pace import TRIGGER_S

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
PARAMS = {
    "job_root": "",
    "app": "",
    "events": "",
    "output": "",
    "run_dir": "",
    "code_version": "",
    "master": "",
    "conn_id": "",
    "generation": "",
    "snapshot": "",
    "slow_batch_seconds": "0",
}
JOB = {
    "job_root": "{{ params.job_root }}",
    "master": "{{ params.master }}",
    "conn_id": "{{ params.conn_id }}",
    "poll_interval_s": 0.5,
}
SPARK_CONF = {
    "spark.ui.enabled": "false",
    "spark.local.dir": "{{ params.run_dir }}/spark-local",
    "spark.sql.shuffle.partitions": "3",
    "spark.driver.bindAddress": "127.0.0.1",
}
APP = {
    "application": "{{ params.app }}",
    "application_args": [
        "--events",
        "{{ params.events }}",
        "--output",
        "{{ params.output }}",
        "--trigger-seconds",
        TRIGGER_S,
        "--slow-batch-seconds",
        "{{ params.slow_batch_seconds }}",
    ],
    "code_version": "{{ params.code_version }}",
    "spark_conf": SPARK_CONF,
    "heartbeat_s": 0.5,
    "lease_s": 5.0,
    "start_timeout_s": 300,
}
SNAPSHOT = "{{ ti.xcom_pull(task_ids='snapshot') }}"


def dag(dag_id: str) -> DAG:
    return DAG(dag_id, schedule=None, start_date=START, catchup=False, params=PARAMS, tags=["test"])


with dag("acp_test_start") as start_dag:
    chain(
        StartStreamingJobOperator(task_id="start", **JOB, **APP),
        CheckpointCommittedSensor(
            task_id="committed", job_root="{{ params.job_root }}", batch=2, poke_interval=0.5, timeout=240
        ),
        StreamingJobHealthSensor(
            task_id="healthy", job_root="{{ params.job_root }}", poke_interval=0.5, timeout=60
        ),
    )

with dag("acp_test_snapshot_running") as snapshot_running_dag:
    # a snapshot of the running job: its driver exports it (no exporter application)
    SnapshotStreamingJobOperator(task_id="snapshot", spark_conf=SPARK_CONF, **JOB)

with dag("acp_test_redeploy") as redeploy_dag:
    chain(
        StopStreamingJobOperator(task_id="stop", timeout_s=120, **JOB),
        SnapshotStreamingJobOperator(task_id="snapshot", require_stopped=True, spark_conf=SPARK_CONF, **JOB),
        CleanupStreamingJobOperator(
            task_id="cleanup", snapshot_id=SNAPSHOT, stop_task_id="stop", keep_last=5, **JOB
        ),
        StartStreamingJobOperator(task_id="start", snapshot=SNAPSHOT, **JOB, **APP),
    )

with dag("acp_test_start_apply") as start_apply_dag:
    # a restart of the current generation with this run's settings (what the plan calls a resume)
    StartStreamingJobOperator(task_id="start", settings="apply", **JOB, **APP)

with dag("acp_test_start_apply_pinned") as start_apply_pinned_dag:
    # the same with a conf the checkpoint pins changed: refused
    StartStreamingJobOperator(
        task_id="start",
        settings="apply",
        **JOB,
        **{**APP, "spark_conf": {**SPARK_CONF, "spark.sql.shuffle.partitions": "4"}},
    )

with dag("acp_test_stop") as stop_dag:
    StopStreamingJobOperator(task_id="stop", timeout_s=120, release_lease=True, **JOB)

with dag("acp_test_start_retry") as start_retry_dag:
    # Recovery by retry: the first try fails (the test kills the driver it started); the retry resumes.
    StartStreamingJobOperator(task_id="start", retries=2, retry_delay=dt.timedelta(seconds=0), **JOB, **APP)


def health_check(**callback: Any) -> StreamingJobHealthSensor:
    """A health check whose failure restarts the job from its checkpoint (``restart_from_checkpoint``)."""
    return StreamingJobHealthSensor(
        task_id="healthy",
        job_root="{{ params.job_root }}",
        poke_interval=0.5,
        timeout=30,
        on_failure_callback=restart_from_checkpoint(job_root="{{ params.job_root }}", **callback),
    )


with dag("acp_test_health_restart") as health_restart_dag:
    # Recovery by callback: a health check that finds the driver dead restarts it from its checkpoint.
    health_check()

with dag("acp_test_health_restart_hung") as health_restart_hung_dag:
    # The same, for a driver that hangs: alive by its process, no heartbeat for 8 s (16 of its heartbeats):
    # killed, then restarted from its checkpoint.
    health_check(kill_hung_after_s=8)

with dag("acp_test_cleanup") as cleanup_dag:
    # Refusals are terminal: retries=3 must not be spent on them.
    CleanupStreamingJobOperator(
        task_id="cleanup",
        generation="{{ params.generation }}",
        mode="delete",
        retries=3,
        retry_delay=dt.timedelta(seconds=0),
        **JOB,
    )

with dag("acp_test_start_from") as start_from_dag:
    StartStreamingJobOperator(
        task_id="start",
        snapshot="{{ params.snapshot }}",
        retries=3,
        retry_delay=dt.timedelta(seconds=0),
        **JOB,
        **APP,
    )

with dag("acp_test_stop_kill") as stop_kill_dag:
    # A driver stuck in a long batch: the graceful stop times out, then the driver is hard-killed as
    # configured.
    StopStreamingJobOperator(task_id="stop", timeout_s=1, on_timeout="kill", release_lease=True, **JOB)

with dag("acp_test_stop_fail") as stop_fail_dag:
    StopStreamingJobOperator(task_id="stop", timeout_s=1, on_timeout="fail", release_lease=True, **JOB)
