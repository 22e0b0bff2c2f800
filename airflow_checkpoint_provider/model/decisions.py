"""Lifecycle decisions as pure functions (table-tested in tests/unit/model)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

from airflow_checkpoint_provider.model.records import StopAck, StopOutcome, StopRequest


class StartMode(StrEnum):
    """How a driver starts on its generation's checkpoint."""

    #: No committed batch and no snapshot: a brand-new job; sources start at their own initial offsets.
    FIRST = "first"
    #: No committed batch and a snapshot: load it as initial state; sources start after the snapshot's batch.
    FRESH_FROM_SNAPSHOT = "fresh_from_snapshot"
    #: At least one committed batch: Spark resumes from the checkpoint; initial state is never passed.
    RESUME = "resume"


@dataclass(frozen=True, slots=True)
class StartDecision:
    mode: StartMode
    reason: str
    load_initial_state: bool
    last_committed_batch: int | None
    in_flight_batch: int | None


def decide_start(
    *,
    generation: int,
    last_committed_batch: int | None,
    in_flight_batch: int | None,
    snapshot: str | None,
) -> StartDecision:
    """Decide from the checkpoint alone whether to resume or start fresh.

    Promise 2 (docs/design.md): initial state is loaded only into a generation whose checkpoint has no
    committed batch. A batch 0 that was planned but never committed (a crash in batch 0) is re-run on the
    fresh path with the same initial state and the same starting offsets; Spark has applied nothing of it yet.
    """
    if last_committed_batch is not None:
        return StartDecision(
            StartMode.RESUME,
            f"resuming generation {generation} after committed batch {last_committed_batch}: the "
            "checkpoint has "
            "commits, so initial state is not loaded"
            + (f"; planned batch {in_flight_batch} will be re-run" if in_flight_batch is not None else ""),
            load_initial_state=False,
            last_committed_batch=last_committed_batch,
            in_flight_batch=in_flight_batch,
        )
    rerun = f" (re-running planned batch {in_flight_batch})" if in_flight_batch is not None else ""
    if snapshot:
        return StartDecision(
            StartMode.FRESH_FROM_SNAPSHOT,
            f"starting generation {generation} fresh from snapshot {snapshot}{rerun}: the checkpoint has no "
            "committed batch, so the snapshot is loaded as initial state",
            load_initial_state=True,
            last_committed_batch=None,
            in_flight_batch=in_flight_batch,
        )
    return StartDecision(
        StartMode.FIRST,
        f"starting generation {generation} with empty state{rerun}: no committed batch and no snapshot",
        load_initial_state=False,
        last_committed_batch=None,
        in_flight_batch=in_flight_batch,
    )


def decide_dstream_start(
    *,
    generation: int,
    last_completed_batch: int | None,
    latest_graph_checkpoint: int | None,
    snapshot: str | None,
) -> StartDecision:
    """The DStream rule (promise 2): what counts as started is a *completed* batch, not a checkpoint file.

    Spark writes ``checkpoint-<ms>`` when a batch is generated, before it runs; a context restored from it
    still needs the ``initialRDD`` to recompute the state, and a restored ``initialRDD`` has no SparkContext
    (Spark 4.3 fails with ``rddLacksSparkContextError``). So:

    - a completed batch: resume through ``getOrCreate``; the ``initialRDD`` is never applied again;
    - graph files but no completed batch (the first batch crashed): nothing of it counted; the unfinished
      checkpoint is set aside and the generation starts fresh with the same snapshot and starting offsets,
      exactly as Structured Streaming re-runs a planned batch 0;
    - nothing: a fresh start (with the snapshot as ``initialRDD`` when one is given).

    Batch ids of DStream jobs are batch times in epoch milliseconds.
    """
    if last_completed_batch is not None:
        return StartDecision(
            StartMode.RESUME,
            f"resuming generation {generation} after completed DStream batch {last_completed_batch}: Spark "
            "restores the context from its checkpoint, so the initial state is not applied again"
            + (
                f"; generated batch {latest_graph_checkpoint} will be re-run"
                if latest_graph_checkpoint is not None and latest_graph_checkpoint > last_completed_batch
                else ""
            ),
            load_initial_state=False,
            last_committed_batch=last_completed_batch,
            in_flight_batch=latest_graph_checkpoint
            if latest_graph_checkpoint is not None and latest_graph_checkpoint > last_completed_batch
            else None,
        )
    unfinished = (
        f" (its first batch {latest_graph_checkpoint} never completed: that attempt is set aside and re-run)"
        if latest_graph_checkpoint is not None
        else ""
    )
    if snapshot:
        return StartDecision(
            StartMode.FRESH_FROM_SNAPSHOT,
            f"starting generation {generation} fresh from snapshot {snapshot}{unfinished}: no completed "
            "batch, so the snapshot is loaded as initialRDD",
            load_initial_state=True,
            last_committed_batch=None,
            in_flight_batch=latest_graph_checkpoint,
        )
    return StartDecision(
        StartMode.FIRST,
        f"starting generation {generation} with empty state{unfinished}: no completed batch and no snapshot",
        load_initial_state=False,
        last_committed_batch=None,
        in_flight_batch=latest_graph_checkpoint,
    )


@dataclass(frozen=True, slots=True)
class GenerationPlan:
    """Which generation a start operator launches, and whether it must create it first."""

    generation: int
    create: bool
    snapshot: str | None
    reason: str


