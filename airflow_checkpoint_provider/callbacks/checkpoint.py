"""The failure path as a callback: bring a dead job back from its intact checkpoint.

``on_failure_callback=restart_from_checkpoint(job_root=...)`` on a health sensor (or on any task watching the
job) relaunches the job's current generation with its recorded launch. It never snapshots, never cleans, never
creates a generation, and never passes the snapshot to a generation whose checkpoint has a committed batch
(the driver decides the same from the checkpoint). It does nothing while a redeploy holds the job's lease,
while a driver is alive, when the current generation is retired, or when it was stopped on request (a stop
someone asked for — graceful, forced or a kill — stays asked for until an explicit start;
``model.decisions.stopped_on_request``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from airflow_checkpoint_provider._lazy import lazy
from airflow_checkpoint_provider.exceptions import LeaseHeldError
from airflow_checkpoint_provider.model.constants import KILL_WAIT_S, RESTART_LEASE_TTL_S

# What the callback runs, imported when it runs (a DAG file importing this module stays cheap to parse).
if TYPE_CHECKING:  # type checkers see the modules; at run time they load at first use
    from airflow_checkpoint_provider.checkpoint import jobroot as _jobroot
    from airflow_checkpoint_provider.checkpoint import ledger as _ledger
    from airflow_checkpoint_provider.checkpoint import watch as watch
    from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot
    from airflow_checkpoint_provider.hooks.checkpoint import DriverView, StreamingJobHook
else:
    watch = lazy("airflow_checkpoint_provider.checkpoint.watch")
    _jobroot = lazy("airflow_checkpoint_provider.checkpoint.jobroot")
    _ledger = lazy("airflow_checkpoint_provider.checkpoint.ledger")

log = logging.getLogger(__name__)


def restart_from_checkpoint(
    *,
    job_root: str,
    job_name: str | None = None,
    conn_id: str | None = None,
    master: str | None = None,
    python_path: Sequence[str] = (),
    wait_s: float = 0.0,
    kill_hung_after_s: float | None = None,
) -> Callable[[Any], dict[str, Any]]:
    """Build an ``on_failure_callback`` that restarts the job from its checkpoint (see the module docstring).

    The relaunch goes where the generation ran: the Spark target recorded with its first launch (connection,
    master, deploy mode). ``conn_id`` and ``master`` need not be given; when they are, they must name that
    same target, or the callback refuses (:class:`~airflow_checkpoint_provider.exceptions.LaunchTargetError`)
    rather than run the job's driver somewhere else.

    :param job_root: the job root (templated: rendered with the failed task's context).
    :param job_name: display name; default the job root's last path element.
    :param conn_id: the ``spark`` connection the job runs on (templated); only a check, see above.
    :param master: the Spark master the job runs on (templated); only a check, see above.
    :param python_path: folders the driver's Python must import from, added to what the hook always adds.
    :param wait_s: wait up to this long for the restarted driver to report RUNNING (0: do not wait).
    :param kill_hung_after_s: a driver whose process still runs but whose heartbeat is older than this is hung
        (a deadlock, a JVM lost in garbage collection, a frozen host): kill it through its backend, then
        restart it from its checkpoint like a dead one (ledger ``hung_driver_killed``). Default ``None``:
        a live process is never killed, and a hung driver waits for a person. Give many leases' worth (the
        example watchdog: 900 s against a 30 s lease), so that a long pause is not taken for a hang; a limit
        shorter than the driver's lease counts as the lease (its owner is never killed while its lease runs).
    :returns: the callback; it returns what it did (``{"action": ..., "reason": ...}``) for logs and tests.
    :raises LaunchTargetError: (from the callback) the generation's target cannot be reached or differs.
    """

    def callback(context: Any) -> dict[str, Any]:
        from airflow_checkpoint_provider.hooks.checkpoint import StreamingJobHook
        from airflow_checkpoint_provider.lease import RESTART_PREFIX, run_finished, run_holder
        from airflow_checkpoint_provider.model.decisions import stopped_on_request

        task = context.get("task") if hasattr(context, "get") else None

        def render(value: str | None) -> str | None:
            if value and task is not None and "{{" in value:
                return str(task.render_template(value, context)) or None
            return value or None

        where = render(job_root) or job_root
        root = _jobroot.JobRoot(where, job=job_name).require_job()
        holder = f"{RESTART_PREFIX}{run_holder(context)}"
        ledger = _ledger.JobLedger(root)
        try:
            ledger.acquire(
                holder,
                "restart from checkpoint",
                ttl_s=max(RESTART_LEASE_TTL_S, wait_s + 60),
                # a lease left by a finished (e.g. failed) run is free, as for the operators
                holder_finished=lambda other: run_finished(context, other),
            )
        except LeaseHeldError as exc:
            log.warning("not restarting %s: %s", root.job, exc)
            return {"action": "none", "reason": str(exc)}
        try:
            generation = ledger.read().current_generation
            if generation is None:
                return {"action": "none", "reason": "the job has no generation"}
            record = root.read_generation_record(generation) or {}
            if record.get("retired_at") or record.get("deleted_at"):
                return {"action": "none", "reason": f"generation {generation} is retired"}
            # Where the generation ran, never a default engine (conn_id/master only confirm it).
            hook = StreamingJobHook(
                render(conn_id), master=render(master), python_path=python_path
            ).for_generation(root, generation)
            view = hook.observe(root, generation)
            hung = _hung(view, kill_hung_after_s)
            if hung:
                view = _kill_hung(hook, root, generation, view, hung, holder)
            if view.alive or not view.provably_stopped:
                log.info("not restarting %s generation %s: %s", root.job, generation, view.reason)
                return {"action": "none", "reason": view.reason}
            asked = stopped_on_request(
                root.read_stop_request(generation),
                root.read_stop_ack(generation),
                record.get("launches") or [],
            )
            if asked:
                reason = (
                    f"generation {generation} is left stopped: {asked}; an explicit start "
                    "(StartStreamingJobOperator) runs it again"
                )
                log.warning("not restarting %s: %s", root.job, reason)
                return {"action": "none", "reason": reason}
            handle, decision = hook.launch_generation(root, generation, by=holder)
            log.info(
                "restarted %s generation %s (%s): %s",
                root.job,
                generation,
                handle.describe(),
                decision.reason,
            )
            result = {
                "action": "restarted",
                "killed_hung": hung,
                "generation": generation,
                "launch_id": handle.launch_id,
                "mode": decision.mode.value,
                "reason": decision.reason,
            }
            deadline = time.monotonic() + wait_s
            while wait_s and time.monotonic() < deadline:
                seen = watch.driver_started(root, generation, handle.launch_id, need_commit=False)
                if seen.done or seen.failed:
                    result["started"] = seen.done
                    result["message"] = seen.message
                    break
                time.sleep(1.0)
            return result
        finally:
            ledger.release(holder)

    return callback


def _hung(view: DriverView, after_s: float | None) -> str | None:
    """Why a driver that is alive by its backend counts as hung: its heartbeat is older than ``after_s`` and
    than its own lease (while its lease runs a driver owns its generation, however short the limit)."""
    status = view.status
    if after_s is None or not view.alive or status is None or status.state.is_terminal:
        return None
    age = status.heartbeat_age()
    if age <= max(after_s, status.lease_s):
        return None
    return f"driver {status.driver_id} (pid {status.pid} on {status.host}) sent no heartbeat for {age:.0f}s"


def _kill_hung(
    hook: StreamingJobHook, root: JobRoot, generation: int, view: DriverView, hung: str, holder: str
) -> DriverView:
    """Kill a hung driver through its backend and wait until it is provably gone (at most ``KILL_WAIT_S``)."""
    log.warning("%s generation %s: %s (hung): killing it", root.job, generation, hung)
    _ledger.JobLedger(root).record("hung_driver_killed", by=holder, generation=generation, reason=hung)
    if view.handle is not None:
        hook.kill(view.handle)
    deadline = time.monotonic() + KILL_WAIT_S
    while True:
        view = hook.observe(root, generation)
        if view.provably_stopped or time.monotonic() >= deadline:
            return view
        time.sleep(1.0)
