"""The warm standby through the example redeploy DAG (``dag.test()``) on real local Spark.

1. The old driver will not stop in time (it is inside a slow batch): the redeploy fails, ``discard_standby``
   sends the standby away, and the job is as it was — the old generation runs on, current; the standby wrote
   no checkpoint and no sink output and its driver is gone.
2. A new redeploy run reuses that generation number (no gap), launches the standby, and the handoff happens
   between the drivers: the standby promotes itself after the old driver's acknowledgement, before the start
   task runs; the start task only reconnects. The new generation's checkpoint and sink output begin after the
   promotion (nothing was committed before the go). Totals are exact.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from airflow_checkpoint_provider.checkpoint.ledger import JobLedger
from tests.support.campaign import live_drivers
from tests.support.counting import fold_log, sink_totals
from tests.support.drivers import Job, Producer
from tests.support.lifecycle import example_params, file_mtimes, kill_drivers, states, xcom
from tests.support.processes import wait_for

pytestmark = [pytest.mark.spark, pytest.mark.airflow]


def held(job: Job) -> bool:
    """A batch of generation 1 has been in flight for 3 s (a batch takes about one)."""
    batch = job.in_flight(1)
    time.sleep(3)
    return batch is not None and job.in_flight(1) == batch


def test_standby_discarded_when_the_stop_fails_then_takes_over_by_itself(
    run_dir: Path, airflow_db: Path
) -> None:
    import example_job_control
    from example_redeploy import dag as redeploy

    from tests.dags.acp_example_faults import stuck_stop_dag as stuck

    job = Job(run_dir / "e2e-standby", run_dir)
    hold = run_dir / "e2e-standby-hold"  # while it exists, every batch of generation 1 waits in its sink
    v1 = example_params(job, run_dir, "v1")
    v1["application_args"] = [*v1["application_args"], "--hold-while", str(hold)]
    try:
        with Producer(job.events):
            started = example_job_control.start_job.test(run_conf=v1)
            assert started.state == "success", states(started)
            hold.touch()
            wait_for(lambda: held(job), 120, "a batch held in its sink")

            failed = stuck.test(run_conf=example_params(job, run_dir, "v2", migration="v1_to_v2"))
            got = states(failed)
            assert failed.state == "failed" and got["stop"] == "failed", got
            assert got["standby"] == "success" and got["discard_standby"] == "success", got
            assert xcom(failed, "standby")["ready"] is True
            assert xcom(failed, "discard_standby") == {"generation": 2, "discarded": True}
            wait_for(lambda: all(g != 2 for g, _ in live_drivers(job)), 60, "the discarded standby to exit")
            standby = job.status(2)  # its warm-up query ran on made-up rows: none of it is the job's progress
            assert standby is not None and standby.query_id is None, standby
            assert standby.last_committed_batch is None and standby.total_input_rows == 0, standby
            assert JobLedger(job.root).read().current_generation == 1  # the job is as it was
            status1 = job.status(1)
            assert status1 is not None and status1.state == "RUNNING", status1
            assert not job.root.checkpoint(2).exists()  # the standby wrote no checkpoint
            assert not [p for p in file_mtimes(job.output) if "g=2" in p.parts]  # nor any sink output
            record2 = job.root.read_generation_record(2) or {}
            assert record2.get("discarded_at") and not record2.get("first_started_at"), record2

            hold.unlink()  # the old driver can stop again; this redeploy hands over driver to driver
            done = redeploy.test(run_conf=example_params(job, run_dir, "v2", migration="v1_to_v2"))
            assert done.state == "success", states(done)
            assert job.root.generations() == [1, 2]  # the discarded standby's number was reused
            assert xcom(done, "standby")["ready"] is True and xcom(done, "standby")["generation"] == 2
            started2 = xcom(done, "start")
            assert started2["generation"] == 2 and started2["reconnected"] is True, started2
            history = JobLedger(job.root).read().history
            promoted = [
                h for h in history if h.get("event") == "generation_created" and h.get("generation") == 2
            ]
            assert len(promoted) == 1 and promoted[0]["by"].startswith("standby:"), promoted  # not a task
            ack = job.root.read_stop_ack(1)
            assert ack is not None and ack.snapshot_id and promoted[0]["snapshot"] == ack.snapshot_id
            go = float(promoted[0]["at"])
            assert go >= ack.acknowledged_at
            # nothing of generation 2 was written before its go: checkpoint, commits, sink
            written = file_mtimes(Path(job.root.checkpoint(2).uri)) | {
                p: t for p, t in file_mtimes(job.output).items() if "g=2" in p.parts
            }
            assert written and min(written.values()) >= go - 0.01, "written before the go"
            launches = (job.root.read_generation_record(2) or {}).get("launches", [])
            assert len(launches) == 2 and all(launch["by"] != "" for launch in launches), launches
            status2 = job.status(2)
            assert status2 is not None and status2.warm_s and status2.go_at, status2
            # the old driver tore down only after its successor's first commit (no CPU taken from batch 0)
            logs = "".join(
                log.read_text(errors="replace")
                for log in sorted((job.path / "generations" / "1" / "logs").glob("driver-*.log"))
            )
            assert re.search(r"handoff: generation 2 committed batch \d+ after", logs), logs[-3000:]
            # the export path was warmed before the stop: by the old driver (started cold) in the
            # background after its first batch, and by the standby before it reported STANDBY
            assert "export path warmed in" in logs, logs[-3000:]
            # the standby's own Python runners (its source's, its processor's pre-init) came pre-forked
            logs2 = "".join(
                log.read_text(errors="replace")
                for log in sorted((job.path / "generations" / "2" / "logs").glob("driver-*.log"))
            )
            assert len(re.findall(r"acp prefork: forked \d+", logs2)) >= 2, logs2[-3000:]
            assert logs2.index("export path warmed in") < logs2.index("warm standby for generation 1 ready")
            # both warmed up inside the job root (executors on a cluster see it), in folders since removed
            assert f"exported in {job.path / 'scratch'}/warm-" in logs2, logs2[-3000:]
            assert not (job.path / "scratch").exists()
            wait_for(lambda: job.committed(2) >= 2, 120, "generation 2 to commit batch 2")
            # One status writer after the go: every read shows the started generation, its batches rising
            # (the standby's writer, which the query listener reports to, was kept and reset).
            seen = []
            for _ in range(8):
                now = job.status(2)
                assert now is not None and now.start_mode and now.app_id and now.state.value == "RUNNING", now
                seen.append(now.last_committed_batch if now.last_committed_batch is not None else -1)
                time.sleep(0.5)
            assert seen == sorted(seen) and seen[-1] >= 1, seen

            stopped = example_job_control.stop_job.test(run_conf=example_params(job, run_dir, "v2"))
            assert stopped.state == "success", states(stopped)
            final = xcom(stopped, "stop")
    finally:
        kill_drivers(job.path)
    end = int(final["end_offsets"][0]["offset"])
    assert sink_totals(job.output) == fold_log(job.events, end)
