"""The reference for the import benchmark: an airflow DAG of the same shape as the example DAGs with no
provider operator in it — what any DAG file costs to import over ``airflow.sdk`` (Airflow's own DAG and
timetable code)."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, BaseOperator, chain

with DAG(
    "bench_reference",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    params={"job_root": "/tmp/x"},
    render_template_as_native_obj=True,
) as dag:
    chain(*(BaseOperator(task_id=f"task_{i}") for i in range(5)))
