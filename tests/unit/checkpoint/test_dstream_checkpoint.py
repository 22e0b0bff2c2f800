"""A DStream checkpoint read without a JVM: the real one Spark wrote (fixture), and damaged ones."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_checkpoint_provider.checkpoint import dstream
from airflow_checkpoint_provider.checkpoint.inspector import inspect_checkpoint
from airflow_checkpoint_provider.checkpoint.storage import Location
from airflow_checkpoint_provider.exceptions import CorruptCheckpointError, EmptyCheckpointError

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "checkpoints" / "dstream"


def copy(tmp_path: Path) -> Path:
    target = tmp_path / "checkpoint"
    shutil.copytree(FIXTURE, target)
    return target


def test_the_real_dstream_checkpoint_is_recognised_and_read() -> None:
    info = inspect_checkpoint(FIXTURE)
    assert info.engine == "dstream" and info.dstream is not None
    assert info.last_committed_batch == 1796036235000  # batch ids of DStream jobs: batch times in ms
    assert info.committed is not None and info.committed.end_offsets_json() == [{"offset": 330}]
    assert info.in_flight_batch is None  # the newest graph file is the last completed batch's
    facts = info.dstream
    assert facts.graph_times == (1796036231000, 1796036232000, 1796036233000, 1796036234000, 1796036235000)
    assert facts.backup_times == facts.graph_times  # each graph written twice: generated, then completed
    assert facts.completed[0] == 1796036221000 and len(facts.completed) == 15
    assert [f.split("/")[1] for f in facts.rdd_folders] == ["rdd-294"]  # the state, pickled
    report = info.to_json()
    assert report["engine"] == "dstream" and report["dstream"]["not_readable_without_a_jvm"]
    assert report["last_committed_batch"] == 1796036235000


def test_a_generated_batch_without_a_record_is_in_flight(tmp_path: Path) -> None:
    checkpoint = copy(tmp_path)
    (checkpoint / "checkpoint-1796036236000").write_bytes(b"graph")
    info = inspect_checkpoint(checkpoint)
    assert info.last_committed_batch == 1796036235000 and info.in_flight_batch == 1796036236000


def test_a_context_before_its_first_batch_is_an_empty_dstream_checkpoint(tmp_path: Path) -> None:
    checkpoint = tmp_path / "checkpoint"
    (checkpoint / "579a065d-7271-4adb-8f6f-2584b18cfe70").mkdir(parents=True)
    (checkpoint / "temp").write_bytes(b"")
    info = inspect_checkpoint(checkpoint)
    assert info.engine == "dstream" and info.last_committed_batch is None and info.in_flight_batch is None


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda c: (c / "acp-batches" / "1796036235000.json").write_text("{not json"), "not JSON"),
        (lambda c: (c / "acp-batches" / "1796036235000.json").write_text('{"batch": "x"}'), "whole-number"),
        (lambda c: (c / "acp-batches" / "1796036235000.json").write_text('{"batch": 1}'), "end offsets"),
        (lambda c: (c / "acp-batches" / "1796036235000.json").write_bytes(b"\xff\xfe"), "UTF-8"),
        (lambda c: _replace_with_folder(c / "acp-batches" / "1796036235000.json"), "folder"),
        (lambda c: _replace_with_folder(c / "checkpoint-1796036235000"), "folder"),
        (lambda c: [p.unlink() for p in c.glob("checkpoint-*")], "Spark cannot restore"),
    ],
)
def test_damaged_dstream_checkpoints_get_typed_errors(tmp_path: Path, damage, message: str) -> None:  # type: ignore[no-untyped-def]
    checkpoint = copy(tmp_path)
    damage(checkpoint)
    with pytest.raises(CorruptCheckpointError, match=message) as raised:
        inspect_checkpoint(checkpoint)
    assert str(checkpoint) in str(raised.value)


def _replace_with_folder(path: Path) -> None:
    path.unlink()
    path.mkdir()


def test_records_are_written_atomically_and_pruned(tmp_path: Path) -> None:
    checkpoint = Location.of(tmp_path / "checkpoint")
    for t in range(1000, 1010):
        dstream.write_batch(checkpoint, dstream.BatchRecord(t, [{"offset": t}], records=1), keep=4)
    assert dstream.batch_times(checkpoint) == [1006, 1007, 1008, 1009]
    assert dstream.read_batch(checkpoint, 1009).end_offsets == [{"offset": 1009}]
    assert not [p for p in (tmp_path / "checkpoint" / "acp-batches").iterdir() if p.suffix == ".tmp"]


def test_the_cli_inspects_a_dstream_checkpoint() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow_checkpoint_provider.cli", "inspect", str(FIXTURE), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["engine"] == "dstream" and report["last_committed_batch"] == 1796036235000


def test_an_empty_folder_is_still_refused_without_allow_empty(tmp_path: Path) -> None:
    (tmp_path / "checkpoint").mkdir()
    with pytest.raises(EmptyCheckpointError):
        inspect_checkpoint(tmp_path / "checkpoint")
