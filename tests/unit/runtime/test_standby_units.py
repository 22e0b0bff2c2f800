"""The standby's handoff rule on crafted job roots (no JVM): when it waits, when it goes (and promotes
itself), when it exits; the ledger's compare-and-set promotion and discard; the launch contract's standby
flags."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot
from airflow_checkpoint_provider.checkpoint.ledger import JobLedger
from airflow_checkpoint_provider.exceptions import InvalidLaunchError
from airflow_checkpoint_provider.model.launch import LaunchSpec, parse_launch_args
from airflow_checkpoint_provider.model.records import (
    DriverState,
    DriverStatus,
    StopAck,
    StopMethod,
    StopOutcome,
    StopRequest,
)
from airflow_checkpoint_provider.runtime.standby import await_go, await_successor, check_handoff
from tests.support.crafted import make_checkpoint, make_snapshot

SNAP = "20261130T120000Z-g1-b4"


def job(tmp_path: Path) -> JobRoot:
    root = JobRoot(str(tmp_path / "counter"), job="counter")
    make_checkpoint(Path(root.checkpoint(1).uri), committed=4)
    JobLedger(root).set_current(1, by="test", event="generation_created")
    root.update_generation_record(2, standby_for=1, created_by="run-a")
    return root


def acknowledge(
    root: JobRoot, *, snapshot: str | None = SNAP, batch: int = 4, outcome: str = "stopped"
) -> None:
    request = StopRequest(
        request_id="r1", requested_at=time.time() - 1, job_root=root.location.uri, generation=1
    )
    root.write_stop_request(1, request)
    ack = StopAck(
        request_id="r1",
        outcome=StopOutcome(outcome),
        method=StopMethod.FENCE,
        final_committed_batch=batch,
        end_offsets=[{"offset": (batch + 1) * 10}],
        in_flight_batch=None,
        acknowledged_at=time.time(),
        stop_latency_s=0.1,
        snapshot_id=snapshot,
    )
    root.write_json(root.stop_ack_file(1), ack.to_json())


def test_waits_until_the_old_driver_acknowledges_with_a_verified_snapshot_of_its_last_batch(
    tmp_path: Path,
) -> None:
    root = job(tmp_path)
    assert check_handoff(root, 2, 1, by="s").action == "wait"  # not stopped
    acknowledge(root, outcome="timed_out")
    assert check_handoff(root, 2, 1, by="s").action == "wait"  # still running
    acknowledge(root, snapshot=None)
    seen = check_handoff(root, 2, 1, by="s")
    assert seen.action == "wait" and "start task" in seen.reason  # no export on stop: the start task decides
    make_snapshot(Path(root.location.uri), SNAP, job="counter", generation=1, batch=3)
    acknowledge(root, batch=3)  # the snapshot and the acknowledgement say 3, the checkpoint says 4
    seen = check_handoff(root, 2, 1, by="s")
    assert seen.action == "wait" and "ends at batch 4" in seen.reason
    assert JobLedger(root).read().current_generation == 1  # never promoted on a mismatch


def test_an_older_stop_or_a_live_old_driver_is_not_a_go(tmp_path: Path) -> None:
    root = job(tmp_path)
    make_snapshot(Path(root.location.uri), SNAP, job="counter", generation=1, batch=4)
    acknowledge(root)  # a stop of generation 1 before this standby was launched (the job was restarted since)
    root.update_generation_record(2, armed_at=time.time())
    seen = check_handoff(root, 2, 1, by="s")
    assert seen.action == "wait" and "older than this standby" in seen.reason
    root.update_generation_record(2, armed_at=0)
    root.write_status(DriverStatus(job="counter", generation=1, state=DriverState.RUNNING, driver_id="old"))
    seen = check_handoff(root, 2, 1, by="s")  # the old generation's driver runs again
    assert seen.action == "wait" and "still reports RUNNING" in seen.reason
    assert JobLedger(root).read().current_generation == 1


def test_goes_after_promoting_itself_once(tmp_path: Path) -> None:
    root = job(tmp_path)
    make_snapshot(Path(root.location.uri), SNAP, job="counter", generation=1, batch=4)
    acknowledge(root)
    seen = check_handoff(root, 2, 1, by="standby:x")
    assert (seen.action, seen.snapshot) == ("go", SNAP)
    ledger = JobLedger(root).read()
    assert ledger.current_generation == 2
    assert ledger.history[-1]["by"] == "standby:x" and ledger.history[-1]["standby"] is True
    assert (root.read_generation_record(2) or {})["snapshot"] == SNAP
    again = check_handoff(root, 2, 1, by="standby:y")  # a restarted standby: current already, same snapshot
    assert (again.action, again.snapshot) == ("go", SNAP)
    assert len([h for h in JobLedger(root).read().history if h.get("generation") == 2]) == 1


def test_exits_when_discarded_or_stale_and_a_discarded_standby_is_never_promoted(tmp_path: Path) -> None:
    root = job(tmp_path)
    make_snapshot(Path(root.location.uri), SNAP, job="counter", generation=1, batch=4)
    assert JobLedger(root).discard_standby(2, by="run-a", reason="the stop failed")
    acknowledge(root)
    seen = check_handoff(root, 2, 1, by="s")
    assert seen.action == "exit" and "the stop failed" in seen.reason
    assert not JobLedger(root).promote(2, previous=1, snapshot=SNAP, by="s")
    assert JobLedger(root).promote(2, previous=1, snapshot=SNAP, by="start", undiscard=True)  # the start task
    assert not (root.read_generation_record(2) or {}).get("discarded_at")
    assert not JobLedger(root).discard_standby(2, by="run-a", reason="late")  # it is the job now
    root.update_generation_record(3, standby_for=1)
    assert check_handoff(root, 3, 1, by="s").action == "exit"  # generation 1 is no longer current
    assert not JobLedger(root).promote(3, previous=1, snapshot=SNAP, by="s")  # compare-and-set


class _Lock:
    def refresh(self) -> bool:
        return True  # still this driver's


def test_await_go_answers_a_stop_request_and_times_out(tmp_path: Path) -> None:
    root = job(tmp_path)

    class Status:
        def __init__(self) -> None:
            self.updates: list[dict[str, object]] = []

        def update(self, **changes: object) -> None:
            self.updates.append(changes)

    spec = LaunchSpec(str(root.location.uri), 2, standby_for=1, standby_timeout_s=0.3)
    status = Status()
    assert await_go(root, spec, status, _Lock(), "d") is None  # no go in time
    assert (root.read_generation_record(2) or {}).get("discarded_at")
    assert "no go within" in str(status.updates[-1]["error"])

    root.update_generation_record(2, discarded_at=None)
    request = StopRequest(
        request_id="stop-standby",
        requested_at=time.time(),
        timeout_s=10,
        job_root=root.location.uri,
        generation=2,
    )
    root.write_stop_request(2, request)
    spec = LaunchSpec(str(root.location.uri), 2, standby_for=1, standby_timeout_s=30)
    assert await_go(root, spec, Status(), _Lock(), "d") is None
    ack = root.read_stop_ack(2)
    assert ack is not None and ack.request_id == "stop-standby" and ack.final_committed_batch is None


def test_launch_contract_carries_the_standby() -> None:
    spec = LaunchSpec("/jobs/c", 3, standby_for=2, standby_timeout_s=60)
    parsed, _ = parse_launch_args(spec.to_args())
    assert (parsed.standby_for, parsed.standby_timeout_s) == (2, 60.0)
    assert parse_launch_args(LaunchSpec("/jobs/c", 3).to_args())[0].standby_for is None
    with pytest.raises(InvalidLaunchError, match="must be newer"):
        LaunchSpec("/jobs/c", 2, standby_for=2)


def test_a_standby_that_dies_before_its_first_report_is_given_up_at_once(tmp_path: Path) -> None:
    """Found by the mixed campaign (seed 1202): a standby killed 1.8 s after its launch wrote no status, and
    the standby task waited its whole ready timeout (600 s) before the redeploy went on cold."""
    from airflow_checkpoint_provider.checkpoint import watch

    root = JobRoot(tmp_path / "counter")
    waiting = watch.standby_ready(root, 2, "L")
    assert not waiting.done and not waiting.failed
    gone = watch.standby_ready(root, 2, "L", process_gone=True)
    assert gone.failed and "ended without reporting" in gone.message


def test_the_old_driver_waits_for_its_successors_first_commit_before_it_tears_down(tmp_path: Path) -> None:
    """After a stop that exported a snapshot for an armed standby, the old driver stays up (idle) until the
    standby has committed its first batch; any other end of the handoff ends the wait at once."""
    root = job(tmp_path)
    since = time.time() - 5
    acknowledge(root, snapshot=None)
    assert "no snapshot" in await_successor(root, 1, _Lock(), 2.0, since=since)
    assert "without a stop request" in await_successor(root, 1, _Lock(), 2.0, since=time.time() + 5)
    make_snapshot(Path(root.location.uri), SNAP, job="counter", generation=1, batch=4)
    acknowledge(root)
    assert check_handoff(root, 2, 1, by="standby:x").action == "go"
    status = DriverStatus(job="counter", generation=2, state=DriverState.RUNNING, driver_id="new")
    root.write_status(status)
    started = time.monotonic()
    assert "did not commit within" in await_successor(root, 1, _Lock(), 0.1, since=since, limit_s=0.3)
    assert time.monotonic() - started >= 0.3
    root.write_status(replace(status, last_committed_batch=0))
    assert "committed batch 0" in await_successor(root, 1, _Lock(), 2.0, since=since)
    root.write_status(replace(status, state=DriverState.FAILED))
    assert "FAILED" in await_successor(root, 1, _Lock(), 2.0, since=since)


def test_no_wait_without_an_armed_standby(tmp_path: Path) -> None:
    root = job(tmp_path)
    make_snapshot(Path(root.location.uri), SNAP, job="counter", generation=1, batch=4)
    acknowledge(root)
    JobLedger(root).discard_standby(2, by="test", reason="the redeploy failed")
    assert await_successor(root, 1, _Lock(), 2.0, since=time.time() - 5) == "no standby takes over"


def test_a_driver_warns_when_pyspark_has_no_bytecode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Without cached bytecode every Python process Spark starts compiles pyspark again (0.8 s each here)."""
    import compileall
    import sys

    from airflow_checkpoint_provider.runtime.driver import warn_without_bytecode

    package = tmp_path / "acp_probe_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert warn_without_bytecode("acp_probe_pkg")
    assert "acp_probe_pkg has no compiled bytecode" in caplog.text
    assert compileall.compile_dir(str(package), quiet=1)
    assert not warn_without_bytecode("acp_probe_pkg")
    assert not warn_without_bytecode("acp_no_such_module")
    assert "acp_probe_pkg" not in sys.modules  # looked up, never imported


