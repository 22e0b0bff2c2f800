"""Records kept under a job root: driver status, stop requests and acknowledgements (JSON on storage)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

from airflow_checkpoint_provider.model.constants import (
    DEFAULT_HEARTBEAT_S,
    DEFAULT_LEASE_S,
    DEFAULT_STOP_TIMEOUT_S,
)


class DriverState(StrEnum):
    STARTING = "STARTING"
    #: a warm standby: Spark is up, no query yet; it waits for its generation to become current
    STANDBY = "STANDBY"
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    FAILED = "FAILED"

    @property
    def is_terminal(self) -> bool:
        return self in (DriverState.STOPPED, DriverState.FAILED)


_R = TypeVar("_R", bound="DataclassInstance")


def _from_dict(cls: type[_R], data: dict[str, Any]) -> _R:
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True, slots=True)
class DriverStatus:
    """``generations/<g>/status.json``: written by the driver on every batch and heartbeat."""

    job: str
    generation: int
    state: DriverState
    driver_id: str
    host: str = ""
    pid: int = 0
    app_id: str | None = None
    query_id: str | None = None
    run_id: str | None = None
    code_version: str = ""
    start_mode: str | None = None
    start_reason: str | None = None
    snapshot: str | None = None
    starting_offsets: list[Any] | None = None
    last_committed_batch: int | None = None
    last_batch_input_rows: int | None = None
    total_input_rows: int = 0
    last_batch_end_offsets: list[Any] | None = None
    last_batch_at: float | None = None
    started_at: float = field(default_factory=time.time)
    heartbeat_at: float = field(default_factory=time.time)
    error: str | None = None
    launch_id: str = ""
    heartbeat_s: float = DEFAULT_HEARTBEAT_S
    lease_s: float = DEFAULT_LEASE_S
    #: Per source, how far the last batch's end offset is behind the latest offset the source reported
    #: (summed over partitions; None where offsets are not numeric).
    source_lag: list[int | None] | None = None
    #: The driver's Spark UI (None when ``spark.ui.enabled`` is false).
    ui_url: str | None = None
    #: ``structured`` (a Structured Streaming query) or ``dstream`` (a DStream context).
    engine: str = "structured"
    #: How long the last batch took to process, in seconds (DStreams report it; None when unknown).
    processing_delay_s: float | None = None
    #: A standby's old generation (what it takes over from), while it waits and after it went.
    standby_for: int | None = None
    #: A standby: how long its warm-up took, and when it was told to go (epoch seconds).
    warm_s: float | None = None
    go_at: float | None = None
    #: When this driver's query (or streaming context) started (epoch seconds), and Spark's own phases of
    #: its first committed batch in milliseconds (``durationMs`` of the query's first progress: latestOffset,
    #: queryPlanning, addBatch, walCommit, commitOffsets, triggerExecution); where a start's time goes.
    query_started_at: float | None = None
    first_batch_ms: dict[str, int] | None = None
    #: The driver exports a committed batch on a snapshot request while it runs
    #: (``control/snapshot-request.json``): the snapshot operator asks it instead of submitting the exporter
    #: application. False in the status of a driver of an earlier version of this package.
    serves_snapshot_requests: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", DriverState(self.state))

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "state": self.state.value}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DriverStatus:
        return _from_dict(cls, data)

    def heartbeat_age(self, now: float | None = None) -> float:
        return (time.time() if now is None else now) - self.heartbeat_at

    def is_live(self, lease_s: float | None = None, now: float | None = None) -> bool:
        """Whether a driver is holding this generation: not terminal and heartbeat within the lease
        (the driver's own lease unless ``lease_s`` is given)."""
        lease = self.lease_s if lease_s is None else lease_s
        return not self.state.is_terminal and self.heartbeat_age(now) < lease


class StopOutcome(StrEnum):
    """How a stop ended, as the driver acknowledges it or the stop operator reports it."""

    STOPPED = "stopped"  #: at a batch boundary, nothing in flight
    FORCED = "forced"  #: the timeout passed and the query was stopped anyway (on_timeout=force_stop)
    TIMED_OUT = "timed_out"  #: the timeout passed and the driver goes on running (on_timeout=keep_running)
    ENDED = "ended"  #: the driver ended (or was killed) before it acknowledged: stopped all the same
    ALREADY_STOPPED = "already_stopped"  #: nothing was running
    #: The graceful stop timed out and the driver was hard-killed (on_timeout=kill, or a rollback's stop); the
    #: operator that killed it answers the request so.
    KILLED = "killed"
    #: Never answered by a driver: it was killed or died first, and an explicit start of the generation closed
    #: the request (written by that start, not by a driver), so the relaunched driver runs on.
    WITHDRAWN = "withdrawn"

    @property
    def is_stopped(self) -> bool:
        """Whether the driver no longer runs after this outcome."""
        return self is not StopOutcome.TIMED_OUT


class StopMethod(StrEnum):
    """How a driver reaches a batch boundary on a stop request."""

    FENCE = "fence"  #: the source admits no new data; the batch in progress commits
    GATE = "gate"  #: the gated sink refuses the next batch before touching it
    IDLE = "idle"  #: stop when no batch runs (best effort)
    NONE = "none"  #: no driver reached a boundary (an answer an operator wrote: killed, withdrawn)


class OnStopTimeout(StrEnum):
    #: Leave the driver running and acknowledge the timeout; the caller decides (default: nothing is killed).
    KEEP_RUNNING = "keep_running"
    #: Stop the query anyway; the batch in progress is abandoned and re-run by whoever resumes the checkpoint.
    FORCE_STOP = "force_stop"


@dataclass(frozen=True, slots=True)
class StopRequest:
    """``generations/<g>/control/stop.json``: ask the driver to stop at a batch boundary."""

    request_id: str
    requested_at: float
    timeout_s: float = DEFAULT_STOP_TIMEOUT_S
    on_timeout: OnStopTimeout = OnStopTimeout.KEEP_RUNNING
    requested_by: str = ""
    #: Export a snapshot of the final committed batch in the stopping driver, before it exits (its own
    #: session: no second JVM). The acknowledgement names it, or says why it failed (a separate export can
    #: still run).
    snapshot: bool = False
    #: The job root and generation the request is for (None in requests written before they were recorded):
    #: a request copied from another job or generation is refused.
    job_root: str | None = None
    generation: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "on_timeout", OnStopTimeout(self.on_timeout))

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "on_timeout": self.on_timeout.value}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StopRequest:
        return _from_dict(cls, data)


@dataclass(frozen=True, slots=True)
class StopAck:
    """``generations/<g>/control/stop-ack.json``: the driver's answer to a stop request."""

    request_id: str
    outcome: StopOutcome  # stopped, forced or timed_out
    method: StopMethod
    final_committed_batch: int | None
    end_offsets: list[Any] | None
    in_flight_batch: int | None
    acknowledged_at: float
    stop_latency_s: float
    snapshot_id: str | None = None  # exported by the stopping driver (the request asked for it)
    snapshot_s: float | None = None
    snapshot_error: str | None = None
    by: str = "driver"  #: who answered: the driver, or the DAG run that killed it or withdrew the request
    #: the launch whose driver the answer is about (the answering driver's, or the one the DAG run killed):
    #: tells a later launch apart without comparing two hosts' clocks. None in answers written before it.
    launch_id: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "outcome", StopOutcome(self.outcome))
        object.__setattr__(self, "method", StopMethod(self.method))

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "outcome": self.outcome.value, "method": self.method.value}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StopAck:
        return _from_dict(cls, data)
