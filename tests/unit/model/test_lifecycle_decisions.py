"""Decision tables: which generation a start uses, whether a checkpoint may be retired, who may take the
lease."""

from __future__ import annotations

import pytest

from airflow_checkpoint_provider.model.decisions import (
    CleanupVerdict,
    decide_cleanup,
    parse_duration,
    plan_generation,
)
from airflow_checkpoint_provider.model.ledger import Lease, lease_blocker


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
