"""The redeploy DAG as it was before the stopping driver exported its own snapshot (an airflow dag for the
redeploy benchmark's side-by-side comparison): the snapshot task runs the exporter as its own Spark
application."""

from __future__ import annotations

from example_redeploy import redeploy_dag

dag = redeploy_dag("bench_redeploy_exporter", export_on_stop=False)
