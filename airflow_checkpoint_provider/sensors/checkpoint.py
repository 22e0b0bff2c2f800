"""Sensors: is the job healthy, has its checkpoint committed a batch.

Both fail at once (no pointless pokes or retries) when waiting cannot help — a dead or failed driver — so an
``on_failure_callback`` (see ``callbacks/checkpoint.py``) can bring the job back from its checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.configuration import conf
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_checkpoint_provider._lazy import lazy
from airflow_checkpoint_provider.exceptions import CheckpointProviderError, JobUnhealthyError
from airflow_checkpoint_provider.model.constants import DEFER_TIMEOUT_MARGIN_S, optional_int

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot
    from airflow_checkpoint_provider.triggers.checkpoint import JobRootTrigger

# What a poke runs, imported when the sensor executes (a DAG file importing this module stays cheap to parse).
if TYPE_CHECKING:  # type checkers see the modules; at run time they load at first use
    from airflow_checkpoint_provider.checkpoint import jobroot as _jobroot
    from airflow_checkpoint_provider.checkpoint import watch as watch
    from airflow_checkpoint_provider.triggers import checkpoint as _triggers
else:
    watch = lazy("airflow_checkpoint_provider.checkpoint.watch")
    _jobroot = lazy("airflow_checkpoint_provider.checkpoint.jobroot")
    _triggers = lazy("airflow_checkpoint_provider.triggers.checkpoint")


class _JobRootSensor(BaseSensorOperator):
    """What both sensors share. Besides Airflow's own sensor arguments (``poke_interval``, ``timeout``,
    ``mode``, ...):

    :param job_root: the job's root folder or URI (templated); a job root that does not exist fails the
        sensor at once (``JobRootNotFoundError``).
    :param job_name: display name; default the job root's last path element (templated).
    :param generation: the generation to watch (templated); default the job's current one.
    :param deferrable: wait in the triggerer (default: Airflow's ``[operators] default_deferrable``); the
        trigger's deadline is the sensor's ``timeout``, and the deferral's is that plus a margin.
    """

    template_fields: Sequence[str] = ("job_root", "job_name", "generation")

    def __init__(
        self,
        *,
        job_root: str,
        job_name: str | None = None,
        generation: int | str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.job_root = job_root
        self.job_name = job_name
        self.generation = generation
        self.deferrable = deferrable

    def root(self) -> JobRoot:
        """The job root, which must exist: a sensor never waits on a path nothing will ever create."""
        return _jobroot.JobRoot(self.job_root, job=self.job_name or None).require_job()

    def gen(self) -> int | None:
        return optional_int(self.generation)

    def observe(self, root: JobRoot) -> watch.Observation:
        raise NotImplementedError

    def trigger(self, root: JobRoot) -> JobRootTrigger:
        raise NotImplementedError

    def fail(self, root: JobRoot, message: str) -> AirflowFailException:
        error = JobUnhealthyError(message, path=root.location.uri, job=root.job, generation=self.gen())
        return AirflowFailException(f"{type(error).__name__}: {error}")

    def poke(self, context: Context) -> bool | PokeReturnValue:
        try:
            root = self.root()
            seen = self.observe(root)
        except CheckpointProviderError as exc:
            if exc.terminal:
                raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
            raise
        if seen.failed:
            raise self.fail(root, seen.message)
        self.log.info("%s", seen.message)
        return PokeReturnValue(is_done=seen.done, xcom_value=seen.payload if seen.done else None)

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        root = self.root()
        first = self.poke(context)
        if isinstance(first, PokeReturnValue) and first.is_done:
            return first.xcom_value
        self.defer(
            trigger=self.trigger(root),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout) + DEFER_TIMEOUT_MARGIN_S),
        )

    def execute_complete(self, context: Context, event: Mapping[str, Any] | None = None) -> Any:
        if not event or event.get("status") not in ("done", "failed", "timeout", "error"):
            raise AirflowException(f"unexpected trigger event: {event!r}")
        if event["status"] != "done":
            raise self.fail(self.root(), str(event.get("message")))
        return event.get("payload")


class StreamingJobHealthSensor(_JobRootSensor):
    """Succeed when the job is healthy: driver RUNNING, heartbeat fresh, and (optionally) a batch within
    ``max_batch_age_s`` and source lag at most ``max_lag`` records. Fail at once when the driver is dead or
    failed.

    :param max_heartbeat_age_s: the driver's heartbeat may be at most this old, in seconds (default: the
        driver's own lease).
    :param max_batch_age_s: a batch must have committed within this long, in seconds (None: not checked).
    :param max_lag: the source lag may be at most this many records (None: not checked).
    """

    def __init__(
        self,
        *,
        max_heartbeat_age_s: float | None = None,
        max_batch_age_s: float | None = None,
        max_lag: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.max_heartbeat_age_s = max_heartbeat_age_s
        self.max_batch_age_s = max_batch_age_s
        self.max_lag = max_lag

    def observe(self, root: JobRoot) -> watch.Observation:
        return watch.job_health(
            root,
            self.gen(),
            max_heartbeat_age_s=self.max_heartbeat_age_s,
            max_batch_age_s=self.max_batch_age_s,
            max_lag=self.max_lag,
        )

    def trigger(self, root: JobRoot) -> JobRootTrigger:
        return _triggers.JobHealthyTrigger(
            job_root=root.location.uri,
            job_name=root.job,
            generation=self.gen(),
            timeout_s=float(self.timeout),
            poll_interval_s=float(self.poke_interval),
            max_heartbeat_age_s=self.max_heartbeat_age_s,
            max_batch_age_s=self.max_batch_age_s,
            max_lag=self.max_lag,
        )


class CheckpointCommittedSensor(_JobRootSensor):
    """Succeed when the generation's checkpoint has committed ``batch`` (or later); fail if its driver failed.

    :param batch: the batch id to wait for, or any later one (templated).
    """

    template_fields: Sequence[str] = (*_JobRootSensor.template_fields, "batch")

    def __init__(self, *, batch: int | str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batch = batch

    def observe(self, root: JobRoot) -> watch.Observation:
        return watch.batch_committed(root, self.gen(), int(self.batch))

    def trigger(self, root: JobRoot) -> JobRootTrigger:
        return _triggers.BatchCommittedTrigger(
            job_root=root.location.uri,
            job_name=root.job,
            generation=self.gen(),
            timeout_s=float(self.timeout),
            poll_interval_s=float(self.poke_interval),
            batch=int(self.batch),
        )
