"""Snapshot manifests under ``<job root>/snapshots/<id>/`` (the folder is a snapshot only once its manifest exists)."""

from __future__ import annotations

from typing import Any

from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot
from airflow_checkpoint_provider.exceptions import ForeignSnapshotError, SnapshotNotFoundError

MANIFEST = "manifest.json"


def read_manifest(root: JobRoot, snapshot_id: str, *, generation: int | None = None) -> dict[str, Any]:
    """The manifest of a snapshot of this job; typed errors for a missing or foreign one."""
    folder = root.snapshot_dir(snapshot_id)
    data = root.read_json(folder.child(MANIFEST), what="snapshot manifest")
    if data is None:
        raise SnapshotNotFoundError(
            f"snapshot {snapshot_id!r} does not exist or has no manifest (an unfinished export is not a snapshot)",
            path=folder.uri, job=root.job, generation=generation,
            hint="List snapshots with 'airflow-checkpoint snapshots <job root>'",
        )
    if data.get("job") != root.job:
        raise ForeignSnapshotError(
            f"snapshot {snapshot_id!r} belongs to job {data.get('job')!r}, not {root.job!r}",
            path=folder.uri, job=root.job, generation=generation,
        )
    return data
