"""Operators for the lifecycle of a checkpointed streaming job: start, stop, snapshot, cleanup.

A redeploy DAG chains them (stop → snapshot → cleanup → start from the snapshot); a recovery is a start
without a snapshot, which restarts the current generation on its own checkpoint. Each operator records intent
under the job root before acting, holds the job's lease (one lifecycle operation per job: a second redeploy
fails fast naming the holder, until that run ends or the lease expires), and is idempotent: rerunning a failed
DAG run finishes the work and never repeats it wrongly.

Constructors only record intent; hooks are built in ``execute``. Errors that retrying cannot fix (corrupt
checkpoint, foreign snapshot, lease held, ...) fail the task at once (``AirflowFailException``).
"""

from __future__ import annotations

import functools
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar
from urllib.parse import quote

from airflow.sdk import BaseOperator, BaseOperatorLink
from airflow.sdk.configuration import conf
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_checkpoint_provider._lazy import lazy
from airflow_checkpoint_provider.assets import snapshot_alias, snapshot_asset
from airflow_checkpoint_provider.exceptions import (
    BatchNotRetainedError,
    CheckpointProviderError,
    CleanupRefusedError,
    DriverFailedError,
    DriverStillRunningError,
    ExportFailedError,
    FencedError,
    InvalidLaunchError,
    PlanRefusedError,
    SnapshotNotFoundError,
    StateNotExportableError,
    StopTimeoutError,
    error_class,
)
from airflow_checkpoint_provider.lease import run_finished, run_holder
from airflow_checkpoint_provider.model.constants import (
    DEFAULT_EXPORT_TIMEOUT_S,
    DEFAULT_HEARTBEAT_S,
    DEFAULT_JOB_LEASE_TTL_S,
    DEFAULT_LEASE_S,
    DEFAULT_STANDBY_TIMEOUT_S,
    DEFAULT_START_TIMEOUT_S,
    DEFAULT_STOP_TIMEOUT_S,
    DEFER_AFTER_S,
    DEFER_TIMEOUT_MARGIN_S,
    KILL_WAIT_S,
    STOP_EXIT_GRACE_S,
    optional_int,
)

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.sdk.types import TaskInstanceKey

    from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot
    from airflow_checkpoint_provider.hooks.checkpoint import StreamingJobHook
    from airflow_checkpoint_provider.model.records import StopRequest
    from airflow_checkpoint_provider.triggers.checkpoint import JobRootTrigger

# What the tasks run, imported when a task executes (a DAG file importing this module stays cheap to parse).
if TYPE_CHECKING:  # type checkers see the modules; at run time they load at first use
    from airflow_checkpoint_provider.checkpoint import inspector as _inspector
    from airflow_checkpoint_provider.checkpoint import jobroot as _jobroot
    from airflow_checkpoint_provider.checkpoint import ledger as _ledger
    from airflow_checkpoint_provider.checkpoint import processes as _processes
    from airflow_checkpoint_provider.checkpoint import snapshots as _snapshots
    from airflow_checkpoint_provider.checkpoint import upgrade as _upgrade
    from airflow_checkpoint_provider.checkpoint import watch as watch
    from airflow_checkpoint_provider.hooks import checkpoint as _hooks
    from airflow_checkpoint_provider.model import backends as _backends
    from airflow_checkpoint_provider.model import decisions as _decisions
    from airflow_checkpoint_provider.model import plan as _plan
    from airflow_checkpoint_provider.model import records as _records
    from airflow_checkpoint_provider.runtime import adoption as _adoption
    from airflow_checkpoint_provider.triggers import checkpoint as _triggers
else:
    watch = lazy("airflow_checkpoint_provider.checkpoint.watch")
    _inspector = lazy("airflow_checkpoint_provider.checkpoint.inspector")
    _jobroot = lazy("airflow_checkpoint_provider.checkpoint.jobroot")
    _ledger = lazy("airflow_checkpoint_provider.checkpoint.ledger")
    _processes = lazy("airflow_checkpoint_provider.checkpoint.processes")
    _snapshots = lazy("airflow_checkpoint_provider.checkpoint.snapshots")
    _upgrade = lazy("airflow_checkpoint_provider.checkpoint.upgrade")
    _hooks = lazy("airflow_checkpoint_provider.hooks.checkpoint")
    _backends = lazy("airflow_checkpoint_provider.model.backends")
    _decisions = lazy("airflow_checkpoint_provider.model.decisions")
    _plan = lazy("airflow_checkpoint_provider.model.plan")
    _records = lazy("airflow_checkpoint_provider.model.records")
    _triggers = lazy("airflow_checkpoint_provider.triggers.checkpoint")
    _adoption = lazy("airflow_checkpoint_provider.runtime.adoption")

#: What a stop does when the driver does not reach a batch boundary in time.
OnTimeout = Literal["fail", "force_stop", "kill"]
#: What a start waits for.
WaitFor = Literal["committed", "running"]
#: How a restart of an existing generation is launched: as recorded, or with this task's settings.
Settings = Literal["recorded", "apply"]
#: What cleanup does with a retired generation's checkpoint.
CleanupMode = Literal["retire", "delete"]

P = ParamSpec("P")
R = TypeVar("R")


