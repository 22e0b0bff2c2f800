"""The source fence's contract with the control folder (pure Python: it runs in Spark's source process)."""

from __future__ import annotations

import json
from pathlib import Path

from airflow_checkpoint_provider.checkpoint.storage import Location
from airflow_checkpoint_provider.runtime.fence import SourceFence, fence_for_source, read_fences


def request(control: Path, rid: str) -> None:
    control.mkdir(parents=True, exist_ok=True)
    (control / "stop.json").write_text(json.dumps({"request_id": rid, "requested_at": 0}))


def ack(control: Path, rid: str, outcome: str) -> None:
    (control / "stop-ack.json").write_text(json.dumps({"request_id": rid, "outcome": outcome}))


def test_open_request_freezes_answered_request_releases(tmp_path: Path) -> None:
    control = tmp_path / "control"
    fence = SourceFence(str(control), "/events")
    assert fence.admit(10, 50) == 50  # no request: everything available is admitted
    request(control, "r1")
    assert fence.admit(50, 80) == 50  # frozen where planning stood
    assert fence.admit(50, 120) == 50
    assert read_fences(Location.of(str(control)), "r1") == {"/events": 50}
    assert read_fences(Location.of(str(control)), "r0") == {}  # fences of other requests do not count
    ack(control, "r1", "timed_out")  # driver kept running: the source flows again
    assert fence.admit(50, 120) == 120
    request(control, "r2")
    assert fence.admit(120, 130) == 120  # a new request fences anew, at the new position
    assert read_fences(Location.of(str(control)), "r2") == {"/events": 120}


def test_a_restarted_source_keeps_the_recorded_fence_and_ignores_old_ones(tmp_path: Path) -> None:
    control = tmp_path / "control"
    request(control, "r1")
    assert SourceFence(str(control), "/events").admit(40, 90) == 40
    assert (
        SourceFence(str(control), "/events").admit(40, 95) == 40
    )  # same request: same offset after a restart
    ack(control, "r1", "stopped")
    assert (
        SourceFence(str(control), "/events").admit(40, 95) == 95
    )  # answered: a resumed driver runs normally


def test_unreadable_request_does_not_fence(tmp_path: Path) -> None:
    control = tmp_path / "control"
    control.mkdir()
    (control / "stop.json").write_text("{torn")
    assert SourceFence(str(control), "/events").admit(0, 7) == 7


def test_a_fence_the_driver_wrote_for_the_source_holds_it_there(tmp_path: Path) -> None:
    control = tmp_path / "control"
    request(control, "r1")
    fence = SourceFence(str(control), "/events")
    assert fence.admit(10, 30) == 10  # r1: the source fenced itself at 10
    request(control, "r2")
    loc = Location.of(str(control))
    # the driver, between triggers: the fence of r1 does not count for r2; r2's is written once
    assert fence_for_source(loc, "/events", "r2", 30)
    assert not fence_for_source(loc, "/events", "r2", 30)
    assert read_fences(loc, "r2") == {"/events": 30}
    assert json.loads((control / next(p.name for p in control.glob("fence-*.json"))).read_text())["by"] == (
        "driver"
    )
    # the source's next trigger reads it and admits nothing past it, in this process or a restarted one
    assert fence.admit(30, 80) == 30
    assert SourceFence(str(control), "/events").admit(30, 90) == 30
