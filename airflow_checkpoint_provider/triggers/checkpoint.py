"""Triggers: wait on the job root without holding a worker slot.

The base trigger owns ``serialize()``; each subclass is configuration (its wire fields and the condition from
``checkpoint/watch.py`` it polls). The kwargs are a wire format: never rename or drop one.
Every event is ``{"status": "done" | "failed" | "timeout" | "error", "message": str, "payload": dict,
"echo": dict}`` (``echo``: the trigger's own ``echo`` argument, handed back to the deferring task).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_checkpoint_provider.checkpoint import watch
from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot
from airflow_checkpoint_provider.exceptions import InvalidTriggerPayloadError
from airflow_checkpoint_provider.model.constants import DEFAULT_TRIGGER_TIMEOUT_S


class JobRootTrigger(BaseTrigger):
    """Poll one condition under a job root until it holds, can never hold, or ``timeout_s`` passes.

    :param job_root: the job root (path or URI).
    :param job_name: display name; default the job root's last path element.
    :param generation: the generation to watch (None: the job's current one, where the condition allows it).
    :param timeout_s: give up after this long with a ``timeout`` event (every trigger has a deadline).
    :param poll_interval_s: how often to look at the job root.
    :param echo: handed back unchanged in every event (what the deferring task needs to finish).
    """

    #: Constructor arguments that travel besides the common ones, in order (the wire format: never rename or
    #: drop one).
    fields: ClassVar[tuple[str, ...]] = ()
    common: ClassVar[tuple[str, ...]] = (
        "job_root",
        "job_name",
        "generation",
        "timeout_s",
        "poll_interval_s",
        "echo",
    )

    def __init__(
        self,
        *,
        job_root: str,
        job_name: str | None = None,
        generation: int | None = None,
        timeout_s: float = DEFAULT_TRIGGER_TIMEOUT_S,
        poll_interval_s: float = 2.0,
        echo: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Airflow's BaseTrigger.__init__ is unannotated
        self.job_root = _text(job_root, "job_root")
        self.job_name = None if job_name is None else _text(job_name, "job_name")
        self.generation = _whole(generation, "generation")
        self.echo = dict(_mapping(echo, "echo"))
        self.timeout_s = _seconds(timeout_s, "timeout_s")
        self.poll_interval_s = _seconds(poll_interval_s, "poll_interval_s")

    def serialize(self) -> tuple[str, dict[str, Any]]:
        path = f"{type(self).__module__}.{type(self).__qualname__}"
        return path, {name: getattr(self, name) for name in (*self.common, *self.fields)}

    def observe(self, root: JobRoot) -> watch.Observation:
        raise NotImplementedError

    async def run(self) -> AsyncIterator[TriggerEvent]:
        root = JobRoot(self.job_root, job=self.job_name)
        deadline = time.monotonic() + self.timeout_s
        last = "not checked yet"
        while True:
            try:
                seen = await asyncio.to_thread(self.observe, root)
            # a trigger must turn every failure into an event
            except Exception as exc:  # noqa: BLE001
                yield _event(
                    {
                        "status": "error",
                        "message": f"{type(exc).__name__}: {exc}",
                        "payload": {},
                        "echo": self.echo,
                    }
                )
                return
            if seen.done or seen.failed:
                yield _event(
                    {
                        "status": "done" if seen.done else "failed",
                        "message": seen.message,
                        "payload": seen.payload,
                        "echo": self.echo,
                    }
                )
                return
            last = seen.message
            self.log.debug("%s: %s", type(self).__name__, last)
            if time.monotonic() >= deadline:
                yield _event(
                    {
                        "status": "timeout",
                        "message": f"timed out after {self.timeout_s:.0f}s: {last}",
                        "payload": seen.payload,
                        "echo": self.echo,
                    }
                )
                return
            await asyncio.sleep(self.poll_interval_s)


def _bad(name: str, value: Any, wanted: str) -> InvalidTriggerPayloadError:
    return InvalidTriggerPayloadError(f"trigger argument {name} must be {wanted}, got {value!r:.100}")


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise _bad(name, value, "a non-empty string")
    return value


def _whole(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(name, value, "a whole number or null")
    return value


def _seconds(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise _bad(name, value, "a finite number of seconds >= 0")
    return float(value)


def _mapping(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _bad(name, value, "an object or null")
    return value


def _event(payload: dict[str, Any]) -> TriggerEvent:
    return TriggerEvent(payload)  # type: ignore[no-untyped-call]  # Airflow's TriggerEvent is unannotated


class DriverStartedTrigger(JobRootTrigger):
    """The driver of one launch reports RUNNING (with a committed batch, if asked), or fails.

    :param launch_id: the launch whose driver to wait for (a report from an earlier driver does not count).
    :param need_commit: also wait for a committed batch.
    :param pid: the local driver's process id, so a dead local driver is known at once (None: not local).
    :param host: the host of that process.
    """

    fields = ("launch_id", "need_commit", "pid", "host")

    def __init__(
        self,
        *,
        launch_id: str = "",
        need_commit: bool = True,
        pid: int | None = None,
        host: str | None = None,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        if not isinstance(launch_id, str) or not isinstance(need_commit, bool):
            raise _bad("launch_id/need_commit", (launch_id, need_commit), "a string and a boolean")
        if host is not None and not isinstance(host, str):
            raise _bad("host", host, "a string or null")
        self.launch_id, self.need_commit, self.pid, self.host = (
            launch_id,
            need_commit,
            _whole(pid, "pid"),
            host,
        )

    def observe(self, root: JobRoot) -> watch.Observation:
        from airflow_checkpoint_provider.checkpoint.processes import local_liveness
        from airflow_checkpoint_provider.model.backends import Liveness

        gone = bool(self.pid) and local_liveness(self.pid, self.host or "", self.launch_id) is Liveness.GONE
        return watch.driver_started(
            root,
            int(self.generation or 0),
            self.launch_id,
            need_commit=self.need_commit,
            process_gone=gone,
        )


class StopAcknowledgedTrigger(JobRootTrigger):
    """The driver answered a stop request and exited.

    :param request_id: the stop request to wait for the answer to.
    """

    fields = ("request_id",)

    def __init__(self, *, request_id: str, **common: Any) -> None:
        super().__init__(**common)
        self.request_id = _text(request_id, "request_id")

    def observe(self, root: JobRoot) -> watch.Observation:
        return watch.stop_acknowledged(root, int(self.generation or 0), self.request_id)


class BatchCommittedTrigger(JobRootTrigger):
    """The checkpoint committed a batch.

    :param batch: the batch id to wait for (or any later one).
    """

    fields = ("batch",)

    def __init__(self, *, batch: int, **common: Any) -> None:
        super().__init__(**common)
        checked = _whole(batch, "batch")
        if checked is None:
            raise _bad("batch", batch, "a whole number")
        self.batch = checked

    def observe(self, root: JobRoot) -> watch.Observation:
        return watch.batch_committed(root, self.generation, self.batch)


class JobHealthyTrigger(JobRootTrigger):
    """The job is healthy (fails at once when its driver is dead).

    :param max_heartbeat_age_s: the driver's heartbeat may be at most this old (None: its own lease).
    :param max_batch_age_s: a batch must have committed within this long (None: not checked).
    :param max_lag: the source lag may be at most this many records (None: not checked).
    """

    fields = ("max_heartbeat_age_s", "max_batch_age_s", "max_lag")

    def __init__(
        self,
        *,
        max_heartbeat_age_s: float | None = None,
        max_batch_age_s: float | None = None,
        max_lag: int | None = None,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        for name, value in (
            ("max_heartbeat_age_s", max_heartbeat_age_s),
            ("max_batch_age_s", max_batch_age_s),
        ):
            if value is not None:
                _seconds(value, name)
        self.max_heartbeat_age_s, self.max_batch_age_s = max_heartbeat_age_s, max_batch_age_s
        self.max_lag = _whole(max_lag, "max_lag")

    def observe(self, root: JobRoot) -> watch.Observation:
        return watch.job_health(
            root,
            self.generation,
            max_heartbeat_age_s=self.max_heartbeat_age_s,
            max_batch_age_s=self.max_batch_age_s,
            max_lag=self.max_lag,
        )
