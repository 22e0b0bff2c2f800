"""The standalone backend: a Spark master and a worker on loopback (started by the test from pyspark's jars);
the drivers run as detached client-mode processes here, the executors on the worker. The job is reached
through a ``spark`` connection, as a team would configure it: start -> kill -9 -> the watchdog callback
(given no connection) restarts it -> stop -> snapshot -> start from the snapshot, through real DAG runs, with
exact totals. Where each launch ran is read from the master's own record of its applications."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.counting import fold_log, partial_batches, sink_totals
from tests.support.drivers import Job, Producer
from tests.support.lifecycle import kill_current_driver, kill_drivers, params, run, states, xcom
from tests.support.processes import wait_for
from tests.support.standalone import Cluster, standalone_cluster

pytestmark = [pytest.mark.spark, pytest.mark.airflow]


def apps(cluster: Cluster) -> dict[str, bool]:
    """The master's record: application id -> still active."""
    return {str(app["id"]): bool(app["active"]) for app in cluster.applications()}


def test_every_launch_goes_to_the_standalone_cluster(
    run_dir: Path, airflow_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.dags import acp_lifecycle_test_dags as dags

    job = Job(run_dir / "airflow-standalone", run_dir)
    with standalone_cluster(run_dir) as cluster:
        host, port = cluster.master.removeprefix("spark://").split(":")
        monkeypatch.setitem(os.environ, "AIRFLOW_CONN_ACP_STANDALONE", f"spark://{host}:{port}")
        on_cluster = {"conn_id": "acp_standalone"}
        try:
            with Producer(job.events):
                first = run(dags.start_dag, **params(job, run_dir, "v1", **on_cluster))
                assert first.state == "success", states(first)
                status = job.status(1)
                assert status is not None and status.app_id and status.app_id.startswith("app-")
                assert apps(cluster) == {status.app_id: True}

                # The failure path: the watchdog's callback has no connection; the restart must still go to
                # the cluster (it once went to local[2] on the Airflow worker).
                kill_current_driver(job, 1)
                health = run(dags.health_restart_dag, **params(job, run_dir, "v1"))
                assert health.state == "failed", states(health)
                restart = (job.root.read_generation_record(1) or {})["launches"][-1]
                assert restart["by"].startswith("restart:") and restart["mode"] == "resume"
                assert restart["backend"] == "standalone" and restart["master"] == cluster.master
                wait_for(
                    lambda: (
                        (s := job.status(1)) is not None
                        and s.launch_id == restart["launch_id"]
                        and s.state == "RUNNING"
                    ),
                    240,
                    "the callback's driver to run",
                )
                resumed = job.status(1)
                assert resumed is not None and resumed.app_id != status.app_id
                seen = apps(cluster)
                assert seen == {status.app_id: False, resumed.app_id: True}, seen  # the master ran both

                redeploy = run(dags.redeploy_dag, **params(job, run_dir, "v2", **on_cluster))
                assert redeploy.state == "success", states(redeploy)
                assert xcom(redeploy, "start")["mode"] == "fresh_from_snapshot"
                second = job.status(2)
                assert second is not None and second.app_id and second.app_id.startswith("app-")
                seen = apps(cluster)
                assert [app for app, active in seen.items() if active] == [second.app_id], seen
                # ... and the snapshot's exporter ran on the cluster too: 4 applications in all.
                assert {status.app_id, resumed.app_id} < set(seen) and len(seen) == 4, seen
                last = run(dags.stop_dag, **params(job, run_dir, "v2", **on_cluster))
                assert last.state == "success", states(last)
                final = xcom(last, "stop")
        finally:
            kill_drivers(job.path)
    record = job.root.read_generation_record(2) or {}
    assert record["target"]["conn_id"] == "acp_standalone" and record["target"]["master"] == cluster.master
    assert partial_batches(job.output) == []
    assert sink_totals(job.output) == fold_log(job.events, int(final["end_offsets"][0]["offset"]))
