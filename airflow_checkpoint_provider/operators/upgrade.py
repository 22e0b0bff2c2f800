"""Safe upgrades: plan the redeploy, dry-run the new code on a scratch copy, judge readiness, roll back.

``example_safe_redeploy`` chains them around the redeploy: plan → dry run → stop → snapshot → cleanup →
start → readiness → rollback (on failure). See ``docs/upgrades.md``.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.bases.skipmixin import SkipMixin
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airflow_checkpoint_provider._lazy import lazy
from airflow_checkpoint_provider.exceptions import (
    CheckpointProviderError,
    DryRunFailedError,
    InvalidLaunchError,
    NotReadyError,
    PlanRefusedError,
    SnapshotNotFoundError,
)
from airflow_checkpoint_provider.lease import run_holder
from airflow_checkpoint_provider.model.constants import DEFAULT_START_TIMEOUT_S, DEFAULT_STAY_AS_STANDBY_S
from airflow_checkpoint_provider.operators.checkpoint import (
    StartStreamingJobOperator,
    StreamingJobOperator,
    classified,
    truthy,
)

if TYPE_CHECKING:
    from pathlib import Path

    from airflow.sdk import Context

    from airflow_checkpoint_provider.checkpoint import ledger as _ledger
    from airflow_checkpoint_provider.checkpoint import processes as _processes
    from airflow_checkpoint_provider.checkpoint import snapshots as _snapshots
    from airflow_checkpoint_provider.checkpoint import upgrade as _upgrade
    from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot
    from airflow_checkpoint_provider.hooks.checkpoint import StreamingJobHook
    from airflow_checkpoint_provider.model import backends as _backends
    from airflow_checkpoint_provider.model import records as _records
    from airflow_checkpoint_provider.runtime import adoption as _adoption
else:
    _ledger = lazy("airflow_checkpoint_provider.checkpoint.ledger")
    _processes = lazy("airflow_checkpoint_provider.checkpoint.processes")
    _snapshots = lazy("airflow_checkpoint_provider.checkpoint.snapshots")
    _upgrade = lazy("airflow_checkpoint_provider.checkpoint.upgrade")
    _backends = lazy("airflow_checkpoint_provider.model.backends")
    _records = lazy("airflow_checkpoint_provider.model.records")
    _adoption = lazy("airflow_checkpoint_provider.runtime.adoption")

#: A user's check on a dry run's or a readiness window's report: returning False or raising fails it (an
#: assertion's message is in the error); anything else passes.
Check = Callable[[Mapping[str, Any]], Any]


def _run_check(check: Check | None, report: Mapping[str, Any]) -> str | None:
    """None when the check passes (or there is none), else why it failed."""
    if check is None:
        return None
    try:
        verdict = check(report)
    # the user's check may raise anything: that is its way to say no
    except Exception as exc:  # noqa: BLE001
        return f"the check raised {type(exc).__name__}: {exc}"
    if verdict is False:
        return "the check returned False"
    return None


class PlanRedeployOperator(StartStreamingJobOperator, SkipMixin):
    """Say what redeploying the job to this application will do, and refuse early what cannot work.

    Reads only (no lease, no Spark): the current generation's record, its newest verified snapshot, and the
    new application's declared ``ACP_CONTRACT`` (read with ``ast``, never imported). The decision
    (:mod:`~airflow_checkpoint_provider.model.plan`): ``none``, ``resume``, ``redeploy`` or ``refuse``, with
    one line of reason, logged and returned (XCom) with the changes and checks. A refusal fails the task
    with :class:`PlanRefusedError` unless ``fail_on_refuse=False``.

    :param intent: ``upgrade`` (default: what changes decides) or ``rotate`` (a fresh generation from a
        snapshot even when nothing changes) (templated).
    :param migration: the snapshot migration the new code is to apply (templated; default ``auto``).
    :param skip_unless_redeploy: skip this task, and so everything after it, when the plan is ``none`` or
        ``resume`` (a scheduled redeploy with an unchanged release does nothing); the plan is then in XCom
        under key ``plan``.
    :param resume_task_id: a downstream task that applies a ``resume`` (only settings change: stop, then
        ``StartStreamingJobOperator(settings="apply")``). With it, this task branches: on ``resume`` it
        follows only that task, on ``redeploy`` every other downstream task (``none`` still skips).
    """

    template_fields: Sequence[str] = (*StartStreamingJobOperator.template_fields, "intent", "migration")
    ui_color = "#e4ecd0"
    creates_job_root = False
    inherits_from_skipmixin = True  # a branch: a cleared run's skipped tasks stay skipped

    def __init__(
        self,
        *,
        intent: str = "upgrade",
        migration: str = "auto",
        fail_on_refuse: bool = True,
        skip_unless_redeploy: bool = False,
        resume_task_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.intent = intent
        self.migration = migration
        self.fail_on_refuse = fail_on_refuse
        self.skip_unless_redeploy = skip_unless_redeploy
        self.resume_task_id = resume_task_id

    @classified
    def execute(self, context: Context) -> Any:
        root = self.root()
        fields = self.launch_fields()
        plan = _upgrade.make_plan(
            root,
            application=fields["application"],
            code_version=fields["code_version"],
            application_args=fields["application_args"],
            conf=fields["conf"],
            intent=str(self.intent or "upgrade"),
            migration=str(self.migration or "auto"),
        )
        self.log.info("plan for job %s: %s", root.job, plan.reason)
        for line in plan.changes:
            self.log.info("  change: %s", line)
        for line in plan.checks:
            self.log.info("  check: %s", line)
        for line in plan.refusals:
            self.log.error("  refused: %s", line)
        if plan.action.value == "refuse" and self.fail_on_refuse:
            raise PlanRefusedError(
                plan.reason,
                path=fields["application"],
                job=root.job,
                generation=plan.generation,
                hint="Nothing was touched: fix the new code or its migration, then run the redeploy again",
            )
        skip_all = self.skip_unless_redeploy and plan.action.value == "none"
        if self.resume_task_id and not skip_all:
            # a branch: the skip below ends this task, so the plan is pushed here as its return value
            context["ti"].xcom_push(key="return_value", value=plan.to_json())
            resume = plan.action.value == "resume"
            if resume:
                self.log.info(
                    "only settings change: %s applies them on the same generation", self.resume_task_id
                )
            follow = [t.task_id for t in self.downstream_list if (t.task_id == self.resume_task_id) is resume]
            self.skip_all_except(context["ti"], follow)
            return plan.to_json()
        if self.skip_unless_redeploy and plan.action.value in ("none", "resume"):
            context["ti"].xcom_push(key="plan", value=plan.to_json())
            how = (
                "; to apply the new settings, stop the job (StopStreamingJobOperator) and start it "
                "with StartStreamingJobOperator(settings='apply')"
                if plan.action.value == "resume"
                else ""
            )
            raise AirflowSkipException(f"no redeploy: {plan.reason}{how}")
        return plan.to_json()


class DryRunStreamingJobOperator(StartStreamingJobOperator):
    """Run the new code on a scratch copy of the job before the cutover, and report what it did.

    The scratch job lives in ``<job root>/scratch/dry-run-g<N>-<id>/``: a copy of the snapshot (default the
    newest verified one of the current generation), a record for generation N (the number the redeploy will
    create), a scratch checkpoint, and the scratch output the launch contract points the application's sinks
    to (``--acp-dry-run-output``; ``ctx.output(path)``). The driver starts as the redeploy's would: fresh,
    with the snapshot (migrated) as initial state and its sources right after the snapshot's offsets, reading
    the live events after them in bounded batches. It passes when ``min_batches`` batches commit, it stops
    gracefully, and the user's ``check`` (given the report, with ``output``: the scratch output folder)
    passes. It never touches the live job: no lease, no ledger, no record, no sink; the scratch folder is
    removed afterwards (``keep_scratch`` keeps it). Returns (XCom) the report; a failure raises
    :class:`DryRunFailedError` with the driver's own error.

    :param snapshot: the snapshot to start from (templated); ``latest`` (default): the newest verified one of
        the current generation.
    :param min_batches: how many batches must commit.
    :param timeout_s: how long the dry run may take to commit them, in seconds.
    :param check: a function of the report; returning False or raising fails the dry run (see ``Check``).
    :param enabled: run the dry run (templated, e.g. ``"{{ params.dry_run }}"``).
    :param stay_as_standby: a passed dry run's driver stays up (``stay_as_standby_s``) for the redeploy's
        :class:`~airflow_checkpoint_provider.operators.checkpoint.LaunchStandbyOperator` (with
        ``dry_run_task_id``) to adopt it as the warm standby: one JVM start less, and a standby warmed by the
        new code's own query (templated, e.g. ``"{{ params.standby }}"``). The report's ``adoptable`` says
        it waits; its scratch folder then goes when it is adopted or leaves. Structured Streaming drivers
        only (a DStream dry run exits, and the standby task launches one).
    :param stay_as_standby_s: how long it waits to be adopted, in seconds.
    """

    template_fields: Sequence[str] = (
        *StartStreamingJobOperator.template_fields,
        "enabled",
        "stay_as_standby",
    )
    ui_color = "#e4ecd0"
    creates_job_root = False

    def __init__(
        self,
        *,
        snapshot: str | None = "latest",
        min_batches: int = 2,
        timeout_s: float = DEFAULT_START_TIMEOUT_S,
        stop_timeout_s: float = 60.0,
        check: Check | None = None,
        keep_scratch: bool = False,
        enabled: bool | str = True,
        stay_as_standby: bool | str = False,
        stay_as_standby_s: float = DEFAULT_STAY_AS_STANDBY_S,
        **kwargs: Any,
    ) -> None:
        super().__init__(snapshot=snapshot, **kwargs)
        if stay_as_standby_s <= 0:
            raise ValueError(f"stay_as_standby_s must be > 0, got {stay_as_standby_s}")
        if min_batches < 1:
            raise ValueError(f"min_batches must be >= 1, got {min_batches}")
        self.min_batches = min_batches
        self.timeout_s = timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.check = check
        self.keep_scratch = keep_scratch
        self.enabled = enabled
        self.stay_as_standby = stay_as_standby
        self.stay_as_standby_s = stay_as_standby_s

    def resolve_snapshot(self, root: JobRoot, current: int | None) -> str:
        wanted = str(self.snapshot or "latest")
        if wanted != "latest":
            return wanted
        for entry in _snapshots.SnapshotCatalogue(root).list():
            if entry.complete and entry.verified and (current is None or entry.generation == current):
                return entry.snapshot_id
        raise SnapshotNotFoundError(
            f"a dry run needs a verified snapshot of generation {current}, and there is none",
            path=root.snapshots_dir().uri,
            job=root.job,
            generation=current,
            hint="Take one on the running job first (SnapshotStreamingJobOperator), or name one",
        )

    @classified
    def execute(self, context: Context) -> Any:
        if not truthy(self.enabled):
            self.log.info("dry run disabled")
            return {"enabled": False}
        stay = truthy(self.stay_as_standby) and not self.keep_scratch
        root = self.root()
        current = root.current_generation()
        snapshot = self.resolve_snapshot(root, current)
        generation = max([*root.generations(), current or 0]) + 1
        scratch = _upgrade.scratch_dir(root, f"dry-run-g{generation}-{uuid.uuid4().hex[:8]}")
        for earlier in _adoption.release_waiting(
            scratch.parent, root.job, "a new dry run of the job started"
        ):
            self.log.info("released an earlier dry run's driver that waited to be adopted (%s)", earlier.name)
        started = time.monotonic()
        report: dict[str, Any] = {
            "job": root.job,
            "generation": generation,
            "snapshot": snapshot,
            "scratch": str(scratch),
            "output": str(scratch / "output"),
            "min_batches": self.min_batches,
        }
        hook = self.hook()
        handle = None
        job = None
        failure: str | None = None
        waiting: dict[str, Any] | None = None
        launch = self.launch_fields() | ({"stay_as_standby_s": self.stay_as_standby_s} if stay else {})
        try:
            job = _upgrade.make_scratch_job(root, scratch, snapshot, generation, launch)
            self.log.info(
                "dry run of %s on generation %s's snapshot %s in %s",
                self.application,
                current,
                snapshot,
                scratch,
            )
            handle, decision = hook.launch_generation(job, generation, by=f"dry-run:{run_holder(context)}")
            report.update(mode=decision.mode.value, launch_id=handle.launch_id)
            failure = self.await_batches(job, generation, handle, report)
            if failure is None:
                failure = self.stop(job, generation, handle, report)
            report["files_written"] = len(_upgrade.files_under(scratch))
            report["output_files"] = sorted(_upgrade.files_under(scratch / "output"))
            if failure is None:
                failure = _run_check(self.check, report)
                report["check"] = "none" if self.check is None else ("failed" if failure else "passed")
            if stay and failure is None:
                waiting = self.offered(hook, job, generation, handle)
        finally:
            if waiting is not None:
                report["adoptable"] = waiting  # it removes its scratch folder when adopted or gone
            elif job is not None and handle is not None:
                if stay:  # it may be waiting: it need not wait out its time (ensure_gone would kill it)
                    try:
                        _adoption.release(job, generation, failure or "the dry run did not pass")
                    except (CheckpointProviderError, OSError) as exc:
                        self.log.info("could not release the dry run's driver: %s", exc)
                self.ensure_gone(hook, job, generation, handle)
            report["seconds"] = round(time.monotonic() - started, 1)
            if not self.keep_scratch and waiting is None:
                shutil.rmtree(scratch, ignore_errors=True)
                _remove_empty(scratch.parent)
        report["passed"] = failure is None
        if failure is not None:
            report["error"] = failure
            self.log.error("dry run failed: %s", failure)
            raise DryRunFailedError(
                f"the new code failed its dry run on snapshot {snapshot}: {failure}",
                path=self.application,
                job=root.job,
                generation=generation,
                hint="The live job was not touched; fix the new code and run the redeploy again",
            )
        self.log.info(
            "dry run passed: %s batches, %s input rows, %s files in scratch, %.1fs",
            report.get("batches"),
            report.get("input_rows"),
            report.get("files_written"),
            report["seconds"],
        )
        return report

    def offered(
        self, hook: StreamingJobHook, job: JobRoot, generation: int, handle: Any
    ) -> dict[str, Any] | None:
        """What the standby task needs to adopt the dry run's driver, once it offers itself (it does right
        after its stop); None when it does not within a few seconds, or exits (a DStream driver does)."""
        deadline = time.monotonic() + OFFER_WAIT_S
        while True:
            alive = hook.liveness(handle) is _backends.Liveness.ALIVE
            offer = _adoption.read_offer(job, generation, handle.launch_id)
            if offer is not None and alive:
                self.log.info(
                    "the dry run's driver (pid %s on %s) waits to be adopted as the standby until %s",
                    offer.get("pid"),
                    offer.get("host"),
                    time.strftime("%H:%M:%S", time.localtime(float(offer["until"]))),
                )
                return {"scratch_job": job.location.uri, "generation": generation, "launch": handle.to_json()}
            if not alive or time.monotonic() >= deadline:
                self.log.info("the dry run's driver does not stay (it offers no adoption, or exited)")
                return None
            time.sleep(0.5)

    def await_batches(self, job: JobRoot, generation: int, handle: Any, report: dict[str, Any]) -> str | None:
        """Wait for ``min_batches`` commits; the reason it failed, or None."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            status = job.read_status(generation)
            ours = status is not None and status.launch_id == handle.launch_id
            if ours and status is not None:
                report.update(
                    start_reason=status.start_reason,
                    batches=(status.last_committed_batch + 1)
                    if status.last_committed_batch is not None
                    else 0,
                    input_rows=status.total_input_rows,
                )
                if status.state is _records.DriverState.FAILED:
                    return f"the driver failed: {status.error}"
                if (
                    status.last_committed_batch is not None
                    and status.last_committed_batch + 1 >= self.min_batches
                ):
                    return None
            gone = (
                handle.pid
                and _processes.local_liveness(handle.pid, handle.host, handle.launch_id)
                is _backends.Liveness.GONE
            )
            if gone:
                time.sleep(1.0)  # its last status write may land just after it exits
                status = job.read_status(generation)
                if status is not None and status.error:
                    return f"the driver failed: {status.error}"
                return (
                    f"the driver exited after {report.get('batches', 0)} batch(es) (log: {handle.log_path})"
                )
            if time.monotonic() >= deadline:
                return (
                    f"only {report.get('batches', 0)} of {self.min_batches} batches committed in "
                    f"{self.timeout_s:.0f}s (log: {handle.log_path})"
                )
            time.sleep(self.poll_interval_s)

    def stop(self, job: JobRoot, generation: int, handle: Any, report: dict[str, Any]) -> str | None:
        """Stop the dry run gracefully, as a redeploy will stop the new code one day."""
        request = _records.StopRequest(
            request_id=uuid.uuid4().hex,
            requested_at=time.time(),
            timeout_s=self.stop_timeout_s,
            requested_by="dry-run",
            job_root=job.location.uri,
            generation=generation,
        )
        job.write_stop_request(generation, request)
        asked = time.monotonic()
        while time.monotonic() - asked < self.stop_timeout_s:
            ack = job.read_stop_ack(generation)
            if ack is not None and ack.request_id == request.request_id:
                report["stop"] = f"{ack.outcome} in {time.monotonic() - asked:.1f}s"
                status = job.read_status(generation)
                if status is not None and status.last_committed_batch is not None:
                    report["batches"] = status.last_committed_batch + 1
                    report["input_rows"] = status.total_input_rows
                return None
            status = job.read_status(generation)
            if status is not None and status.state is _records.DriverState.FAILED:
                return f"the driver failed while stopping: {status.error}"
            time.sleep(self.poll_interval_s)
        return f"the dry run did not stop within {self.stop_timeout_s:.0f}s of a stop request"

    def ensure_gone(self, hook: StreamingJobHook, job: JobRoot, generation: int, handle: Any) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if hook.liveness(handle) is not _backends.Liveness.ALIVE:
                return
            time.sleep(0.5)
        self.log.warning("the dry run's driver is still up: killing it (scratch only)")
        hook.kill(handle)


