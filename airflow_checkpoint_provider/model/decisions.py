"""Lifecycle decisions as pure functions (table-tested in tests/unit/model)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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

    Promise 2: initial state is loaded only into a generation whose checkpoint has no committed batch. A batch 0
    that was planned but never committed (a crash in batch 0) is re-run on the fresh path with the same initial
    state and the same starting offsets; Spark has applied nothing of it yet.
    """
    if last_committed_batch is not None:
        return StartDecision(
            StartMode.RESUME,
            f"resuming generation {generation} after committed batch {last_committed_batch}: the checkpoint has "
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
