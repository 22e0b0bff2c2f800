"""Start a streaming job (first start, or a restart of its current generation from its own checkpoint) and
stop it gracefully — the two DAGs a team triggers by hand.

``example_start_job``: start → wait for a committed batch. Without a snapshot it never creates a generation:
on an existing job it resumes the current one, and a live driver is reconnected to, never submitted twice. It
restarts a generation as it was recorded; with the param ``settings`` set to ``apply`` it restarts a stopped
generation with the run's application arguments and Spark confs instead, where the checkpoint can take them
(what the plan calls a ``resume``: e.g. ``spark.executor.memory``; docs/upgrades.md).
``example_stop_job``: a graceful stop at a batch boundary; an already stopped job is success.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, chain
from example_common import APPLICATION, JOB, PARAMS, START_DATE

from airflow_checkpoint_provider.operators.checkpoint import (
    StartStreamingJobOperator,
    StopStreamingJobOperator,
)
from airflow_checkpoint_provider.sensors.checkpoint import CheckpointCommittedSensor

# [START example_start_job]
with DAG(
    "example_start_job",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    tags=["example"],
    params={**PARAMS, "settings": "recorded"},  # "apply": restart with this run's settings
    render_template_as_native_obj=True,
) as start_job:
    chain(
        StartStreamingJobOperator(
            task_id="start",
            settings="{{ params.settings }}",
            retries=2,
            retry_delay=dt.timedelta(seconds=20),
            **APPLICATION,
            **JOB,
        ),
        CheckpointCommittedSensor(
            task_id="committed", job_root="{{ params.job_root }}", batch=0, poke_interval=2, timeout=300
        ),
    )
# [END example_start_job]

with DAG(
    "example_stop_job",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    tags=["example"],
    params=PARAMS,
    render_template_as_native_obj=True,
) as stop_job:
    StopStreamingJobOperator(  # with a final snapshot: a DStream job's state is exported only by its driver
        task_id="stop",
        timeout_s=120,
        snapshot=True,
        release_lease=True,
        retries=2,
        retry_delay=dt.timedelta(seconds=5),
        **JOB,
    )
