"""Defaults and limits, each defined once (stdlib only: the driver-side runtime imports this too)."""

from __future__ import annotations

#: How often a driver refreshes its status file and driver lock, and checks control requests (seconds).
DEFAULT_HEARTBEAT_S = 2.0
#: A driver whose heartbeat is older than this counts as dead (seconds). Must exceed the heartbeat.
DEFAULT_LEASE_S = 30.0
#: How long a lifecycle operation holds the job's lease without renewal; a crashed run's lease expires.
DEFAULT_JOB_LEASE_TTL_S = 3600.0
#: The restart callback's lease: at least this long (seconds), longer when it waits for the driver.
RESTART_LEASE_TTL_S = 600.0
#: How long a start waits for its driver to report (seconds).
DEFAULT_START_TIMEOUT_S = 600.0
#: How long a snapshot export may run (seconds).
DEFAULT_EXPORT_TIMEOUT_S = 1800.0
#: How long a stop waits for the driver to reach a batch boundary (seconds).
DEFAULT_STOP_TIMEOUT_S = 120.0
#: After a stop is acknowledged, the driver's process exits within this plus two of its leases (seconds).
STOP_EXIT_GRACE_S = 30.0
#: How long a hard kill waits for the driver to go away (seconds).
KILL_WAIT_S = 120.0
#: A trigger's own deadline when the deferring task names none (seconds).
DEFAULT_TRIGGER_TIMEOUT_S = 600.0
#: A deferrable wait first waits in the task this long (seconds) and defers only if the condition still
#: pends.
DEFER_AFTER_S = 10.0
#: How long a deferral may outlive its trigger's own deadline before Airflow times the task out (seconds).
DEFER_TIMEOUT_MARGIN_S = 120.0
#: A submitted cluster driver that has not reported yet counts as "still starting" for this many leases.
UNREPORTED_SUBMIT_LEASES = 4
#: How long a synchronous submit (YARN, Kubernetes) may take (seconds).
SUBMIT_TIMEOUT_S = 600.0
#: How long a cluster status query (``yarn application -status``, ``kubectl get pod``) may take (seconds).
STATUS_QUERY_TIMEOUT_S = 60.0
#: How long a cluster kill command may take (seconds).
KILL_COMMAND_TIMEOUT_S = 120.0
#: The largest file read whole (records, control files, checkpoint logs); larger ones are refused unread.
MAX_READ_BYTES = 32 * 1024 * 1024
#: Launch handles kept per generation record.
LAUNCHES_KEPT = 50
#: A warm standby that is not told to go within this long exits (seconds): it never holds a JVM for long.
DEFAULT_STANDBY_TIMEOUT_S = 1800.0
#: How often a waiting standby looks for its go (seconds): this is most of what the handoff costs.
STANDBY_POLL_S = 0.1
#: After a stop whose snapshot a warm standby takes over from, the old driver stays up, idle, until its
#: successor commits its first batch, at most this long (seconds): its teardown (and the redeploy's next
#: Airflow tasks, which wait for its exit) would otherwise compete with the successor's first batch for the
#: CPU.
SUCCESSOR_WAIT_S = 20.0
#: How long a passed dry run's driver stays up for the redeploy's standby task to adopt it, by default
#: (seconds): the scheduler starts the next task within seconds; a retry after a failure may take minutes.
DEFAULT_STAY_AS_STANDBY_S = 300.0
#: How often a dry run's driver that offers itself looks for its adoption (seconds).
ADOPT_POLL_S = 0.25
#: How often a running driver looks for a stop request, supersession and snapshot requests (seconds): a
#: redeploy waits this long, at most, before the stop begins. One small read per look; the heartbeat's writes
#: keep their own pace.
CONTROL_POLL_S = 0.25
#: How often a stopping driver looks for its batch boundary (seconds): a few reads of the checkpoint's logs
#: per look, only while a stop is under way.
STOPPING_POLL_S = 0.05


def optional_int(value: int | str | None) -> int | None:
    """A rendered template field that names a whole number, or nothing: ``None``, ``""`` and ``"None"`` (what
    an empty or ``None`` template renders to) mean nothing.

    :raises ValueError: any other text that is not a whole number.
    """
    if value is None or value in ("", "None"):
        return None
    return int(value)
