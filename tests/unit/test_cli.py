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
