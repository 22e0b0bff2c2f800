"""Watch a streaming job and bring it back from its own checkpoint when its driver dies.

Every 5 minutes a health check (driver RUNNING, heartbeat fresh, a batch in the last 10 minutes); when the
driver is dead or failed the check fails at once and its ``on_failure_callback`` restarts the current
generation on its intact checkpoint — resume, never a snapshot, never a cleanup — unless a redeploy holds the
job's lease or the job was stopped on request. A driver whose process runs but which has sent no heartbeat for
15 minutes (hung) is killed first.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG
from example_common import PARAMS, START_DATE

from airflow_checkpoint_provider.callbacks.checkpoint import restart_from_checkpoint
from airflow_checkpoint_provider.sensors.checkpoint import StreamingJobHealthSensor

# [START example_watchdog]
with DAG(
    "example_watchdog",
    schedule=dt.timedelta(minutes=5),
    is_paused_upon_creation=True,  # scheduled: runs only once a user points it at a job and unpauses it
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    tags=["example"],
    params=PARAMS,
    render_template_as_native_obj=True,
) as dag:
    StreamingJobHealthSensor(
        task_id="healthy",
        job_root="{{ params.job_root }}",
        max_batch_age_s=600,
        poke_interval=5,
        timeout=60,
        on_failure_callback=restart_from_checkpoint(
            job_root="{{ params.job_root }}",
            wait_s=120,
            kill_hung_after_s=900,  # alive but silent for 15 minutes: killed, then restarted
        ),
    )
# [END example_watchdog]
