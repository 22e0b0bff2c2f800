"""Conditions the lifecycle waits for, read from the job root: one function per condition, shared by the
operators' synchronous waits, the sensors' pokes and the triggers' loops (so all three agree).

Each returns an :class:`Observation`: ``done`` (the condition holds), ``failed`` (it never will: the reason is
in ``message``), else keep waiting. Nothing here imports Airflow or pyspark.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from airflow_checkpoint_provider.checkpoint import processes
from airflow_checkpoint_provider.checkpoint.inspector import inspect_checkpoint
from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot
from airflow_checkpoint_provider.checkpoint.processes import driver_reported_alive
from airflow_checkpoint_provider.model.constants import DEFAULT_LEASE_S
from airflow_checkpoint_provider.model.records import DriverState, DriverStatus, StopOutcome


class Outcome(StrEnum):
    """Where a waited-for condition stands."""

    DONE = "done"  #: the condition holds
    FAILED = "failed"  #: it never will (the reason is in the message)
    WAITING = "waiting"  #: not yet


@dataclass(frozen=True, slots=True)
class Observation:
    """One look at a condition: its outcome, a one-line message, and what the waiting task returns."""

    outcome: Outcome
    message: str
    payload: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def holds(cls, message: str, payload: dict[str, Any] | None = None) -> Observation:
        return cls(Outcome.DONE, message, dict(payload or {}))

    @classmethod
    def never(cls, message: str, payload: dict[str, Any] | None = None) -> Observation:
        return cls(Outcome.FAILED, message, dict(payload or {}))

    @classmethod
    def waiting(cls, message: str, payload: dict[str, Any] | None = None) -> Observation:
        return cls(Outcome.WAITING, message, dict(payload or {}))

    @property
    def done(self) -> bool:
        return self.outcome is Outcome.DONE

    @property
    def failed(self) -> bool:
        return self.outcome is Outcome.FAILED

    def to_json(self) -> dict[str, Any]:
        return {"done": self.done, "failed": self.failed, "message": self.message, "payload": self.payload}


def _generation(root: JobRoot, generation: int | None) -> int | None:
    return generation if generation is not None else root.current_generation()


def _lock_age(root: JobRoot, generation: int) -> float | None:
    lock = root.read_json(root.driver_lock_file(generation), what="driver lock", generation=generation)
    return None if lock is None else time.time() - float(lock.get("heartbeat_at", 0))


def _process_gone(status: DriverStatus) -> bool:
    return processes.process_gone(status.pid, status.host, started_at=status.started_at)


def driver_started(
    root: JobRoot, generation: int, launch_id: str, *, need_commit: bool = True, process_gone: bool = False
) -> Observation:
    """The driver of launch ``launch_id`` reports RUNNING (and, if asked, has a committed batch)."""
    status = root.read_status(generation)
    if status is not None and status.launch_id == launch_id:
        payload = status.to_json()
        if (process_gone or _process_gone(status)) and not status.state.is_terminal:
            return Observation.never(f"the driver process died ({status.state} in its last report)", payload)
        if status.state is DriverState.FAILED:
            return Observation.never(f"the driver failed: {status.error}", payload)
        if status.state is DriverState.STOPPED:
            return Observation.never(
                f"the driver stopped while starting: {status.error or 'stopped'}", payload
            )
        if status.state in (DriverState.RUNNING, DriverState.STOPPING) and (
            not need_commit or status.last_committed_batch is not None
        ):
            return Observation.holds(
                f"driver RUNNING, last committed batch {status.last_committed_batch}", payload
            )
        return Observation.waiting(f"driver {status.state}, no committed batch yet", payload)
    if driver_reported_alive(status):
        # Another launch's driver holds the generation (a restart callback won the race): ours was refused.
        payload = status.to_json()
        if status.state is DriverState.RUNNING and (
            not need_commit or status.last_committed_batch is not None
        ):
            return Observation.holds(
                f"a driver of launch {status.launch_id or '?'} already runs the "
                "generation; reconnected to it",
                payload,
            )
        return Observation.waiting(f"a driver of launch {status.launch_id or '?'} is {status.state}", payload)
    if process_gone:
        return Observation.never("the driver process ended without reporting (see its log)", {})
    return Observation.waiting("waiting for the driver to report", {})


def standby_ready(
    root: JobRoot, generation: int, launch_id: str, *, process_gone: bool = False
) -> Observation:
    """The standby of launch ``launch_id`` is warm (STANDBY), or has already gone past it (took over).

    :param process_gone: the launcher knows the launched process has ended (a standby killed before its
        first report is then given up at once, not after the whole wait)."""
    status = root.read_status(generation)
    if status is None or status.launch_id != launch_id:
        if process_gone:
            return Observation.never("the standby's process ended without reporting (see its log)", {})
        return Observation.waiting("waiting for the standby to report", {})
    payload = status.to_json()
    if status.state.is_terminal:
        return Observation.never(f"the standby ended: {status.error or status.state}", payload)
    if _process_gone(status):
        return Observation.never(f"the standby's process died ({status.state} in its last report)", payload)
    if status.state is DriverState.STANDBY and status.warm_s is None:
        return Observation.waiting("the standby is warming up", payload)
    return Observation.holds(f"standby {status.state} (warm in {status.warm_s}s)", payload)


def stop_acknowledged(root: JobRoot, generation: int, request_id: str) -> Observation:
    """The driver answered stop request ``request_id`` and, unless it timed out, has exited (lock
    released)."""
    ack = root.read_stop_ack(generation)
    status = root.read_status(generation)
    lease = status.lease_s if status else DEFAULT_LEASE_S
    if ack is not None and ack.request_id == request_id:
        payload = ack.to_json()
        if ack.outcome is StopOutcome.TIMED_OUT:
            return Observation.never(
                f"the driver did not reach a batch boundary in time (in flight: "
                f"{ack.in_flight_batch}); it keeps running",
                payload,
            )
        age = _lock_age(root, generation)
        if age is None or age > lease:
            return Observation.holds(
                f"stopped ({ack.outcome}, {ack.method}) at batch "
                f"{ack.final_committed_batch} after {ack.stop_latency_s}s; driver exited",
                payload,
            )
        return Observation.waiting(f"acknowledged ({ack.outcome}); waiting for the driver to exit", payload)
    if status is not None and not driver_reported_alive(status):
        # It ended (or was killed) before it acknowledged: stopped all the same. Its checkpoint ends at its
        # last committed batch; a batch it had in flight was never committed and is read again by whoever
        # continues.
        info = inspect_checkpoint(root.checkpoint(generation), allow_empty=True)
        payload = {
            "outcome": StopOutcome.ENDED.value,
            "request_id": request_id,
            "state": status.state,
            "error": status.error,
            "final_committed_batch": info.last_committed_batch,
            "end_offsets": info.committed.end_offsets_json() if info.committed else None,
        }
        return Observation.holds(
            f"the driver ended ({status.state}) before it acknowledged the stop; its "
            f"checkpoint is intact at batch {info.last_committed_batch}",
            payload,
        )
    return Observation.waiting("waiting for the driver to reach a batch boundary", {})


def batch_committed(root: JobRoot, generation: int | None, batch: int) -> Observation:
    """The generation's checkpoint has committed ``batch`` (or a later one)."""
    g = _generation(root, generation)
    if g is None:
        return Observation.waiting("the job has no generation yet", {})
    info = inspect_checkpoint(root.checkpoint(g), allow_empty=True)
    last = info.last_committed_batch
    payload = {"generation": g, "last_committed_batch": last}
    if last is not None and last >= batch:
        return Observation.holds(f"generation {g} committed batch {last} (>= {batch})", payload)
    status = root.read_status(g)
    if status is not None and status.state is DriverState.FAILED:
        return Observation.never(f"the driver of generation {g} failed: {status.error}", payload)
    return Observation.waiting(f"generation {g} is at batch {last}, waiting for {batch}", payload)


