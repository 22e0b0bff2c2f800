"""The ``airflow-checkpoint`` console script, run as a user runs it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.crafted import make_checkpoint

SCRIPT = shutil.which("airflow-checkpoint") or str(Path(sys.executable).parent / "airflow-checkpoint")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, timeout=60)


def test_inspect_json(tmp_path: Path) -> None:
    cp = make_checkpoint(tmp_path / "cp", committed=3, in_flight=True, sources=2)
    out = run("inspect", str(cp), "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["query_id"] == "11111111-2222-3333-4444-555555555555"
    assert report["last_committed_batch"] == 3
    assert report["in_flight_batch"] == 4
    assert report["committed_end_offsets"] == [{"offset": 40}, {"offset": 40}]
    assert report["retained_batches"] == [0, 3]


def test_inspect_json_nulls_for_a_fresh_checkpoint(tmp_path: Path) -> None:
    cp = make_checkpoint(tmp_path / "cp", committed=None)
    report = json.loads(run("inspect", str(cp), "--json").stdout)
    assert report["last_committed_batch"] is None
    assert report["in_flight_batch"] is None
    assert report["retained_batches"] is None
    assert report["committed_end_offsets"] == []


def test_inspect_readable_report_and_batch(tmp_path: Path) -> None:
    cp = make_checkpoint(tmp_path / "cp", committed=5, in_flight=True)
    out = run("inspect", str(cp), "--batch", "2")
    assert out.returncode == 0, out.stderr
    assert "last committed batch  5" in out.stdout
    assert "in-flight batch       6" in out.stdout
    assert 'end offsets of batch 2:\n    source 0: {"offset":30}' in out.stdout


def test_errors_are_one_line_on_stderr_naming_the_path(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for target in (tmp_path / "missing", tmp_path / "empty"):
        out = run("inspect", str(target), "--json")
        assert out.returncode == 1
        assert out.stdout == ""
        assert len(out.stderr.strip().splitlines()) == 1
        assert str(target) in out.stderr


def test_usage_error_exit_code() -> None:
    assert run("inspect").returncode == 2


def test_status_of_a_job_root(tmp_path: Path) -> None:
    import time

    from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot
    from airflow_checkpoint_provider.checkpoint.ledger import JobLedger
    from airflow_checkpoint_provider.model.records import DriverStatus
    from tests.support.crafted import make_snapshot

    root = JobRoot(tmp_path / "counter")
    make_checkpoint(Path(root.checkpoint(1).path), committed=4)
    make_checkpoint(Path(root.checkpoint(2).path), committed=2)
    make_snapshot(Path(root.location.path), "20261101T000000Z-g1-b4", batch=4)
    root.update_generation_record(1, code_version="v1", retired_at=time.time())
    root.update_generation_record(
        2,
        code_version="v2",
        snapshot="20261101T000000Z-g1-b4",
        settings_applied_by="safe/run-2",
        settings_applied_at=time.time(),
        # a dry run's driver adopted as its standby: it started as generation 2 when it was adopted
        launches=[{"launch_id": "L", "submitted_at": 100.0, "adopted": "dry run", "adopted_at": 160.0}],
    )
    ledger = JobLedger(root)
    ledger.set_current(2, by="redeploy/run-1", event="generation_created")
    ledger.acquire("redeploy/run-1", "start (start)", ttl_s=600)
    root.write_status(
        DriverStatus(
            job="counter",
            generation=2,
            state="RUNNING",
            driver_id="d",
            host="h",
            pid=1,
            last_committed_batch=2,
            heartbeat_at=time.time() - 120,
            lease_s=30,
        )
    )
    out = run("status", str(root.location.path), "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["current_generation"] == 2 and report["lease"]["holder"] == "redeploy/run-1"
    states = {g["generation"]: (g["state"], g["last_committed_batch"]) for g in report["generations"]}
    assert states == {
        1: ("RETIRED", 4),
        2: ("DEAD", 2),
    }  # RUNNING in its last report, heartbeat past the lease
    assert report["generations"][1]["heartbeat_age_s"] >= 120
    assert [s["snapshot_id"] for s in report["snapshots"]] == ["20261101T000000Z-g1-b4"]
    text = run("status", str(root.location.path))
    assert text.returncode == 0 and "held by redeploy/run-1" in text.stdout and "RETIRED" in text.stdout
    assert report["generations"][1]["settings"]["applied_by"] == "safe/run-2"
    assert "generation 2 was restarted in place with new settings by safe/run-2" in text.stdout
    assert [(g["adopted"], g["started_at"]) for g in report["generations"]] == [(False, None), (True, 160.0)]
    assert "generation 2 runs on its dry run's driver, adopted as its warm standby" in text.stdout
    assert run("status", str(tmp_path / "nowhere")).returncode == 1  # no job there: an error, not "empty"


def test_no_command_answers_empty_for_a_job_root_that_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "a" / "mistyped" / "path"
    (tmp_path / "not-a-job").mkdir()
    (tmp_path / "not-a-job" / "notes.txt").write_text("x")
    for args in (("status",), ("status", "--json"), ("snapshots",), ("snapshots", "--json")):
        out = run(*args[:1], str(missing), *args[1:])
        assert out.returncode == 1 and out.stdout == "", (args, out.stdout)
        assert "JobRootNotFoundError: the job root does not exist" in out.stderr
        assert str(missing) in out.stderr and "job=path" in out.stderr
        other = run(*args[:1], str(tmp_path / "not-a-job"), *args[1:])
        assert other.returncode == 1 and "NotAJobRootError" in other.stderr, other.stderr
    assert not missing.exists()  # and nothing was created on the way
