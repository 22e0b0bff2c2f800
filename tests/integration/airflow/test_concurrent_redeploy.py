"""Two redeploy runs of one job at once (two processes, real DAG runs): one proceeds — here the deferrable
variant, its waits run as triggers — and the other fails fast with the lease error naming the holder. Nothing
is lost: per-key totals equal the event log afterwards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_checkpoint_provider.checkpoint.ledger import JobLedger
from tests.support.counting import fold_log, partial_batches, sink_totals
from tests.support.drivers import Job, Producer
from tests.support.lifecycle import kill_drivers, params, run, states, xcom
from tests.support.processes import ROOT, wait_for

pytestmark = [pytest.mark.spark, pytest.mark.airflow]


def test_second_concurrent_redeploy_fails_with_the_lease_error(run_dir: Path, airflow_db: Path,
                                                               capfd: pytest.CaptureFixture[str]) -> None:
    from tests.dags import acp_lifecycle_test_dags as dags

    job = Job(run_dir / "airflow-concurrent", run_dir)
    log = run_dir / "concurrent-redeploy.log"
    first: subprocess.Popen[bytes] | None = None
    try:
        with Producer(job.events):
            assert run(dags.start_deferrable_dag, **params(job, run_dir, "v1")).state == "success"
            conf = json.dumps(params(job, run_dir, "v2"))
            with open(log, "wb") as out:
                first = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "run_dag.py"),
                                          "tests.dags.acp_lifecycle_test_dags", "acp_test_redeploy_deferrable", conf],
                                         cwd=ROOT, stdout=out,
                                         stderr=subprocess.STDOUT, env=dict(os.environ))
            wait_for(lambda: (lease := JobLedger(job.root).read().lease) is not None
                     and lease.holder.startswith("acp_test_redeploy_deferrable/"), 120,
                     "the first redeploy to take the lease", first, log)
            generations_before = job.root.generations()

            capfd.readouterr()
            second = run(dags.redeploy_dag, **params(job, run_dir, "v2"))
            printed = capfd.readouterr()
            assert second.state == "failed", states(second)
            # The task's error, as its log shows it: typed, and naming the run that holds the job.
            error = next(line for line in (printed.out + printed.err).splitlines() if "LeaseHeldError: another" in line)
            assert "acp_test_redeploy_deferrable/" in error and "job=counter" in error
            second_states = states(second)
            assert second_states["stop"] == "failed"
            assert second_states["snapshot"] == "upstream_failed" and second_states["start"] == "upstream_failed"
            assert job.root.generations() == generations_before  # the loser created nothing

            assert first.wait(timeout=600) == 0, log.read_text()[-4000:]
            outcome = json.loads(log.read_text().strip().splitlines()[-1])
            assert outcome["state"] == "success", outcome
            stop = outcome["tasks"]["stop"]["result"]  # the stopping driver exported; the snapshot task verified it
            assert stop["snapshot_id"] and stop["snapshot_id"] == outcome["tasks"]["snapshot"]["result"], outcome
            assert JobLedger(job.root).read().current_generation == 2
            history = [h["event"] for h in JobLedger(job.root).read().history]
            assert history.count("generation_created") == 2  # generation 1, then exactly one redeploy

            last = run(dags.stop_dag, **params(job, run_dir, "v2"))
            assert last.state == "success", states(last)
            final = xcom(last, "stop")
    finally:
        if first is not None and first.poll() is None:
            first.kill()
        kill_drivers(job.path)
    assert partial_batches(job.output) == []
    assert sink_totals(job.output) == fold_log(job.events, int(final["end_offsets"][0]["offset"]))