#: How long a passed dry run's driver may take to offer itself for adoption after its stop (seconds).
OFFER_WAIT_S = 15.0


def _remove_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


class RedeployFailedOperator(BaseOperator):
    """Fails, naming the redeploy's failed steps: put it last with ``trigger_rule="one_failed"`` downstream of
    every step, so that the DAG run fails whenever a step failed (Airflow judges a run by its leaf tasks, and
    the rollback and the standby's discard are leaves that succeed when they did their job)."""

    ui_color = "#f0d0d0"

    def __init__(self, *, trigger_rule: str = "one_failed", retries: int = 0, **kwargs: Any) -> None:
        super().__init__(trigger_rule=trigger_rule, retries=retries, **kwargs)

    def execute(self, context: Context) -> Any:
        raise AirflowFailException(
            "the redeploy failed: see the failed task (after the cutover, the rollback task ran)"
        )


class ReadinessOperator(StreamingJobOperator):
    """Judge a generation after a cutover over a readiness window, and fail (for the rollback) if it is not
    ready.

    Ready means, over ``window_s`` seconds from this task's start: the driver stays up and never reports
    FAILED, at least ``min_batches`` batches commit in the window, the source lag at the window's end is not
    above ``max_lag`` records or has fallen since the window began, and the user's ``check`` (given the
    report, with ``output``: the job's sink folder if ``sink`` is given) passes. A failure fails at once with
    :class:`NotReadyError`. Returns (XCom) the report.

    :param generation: the generation to judge (templated; default the job's current one).
    """

    template_fields: Sequence[str] = (
        *StreamingJobOperator.template_fields,
        "generation",
        "sink",
        "window_s",
    )
    ui_color = "#e4ecd0"

    def __init__(
        self,
        *,
        generation: int | str | None = None,
        window_s: float | str = 30.0,
        min_batches: int = 2,
        max_lag: int = 1000,
        check: Check | None = None,
        sink: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.generation = generation
        self.window_s = window_s
        self.min_batches = min_batches
        self.max_lag = max_lag
        self.check = check
        self.sink = sink

    @classified
    def execute(self, context: Context) -> Any:
        root = self.root()
        given = str(self.generation or "").strip()
        generation = int(given) if given else root.current_generation()
        if generation is None:
            raise InvalidLaunchError(
                "the job has no generation to judge", path=root.location.uri, job=root.job
            )
        hook = self.hook(root, generation)
        window_s = float(self.window_s)
        report: dict[str, Any] = {"job": root.job, "generation": generation, "window_s": window_s}
        if self.sink:
            report["output"] = self.sink
        first = root.read_status(generation)
        start_batch = first.last_committed_batch if first and first.last_committed_batch is not None else -1
        start_lag = _lag(first)
        deadline = time.monotonic() + window_s
        failure: str | None = None
        while failure is None:
            status = root.read_status(generation)
            view = hook.observe(root, generation)
            if status is not None and status.state is _records.DriverState.FAILED:
                failure = f"generation {generation} FAILED: {status.error}"
            elif not view.alive:
                failure = f"generation {generation}'s driver is gone: {view.reason}"
            if failure is not None or time.monotonic() >= deadline:
                break
            time.sleep(self.poll_interval_s)
        status = root.read_status(generation)
        end_batch = status.last_committed_batch if status and status.last_committed_batch is not None else -1
        end_lag = _lag(status)
        report.update(
            batches=end_batch - start_batch,
            last_committed_batch=end_batch,
            lag_start=start_lag,
            lag_end=end_lag,
        )
        if failure is None and end_batch - start_batch < self.min_batches:
            failure = f"only {end_batch - start_batch} of {self.min_batches} batches committed in the window"
        if (
            failure is None
            and end_lag is not None
            and end_lag > self.max_lag
            and (start_lag is None or end_lag >= start_lag)
        ):
            failure = f"the source lag grew from {start_lag} to {end_lag} records"
        if failure is None:
            failure = _run_check(self.check, report)
        report["ready"] = failure is None
        if failure is not None:
            report["error"] = failure
            raise NotReadyError(
                f"generation {generation} is not ready: {failure}",
                path=root.generation_dir(generation).uri,
                job=root.job,
                generation=generation,
                hint="The rollback task starts the previous code from the snapshot taken before the cutover",
            )
        self.log.info("generation %s is ready: %s", generation, report)
        return report


def _lag(status: Any) -> int | None:
    if status is None or not status.source_lag:
        return None
    known = [lag for lag in status.source_lag if lag is not None]
    return sum(known) if known else None


class RollbackStreamingJobOperator(StreamingJobOperator):
    """Roll a bad generation back to the code that ran before it, losing and doubling nothing.

    The bad generation (default: the job's current one) must have started from a snapshot of its previous
    generation. The rollback stops it (gracefully for ``stop_timeout_s``, then kills it: nothing of its state
    is kept), marks it rolled back (its checkpoint stays in place, untouched; its sink output stays under its
    own generation key and is superseded), and starts a new generation with the previous generation's
    recorded application, arguments and confs, from the same snapshot: it re-reads every event since the
    snapshot's offsets (the source must still hold them). Recorded in the ledger (``rolled_back``) and shown
    by ``airflow-checkpoint status``. Idempotent: a rerun finds the rollback generation and only waits for
    it. Returns (XCom) ``rolled_back``, ``generation``, ``snapshot``.

    A generation this run did not create but restarted with new settings (``StartStreamingJobOperator(
    settings="apply")``, the safe redeploy's ``resume`` branch) is rolled back in place: stopped, its record
    given back the application arguments and Spark confs it ran with before, and started again on its own
    checkpoint (``settings_reverted`` in the ledger; returns ``settings_reverted``, ``generation``).

    :param generation: the bad generation (templated; default the current one).
    :param only_own: roll back only a generation this DAG run created (default): with
        ``trigger_rule="one_failed"`` a failure *before* the cutover (the job still on its old generation)
        then rolls nothing back.
    """

    template_fields: Sequence[str] = (*StreamingJobOperator.template_fields, "generation")
    lease_operation = "rollback"
    ui_color = "#f0d0d0"

    def __init__(
        self,
        *,
        generation: int | str | None = None,
        stop_timeout_s: float = 30.0,
        start_timeout_s: float = DEFAULT_START_TIMEOUT_S,
        release_lease: bool = True,
        only_own: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(release_lease=release_lease, **kwargs)
        self.generation = generation
        self.only_own = only_own
        self.stop_timeout_s = stop_timeout_s
        self.start_timeout_s = start_timeout_s

    @classified
    def execute(self, context: Context) -> Any:
        root = self.root()
        holder = self.take_lease(context, root)
        ledger = _ledger.JobLedger(root)
        current = ledger.read().current_generation
        given = str(self.generation or "").strip()
        bad = int(given) if given else current
        if bad is None:
            raise InvalidLaunchError(
                "the job has no generation to roll back", path=root.location.uri, job=root.job
            )
        bad_record = root.read_generation_record(bad) or {}
        target = next(
            (g for g, r in sorted(root.generation_records().items()) if r.get("rolled_back_from") == bad),
            None,
        )
        own_settings = bad_record.get("settings_applied_by") == holder and bad == current
        if target is None and bad_record.get("created_by") != holder and own_settings:
            # this run did not create the generation but restarted it with new settings: put the old back
            self.revert_settings(root, ledger, bad, holder)
            target = bad
        elif target is None and self.only_own and bad_record.get("created_by") != holder:
            self.log.info(
                "generation %s was not created by this run (%s): nothing this run deployed to roll back",
                bad,
                bad_record.get("created_by"),
            )
            return self.done(context, root, {"rolled_back": None, "generation": current})
        if target is None:  # roll the generation back
            previous, snapshot = bad_record.get("previous_generation"), bad_record.get("snapshot")
            if previous is None or not snapshot:
                raise InvalidLaunchError(
                    f"generation {bad} did not start from a snapshot of an earlier generation: there is "
                    "nothing to roll back to",
                    path=root.generation_record_file(bad).uri,
                    job=root.job,
                    generation=bad,
                )
            if current != bad:
                raise InvalidLaunchError(
                    f"generation {bad} is not the job's current generation ({current}): refusing to roll "
                    "back over a newer one",
                    path=root.location.uri,
                    job=root.job,
                    generation=bad,
                )
            self.stop_bad(root, bad, holder)
            prev_record = root.read_generation_record(int(previous)) or {}
            launch = {
                k: prev_record[k]
                for k in (
                    "application",
                    "application_args",
                    "code_version",
                    "conf",
                    "heartbeat_s",
                    "lease_s",
                    "application_sha256",
                    "target",
                )
                if k in prev_record
            }
            _snapshots.verify_snapshot(root, str(snapshot))
            target = max(root.generations()) + 1
            root.update_generation_record(
                target,
                **launch,
                snapshot=snapshot,
                created_at=time.time(),
                created_by=holder,
                previous_generation=bad,
                rolled_back_from=bad,
            )
            root.update_generation_record(
                bad, rolled_back_at=time.time(), rolled_back_by=holder, superseded_by=target
            )
            ledger.set_current(
                target,
                by=holder,
                event="rolled_back",
                bad=bad,
                to_code=launch.get("code_version"),
                snapshot=snapshot,
                previous=bad,
            )
            self.log.info(
                "generation %s rolled back: generation %s runs %s again from snapshot %s",
                bad,
                target,
                launch.get("code_version") or launch.get("application"),
                snapshot,
            )
        hook = self.hook(root, target)
        view = hook.observe(root, target)
        if not view.alive:
            if view.provably_stopped:  # a revert whose stop had to kill a hung driver
                self.withdraw_open_stop(root, target, holder)
            handle, _ = hook.launch_generation(root, target, by=holder)
            launch_id = handle.launch_id
        else:
            launch_id = view.status.launch_id if view.status else ""
        from airflow_checkpoint_provider.checkpoint import watch

        seen = self.wait(
            lambda: watch.driver_started(root, target, launch_id, need_commit=True),
            self.start_timeout_s,
            f"rollback generation {target} to start",
        )
        if not seen.done:
            raise NotReadyError(
                f"rollback generation {target} did not start: {seen.message}",
                path=root.generation_dir(target).uri,
                job=root.job,
                generation=target,
            )
        if target == bad:
            return self.done(
                context, root, {"rolled_back": None, "settings_reverted": bad, "generation": bad}
            )
        return self.done(
            context,
            root,
            {
                "rolled_back": bad,
                "generation": target,
                "snapshot": (root.read_generation_record(target) or {}).get("snapshot"),
            },
        )

    def revert_settings(self, root: JobRoot, ledger: _ledger.JobLedger, generation: int, holder: str) -> None:
        """Stop ``generation`` and record the settings it ran with before this run applied new ones
        (``StartStreamingJobOperator(settings="apply")``); the caller starts it again on its own checkpoint.
        Its state is kept: the checkpoint resumes (a kill after the grace is the crash path, exact too). Done
        once: a rerun finds the revert recorded."""
        record = root.read_generation_record(generation) or {}
        before = record.get("settings_before") or {}
        change = _upgrade.settings_change(record)
        if change and change["reverted_at"] and change["reverted_by"] == holder:
            return
        self.stop_bad(root, generation, holder)
        root.update_generation_record(
            generation,
            application_args=before.get("application_args", []),
            conf=before.get("conf", {}),
            settings_reverted_by=holder,
            settings_reverted_at=time.time(),
        )
        ledger.record("settings_reverted", by=holder, generation=generation)
        self.log.info(
            "generation %s restarts on its own checkpoint with the settings it ran before this run: %s",
            generation,
            before,
        )

    def stop_bad(self, root: JobRoot, bad: int, holder: str) -> None:
        """Stop the bad generation's driver, gracefully, then by a kill after the grace (a rolled-back
        generation's state is not kept; a generation whose settings are reverted resumes from its checkpoint,
        which a kill leaves intact)."""
        hook = self.hook(root, bad)
        view = hook.observe(root, bad)
        if not view.alive:
            return
        request = _records.StopRequest(
            request_id=uuid.uuid4().hex,
            requested_at=time.time(),
            timeout_s=self.stop_timeout_s,
            on_timeout=_records.OnStopTimeout.FORCE_STOP,
            requested_by="rollback",
            job_root=root.location.uri,
            generation=bad,
        )
        root.write_stop_request(bad, request)
        deadline = time.monotonic() + self.stop_timeout_s + 10
        while time.monotonic() < deadline:
            if not hook.observe(root, bad).alive:
                return
            time.sleep(self.poll_interval_s)
        view = hook.observe(root, bad)
        if view.handle is not None:
            self.log.warning("generation %s did not stop: killing its driver", bad)
            hook.kill(view.handle)
        deadline = time.monotonic() + 60
        while hook.observe(root, bad).alive and time.monotonic() < deadline:
            time.sleep(self.poll_interval_s)
        if hook.observe(root, bad).alive:
            raise NotReadyError(
                f"generation {bad}'s driver could not be stopped: no rollback beside it",
                path=root.generation_dir(bad).uri,
                job=root.job,
                generation=bad,
            )
        self.answer_killed(root, bad, holder)


__all__ = [
    "DryRunStreamingJobOperator",
    "PlanRedeployOperator",
    "ReadinessOperator",
    "RedeployFailedOperator",
    "RollbackStreamingJobOperator",
]
