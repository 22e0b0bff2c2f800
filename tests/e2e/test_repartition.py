"""Changing the number of state partitions on a redeploy (issue 16, item 4). Spark pins
``spark.sql.shuffle.partitions`` in a checkpoint and cannot repartition its state; a redeploy through a
snapshot can, because the new generation starts on a fresh checkpoint with the snapshot's rows as initial
state. The example DAGs take the job 3 -> 8 -> 2 partitions under continuous input, with exact totals."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_checkpoint_provider.checkpoint.inspector import inspect_checkpoint
from tests.support.counting import fold_log, partial_batches, sink_totals
from tests.support.drivers import Job, Producer
from tests.support.lifecycle import example_params, kill_drivers, states, xcom
from tests.support.processes import wait_for

pytestmark = [pytest.mark.spark, pytest.mark.airflow]


def test_state_partitions_change_on_redeploy(run_dir: Path, airflow_db: Path) -> None:
    import example_job_control
    import example_redeploy

    job = Job(run_dir / "e2e-repartition", run_dir)

    def params(app: str, partitions: int, **extra: str) -> dict[str, object]:
        given = example_params(job, run_dir, app, **extra)
        return {
            **given,
            "spark_conf": {**given["spark_conf"], "spark.sql.shuffle.partitions": str(partitions)},
        }

    try:
        with Producer(job.events):
            started = example_job_control.start_job.test(run_conf=params("v1", 3))
            assert started.state == "success", states(started)
            for generation, partitions in ((2, 8), (3, 2)):
                previous = generation - 1
                wait_for(lambda g=previous: job.committed(g) >= 1, 240, "a committed batch to snapshot")
                run = example_redeploy.dag.test(run_conf=params("v1", partitions, migration="none"))
                assert run.state == "success", states(run)
                assert xcom(run, "start")["generation"] == generation
                wait_for(
                    lambda g=generation: job.committed(g) >= 1, 240, f"generation {generation} to commit"
                )
                info = inspect_checkpoint(job.root.checkpoint(generation))
                assert info.to_json()["shuffle_partitions"] == partitions
                assert info.operators and info.operators[0].partitions == partitions  # the state store itself
        stopped = example_job_control.stop_job.test(run_conf=params("v1", 2))
        assert stopped.state == "success", states(stopped)
        final = xcom(stopped, "stop")
    finally:
        kill_drivers(job.path)
    assert inspect_checkpoint(job.root.checkpoint(1)).to_json()["shuffle_partitions"] == 3
    assert partial_batches(job.output) == []
    assert sink_totals(job.output) == fold_log(job.events, int(final["end_offsets"][0]["offset"]))
