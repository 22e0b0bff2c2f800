"""The lifecycle operators and sensors in real DAG runs (``dag.test()``) against real local Spark drivers:
first start, a redeploy v1 -> v2 through stop / snapshot / cleanup / start-from-snapshot, then the failure
path on the new generation (kill -9 brought back by the health callback, then by a start-task retry), a
restart in place with new settings (``settings="apply"``), exact totals."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from airflow_checkpoint_provider.checkpoint.inspector import CheckpointReader, inspect_checkpoint
from airflow_checkpoint_provider.checkpoint.ledger import JobLedger
from airflow_checkpoint_provider.checkpoint.snapshots import read_manifest
from tests.support.counting import fold_log, partial_batches, sink_totals
from tests.support.drivers import Job, Producer
from tests.support.lifecycle import kill_current_driver, kill_drivers, params, run, states, xcom
from tests.support.processes import wait_for

pytestmark = [pytest.mark.spark, pytest.mark.airflow]


def test_first_start_then_redeploy_v1_to_v2_exact_totals(
    run_dir: Path, airflow_db: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from tests.dags import acp_lifecycle_test_dags as dags

    job = Job(run_dir / "airflow-redeploy", run_dir)
    try:
        with Producer(job.events):
            first = run(dags.start_dag, **params(job, run_dir, "v1"))
            assert first.state == "success", states(first)
            started = xcom(first, "start")
            assert started["generation"] == 1 and started["mode"] == "first" and not started["reconnected"]
            assert JobLedger(job.root).read().lease is None  # the start released the run's lease
            snapshot_of_the_running_job(job, run_dir, dags)

            redeploy = run(dags.redeploy_dag, **params(job, run_dir, "v2"))
            assert redeploy.state == "success", states(redeploy)
            stopped = xcom(redeploy, "stop")
            assert stopped["outcome"] == "stopped" and stopped["generation"] == 1
            snapshot_id = xcom(redeploy, "snapshot")
            assert snapshot_id.endswith(f"-g1-b{stopped['final_committed_batch']}")
            restarted = xcom(redeploy, "start")
            assert restarted["generation"] == 2 and restarted["mode"] == "fresh_from_snapshot"
            record1 = job.root.read_generation_record(1) or {}
            assert (
                record1.get("retired_at")
                and record1.get("final_committed_batch") == stopped["final_committed_batch"]
            )
            assert job.root.checkpoint(1).exists()  # retired in place, never moved
            assert JobLedger(job.root).read().current_generation == 2
            recover_twice(job, run_dir, dags)
            slower = params(job, run_dir, "v2", slow_batch_seconds="0.2")
            restart_with_new_settings(job, run_dir, dags, slower, capfd)

            last = run(dags.stop_dag, **slower)
            assert last.state == "success", states(last)
            final = xcom(last, "stop")
            assert final["outcome"] == "stopped" and final["generation"] == 2
    finally:
        kill_drivers(job.path)
    end = int(final["end_offsets"][0]["offset"])
    info = inspect_checkpoint(job.root.checkpoint(2))
    assert info.last_committed_batch == final["final_committed_batch"]
    assert partial_batches(job.output) == []
    assert sink_totals(job.output) == fold_log(job.events, end)


def snapshot_of_the_running_job(job: Job, run_dir: Path, dags: Any) -> None:
    """The running driver exports the snapshot itself when asked (no exporter application): its answer
    names the snapshot, the snapshot is of the batch the operator pinned, with that batch's offsets, and the
    job runs on."""
    wait_for(lambda: job.committed(1) >= 1, 240, "v1 to commit batch 1")
    taken = run(dags.snapshot_running_dag, **params(job, run_dir, "v1"))
    assert taken.state == "success", states(taken)
    snapshot = xcom(taken, "snapshot", key="snapshot")
    ack = job.root.read_json(job.root.snapshot_ack_file(1), what="snapshot acknowledgement") or {}
    assert ack.get("snapshot_id") == snapshot["snapshot_id"] and ack.get("batch") == snapshot["batch"], ack
    manifest = read_manifest(job.root, snapshot["snapshot_id"])
    assert (manifest.generation, manifest.batch) == (1, snapshot["batch"]) and snapshot["rows"] > 0
    offsets = CheckpointReader(job.root.checkpoint(1)).offsets(snapshot["batch"])
    assert manifest.end_offsets == offsets.end_offsets_json()
    status = job.status(1)
    assert status is not None and status.state == "RUNNING" and status.serves_snapshot_requests


def committed_logs(job: Job, generation: int) -> dict[str, bytes]:
    folder = Path(job.root.checkpoint(generation).path)
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for sub in ("offsets", "commits", "metadata")
        for p in ([folder / sub] if (folder / sub).is_file() else sorted((folder / sub).glob("*")))
        if p.is_file()
    }


def launches(job: Job, generation: int) -> list[dict]:  # type: ignore[type-arg]
    return list((job.root.read_generation_record(generation) or {}).get("launches", []))


def recover_twice(job: Job, run_dir: Path, dags) -> None:  # type: ignore[no-untyped-def]
    """kill -9 generation 2 (started from a snapshot) twice: the health sensor's callback brings it back, then
    a start task whose first try loses its driver too brings it back on retry. Both resume: same query id, no
    initial state, the committed logs byte-identical."""
    wait_for(lambda: job.committed(2) >= 2, 240, "generation 2 to commit batch 2")
    before = job.status(2)
    assert before is not None and before.start_mode == "fresh_from_snapshot"
    kill_current_driver(job, 2)
    logs = committed_logs(job, 2)

    health = run(dags.health_restart_dag, **params(job, run_dir, "v2"))
    assert health.state == "failed", states(health)  # the health check found the driver dead ...
    restart = launches(job, 2)[-1]
    assert restart["by"].startswith("restart:") and restart["mode"] == "resume"  # ... and its callback acted
    wait_for(
        lambda: (
            (s := job.status(2)) is not None and s.launch_id == restart["launch_id"] and s.state == "RUNNING"
        ),
        240,
        "the callback's driver to run",
    )
    resumed = job.status(2)
    assert resumed is not None and resumed.start_mode == "resume" and resumed.snapshot is None
    assert resumed.query_id == before.query_id
    after = committed_logs(job, 2)
    assert {k: v for k, v in after.items() if k in logs} == logs  # nothing rewritten, only appended

    kill_current_driver(job, 2)
    seen = len(launches(job, 2))

    def kill_next_launch() -> None:  # the start task's first try loses its driver while waiting for it
        wait_for(lambda: len(launches(job, 2)) > seen, 120, "the start task to launch a driver")
        import os
        import signal

        os.killpg(int(launches(job, 2)[-1]["pid"]), signal.SIGKILL)

    killer = threading.Thread(target=kill_next_launch, daemon=True)
    killer.start()
    retried = run(dags.start_retry_dag, **params(job, run_dir, "v2"))
    killer.join(timeout=5)
    assert retried.state == "success", states(retried)
    ti = next(t for t in retried.get_task_instances() if t.task_id == "start")
    assert ti.try_number >= 2
    result = xcom(retried, "start")
    assert result["generation"] == 2 and result["mode"] == "resume" and not result["reconnected"]
    final = job.status(2)
    assert final is not None and final.snapshot is None and final.query_id == before.query_id
    assert all(launch["mode"] == "resume" for launch in launches(job, 2)[1:])


def restart_with_new_settings(job: Job, run_dir: Path, dags, slower, capfd) -> None:  # type: ignore[no-untyped-def]
    """``settings="apply"`` with a changed application argument: refused while generation 2's driver runs;
    once it is stopped, generation 2 restarts on its own checkpoint with the new argument (no new generation,
    no initial state), recorded for its later restarts. A change of a conf the checkpoint pins is refused
    before anything is launched."""
    seen = len(launches(job, 2))
    capfd.readouterr()
    busy = run(dags.start_apply_dag, **slower)
    assert busy.state == "failed", states(busy)
    assert (
        "DriverStillRunningError: generation 2 is running with its recorded settings"
        in capfd.readouterr().out
    )
    assert len(launches(job, 2)) == seen and "0.2" not in (job.root.read_generation_record(2) or {}).get(
        "application_args", []
    )

    stopped = run(dags.stop_dag, **slower)
    assert stopped.state == "success", states(stopped)
    applied = run(dags.start_apply_dag, **slower)
    assert applied.state == "success", states(applied)
    result = xcom(applied, "start")
    assert result["generation"] == 2 and result["mode"] == "resume" and not result["reconnected"]
    record = job.root.read_generation_record(2) or {}
    args = record["application_args"]
    assert args[args.index("--slow-batch-seconds") + 1] == "0.2"  # recorded: a later restart runs it too
    assert launches(job, 2)[-1]["mode"] == "resume" and JobLedger(job.root).read().current_generation == 2

    capfd.readouterr()
    pinned = run(dags.start_apply_pinned_dag, **slower)
    assert pinned.state == "failed", states(pinned)
    out = capfd.readouterr().out
    assert "PlanRefusedError: settings='apply' restarts generation 2 on its own checkpoint" in out, out[
        -3000:
    ]
    assert "spark.sql.shuffle.partitions 3 -> 4" in out
    assert (job.root.read_generation_record(2) or {})["conf"]["spark.sql.shuffle.partitions"] == "3"
