"""Redeploy a stateful streaming job to new code without losing or double-counting a single event.

launch the new code as a warm standby (its JVM, Spark session and Python workers start while the old job still
runs) → stop the old driver at a batch boundary and have it export its state and source offsets at its last
committed batch before it exits → verify that snapshot (or export it here, if the driver could not) → retire
the old checkpoint in place → start the new code on a fresh checkpoint with the snapshot as initial state, its
source starting right after that batch → wait until it is healthy. The standby takes over by itself as soon as
the old driver's snapshot is verified (the handoff does not wait for the next task to be scheduled); the start
task then only waits for its first commit, or starts the new code cold if the standby is gone. If the redeploy
fails before the handoff (the old driver will not stop), ``discard_standby`` sends the standby away and the
job stays as it was. ``params.standby=false`` skips the standby (the new code starts cold after the stop).

Params: ``job_root``, the new ``application`` (+ ``application_args``, ``code_version``) and the ``migration``
the new code applies to the old state. Safe to rerun after any failure: each task finds what an earlier try
did (the stop is already done, the snapshot exists, the generation was created, its driver runs) and finishes
the work. One redeploy per job at a time: a second run fails fast naming the run that holds the job's lease.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import DAG, chain
from example_common import APPLICATION, JOB, PARAMS, START_DATE

from airflow_checkpoint_provider.operators.checkpoint import (
    CleanupStreamingJobOperator,
    DiscardStandbyOperator,
    LaunchStandbyOperator,
    SnapshotStreamingJobOperator,
    StartStreamingJobOperator,
    StopStreamingJobOperator,
)
from airflow_checkpoint_provider.sensors.checkpoint import StreamingJobHealthSensor

SNAPSHOT = "{{ ti.xcom_pull(task_ids='snapshot') }}"


def redeploy_dag(
    dag_id: str = "example_redeploy",
    default_args: dict[str, Any] | None = None,
    export_on_stop: bool = True,
    stop_timeout_s: float = 120,
    stop_retries: int = 2,
) -> DAG:
    """The redeploy DAG (a function so a test can build it with fault-injecting ``default_args`` or a short
    ``stop_timeout_s``, and the benchmark with ``export_on_stop=False``: the snapshot then runs as its own
    Spark application, as it did before)."""
    # [START example_redeploy]
    with DAG(
        dag_id,
        schedule=None,
        start_date=START_DATE,
        catchup=False,
        tags=["example"],
        params=PARAMS,
        render_template_as_native_obj=True,
        default_args=default_args or {},
        # registered by the variable a DAG file assigns it to, not by this block: a DAG file that imports
        # this one for the factory would otherwise register example_redeploy as its own DAG too
        auto_register=False,
    ) as dag:
        standby = LaunchStandbyOperator(
            task_id="standby", enabled="{{ params.standby }}", **APPLICATION, **JOB
        )
        stop = StopStreamingJobOperator(  # idempotent: a retry waits on the pending request, or finds it done
            task_id="stop",
            timeout_s=stop_timeout_s,
            on_timeout="fail",
            snapshot=export_on_stop,
            retries=stop_retries,
            retry_delay=dt.timedelta(seconds=5),
            **JOB,
        )
        snapshot = SnapshotStreamingJobOperator(task_id="snapshot", require_stopped=True, **JOB)
        cleanup = CleanupStreamingJobOperator(
            task_id="cleanup", snapshot_id=SNAPSHOT, stop_task_id="stop", mode="retire", keep_last=10, **JOB
        )
        start = StartStreamingJobOperator(
            task_id="start",
            snapshot=SNAPSHOT,
            retries=2,
            retry_delay=dt.timedelta(seconds=20),
            **APPLICATION,
            **JOB,
        )
        healthy = StreamingJobHealthSensor(
            task_id="healthy", job_root="{{ params.job_root }}", poke_interval=2, timeout=300
        )
        chain(standby, stop, snapshot, cleanup, start, healthy)
        # the old driver would not stop (or another step failed before the handoff): the job stays as it was
        discard = DiscardStandbyOperator(task_id="discard_standby", trigger_rule="one_failed", **JOB)
        chain([stop, snapshot, cleanup, start], discard)
    # [END example_redeploy]
    return dag


dag = redeploy_dag()
