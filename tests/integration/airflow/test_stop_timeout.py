"""A graceful stop that cannot finish in time (the driver is inside a slow batch), in real DAG runs: with
``on_timeout="fail"`` the task fails and the driver keeps running; with ``on_timeout="kill"`` the driver is
hard-killed through its backend. Either way the checkpoint stays valid: a restart resumes and totals are
exact. A driver killed while hung leaves its stop request unanswered: an explicit start withdraws it, and the
driver it starts runs on. A job stopped on request (gracefully, or by the kill) is not restarted by the
watchdog's callback; a driver that hangs while nobody asked it to stop is killed and restarted by it, when the
callback is given ``kill_hung_after_s``."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from airflow_checkpoint_provider.checkpoint.ledger import JobLedger
from airflow_checkpoint_provider.model.records import OnStopTimeout
from tests.support.counting import fold_log, sink_totals
from tests.support.drivers import Job, Producer
from tests.support.lifecycle import driver_pid, kill_current_driver, kill_drivers, params, run, states, xcom
from tests.support.processes import wait_for

pytestmark = [pytest.mark.spark, pytest.mark.airflow]


def test_stop_timeout_fails_or_kills_as_configured(run_dir: Path, airflow_db: Path) -> None:
    from tests.dags import acp_lifecycle_test_dags as dags

    job = Job(run_dir / "airflow-stop-timeout", run_dir)
    slow = params(job, run_dir, "v1", slow_batch_seconds="10")

    def batch_just_started() -> None:  # so the stop request surely lands inside a 10 s batch
        seen = job.in_flight(1)
        wait_for(lambda: (now := job.in_flight(1)) is not None and now != seen, 120, "a new batch to start")

    def watchdog_leaves_it_stopped() -> None:
        """A stop someone asked for stays asked for: the health check fails, and its restart callback does
        not relaunch the generation."""
        launched = len((job.root.read_generation_record(1) or {}).get("launches", []))
        health = run(dags.health_restart_dag, **params(job, run_dir, "v1"))
        assert health.state == "failed", states(health)
        assert len((job.root.read_generation_record(1) or {}).get("launches", [])) == launched

    def latest_launch_id() -> str:
        return str((job.root.read_generation_record(1) or {}).get("launches", [{}])[-1].get("launch_id"))

    try:
        with Producer(job.events):
            assert run(dags.start_dag, **slow).state == "success"
            batch_just_started()
            failed = run(dags.stop_fail_dag, **slow)
            assert failed.state == "failed", states(failed)
            ack = job.root.read_stop_ack(1)
            assert ack is not None and ack.outcome == "timed_out"
            assert ack.launch_id == latest_launch_id(), ack  # the answering driver names its launch
            status = job.status(1)
            assert status is not None and status.state == "RUNNING"  # left running, as configured

            batch_just_started()
            killed = run(dags.stop_kill_dag, **slow)
            assert killed.state == "success", states(killed)
            assert xcom(killed, "stop")["outcome"] == "killed"
            ack = job.root.read_stop_ack(1)  # answered by the run that killed it (the driver said timed_out)
            assert ack is not None and ack.outcome == "killed" and ack.by.startswith("acp_test_stop_kill/"), (
                ack
            )
            assert ack.launch_id == latest_launch_id(), ack  # the launch it killed
            watchdog_leaves_it_stopped()
            restarted = run(dags.start_dag, **params(job, run_dir, "v1"))
            assert restarted.state == "success", states(restarted)
            assert xcom(restarted, "start")["mode"] == "resume"

            # A hung driver (frozen: SIGSTOP on its process group) cannot answer a stop request; the
            # operators then kill it (what the rollback's stop does after its grace). Its request stays open.
            pid = driver_pid(job, 1)
            assert pid is not None
            os.killpg(pid, signal.SIGSTOP)
            hung = job.request_stop(
                1, timeout_s=60, on_timeout=OnStopTimeout.FORCE_STOP, requested_by="rollback"
            )
            kill_current_driver(job, 1)
            assert job.root.read_stop_ack(1).request_id != hung.request_id  # type: ignore[union-attr]
            # An explicit start withdraws it: the relaunched driver runs on instead of stopping again at its
            # first boundary (the callback's automatic restart would honour it).
            again = run(dags.start_dag, **params(job, run_dir, "v1"))
            assert again.state == "success", states(again)
            ack = job.root.read_stop_ack(1)
            assert ack is not None and ack.request_id == hung.request_id and ack.outcome == "withdrawn", ack
            assert ack.by.startswith(f"{dags.start_dag.dag_id}/"), ack  # the run that withdrew it
            resumed_at = job.committed(1)
            wait_for(lambda: job.committed(1) > resumed_at + 1, 120, "two more batches after the restart")

            # A driver that hangs while nobody asked it to stop: the watchdog with kill_hung_after_s kills it
            # once its heartbeat is older than that, and restarts it from its checkpoint.
            launched = len((job.root.read_generation_record(1) or {}).get("launches", []))
            os.killpg(driver_pid(job, 1), signal.SIGSTOP)  # type: ignore[arg-type]
            wait_for(
                lambda: (s := job.status(1)) is not None and s.heartbeat_age() > 9, 60, "a 9 s old heartbeat"
            )
            health = run(dags.health_restart_hung_dag, **params(job, run_dir, "v1"))
            assert health.state == "failed", states(health)  # the health check: no heartbeat, dead
            launches = (job.root.read_generation_record(1) or {}).get("launches", [])
            assert len(launches) == launched + 1, launches
            assert launches[-1]["by"].startswith("restart:") and launches[-1]["mode"] == "resume"
            history = JobLedger(job.root).read().history
            assert [h for h in history if h["event"] == "hung_driver_killed"], history[-3:]
            wait_for(
                lambda: (
                    (s := job.status(1)) is not None
                    and s.launch_id == launches[-1]["launch_id"]
                    and s.state == "RUNNING"
                ),
                240,
                "the restarted driver to run",
            )
            resumed_at = job.committed(1)
            wait_for(lambda: job.committed(1) > resumed_at, 120, "a batch after the hang")
            final = run(dags.stop_dag, **params(job, run_dir, "v1"))
            assert final.state == "success", states(final)
            assert xcom(final, "stop")["outcome"] == "stopped", xcom(final, "stop")
            ack = job.root.read_stop_ack(1)
            assert ack is not None and ack.launch_id == latest_launch_id() == launches[-1]["launch_id"], ack
            watchdog_leaves_it_stopped()  # told apart from a later launch by the launches' order, not clocks
            end = int(xcom(final, "stop")["end_offsets"][0]["offset"])
    finally:
        kill_drivers(job.path)
    assert sink_totals(job.output) == fold_log(job.events, end)
