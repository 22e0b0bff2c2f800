"""The Airflow layer's error branches, with a small fake hook in place of Spark (the behaviour itself is
proven against real Spark and real DAG runs in tests/integration and tests/e2e). Each case checks what the
task raises: terminal errors fail at once (``AirflowFailException``, no retries spent), transient ones keep
their type."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_checkpoint_provider.callbacks.checkpoint import restart_from_checkpoint
from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot
from airflow_checkpoint_provider.checkpoint.ledger import JobLedger
from airflow_checkpoint_provider.exceptions import (
    DriverStillRunningError,
    ExportFailedError,
    InvalidLaunchError,
    StopTimeoutError,
)
from airflow_checkpoint_provider.hooks.checkpoint import DriverView
from airflow_checkpoint_provider.model.backends import Backend, DriverHandle, Liveness
from airflow_checkpoint_provider.model.records import DriverStatus
from airflow_checkpoint_provider.operators import checkpoint as operators
from airflow_checkpoint_provider.operators.checkpoint import (
    CleanupStreamingJobOperator,
    SnapshotStreamingJobOperator,
    StartStreamingJobOperator,
    StopStreamingJobOperator,
)
from airflow_checkpoint_provider.sensors.checkpoint import CheckpointCommittedSensor, StreamingJobHealthSensor


@dataclass
class FakeHook:
    """Answers ``observe`` with a fixed view and records what it was asked to do."""

    liveness: Liveness = Liveness.GONE
    calls: list[str] = field(default_factory=list)

    def for_generation(self, root: JobRoot, generation: int) -> FakeHook:
        return self

    def observe(self, root: JobRoot, generation: int) -> DriverView:
        self.calls.append(f"observe {generation}")
        handle = DriverHandle(
            backend=Backend.LOCAL, launch_id="L", master="local[2]", submitted_at=0, generation=1
        )
        return DriverView(self.liveness, f"fake: {self.liveness}", None, handle)

    def kill(self, handle: DriverHandle) -> None:
        self.calls.append("kill")

    def launch_generation(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an error branch must not launch a driver")

    def export_snapshot(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an error branch must not export")


class FakeTI:
    dag_id = "dag"

    def __init__(self, xcom: Any = None) -> None:
        self.xcom = xcom

    def xcom_pull(self, **_: Any) -> Any:
        return self.xcom

    def get_dr_count(self, **_: Any) -> int:
        return 1

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed = {**getattr(self, "pushed", {}), key: value}


def context(xcom: Any = None) -> dict[str, Any]:
    return {"dag_run": SimpleNamespace(dag_id="dag", run_id="run-1"), "ti": FakeTI(xcom), "run_id": "run-1"}


@pytest.fixture
def job(tmp_path: Path) -> JobRoot:
    root = JobRoot(tmp_path / "counter")
    JobLedger(root).set_current(1, by="test", event="generation_created")
    root.update_generation_record(1, application="app.py", launches=[])
    return root


def with_hook(monkeypatch: pytest.MonkeyPatch, hook: FakeHook) -> FakeHook:
    monkeypatch.setattr(operators.StreamingJobOperator, "_requested_hook", lambda self: hook)
    return hook


def status(root: JobRoot, state: str = "RUNNING", batch: int | None = 3, error: str | None = None) -> None:
    root.write_status(
        DriverStatus(
            job="counter",
            generation=1,
            state=state,
            driver_id="d",
            host="elsewhere",
            pid=1,
            last_committed_batch=batch,
            error=error,
            heartbeat_at=time.time(),
            lease_s=30,
        )
    )


def test_constructors_refuse_unknown_choices() -> None:
    with pytest.raises(ValueError, match="wait_for"):
        StartStreamingJobOperator(task_id="t", job_root="/j", application="a", wait_for="soon")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="on_timeout"):
        StopStreamingJobOperator(task_id="t", job_root="/j", on_timeout="pray")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mode"):
        CleanupStreamingJobOperator(task_id="t", job_root="/j", mode="shred")  # type: ignore[arg-type]


def test_start_without_snapshot_on_a_retired_generation_is_terminal(
    job: JobRoot, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_hook(monkeypatch, FakeHook())
    job.update_generation_record(1, retired_at=time.time())
    start = StartStreamingJobOperator(task_id="start", job_root=str(job.location.path), application="app.py")
    with pytest.raises(AirflowFailException, match="FencedError.*Pass snapshot="):
        start.execute(context())


def test_stop_that_cannot_tell_whether_the_driver_runs_is_retried(
    job: JobRoot, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_hook(monkeypatch, FakeHook(Liveness.UNKNOWN))
    stop = StopStreamingJobOperator(task_id="stop", job_root=str(job.location.path))
    with pytest.raises(DriverStillRunningError, match="cannot tell yet"):  # transient: a retry asks again
        stop.execute(context())


def test_stop_timeout_fails_or_kills_as_configured(job: JobRoot, monkeypatch: pytest.MonkeyPatch) -> None:
    hook = with_hook(monkeypatch, FakeHook(Liveness.ALIVE))
    timeout = {"status": "timeout", "message": "no boundary in 1s", "payload": {}, "echo": {"generation": 1}}
    fail = StopStreamingJobOperator(task_id="stop", job_root=str(job.location.path))
    with pytest.raises(StopTimeoutError, match="did not stop: no boundary"):
        fail.execute_complete(context(), timeout)
    assert "kill" not in hook.calls  # on_timeout="fail" leaves the driver running
    kill = StopStreamingJobOperator(task_id="stop", job_root=str(job.location.path), on_timeout="kill")
    kill.poll_interval_s = 0.01
    monkeypatch.setattr(operators, "KILL_WAIT_S", 0.05)
    with pytest.raises(StopTimeoutError):  # killed, but the fake driver never goes away
        kill.execute_complete(context(), timeout)
    assert "kill" in hook.calls


def test_a_malformed_trigger_event_is_refused(job: JobRoot, monkeypatch: pytest.MonkeyPatch) -> None:
    with_hook(monkeypatch, FakeHook())
    stop = StopStreamingJobOperator(task_id="stop", job_root=str(job.location.path))
    for event in (None, {}, {"status": "done"}, {"status": "weird", "echo": {}}):
        with pytest.raises(AirflowException, match="unexpected trigger event"):
            stop.execute_complete(context(), event)
    sensor = StreamingJobHealthSensor(task_id="healthy", job_root=str(job.location.path))
    with pytest.raises(AirflowException, match="unexpected trigger event"):
        sensor.execute_complete(context(), {"status": "nope"})


def test_snapshot_refusals(job: JobRoot, monkeypatch: pytest.MonkeyPatch) -> None:
    with_hook(monkeypatch, FakeHook(Liveness.ALIVE))
    running = SnapshotStreamingJobOperator(
        task_id="snapshot", job_root=str(job.location.path), require_stopped=True
    )
    with pytest.raises(DriverStillRunningError, match="refusing to snapshot a running generation"):
        running.execute(context())
    with_hook(monkeypatch, FakeHook(Liveness.GONE))
    empty = SnapshotStreamingJobOperator(task_id="snapshot", job_root=str(job.location.path))
    with pytest.raises(
        AirflowFailException, match="BatchNotRetainedError: the generation has no committed batch"
    ):
        empty.execute(context())


def test_a_stopped_dstream_generation_cannot_be_snapshotted_after_the_fact(
    job: JobRoot, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    fixture = Path(__file__).resolve().parents[2] / "fixtures" / "checkpoints" / "dstream"
    shutil.copytree(fixture, Path(job.checkpoint(1).path))
    job.update_generation_record(1, engine="dstream")
    with_hook(monkeypatch, FakeHook(Liveness.GONE))
    snapshot = SnapshotStreamingJobOperator(task_id="snapshot", job_root=str(job.location.path))
    # terminal for this task (no retries spent waiting): a later run exports it once the driver runs again
    with pytest.raises(AirflowFailException, match="only its own driver can export its state") as raised:
        snapshot.execute(context())
    assert "generation=1" in str(raised.value) and "snapshot=True" in str(raised.value)
    named = SnapshotStreamingJobOperator(task_id="snapshot", job_root=str(job.location.path), batch=5)
    with pytest.raises(AirflowFailException, match="next completed batch"):
        named.execute(context())
    assert not job.snapshot_request_file(1).exists()  # nothing asked of a driver that is not there


def test_cleanup_refusals(job: JobRoot, monkeypatch: pytest.MonkeyPatch) -> None:
    with_hook(monkeypatch, FakeHook(Liveness.GONE))
    unnamed = CleanupStreamingJobOperator(task_id="cleanup", job_root=str(job.location.path))
    with pytest.raises(AirflowFailException, match="InvalidLaunchError: name the snapshot"):
        unnamed.execute(context())
    incomplete = CleanupStreamingJobOperator(
        task_id="cleanup", job_root=str(job.location.path), generation=1, stop_task_id="stop"
    )
    with pytest.raises(AirflowFailException, match="CleanupRefusedError.*stop in this run did not complete"):
        incomplete.execute(context(xcom={"outcome": "timed_out"}))
    with_hook(monkeypatch, FakeHook(Liveness.ALIVE))
    alive = CleanupStreamingJobOperator(task_id="cleanup", job_root=str(job.location.path), generation=1)
    with pytest.raises(DriverStillRunningError, match="refusing to retire generation 1"):
        alive.execute(context())
    assert (job.read_generation_record(1) or {}).get("retired_at") is None  # nothing was retired


def test_sensors_fail_at_once_on_a_failed_driver(job: JobRoot) -> None:
    status(job, state="FAILED", error="ForeignSnapshotError: not ours")
    for sensor in (
        StreamingJobHealthSensor(task_id="healthy", job_root=str(job.location.path)),
        CheckpointCommittedSensor(task_id="committed", job_root=str(job.location.path), batch=5),
    ):
        with pytest.raises(AirflowFailException, match="JobUnhealthyError"):
            sensor.poke(context())


def test_a_sensor_event_that_is_not_done_fails_with_its_message(job: JobRoot) -> None:
    sensor = CheckpointCommittedSensor(task_id="committed", job_root=str(job.location.path), batch=5)
    with pytest.raises(AirflowFailException, match="timed out after 60s"):
        sensor.execute_complete(context(), {"status": "timeout", "message": "timed out after 60s"})


def test_the_callback_does_nothing_while_it_must_not_act(
    job: JobRoot, monkeypatch: pytest.MonkeyPatch
) -> None:
    import airflow_checkpoint_provider.hooks.checkpoint as hooks

    fake = FakeHook(Liveness.ALIVE)
    monkeypatch.setattr(hooks, "StreamingJobHook", lambda *a, **k: fake)
    callback = restart_from_checkpoint(job_root=str(job.location.path))
    assert callback(context())["action"] == "none"  # a live driver is left alone
    JobLedger(job).acquire("redeploy/run-9", "redeploy", 600)
    held = callback(context())
    assert held["action"] == "none" and "redeploy/run-9" in held["reason"]  # a redeploy holds the lease
    JobLedger(job).release("redeploy/run-9")
    job.update_generation_record(1, retired_at=time.time())
    assert callback(context()) == {"action": "none", "reason": "generation 1 is retired"}


def test_a_hung_driver_is_alive_by_its_process_with_a_heartbeat_older_than_the_limit() -> None:
    """The callback's test for a hang (the kill and restart themselves: tests/integration/airflow/
    test_stop_timeout.py, a driver frozen with SIGSTOP)."""
    from airflow_checkpoint_provider.callbacks.checkpoint import _hung

    def view(liveness: Liveness, age: float, state: str = "RUNNING") -> DriverView:
        report = DriverStatus(
            job="counter",
            generation=1,
            state=state,
            driver_id="d",
            heartbeat_at=time.time() - age,
            lease_s=30,
        )
        return DriverView(liveness, "", report, None)

    assert _hung(view(Liveness.ALIVE, 100), None) is None  # not asked: a live process is never killed
    assert _hung(view(Liveness.ALIVE, 100), 300) is None  # a pause shorter than the limit
    assert "no heartbeat for 400s" in str(_hung(view(Liveness.ALIVE, 400), 300))
    assert _hung(view(Liveness.GONE, 400), 300) is None  # dead already: restarted without a kill
    assert _hung(view(Liveness.ALIVE, 400, "STOPPED"), 300) is None  # it ended; nothing hangs
    assert _hung(DriverView(Liveness.ALIVE, "", None, None), 300) is None  # no report to judge by
    # a limit under the driver's 30 s lease counts as the lease: its owner is not killed while it runs
    assert _hung(view(Liveness.ALIVE, 20), 8) is None
    assert "no heartbeat for 40s" in str(_hung(view(Liveness.ALIVE, 40), 8))


def test_a_driver_error_keeps_its_type(job: JobRoot) -> None:
    terminal = operators.driver_error(job, 1, "did not start", {"error": "ForeignSnapshotError: not ours"})
    assert type(terminal).__name__ == "ForeignSnapshotError" and terminal.terminal
    transient = operators.driver_error(job, 1, "did not start", {"error": "Py4JError: boom"})
    assert type(transient).__name__ == "DriverFailedError" and not transient.terminal
    assert isinstance(InvalidLaunchError("x"), ValueError)


def test_start_from_latest_without_a_snapshot_is_terminal(
    job: JobRoot, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_hook(monkeypatch, FakeHook())
    start = StartStreamingJobOperator(
        task_id="start", job_root=str(job.location.path), application="app.py", snapshot="latest"
    )
    with pytest.raises(AirflowFailException, match="SnapshotNotFoundError: snapshot='latest'"):
        start.execute(context())


def test_a_retried_stop_reports_the_acknowledgement_of_its_request(
    job: JobRoot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The driver answered the first try (stopped, with its snapshot) and is gone when a retry runs: the retry
    reports that stop and snapshot, not a bare "already stopped"; an answer to another request is not
    reported."""
    from airflow_checkpoint_provider.model.records import StopAck, StopMethod, StopOutcome, StopRequest
    from tests.support.crafted import make_checkpoint

    with_hook(monkeypatch, FakeHook(Liveness.GONE))
    make_checkpoint(Path(job.checkpoint(1).uri), committed=4)
    job.write_stop_request(1, StopRequest(request_id="r1", requested_at=time.time(), snapshot=True))
    ack = StopAck(
        request_id="r1",
        outcome=StopOutcome.STOPPED,
        method=StopMethod.FENCE,
        final_committed_batch=4,
        end_offsets=[{"offset": 50}],
        in_flight_batch=None,
        acknowledged_at=time.time(),
        stop_latency_s=0.4,
        snapshot_id="snap-b4",
        snapshot_s=1.2,
    )
    job.write_json(job.stop_ack_file(1), ack.to_json())
    stop = StopStreamingJobOperator(task_id="stop", job_root=str(job.location.path), snapshot=True)
    got = stop.execute(context())
    assert got["outcome"] == "already_stopped" and got["final_committed_batch"] == 4
    assert got["acknowledged"] == "stopped" and got["snapshot_id"] == "snap-b4" and got["request_id"] == "r1"
    job.write_json(job.stop_ack_file(1), {**ack.to_json(), "request_id": "r0"})  # another request's
    got = stop.execute(context())
    assert got["outcome"] == "already_stopped" and "snapshot_id" not in got


