"""Triggers: wait on the job root without holding a worker slot.

The base trigger owns ``serialize()``; each subclass is configuration (its wire fields and the condition from
``checkpoint/watch.py`` it polls). The kwargs are a wire format: never rename or drop one.
Every event is ``{"status": "done" | "failed" | "timeout" | "error", "message": str, "payload": dict,
"echo": dict}`` (``echo``: the trigger's own ``echo`` argument, handed back to the deferring task).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_checkpoint_provider.checkpoint import watch
from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot


class JobRootTrigger(BaseTrigger):
    """Poll one condition under a job root until it holds, can never hold, or ``timeout_s`` passes."""

    #: Constructor arguments that travel (besides the common ones), in order.
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
        timeout_s: float = 600.0,
        poll_interval_s: float = 2.0,
        echo: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        self.job_root, self.job_name, self.generation = job_root, job_name, generation
        #: Returned in every event: what the deferring task needs to finish (independent of how the
        #: executor passes method kwargs back).
        self.echo = dict(echo or {})
        self.timeout_s, self.poll_interval_s = float(timeout_s), float(poll_interval_s)
        unknown = set(kwargs) - set(self.fields)
        if unknown:
            raise TypeError(f"{type(self).__name__} got unknown arguments {sorted(unknown)}")
        for name in self.fields:
            setattr(self, name, kwargs.get(name))

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
            except Exception as exc:  # a trigger must turn every failure into an event
                yield TriggerEvent(
                    {
                        "status": "error",
                        "message": f"{type(exc).__name__}: {exc}",
                        "payload": {},
                        "echo": self.echo,
                    }
                )
                return
            if seen.done or seen.failed:
                yield TriggerEvent(
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
                yield TriggerEvent(
                    {
                        "status": "timeout",
                        "message": f"timed out after {self.timeout_s:.0f}s: {last}",
                        "payload": seen.payload,
                        "echo": self.echo,
                    }
                )
                return
            await asyncio.sleep(self.poll_interval_s)


class DriverStartedTrigger(JobRootTrigger):
    """The driver of one launch reports RUNNING with a committed batch (or fails)."""

    fields = ("launch_id", "need_commit", "pid", "host")

    def observe(self, root: JobRoot) -> watch.Observation:
        from airflow_checkpoint_provider.checkpoint.processes import local_liveness
        from airflow_checkpoint_provider.model.backends import Liveness

        gone = bool(self.pid) and local_liveness(self.pid, self.host or "", self.launch_id) is Liveness.GONE  # type: ignore[attr-defined]
        return watch.driver_started(
            root,
            int(self.generation or 0),
            self.launch_id,  # type: ignore[attr-defined]
            need_commit=bool(self.need_commit),
            process_gone=gone,
        )  # type: ignore[attr-defined]


class StopAcknowledgedTrigger(JobRootTrigger):
    """The driver answered a stop request and exited."""

    fields = ("request_id",)

    def observe(self, root: JobRoot) -> watch.Observation:
        return watch.stop_acknowledged(root, int(self.generation or 0), self.request_id)  # type: ignore[attr-defined]


class BatchCommittedTrigger(JobRootTrigger):
    """The checkpoint committed a batch."""

    fields = ("batch",)

    def observe(self, root: JobRoot) -> watch.Observation:
        return watch.batch_committed(root, self.generation, int(self.batch))  # type: ignore[attr-defined]


class JobHealthyTrigger(JobRootTrigger):
    """The job is healthy (fails at once when its driver is dead)."""

    fields = ("max_heartbeat_age_s", "max_batch_age_s", "max_lag")

    def observe(self, root: JobRoot) -> watch.Observation:
        return watch.job_health(
            root,
            self.generation,
            max_heartbeat_age_s=self.max_heartbeat_age_s,  # type: ignore[attr-defined]
            max_batch_age_s=self.max_batch_age_s,
            max_lag=self.max_lag,
        )  # type: ignore[attr-defined]