def plan_generation(
    *,
    current: int | None,
    existing: list[int],
    snapshot: str | None,
    current_snapshot: str | None,
    current_retired: bool,
) -> GenerationPlan:
    """Decide the generation to start (pure; the driver still decides resume vs fresh from the checkpoint).

    - no snapshot asked: the current generation (1 for a brand-new job) — a restart, never a new generation;
    - a snapshot asked that the current generation already started from: that generation (a retried start);
    - any other snapshot: a new generation, numbered after every existing one (nothing is ever reused).
    """
    if snapshot is None:
        if current is None:
            return GenerationPlan(
                1,
                create=not existing or 1 not in existing,
                snapshot=None,
                reason="first start of the job: generation 1, empty state",
            )
        if current_retired:
            return GenerationPlan(
                current,
                create=False,
                snapshot=None,
                reason=f"generation {current} is retired; start a new one from its snapshot",
            )
        return GenerationPlan(
            current,
            create=False,
            snapshot=current_snapshot,
            reason=f"restarting current generation {current} on its own checkpoint",
        )
    if current is not None and current_snapshot == snapshot and not current_retired:
        return GenerationPlan(
            current,
            create=False,
            snapshot=snapshot,
            reason=f"generation {current} already started from snapshot {snapshot}: reusing it",
        )
    new = max([*existing, current or 0]) + 1
    return GenerationPlan(
        new, create=True, snapshot=snapshot, reason=f"creating generation {new} from snapshot {snapshot}"
    )


def stopped_on_request(
    request: StopRequest | None, ack: StopAck | None, launches: Sequence[Mapping[str, Any]]
) -> str | None:
    """Why an automatic restart (the failure path's callback) must leave a generation stopped, or None.

    A stop someone asked for stays asked for: a request no driver answered (its driver ended, hung or was
    killed first), or one answered by stopping — unless the generation was started again after the answer
    (:func:`launched_after`; ``launches``: the generation record's, oldest first). A request answered
    ``timed_out`` (the driver kept running, as asked) or ``withdrawn`` (an explicit start closed it) is no
    reason."""
    if request is None:
        return None
    who = request.requested_by or "unknown"
    if ack is None or ack.request_id != request.request_id:
        return f"stop request {request.request_id} by {who} was never answered: its driver ended first"
    if ack.outcome in (StopOutcome.TIMED_OUT, StopOutcome.WITHDRAWN):
        return None
    if launched_after(ack, launches):
        return None  # started again after it stopped
    return f"it stopped on request {request.request_id} by {who} ({ack.outcome.value}, by {ack.by})"


def launched_after(ack: StopAck, launches: Sequence[Mapping[str, Any]]) -> bool:
    """Whether the generation was launched again after the driver ``ack`` is about stopped.

    By the launches' order when the answer names its launch and that launch is recorded: no clocks compared
    (the answer's time is the driver's host's, a launch's the Airflow worker's). Otherwise (an answer written
    before answers named their launch, or one whose launch was not recorded yet) by time: the latest launch
    was submitted after the answer."""
    records = [launch for launch in launches if isinstance(launch, Mapping)]
    ids = [str(launch.get("launch_id") or "") for launch in records]
    if ack.launch_id and ack.launch_id in ids:
        return ids[-1] != ack.launch_id  # a launch was recorded after the one the answer is about
    submitted = records[-1].get("submitted_at") if records else None
    return isinstance(submitted, (int, float)) and ack.acknowledged_at < submitted


class CleanupVerdict(StrEnum):
    ALLOWED = "allowed"
    ALREADY_DONE = "already_done"
    DRIVER_ALIVE = "driver_alive"
    NO_SNAPSHOT = "no_snapshot"
    STOP_INCOMPLETE = "stop_incomplete"


def _stopped(outcome: str | None) -> bool:
    """Whether a stop outcome (as the stop task reported it) means the driver no longer runs."""
    try:
        return outcome is not None and StopOutcome(outcome).is_stopped
    except ValueError:
        return False


def decide_cleanup(
    *,
    driver_stopped: bool,
    last_committed_batch: int | None,
    verified_snapshot_batches: list[int],
    stop_outcome: str | None,
    require_stop: bool,
    already_done: bool,
) -> tuple[CleanupVerdict, str]:
    """Promise 4 (docs/design.md): a checkpoint is retired only when its driver is provably stopped and a
    verified snapshot of its last committed batch exists (and, when asked, the graceful stop of this run
    completed)."""
    if already_done:
        return CleanupVerdict.ALREADY_DONE, "already retired"
    if not driver_stopped:
        return CleanupVerdict.DRIVER_ALIVE, "its driver is not provably stopped"
    if require_stop and not _stopped(stop_outcome):
        return CleanupVerdict.STOP_INCOMPLETE, (
            f"the stop in this run did not complete (outcome: {stop_outcome or 'none recorded'})"
        )
    if last_committed_batch is None:
        return CleanupVerdict.ALLOWED, "the checkpoint has no committed batch: no state to lose"
    if last_committed_batch not in verified_snapshot_batches:
        have = ", ".join(str(b) for b in sorted(verified_snapshot_batches)) or "none"
        return CleanupVerdict.NO_SNAPSHOT, (
            f"no verified snapshot of its last committed batch {last_committed_batch} (verified: {have})"
        )
    return (
        CleanupVerdict.ALLOWED,
        f"driver stopped and batch {last_committed_batch} is in a verified snapshot",
    )


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``12h``, ``7d`` -> timedelta (ValueError otherwise)."""
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
    text = str(text).strip()
    if len(text) < 2 or text[-1] not in units:
        raise ValueError(f"expected a duration like 30m, 12h or 7d, got {text!r}")
    try:
        return timedelta(**{units[text[-1]]: float(text[:-1])})
    except ValueError as exc:
        raise ValueError(f"bad duration {text!r}") from exc
