"""The managed DStream runtime (updateStateByKey + initialRDD) in real spark-submit drivers under continuous
input: kill -9 mid-batch and resume, changed code refused on resume, a crash before Spark can restore the
context (replayed), a crash in a fresh generation's first batch (set aside and re-run with the snapshot once),
and a migration off DStreams (a DStream snapshot seeds the Structured Streaming counter). Exact per-key totals
against the event log at every end."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from airflow_checkpoint_provider.checkpoint.inspector import inspect_checkpoint
from airflow_checkpoint_provider.checkpoint.snapshots import SnapshotCatalogue, verify_snapshot
from tests.support.counting import fold_log, partial_batches, sink_totals
from tests.support.drivers import APPS, Job, Producer
from tests.support.pace import DSTREAM_BATCH_S
from tests.support.processes import kill_group, spark_submit, wait_for

pytestmark = pytest.mark.spark
LEASE_EXPIRY_S = 6
DSTREAM_ARGS = ("--trigger-seconds", DSTREAM_BATCH_S)


def completed(job: Job, generation: int) -> tuple[int, ...]:
    facts = inspect_checkpoint(job.root.checkpoint(generation), allow_empty=True).dstream
    return facts.completed if facts is not None else ()


def graph_files(job: Job, generation: int) -> tuple[int, ...]:
    facts = inspect_checkpoint(job.root.checkpoint(generation), allow_empty=True).dstream
    return facts.graph_times if facts is not None else ()


def stop(job: Job, generation: int, proc, log, snapshot: bool = False) -> tuple[int, str | None]:  # type: ignore[no-untyped-def]
    """Graceful stop; returns the acknowledged end offset and the snapshot exported on stop. A resumed
    context first runs the batches of its downtime, one per interval: on a slow 2-core machine the stop took
    over 60 s after a resume, so the request allows 150 s."""
    job.request_stop(generation, snapshot=snapshot, timeout_s=150)
    try:
        assert proc.wait(timeout=240) == 0, log.read_text()[-3000:]
    finally:
        kill_group(proc)
    ack = job.root.read_stop_ack(generation)
    assert ack is not None and ack.outcome == "stopped" and ack.method == "fence"
    info = inspect_checkpoint(job.root.checkpoint(generation))
    assert info.engine == "dstream" and ack.final_committed_batch == info.last_committed_batch
    assert ack.end_offsets == info.committed.end_offsets_json()  # type: ignore[union-attr]
    return int(ack.end_offsets[0]["offset"]), ack.snapshot_id  # type: ignore[index]


def wait_past_first_state_checkpoint(job: Job, generation: int, proc, log) -> None:  # type: ignore[no-untyped-def]
    """Wait for 12 s of completed batch time: past Spark's first state checkpoint (every 10 s of batch time),
    so a resume restores the graph and its state and needs no initialRDD."""
    wait_for(
        lambda: len(c := completed(job, generation)) > 1 and c[-1] - c[0] >= 12_000,
        300,
        f"12 s of g{generation}'s completed batches",
        proc,
        log,
    )


def first_generation_snapshot(job: Job, batches: int) -> str:
    """Run generation 1 of the DStream counter for ``batches`` completed batches, stop it with a snapshot,
    and return the snapshot's id (the caller's producer keeps writing)."""
    job.set_current(1)
    proc, log = job.launch("dv1", job.spec(1, code_version="dstream-counter-v1"), *DSTREAM_ARGS)
    try:
        wait_for(lambda: len(completed(job, 1)) >= batches, 300, f"{batches} completed batches", proc, log)
    except BaseException:
        kill_group(proc)
        raise
    _, snapshot = stop(job, 1, proc, log, snapshot=True)
    assert snapshot is not None
    return snapshot


def test_kill_9_mid_batch_resumes_exactly_and_changed_code_is_refused(run_dir: Path) -> None:
    job = Job(run_dir / "dstream-resume", run_dir)
    job.set_current(1)
    spec = job.spec(1, code_version="dstream-counter-v1")
    with Producer(job.events, per_tick=5, tick_s=0.2):
        # (no slow batches: the restored graph would keep them — its closures are restored with it)
        proc, log = job.launch("dv1", spec, *DSTREAM_ARGS)
        try:
            wait_past_first_state_checkpoint(job, 1, proc, log)
            wait_for(
                lambda: inspect_checkpoint(job.root.checkpoint(1)).in_flight_batch is not None,
                60,
                "a batch generated but not completed",
                proc,
                log,
            )
        finally:
            kill_group(proc)  # kill -9 mid-batch
        before = completed(job, 1)[-1]
        time.sleep(LEASE_EXPIRY_S)

        # the same label, one function changed: getOrCreate would silently run the old graph; we refuse
        changed = run_dir / "dstream-changed" / "dstream_counter_v1.py"
        changed.parent.mkdir(parents=True, exist_ok=True)
        source = (
            APPS["dv1"].read_text().replace("return n + len(values), total + sum(values)", "return n, total")
        )
        assert source != APPS["dv1"].read_text()
        changed.write_text(source)
        refused_log = job.work / "driver-changed.log"
        refused = spark_submit(
            changed,
            *spec.to_args(),
            "--",
            "--events",
            str(job.events),
            "--output",
            str(job.output),
            *DSTREAM_ARGS,
            run_dir=job.run_dir,
            log=refused_log,
        )
        assert refused.wait(timeout=180) == 1
        text = refused_log.read_text()
        assert "CodeChangedError" in text and "label is unchanged" in text, text[-3000:]
        assert "job=counter" in text and "generation=1" in text and "dstream-counter-v1" in text
        assert completed(job, 1)[-1] == before  # nothing ran

        proc, log = job.launch("dv1", spec, *DSTREAM_ARGS)
        try:
            wait_for(
                lambda: completed(job, 1)[-1] > before + 3000, 300, "batches after the resume", proc, log
            )
            status = job.status(1)
            assert status is not None and status.start_mode == "resume", status
            assert "initial state is not applied again" in (status.start_reason or "")
        except BaseException:
            kill_group(proc)
            raise
    end, _ = stop(job, 1, proc, log)
    assert partial_batches(job.output) == []
    assert sink_totals(job.output) == fold_log(job.events, end)


def test_first_batch_crash_replay_and_migration_off_dstreams(run_dir: Path) -> None:
    job = Job(run_dir / "dstream-fresh", run_dir)
    with Producer(job.events, per_tick=5, tick_s=0.2):
        first_snapshot = first_generation_snapshot(job, 3)
        verify_snapshot(job.root, first_snapshot)

        # generation 2 from the snapshot (its initialRDD); its first batch crashes (kill -9 inside it)
        job.set_current(2)
        g2 = job.spec(2, code_version="dstream-counter-v1", snapshot=first_snapshot)
        proc, log = job.launch("dv1", g2, *DSTREAM_ARGS, "--slow-batch-seconds", "60")
        try:
            wait_for(lambda: bool(graph_files(job, 2)), 240, "g2's first batch generated", proc, log)
            assert completed(job, 2) == ()
        finally:
            kill_group(proc)
        time.sleep(LEASE_EXPIRY_S)
        proc, log = job.launch("dv1", g2, *DSTREAM_ARGS)
        try:
            # re-run fresh with the snapshot once: nothing of the crashed attempt counted
            wait_for(lambda: len(completed(job, 2)) >= 1, 300, "g2's first completed batch", proc, log)
            status = job.status(2)
            assert status is not None and status.start_mode == "fresh_from_snapshot", status
            assert "set aside and re-run" in (status.start_reason or "")
            killed = status.driver_id
        finally:
            # right after the first completed batch, before Spark's first state checkpoint (10 s of batch
            # time): Spark cannot restore this context without its initialRDD
            kill_group(proc)
        time.sleep(LEASE_EXPIRY_S)
        proc, log = job.launch("dv1", g2, *DSTREAM_ARGS)
        try:
            wait_for(
                lambda: (s := job.status(2)) is not None and s.driver_id != killed and s.state == "RUNNING",
                240,
                "g2 restarted",
                proc,
                log,
            )
            status = job.status(2)
            assert status is not None and status.start_mode == "fresh_from_snapshot", status
            assert "replaying generation 2" in (status.start_reason or "") and "initialRDD" in (
                status.start_reason or ""
            )
            assert len(job.root.discarded_dir(2).list_or_empty()) == 2  # both attempts kept, none deleted
            wait_for(lambda: len(completed(job, 2)) >= 3, 300, "g2 batches after the replay", proc, log)
        except BaseException:
            kill_group(proc)
            raise
        _, second_snapshot = stop(job, 2, proc, log, snapshot=True)
        assert second_snapshot is not None
        assert SnapshotCatalogue(job.root).entry(second_snapshot).generation == 2

        # off DStreams: the Structured Streaming counter v1 starts from the DStream snapshot
        job.set_current(3)
        proc, log = job.launch("v1", job.spec(3, code_version="event-counter-v1", snapshot=second_snapshot))
        try:
            job.wait_committed(3, 2, proc, log)
        except BaseException:
            kill_group(proc)
            raise
        job.request_stop(3)
        assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
    ack = job.root.read_stop_ack(3)
    assert ack is not None and ack.outcome == "stopped"
    end = int(ack.end_offsets[0]["offset"])  # type: ignore[index]
    assert partial_batches(job.output) == []
    assert sink_totals(job.output) == fold_log(job.events, end)


def test_a_seeded_generation_resumes_twice(run_dir: Path) -> None:
    """A generation seeded with an initialRDD survives two kill -9s in a row. Before the fix, the second
    resume failed in ``ssc.start()`` (a Python accumulator restored twice from the graph has no host)."""
    job = Job(run_dir / "dstream-twice", run_dir)
    with Producer(job.events, per_tick=5, tick_s=0.2):
        snapshot = first_generation_snapshot(job, 2)
        job.set_current(2)
        g2 = job.spec(2, code_version="dstream-counter-v1", snapshot=snapshot)
        proc, log = job.launch("dv1", g2, *DSTREAM_ARGS)
        try:
            wait_past_first_state_checkpoint(job, 2, proc, log)
        finally:
            kill_group(proc)
        for attempt in (1, 2):
            before = completed(job, 2)[-1]
            time.sleep(LEASE_EXPIRY_S)
            proc, log = job.launch("dv1", g2, *DSTREAM_ARGS)
            try:
                wait_for(
                    lambda before=before: completed(job, 2)[-1] > before + 2000,  # type: ignore[misc]
                    300,
                    f"batches after resume {attempt}",
                    proc,
                    log,
                )
                status = job.status(2)
                assert status is not None and status.start_mode == "resume", status
            except BaseException:
                kill_group(proc)
                raise
            if attempt == 1:
                kill_group(proc)
    end, _ = stop(job, 2, proc, log)
    assert partial_batches(job.output) == []
    assert sink_totals(job.output) == fold_log(job.events, end)
