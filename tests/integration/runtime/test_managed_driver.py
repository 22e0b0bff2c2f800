"""The managed runtime in real spark-submit drivers under continuous input: kill -9 and resume, a redeploy
from a snapshot with crashes in batch 0 and mid-batch, graceful stop by fence and by gate, fencing."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from airflow_checkpoint_provider.checkpoint.inspector import inspect_checkpoint
from tests.support.counting import fold_log, max_since, partial_batches, sink_rows, sink_totals
from tests.support.drivers import Job, Producer
from tests.support.processes import kill_group, wait_for

pytestmark = pytest.mark.spark
LEASE_EXPIRY_S = 6  # the test specs use a 5 s lease: a kill -9'd driver's lock is free after that


def stop_and_check(job: Job, generation: int, proc, log, method: str = "fence") -> int:  # type: ignore[no-untyped-def]
    """Request a graceful stop, wait for exit 0, check the acknowledgement against the checkpoint; return the
    last committed end offset."""
    job.request_stop(generation)
    assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
    ack = job.root.read_stop_ack(generation)
    assert ack is not None and ack.outcome == "stopped" and ack.method == method
    info = inspect_checkpoint(job.root.checkpoint(generation))
    assert ack.final_committed_batch == info.last_committed_batch
    assert ack.end_offsets == info.committed.end_offsets_json()  # type: ignore[union-attr]
    status = job.status(generation)
    assert status is not None and status.state == "STOPPED"
    print(
        json.dumps(
            {
                "generation": generation,
                "method": method,
                "stop_latency_s": ack.stop_latency_s,
                "final_batch": ack.final_committed_batch,
                "in_flight": ack.in_flight_batch,
            }
        )
    )
    return int(ack.end_offsets[0]["offset"])  # type: ignore[index]


def test_kill_9_resume_and_graceful_stop(run_dir: Path) -> None:
    job = Job(run_dir / "managed-resume", run_dir)
    job.set_current(1)
    spec = job.spec(1, code_version="v1")
    with Producer(job.events):
        proc, log = job.launch("v1", spec)
        try:
            job.wait_committed(1, 2, proc, log)
            first = job.status(1)
            assert first is not None and first.start_mode == "first"
        finally:
            kill_group(proc)  # kill -9, mid-stream
        time.sleep(LEASE_EXPIRY_S)
        proc, log = job.launch("v1", spec)
        try:
            wait_for(
                lambda: (
                    (s := job.status(1)) is not None and s.start_mode == "resume" and s.state == "RUNNING"
                ),
                240,
                "the restarted driver to resume",
                proc,
                log,
            )
            resumed = job.status(1)
            assert resumed is not None and resumed.snapshot is None
            assert "initial state is not loaded" in str(resumed.start_reason)
            assert resumed.query_id == first.query_id and resumed.run_id != first.run_id
            time.sleep(2)
            end = stop_and_check(job, 1, proc, log)
        finally:
            kill_group(proc)
    assert (
        inspect_checkpoint(job.root.checkpoint(1)).in_flight_batch is None
    )  # the fence leaves nothing planned
    assert partial_batches(job.output) == []
    assert sink_totals(job.output) == fold_log(job.events, end)


def test_redeploy_from_snapshot_survives_crashes_in_batch_0_and_mid_batch(run_dir: Path) -> None:
    """v1 -> stop -> snapshot (spark-submit exporter) -> v2 fresh from it; kill -9 inside batch 0, restart
    with the same arguments (fresh again: nothing was committed), kill -9 mid-batch later, restart (resume, no
    initial state). Per-key totals equal the event log exactly; v2's max covers exactly the events since the
    snapshot."""
    job = Job(run_dir / "managed-redeploy", run_dir)
    job.set_current(1)
    with Producer(job.events):
        proc, log = job.launch("v1", job.spec(1, code_version="v1"))
        try:
            job.wait_committed(1, 1, proc, log)
            stopped_at = stop_and_check(job, 1, proc, log)
        finally:
            kill_group(proc)
        snap = job.export(1, "--code-version", "v1")
        assert snap["end_offsets"] == [{"offset": stopped_at}]
        job.set_current(2)
        spec = job.spec(2, code_version="v2", snapshot=str(snap["snapshot_id"]))
        slow = ("--slow-batch-seconds", "2")

        proc, log = job.launch("v2", spec, *slow)
        try:
            wait_for(lambda: job.in_flight(2) == 0, 240, "batch 0 of generation 2 to be planned", proc, log)
        finally:
            kill_group(proc)  # inside batch 0: planned, not committed
        assert job.committed(2) == -1 and job.in_flight(2) == 0
        # and a torn write, as a kill inside Spark's atomic write of offsets/0 leaves it (the 1201 campaign)
        (Path(job.root.checkpoint(2).uri) / "offsets" / ".1.5f0c2a9e-torn.tmp").write_text("v1\n")
        time.sleep(LEASE_EXPIRY_S)

        killed = job.status(2)
        assert killed is not None and killed.start_mode == "fresh_from_snapshot"
        proc, log = job.launch("v2", spec, *slow)
        try:
            wait_for(  # its decision, not its first "starting" report (which has no start mode yet)
                lambda: (
                    (s := job.status(2)) is not None
                    and s.driver_id != killed.driver_id
                    and s.start_mode is not None
                ),
                240,
                "the restarted driver's start decision",
                proc,
                log,
            )
            again = job.status(2)
            assert again is not None and again.start_mode == "fresh_from_snapshot"
            assert (
                "re-running planned batch 0" in str(again.start_reason)
                and again.snapshot == snap["snapshot_id"]
            )
            assert again.starting_offsets == [
                {"offset": stopped_at}
            ]  # the same numeric offsets on every attempt
            job.wait_committed(2, 2, proc, log)
            # the killed attempt's checkpoint was set aside: Spark refuses to re-run batch 0 of
            # transformWithState with an initial state on a checkpoint where it was planned
            assert "set aside" in str((job.status(2) or again).start_reason)
            assert [e.name for e in job.root.discarded_dir(2).list_or_empty()], "nothing was set aside"
            job.wait_in_flight(2, proc, log)
        finally:
            kill_group(proc)  # mid-batch, after commits
        time.sleep(LEASE_EXPIRY_S)

        proc, log = job.launch("v2", spec, *slow)
        try:
            before = job.committed(2)
            wait_for(lambda: job.committed(2) > before, 240, "the resumed driver to commit", proc, log)
            resumed = job.status(2)
            assert resumed is not None and resumed.start_mode == "resume" and resumed.snapshot is None
            assert "initial state is not loaded" in str(resumed.start_reason)
            end = stop_and_check(job, 2, proc, log)
        finally:
            kill_group(proc)
    assert partial_batches(job.output) == []
    assert sink_totals(job.output) == fold_log(job.events, end)
    v2_rows = sink_rows(job.output, generation=2)
    assert {k: r["max"] for k, r in v2_rows.items()} == max_since(job.events, stopped_at, end)
    record = job.root.read_generation_record(2)
    assert record is not None and record["snapshot"] == snap["snapshot_id"]


def test_second_driver_is_refused_and_a_superseded_driver_stops_itself(run_dir: Path) -> None:
    job = Job(run_dir / "managed-fencing", run_dir)
    job.set_current(1)
    spec = job.spec(1)
    with Producer(job.events):
        proc, log = job.launch("v1", spec, "--slow-batch-seconds", "3")
        try:
            job.wait_committed(1, 1, proc, log)
            # a stop that cannot finish in time, with the default on_timeout=keep_running: acknowledged as
            # timed out, and the driver goes on (nothing is killed unless the caller asks for force_stop)
            job.wait_in_flight(1, proc, log)
            late = job.request_stop(1, timeout_s=0.5)
            wait_for(
                lambda: (a := job.root.read_stop_ack(1)) is not None and a.request_id == late.request_id,
                60,
                "the timed-out acknowledgement",
                proc,
                log,
            )
            ack = job.root.read_stop_ack(1)
            assert ack is not None and ack.outcome == "timed_out" and ack.in_flight_batch is not None
            wait_for(
                lambda: (s := job.status(1)) is not None and s.state == "RUNNING",
                30,
                "RUNNING again",
                proc,
                log,
            )
            second, second_log = job.launch("v1", spec)
            assert second.wait(timeout=180) == 1
            text = second_log.read_text()
            assert (
                "FencedError" in text
                and "another live driver" in text
                and "refusing to start a second" in text
            )
            assert proc.poll() is None  # the live one is unaffected
            status = job.status(1)
            assert status is not None and status.state == "RUNNING"
            job.set_current(2)  # a redeploy moved on: generation 1 is superseded
            assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]
        finally:
            kill_group(proc)
        final = job.committed(1)
        stopped = job.status(1)
        assert stopped is not None and stopped.state == "STOPPED" and "superseded" in str(stopped.error)
        time.sleep(3)
        assert job.committed(1) == final  # no further batch after it stopped
        # and it cannot be started again on the superseded generation
        again, again_log = job.launch("v1", spec)
        assert again.wait(timeout=180) == 1
        assert "is not the job's current generation (2)" in again_log.read_text()


def test_a_driver_that_outlived_its_lease_stops_itself_when_another_took_its_lock(run_dir: Path) -> None:
    """Promise 5 against a zombie: a driver frozen (SIGSTOP) past its 5 s lease while its process still
    exists; a second driver of the same generation takes the lock over and resumes. Thawed, the first finds
    the lock taken and stops itself (exit 3) without writing status or answering; the second runs on; the
    totals are exact."""
    job = Job(run_dir / "managed-takeover", run_dir)
    job.set_current(1)
    with Producer(job.events):
        first, first_log = job.launch("v1", job.spec(1, launch_id="first"))
        second = None
        try:
            job.wait_committed(1, 1, first, first_log)
            frozen = job.status(1)
            assert frozen is not None
            os.killpg(first.pid, signal.SIGSTOP)
            time.sleep(LEASE_EXPIRY_S)
            second, second_log = job.launch("v1", job.spec(1, launch_id="second"))
            wait_for(
                lambda: (s := job.status(1)) is not None and s.launch_id == "second" and s.state == "RUNNING",
                240,
                "the second driver to take over",
                second,
                second_log,
            )
            assert "taking over the driver lock of a dead driver" in second_log.read_text()
            # thawed once the second is ahead: the first's next batch then collides with the second's offsets
            # log (Spark refuses a second writer) — or the first sees the lock at its next heartbeat
            job.wait_committed(1, (frozen.last_committed_batch or 0) + 1, second, second_log)
            taken_at = job.committed(1)
            os.killpg(first.pid, signal.SIGCONT)
            assert first.wait(timeout=120) == 3, first_log.read_text()[-3000:]
            assert "took over after this driver's lease ran out" in first_log.read_text()
            wait_for(
                lambda: job.committed(1) > taken_at + 1,
                120,
                "the second driver to commit",
                second,
                second_log,
            )
            status = job.status(1)
            assert status is not None and status.launch_id == "second" and status.state == "RUNNING", status
            assert second.poll() is None
            end = stop_and_check(job, 1, second, second_log)
        finally:
            kill_group(first)
            if second is not None:
                kill_group(second)
    assert partial_batches(job.output) == []
    assert sink_totals(job.output) == fold_log(job.events, end)


def test_gate_stop_for_any_source_then_resume(run_dir: Path) -> None:
    """A source without a fence: the foreachBatch gate refuses the next batch before touching it. That batch
    stays planned (like after a crash) and is re-run with the same offsets on resume: still exact."""
    job = Job(run_dir / "managed-gate", run_dir)
    job.set_current(1)
    spec = job.spec(1)
    gate = ("--stop-method", "gate")
    with Producer(job.events):
        proc, log = job.launch("v1", spec, *gate)
        try:
            job.wait_committed(1, 2, proc, log)
            end = stop_and_check(job, 1, proc, log, method="gate")
        finally:
            kill_group(proc)
        assert partial_batches(job.output) == []
        assert sink_totals(job.output) == fold_log(job.events, end)
        proc, log = job.launch("v1", spec, *gate)
        try:
            before = job.committed(1)
            wait_for(lambda: job.committed(1) > before + 1, 240, "the resumed driver to commit", proc, log)
            status = job.status(1)
            assert status is not None and status.start_mode == "resume"
            end = stop_and_check(job, 1, proc, log, method="gate")
        finally:
            kill_group(proc)
    assert partial_batches(job.output) == []
    assert sink_totals(job.output) == fold_log(job.events, end)


def test_a_stop_between_triggers_does_not_wait_for_the_next_trigger(run_dir: Path) -> None:
    """A query with a long trigger interval (11.6 days) is idle after batch 0 when the stop comes: the driver
    fences its source on the source's behalf at the committed end, so the stop is acknowledged at that
    boundary instead of at the next trigger (which alone would have let the source see the request). The
    events written meanwhile stay unread; the sink equals the log up to the final batch's end."""
    job = Job(run_dir / "managed-long-trigger", run_dir)
    job.set_current(1)
    spec = job.spec(1)
    with Producer(job.events):
        # Spark fires a processing-time trigger at the next multiple of its interval since the epoch
        # (ProcessingTimeExecutor.nextBatchTime), not an interval after the last one: with 600 s, a run that
        # straddled such a multiple committed batch 1 before the stop (a full run, 2026-12-02: the stop was
        # acknowledged 9 s after one). A multiple of 1,000,000 s is 11.6 days from the last.
        proc, log = job.launch("v1", spec, "--trigger-seconds", "1000000")
        try:
            job.wait_committed(1, 0, proc, log)
            wait_for(
                lambda: (s := job.status(1)) is not None and s.state == "RUNNING",
                120,
                "the driver to report batch 0",
                proc,
                log,
            )
            time.sleep(1)  # more events arrive; the next trigger is days away
            end = stop_and_check(job, 1, proc, log)
        finally:
            kill_group(proc)
    ack = job.root.read_stop_ack(1)
    assert ack is not None and ack.final_committed_batch == 0 and ack.in_flight_batch is None
    fences = [json.loads(f.read_text()) for f in Path(job.root.control_dir(1).path).glob("fence-*.json")]
    assert [(f["by"], f["offset"], f["request_id"]) for f in fences] == [("driver", end, ack.request_id)]
    assert fold_log(job.events) != fold_log(job.events, end)  # events arrived after the fence
    assert partial_batches(job.output) == []
    assert sink_totals(job.output) == fold_log(job.events, end)
