"""Bad input to a managed driver: a clear typed error naming job, generation and path, a non-zero exit, the
error in status.json, and the checkpoint untouched. One real spark-submit; the rest call ``managed.run``
in-process (every refusal happens before Spark is touched, so the process boundary adds nothing but time)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot
from airflow_checkpoint_provider.runtime import managed
from tests.support.crafted import make_checkpoint, make_snapshot
from tests.support.drivers import Job, checkpoint_digest


def never_built(ctx: Any) -> Any:
    raise AssertionError("the query must not be built on bad input")


@pytest.fixture
def job(tmp_path: Path) -> Path:
    """Job 'orders': generation 1 has a checkpoint with committed batches; generation 2 is current and new."""
    path = tmp_path / "orders"
    root = JobRoot(path)
    make_checkpoint(path / "generations" / "1" / "checkpoint", committed=4)
    root.write_json(root.location.child("job.json"), {"current_generation": 2})
    return path


def run(job: Path, generation: int, *flags: str) -> int:
    return managed.run(
        never_built, argv=["--acp-job-root", str(job), "--acp-generation", str(generation), *flags]
    )


def expect_refusal(
    job: Path,
    capsys: pytest.CaptureFixture[str],
    generation: int,
    flags: list[str],
    error: str,
    *phrases: str,
    status_written: bool = True,
) -> str:
    before = {g: checkpoint_digest(job / "generations" / str(g) / "checkpoint") for g in (1, 2)}
    assert run(job, generation, *flags) == 1
    err = capsys.readouterr().err
    assert error in err and "job=orders" in err and f"generation={generation}" in err and "path=" in err, err
    for phrase in phrases:
        assert phrase in err, err
    after = {g: checkpoint_digest(job / "generations" / str(g) / "checkpoint") for g in (1, 2)}
    assert after == before  # nothing touched; generation 2's checkpoint not even created
    status = JobRoot(job).read_status(generation)
    if status_written:
        assert status is not None and status.state == "FAILED" and error in str(status.error)
    return err


def test_missing_snapshot(job: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expect_refusal(
        job,
        capsys,
        2,
        ["--acp-snapshot", "nope"],
        "SnapshotNotFoundError",
        "'nope' does not exist",
        "airflow-checkpoint snapshots",
    )


def test_snapshot_of_another_job(job: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_snapshot(job, "theirs", job="payments")
    expect_refusal(
        job,
        capsys,
        2,
        ["--acp-snapshot", "theirs"],
        "ForeignSnapshotError",
        "belongs to job 'payments', not 'orders'",
    )


def test_starting_offsets_that_do_not_match_the_snapshot(
    job: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_snapshot(job, "s1", batch=4, end_offsets=[{"offset": 50}])
    expect_refusal(
        job,
        capsys,
        2,
        ["--acp-snapshot", "s1", "--acp-starting-offsets", '[{"offset": 40}]'],
        "OffsetsMismatchError",
        "[{'offset': 40}]",
        "[{'offset': 50}]",
        "lose or double-count",
    )


def test_damaged_snapshot(job: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_snapshot(job, "s1")
    victim = sorted((job / "snapshots" / "s1" / "parts" / "counts").glob("part-*"))[0]
    victim.write_bytes(victim.read_bytes()[:-10])
    expect_refusal(job, capsys, 2, ["--acp-snapshot", "s1"], "SnapshotCorruptError", "truncated or rewritten")


def test_unreadable_control_file(job: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = JobRoot(job)
    root.write_json(root.location.child("job.json"), {"current_generation": 1})
    root.stop_request_file(1).write_text("{half a stop request")
    expect_refusal(job, capsys, 1, [], "ControlFileError", "stop request holds invalid JSON", "stop.json")


def test_superseded_generation_does_not_touch_status(job: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expect_refusal(
        job, capsys, 1, [], "FencedError", "not the job's current generation (2)", status_written=False
    )
    assert JobRoot(job).read_status(1) is None


@pytest.mark.spark
def test_missing_snapshot_through_spark_submit(run_dir: Path) -> None:
    """The same refusal from a real spark-submit driver: exit code 1, the error on stderr and in
    status.json."""
    job = Job(run_dir / "bad-input", run_dir, name="orders")
    make_checkpoint(job.path / "generations" / "1" / "checkpoint", committed=4)
    job.set_current(2)
    before = checkpoint_digest(job.path / "generations" / "1" / "checkpoint")
    proc, log = job.launch("v2", job.spec(2, snapshot="missing-one"))
    assert proc.wait(timeout=180) == 1
    text = log.read_text()
    assert "SnapshotNotFoundError" in text and "generation=2" in text and "job=orders" in text
    status = job.status(2)
    assert status is not None and status.state == "FAILED" and "missing-one" in str(status.error)
    assert checkpoint_digest(job.path / "generations" / "1" / "checkpoint") == before
    assert not (job.path / "generations" / "2" / "checkpoint").exists()
