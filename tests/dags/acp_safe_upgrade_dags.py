"""DAGs for the safe-upgrade tests (module level: ``dag.test()`` serializes them through the bundle).

``dry_run_audit``: only the dry run of ``example_safe_redeploy``, on the newest verified snapshot, keeping its
scratch folder so a test can audit what it wrote. ``snapshot_now``: one snapshot of the running job.
"""

from __future__ import annotations

from airflow.sdk import DAG
from example_common import APPLICATION, JOB, START_DATE
from example_safe_redeploy import SAFE_PARAMS, counts_are_sane

from airflow_checkpoint_provider.operators.checkpoint import SnapshotStreamingJobOperator
from airflow_checkpoint_provider.operators.upgrade import DryRunStreamingJobOperator

with DAG(
    "acp_dry_run_audit",
    schedule=None,
    start_date=START_DATE,
    params=SAFE_PARAMS,
    render_template_as_native_obj=True,
) as dry_run_audit:
    DryRunStreamingJobOperator(
        task_id="dry_run", snapshot="latest", check=counts_are_sane, keep_scratch=True, **APPLICATION, **JOB
    )

with DAG(
    "acp_snapshot_now",
    schedule=None,
    start_date=START_DATE,
    params=SAFE_PARAMS,
    render_template_as_native_obj=True,
) as snapshot_now:
    SnapshotStreamingJobOperator(task_id="snapshot", release_lease=True, **JOB)
