"""The example DAGs, run as a user runs them (``dag.test()``), on real local Spark: start, periodic snapshot
of the running job, a redeploy whose every task fails once after doing its work (rerun until done), the
watchdog, stop. Per-key totals equal the event log; nothing was done twice (one new generation, one driver
launch for it)."""

from __future__ import annotations

from pathlib import Path

import pendulum
import pytest

from airflow_checkpoint_provider.checkpoint.ledger import JobLedger
from airflow_checkpoint_provider.checkpoint.snapshots import SnapshotCatalogue
from tests.support.counting import fold_log, partial_batches, sink_totals
from tests.support.drivers import Job, Producer
from tests.support.lifecycle import example_params, kill_drivers, states, xcom
from tests.support.processes import wait_for

pytestmark = [pytest.mark.spark, pytest.mark.airflow]


def test_example_dags_with_a_fault_after_every_redeploy_task(run_dir: Path, airflow_db: Path) -> None:
    import example_job_control
    import example_periodic_snapshot
    import example_watchdog

    from tests.dags.acp_example_faults import faults_dag

    job = Job(run_dir / "e2e-examples", run_dir)
    try:
        with Producer(job.events):
            started = example_job_control.start_job.test(run_conf=example_params(job, run_dir, "v1"))
            assert started.state == "success", states(started)
            wait_for(lambda: job.committed(1) >= 2, 240, "v1 to commit batch 2")

            periodic = example_periodic_snapshot.dag.test(run_conf=example_params(job, run_dir, "v1"))
            assert periodic.state == "success", states(periodic)
            taken = xcom(periodic, "snapshot")
            entry = SnapshotCatalogue(job.root).entry(taken)
            assert entry.verified and entry.generation == 1  # taken while v1 kept running
            ack = job.root.read_json(job.root.snapshot_ack_file(1), what="snapshot acknowledgement") or {}
            assert ack.get("snapshot_id") == taken  # by the running driver: no exporter application
            assert (job.status(1) or None) is not None and job.status(1).state == "RUNNING"  # type: ignore[union-attr]

            outcomes, run_ids = [], set()
            logical_date = pendulum.now(
                "UTC"
            )  # the same logical date: each rerun clears and reruns one DAG run
            for _ in range(
                8
            ):  # every task fails once after its work: clear and rerun the run until it completes
                run = faults_dag.test(
                    logical_date=logical_date,
                    run_after=logical_date,
                    run_conf=example_params(job, run_dir, "v2", migration="v1_to_v2"),
                )
                outcomes.append(states(run))
                run_ids.add(run.run_id)
                if run.state == "success":
                    break
            assert run.state == "success", outcomes
            failed_tasks = [t for o in outcomes for t, s in o.items() if s == "failed"]
            # start and stop: retried within the run (both have retries); the others: the run is rerun. The
            # standby's fault fails the run before the stop: discard_standby sends the standby away (and fails
            # once itself); the rerun relaunches the same standby generation.
            assert sorted(failed_tasks) == ["cleanup", "discard_standby", "healthy", "snapshot", "standby"], (
                outcomes
            )
            assert len(run_ids) == 1  # one DAG run, cleared and rerun
            assert job.root.generations() == [1, 2] and JobLedger(job.root).read().current_generation == 2
            launches = (job.root.read_generation_record(2) or {}).get("launches", [])
            # the standby, and the standby again after its discard; every other rerun and retry reconnected
            assert len(launches) == 2, launches
            assert xcom(run, "start")["reconnected"] is True
            redeploy_snapshots = [
                e for e in SnapshotCatalogue(job.root).list() if e.generation == 1 and e.snapshot_id != taken
            ]
            assert (
                len(redeploy_snapshots) == 1
            )  # the reruns found the redeploy's snapshot, never exported again

            watchdog = example_watchdog.dag.test(run_conf={"job_root": str(job.path)})
            assert watchdog.state == "success", states(watchdog)
            stopped = example_job_control.stop_job.test(run_conf=example_params(job, run_dir, "v2"))
            assert stopped.state == "success", states(stopped)
            final = xcom(stopped, "stop")
    finally:
        kill_drivers(job.path)
    assert partial_batches(job.output) == []
    assert sink_totals(job.output) == fold_log(job.events, int(final["end_offsets"][0]["offset"]))