def test_settings_apply_refuses_new_code_and_unknown_values(
    job: JobRoot, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = with_hook(monkeypatch, FakeHook())
    root = str(job.location.path)
    odd = StartStreamingJobOperator(task_id="start", job_root=root, application="app.py", settings="later")
    with pytest.raises(
        AirflowFailException, match="InvalidLaunchError: settings must be 'recorded' or 'apply'"
    ):
        odd.execute(context())
    other = StartStreamingJobOperator(
        task_id="start", job_root=root, application="other.py", settings="apply"
    )
    with pytest.raises(AirflowFailException, match=r"PlanRefusedError: .*application app\.py -> other\.py"):
        other.execute(context())
    assert (job.read_generation_record(1) or {})["application"] == "app.py"  # nothing recorded
    assert "launch" not in " ".join(hook.calls)


def test_a_dry_run_that_does_not_fit_is_released_not_adopted(tmp_path: Path) -> None:
    """``LaunchStandbyOperator(dry_run_task_id=...)``'s refusals: the dry run's waiting driver is adopted only
    for the same generation, launch settings and target, alive and still offering itself; otherwise it is
    released (alive) or its scratch folder removed (gone). The adoption itself, and a killed driver's
    fallback: tests/e2e/test_safe_redeploy.py."""
    from airflow_checkpoint_provider.model.backends import LaunchTarget
    from airflow_checkpoint_provider.model.launch import LaunchSpec
    from airflow_checkpoint_provider.runtime import adoption

    root = JobRoot(tmp_path / "counter")
    launch = {"application": "v2.py", "application_args": ["--x"], "code_version": "v2", "conf": {}}
    target = LaunchTarget(conn_id=None, master_override=None, master="local[2]", deploy_mode="client")
    root.update_generation_record(2, **launch, standby_for=1)
    scratch = tmp_path / "counter" / "scratch" / "dry-run-g2-abcd1234"
    dry_job = JobRoot(scratch / "job", job="counter")
    dry_job.update_generation_record(2, **launch, target=target.to_json())
    spec = LaunchSpec(
        job_root=str(scratch / "job"),
        generation=2,
        job_name="counter",
        launch_id="L1",
        dry_run_output=str(scratch / "output"),
        stay_as_standby_s=60,
    )
    handle = DriverHandle(
        backend=Backend.LOCAL, launch_id="L1", master="local[2]", submitted_at=0, generation=2
    )

    class Hook:
        alive = Liveness.ALIVE
        target = LaunchTarget(conn_id=None, master_override=None, master="local[2]", deploy_mode="client")

        def liveness(self, _: DriverHandle) -> Liveness:
            return self.alive

        def launch_target(self) -> LaunchTarget:
            return self.target

    task = operators.LaunchStandbyOperator(
        task_id="standby", job_root=str(root.location.path), application="v2.py", dry_run_task_id="dry_run"
    )
    hook = Hook()

    def unfit(generation: int = 2) -> str | None:
        return task.unfit(hook, root, generation, dry_job, 2, handle)  # type: ignore[arg-type]

    assert "no longer offers itself" in str(unfit())
    adoption.offer(spec, "host:1:abc")
    assert unfit() is None
    assert "it ran generation 2, the standby is generation 3" in str(unfit(3))
    hook.alive = Liveness.GONE
    assert "its process is gone" in str(unfit())
    hook.alive = Liveness.ALIVE
    hook.target = LaunchTarget(
        conn_id="spark", master_override=None, master="spark://h:7077", deploy_mode="client"
    )
    assert "another Spark target" in str(unfit())
    hook.target = target
    root.update_generation_record(2, conf={"spark.sql.shuffle.partitions": "8"})
    assert "other launch settings (conf)" in str(unfit())

    # an XCom naming a scratch job outside this job's own: nothing there is read, released or removed
    elsewhere = tmp_path / "other" / "scratch" / "dry-run-g2-abcd1234"
    shutil.copytree(scratch, elsewhere)
    waiting = {
        "adoptable": {"scratch_job": str(elsewhere / "job"), "generation": 2, "launch": handle.to_json()}
    }
    adopted = task.adopt_dry_run(context(waiting), hook, root, 2, "run")  # type: ignore[arg-type]
    assert adopted is None and elsewhere.exists()
    assert not (elsewhere / "job" / "generations" / "2" / "control" / "adopt.json").exists()

    task.let_go(hook, dry_job, 2, handle, "not adopted: test")  # type: ignore[arg-type]
    released = dry_job.read_json(adoption.adopt_file(dry_job, 2), what="adoption")
    assert released is not None and released["release"] is True and scratch.exists()  # it removes it itself
    hook.alive = Liveness.GONE
    task.let_go(hook, dry_job, 2, handle, "not adopted: gone")  # type: ignore[arg-type]
    assert not scratch.exists() and not (tmp_path / "counter" / "scratch").exists()


class AnsweringHook(FakeHook):
    """A running driver: at its ``answer_at``-th observation it writes ``answer`` into the snapshot
    acknowledgement (with the pending request's id), or stops (``stop_at``)."""

    def __init__(self, answer: dict[str, Any] | None, answer_at: int = 2, stop_at: int | None = None) -> None:
        super().__init__(Liveness.ALIVE)
        self.answer, self.answer_at, self.stop_at, self.seen = answer, answer_at, stop_at, 0
        self.root: JobRoot | None = None

    def observe(self, root: JobRoot, generation: int) -> DriverView:
        self.seen += 1
        if self.stop_at is not None and self.seen >= self.stop_at:
            self.liveness = Liveness.GONE
        request = root.read_json(root.snapshot_request_file(generation), what="snapshot request")
        if self.answer is not None and request and self.seen >= self.answer_at:
            root.write_json(
                root.snapshot_ack_file(generation), {"request_id": request["request_id"], **self.answer}
            )
        return super().observe(root, generation)


def serving_status(root: JobRoot, serves: bool = True) -> None:
    status(root)
    current = root.read_status(1)
    assert current is not None
    root.write_status(replace(current, serves_snapshot_requests=serves))


def test_the_snapshot_operator_asks_a_running_driver_and_falls_back_to_the_exporter(job: JobRoot) -> None:
    op = SnapshotStreamingJobOperator(
        task_id="snapshot", job_root=str(job.location.path), poll_interval_s=0.01, export_timeout_s=5
    )
    ctx = context()
    # no driver of this package that serves requests: the exporter application, nothing asked
    assert op.ask_running_driver(ctx, job, 1, AnsweringHook(None), 7) is None  # no status at all
    serving_status(job, serves=False)  # a driver of an earlier version
    assert op.ask_running_driver(ctx, job, 1, AnsweringHook(None), 7) is None
    serving_status(job)
    gone = AnsweringHook(None)
    gone.liveness = Liveness.GONE
    assert op.ask_running_driver(ctx, job, 1, gone, 7) is None
    assert not job.snapshot_request_file(1).exists()
    # it answers: the request names the job, generation and batch; a rerun finds the answer without asking
    answered = AnsweringHook({"batch": 7, "snapshot_id": "s-g1-b7"})
    assert op.ask_running_driver(ctx, job, 1, answered, 7) == "s-g1-b7"
    request = job.read_json(job.snapshot_request_file(1), what="snapshot request") or {}
    assert (request["batch"], request["generation"], request["request_id"]) == (7, 1, "dag/run-1:snapshot")
    job.snapshot_request_file(1).remove()
    assert op.ask_running_driver(ctx, job, 1, answered, 7) == "s-g1-b7"
    assert not job.snapshot_request_file(1).exists()
    # the driver could not export, or stopped first: the exporter application exports instead
    other = context()
    other["dag_run"] = SimpleNamespace(dag_id="dag", run_id="run-2")
    failing = AnsweringHook({"batch": 8, "error": "ExportFailedError: disk full"})
    assert op.ask_running_driver(other, job, 1, failing, 8) is None
    third = {**context(), "dag_run": SimpleNamespace(dag_id="dag", run_id="run-3")}
    assert op.ask_running_driver(third, job, 1, AnsweringHook(None, stop_at=3), 9) is None
    # no answer in time: typed, naming the job, generation and batch; a rerun finds the answer later
    slow = SnapshotStreamingJobOperator(
        task_id="snapshot", job_root=str(job.location.path), poll_interval_s=0.01, export_timeout_s=0.2
    )
    fourth = {**context(), "dag_run": SimpleNamespace(dag_id="dag", run_id="run-4")}
    with pytest.raises(ExportFailedError, match="did not answer the snapshot request") as raised:
        slow.ask_running_driver(fourth, job, 1, AnsweringHook(None), 10)
    assert "generation=1" in str(raised.value) and "batch=10" in str(raised.value)