def test_a_zip_spark_submit_imports_from_gets_bytecode_that_python_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """spark-submit imports pyspark from pyspark.zip, where Python caches no bytecode: the driver says so,
    and scripts/zip_bytecode.py puts bytecode in the zip that zipimport then loads (and that source lines
    still come from the zip's .py)."""
    import subprocess
    import sys
    import zipfile

    from airflow_checkpoint_provider.runtime.driver import warn_without_bytecode
    from scripts.zip_bytecode import has_bytecode, main

    archive = tmp_path / "probe.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("acp_zip_probe/__init__.py", "def where():\n    raise ValueError('from the zip')\n")
        z.writestr("acp_zip_probe/tests/__init__.py", "")
    monkeypatch.syspath_prepend(str(archive))
    assert warn_without_bytecode("acp_zip_probe")
    assert "imported from a zip without bytecode" in caplog.text
    assert main([str(archive)]) == 0 and has_bytecode(str(archive))
    before = archive.read_bytes()
    assert main([str(archive)]) == 0 and archive.read_bytes() == before  # once only
    probe = (
        "import acp_zip_probe, traceback\n"
        "print(acp_zip_probe.__spec__.origin)\n"
        "try:\n    acp_zip_probe.where()\n"
        "except ValueError:\n    print(traceback.format_exc())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env={"PYTHONPATH": str(archive)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.splitlines()[0].endswith("acp_zip_probe/__init__.pyc"), out  # loaded from bytecode
    assert "raise ValueError('from the zip')" in out  # the traceback still shows the source line


def test_a_driver_lock_taken_over_by_another_driver_is_neither_held_nor_refreshed(tmp_path: Path) -> None:
    """What a driver that outlived its lease finds (the real takeover: tests/integration/runtime/
    test_managed_driver.py): its heartbeat does not overwrite the new holder's lock."""
    from airflow_checkpoint_provider.runtime.driver import DriverLock

    root = JobRoot(tmp_path / "job")
    old = DriverLock(root, 1, "old", lease_s=0.0)
    old.acquire()
    assert old.held() and old.refresh()
    new = DriverLock(root, 1, "new", lease_s=0.0)
    new.acquire()  # the lease ran out: taken over
    assert not old.held() and not old.refresh()
    assert (root.read_json(root.driver_lock_file(1), what="lock") or {})["driver_id"] == "new"
    old.release()  # not its lock any more: left alone
    assert new.held() and root.driver_lock_file(1).exists()


def test_a_warm_up_writes_in_its_own_folder_under_the_job_root_and_removes_it(tmp_path: Path) -> None:
    """The warm-ups' scratch is inside the job root (a cluster's executors see it, nothing outside the root is
    touched), gone afterwards with ``scratch/``; a dry run's folder beside it keeps ``scratch/``."""
    from airflow_checkpoint_provider.runtime.standby import scratch

    root = JobRoot(str(tmp_path / "counter"), job="counter")
    with scratch(root, "query") as folder:
        assert folder.is_within(root.location) and folder.parent.path == str(tmp_path / "counter" / "scratch")
        folder.child("in").makedirs()
        (Path(folder.path) / "in" / "seg-0").write_text("x")
    assert not (tmp_path / "counter" / "scratch").exists()
    dry = tmp_path / "counter" / "scratch" / "dry-run-g2-abc"
    dry.mkdir(parents=True)
    with scratch(root, "export") as folder:
        folder.makedirs()
    assert [p.name for p in (tmp_path / "counter" / "scratch").iterdir()] == [dry.name]


def test_a_warm_up_sweeps_only_stale_warm_up_folders(tmp_path: Path) -> None:
    """A driver killed during its warm-up leaves its folder: the job's next warm-up removes it once it is an
    hour old (by the time in its name), and nothing else in ``scratch/``."""
    from airflow_checkpoint_provider.runtime.standby import STALE_WARM_S, sweep

    root = JobRoot(str(tmp_path / "counter"), job="counter")
    base = tmp_path / "counter" / "scratch"
    now = 2_000_000_000
    stale, fresh = f"warm-{now - int(STALE_WARM_S) - 5}-export-41-ab12", f"warm-{now - 60}-query-42-cd34"
    for name in (stale, fresh, "dry-run-g3-x", "warm-notatime-query-1-ff"):
        (base / name).mkdir(parents=True)
    (base / f"warm-{now - 99999}-query-7-ee").write_text("a file, not a warm-up's folder")
    assert sweep(root, now=now) == [stale]
    assert sorted(p.name for p in base.iterdir()) == sorted(
        [fresh, "dry-run-g3-x", "warm-notatime-query-1-ff", f"warm-{now - 99999}-query-7-ee"]
    )


def test_a_warm_up_refuses_a_scratch_folder_that_links_out_of_the_job_root(tmp_path: Path) -> None:
    """Promise 4, symlinks included: a ``scratch`` linked elsewhere is neither written nor swept."""
    from airflow_checkpoint_provider.exceptions import InvalidLocationError
    from airflow_checkpoint_provider.runtime.standby import scratch, sweep

    root = JobRoot(str(tmp_path / "counter"), job="counter")
    (tmp_path / "counter").mkdir()
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "warm-1-query-1-aa").mkdir(parents=True)
    (tmp_path / "counter" / "scratch").symlink_to(elsewhere)
    with pytest.raises(InvalidLocationError, match="leads out of the job root"):
        with scratch(root, "query"):
            pass
    with pytest.raises(InvalidLocationError):
        sweep(root)
    assert (elsewhere / "warm-1-query-1-aa").is_dir()
