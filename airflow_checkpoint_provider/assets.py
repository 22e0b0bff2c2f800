"""Snapshots as Airflow Assets: every verified snapshot is an asset event of its job's asset, so a DAG can be
scheduled on "a new snapshot of job X" (a backfill, an audit, a copy to cold storage) and read which snapshot
it was from the event's extra.

The snapshot operator announces through the asset alias :data:`SNAPSHOT_ALIAS` (its default outlet), because a
job root is often a run parameter that is only known when the task runs; the alias resolves to the job's asset
(:func:`snapshot_asset`) with the first event. A consumer schedules on the alias (all jobs) or on one job's
asset, and reads ``triggering_asset_events``::

    with DAG("audit", schedule=[snapshot_asset("/data/jobs/counter")]):
        ...  # extra: snapshot_id, generation, batch, end_offsets, job, job_root
"""

from __future__ import annotations

from airflow.sdk import Asset, AssetAlias

#: The alias every snapshot operator announces through (its default outlet).
SNAPSHOT_ALIAS = "checkpoint-snapshots"
#: The URI scheme of a job's snapshot asset.
SCHEME = "checkpoint-snapshots"


def snapshot_alias() -> AssetAlias:
    return AssetAlias(name=SNAPSHOT_ALIAS)


def snapshot_asset(job_root: str, job: str | None = None) -> Asset:
    """The asset whose events are the verified snapshots of the job at ``job_root`` (pure: no I/O).

    :param job_root: the job root as the operators are given it (a path or URI).
    :param job: the job's name, default the job root's last path element.
    """
    from airflow_checkpoint_provider.checkpoint.storage import Location

    location = Location.of(job_root)
    name = job or location.name
    return Asset(name=f"{SCHEME}/{name}", uri=f"{SCHEME}://{location.uri.split('://')[-1]}")
