"""The warm standby: a redeploy's new driver starts Spark before the old driver stops, and takes over at the
old driver's final batch without waiting for Airflow to schedule a task.

The handoff runs between the two drivers and the job root:

1. The standby (``--acp-standby-for <old>``) takes its own generation's driver lock, starts its JVM, Spark
   session and Python workers (the engine's ``warm``), and reports ``STANDBY``. It has no query: it reads no
   source, loads no state, writes no checkpoint and touches no sink. It is not the job's current generation.
2. The old driver acknowledges its stop with the snapshot it exported of its final committed batch.
3. The standby checks that acknowledgement (:func:`check_handoff`): the old driver stopped, the snapshot is of
   the old generation's last committed batch (the old checkpoint agrees, nothing in flight), and its files
   verify. Then it promotes itself with a compare-and-set on the ledger (current ``old`` -> its own
   generation, snapshot recorded), and starts as any fresh generation does: the snapshot as initial state,
   the sources right after that batch.

Anyone else may give the go the same way: the start task promotes the standby after a separate export (when
the old driver could not export), with the same compare-and-set. A standby whose generation was discarded
(the redeploy failed before the go), or whose old generation is no longer current, exits without having
touched anything; one that gets no go within its timeout exits too. This module never imports pyspark.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from airflow_checkpoint_provider.checkpoint.inspector import inspect_checkpoint
from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot
from airflow_checkpoint_provider.checkpoint.ledger import JobLedger
from airflow_checkpoint_provider.checkpoint.processes import process_gone
from airflow_checkpoint_provider.checkpoint.snapshots import read_manifest, verify_snapshot
from airflow_checkpoint_provider.checkpoint.storage import Location
from airflow_checkpoint_provider.checkpoint.upgrade import SCRATCH
from airflow_checkpoint_provider.exceptions import CheckpointProviderError
from airflow_checkpoint_provider.model.constants import STANDBY_POLL_S, SUCCESSOR_WAIT_S
from airflow_checkpoint_provider.model.launch import LaunchSpec
from airflow_checkpoint_provider.model.records import DriverState, StopAck, StopMethod, StopOutcome

log = logging.getLogger("airflow_checkpoint_provider.runtime")

#: The name of the standby's warm-up query: the drivers' query listeners leave it out of ``status.json``.
WARM_UP_QUERY = "acp-standby-warm-up"
#: The name of the export path's warm-up query (a tiny state exported in scratch), left out the same way.
WARM_EXPORT_QUERY = "acp-export-warm-up"
WARM_UP_QUERIES = frozenset({WARM_UP_QUERY, WARM_EXPORT_QUERY})


#: A warm-up's scratch folder: ``warm-<unix seconds>-<what>-<pid>-<random>`` in ``<job root>/scratch/``.
_WARM_FOLDER = re.compile(r"^warm-(\d+)-[a-z]+-\d+-[0-9a-f]+$")
#: A warm-up takes seconds; a folder this old was left by a driver that died during one.
STALE_WARM_S = 3600.0


@contextlib.contextmanager
def scratch(root: JobRoot, what: str) -> Iterator[Location]:
    """A new folder ``<job root>/scratch/warm-<unix seconds>-<what>-<pid>-<random>`` for one warm-up, removed
    afterwards (and ``scratch/`` with it when it is left empty). Before it, folders of warm-ups older than
    :data:`STALE_WARM_S` are removed: a driver killed during its warm-up leaves one. Every path goes through
    the job root's containment (a ``scratch`` that links out of the root is refused, promise 4)."""
    folder = root.require_inside(
        root.location.child(SCRATCH, f"warm-{int(time.time())}-{what}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    )
    sweep(root)
    try:
        yield folder
    finally:
        _remove(root, folder)


def sweep(root: JobRoot, now: float | None = None) -> list[str]:
    """Remove the warm-up folders in ``<job root>/scratch/`` older than :data:`STALE_WARM_S` (by the time in
    their names: object stores have no folder times); the names removed. Nothing else is touched: a dry
    run's folder, a file, a name of another shape."""
    now = time.time() if now is None else now
    parent = root.require_inside(root.location.child(SCRATCH))
    removed = []
    for entry in parent.list_or_empty():
        match = _WARM_FOLDER.match(entry.name)
        if entry.is_dir and match and now - int(match.group(1)) > STALE_WARM_S:
            _remove(root, parent.child(entry.name))
            removed.append(entry.name)
    return removed


def _remove(root: JobRoot, folder: Location) -> None:
    folder = root.require_inside(folder)  # again at removal: a link put there meanwhile is refused
    if folder.is_local and os.path.islink(folder.path):
        return
    folder.remove(recursive=True)
    if folder.is_local:
        with contextlib.suppress(OSError):
            os.rmdir(folder.parent.path)  # scratch/, when nothing else is in it


@dataclass(frozen=True, slots=True)
class Handoff:
    """What a standby does next: ``go`` (with the snapshot it starts from), ``wait``, or ``exit``."""

    action: str
    reason: str
    snapshot: str | None = None


def check_handoff(root: JobRoot, generation: int, old: int, *, by: str) -> Handoff:
    """One look at the job root from standby ``generation`` (for ``old``); promotes it when the old driver's
    acknowledgement carries a verified snapshot of the old generation's last committed batch."""
    record = root.read_generation_record(generation) or {}
    current = root.current_generation()
    if current == generation:
        return Handoff(
            "go", f"generation {generation} is the job's current generation", record.get("snapshot")
        )
    if record.get("discarded_at"):
        return Handoff(
            "exit", f"this standby was discarded: {record.get('discard_reason') or 'no reason given'}"
        )
    if current != old:
        return Handoff(
            "exit",
            f"the job's current generation is {current}, not {old}: this standby has nothing to take over",
        )
    ack = root.read_stop_ack(old)
    if ack is None or ack.outcome not in (StopOutcome.STOPPED, StopOutcome.FORCED):
        return Handoff("wait", f"generation {old} has not stopped")
    request = root.read_stop_request(old)
    armed = float(record.get("armed_at") or 0)
    if request is None or request.request_id != ack.request_id or request.requested_at < armed:
        # an acknowledgement from before this standby was launched (an earlier stop of a job that was
        # restarted since) is not this redeploy's stop
        return Handoff("wait", f"generation {old}'s last stop is older than this standby")
    old_status = root.read_status(old)
    if old_status is not None and not old_status.state.is_terminal and old_status.is_live():
        return Handoff("wait", f"generation {old}'s driver still reports {old_status.state}")
    if not ack.snapshot_id:
        return Handoff(
            "wait", f"generation {old} stopped without exporting a snapshot: waiting for the start task"
        )
    snapshot = ack.snapshot_id
    manifest = read_manifest(root, snapshot, generation=generation)
    if manifest.generation != old or manifest.batch != ack.final_committed_batch:
        return Handoff("wait", f"snapshot {snapshot} is not of generation {old}'s final batch")
    info = inspect_checkpoint(root.checkpoint(old), allow_empty=True)
    if info.last_committed_batch != manifest.batch:
        return Handoff(
            "wait",
            f"generation {old}'s checkpoint ends at batch {info.last_committed_batch}, its snapshot at "
            f"{manifest.batch}",
        )
    verify_snapshot(root, snapshot, record=False, generation=generation)
    if JobLedger(root).promote(generation, previous=old, snapshot=snapshot, by=by):
        taken = (root.read_generation_record(generation) or {}).get("snapshot") or snapshot
        return Handoff(
            "go", f"took over from generation {old} at batch {manifest.batch} (snapshot {taken})", taken
        )
    return Handoff("wait", "the promotion did not take (the ledger changed meanwhile): looking again")


def await_go(root: JobRoot, spec: LaunchSpec, status: Any, lock: Any, driver_id: str) -> LaunchSpec | None:
    """Wait as a standby until told to go; return the launch contract to start with (the snapshot it takes
    over from), or None when this standby must exit without starting (discarded, stale, stopped, timed out).

    ``status`` is the driver's status writer and ``lock`` its driver lock (heartbeats go on while it waits).
    """
    assert spec.standby_for is not None
    old, generation = spec.standby_for, spec.generation
    deadline = time.monotonic() + spec.standby_timeout_s
    next_beat = 0.0
    last_reason = ""
    answered = root.read_stop_ack(generation)
    while True:
        try:
            handoff = check_handoff(root, generation, old, by=f"standby:{driver_id}")
        # a half-written or damaged file is looked at again; the standby never goes on a guess
        except CheckpointProviderError as exc:
            handoff = Handoff("wait", f"{type(exc).__name__}: {exc}")
        if handoff.reason != last_reason:
            log.info("standby for generation %s: %s", old, handoff.reason)
            last_reason = handoff.reason
        if handoff.action == "go":
            status.update(state=DriverState.STARTING, go_at=time.time(), start_reason=handoff.reason)
            return replace(spec, snapshot=handoff.snapshot, starting_offsets=None)
        if handoff.action == "exit":
            status.update(state=DriverState.STOPPED, error=f"standby exited: {handoff.reason}")
            return None
        request = root.read_stop_request(generation)
        if request is not None and (answered is None or answered.request_id != request.request_id):
            _answer_stop(root, generation, request.request_id, spec.launch_id)
            status.update(state=DriverState.STOPPED, error="standby stopped on request before its go")
            return None
        if time.monotonic() > deadline:
            reason = f"no go within {spec.standby_timeout_s:.0f}s"
            JobLedger(root).discard_standby(generation, by=f"standby:{driver_id}", reason=reason)
            status.update(state=DriverState.STOPPED, error=f"standby exited: {reason}")
            return None
        if time.monotonic() >= next_beat:
            if not lock.refresh():  # another driver took this generation over: this standby is not needed
                log.error("standby for generation %s: another driver holds the lock; exiting", old)
                return None
            status.update()
            next_beat = time.monotonic() + spec.heartbeat_s
        time.sleep(STANDBY_POLL_S)


def _answer_stop(root: JobRoot, generation: int, request_id: str, launch_id: str) -> None:
    """A standby asked to stop has nothing to stop: no batch, no position."""
    ack = StopAck(
        request_id=request_id,
        outcome=StopOutcome.STOPPED,
        method=StopMethod.IDLE,
        final_committed_batch=None,
        end_offsets=None,
        in_flight_batch=None,
        acknowledged_at=time.time(),
        stop_latency_s=0.0,
        launch_id=launch_id or None,
    )
    root.write_stop_ack(generation, ack)


def successor(root: JobRoot, generation: int) -> int | None:
    """The standby generation armed to take over from ``generation`` (the newest not discarded), if any."""
    for number, record in sorted(root.generation_records().items(), reverse=True):
        if number > generation and record.get("standby_for") == generation and not record.get("discarded_at"):
            return number
    return None


def await_successor(
    root: JobRoot,
    generation: int,
    lock: Any,
    heartbeat_s: float,
    *,
    since: float,
    limit_s: float = SUCCESSOR_WAIT_S,
) -> str:
    """After a stop whose snapshot a standby takes over from: wait, idle, until the successor has committed
    its first batch (or is gone, discarded, or ``limit_s`` passed); return why the wait ended.

    The old driver's query has stopped and its acknowledgement is written: it holds no batch, no state and no
    sink. Its teardown (the Spark session, the JVM's exit) and the redeploy's next tasks (the stop task waits
    for this process to exit) would otherwise run on the same CPUs as the successor's first batch.
    """
    ack = root.read_stop_ack(generation)
    if ack is None or ack.acknowledged_at < since:
        return "no handoff: this driver stopped without a stop request"
    if not ack.snapshot_id or ack.outcome not in (StopOutcome.STOPPED, StopOutcome.FORCED):
        return "no handoff: the stop exported no snapshot"
    try:
        new = successor(root, generation)
    except CheckpointProviderError as exc:
        return f"no handoff: {exc}"
    if new is None:
        return "no standby takes over"
    started = time.monotonic()
    next_beat = started + heartbeat_s
    while True:
        waited = time.monotonic() - started
        try:
            current = root.current_generation()
            record = root.read_generation_record(new) or {}
            status = root.read_status(new)
        # a half-written file is read again; the wait is bounded anyway
        except CheckpointProviderError:
            current, record, status = generation, {}, None
        if record.get("discarded_at"):
            return f"standby generation {new} was discarded"
        if current not in (generation, new):
            return f"the job's current generation is {current}"
        if current == new and status is not None and status.last_committed_batch is not None:
            return f"generation {new} committed batch {status.last_committed_batch} after {waited:.1f}s"
        if status is not None and status.state.is_terminal:
            return f"generation {new} is {status.state}"
        if status is not None and process_gone(status.pid, status.host, started_at=status.started_at):
            return f"generation {new}'s driver (pid {status.pid}) is gone"
        if waited > limit_s:
            return f"generation {new} did not commit within {limit_s:.0f}s"
        if time.monotonic() >= next_beat:
            if not lock.refresh():
                return f"another driver holds generation {generation}'s lock"
            next_beat = time.monotonic() + heartbeat_s
        time.sleep(STANDBY_POLL_S)
