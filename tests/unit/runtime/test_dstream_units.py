"""The pure parts of the DStream engine and the shared protocol: the start rule, the publisher, the code
digest that refuses a resume with changed code."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot
from airflow_checkpoint_provider.checkpoint.storage import Location
from airflow_checkpoint_provider.exceptions import CodeChangedError
from airflow_checkpoint_provider.model.decisions import StartMode, decide_dstream_start
from airflow_checkpoint_provider.model.launch import LaunchSpec
from airflow_checkpoint_provider.runtime.driver import application_files, check_code, code_digest
from airflow_checkpoint_provider.runtime.dstreams import Publisher, batch_ms, parse_segment_name, segment_name
from airflow_checkpoint_provider.runtime.eventlog import EventLogWriter


@pytest.mark.parametrize(
    ("completed", "graph", "snapshot", "mode", "load", "in_flight", "says"),
    [
        (None, None, None, StartMode.FIRST, False, None, "empty state"),
        (None, None, "s1", StartMode.FRESH_FROM_SNAPSHOT, True, None, "loaded as initialRDD"),
        # the first batch was generated (graph file) but never completed: set aside, re-run with the snapshot
        (None, 5000, "s1", StartMode.FRESH_FROM_SNAPSHOT, True, 5000, "set aside and re-run"),
        (None, 5000, None, StartMode.FIRST, False, 5000, "set aside and re-run"),
        # a completed batch: resume, never the initialRDD again — with or without a snapshot
        (4000, 4000, "s1", StartMode.RESUME, False, None, "not applied again"),
        (4000, 6000, None, StartMode.RESUME, False, 6000, "will be re-run"),
    ],
)
def test_dstream_start_rule(completed, graph, snapshot, mode, load, in_flight, says) -> None:  # type: ignore[no-untyped-def]
    decision = decide_dstream_start(
        generation=2, last_completed_batch=completed, latest_graph_checkpoint=graph, snapshot=snapshot
    )
    assert (decision.mode, decision.load_initial_state, decision.in_flight_batch) == (mode, load, in_flight)
    assert says in decision.reason and "generation 2" in decision.reason


def test_segment_names_round_trip() -> None:
    assert parse_segment_name(segment_name(0, 185)) == (0, 185)
    for bad in (
        "0-1.jsonl",
        f".{segment_name(0, 1)}.tmp",
        segment_name(0, 1) + ".x",
        "x" * 20 + "-" + "1" * 20,
    ):
        assert parse_segment_name(bad) is None


def test_the_publisher_copies_the_log_in_order_and_resumes_after_its_last_segment(tmp_path: Path) -> None:
    log = tmp_path / "events"
    with EventLogWriter(str(log), segment_records=7) as writer:
        writer.append({"key": f"k{i % 3}", "value": i} for i in range(25))
    folder = Location.of(tmp_path / "input")
    publisher = Publisher(str(log), folder, start=5, max_records=8)
    assert [publisher.publish_once() for _ in range(4)] == [8, 8, 4, 0]
    names = sorted(p.name for p in (tmp_path / "input").iterdir())
    assert names == [segment_name(5, 13), segment_name(13, 21), segment_name(21, 25)]
    offsets = [json.loads(line)["offset"] for n in names for line in (tmp_path / "input" / n).open()]
    assert offsets == list(range(5, 25))  # contiguous, each record once, with its offset
    (tmp_path / "input" / f".{segment_name(25, 30)}.tmp").write_text("torn")  # a publisher died mid-write
    again = Publisher(str(log), folder, start=5)
    assert again.next == 25 and not list((tmp_path / "input").glob(".*"))  # the hidden leftover is gone


def test_batch_times_from_foreach_rdd() -> None:
    from datetime import datetime

    assert batch_ms(datetime.fromtimestamp(1796036235.0)) == 1796036235000
    assert batch_ms(1796036235000) == 1796036235000


def test_the_code_digest_covers_the_main_script_and_the_modules_beside_it(tmp_path: Path) -> None:
    app = tmp_path / "apps"
    app.mkdir()
    (app / "main.py").write_text("print('v1')\n")
    (app / "helper.py").write_text("def f():\n    return 1\n")
    helper = types.ModuleType("helper")
    helper.__file__ = str(app / "helper.py")
    elsewhere = types.ModuleType("json_like")
    elsewhere.__file__ = json.__file__  # an installed or standard module: not the application's
    files = application_files(str(app / "main.py"), [helper, elsewhere, sys])
    assert files == [app / "helper.py", app / "main.py"]
    before = code_digest(files)
    (app / "helper.py").write_text("def f():\n    return 2\n")  # a function changed, the label did not
    assert code_digest(files) != before and before is not None and before.startswith("sha256:")
    assert code_digest([]) is None


def test_a_resume_with_changed_code_is_refused_naming_both_versions(tmp_path: Path) -> None:
    root = JobRoot(tmp_path / "job")
    spec = LaunchSpec(job_root=str(tmp_path / "job"), generation=3, code_version="counter-v1")
    resume = decide_dstream_start(
        generation=3, last_completed_batch=10, latest_graph_checkpoint=10, snapshot=None
    )
    fresh = decide_dstream_start(
        generation=3, last_completed_batch=None, latest_graph_checkpoint=None, snapshot=None
    )
    record = {"code_digest": "sha256:" + "a" * 64, "code_version": "counter-v1"}
    check_code(root, spec, resume, record, "sha256:" + "a" * 64)  # the same code: fine
    check_code(root, spec, fresh, record, "sha256:" + "b" * 64)  # a fresh start: no checkpoint to mismatch
    check_code(root, spec, resume, {}, "sha256:" + "b" * 64)  # nothing recorded (older generation): fine
    with pytest.raises(CodeChangedError) as raised:
        check_code(root, spec, resume, record, "sha256:" + "b" * 64)
    text = str(raised.value)
    assert "label is unchanged" in text and "counter-v1" in text and "sha256:aaaaaaaaaaaa" in text
    assert "sha256:bbbbbbbbbbbb" in text and "job=job" in text and "generation=3" in text


def test_the_engine_holds_the_last_recorded_batch_and_records_nothing_once_halted(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from airflow_checkpoint_provider.checkpoint import dstream as records
    from airflow_checkpoint_provider.runtime.dstreams import DStreamEngine

    root = JobRoot(tmp_path / "job")
    records.write_batch(root.checkpoint(1), records.BatchRecord(3000, [{"offset": 30}]))
    ctx = SimpleNamespace(root=root, generation=1, ssc=SimpleNamespace(stop=lambda **_: None))
    publisher = SimpleNamespace(stop=lambda: None, next=30)
    engine = DStreamEngine(ctx, publisher, SimpleNamespace(), start=0)  # type: ignore[arg-type]
    for t in range(1000, 11000, 1000):  # batches queued behind a stop keep handing over their state
        engine.remember("counts", "n BIGINT", "STRING", t, f"rdd-{t}")
    assert 3000 in engine.states["counts"] and len(engine.states["counts"]) == 5  # the last 4 + batch 3000
    # everything published is in batch 3000, but an earlier driver recorded it: this one holds no state of it
    assert not engine.at_boundary(None)  # type: ignore[arg-type]
    engine.recorded_here = True  # one batch recorded by this driver: it holds the last recorded state
    assert engine.at_boundary(None)  # type: ignore[arg-type]
    engine.halt(graceful=True)
    engine.commit(12000, None)  # a callback still running after the stop records nothing
    engine.remember("counts", "n BIGINT", "STRING", 12000, "rdd-late")
    assert records.batch_times(root.checkpoint(1)) == [3000] and 12000 not in engine.states["counts"]
