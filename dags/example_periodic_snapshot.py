"""Snapshot a running streaming job every 30 minutes and keep the newest 24 (and none older than 7 days).

The snapshot is taken at the job's last committed batch while it runs (the batch is pinned, so state and
offsets come from the same batch) and verified. A generation can later be restarted from it, or rolled back to
it. The newest verified snapshot and any snapshot a kept generation started from are never deleted.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG
from example_common import JOB, PARAMS, START_DATE

from airflow_checkpoint_provider.operators.checkpoint import SnapshotStreamingJobOperator

# [START example_periodic_snapshot]
with DAG(
    "example_periodic_snapshot",
    schedule=dt.timedelta(minutes=30),
    is_paused_upon_creation=True,  # scheduled: runs only once a user points it at a job and unpauses it
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["example"],
    params=PARAMS,
    render_template_as_native_obj=True,
) as dag:
    SnapshotStreamingJobOperator(
        task_id="snapshot",
        keep_last=24,
        max_age="7d",
        release_lease=True,
        spark_conf="{{ params.spark_conf }}",
        retries=2,
        **JOB,
    )
# [END example_periodic_snapshot]