def job_health(
    root: JobRoot,
    generation: int | None = None,
    *,
    max_heartbeat_age_s: float | None = None,
    max_batch_age_s: float | None = None,
    max_lag: int | None = None,
) -> Observation:
    """Healthy: driver RUNNING, heartbeat fresh, (optionally) a batch recently and lag under ``max_lag``.
    ``failed`` means dead (terminal status, or a heartbeat older than the lease): waiting will not help."""
    g = _generation(root, generation)
    if g is None:
        return Observation.never("the job has no current generation", {})
    status = root.read_status(g)
    if status is None:
        return Observation.waiting(f"generation {g} has no driver status yet", {"generation": g})
    payload = {**status.to_json(), "heartbeat_age_s": round(status.heartbeat_age(), 3)}
    heartbeat_limit = status.lease_s if max_heartbeat_age_s is None else max_heartbeat_age_s
    if status.state.is_terminal:
        return Observation.never(
            f"the driver of generation {g} is {status.state}" + (f": {status.error}" if status.error else ""),
            payload,
        )
    if _process_gone(status):
        return Observation.never(
            f"the driver of generation {g} (pid {status.pid} on {status.host}) is gone "
            f"without reporting: it died",
            payload,
        )
    if status.heartbeat_age() > heartbeat_limit:
        return Observation.never(
            f"the driver of generation {g} has not sent a heartbeat for "
            f"{status.heartbeat_age():.0f}s (limit {heartbeat_limit:.0f}s): it is dead",
            payload,
        )
    if status.state is not DriverState.RUNNING:
        return Observation.waiting(f"the driver of generation {g} is {status.state}", payload)
    if max_batch_age_s is not None:
        since = status.last_batch_at or status.started_at
        if time.time() - since > max_batch_age_s:
            return Observation.waiting(
                f"no batch for {time.time() - since:.0f}s (limit {max_batch_age_s:.0f}s)",
                payload,
            )
    if max_lag is not None and status.source_lag:
        lag = sum(x for x in status.source_lag if x is not None)
        if lag > max_lag:
            return Observation.waiting(f"lag {lag} records > {max_lag}", payload)
    return Observation.holds(
        f"generation {g} healthy: batch {status.last_committed_batch}, heartbeat "
        f"{status.heartbeat_age():.1f}s ago",
        payload,
    )
