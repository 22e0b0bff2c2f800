"""The inspector on checkpoints in Spark's exact file shapes: positions, bad input, and cost."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fsspec.implementations.local import LocalFileSystem

from airflow_checkpoint_provider.checkpoint.inspector import CheckpointReader, inspect_checkpoint
from airflow_checkpoint_provider.checkpoint.storage import Location
from airflow_checkpoint_provider.exceptions import (
    CheckpointNotFoundError,
    CheckpointProviderError,
    CorruptCheckpointError,
    EmptyCheckpointError,
    JobRootNotCheckpointError,
    NotACheckpointError,
    SnapshotNotCheckpointError,
    UnsupportedLogVersionError,
)
from tests.support.crafted import make_checkpoint, offsets_text


def test_committed_and_in_flight(tmp_path: Path) -> None:
    cp = make_checkpoint(tmp_path / "cp", committed=4, in_flight=True, sources=2)
    info = inspect_checkpoint(cp)
    assert info.query_id == "11111111-2222-3333-4444-555555555555"
    assert info.last_committed_batch == 4
    assert info.in_flight_batch == 5
    assert info.committed is not None and info.committed.end_offsets_json() == [
        {"offset": 50},
        {"offset": 50},
    ]
    assert info.in_flight is not None and info.in_flight.end_offsets_json() == [
        {"offset": 60},
        {"offset": 60},
    ]
    assert info.retained_batches == (0, 4)
    assert info.offset_log_version == 1 and info.commit_log_version == 1
    assert info.checkpoint_format_version == 1


def test_retained_range_after_purge(tmp_path: Path) -> None:
    cp = make_checkpoint(tmp_path / "cp", committed=250, first_retained=151)
    info = inspect_checkpoint(cp)
    assert info.retained_batches == (151, 250)
    assert CheckpointReader(cp).offsets(151).end_offsets_json() == [{"offset": 1520}]
    with pytest.raises(CorruptCheckpointError, match="batch 100 is not retained") as err:
        CheckpointReader(cp).offsets(100)
    assert str(cp / "offsets" / "100") in str(err.value)


def test_fresh_checkpoint_with_metadata_only_has_no_batches(tmp_path: Path) -> None:
    cp = tmp_path / "cp"
    cp.mkdir()
    (cp / "metadata").write_text('{"id":"q"}')
    info = inspect_checkpoint(cp)
    assert (info.query_id, info.last_committed_batch, info.in_flight_batch, info.retained_batches) == (
        "q",
        None,
        None,
        None,
    )
    assert info.to_json()["committed_end_offsets"] == []


def test_batch_zero_in_flight(tmp_path: Path) -> None:
    cp = make_checkpoint(tmp_path / "cp", committed=None, in_flight=True)
    info = inspect_checkpoint(cp)
    assert info.last_committed_batch is None
    assert info.in_flight_batch == 0


def test_v2_formats(tmp_path: Path) -> None:
    cp = make_checkpoint(tmp_path / "cp", committed=2, version=2)
    info = inspect_checkpoint(cp)
    assert (info.offset_log_version, info.commit_log_version, info.checkpoint_format_version) == (2, 2, 2)


def test_allow_empty_treats_missing_and_empty_as_no_batch(tmp_path: Path) -> None:
    assert inspect_checkpoint(tmp_path / "missing", allow_empty=True).last_committed_batch is None
    (tmp_path / "empty").mkdir()
    assert inspect_checkpoint(tmp_path / "empty", allow_empty=True).query_id is None


def test_file_uri_and_object_storage_path_like(tmp_path: Path) -> None:
    cp = make_checkpoint(tmp_path / "cp", committed=1)
    assert inspect_checkpoint(f"file://{cp}").last_committed_batch == 1

    class PathLike:  # duck-typed like airflow.sdk.ObjectStoragePath
        fs = LocalFileSystem()
        path = str(cp)
        protocol = "file"

    assert inspect_checkpoint(PathLike()).last_committed_batch == 1


# --- bad input: each error is typed and names the path ----------------------------------------------------


def _expect(
    error: type[CheckpointProviderError], location: Any, names: Path | str
) -> CheckpointProviderError:
    with pytest.raises(error) as info:
        inspect_checkpoint(location)
    assert str(names) in str(info.value), str(info.value)
    assert info.value.path is not None
    return info.value


def test_not_found(tmp_path: Path) -> None:
    err = _expect(CheckpointNotFoundError, tmp_path / "nope", tmp_path / "nope")
    assert isinstance(err, FileNotFoundError)


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "cp").mkdir()
    _expect(EmptyCheckpointError, tmp_path / "cp", tmp_path / "cp")


def test_a_file_is_not_a_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    _expect(NotACheckpointError, tmp_path / "f", tmp_path / "f")


def test_unrelated_folder(tmp_path: Path) -> None:
    (tmp_path / "cp").mkdir()
    (tmp_path / "cp" / "data.parquet").write_text("x")
    err = _expect(NotACheckpointError, tmp_path / "cp", tmp_path / "cp")
    assert "metadata" in str(err)


def test_job_root_is_not_a_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / "job.json").write_text("{}")
    (tmp_path / "job" / "generations").mkdir()
    err = _expect(JobRootNotCheckpointError, tmp_path / "job", tmp_path / "job")
    assert isinstance(err, NotACheckpointError) and "job root" in str(err)


def test_snapshot_is_not_a_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "snap").mkdir()
    (tmp_path / "snap" / "manifest.json").write_text("{}")
    _expect(SnapshotNotCheckpointError, tmp_path / "snap", tmp_path / "snap")


def test_corrupt_metadata_names_the_file(tmp_path: Path) -> None:
    cp = make_checkpoint(tmp_path / "cp", committed=1)
    (cp / "metadata").write_text("{trunc")
    _expect(CorruptCheckpointError, cp, cp / "metadata")


def test_log_folders_without_metadata_or_batches_are_an_unstarted_checkpoint(tmp_path: Path) -> None:
    """Spark creates offsets/ and commits/ before metadata: a driver killed in between leaves this, and Spark
    starts over on it — so it counts as empty, not corrupt (a restart must not be refused)."""
    cp = tmp_path / "cp"
    (cp / "offsets").mkdir(parents=True)
    (cp / "commits").mkdir()
    info = CheckpointReader(cp).inspect(allow_empty=True)
    assert info.last_committed_batch is None and info.in_flight_batch is None and info.query_id is None
    with pytest.raises(EmptyCheckpointError, match="no batch was ever planned"):
        CheckpointReader(cp).inspect()


def test_missing_metadata_with_logs(tmp_path: Path) -> None:
    cp = make_checkpoint(tmp_path / "cp", committed=1)
    (cp / "metadata").unlink()
    _expect(CorruptCheckpointError, cp, cp / "metadata")


def test_corrupt_offsets_names_the_file(tmp_path: Path) -> None:
    cp = make_checkpoint(tmp_path / "cp", committed=3)
    (cp / "offsets" / "3").write_text('v1\n{"batchWatermarkMs":0,')
    _expect(CorruptCheckpointError, cp, cp / "offsets" / "3")


def test_torn_commit_names_the_file(tmp_path: Path) -> None:
    cp = make_checkpoint(tmp_path / "cp", committed=3)
    (cp / "commits" / "3").write_text("")
    _expect(CorruptCheckpointError, cp, cp / "commits" / "3")


def test_binary_garbage_names_the_file(tmp_path: Path) -> None:
    cp = make_checkpoint(tmp_path / "cp", committed=3)
    (cp / "offsets" / "3").write_bytes(b"\xff\xfe\x00garbage")
    _expect(CorruptCheckpointError, cp, cp / "offsets" / "3")


def test_committed_batch_without_offsets(tmp_path: Path) -> None:
    cp = make_checkpoint(tmp_path / "cp", committed=3)
    (cp / "offsets" / "3").unlink()
    _expect(CorruptCheckpointError, cp, cp / "offsets" / "3")


def test_unsupported_version_names_the_file(tmp_path: Path) -> None:
    cp = make_checkpoint(tmp_path / "cp", committed=2)
    (cp / "offsets" / "2").write_text(offsets_text([1]).replace("v1", "v3", 1))
    err = _expect(UnsupportedLogVersionError, cp, cp / "offsets" / "2")
    assert "v3" in str(err)


def test_errors_share_one_root_and_say_if_terminal(tmp_path: Path) -> None:
    with pytest.raises(CheckpointProviderError) as info:
        inspect_checkpoint(tmp_path / "nope")
    assert info.value.terminal


# --- cost: list each log folder once, read only the files that carry the answer
# ------------------------------


class CountingFS(LocalFileSystem):
    cachable = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.listed: list[str] = []
        self.opened: list[str] = []

    def ls(self, path: str, detail: bool = False, **kwargs: Any) -> Any:
        self.listed.append(path)
        return super().ls(path, detail=detail, **kwargs)

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        self.opened.append(path)
        return super()._open(path, mode=mode, **kwargs)


def test_long_checkpoint_is_cheap(tmp_path: Path) -> None:
    cp = make_checkpoint(tmp_path / "cp", committed=1999, in_flight=True, first_retained=1900)
    fs = CountingFS()
    info = CheckpointReader(Location(fs, str(cp))).inspect()
    assert info.last_committed_batch == 1999 and info.in_flight_batch == 2000
    assert sorted(fs.listed) == sorted([str(cp), str(cp / "offsets"), str(cp / "commits")])
    assert sorted(fs.opened) == sorted(
        [
            str(cp / "metadata"),
            str(cp / "offsets" / "1999"),
            str(cp / "commits" / "1999"),
            str(cp / "offsets" / "2000"),
        ]
    )


def test_json_contract_keys(tmp_path: Path) -> None:
    cp = make_checkpoint(tmp_path / "cp", committed=0)
    report = inspect_checkpoint(cp).to_json()
    json.dumps(report)
    for key in (
        "query_id",
        "last_committed_batch",
        "in_flight_batch",
        "committed_end_offsets",
        "retained_batches",
    ):
        assert key in report
