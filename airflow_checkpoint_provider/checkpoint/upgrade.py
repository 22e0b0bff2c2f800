"""Safe upgrades, the parts that read a job root: the plan's inputs, the dry run's scratch job, rollbacks.

No Airflow and no pyspark here: the operators (``operators/upgrade.py``) and the CLI use these.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from airflow_checkpoint_provider.checkpoint import snapshots as _snapshots
from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot
from airflow_checkpoint_provider.checkpoint.ledger import JobLedger
from airflow_checkpoint_provider.exceptions import InvalidLocationError, SnapshotNotFoundError
from airflow_checkpoint_provider.model.contract import read_contract
from airflow_checkpoint_provider.model.plan import Deployment, Intent, Plan, SnapshotShape, plan_redeploy

#: Inside the job root: every dry run's scratch folder lives here, and only here.
SCRATCH = "scratch"


def application_sha256(application: str) -> str | None:
    """SHA-256 of a local application file (None for a remote one: the plan then compares labels only)."""
    path = Path(str(application).removeprefix("file://"))
    if "://" in str(application) or not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


def deployment_of(record: Mapping[str, Any]) -> Deployment:
    return Deployment(
        application=str(record.get("application") or ""),
        code_version=str(record.get("code_version") or ""),
        application_sha256=record.get("application_sha256"),
        application_args=tuple(str(a) for a in record.get("application_args") or ()),
        conf={str(k): str(v) for k, v in dict(record.get("conf") or {}).items()},
    )


def latest_shape(root: JobRoot, generation: int) -> SnapshotShape | None:
    """The state a redeploy of ``generation`` will hand on, as its newest verified snapshot shows it."""
    for entry in _snapshots.SnapshotCatalogue(root).list():
        if entry.complete and entry.verified and entry.generation == generation:
            manifest = _snapshots.read_manifest(root, entry.snapshot_id)
            return SnapshotShape(
                snapshot_id=manifest.snapshot_id,
                generation=manifest.generation,
                parts={
                    name: [(c["name"].lower(), c["type"].lower()) for c in part.columns]
                    for name, part in manifest.parts.items()
                },
                sources=len(manifest.end_offsets),
            )
    return None


def make_plan(
    root: JobRoot,
    *,
    application: str,
    code_version: str = "",
    application_args: Sequence[str] = (),
    conf: Mapping[str, str] | None = None,
    intent: str = "upgrade",
    migration: str = "auto",
) -> Plan:
    """What redeploying the job to this application would do (see :mod:`model.plan`); reads only."""
    root.require_job()
    current = root.current_generation()
    record = (root.read_generation_record(current) if current is not None else None) or {}
    proposed = Deployment(
        application=str(application),
        code_version=code_version,
        application_sha256=application_sha256(application),
        application_args=tuple(str(a) for a in application_args),
        conf={str(k): str(v) for k, v in dict(conf or {}).items()},
    )
    return plan_redeploy(
        job=root.job,
        generation=current,
        current=deployment_of(record) if record else None,
        proposed=proposed,
        intent=Intent(intent),
        migration=migration,
        contract=read_contract(str(application)),
        shape=latest_shape(root, current) if current is not None else None,
    )


# --- the dry run's scratch job ------------------------------------------------------------------------


def scratch_dir(root: JobRoot, name: str) -> Path:
    """``<job root>/scratch/<name>``: where one dry run writes everything (a local job root only)."""
    if not root.location.is_local:
        raise InvalidLocationError(
            "a dry run needs a local job root (its scratch job is copied there)",
            path=root.location.uri,
            job=root.job,
        )
    return Path(root.location.path) / SCRATCH / name


def make_scratch_job(
    root: JobRoot, scratch: Path, snapshot_id: str, generation: int, launch: Mapping[str, Any]
) -> JobRoot:
    """A job root at ``<scratch>/job`` holding a copy of the snapshot and a record of ``generation`` to
    launch there: the dry run's driver runs on it exactly as it would on the job (fresh path, initial state,
    offsets), and cannot reach the job's own checkpoints, ledger or records."""
    source = root.snapshot_dir(snapshot_id)
    if not _snapshots.SnapshotCatalogue(root).entry(snapshot_id).complete:
        raise SnapshotNotFoundError(
            f"snapshot {snapshot_id!r} is not a complete snapshot of the job",
            path=source.uri,
            job=root.job,
            generation=generation,
        )
    _snapshots.verify_snapshot(root, snapshot_id, record=False, generation=generation)
    job = JobRoot(str(scratch / "job"), job=root.job)
    target = Path(job.snapshot_dir(snapshot_id).path)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source.path, target)
    job.update_generation_record(
        generation,
        **launch,
        snapshot=snapshot_id,
        created_at=time.time(),
        created_by="dry-run",
        dry_run_output=str(scratch / "output"),
    )
    JobLedger(job).set_current(generation, by="dry-run", event="generation_created", snapshot=snapshot_id)
    return job


def files_under(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file below ``folder``: relative path -> (size, mtime ns). What the dry run's audit compares."""
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file()
    }


# --- rollbacks ----------------------------------------------------------------------------------------


def rolled_back_generations(root: JobRoot) -> list[int]:
    """Generations a rollback superseded: their sink output is the bad code's, and readers skip it."""
    return sorted(g for g, r in root.generation_records().items() if r.get("rolled_back_at"))


def settings_change(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """A generation record's last settings change in place (``StartStreamingJobOperator(settings="apply")``),
    if any: who applied it and when, and when it was reverted (None while the new settings stand)."""
    applied_at = record.get("settings_applied_at")
    if not applied_at:
        return None
    reverted_at = record.get("settings_reverted_at")
    return {
        "applied_by": record.get("settings_applied_by"),
        "applied_at": applied_at,
        "reverted_by": record.get("settings_reverted_by"),
        "reverted_at": reverted_at if reverted_at and float(reverted_at) >= float(applied_at) else None,
    }
