"""React to every new snapshot of a streaming job: an audit that re-verifies it, scheduled on the snapshots'
assets.

The snapshot task of a redeploy (or of ``example_periodic_snapshot``) announces each verified snapshot as an
event of its job's asset, through the asset alias ``checkpoint-snapshots``. This DAG is scheduled on that
alias, so it runs once per new snapshot of any job, and reads which snapshot it was (id, job root, generation,
batch, end offsets) from the triggering event's extra. A backfill, a copy to cold storage or a data-quality
check would start the same way; to follow one job only, schedule on ``snapshot_asset("<job root>")``.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, task
from example_common import START_DATE

from airflow_checkpoint_provider.assets import snapshot_alias

# [START example_snapshot_audit]
with DAG(
    "example_snapshot_audit",
    schedule=[snapshot_alias()],
    start_date=START_DATE,
    catchup=False,
    tags=["example"],
) as dag:

    @task
    def audit(*, triggering_asset_events: Any = None) -> list[str]:
        """Re-verify each announced snapshot (files, sizes, checksums, row counts); return their ids."""
        from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot
        from airflow_checkpoint_provider.checkpoint.snapshots import verify_snapshot

        audited: list[str] = []
        for events in (triggering_asset_events or {}).values():  # keyed by the asset and by the alias
            for event in events:
                extra = event.extra
                if extra["snapshot_id"] in audited:
                    continue
                result = verify_snapshot(JobRoot(extra["job_root"]), extra["snapshot_id"])
                print(
                    f"snapshot {result.snapshot_id} of {extra['job']}: generation {extra['generation']}, "
                    f"batch {extra['batch']}, {result.rows} rows in {result.files} files, verified"
                )
                audited.append(str(extra["snapshot_id"]))
        return audited

    audit()
# [END example_snapshot_audit]
