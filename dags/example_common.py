"""What the example DAGs share: the job they act on, as DAG params with defaults a user overrides per run.

Params render as native objects (``render_template_as_native_obj=True`` on the DAGs), so lists and dicts stay
lists and dicts. Nothing here touches storage or imports pyspark: DAG files stay cheap to parse.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

APPS = Path(__file__).resolve().parent / "apps"
START_DATE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

#: Override per run (``airflow dags trigger --conf``) or per deployment (edit the defaults).
PARAMS = {
    "job_root": "/tmp/airflow-checkpoint-example/jobs/counter",
    "conn_id": "",  # a `spark` connection; empty: local[2] drivers on the worker, detached
    "application": str(APPS / "event_counter_v1.py"),
    "application_args": [
        "--events",
        "/tmp/airflow-checkpoint-example/events",
        "--output",
        "/tmp/airflow-checkpoint-example/out",
    ],
    "code_version": "event-counter-v1",
    "migration": "auto",
    "spark_conf": {"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "3"},
    # a redeploy launches the new code as a warm standby before it stops the old (false: a cold start after)
    "standby": True,
}

#: The job every task acts on.
JOB = {"job_root": "{{ params.job_root }}", "conn_id": "{{ params.conn_id }}"}

#: How the new code is launched (the application's own arguments, with the snapshot migration it should
#: apply).
APPLICATION = {
    "application": "{{ params.application }}",
    "application_args": "{{ params.application_args + ['--migration', params.migration] }}",
    "code_version": "{{ params.code_version }}",
    "spark_conf": "{{ params.spark_conf }}",
}
