"""Nothing outside a job root is read or deleted: a ``..`` or a symbolic link that leads out of the job root,
a snapshot id or a manifest part path that escapes its folder, are refused before anything is read or deleted;
cleanup and retention never follow a link out of the job root."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot
from airflow_checkpoint_provider.checkpoint.snapshots import SnapshotCatalogue, read_manifest, verify_snapshot
from airflow_checkpoint_provider.checkpoint.storage import Location
from airflow_checkpoint_provider.exceptions import InvalidLocationError
from tests.support.crafted import make_checkpoint, make_snapshot


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """Precious files outside the job root that nothing may touch."""
    folder = tmp_path / "precious"
    make_checkpoint(folder / "checkpoint", committed=2)
    make_snapshot(folder, "s-out", created_at="2026-01-01T00:00:00Z")
    (folder / "secret.json").write_text(json.dumps({"current_generation": 9}))
    return folder


def snapshot_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("bad", ["..", "../x", "a/../../b", "/etc/passwd", "", "x\x00y"])
def test_a_path_element_cannot_lead_out_of_its_folder(tmp_path: Path, bad: str) -> None:
    with pytest.raises(InvalidLocationError, match="leads out of its folder"):
        Location.of(tmp_path).child(bad)


@pytest.mark.parametrize("bad", ["..", ".", "a/b", "../s-out", ""])
def test_a_snapshot_id_cannot_escape_the_snapshots_folder(tmp_path: Path, bad: str) -> None:
    root = JobRoot(tmp_path / "job")
    with pytest.raises(InvalidLocationError):
        root.snapshot_dir(bad)


def test_a_symlinked_generation_is_neither_read_nor_deleted(tmp_path: Path, outside: Path) -> None:
    job = tmp_path / "job"
    (job / "generations" / "1").mkdir(parents=True)
    (job / "job.json").write_text(json.dumps({"current_generation": 1}))
    os.symlink(outside / "checkpoint", job / "generations" / "1" / "checkpoint")
    os.symlink(outside, job / "generations" / "2")
    root = JobRoot(job)
    before = snapshot_of(outside)
    with pytest.raises(InvalidLocationError, match="leads out of the job root"):
        root.require_inside(root.checkpoint(1))  # what cleanup deletes
    with pytest.raises(InvalidLocationError, match="leads out of the job root"):
        root.generation_dir(2)
    with pytest.raises(InvalidLocationError, match="leads out of the job root"):
        root.read_generation_record(2)
    assert snapshot_of(outside) == before


def test_a_symlinked_record_is_not_read(tmp_path: Path, outside: Path) -> None:
    job = tmp_path / "job"
    job.mkdir()
    os.symlink(outside / "secret.json", job / "job.json")
    with pytest.raises(InvalidLocationError, match="leads out of the job root"):
        JobRoot(job).current_generation()


def test_retention_and_delete_never_follow_a_link_out(tmp_path: Path, outside: Path) -> None:
    job = tmp_path / "job"
    make_snapshot(job, "s1", created_at="2026-11-01T00:00:00Z")
    make_snapshot(job, "s2", created_at="2026-11-02T00:00:00Z")
    os.symlink(outside / "snapshots" / "s-out", job / "snapshots" / "s0-linked")
    before = snapshot_of(outside)
    catalogue = SnapshotCatalogue(JobRoot(job))
    with pytest.raises(InvalidLocationError, match="leads out of the job root"):
        catalogue.delete("s0-linked", force=True)
    listed = {e.snapshot_id for e in catalogue.list()}
    assert listed == {"s1", "s2"}  # a link is not a snapshot folder: not listed, never followed
    plan = catalogue.apply_retention(keep_last=1)
    assert "s0-linked" not in plan.delete
    assert snapshot_of(outside) == before
    assert (job / "snapshots" / "s2").exists() and (job / "snapshots" / "s0-linked").is_symlink()


def test_a_manifest_part_path_cannot_escape_the_snapshot(tmp_path: Path, outside: Path) -> None:
    job = tmp_path / "job"
    make_snapshot(job, "s1")
    manifest_file = job / "snapshots" / "s1" / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    for part in manifest["parts"].values():
        part["path"] = "../../../precious/snapshots/s-out/parts/counts"
    manifest_file.write_text(json.dumps(manifest))
    (job / "snapshots" / "s1" / "verified.json").unlink(missing_ok=True)
    root = JobRoot(job)
    read_manifest(root, "s1")  # the manifest itself is readable ...
    with pytest.raises(InvalidLocationError, match="leads out of its folder"):
        verify_snapshot(root, "s1")  # ... but its parts are not followed out of the snapshot


def test_a_stop_request_from_another_job_or_generation_is_refused(tmp_path: Path) -> None:
    from airflow_checkpoint_provider.exceptions import ControlFileError
    from airflow_checkpoint_provider.model.records import StopRequest
    from airflow_checkpoint_provider.runtime.fence import SourceFence

    root = JobRoot(tmp_path / "job")
    other = JobRoot(tmp_path / "other-job")
    cases = {
        "another generation": StopRequest("r1", 0.0, job_root=root.location.uri, generation=3),
        "another job": StopRequest("r2", 0.0, job_root=other.location.uri, generation=2),
    }
    for what, request in cases.items():
        root.write_stop_request(2, request)
        with pytest.raises(ControlFileError, match="not this one"):
            root.read_stop_request(2)
        fence = SourceFence(root.control_dir(2).uri, "/events")
        assert fence.admit(10, 20) == 20, what  # the source is not fenced by it either
    ours = StopRequest("r3", 0.0, job_root=root.location.uri, generation=2)
    root.write_stop_request(2, ours)
    assert root.read_stop_request(2) == ours
    assert SourceFence(root.control_dir(2).uri, "/events").admit(10, 20) == 10  # fenced
    legacy = StopRequest("r4", 0.0)  # written before requests named their job and generation
    root.write_stop_request(2, legacy)
    assert root.read_stop_request(2) == legacy
