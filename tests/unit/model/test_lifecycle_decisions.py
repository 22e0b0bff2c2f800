"""Decision tables: which generation a start uses, whether a checkpoint may be retired, who may take the
lease."""

from __future__ import annotations

import pytest

from airflow_checkpoint_provider.model.decisions import (
    CleanupVerdict,
    decide_cleanup,
    parse_duration,
    plan_generation,
    stopped_on_request,
)
from airflow_checkpoint_provider.model.ledger import Lease, lease_blocker
from airflow_checkpoint_provider.model.records import StopAck, StopRequest


@pytest.mark.parametrize(
    ("current", "existing", "snapshot", "current_snapshot", "retired", "expect"),
    [
        (None, [], None, None, False, (1, True, None)),  # brand-new job
        (3, [1, 2, 3], None, "s2", False, (3, False, "s2")),  # restart: same generation, never a new one
        (3, [1, 2, 3], "s3", "s2", False, (4, True, "s3")),  # redeploy: a new generation
        (4, [1, 2, 3, 4], "s3", "s3", False, (4, False, "s3")),  # retried redeploy: reuse what it created
        (3, [1, 2, 3, 5], "s3", "s2", False, (6, True, "s3")),  # numbers are never reused (5 exists on disk)
        (
            None,
            [],
            "s-import",
            None,
            False,
            (1, True, "s-import"),
        ),  # a job whose first generation starts from a snapshot
        (
            4,
            [1, 2, 3, 4],
            "s3",
            "s3",
            True,
            (5, True, "s3"),
        ),  # the generation from s3 was retired: a fresh one
    ],
)
def test_plan_generation(current, existing, snapshot, current_snapshot, retired, expect) -> None:  # type: ignore[no-untyped-def]
    plan = plan_generation(
        current=current,
        existing=existing,
        snapshot=snapshot,
        current_snapshot=current_snapshot,
        current_retired=retired,
    )
    assert (plan.generation, plan.create, plan.snapshot) == expect


@pytest.mark.parametrize(
    ("kw", "verdict"),
    [
        (
            {
                "driver_stopped": True,
                "last_committed_batch": 7,
                "verified_snapshot_batches": [7],
                "stop_outcome": "stopped",
                "require_stop": True,
                "already_done": False,
            },
            CleanupVerdict.ALLOWED,
        ),
        (
            {
                "driver_stopped": False,
                "last_committed_batch": 7,
                "verified_snapshot_batches": [7],
                "stop_outcome": "stopped",
                "require_stop": True,
                "already_done": False,
            },
            CleanupVerdict.DRIVER_ALIVE,
        ),
        (
            {
                "driver_stopped": True,
                "last_committed_batch": 8,
                "verified_snapshot_batches": [7],
                "stop_outcome": "stopped",
                "require_stop": True,
                "already_done": False,
            },
            CleanupVerdict.NO_SNAPSHOT,
        ),  # committed after the snapshot
        (
            {
                "driver_stopped": True,
                "last_committed_batch": 7,
                "verified_snapshot_batches": [],
                "stop_outcome": None,
                "require_stop": False,
                "already_done": False,
            },
            CleanupVerdict.NO_SNAPSHOT,
        ),
        (
            {
                "driver_stopped": True,
                "last_committed_batch": 7,
                "verified_snapshot_batches": [7],
                "stop_outcome": None,
                "require_stop": True,
                "already_done": False,
            },
            CleanupVerdict.STOP_INCOMPLETE,
        ),  # the stop task never finished
        (
            {
                "driver_stopped": True,
                "last_committed_batch": 7,
                "verified_snapshot_batches": [7],
                "stop_outcome": "timed_out",
                "require_stop": True,
                "already_done": False,
            },
            CleanupVerdict.STOP_INCOMPLETE,
        ),
        (
            {
                "driver_stopped": True,
                "last_committed_batch": None,
                "verified_snapshot_batches": [],
                "stop_outcome": None,
                "require_stop": False,
                "already_done": False,
            },
            CleanupVerdict.ALLOWED,
        ),  # nothing committed: no state
        (
            {
                "driver_stopped": False,
                "last_committed_batch": 7,
                "verified_snapshot_batches": [],
                "stop_outcome": None,
                "require_stop": False,
                "already_done": True,
            },
            CleanupVerdict.ALREADY_DONE,
        ),  # rerun of a finished cleanup
    ],
)
def test_decide_cleanup(kw, verdict) -> None:  # type: ignore[no-untyped-def]
    assert decide_cleanup(**kw)[0] is verdict


