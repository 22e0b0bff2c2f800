"""Liveness: the one rule for "is this driver alive", from its own report and, on this host, its process.

Process checks go through ``psutil`` (Linux, macOS, Windows): a zombie counts as gone, and a pid that now
belongs to a younger process, or to a process without the launch id in its command line, counts as gone too
(pid reuse). Where ``psutil`` is not installed (a cluster's driver image without it) the process answer is
UNKNOWN, never GONE, so a lock or status is respected until its lease runs out. No Airflow, no pyspark.
"""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING, TypeGuard

from airflow_checkpoint_provider.model.backends import Liveness

if TYPE_CHECKING:
    from airflow_checkpoint_provider.model.records import DriverStatus

#: A process created this long after the driver said it started is another process (clock granularity).
PID_REUSE_SLACK_S = 2.0


def local_liveness(
    pid: int | None, host: str | None, launch_id: str = "", *, started_at: float | None = None
) -> Liveness:
    """Whether the driver process ``pid`` on ``host`` still runs.

    :param launch_id: when given, the process's command line must carry it (our launches pass it).
    :param started_at: when given, a process created later than this is not the driver (pid reused).
    :returns: UNKNOWN for another host, no pid, or no ``psutil``; else ALIVE or GONE.
    """
    if not pid or host != socket.gethostname():
        return Liveness.UNKNOWN
    try:
        import psutil
    except ImportError:
        return Liveness.UNKNOWN
    try:  # reap it if it is our own exited child, so a zombie does not look alive
        os.waitpid(pid, os.WNOHANG)
    except OSError:
        pass
    try:
        proc = psutil.Process(pid)
        if proc.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
            return Liveness.GONE
        if started_at is not None and proc.create_time() > started_at + PID_REUSE_SLACK_S:
            return Liveness.GONE
        # An empty command line is a process in the middle of exec (spark-submit execs spark-class, which
        # execs java): it is still the driver starting, not a sign that it is gone.
        cmdline = proc.cmdline()
        if launch_id and cmdline and launch_id not in " ".join(cmdline):
            return Liveness.GONE
    except psutil.NoSuchProcess:
        return Liveness.GONE
    except psutil.AccessDenied:  # someone else's process: it exists, and we cannot tell more
        return Liveness.ALIVE
    return Liveness.ALIVE


def process_gone(pid: int | None, host: str | None, *, started_at: float | None = None) -> bool:
    """True only when the process is provably gone: on this host and not running (False when unknown)."""
    return local_liveness(pid, host, started_at=started_at) is Liveness.GONE


def driver_reported_alive(status: DriverStatus | None, now: float | None = None) -> TypeGuard[DriverStatus]:
    """The liveness rule for a driver's own report: not STOPPED or FAILED, heartbeat within its lease, and
    its process not provably gone (a kill -9'd local driver is dead at once, not after its lease)."""
    return (
        status is not None
        and status.is_live(now=now)
        and not process_gone(status.pid, status.host, started_at=status.started_at)
    )
