"""The lifecycle operators and sensors in real DAG runs (``dag.test()``) against real local Spark drivers:
first start, a redeploy v1 -> v2 through stop / snapshot / cleanup / start-from-snapshot, exact totals."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_checkpoint_provider.checkpoint.inspector import inspect_checkpoint
from airflow_checkpoint_provider.checkpoint.ledger import JobLedger
from tests.support.counting import fold_log, partial_batches, sink_totals
from tests.support.drivers import Job, Producer
from tests.support.lifecycle import kill_drivers, params, run, states, xcom

pytestmark = [pytest.mark.spark, pytest.mark.airflow]


def test_first_start_then_redeploy_v1_to_v2_exact_totals(run_dir: Path, airflow_db: Path) -> None:
    from tests.dags import acp_lifecycle_test_dags as dags

    job = Job(run_dir / "airflow-redeploy", run_dir)
    try:
        with Producer(job.events):
            first = run(dags.start_dag, **params(job, run_dir, "v1"))
            assert first.state == "success", states(first)
            started = xcom(first, "start")
            assert started["generation"] == 1 and started["mode"] == "first" and not started["reconnected"]
            assert JobLedger(job.root).read().lease is None  # the start released the run's lease

            redeploy = run(dags.redeploy_dag, **params(job, run_dir, "v2"))
            assert redeploy.state == "success", states(redeploy)
            stopped = xcom(redeploy, "stop")
            assert stopped["outcome"] == "stopped" and stopped["generation"] == 1
            snapshot_id = xcom(redeploy, "snapshot")
            assert snapshot_id.endswith(f"-g1-b{stopped['final_committed_batch']}")
            restarted = xcom(redeploy, "start")
            assert restarted["generation"] == 2 and restarted["mode"] == "fresh_from_snapshot"
            record1 = job.root.read_generation_record(1) or {}
            assert record1.get("retired_at") and record1.get("final_committed_batch") == stopped["final_committed_batch"]
            assert job.root.checkpoint(1).exists()  # retired in place, never moved
            assert JobLedger(job.root).read().current_generation == 2

            last = run(dags.stop_dag, **params(job, run_dir, "v2"))
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