def test_lease_blocker() -> None:
    lease = Lease(holder="redeploy/run-1", operation="stop", acquired_at=100, expires_at=200)
    assert lease_blocker(None, "x", 150) is None
    assert lease_blocker(lease, "redeploy/run-1", 150) is None  # the holder renews
    assert lease_blocker(lease, "redeploy/run-2", 150) is lease  # anyone else is blocked ...
    assert lease_blocker(lease, "redeploy/run-2", 200) is None  # ... until it expires


def test_parse_duration() -> None:
    assert parse_duration("90s").total_seconds() == 90 and parse_duration("7d").days == 7
    with pytest.raises(ValueError):
        parse_duration("7 weeks")


def _ack(outcome: str, at: float = 20.0, request_id: str = "r", launch_id: str | None = None) -> StopAck:
    return StopAck(
        request_id=request_id,
        outcome=outcome,  # type: ignore[arg-type]
        method="none",  # type: ignore[arg-type]
        final_committed_batch=3,
        end_offsets=None,
        in_flight_batch=None,
        acknowledged_at=at,
        stop_latency_s=1.0,
        launch_id=launch_id,
    )


def _launches(*launches: tuple[str, float]) -> list[dict[str, object]]:
    return [{"launch_id": launch_id, "submitted_at": at} for launch_id, at in launches]


ONE = _launches(("L1", 5.0))
#: L2 submitted at 15 (the worker's clock), after L1's driver answered at 20 (its host's clock, 10 s ahead)
TWO_SKEWED = _launches(("L1", 5.0), ("L2", 15.0))


@pytest.mark.parametrize(
    ("request_at", "ack", "launches", "left_stopped"),
    [
        (None, None, ONE, False),  # never asked to stop: a death is a failure, restart
        (10.0, None, ONE, True),  # asked, never answered (died, hung, killed first): stays asked for
        (10.0, _ack("stopped", request_id="other"), ONE, True),  # an older answer does not answer it
        (10.0, _ack("stopped"), ONE, True),  # stopped gracefully on request
        (10.0, _ack("forced"), ONE, True),
        (10.0, _ack("killed"), ONE, True),  # killed by the operator over its request
        (10.0, _ack("stopped"), [], True),  # no launch recorded: the answer stands
        # started again after it stopped: a later death restarts. By time, for an answer naming no launch ...
        (10.0, _ack("stopped", at=20.0), _launches(("L1", 5.0), ("L2", 30.0)), False),
        # ... and by the launches' order, whatever the clocks say, for one that names its launch
        (10.0, _ack("stopped", at=20.0, launch_id="L1"), TWO_SKEWED, False),
        (10.0, _ack("stopped", at=20.0), TWO_SKEWED, True),  # (by the clocks alone: misjudged)
        (10.0, _ack("stopped", at=4.0, launch_id="L2"), TWO_SKEWED, True),  # L2's own driver stopped
        (10.0, _ack("stopped", at=20.0, launch_id="L3"), TWO_SKEWED, True),  # its launch not recorded yet
        (10.0, _ack("timed_out"), ONE, False),  # the driver kept running, as the request asked
        (10.0, _ack("withdrawn"), _launches(("L1", 30.0)), False),  # an explicit start closed the request
    ],
)
def test_an_automatic_restart_leaves_a_generation_stopped_on_request(
    request_at: float | None, ack: StopAck | None, launches: list[dict[str, object]], left_stopped: bool
) -> None:
    request = (
        None
        if request_at is None
        else StopRequest(request_id="r", requested_at=request_at, requested_by="dag/run")
    )
    reason = stopped_on_request(request, ack, launches)
    assert (reason is not None) is left_stopped, reason
    if reason:
        assert "dag/run" in reason and "r" in reason