def classified(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn terminal provider errors into ``AirflowFailException`` (no pointless retries); keep the
    message."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except CheckpointProviderError as exc:
            if exc.terminal:
                raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
            raise

    return wrapper


class StreamingJobLink(BaseOperatorLink):
    """The job's page in the provider's UI (``/checkpoint/jobs/<job>``)."""

    name = "Streaming job"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        return str(XCom.get_value(key=self.xcom_key, ti_key=ti_key) or "")


class SparkUILink(BaseOperatorLink):
    """The driver's Spark UI, while it runs (recorded by the start; empty when the UI is disabled)."""

    name = "Spark UI"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        return str(XCom.get_value(key=self.xcom_key, ti_key=ti_key) or "")


class StreamingJobOperator(BaseOperator):
    """What every lifecycle operator shares: the job root, the Spark target, the lease, waiting.

    A started streaming driver outlives the task that started it, by design: ``on_kill`` (a task marked
    failed or cleared, a worker shut down) never stops or kills a driver. It only gives up this task's
    waiting; the driver goes on, and a rerun reconnects to it. Stop a job with
    :class:`StopStreamingJobOperator`.

    :param job_root: the job's root folder or URI (templated). Only a start may create it; every other
        operator refuses a job root that does not exist (``JobRootNotFoundError``).
    :param job_name: display name; default the job root's last path element (templated).
    :param conn_id: a ``spark`` connection (templated); None or empty runs drivers locally (``local[2]``) as
        detached processes. A relaunch of an existing generation goes where it ran, whatever is given here;
        naming another target is refused (``LaunchTargetError``).
    :param master: override the connection's master (templated; empty means the connection's).
    :param python_path: folders the driver's Python must import from (the application's package); this
        provider's own folder is always added.
    :param lease_ttl_s: how long the job's lease lasts without renewal, in seconds (a crashed run's lease
        expires; a finished run's lease is free at once).
    :param release_lease: give the lease up when this task succeeds (the last task of a lifecycle run).
    :param poll_interval_s: how often synchronous waits and triggers look at the job root, in seconds.
    :param deferrable: wait in the triggerer instead of a worker slot (default: Airflow's
        ``[operators] default_deferrable``). A deferral's timeout is the wait's own timeout plus
        ``DEFER_TIMEOUT_MARGIN_S``; the trigger itself reports a timeout first.
    :param defer_after_s: a deferrable wait first waits in the task this long, in seconds, and defers only
        if the condition still pends (default ``DEFER_AFTER_S``): a quick stop never defers, which avoids an
        Airflow 3.3 scheduler race that fails a task whose trigger fires right after it deferred.
    """

    template_fields: Sequence[str] = ("job_root", "job_name", "conn_id", "master")
    ui_color = "#f0e4d0"
    operator_extra_links: tuple[BaseOperatorLink, ...] = (StreamingJobLink(),)
    lease_operation = "lifecycle"
    #: Only a start may create the job root (a job's first start); every other step needs an existing job.
    creates_job_root = False

    def __init__(
        self,
        *,
        job_root: str,
        job_name: str | None = None,
        conn_id: str | None = None,
        master: str | None = None,
        python_path: Sequence[str] = (),
        lease_ttl_s: float = DEFAULT_JOB_LEASE_TTL_S,
        release_lease: bool = False,
        poll_interval_s: float = 1.0,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        defer_after_s: float = DEFER_AFTER_S,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.defer_after_s = defer_after_s
        self.job_root = job_root
        self.job_name = job_name
        self.conn_id = conn_id
        self.master = master
        self.python_path = list(python_path)
        self.lease_ttl_s = lease_ttl_s
        self.release_lease = release_lease
        self.poll_interval_s = poll_interval_s
        self.deferrable = deferrable

    # --- shared helpers --------------------------------------------------------------------------------

    def on_kill(self) -> None:
        """Give up this task's waiting and leave the streaming driver running: a started job outlives the task
        that started it, by design (stop it with :class:`StopStreamingJobOperator`). A rerun reconnects."""
        self.log.info(
            "task killed: the streaming driver, if any, keeps running (this task only stops waiting)"
        )

    def root(self) -> JobRoot:
        """The job root, which must exist (:meth:`JobRoot.require_job`) unless this operator may create it."""
        root = _jobroot.JobRoot(self.job_root, job=self.job_name or None)
        return root if self.creates_job_root else root.require_job()

    def hook(self, root: JobRoot | None = None, generation: int | None = None) -> StreamingJobHook:
        """The hook for this task's Spark target; given a generation, the hook that reaches where that
        generation runs (its recorded target: a relaunch never falls back to another engine)."""
        hook = self._requested_hook()
        if root is not None and generation is not None:
            return hook.for_generation(root, generation)
        return hook

    def _requested_hook(self) -> StreamingJobHook:
        return _hooks.StreamingJobHook(
            self.conn_id or None, master=self.master or None, python_path=self.python_path
        )

    def link(self, context: Context, link: BaseOperatorLink, url: str | None) -> None:
        """Record an extra link's target for this task instance (what the UI's link button opens)."""
        if url:
            context["ti"].xcom_push(key=link.xcom_key, value=url)

    def take_lease(self, context: Context, root: JobRoot) -> str:
        self.link(context, StreamingJobLink(), f"/checkpoint/jobs/{quote(root.job, safe='')}")
        holder = run_holder(context)
        lease = _ledger.JobLedger(root).acquire(
            holder,
            f"{self.lease_operation} ({self.task_id})",
            self.lease_ttl_s,
            holder_finished=lambda other: run_finished(context, other),
        )
        self.log.info("job %s: lease held by %s until %s", root.job, holder, time.ctime(lease.expires_at))
        return holder

    def done(self, context: Context, root: JobRoot, result: Any) -> Any:
        if self.release_lease:
            _ledger.JobLedger(root).release(run_holder(context))
            self.log.info("job %s: lease released", root.job)
        return result

    def run_generation(self, context: Context, root: JobRoot, generation: int | str | None) -> int | None:
        """The generation to act on: the one given, else the one this run pinned when it first touched the job
        (a cleared-and-rerun redeploy acts on the old generation again, not on the one it created)."""
        given = optional_int(generation)
        if given is not None:
            return given
        pinned = _ledger.JobLedger(root).pinned_generation(run_holder(context))
        current = _ledger.JobLedger(root).read().current_generation
        if pinned != current:
            self.log.info(
                "this run acts on generation %s (pinned when it started; the current one is %s)",
                pinned,
                current,
            )
        return pinned

    def withdraw_open_stop(self, root: JobRoot, generation: int, holder: str) -> None:
        """Before an explicit start of a generation whose driver is provably stopped: close a stop request
        no driver answered (its driver was killed, hung, or died first), so that the relaunched driver runs
        on instead of stopping again at its first boundary. The answer says it was withdrawn, and by whom
        (``stop-ack.json``, ledger ``stop_withdrawn``). An automatic restart (the callback) does not withdraw:
        a stop someone asked for stays asked for."""
        request, ack = root.read_stop_request(generation), root.read_stop_ack(generation)
        if request is None or (ack is not None and ack.request_id == request.request_id):
            return
        self.answer_stop(root, generation, request, _records.StopOutcome.WITHDRAWN, holder)
        _ledger.JobLedger(root).record(
            "stop_withdrawn",
            by=holder,
            generation=generation,
            request_id=request.request_id,
            requested_by=request.requested_by,
        )
        self.log.warning(
            "generation %s's driver never answered stop request %s (by %s): withdrawn, so that the driver "
            "this task starts runs on",
            generation,
            request.request_id,
            request.requested_by or "unknown",
        )

    def answer_killed(self, root: JobRoot, generation: int, holder: str) -> None:
        """After this task killed the driver over its stop request: answer the request ``killed``, by this
        run (the driver could not, or answered only that it timed out), so that the request no longer
        fences anything and the restart callback knows the stop was asked for."""
        request = root.read_stop_request(generation)
        if request is not None:
            self.answer_stop(root, generation, request, _records.StopOutcome.KILLED, holder)

    @staticmethod
    def answer_stop(
        root: JobRoot, generation: int, request: StopRequest, outcome: _records.StopOutcome, holder: str
    ) -> None:
        """Answer a stop request in the driver's place (the checkpoint says where it ended), about the
        generation's latest launch (the driver this task killed, or the one that never answered)."""
        info = _inspector.inspect_checkpoint(root.checkpoint(generation), allow_empty=True)
        launches = (root.read_generation_record(generation) or {}).get("launches") or [{}]
        latest = launches[-1] if isinstance(launches[-1], dict) else {}
        root.write_stop_ack(
            generation,
            _records.StopAck(
                request_id=request.request_id,
                outcome=outcome,
                method=_records.StopMethod.NONE,
                final_committed_batch=info.last_committed_batch,
                end_offsets=info.committed.end_offsets_json() if info.committed else None,
                in_flight_batch=info.in_flight_batch,
                acknowledged_at=time.time(),
                stop_latency_s=round(time.time() - request.requested_at, 3),
                by=holder,
                launch_id=str(latest.get("launch_id") or "") or None,
            ),
        )

    def wait(
        self, observe: Callable[[], watch.Observation], timeout_s: float, what: str
    ) -> watch.Observation:
        """Poll ``observe`` until done (returned), failed or timed out (returned with failed / done False)."""
        deadline = time.monotonic() + timeout_s
        last = ""
        while True:
            seen = observe()
            if seen.done or seen.failed:
                return seen
            if seen.message != last:
                self.log.info("waiting for %s: %s", what, seen.message)
                last = seen.message
            if time.monotonic() >= deadline:
                return watch.Observation.waiting(
                    f"timed out after {timeout_s:.0f}s waiting for {what}: {seen.message}",
                    seen.payload,
                )
            time.sleep(self.poll_interval_s)

    def wait_or_defer(
        self,
        root: JobRoot,
        generation: int,
        observe: Callable[[], watch.Observation],
        timeout_s: float,
        what: str,
        trigger: type[JobRootTrigger],
        **fields: Any,
    ) -> watch.Observation:
        """Wait here for up to ``defer_after_s`` (all of ``timeout_s`` when not deferrable); if the condition
        still pends, defer to ``trigger`` with the time left and its own ``fields`` (``execute_complete``
        finishes).

        A condition that holds within seconds (a stop at a batch boundary) is not deferred at all: Airflow
        3.3's scheduler can mark a deferred task failed when its trigger fires before the executor reports
        the deferring process's exit (apache/airflow#67287, #71580, #72716)."""
        started = time.monotonic()
        here = min(timeout_s, self.defer_after_s) if self.deferrable else timeout_s
        seen = self.wait(observe, here, what)
        if seen.done or seen.failed or here >= timeout_s:
            return seen
        left = max(1.0, timeout_s - (time.monotonic() - started))
        self.log.info("deferring: waiting for %s in the triggerer (%.0fs left)", what, left)
        self.defer(
            trigger=trigger(
                job_root=root.location.uri,
                job_name=root.job,
                generation=generation,
                timeout_s=left,
                poll_interval_s=self.poll_interval_s,
                **fields,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=left + DEFER_TIMEOUT_MARGIN_S),
        )

    def retention(
        self, root: JobRoot, keep_last: int | None, max_age: str | timedelta | None
    ) -> dict[str, Any] | None:
        """Apply snapshot retention when asked (protected snapshots are always kept); return the plan."""
        if keep_last is None and max_age in (None, ""):
            return None
        age = _decisions.parse_duration(max_age) if isinstance(max_age, str) and max_age else max_age
        plan = _snapshots.SnapshotCatalogue(root).apply_retention(keep_last=keep_last, max_age=age or None)
        self.log.info("snapshot retention: kept %s, deleted %s", plan.keep, plan.delete)
        return plan.to_json()

    @staticmethod
    def check_event(event: Mapping[str, Any] | None) -> Mapping[str, Any]:
        if (
            not event
            or event.get("status") not in ("done", "failed", "timeout", "error")
            or "echo" not in event
        ):
            raise AirflowException(f"unexpected trigger event: {event!r}")
        return event


#: ``StartStreamingJobOperator(snapshot=LATEST)``: the newest verified snapshot, resolved once per run.
LATEST = "latest"


def _latest_verified_snapshot(root: JobRoot) -> str:
    entry = _snapshots.SnapshotCatalogue(root).latest_verified()
    if entry is None:
        raise SnapshotNotFoundError(
            "snapshot='latest': the job has no verified snapshot",
            path=root.snapshots_dir().uri,
            job=root.job,
            hint="Take one with SnapshotStreamingJobOperator, or name the snapshot",
        )
    return entry.snapshot_id


def driver_error(
    root: JobRoot, generation: int, message: str, payload: Mapping[str, Any]
) -> CheckpointProviderError:
    """The driver's own error as a typed one: its class when it is ours (so terminal stays terminal)."""
    error = str(payload.get("error") or "")
    cls = error_class(error.split(":", 1)[0].strip()) if error else None
    if cls is not None and cls.terminal:
        return cls(
            f"the driver refused to start: {error}",
            path=root.location.uri,
            job=root.job,
            generation=generation,
        )
    return DriverFailedError(
        message,
        path=root.location.uri,
        job=root.job,
        generation=generation,
        hint="A retry restarts it from its checkpoint",
    )


class StartStreamingJobOperator(StreamingJobOperator):
    """Start a managed streaming application: first start, fresh from a snapshot, or resume.

    Without ``snapshot`` it (re)starts the job's current generation on its own checkpoint — a recovery; the
    driver resumes and never loads a snapshot again. With ``snapshot`` it creates a new generation (once: a
    retry reuses it) whose driver loads the snapshot as initial state and starts its sources after the
    snapshot's batch. A live driver is reconnected to, never submitted twice. Waits until the driver reports
    RUNNING with a committed batch (``wait_for="committed"``), or only RUNNING (``"running"``), and fails with
    the driver's own error. Returns (XCom) the generation, start mode, reason, launch id and last committed
    batch.

    :param application: the application file for spark-submit (templated).
    :param application_args: the application's own arguments (templated; a template may render a list).
    :param snapshot: id of the snapshot to start a new generation from (templated), e.g.
        ``"{{ ti.xcom_pull(task_ids='snapshot') }}"``, or ``"latest"``: the job's newest verified snapshot,
        resolved once per DAG run (a retry or a rerun uses the same one); empty: restart the current
        generation.
    :param code_version: a label for the code, recorded with the generation (templated).
    :param spark_conf: extra ``--conf`` settings (templated; a template may render a dict).
    :param wait_for: ``"committed"`` (default): RUNNING with a committed batch; ``"running"``: RUNNING only.
    :param start_timeout_s: how long to wait for the driver to report, in seconds.
    :param heartbeat_s: how often the driver refreshes its status, in seconds (recorded with the generation).
    :param lease_s: after how long without a heartbeat the driver counts as dead, in seconds (> heartbeat).
    :param release_lease: give the job's lease up when the start succeeds (default True: a start ends a
        lifecycle run).
    :param settings: how a restart of the current generation is launched (templated). ``"recorded"``
        (default): as the generation's record says, whatever this task is given (a crash's restart runs what
        ran). ``"apply"``: with this task's application arguments and Spark confs, which are recorded for the
        generation's later restarts, only where nothing the checkpoint depends on changes (the plan's
        ``resume``): the same application file (by SHA-256), the same code version, the same pinned confs
        (:func:`~airflow_checkpoint_provider.model.plan.pinned`). Anything else is refused before a driver
        is launched (``PlanRefusedError``: it needs a redeploy through a snapshot), and so is a change for a
        generation whose driver is running (``DriverStillRunningError``: stop it first).
    """

    template_fields: Sequence[str] = (
        *StreamingJobOperator.template_fields,
        "application",
        "application_args",
        "snapshot",
        "code_version",
        "spark_conf",
        "settings",
    )
    lease_operation = "start"
    creates_job_root = True
    operator_extra_links: tuple[BaseOperatorLink, ...] = (StreamingJobLink(), SparkUILink())

    def __init__(
        self,
        *,
        application: str,
        application_args: Sequence[str] = (),
        snapshot: str | None = None,
        code_version: str = "",
        spark_conf: Mapping[str, str] | None = None,
        wait_for: WaitFor = "committed",
        start_timeout_s: float = DEFAULT_START_TIMEOUT_S,
        heartbeat_s: float = DEFAULT_HEARTBEAT_S,
        lease_s: float = DEFAULT_LEASE_S,
        release_lease: bool = True,
        settings: Settings | str = "recorded",
        **kwargs: Any,
    ) -> None:
        super().__init__(release_lease=release_lease, **kwargs)
        if wait_for not in ("committed", "running"):
            raise ValueError(f"wait_for must be 'committed' or 'running', got {wait_for!r}")
        self.settings = settings
        self.application = application
        # Kept as given: a template string renders to a list (DAGs with render_template_as_native_obj).
        self.application_args = (
            application_args if isinstance(application_args, str) else list(application_args)
        )
        self.snapshot = snapshot
        self.code_version = code_version
        self.spark_conf = spark_conf if isinstance(spark_conf, str) else dict(spark_conf or {})
        self.wait_for = wait_for
        self.start_timeout_s = start_timeout_s
        self.heartbeat_s = heartbeat_s
        self.lease_s = lease_s

    @classified
    def execute(self, context: Context) -> Any:
        root = self.root()
        holder = self.take_lease(context, root)
        generation = self.prepare_generation(root, holder)
        hook = self.hook(root, generation)
        view = hook.observe(root, generation)
        self.apply_settings(root, generation, alive=view.alive, holder=holder)
        store = context.get("task_state_store")
        if view.alive:
            launch_id = (view.status.launch_id if view.status and view.status.is_live() else None) or (
                view.handle.launch_id if view.handle else ""
            )
            self.log.info(
                "generation %s already has a live driver (%s): reconnecting, not submitting",
                generation,
                view.reason,
            )
            info: dict[str, Any] = {
                "generation": generation,
                "launch_id": launch_id,
                "reconnected": True,
                "mode": view.status.start_mode if view.status else None,
                "reason": view.status.start_reason if view.status else view.reason,
            }
            pid, host = (view.handle.pid, view.handle.host) if view.handle else (None, "")
        else:
            if view.status is not None and view.status.error:
                self.log.info("previous driver of generation %s ended: %s", generation, view.status.error)
            if view.provably_stopped:
                self.withdraw_open_stop(root, generation, holder)
            handle, decision = hook.launch_generation(root, generation, by=holder)
            if store is not None:
                store.set("driver_handle", handle.to_json())
            info = {
                "generation": generation,
                "launch_id": handle.launch_id,
                "reconnected": False,
                "mode": decision.mode.value,
                "reason": decision.reason,
                "log": handle.log_path,
            }
            pid, host = handle.pid, handle.host

        def observe() -> watch.Observation:
            gone = (
                bool(pid)
                and _processes.local_liveness(pid, host, info["launch_id"]) is _backends.Liveness.GONE
            )
            return watch.driver_started(
                root,
                generation,
                info["launch_id"],
                need_commit=self.wait_for == "committed",
                process_gone=gone,
            )

        seen = self.wait_or_defer(
            root,
            generation,
            observe,
            self.start_timeout_s,
            f"generation {generation}'s driver to start",
            _triggers.DriverStartedTrigger,
            launch_id=info["launch_id"],
            need_commit=self.wait_for == "committed",
            pid=pid,
            host=host,
            echo=info,
        )
        return self.finish_start(context, root, info, seen.to_json() | {"status": _status_of(seen)})

    @classified
    def execute_complete(self, context: Context, event: Mapping[str, Any] | None = None) -> Any:
        event = self.check_event(event)
        return self.finish_start(context, self.root(), dict(event.get("echo") or {}), event)

    def finish_start(
        self, context: Context, root: JobRoot, info: dict[str, Any], event: Mapping[str, Any]
    ) -> Any:
        generation = int(info["generation"])
        payload = event.get("payload") or {}
        if event["status"] != "done":
            log_hint = f" (driver log: {info.get('log')})" if info.get("log") else ""
            raise driver_error(
                root,
                generation,
                f"generation {generation} did not start: {event.get('message')}{log_hint}",
                payload,
            )
        info.update(
            last_committed_batch=payload.get("last_committed_batch"),
            app_id=payload.get("app_id"),
            query_id=payload.get("query_id"),
            run_id=payload.get("run_id"),
        )
        self.log.info("generation %s running (%s): %s", generation, info.get("mode"), event.get("message"))
        self.link(context, SparkUILink(), payload.get("ui_url"))
        return self.done(context, root, info)

    def prepare_generation(self, root: JobRoot, holder: str) -> int:
        """Record the generation to start before acting (a retry finds and reuses it)."""
        ledger = _ledger.JobLedger(root)
        current = ledger.read().current_generation
        record = (root.read_generation_record(current) if current is not None else None) or {}
        retired = bool(record.get("retired_at") or record.get("deleted_at"))
        snapshot = self.snapshot or None
        if snapshot == LATEST:
            snapshot = ledger.resolved_snapshot(holder, lambda: _latest_verified_snapshot(root))
            self.log.info("snapshot='latest' is %s for this run", snapshot)
        plan = _decisions.plan_generation(
            current=current,
            existing=root.generations(),
            snapshot=snapshot,
            current_snapshot=record.get("snapshot"),
            current_retired=retired,
        )
        self.log.info("%s", plan.reason)
        if not plan.create and retired:
            raise FencedError(
                plan.reason,
                path=root.generation_dir(plan.generation).uri,
                job=root.job,
                generation=plan.generation,
                hint="Pass snapshot= to start a new generation",
            )
        launch = self.launch_fields()
        if plan.create:
            if plan.snapshot:
                _snapshots.verify_snapshot(
                    root, plan.snapshot, generation=plan.generation
                )  # present, intact, ours
            if current is not None:
                view = self.hook(root, current).observe(root, current)
                if view.alive:
                    raise DriverStillRunningError(
                        f"generation {current} still has a live driver ({view.reason}); a new generation "
                        "would "
                        "run beside it",
                        path=root.generation_dir(current).uri,
                        job=root.job,
                        generation=current,
                        hint="Stop it first (StopStreamingJobOperator)",
                    )
                standby = find_standby(root, holder, current, adopt=True)
                if standby is not None and plan.snapshot:
                    if (root.read_generation_record(standby) or {}).get("created_by") != holder:
                        # a failed redeploy's discarded standby, never started: its number is reused
                        root.update_generation_record(standby, **launch, created_by=holder)
                    # the old driver is stopped and the snapshot verified: the go (the standby gives it
                    # itself when the old driver exported on stop; here after a separate export)
                    if ledger.promote(
                        standby, previous=current, snapshot=plan.snapshot, by=holder, undiscard=True
                    ):
                        self.log.info(
                            "generation %s (this run's standby) takes over from %s", standby, current
                        )
                        return standby
            root.update_generation_record(
                plan.generation,
                **launch,
                snapshot=plan.snapshot,
                created_at=time.time(),
                created_by=holder,
                previous_generation=current,
            )
            ledger.set_current(
                plan.generation,
                by=holder,
                event="generation_created",
                snapshot=plan.snapshot,
                previous=current,
            )
        elif not record.get("application"):
            root.update_generation_record(plan.generation, **launch)
            if current is None:
                ledger.set_current(plan.generation, by=holder, event="generation_created", snapshot=None)
        elif record.get("application") != self.application:
            self.log.warning(
                "generation %s was started with %s; restarting it with its recorded application, not %s "
                "(new code needs a new generation: pass snapshot=)",
                plan.generation,
                record.get("application"),
                self.application,
            )
        return plan.generation

    def apply_settings(self, root: JobRoot, generation: int, *, alive: bool, holder: str) -> None:
        """With ``settings="apply"``: record this task's application arguments and Spark confs for
        ``generation`` when the plan calls the difference a ``resume`` (see the class docstring); refuse
        anything else. Nothing to do when the record already says what this task says (a new generation, or a
        rerun). The settings replaced are kept in the record (``settings_before``, with the run that applied
        the new ones), so the run's rollback (``RollbackStreamingJobOperator``) can put them back."""
        settings = str(self.settings or "recorded")
        if settings not in ("recorded", "apply"):
            raise InvalidLaunchError(
                f"settings must be 'recorded' or 'apply', got {settings!r}",
                path=root.generation_record_file(generation).uri,
                job=root.job,
                generation=generation,
            )
        if settings == "recorded":
            return
        launch = self.launch_fields()
        record = root.read_generation_record(generation) or {}
        plan = _plan.plan_redeploy(
            job=root.job,
            generation=generation,
            current=_upgrade.deployment_of(record),
            proposed=_upgrade.deployment_of(launch),
        )
        where = root.generation_record_file(generation).uri
        if plan.action.value == "none":
            return
        if plan.action.value != "resume":
            raise PlanRefusedError(
                f"settings='apply' restarts generation {generation} on its own checkpoint, but "
                f"{plan.reason.split(': ', 1)[-1]}: its checkpoint cannot take that",
                path=where,
                job=root.job,
                generation=generation,
                hint="Redeploy through a snapshot (example_redeploy or example_safe_redeploy); nothing was "
                "touched",
            )
        if alive:
            raise DriverStillRunningError(
                f"generation {generation} is running with its recorded settings; settings='apply' would "
                f"change {'; '.join(plan.changes)}",
                path=where,
                job=root.job,
                generation=generation,
                hint="Stop it first (StopStreamingJobOperator), then start it again with settings='apply'",
            )
        root.update_generation_record(
            generation,
            application_args=launch["application_args"],
            conf=launch["conf"],
            settings_before={
                "application_args": record.get("application_args", []),
                "conf": record.get("conf", {}),
            },
            settings_applied_by=holder,
            settings_applied_at=time.time(),
        )
        _ledger.JobLedger(root).record(
            "settings_applied", by=holder, generation=generation, changes=list(plan.changes)
        )
        self.log.info(
            "generation %s restarts on its own checkpoint with new settings: %s",
            generation,
            "; ".join(plan.changes),
        )

    def launch_fields(self) -> dict[str, Any]:
        """What a generation record keeps to (re)launch the generation's driver."""
        from airflow_checkpoint_provider.checkpoint.upgrade import application_sha256

        return {
            "application": self.application,
            "application_sha256": application_sha256(self.application),
            "application_args": [str(a) for a in _rendered(self.application_args, list, "application_args")],
            "code_version": self.code_version,
            "conf": {str(k): str(v) for k, v in _rendered(self.spark_conf, dict, "spark_conf").items()},
            "heartbeat_s": self.heartbeat_s,
            "lease_s": self.lease_s,
        }


#: How long the standby task waits for an adopted dry run's driver to report STANDBY (seconds).
ADOPT_WAIT_S = 30.0
#: What a dry run's driver must have been launched with, as the standby it becomes would be.
LAUNCH_KEYS = (
    "application",
    "application_sha256",
    "application_args",
    "code_version",
    "conf",
    "heartbeat_s",
    "lease_s",
)


def truthy(value: Any) -> bool:
    """A flag as a template renders it (``"{{ params.standby }}"``): false, 0, no, off, none or empty are
    False."""
    return str(value).strip().lower() not in ("false", "0", "no", "off", "none", "")


def find_standby(root: JobRoot, holder: str, old: int, *, adopt: bool = False) -> int | None:
    """The standby generation run ``holder`` created for generation ``old`` (None if it made none). With
    ``adopt``, also one another run created for ``old`` that was discarded before it ever started (a failed
    redeploy's): it is reused, so a failed redeploy leaves no gap in the generations."""
    records = sorted(root.generation_records().items())
    for generation, record in records:
        if record.get("standby_for") == old and record.get("created_by") == holder:
            return generation
    for generation, record in records if adopt else ():
        if (
            record.get("standby_for") == old
            and record.get("discarded_at")
            and not record.get("first_started_at")
            and root.current_generation() == old
        ):
            return generation
    return None


class LaunchStandbyOperator(StartStreamingJobOperator):
    """Launch the new code as a warm standby for the job's current generation, before it is stopped.

    The standby is the redeploy's new generation: it starts its JVM, Spark session and Python workers and
    waits, touching neither a checkpoint nor a sink and reading nothing. When the old driver acknowledges its
    stop with a verified snapshot of its final batch, the standby takes over by itself (no Airflow task in
    between): it becomes the job's current generation and starts from that snapshot. A later
    :class:`StartStreamingJobOperator` with the same snapshot finds it running and only waits for its first
    commit; if the standby died, or the old driver could not export on stop, that start gives the go itself or
    launches the same generation cold. Nothing is ever lost by a standby: at worst the redeploy costs a cold
    start.

    Idempotent: a rerun of the DAG run reuses the standby generation it created (relaunching its driver if it
    is gone, or was discarded), never a third. Returns (XCom) ``generation``, ``standby_for``, ``ready`` (the
    standby reported STANDBY in time), ``warm_s``, ``launch_id`` and ``adopted`` (the dry run's driver became
    the standby). The task does not fail when the standby cannot start: the redeploy goes on, cold.

    :param enabled: launch the standby (templated, e.g. ``"{{ params.standby }}"``); false: do nothing, and
        the redeploy starts the new code cold after the stop, as without this task.
    :param standby_timeout_s: the standby exits if it gets no go within this long, in seconds.
    :param ready_timeout_s: how long to wait for the standby to report ready (warm), in seconds.
    :param dry_run_task_id: the redeploy's dry run task (a
        :class:`~airflow_checkpoint_provider.operators.upgrade.DryRunStreamingJobOperator` with
        ``stay_as_standby``): when its driver passed and waits, it is adopted as the standby instead of a new
        launch (no second JVM; it skips the warm-up, having run the new code's own query). It must have run
        the same application, arguments, confs and code version on the same Spark target, for the same
        generation; otherwise it is released and a standby is launched as usual. ``adopted`` in the XCom.
    """

    template_fields: Sequence[str] = (*StartStreamingJobOperator.template_fields, "enabled")
    lease_operation = "standby"
    creates_job_root = False

    def __init__(
        self,
        *,
        enabled: bool | str = True,
        standby_timeout_s: float = DEFAULT_STANDBY_TIMEOUT_S,
        ready_timeout_s: float = DEFAULT_START_TIMEOUT_S,
        release_lease: bool = False,
        dry_run_task_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(release_lease=release_lease, **kwargs)
        self.enabled = enabled
        self.standby_timeout_s = standby_timeout_s
        self.ready_timeout_s = ready_timeout_s
        self.dry_run_task_id = dry_run_task_id

    @classified
    def execute(self, context: Context) -> Any:
        if not truthy(self.enabled):
            self.log.info("standby disabled: the redeploy starts the new code cold after the stop")
            return {"generation": None, "ready": False, "enabled": False}
        root = self.root()
        holder = self.take_lease(context, root)
        old = self.run_generation(context, root, None)
        if old is None:
            raise InvalidLaunchError(
                "the job has no generation to stand by for: start it first",
                path=root.location.uri,
                job=root.job,
                hint="A first start needs no standby (StartStreamingJobOperator)",
            )
        current = root.current_generation()
        generation = self.standby_generation(root, holder, old)
        info: dict[str, Any] = {"generation": generation, "standby_for": old, "ready": False}
        if current != old:
            self.log.info("generation %s already took over from %s: nothing to stand by", current, old)
            return self.done(context, root, info | {"ready": current == generation, "took_over": True})
        hook = self.hook(root, generation)
        view = hook.observe(root, generation)
        pid, host = None, ""
        if view.alive and view.status is not None:
            self.log.info("standby generation %s is already up (%s): reconnecting", generation, view.reason)
            launch_id = view.status.launch_id
        else:
            # only a stop asked for after this launch is the go's stop (see runtime/standby.py)
            root.update_generation_record(generation, armed_at=time.time())
            handle = self.adopt_dry_run(context, hook, root, generation, holder)
            info["adopted"] = handle is not None
            if handle is None:
                handle, _ = hook.launch_generation(root, generation, by=holder)
            launch_id, pid, host = handle.launch_id, handle.pid, handle.host
        info["launch_id"] = launch_id

        def ready() -> watch.Observation:
            gone = bool(pid) and _processes.local_liveness(pid, host, launch_id) is _backends.Liveness.GONE
            return watch.standby_ready(root, generation, launch_id, process_gone=gone)

        seen = self.wait(ready, self.ready_timeout_s, f"standby generation {generation} to warm up")
        info["ready"] = seen.done
        info["warm_s"] = (seen.payload or {}).get("warm_s")
        if not seen.done:
            self.log.warning(
                "standby generation %s is not ready (%s): the redeploy goes on and starts it cold",
                generation,
                seen.message,
            )
        return self.done(context, root, info)

    def adopt_dry_run(
        self, context: Context, hook: StreamingJobHook, root: JobRoot, generation: int, holder: str
    ) -> _backends.DriverHandle | None:
        """Adopt the dry run's waiting driver as standby ``generation`` (see ``dry_run_task_id``): its handle
        once it reports STANDBY here, or None (nothing waits, it does not fit and was released, or it exited
        before it took the adoption): the caller launches a standby then."""
        report = context["ti"].xcom_pull(task_ids=self.dry_run_task_id) if self.dry_run_task_id else None
        waiting = report.get("adoptable") if isinstance(report, Mapping) else None
        if not isinstance(waiting, Mapping):
            return None
        scratch = _adoption.scratch_folder(str(waiting["scratch_job"]))
        if (
            scratch is None
            or not root.location.is_local
            or scratch.parent != Path(root.location.path) / _upgrade.SCRATCH
        ):
            # only a dry run of this job, in its own scratch folder, is adopted, released or cleaned up
            self.log.warning(
                "not adopting %s: not a dry run's scratch job of %s", waiting["scratch_job"], root.job
            )
            return None
        job = _jobroot.JobRoot(str(waiting["scratch_job"]), job=root.job)
        dry_generation = int(waiting["generation"])
        dry = _backends.DriverHandle.from_json(dict(waiting["launch"]))
        why = self.unfit(hook, root, generation, job, dry_generation, dry)
        if why:
            self.log.warning("not adopting the dry run's driver: %s; launching a standby", why)
            self.let_go(hook, job, dry_generation, dry, f"not adopted: {why}")
            return None
        spec, decision, _ = hook.launch_spec(root, generation, launch_id=dry.launch_id)
        handle = dry
        if dry.log_path and root.location.is_local:  # its log joins the generation's (the scratch goes)
            moved = hook.log_dir(root, generation) / Path(dry.log_path).name
            try:
                os.replace(dry.log_path, moved)
                handle = _backends.DriverHandle(**{**dry.to_json(), "log_path": str(moved)})
            except OSError as exc:
                self.log.warning("the dry run's log stays at %s: %s", dry.log_path, exc)
        if not isinstance((root.read_generation_record(generation) or {}).get("target"), Mapping):
            root.update_generation_record(generation, target=hook.launch_target().to_json())
        _hooks.record_launch(
            root,
            generation,
            handle,
            by=holder,
            mode=decision.mode.value,
            adopted="dry run",
            adopted_at=time.time(),
        )
        _adoption.adopt(job, dry_generation, spec)
        self.log.info(
            "adopting the dry run's driver (%s) as standby generation %s", dry.describe(), generation
        )
        deadline = time.monotonic() + ADOPT_WAIT_S
        while time.monotonic() < deadline:
            status = root.read_status(generation)
            if status is not None and status.launch_id == dry.launch_id:
                _ledger.JobLedger(root).record("dry_run_adopted", by=holder, generation=generation)
                return handle
            if hook.liveness(dry) is not _backends.Liveness.ALIVE:
                break
            time.sleep(0.25)
        self.log.warning("the dry run's driver did not take the adoption: launching a standby")
        self.let_go(hook, job, dry_generation, dry, "it did not take the adoption in time")
        return None

    def let_go(
        self, hook: StreamingJobHook, job: JobRoot, generation: int, dry: _backends.DriverHandle, why: str
    ) -> None:
        """Release a dry run's driver that is not adopted (it removes its scratch folder and exits), or, when
        it is gone (killed while it waited), remove its scratch folder here."""
        if hook.liveness(dry) is _backends.Liveness.ALIVE:
            try:
                _adoption.release(job, generation, why)
                return
            except CheckpointProviderError as exc:
                self.log.info("could not release it: %s", exc)
        _adoption.remove_scratch_folder(_adoption.scratch_folder(str(job.location.path)))

    def unfit(
        self,
        hook: StreamingJobHook,
        root: JobRoot,
        generation: int,
        job: JobRoot,
        dry_generation: int,
        dry: _backends.DriverHandle,
    ) -> str | None:
        """Why the dry run's driver cannot be this standby, or None."""
        if dry_generation != generation:
            return f"it ran generation {dry_generation}, the standby is generation {generation}"
        if _adoption.read_offer(job, dry_generation, dry.launch_id) is None:
            return "it no longer offers itself (it left, or its wait ended)"
        if hook.liveness(dry) is not _backends.Liveness.ALIVE:
            return "its process is gone"
        ran = job.read_generation_record(dry_generation) or {}
        wanted = root.read_generation_record(generation) or {}
        differ = [k for k in LAUNCH_KEYS if ran.get(k) != wanted.get(k)]
        if differ:
            return f"it ran with other launch settings ({', '.join(differ)})"
        target = hook.launch_target().to_json()
        if ran.get("target") != target:
            return f"it ran on another Spark target ({ran.get('target')} vs {target})"
        return None

    def standby_generation(self, root: JobRoot, holder: str, old: int) -> int:
        """This run's standby generation for ``old``: the one it created (made launchable again if it was
        discarded before it ever started), else a new one numbered after every existing generation."""
        found = find_standby(root, holder, old, adopt=True)
        if found is not None:
            record = root.read_generation_record(found) or {}
            if record.get("discarded_at") and not record.get("first_started_at"):
                root.update_generation_record(
                    found,
                    **self.launch_fields(),
                    standby_timeout_s=self.standby_timeout_s,
                    created_by=holder,
                    discarded_at=None,
                    discard_reason=None,
                )
                _ledger.JobLedger(root).record("standby_reused", by=holder, generation=found)
                self.log.info("reusing standby generation %s (it was discarded before its go)", found)
            return found
        new = max([*root.generations(), old]) + 1
        root.update_generation_record(
            new,
            **self.launch_fields(),
            standby_for=old,
            standby_timeout_s=self.standby_timeout_s,
            created_at=time.time(),
            created_by=holder,
            previous_generation=old,
        )
        _ledger.JobLedger(root).record("standby_created", by=holder, generation=new, previous=old)
        self.log.info("created standby generation %s for generation %s", new, old)
        return new


class DiscardStandbyOperator(StreamingJobOperator):
    """Discard this run's standby when the redeploy failed before its go (e.g. the old driver refused to
    stop): the standby exits without having touched anything and the job stays as it was. A standby that
    already took over is left alone (it is the job now). Use with ``trigger_rule="one_failed"`` after the
    redeploy's tasks. Returns (XCom) ``generation`` and ``discarded``."""

    lease_operation = "discard standby"

    @classified
    def execute(self, context: Context) -> Any:
        root = self.root()
        holder = run_holder(context)
        old = _ledger.JobLedger(root).pinned_generation(holder)
        generation = find_standby(root, holder, old) if old is not None else None
        if generation is None:
            self.log.info("this run launched no standby: nothing to discard")
            return {"generation": None, "discarded": False}
        discarded = _ledger.JobLedger(root).discard_standby(
            generation, by=holder, reason=f"the redeploy run {holder} failed before its go"
        )
        if discarded:
            self.log.info("standby generation %s discarded: the job stays on generation %s", generation, old)
        else:
            self.log.info(
                "standby generation %s already took over: it is the job now, left alone", generation
            )
        return {"generation": generation, "discarded": discarded}


def _rendered(value: Any, kind: type, name: str) -> Any:
    """A templated list/dict field after rendering (a whole-field template needs native rendering)."""
    if not isinstance(value, kind):
        raise InvalidLaunchError(
            f"{name} must be a {kind.__name__}, got {type(value).__name__} {str(value)[:200]!r}",
            hint="Use render_template_as_native_obj=True on the DAG",
        )
    return value


def _status_of(seen: watch.Observation) -> str:
    return "done" if seen.done else ("failed" if seen.failed else "timeout")


class StopStreamingJobOperator(StreamingJobOperator):
    """Stop a generation's driver gracefully at a batch boundary and wait until it has exited.

    Writes a stop request (or, on a rerun, waits on the one already pending) and waits for the driver's
    acknowledgement with its final committed batch and offsets. An already stopped job is success. On timeout:
    ``on_timeout="fail"`` (default; the driver keeps running), ``"force_stop"`` (the driver stops its query
    anyway; the abandoned batch is re-run by whoever resumes the checkpoint) or ``"kill"`` (hard-kill the
    driver through its backend). A driver that dies before it acknowledges is stopped all the same (outcome
    ``ended``, with its state and error): its checkpoint ends at its last committed batch. Returns (XCom)
    ``generation``, ``outcome`` (stopped, forced, killed, ended, already_stopped), ``final_committed_batch``
    and ``end_offsets``.

    :param generation: the generation to stop (templated); default the one this run pinned, else the current.
    :param timeout_s: how long the driver may take to reach a batch boundary, in seconds.
    :param on_timeout: ``"fail"`` (default), ``"force_stop"`` or ``"kill"``: see above.
    :param snapshot: have the stopping driver export its final committed batch before it exits, with its own
        Spark session (a redeploy's snapshot then costs no second JVM start). The XCom gains ``snapshot_id``
        (or ``snapshot_error``); a following :class:`SnapshotStreamingJobOperator` finds and verifies it, or
        exports itself when the driver could not (it died, or its export failed).
    """

    template_fields: Sequence[str] = (*StreamingJobOperator.template_fields, "generation")
    lease_operation = "stop"

    def __init__(
        self,
        *,
        generation: int | str | None = None,
        timeout_s: float = DEFAULT_STOP_TIMEOUT_S,
        on_timeout: OnTimeout = "fail",
        snapshot: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if on_timeout not in ("fail", "force_stop", "kill"):
            raise ValueError(f"on_timeout must be fail, force_stop or kill, got {on_timeout!r}")
        self.generation = generation
        self.snapshot = snapshot
        self.timeout_s = timeout_s
        self.on_timeout = on_timeout

    def grace_s(self, root: JobRoot, generation: int) -> float:
        status = root.read_status(generation)
        return STOP_EXIT_GRACE_S + 2 * (status.lease_s if status else DEFAULT_LEASE_S)

    @classified
    def execute(self, context: Context) -> Any:
        root = self.root()
        self.take_lease(context, root)
        generation = self.run_generation(context, root, self.generation)
        if generation is None:
            return self.done(
                context,
                root,
                {
                    "generation": None,
                    "outcome": _records.StopOutcome.ALREADY_STOPPED.value,
                    "final_committed_batch": None,
                    "end_offsets": None,
                },
            )
        hook = self.hook(root, generation)
        view = hook.observe(root, generation)
        if not view.alive:
            if not view.provably_stopped:
                raise DriverStillRunningError(
                    f"cannot tell yet whether the driver runs: {view.reason}",
                    path=root.generation_dir(generation).uri,
                    job=root.job,
                    generation=generation,
                ) from None
            return self.done(context, root, self.already_stopped(root, generation, view.reason))
        request = self.request(root, generation, context)

        seen = self.wait_or_defer(
            root,
            generation,
            lambda: watch.stop_acknowledged(root, generation, request.request_id),
            self.timeout_s + self.grace_s(root, generation),
            f"generation {generation} to stop",
            _triggers.StopAcknowledgedTrigger,
            request_id=request.request_id,
            echo={"generation": generation},
        )
        return self.finish_stop(context, root, generation, seen.to_json() | {"status": _status_of(seen)})

    @classified
    def execute_complete(self, context: Context, event: Mapping[str, Any] | None = None) -> Any:
        event = self.check_event(event)
        return self.finish_stop(context, self.root(), int((event.get("echo") or {})["generation"]), event)

    def request(self, root: JobRoot, generation: int, context: Context) -> StopRequest:
        pending = root.read_stop_request(generation)
        ack = root.read_stop_ack(generation)
        if pending is not None and (ack is None or ack.request_id != pending.request_id):
            self.log.info(
                "stop request %s is already pending for generation %s: waiting on it",
                pending.request_id,
                generation,
            )
            return pending
        request = _records.StopRequest(
            request_id=uuid.uuid4().hex,
            requested_at=time.time(),
            timeout_s=self.timeout_s,
            on_timeout=(
                _records.OnStopTimeout.FORCE_STOP
                if self.on_timeout == "force_stop"
                else _records.OnStopTimeout.KEEP_RUNNING
            ),
            requested_by=run_holder(context),
            snapshot=self.snapshot,
            job_root=root.location.uri,
            generation=generation,
        )
        root.write_stop_request(generation, request)
        self.log.info(
            "stop requested for generation %s of %s (request %s, timeout %.0fs, on timeout: %s)",
            generation,
            root.job,
            request.request_id,
            self.timeout_s,
            self.on_timeout,
        )
        return request

    def already_stopped(self, root: JobRoot, generation: int, reason: str) -> dict[str, Any]:
        """The result for a driver found stopped. When it stopped by a request whose acknowledgement describes
        its final batch (a retry of this task after the driver answered, e.g. with a standby's handoff), the
        acknowledgement's stop and snapshot are reported, as the first try would have."""
        info = _inspector.inspect_checkpoint(root.checkpoint(generation), allow_empty=True)
        self.log.info(
            "generation %s is already stopped (%s) at batch %s", generation, reason, info.last_committed_batch
        )
        result: dict[str, Any] = {
            "generation": generation,
            "outcome": _records.StopOutcome.ALREADY_STOPPED.value,
            "final_committed_batch": info.last_committed_batch,
            "end_offsets": info.committed.end_offsets_json() if info.committed else None,
        }
        request, ack = root.read_stop_request(generation), root.read_stop_ack(generation)
        if (
            request is not None
            and ack is not None
            and ack.request_id == request.request_id
            and ack.final_committed_batch == info.last_committed_batch
            and ack.outcome in (_records.StopOutcome.STOPPED, _records.StopOutcome.FORCED)
        ):
            self.log.info(
                "its stop request %s was acknowledged (%s%s)",
                ack.request_id,
                ack.outcome.value,
                f", snapshot {ack.snapshot_id}" if ack.snapshot_id else "",
            )
            result |= {
                "acknowledged": ack.outcome.value,
                "stop_latency_s": ack.stop_latency_s,
                "method": ack.method.value,
                "request_id": ack.request_id,
                "snapshot_id": ack.snapshot_id,
                "snapshot_s": ack.snapshot_s,
                "snapshot_error": ack.snapshot_error,
            }
        return result

    def finish_stop(self, context: Context, root: JobRoot, generation: int, event: Mapping[str, Any]) -> Any:
        payload = event.get("payload") or {}
        if event["status"] == "done":
            # The driver released its lock; wait until its process (the JVM) has gone too: "provably stopped".
            hook = self.hook(root, generation)
            gone = self.wait(
                lambda: _stopped(hook, root, generation),
                self.grace_s(root, generation),
                f"generation {generation}'s driver process to exit",
            )
            if not gone.done:
                raise DriverStillRunningError(
                    f"the driver acknowledged the stop but is still running: {gone.message}",
                    path=root.generation_dir(generation).uri,
                    job=root.job,
                    generation=generation,
                    hint="A retry waits for it again",
                )
            if payload.get("outcome") == _records.StopOutcome.ENDED:
                self.log.warning(
                    "generation %s's driver ended (%s) before it acknowledged the stop: %s",
                    generation,
                    payload.get("state"),
                    payload.get("error") or "no error reported",
                )
            return self.done(
                context,
                root,
                {
                    "generation": generation,
                    "outcome": payload.get("outcome", _records.StopOutcome.STOPPED.value),
                    "driver_state": payload.get("state"),
                    "error": payload.get("error"),
                    "final_committed_batch": payload.get("final_committed_batch"),
                    "end_offsets": payload.get("end_offsets"),
                    "stop_latency_s": payload.get("stop_latency_s"),
                    "method": payload.get("method"),
                    "request_id": payload.get("request_id"),
                    "snapshot_id": payload.get("snapshot_id"),
                    "snapshot_s": payload.get("snapshot_s"),
                    "snapshot_error": payload.get("snapshot_error"),
                },
            )
        hook = self.hook(root, generation)
        if self.on_timeout == "kill" and event["status"] in ("failed", "timeout"):
            view = hook.observe(root, generation)
            if view.handle is not None and view.alive:
                hook.kill(view.handle)
                seen = self.wait(
                    lambda: _stopped(hook, root, generation), KILL_WAIT_S, "the killed driver to go away"
                )
                if seen.done:
                    self.answer_killed(root, generation, run_holder(context))
                    result = self.already_stopped(root, generation, "killed")
                    return self.done(context, root, {**result, "outcome": _records.StopOutcome.KILLED.value})
        raise StopTimeoutError(
            f"generation {generation} did not stop: {event.get('message')}",
            path=root.generation_dir(generation).uri,
            job=root.job,
            generation=generation,
            hint="Retry, or set on_timeout='force_stop' or 'kill'",
        )


def _stopped(hook: StreamingJobHook, root: JobRoot, generation: int) -> watch.Observation:
    view = hook.observe(root, generation)
    if view.provably_stopped:
        return watch.Observation.holds(view.reason)
    return watch.Observation.waiting(view.reason)


class SnapshotStreamingJobOperator(StreamingJobOperator):
    """Export a generation's state and source offsets at one committed batch, verify it, return its id (XCom).

    A running Structured Streaming driver of this package exports it itself when asked (a request in its
    control folder; its warm session, no second application on the cluster); otherwise — the driver stopped,
    ``deep``, ``via_driver=False``, or the driver could not — the exporter runs as a Spark application on the
    same target. Works on a running generation (the batch is pinned) and on a stopped one. Idempotent: a
    verified snapshot of the same (generation, batch) is returned as is.

    :param generation: the generation to snapshot (templated); default the one this run pinned, else the
        current one.
    :param batch: the committed batch to snapshot (templated); default the last committed batch.
    :param deep: also compare every row with the checkpoint (slower).
    :param require_stopped: refuse while a driver runs (what a redeploy wants: the final batch).
    :param spark_conf: extra ``--conf`` settings for the exporter application (templated).
    :param exporter: the exporter application to submit (default: the one this package ships).
    :param export_timeout_s: how long the exporter may run, in seconds.
    :param keep_last: then apply snapshot retention: keep the newest N (protected ones are always kept).
    :param max_age: ... and drop snapshots older than this (``"7d"`` or a timedelta).
    :param via_driver: ask a running driver to export (default); ``False``: always the exporter application
        (its own executors: the running job's batches never share theirs with the export).
    :param announce: announce the verified snapshot as an event of the job's asset through the asset alias
        ``checkpoint-snapshots`` (its default outlet; see ``airflow_checkpoint_provider.assets``), with the
        snapshot id, job, generation, batch and end offsets in the event's extra.
    """

    template_fields: Sequence[str] = (
        *StreamingJobOperator.template_fields,
        "generation",
        "batch",
        "spark_conf",
    )
    lease_operation = "snapshot"

    def __init__(
        self,
        *,
        generation: int | str | None = None,
        batch: int | str | None = None,
        deep: bool = False,
        require_stopped: bool = False,
        spark_conf: Mapping[str, str] | None = None,
        exporter: str | None = None,
        export_timeout_s: float = DEFAULT_EXPORT_TIMEOUT_S,
        keep_last: int | None = None,
        max_age: str | timedelta | None = None,
        announce: bool = True,
        via_driver: bool = True,
        **kwargs: Any,
    ) -> None:
        if announce and "outlets" not in kwargs:
            kwargs["outlets"] = [snapshot_alias()]
        super().__init__(**kwargs)
        self.announce = announce
        self.via_driver = via_driver
        self.keep_last = keep_last
        self.max_age = max_age
        self.generation = generation
        self.batch = batch
        self.deep = deep
        self.require_stopped = require_stopped
        self.spark_conf = spark_conf if isinstance(spark_conf, str) else dict(spark_conf or {})
        self.exporter = exporter
        self.export_timeout_s = export_timeout_s

    @classified
    def execute(self, context: Context) -> Any:
        root = self.root()
        self.take_lease(context, root)
        generation = self.run_generation(context, root, self.generation)
        if generation is None:
            raise InvalidLaunchError(
                "the job has no generation to snapshot", path=root.location.uri, job=root.job
            )
        hook = self.hook(root, generation)
        if self.require_stopped:
            view = hook.observe(root, generation)
            if not view.provably_stopped:
                raise DriverStillRunningError(
                    f"refusing to snapshot a running generation: {view.reason}",
                    path=root.generation_dir(generation).uri,
                    job=root.job,
                    generation=generation,
                    hint="Stop it first",
                )
        info = _inspector.inspect_checkpoint(root.checkpoint(generation), allow_empty=True)
        given_batch = optional_int(self.batch)
        batch = info.last_committed_batch if given_batch is None else given_batch
        if batch is None:
            raise BatchNotRetainedError(
                "the generation has no committed batch to snapshot",
                path=root.checkpoint(generation).uri,
                job=root.job,
                generation=generation,
            )
        existing = _snapshots.SnapshotCatalogue(root).find(generation=generation, batch=batch)
        if existing is not None:
            self.log.info(
                "snapshot %s of generation %s at batch %s already exists: verifying it",
                existing.snapshot_id,
                generation,
                batch,
            )
            snapshot_id = existing.snapshot_id
        elif info.engine == "dstream" or (root.read_generation_record(generation) or {}).get("engine") == (
            "dstream"
        ):
            snapshot_id, batch = self.ask_driver(context, root, generation, hook, given_batch)
        else:
            asked = (
                self.ask_running_driver(context, root, generation, hook, batch)
                if self.via_driver and not self.deep
                else None
            )
            record = root.read_generation_record(generation) or {}
            snapshot_id = asked or hook.export_snapshot(
                root,
                generation,
                batch=batch,
                deep=self.deep,
                code_version=str(record.get("code_version") or ""),
                conf=_rendered(self.spark_conf, dict, "spark_conf"),
                exporter=self.exporter,
                timeout=self.export_timeout_s,
            )
        verification = _snapshots.verify_snapshot(root, snapshot_id, generation=generation)
        self.log.info(
            "snapshot %s verified: generation %s, batch %s, %s rows in %s files",
            snapshot_id,
            generation,
            batch,
            verification.rows,
            verification.files,
        )
        context["ti"].xcom_push(
            key="snapshot",
            value={
                "snapshot_id": snapshot_id,
                "generation": generation,
                "batch": batch,
                "rows": verification.rows,
            },
        )
        if self.announce:
            manifest = _snapshots.read_manifest(root, snapshot_id)
            extra: dict[str, Any] = {
                "snapshot_id": snapshot_id,
                "job": root.job,
                "job_root": root.location.uri,
                "generation": generation,
                "batch": batch,
                "end_offsets": manifest.end_offsets,
                "rows": verification.rows,
            }
            context["outlet_events"][snapshot_alias()].add(
                snapshot_asset(root.location.uri, root.job), extra=extra
            )
            self.log.info(
                "announced snapshot %s as an event of %s", snapshot_id, snapshot_asset(root.location.uri).uri
            )
        self.retention(root, self.keep_last, self.max_age)
        return self.done(context, root, snapshot_id)

    def ask_running_driver(
        self, context: Context, root: JobRoot, generation: int, hook: StreamingJobHook, batch: int
    ) -> str | None:
        """Ask the generation's running Structured Streaming driver to export ``batch`` (it reads its own
        checkpoint in its warm session while its query runs on), and wait for its answer. None — the exporter
        application exports instead — when no driver of this package runs, or it stopped or failed before it
        answered. A rerun of the same task finds the answer to its own request."""
        request_id = f"{run_holder(context)}:{self.task_id}"
        ack = root.snapshot_ack_file(generation)
        answer = root.read_json(ack, what="snapshot acknowledgement") or {}
        if (
            answer.get("request_id") == request_id
            and answer.get("batch") == batch
            and answer.get("snapshot_id")
        ):
            return str(answer["snapshot_id"])
        status = root.read_status(generation)
        if status is None or not status.serves_snapshot_requests or not hook.observe(root, generation).alive:
            return None
        root.write_json(
            root.snapshot_request_file(generation),
            {
                "request_id": request_id,
                "job_root": root.location.uri,
                "generation": generation,
                "batch": batch,
                "requested_at": time.time(),
            },
        )
        self.log.info(
            "asked generation %s's running driver to export batch %s (%s)", generation, batch, request_id
        )

        def answered() -> watch.Observation:
            got = root.read_json(ack, what="snapshot acknowledgement")
            if got and got.get("request_id") == request_id:
                if got.get("error") or not got.get("snapshot_id"):
                    return watch.Observation.never(f"the driver could not export: {got.get('error')}", got)
                return watch.Observation.holds(f"snapshot {got['snapshot_id']}", got)
            if hook.observe(root, generation).provably_stopped:
                return watch.Observation.never("the driver stopped before it answered", {})
            return watch.Observation.waiting("waiting for the running driver's export", {})

        seen = self.wait(answered, self.export_timeout_s, "the running driver's snapshot")
        if seen.done:
            self.log.info(
                "the running driver exported snapshot %s of batch %s", seen.payload["snapshot_id"], batch
            )
            return str(seen.payload["snapshot_id"])
        if seen.failed:
            self.log.warning("%s: the exporter application exports batch %s instead", seen.message, batch)
            return None
        raise ExportFailedError(
            f"the running driver did not answer the snapshot request within {self.export_timeout_s:.0f}s: "
            f"{seen.message}",
            path=root.control_dir(generation).uri,
            job=root.job,
            generation=generation,
            batch=batch,
            hint="Rerun the task (it finds the driver's answer), or set via_driver=False",
        )

    def ask_driver(
        self,
        context: Context,
        root: JobRoot,
        generation: int,
        hook: StreamingJobHook,
        given_batch: int | None,
    ) -> tuple[str, int]:
        """A DStream job's state lives in its driver (pickled RDDs no other JVM can map to a batch): ask the
        running driver to snapshot its next completed batch, and wait for its answer. A rerun of the same task
        finds the answer to its own request and reuses that snapshot."""
        if given_batch is not None:
            raise InvalidLaunchError(
                "a running DStream job snapshots its next completed batch; batch "
                f"{given_batch} cannot be named",
                path=root.checkpoint(generation).uri,
                job=root.job,
                generation=generation,
            )
        request_id = f"{run_holder(context)}:{self.task_id}"
        answer = root.read_json(root.snapshot_ack_file(generation), what="snapshot acknowledgement") or {}
        if answer.get("request_id") != request_id or not answer.get("snapshot_id"):
            view = hook.observe(root, generation)
            pending = root.read_stop_request(generation)
            acked = root.read_stop_ack(generation)
            if (
                view.provably_stopped
                and pending is not None
                and pending.snapshot
                and (acked is None or acked.request_id != pending.request_id)
            ):
                return self.finish_interrupted_stop(context, root, generation, hook, pending.request_id)
            if not view.alive:
                raise StateNotExportableError(
                    f"the DStream driver of generation {generation} is not running ({view.reason}), and only "
                    "its own driver can export its state",
                    path=root.generation_dir(generation).uri,
                    job=root.job,
                    generation=generation,
                    hint="Start it (it resumes), or stop it with snapshot=True to export its final batch",
                )
            root.write_json(
                root.snapshot_request_file(generation),
                {
                    "request_id": request_id,
                    "job_root": root.location.uri,
                    "generation": generation,
                    "requested_at": time.time(),
                },
            )

            def answered() -> watch.Observation:
                got = root.read_json(root.snapshot_ack_file(generation), what="snapshot acknowledgement")
                if got and got.get("request_id") == request_id:
                    if got.get("error"):
                        return watch.Observation.never(f"the driver could not export: {got['error']}", got)
                    return watch.Observation.holds(f"snapshot {got.get('snapshot_id')}", got)
                gone = hook.observe(root, generation)
                if gone.provably_stopped:
                    return watch.Observation.never(
                        f"the driver stopped before it answered the snapshot request ({gone.reason})", {}
                    )
                return watch.Observation.waiting("waiting for the driver's next completed batch", {})

            seen = self.wait(answered, self.export_timeout_s, "the DStream driver's snapshot")
            if seen.failed and "stopped before it answered" in seen.message:
                raise StateNotExportableError(
                    seen.message, path=root.control_dir(generation).uri, job=root.job, generation=generation
                )
            if not seen.done:
                raise ExportFailedError(
                    seen.message, path=root.control_dir(generation).uri, job=root.job, generation=generation
                )
            answer = dict(seen.payload)
        self.log.info(
            "the DStream driver exported snapshot %s at batch %s", answer["snapshot_id"], answer["batch"]
        )
        return str(answer["snapshot_id"]), int(answer["batch"])

    def finish_interrupted_stop(
        self, context: Context, root: JobRoot, generation: int, hook: StreamingJobHook, request_id: str
    ) -> tuple[str, int]:
        """A DStream driver that died before it answered a stop request with an export (killed while it
        exported, say) leaves its state where only a driver can read it. Relaunch the generation: it resumes
        from its own checkpoint (never a snapshot), finds the request still open, stops at a boundary without
        reading new input, and exports its final batch. Returns that snapshot and batch."""
        self.log.warning(
            "generation %s's driver ended before it answered stop request %s: relaunching it to finish the "
            "stop and export its final batch",
            generation,
            request_id,
        )
        handle, decision = hook.launch_generation(root, generation, by=run_holder(context))
        self.log.info("relaunched generation %s (%s): %s", generation, handle.describe(), decision.reason)

        def answered() -> watch.Observation:
            ack = root.read_stop_ack(generation)
            if ack is not None and ack.request_id == request_id:
                return watch.Observation.holds(f"acknowledged: {ack.outcome}", ack.to_json())
            status = root.read_status(generation)
            if status is not None and status.launch_id == handle.launch_id and status.state.is_terminal:
                return watch.Observation.never(f"the relaunched driver ended: {status.error}", {})
            return watch.Observation.waiting("waiting for the relaunched driver to stop and export", {})

        seen = self.wait(answered, self.export_timeout_s, "the relaunched driver's stop")
        snapshot_id = seen.payload.get("snapshot_id") if seen.done else None
        if not snapshot_id:
            raise StateNotExportableError(
                f"the relaunched driver did not finish the stop with a snapshot: {seen.message} "
                f"{seen.payload.get('snapshot_error') or ''}".strip(),
                path=root.control_dir(generation).uri,
                job=root.job,
                generation=generation,
            )
        gone = self.wait(
            lambda: _stopped(hook, root, generation),
            STOP_EXIT_GRACE_S + 2 * DEFAULT_LEASE_S,
            f"generation {generation}'s relaunched driver to exit",
        )
        if not gone.done:
            raise DriverStillRunningError(
                f"the relaunched driver acknowledged the stop but is still running: {gone.message}",
                path=root.generation_dir(generation).uri,
                job=root.job,
                generation=generation,
            )
        return str(snapshot_id), int(seen.payload["final_committed_batch"])


class CleanupStreamingJobOperator(StreamingJobOperator):
    """Retire a generation's checkpoint — kept in place and marked retired, or deleted (``mode``) — never
    moved.

    Only when its driver is provably stopped, a verified snapshot of its last committed batch exists, the path
    is inside the job root, and (with ``stop_task_id``) the stop task of this DAG run completed. A retired
    generation can never be started again (its driver refuses). Then applies snapshot retention when asked.

    :param snapshot_id: the snapshot that covers the generation (templated); it names the generation.
    :param generation: the generation to retire (templated), if no snapshot id is given.
    :param mode: ``"retire"`` (default: keep the files, mark retired) or ``"delete"`` (remove the checkpoint
        folder, never following a link out of the job root).
    :param stop_task_id: the stop task of this run; cleanup refuses unless it completed.
    :param keep_last: snapshot retention: keep the newest N (protected ones are always kept).
    :param max_age: snapshot retention: drop snapshots older than this (``"7d"`` or a timedelta).
    """

    template_fields: Sequence[str] = (*StreamingJobOperator.template_fields, "snapshot_id", "generation")
    lease_operation = "cleanup"

    def __init__(
        self,
        *,
        snapshot_id: str | None = None,
        generation: int | str | None = None,
        mode: CleanupMode = "retire",
        stop_task_id: str | None = None,
        keep_last: int | None = None,
        max_age: str | timedelta | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if mode not in ("retire", "delete"):
            raise ValueError(f"mode must be 'retire' or 'delete', got {mode!r}")
        self.snapshot_id = snapshot_id
        self.generation = generation
        self.mode = mode
        self.stop_task_id = stop_task_id
        self.keep_last = keep_last
        self.max_age = max_age

    @classified
    def execute(self, context: Context) -> Any:
        root = self.root()
        holder = self.take_lease(context, root)
        named = optional_int(self.generation)
        if self.snapshot_id:
            generation = _snapshots.read_manifest(root, str(self.snapshot_id)).generation
            _snapshots.verify_snapshot(root, str(self.snapshot_id), generation=generation)
        elif named is not None:
            generation = named
        else:
            raise InvalidLaunchError(
                "name the snapshot (snapshot_id) or the generation to retire",
                path=root.location.uri,
                job=root.job,
            )
        checkpoint = root.require_inside(root.checkpoint(generation))
        record = root.read_generation_record(generation) or {}
        done_already = bool(record.get("deleted_at")) or (
            self.mode == "retire" and bool(record.get("retired_at"))
        )
        view = self.hook(root, generation).observe(root, generation)
        last = (
            None
            if record.get("deleted_at")
            else _inspector.inspect_checkpoint(checkpoint, allow_empty=True).last_committed_batch
        )
        verified = [
            e.batch
            for e in _snapshots.SnapshotCatalogue(root).list()
            if e.verified and e.generation == generation and e.batch is not None
        ]
        stop_outcome = None
        if self.stop_task_id:
            pulled = context["ti"].xcom_pull(task_ids=self.stop_task_id)
            stop_outcome = pulled.get("outcome") if isinstance(pulled, dict) else None
        verdict, reason = _decisions.decide_cleanup(
            driver_stopped=view.provably_stopped,
            last_committed_batch=last,
            verified_snapshot_batches=verified,
            stop_outcome=stop_outcome,
            require_stop=bool(self.stop_task_id),
            already_done=done_already,
        )
        if verdict is _decisions.CleanupVerdict.DRIVER_ALIVE:
            raise DriverStillRunningError(
                f"refusing to retire generation {generation}: {reason} ({view.reason})",
                path=checkpoint.uri,
                job=root.job,
                generation=generation,
            )
        if verdict not in (_decisions.CleanupVerdict.ALLOWED, _decisions.CleanupVerdict.ALREADY_DONE):
            raise CleanupRefusedError(
                f"refusing to retire generation {generation}: {reason}",
                path=checkpoint.uri,
                job=root.job,
                generation=generation,
                batch=last,
            )
        if verdict is _decisions.CleanupVerdict.ALLOWED:
            now = time.time()
            changes: dict[str, Any] = {
                "retired_at": record.get("retired_at") or now,
                "retired_by": holder,
                "final_committed_batch": last,
                "final_snapshot": self.snapshot_id,
            }
            if self.mode == "delete":
                checkpoint.remove(recursive=True)
                for extra in (root.input_dir(generation), root.discarded_dir(generation)):  # DStream jobs
                    root.require_inside(extra).remove(recursive=True)
                changes["deleted_at"] = now
            root.update_generation_record(generation, **changes)
            _ledger.JobLedger(root).record(
                f"generation_{'deleted' if self.mode == 'delete' else 'retired'}",
                by=holder,
                generation=generation,
                batch=last,
                snapshot=self.snapshot_id,
            )
        self.log.info(
            "generation %s: %s (%s)", generation, "already done" if done_already else self.mode + "d", reason
        )
        result: dict[str, Any] = {
            "generation": generation,
            "verdict": verdict.value,
            "reason": reason,
            "mode": self.mode,
        }
        retention = self.retention(root, self.keep_last, self.max_age)
        if retention is not None:
            result["retention"] = retention
        return self.done(context, root, result)
