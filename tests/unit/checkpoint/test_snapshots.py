"""Snapshot verification, catalogue and retention, on snapshots written with pyarrow alone (no JVM)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pendulum
import pytest

from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot
from airflow_checkpoint_provider.checkpoint.snapshots import (
    SnapshotCatalogue,
    new_snapshot_id,
    read_manifest,
    verify_snapshot,
)
from airflow_checkpoint_provider.cli import main as cli
from airflow_checkpoint_provider.exceptions import (
    CheckpointProviderError,
    ForeignSnapshotError,
    InvalidLocationError,
    SnapshotCorruptError,
    SnapshotNotFoundError,
    SnapshotProtectedError,
)
from tests.support.crafted import make_snapshot

NOW = pendulum.datetime(2026, 11, 22, 12, 0, 0, tz="UTC")


@pytest.fixture
def job(tmp_path: Path) -> Path:
    root = tmp_path / "orders"
    root.mkdir()
    return root


def part_files(job: Path, sid: str) -> list[Path]:
    return sorted((job / "snapshots" / sid / "parts" / "counts").glob("part-*"))


def test_id_names_generation_batch_and_time() -> None:
    assert new_snapshot_id(3, 41, NOW) == "20261122T120000Z-g3-b41"


def test_a_complete_snapshot_verifies_and_is_recorded(job: Path) -> None:
    make_snapshot(job, "s1", verify=False)
    result = verify_snapshot(JobRoot(job), "s1")
    assert result.ok and result.rows == 3 and result.files == 2
    entry = SnapshotCatalogue(JobRoot(job)).entry("s1")
    assert entry.complete and entry.verified and not entry.deep_verified and entry.rows == 3


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("truncate", "bytes, manifest says"),
        ("flip", "fails its SHA-256 checksum"),
        ("remove", "is missing"),
        ("extra", "is not in the manifest"),
    ],
)
def test_damaged_files_are_refused_with_every_problem_named(job: Path, damage: str, message: str) -> None:
    make_snapshot(job, "s1")
    first = part_files(job, "s1")[0]
    if damage == "truncate":
        first.write_bytes(first.read_bytes()[:-20])
    elif damage == "flip":
        data = bytearray(first.read_bytes())
        data[10] ^= 0xFF
        first.write_bytes(bytes(data))
    elif damage == "remove":
        first.unlink()
    else:
        (first.parent / "part-99999-stray.parquet").write_bytes(first.read_bytes())
    with pytest.raises(SnapshotCorruptError) as err:
        verify_snapshot(JobRoot(job), "s1")
    text = str(err.value)
    assert message in text and "s1" in text and "job=orders" in text and "generation=1" in text
    # once a verification fails, the snapshot no longer counts as verified
    assert not SnapshotCatalogue(JobRoot(job)).entry("s1").verified


def test_a_rewritten_manifest_invalidates_the_verification_record(job: Path) -> None:
    make_snapshot(job, "s1")
    manifest = job / "snapshots" / "s1" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["code_version"] = "edited"
    manifest.write_text(json.dumps(data))
    assert not SnapshotCatalogue(JobRoot(job)).entry("s1").verified


def test_row_count_mismatch_is_refused(job: Path) -> None:
    make_snapshot(job, "s1")
    manifest = job / "snapshots" / "s1" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["parts"]["counts"]["files"][0]["rows"] += 1
    data["parts"]["counts"]["rows"] += 1
    manifest.write_text(json.dumps(data))
    with pytest.raises(SnapshotCorruptError, match="rows, manifest says"):
        verify_snapshot(JobRoot(job), "s1")


def test_folder_without_manifest_is_not_a_snapshot(job: Path) -> None:
    make_snapshot(job, "s1")
    (job / "snapshots" / "s1" / "manifest.json").unlink()
    with pytest.raises(SnapshotNotFoundError, match="unfinished export is not a snapshot") as err:
        read_manifest(JobRoot(job), "s1")
    assert isinstance(err.value, FileNotFoundError)
    entry = SnapshotCatalogue(JobRoot(job)).entry("s1")
    assert not entry.complete and not entry.verified


def test_another_jobs_snapshot_is_foreign(job: Path) -> None:
    make_snapshot(job, "s1", job="payments", verify=False)
    with pytest.raises(ForeignSnapshotError, match="belongs to job 'payments', not 'orders'"):
        read_manifest(JobRoot(job), "s1")


def test_a_copied_snapshot_folder_is_foreign(job: Path) -> None:
    import shutil

    make_snapshot(job, "s1")
    shutil.copytree(job / "snapshots" / "s1", job / "snapshots" / "s2")
    with pytest.raises(ForeignSnapshotError, match="holds the manifest of snapshot 's1'"):
        read_manifest(JobRoot(job), "s2")


def test_unreadable_manifest_is_a_typed_error(job: Path) -> None:
    make_snapshot(job, "s1")
    (job / "snapshots" / "s1" / "manifest.json").write_text("{not json")
    with pytest.raises(SnapshotCorruptError, match="invalid JSON"):
        read_manifest(JobRoot(job), "s1")
    assert SnapshotCatalogue(JobRoot(job)).entry("s1").error


@pytest.mark.parametrize("bad", ["", "..", "a/b", "."])
def test_snapshot_ids_cannot_escape_the_job_root(job: Path, bad: str) -> None:
    with pytest.raises(InvalidLocationError):
        JobRoot(job).snapshot_dir(bad)


def _catalogue(job: Path) -> SnapshotCatalogue:
    # s4 newest ... s1 oldest, all verified
    for i, day in enumerate(["2026-11-01", "2026-11-10", "2026-11-20", "2026-11-22"], start=1):
        make_snapshot(job, f"s{i}", generation=1, batch=i * 10, created_at=f"{day}T00:00:00Z")
    return SnapshotCatalogue(JobRoot(job))


def test_list_newest_first_and_find(job: Path) -> None:
    cat = _catalogue(job)
    assert [e.snapshot_id for e in cat.list()] == ["s4", "s3", "s2", "s1"]
    found = cat.find(generation=1, batch=20)
    assert found is not None and found.snapshot_id == "s2"
    assert cat.find(generation=2, batch=20) is None
    latest = cat.latest_verified()
    assert latest is not None and latest.snapshot_id == "s4"


def test_retention_by_count_and_age_keeps_protected(job: Path) -> None:
    cat = _catalogue(job)
    plan = cat.plan_retention(keep_last=2, now=NOW)
    assert plan.delete == ["s2", "s1"] and plan.keep == ["s4", "s3"]
    plan = cat.plan_retention(max_age=timedelta(days=5), now=NOW)
    assert plan.delete == ["s2", "s1"]
    # the newest verified snapshot survives any retention, even keep_last=0 / a tiny max age
    plan = cat.plan_retention(keep_last=0, max_age=timedelta(seconds=1), now=NOW)
    assert plan.keep == ["s4"] and "newest verified" in plan.reasons["s4"]
    # so does the one a kept generation started from
    JobRoot(job).update_generation_record(2, snapshot="s1")
    (job / "generations" / "2").mkdir(parents=True, exist_ok=True)
    plan = cat.plan_retention(keep_last=0, now=NOW)
    assert set(plan.keep) == {"s4", "s1"} and "generation 2 started from it" in plan.reasons["s1"]
    # ...until that generation is deleted
    JobRoot(job).update_generation_record(2, deleted_at="2026-11-21T00:00:00Z")
    assert "s1" in cat.plan_retention(keep_last=0, now=NOW).delete


def test_apply_retention_deletes_inside_the_job_root_only(job: Path) -> None:
    cat = _catalogue(job)
    outside = job.parent / "keep-me"
    outside.mkdir()
    cat.apply_retention(keep_last=1, now=NOW)
    assert sorted(p.name for p in (job / "snapshots").iterdir()) == ["s4"]
    assert outside.exists()


def test_unfinished_exports_are_left_alone_while_young(job: Path) -> None:
    cat = _catalogue(job)
    (job / "snapshots" / "partial" / "parts").mkdir(parents=True)
    plan = cat.plan_retention(keep_last=10, now=pendulum.now("UTC"))
    assert "partial" in plan.keep and "may still be running" in plan.reasons["partial"]
    plan = cat.plan_retention(keep_last=10, now=pendulum.now("UTC").add(days=1))
    assert "partial" in plan.delete


def test_delete_refuses_the_newest_verified(job: Path) -> None:
    cat = _catalogue(job)
    with pytest.raises(SnapshotProtectedError, match="newest verified") as err:
        cat.delete("s4")
    assert isinstance(err.value, CheckpointProviderError) and isinstance(err.value, PermissionError)
    cat.delete("s2")
    cat.delete("s2")  # idempotent
    assert not (job / "snapshots" / "s2").exists()


def test_cli_lists_verifies_and_plans(job: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _catalogue(job)
    assert cli(["snapshots", str(job)]) == 0
    out = capsys.readouterr().out
    assert out.index("s4") < out.index("s1") and "verified" in out
    assert cli(["snapshots", str(job), "--json", "--verify", "--keep-last", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [v["snapshot_id"] for v in report["verified"]] == ["s4", "s3", "s2", "s1"]
    assert report["retention"]["delete"] == ["s2", "s1"] and report["retention"]["applied"] is False
    assert len(report["snapshots"]) == 4  # a dry run deletes nothing
    part_files(job, "s3")[0].write_bytes(b"garbage")
    assert cli(["snapshots", str(job), "--verify", "s3"]) == 1
    err = capsys.readouterr().err
    assert "SnapshotCorruptError" in err and "s3" in err
    assert cli(["snapshots", str(job), "--keep-last", "1", "--apply"]) == 0
    assert "deleted s3" in capsys.readouterr().out
    assert sorted(p.name for p in (job / "snapshots").iterdir()) == ["s4"]
