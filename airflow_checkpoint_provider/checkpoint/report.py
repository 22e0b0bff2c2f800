"""A job's whole state as one JSON-able report, read from its job root alone (no Airflow, no JVM): what the
``status`` command prints and what the Airflow UI page shows, from the same reading."""

from __future__ import annotations

import time
from typing import Any

from airflow_checkpoint_provider.checkpoint.inspector import inspect_checkpoint
from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot
from airflow_checkpoint_provider.checkpoint.ledger import JobLedger
from airflow_checkpoint_provider.checkpoint.processes import driver_reported_alive
from airflow_checkpoint_provider.checkpoint.snapshots import SnapshotCatalogue
from airflow_checkpoint_provider.checkpoint.upgrade import settings_change
from airflow_checkpoint_provider.exceptions import CheckpointProviderError
from airflow_checkpoint_provider.model.records import StopOutcome


def job_status(job_root: str | JobRoot, job_name: str | None = None) -> dict[str, Any]:
    """Everything ``airflow-checkpoint status`` and the Airflow UI page show, as one JSON-able object: the
    job's generations (state, batches, code version, the snapshot each started from, its stop and the
    downtime of the redeploy that started it), the lease and the snapshots.

    :raises JobRootNotFoundError: nothing exists at ``job_root`` (and ``NotAJobRootError``: not a job root).
    """
    root = (job_root if isinstance(job_root, JobRoot) else JobRoot(job_root, job=job_name)).require_job()
    ledger = JobLedger(root).read()
    now = time.time()
    generations = []
    for g, record in root.generation_records().items():
        status = root.read_status(g)
        try:
            info = (
                inspect_checkpoint(root.checkpoint(g), allow_empty=True)
                if not record.get("deleted_at")
                else None
            )
            committed: int | str | None = None if info is None else info.last_committed_batch
        except CheckpointProviderError as exc:
            info = None
            committed = f"unreadable: {exc}"
        if record.get("deleted_at"):
            state = "DELETED"
        elif record.get("retired_at"):
            state = "RETIRED"
        elif status is None:
            state = "NEVER_STARTED"
        elif driver_reported_alive(status, now=now) or status.state.is_terminal:
            state = status.state.value
        else:
            state = "DEAD"
        generations.append(
            {
                "generation": g,
                "current": g == ledger.current_generation,
                "state": state,
                "last_committed_batch": committed,
                "code_version": record.get("code_version"),
                "engine": record.get("engine") or (info.engine if info is not None else None),
                "snapshot": record.get("snapshot"),
                "application": record.get("application"),
                "heartbeat_age_s": None if status is None else round(status.heartbeat_age(now), 1),
                "driver": None
                if status is None
                else {
                    "driver_id": status.driver_id,
                    "app_id": status.app_id,
                    "pid": status.pid,
                    "host": status.host,
                    "start_mode": status.start_mode,
                    "launch_id": status.launch_id,
                    "error": status.error,
                    "source_lag": status.source_lag,
                },
                "launches": len(record.get("launches", [])),
                "started_at": _first_launch_at(record),
                "adopted": _adopted(record),
                "last_batch_age_s": None
                if status is None or status.last_batch_at is None
                else round(now - status.last_batch_at, 1),
                "lag": None if status is None or not status.source_lag else _total(status.source_lag),
                "stop": _stop(root, g),
                "downtime_s": _downtime(root, g, record),
                "rolled_back_to": record.get("superseded_by") if record.get("rolled_back_at") else None,
                "rolled_back_from": record.get("rolled_back_from"),
                "settings": settings_change(record),
            }
        )
    lease = ledger.lease
    return {
        "job_root": root.location.uri,
        "job": root.job,
        "current_generation": ledger.current_generation,
        "lease": None
        if lease is None or lease.expired(now)
        else {
            "holder": lease.holder,
            "operation": lease.operation,
            "expires_in_s": round(lease.expires_at - now),
        },
        "generations": generations,
        "snapshots": [e.to_json() for e in SnapshotCatalogue(root).list()],
    }


def _first_launch_at(record: dict[str, Any]) -> float | None:
    """When the generation's first driver was launched; for a dry run's driver adopted as its standby, when
    it was adopted (it was submitted earlier, as the dry run)."""
    launches = record.get("launches") or []
    first = launches[0] if launches and isinstance(launches[0], dict) else {}
    value = first.get("adopted_at", first.get("submitted_at"))
    return float(value) if isinstance(value, int | float) else None


def _adopted(record: dict[str, Any]) -> bool:
    """Whether a dry run's driver became this generation's (its standby): one JVM start less."""
    return any(isinstance(x, dict) and x.get("adopted") for x in record.get("launches") or [])


def _total(lags: list[int | None]) -> int | None:
    known = [lag for lag in lags if lag is not None]
    return sum(known) if known else None


def _stop(root: JobRoot, generation: int) -> dict[str, Any] | None:
    """The generation's answered stop: outcome, final batch, latency; None if it was never stopped."""
    try:
        ack = root.read_stop_ack(generation)
    except CheckpointProviderError:
        return None
    if ack is None or ack.outcome is StopOutcome.WITHDRAWN:  # withdrawn: started again, not stopped
        return None
    return {
        "outcome": ack.outcome.value,
        "final_committed_batch": ack.final_committed_batch,
        "stop_latency_s": ack.stop_latency_s,
        "acknowledged_at": ack.acknowledged_at,
        "snapshot_id": ack.snapshot_id,
    }


def _downtime(root: JobRoot, generation: int, record: dict[str, Any]) -> float | None:
    """For a generation started from a snapshot: seconds from the stop request of the generation that
    snapshot came from to this generation's first committed batch (the redeploy's downtime)."""
    snapshot = record.get("snapshot")
    if not snapshot:
        return None
    try:
        previous = SnapshotCatalogue(root).entry(str(snapshot)).generation
        request = root.read_stop_request(int(previous)) if previous is not None else None
        first_commit = root.checkpoint(generation).child("commits", 0).modified_at()
    except CheckpointProviderError:
        return None
    if request is None or first_commit is None:
        return None
    return round(first_commit - request.requested_at, 1)
