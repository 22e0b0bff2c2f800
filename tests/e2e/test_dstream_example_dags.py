"""The seed's own job through the example DAGs (``dag.test()``, real local Spark, continuous input): a DStream
counter (updateStateByKey + initialRDD) started, snapshotted while it runs (its driver exports on request),
killed before it answered a stop, redeployed v1 -> v2 through ``example_redeploy`` (a change v1's checkpoint
cannot take; the redeploy relaunches the killed driver to finish the stop and export), and stopped. Per-key
totals equal the event log: nothing dropped between stop and start, nothing counted twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_checkpoint_provider.checkpoint.inspector import inspect_checkpoint
from airflow_checkpoint_provider.checkpoint.snapshots import SnapshotCatalogue
from tests.support.counting import fold_log, max_since, partial_batches, sink_rows, sink_totals
from tests.support.drivers import Job, Producer
from tests.support.lifecycle import example_params, kill_current_driver, kill_drivers, states, xcom
from tests.support.processes import wait_for

pytestmark = [pytest.mark.spark, pytest.mark.airflow]


def completed(job: Job, generation: int) -> int:
    facts = inspect_checkpoint(job.root.checkpoint(generation), allow_empty=True).dstream
    return len(facts.completed) if facts is not None else 0


def test_dstream_counter_redeployed_v1_to_v2_through_the_example_dags(
    run_dir: Path, airflow_db: Path
) -> None:
    import example_job_control
    import example_periodic_snapshot
    import example_redeploy

    job = Job(run_dir / "e2e-dstream", run_dir)
    try:
        with Producer(job.events, per_tick=5, tick_s=0.2):
            started = example_job_control.start_job.test(run_conf=example_params(job, run_dir, "dv1"))
            assert started.state == "success", states(started)
            wait_for(lambda: completed(job, 1) >= 2, 300, "v1 to complete two DStream batches")

            periodic = example_periodic_snapshot.dag.test(run_conf=example_params(job, run_dir, "dv1"))
            assert periodic.state == "success", states(periodic)
            taken = SnapshotCatalogue(job.root).entry(xcom(periodic, "snapshot"))
            assert taken.verified and taken.generation == 1  # exported by the running driver, on request
            assert job.status(1) is not None and job.status(1).state == "RUNNING"  # type: ignore[union-attr]

            # The stopping driver dies before it answers the stop (killed while it exported, say): its state
            # is in pickled RDDs only a driver can map to a batch. The redeploy's snapshot task relaunches it;
            # it resumes, honours the open request without reading new input, and exports its final batch.
            wait_for(lambda: job.committed(1) > int(taken.batch or 0), 120, "a batch after the periodic one")
            killed = kill_current_driver(job, 1)
            job.request_stop(1, snapshot=True)
            launches = len((job.root.read_generation_record(1) or {}).get("launches", []))
            redeploy = example_redeploy.dag.test(
                run_conf=example_params(job, run_dir, "dv2", migration="v1_to_v2")
            )
            assert redeploy.state == "success", states(redeploy)
            relaunched = (job.root.read_generation_record(1) or {}).get("launches", [])
            assert len(relaunched) == launches + 1 and relaunched[-1]["mode"] == "resume", relaunched[-1:]
            assert relaunched[-1]["pid"] != killed
            ack = job.root.read_stop_ack(1)
            assert ack is not None and ack.snapshot_id == xcom(redeploy, "snapshot")
            stop = xcom(redeploy, "stop")
            stopped_at = int(stop["end_offsets"][0]["offset"])
            assert job.root.generations() == [1, 2]
            status = job.status(2)
            assert status is not None and status.engine == "dstream"
            assert status.start_mode == "fresh_from_snapshot" and status.code_version == "dstream-counter-v2"
            assert (job.root.read_generation_record(1) or {}).get("retired_at")
            wait_for(lambda: completed(job, 2) >= 3, 300, "v2 to complete three DStream batches")

            stopped = example_job_control.stop_job.test(run_conf=example_params(job, run_dir, "dv2"))
            assert stopped.state == "success", states(stopped)
            final = xcom(stopped, "stop")
    finally:
        kill_drivers(job.path)
    end = int(final["end_offsets"][0]["offset"])
    assert partial_batches(job.output) == []
    assert sink_totals(job.output) == fold_log(job.events, end)
    v2_rows = sink_rows(job.output, generation=2)
    assert {k: r["max"] for k, r in v2_rows.items()} == max_since(job.events, stopped_at, end)
