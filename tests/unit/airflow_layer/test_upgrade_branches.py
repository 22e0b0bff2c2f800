"""The safe-upgrade operators' branches that real runs rarely take (the paths themselves are proven against
real Spark and real DAG runs in tests/e2e/test_safe_redeploy.py), with the fake hook of the lifecycle's error
branch tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot
from airflow_checkpoint_provider.checkpoint.ledger import JobLedger
from airflow_checkpoint_provider.model.backends import Liveness
from airflow_checkpoint_provider.operators.upgrade import (
    DryRunStreamingJobOperator,
    PlanRedeployOperator,
    ReadinessOperator,
    RollbackStreamingJobOperator,
    _run_check,
)
from tests.support.drivers import APPS
from tests.unit.airflow_layer.test_error_branches import FakeHook, context, status, with_hook


@pytest.fixture
def job(tmp_path: Path) -> JobRoot:
    root = JobRoot(tmp_path / "counter")
    JobLedger(root).set_current(1, by="test", event="generation_created")
    root.update_generation_record(
        1, application=str(APPS["v1"]), code_version="event-counter-v1", application_args=[], conf={}
    )
    return root


def test_a_user_check_fails_on_false_or_an_exception_and_passes_otherwise() -> None:
    def wrong(report: object) -> None:
        raise AssertionError("n must be >= 1")

    assert _run_check(None, {}) is None
    assert _run_check(lambda r: None, {}) is None and _run_check(lambda r: True, {}) is None
    assert _run_check(lambda r: False, {}) == "the check returned False"
    assert "n must be >= 1" in str(_run_check(wrong, {}))


def test_the_plan_skips_when_nothing_changes_and_fails_terminally_on_a_refusal(
    job: JobRoot, tmp_path: Path
) -> None:
    same = PlanRedeployOperator(
        task_id="plan",
        job_root=str(job.location.path),
        application=str(APPS["v1"]),
        code_version="event-counter-v1",
        skip_unless_redeploy=True,
    )
    ctx = context()
    with pytest.raises(AirflowSkipException, match="nothing changes"):
        same.execute(ctx)
    assert ctx["ti"].pushed["plan"]["action"] == "none"
    settings = PlanRedeployOperator(
        task_id="plan",
        job_root=str(job.location.path),
        application=str(APPS["v1"]),
        code_version="event-counter-v1",
        spark_conf={"spark.executor.memory": "2g"},
        skip_unless_redeploy=True,
    )
    ctx = context()
    with pytest.raises(AirflowSkipException, match=r"spark\.executor\.memory None -> 2g.*settings='apply'"):
        settings.execute(ctx)
    assert ctx["ti"].pushed["plan"]["action"] == "resume"
    bad = PlanRedeployOperator(
        task_id="plan",
        job_root=str(job.location.path),
        application=str(APPS["v2"]),
        code_version="event-counter-v2",
        migration="v9",
    )
    with pytest.raises(AirflowFailException, match="PlanRefusedError.*migration 'v9'.*Nothing was touched"):
        bad.execute(context())


def test_the_plan_branches_to_the_resume_task_when_only_settings_change(
    job: JobRoot, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG

    followed: list[list[str]] = []
    monkeypatch.setattr(PlanRedeployOperator, "skip_all_except", lambda self, ti, ids: followed.append(ids))

    def plan_of(**launch: Any) -> PlanRedeployOperator:
        with DAG(f"d{len(followed)}", schedule=None, auto_register=False):
            plan = PlanRedeployOperator(
                task_id="plan",
                job_root=str(job.location.path),
                skip_unless_redeploy=True,
                resume_task_id="resume_stop",
                **{"application": str(APPS["v1"]), "code_version": "event-counter-v1", **launch},
            )
            plan >> [EmptyOperator(task_id="baseline"), EmptyOperator(task_id="resume_stop")]
            plan >> EmptyOperator(task_id="redeploy_failed", trigger_rule="one_failed")
        return plan

    ctx = context()
    assert plan_of(spark_conf={"spark.executor.memory": "2g"}).execute(ctx)["action"] == "resume"
    assert followed == [["resume_stop"]] and ctx["ti"].pushed["return_value"]["action"] == "resume"
    ctx = context()
    assert plan_of(application=str(APPS["v2"]), code_version="event-counter-v2").execute(ctx)["action"] == (
        "redeploy"
    )
    assert sorted(followed[-1]) == ["baseline", "redeploy_failed"]
    with pytest.raises(AirflowSkipException, match="nothing changes"):  # nothing to follow
        plan_of().execute(context())
    assert len(followed) == 2


def test_a_dry_run_needs_a_verified_snapshot_of_the_current_generation(job: JobRoot) -> None:
    dry = DryRunStreamingJobOperator(task_id="dry_run", job_root=str(job.location.path), application="app.py")
    with pytest.raises(AirflowFailException, match="SnapshotNotFoundError.*generation 1"):
        dry.execute(context())
    assert not (Path(job.location.path) / "scratch").exists()
    off = DryRunStreamingJobOperator(
        task_id="dry_run", job_root=str(job.location.path), application="app.py", enabled="false"
    )
    assert off.execute(context()) == {"enabled": False}


def test_readiness_fails_at_once_on_a_failed_driver(job: JobRoot, monkeypatch: pytest.MonkeyPatch) -> None:
    with_hook(monkeypatch, FakeHook(Liveness.ALIVE))
    status(job, state="FAILED", error="bad release: batch 1 fails")
    ready = ReadinessOperator(task_id="ready", job_root=str(job.location.path), window_s=60)
    with pytest.raises(AirflowFailException, match="NotReadyError.*FAILED: bad release"):
        ready.execute(context())


def test_rollback_leaves_a_generation_this_run_did_not_create_alone(
    job: JobRoot, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = with_hook(monkeypatch, FakeHook(Liveness.ALIVE))
    job.update_generation_record(1, created_by="another/run")
    rollback = RollbackStreamingJobOperator(task_id="rollback", job_root=str(job.location.path))
    assert rollback.execute(context()) == {"rolled_back": None, "generation": 1}
    assert hook.calls == []  # nothing observed, stopped or launched


def test_a_settings_revert_puts_the_old_settings_back_once(
    job: JobRoot, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = with_hook(monkeypatch, FakeHook(Liveness.GONE))
    job.update_generation_record(
        1,
        application_args=["--trigger-seconds", "soon"],
        settings_before={"application_args": ["--trigger-seconds", "2"], "conf": {"a": "b"}},
        settings_applied_by="dag/run-1",
        settings_applied_at=1.0,
    )
    rollback = RollbackStreamingJobOperator(task_id="rollback", job_root=str(job.location.path))
    ledger = JobLedger(job)
    for _ in range(2):  # a rerun finds the revert recorded
        rollback.revert_settings(job, ledger, 1, "dag/run-1")
    record = job.read_generation_record(1) or {}
    assert record["application_args"] == ["--trigger-seconds", "2"] and record["conf"] == {"a": "b"}
    assert [h["event"] for h in ledger.read().history].count("settings_reverted") == 1
    assert hook.calls == ["observe 1"]  # the driver was already gone: nothing to stop


def test_rollback_refuses_a_generation_with_nothing_to_roll_back_to(
    job: JobRoot, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_hook(monkeypatch, FakeHook())
    rollback = RollbackStreamingJobOperator(
        task_id="rollback", job_root=str(job.location.path), only_own=False
    )
    with pytest.raises(AirflowFailException, match="did not start from a snapshot"):
        rollback.execute(context())


def test_plan_and_dry_run_refuse_a_job_root_that_does_not_exist(tmp_path: Path) -> None:
    missing = str(tmp_path / "nothing-here")
    for operator in (
        PlanRedeployOperator(task_id="plan", job_root=missing, application="app.py"),
        DryRunStreamingJobOperator(task_id="dry_run", job_root=missing, application="app.py"),
    ):
        with pytest.raises(AirflowFailException, match="JobRootNotFoundError"):
            operator.execute(context())
    assert not (tmp_path / "nothing-here").exists()


def test_an_explicit_start_withdraws_a_stop_request_no_driver_answered_once(job: JobRoot) -> None:
    """What a kill of a hung driver leaves: a request with no answer. Withdrawing it writes the answer (by the
    run, not a driver) and one ledger event; a second call and an answered request change nothing; the status
    report shows no stop for a generation started again. The relaunch itself: tests/integration/airflow/
    test_stop_timeout.py."""
    from airflow_checkpoint_provider.checkpoint.report import job_status
    from airflow_checkpoint_provider.model.records import OnStopTimeout, StopRequest

    request = StopRequest(
        request_id="r1", requested_at=1.0, on_timeout=OnStopTimeout.FORCE_STOP, requested_by="rollback"
    )
    job.write_stop_request(1, request)
    start = ReadinessOperator(task_id="t", job_root=str(job.location.path))
    start.withdraw_open_stop(job, 1, "dag/run-1")
    start.withdraw_open_stop(job, 1, "dag/run-2")
    ack = job.read_stop_ack(1)
    assert ack is not None and ack.request_id == "r1" and ack.outcome == "withdrawn" and ack.by == "dag/run-1"
    events = [h for h in JobLedger(job).read().history if h.get("event") == "stop_withdrawn"]
    assert len(events) == 1 and events[0]["requested_by"] == "rollback", events
    assert job_status(job)["generations"][0]["stop"] is None
