"""DAGs for the redeploy benchmark's side-by-side comparisons (an airflow dag file):

- ``bench_redeploy_exporter``: the redeploy as it was before the stopping driver exported its own snapshot
  (the snapshot task runs the exporter as its own Spark application);
- ``bench_safe_redeploy_two_drivers``: the safe redeploy as it was before its dry run's driver became the
  standby (the dry run exits; the standby task launches a second driver).
"""

from __future__ import annotations

from example_redeploy import redeploy_dag
from example_safe_redeploy import safe_redeploy_dag

dag = redeploy_dag("bench_redeploy_exporter", export_on_stop=False)
two_drivers = safe_redeploy_dag("bench_safe_redeploy_two_drivers", adopt_dry_run=False)
