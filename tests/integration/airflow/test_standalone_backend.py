"""The standalone backend: a Spark master and a worker on loopback (started by the test from pyspark's jars);
the drivers run as detached client-mode processes here, the executors on the worker. start -> stop -> snapshot
-> start from the snapshot, through real DAG runs, with exact totals."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.counting import fold_log, partial_batches, sink_totals
from tests.support.drivers import Job, Producer
from tests.support.lifecycle import kill_drivers, params, run, states, xcom
from tests.support.standalone import standalone_cluster

pytestmark = [pytest.mark.spark, pytest.mark.airflow]


def test_redeploy_on_a_standalone_cluster(run_dir: Path, airflow_db: Path) -> None:
    from tests.dags import acp_lifecycle_test_dags as dags

    job = Job(run_dir / "airflow-standalone", run_dir)
    with standalone_cluster(run_dir) as master:
        try:
            with Producer(job.events):
                first = run(dags.start_dag, **params(job, run_dir, "v1", master=master))
                assert first.state == "success", states(first)
                status = job.status(1)
                assert (
                    status is not None and status.app_id and status.app_id.startswith("app-")
                )  # a cluster app id
                redeploy = run(dags.redeploy_dag, **params(job, run_dir, "v2", master=master))
                assert redeploy.state == "success", states(redeploy)
                assert xcom(redeploy, "start")["mode"] == "fresh_from_snapshot"
                assert (job.status(2) or status).app_id.startswith("app-")
                last = run(dags.stop_dag, **params(job, run_dir, "v2", master=master))
                assert last.state == "success", states(last)
                final = xcom(last, "stop")
        finally:
            kill_drivers(job.path)
    handle = (job.root.read_generation_record(2) or {})["launches"][-1]
    assert handle["backend"] == "standalone" and handle["master"] == master
    assert partial_batches(job.output) == []
    assert sink_totals(job.output) == fold_log(job.events, int(final["end_offsets"][0]["offset"]))
