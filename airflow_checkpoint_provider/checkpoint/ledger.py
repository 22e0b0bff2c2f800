"""Reading and changing ``<job root>/job.json`` under a short mutex, so two operations cannot both win.

Every change is a read-modify-write inside :meth:`JobLedger.transaction`, which holds ``job.json.lock``
(created exclusively; a mutex older than ``MUTEX_STALE_S`` belongs to a crashed writer and is broken). On
local storage this is atomic; on object stores exclusive creation is check-then-write (see the README).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from airflow_checkpoint_provider.checkpoint.jobroot import JOB_FILE, JobRoot
from airflow_checkpoint_provider.exceptions import (
    CorruptCheckpointError,
    LeaseHeldError,
    StorageUnavailableError,
)
from airflow_checkpoint_provider.model.ledger import Lease, Ledger, lease_blocker

log = logging.getLogger(__name__)

MUTEX_STALE_S = 30.0
MUTEX_WAIT_S = 20.0
HISTORY_KEPT = 200
RUNS_KEPT = 100


class JobLedger:
    """The job's ledger: current generation, lease, history."""

    def __init__(self, root: JobRoot) -> None:
        self.root = root
        self.file = root.location.child(JOB_FILE)
        self.mutex = root.location.child(JOB_FILE + ".lock")

    def read(self) -> Ledger:
        data = self.root.read_json(self.file, what="job ledger")
        try:
            return Ledger.from_json(data or {}, self.root.job)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CorruptCheckpointError(
                f"job ledger is malformed: {type(exc).__name__}: {exc}",
                path=self.file.uri,
                job=self.root.job,
                hint="Restore job.json from a backup, or repair the field named",
            ) from exc

    @contextmanager
    def _mutex(self) -> Iterator[None]:
        token = uuid.uuid4().hex
        deadline = time.monotonic() + MUTEX_WAIT_S
        while not self.mutex.create_exclusive(json.dumps({"token": token, "at": time.time()}).encode()):
            try:
                held = json.loads(self.mutex.read_text())
                age = time.time() - float(held.get("at", 0))
            except (FileNotFoundError, ValueError):
                age = 0.0
            if age > MUTEX_STALE_S:
                log.warning("breaking a stale ledger mutex (%.0fs old) at %s", age, self.mutex.uri)
                self.mutex.remove()
                continue
            if time.monotonic() > deadline:
                raise StorageUnavailableError(
                    "could not take the job ledger's mutex",
                    path=self.mutex.uri,
                    job=self.root.job,
                    hint=f"Another operation is writing job.json; if none is, remove {self.mutex.uri}",
                )
            time.sleep(0.05)
        try:
            yield
        finally:
            self.mutex.remove()

    def transaction(self, change: Callable[[Ledger], Ledger]) -> Ledger:
        """Apply ``change`` to the ledger atomically (it may raise to abort); return the new ledger."""
        with self._mutex():
            before = self.read()
            after = change(before)
            if after != before:
                raw = self.root.read_json(self.file, what="job ledger") or {}
                raw.update(after.to_json())
                raw["history"] = list(after.history)[-HISTORY_KEPT:]
                raw["runs"] = dict(list(after.runs.items())[-RUNS_KEPT:])
                self.root.write_json(self.file, raw)
            return after

    # --- the lease ------------------------------------------------------------------------------------

    def acquire(
        self, holder: str, operation: str, ttl_s: float, holder_finished: Callable[[str], bool] | None = None
    ) -> Lease:
        """Take or renew the job's lease for ``holder``; :class:`LeaseHeldError` naming the holder if taken.

        :param holder_finished: asked about another holder: True if it has ended (a finished DAG run), so its
            lease is free before it expires.
        """
        now = time.time()
        current = self.read().lease
        ended = bool(
            current is not None
            and current.holder != holder
            and not current.expired(now)
            and holder_finished is not None
            and holder_finished(current.holder)
        )

        def change(ledger: Ledger) -> Ledger:
            blocker = lease_blocker(ledger.lease, holder, now)
            if blocker is not None and ended and current is not None and blocker.holder == current.holder:
                log.info("taking over the lease of %s: it has finished", blocker.holder)
                blocker = None
            if blocker is not None:
                raise LeaseHeldError(
                    f"another lifecycle operation holds this job: {blocker.describe(now)}; refusing to run "
                    f"{operation} for {holder!r} at the same time",
                    path=self.file.uri,
                    job=self.root.job,
                    generation=ledger.current_generation,
                    hint="Wait for it to finish (or for its lease to expire), then run again",
                )
            acquired = ledger.lease.acquired_at if ledger.lease and ledger.lease.holder == holder else now
            lease = Lease(holder=holder, operation=operation, acquired_at=acquired, expires_at=now + ttl_s)
            return replace(ledger, lease=lease)

        lease = self.transaction(change).lease
        assert lease is not None
        return lease

    def release(self, holder: str) -> bool:
        """Give the lease up if ``holder`` has it; return whether it did."""
        released = False

        def change(ledger: Ledger) -> Ledger:
            nonlocal released
            if ledger.lease is None or ledger.lease.holder != holder:
                return ledger
            released = True
            return replace(ledger, lease=None)

        self.transaction(change)
        return released

    # --- generations ----------------------------------------------------------------------------------

    def pinned_generation(self, holder: str) -> int | None:
        """The generation run ``holder`` acts on: the current one when the run first asks, the same ever
        after."""
        pinned: int | None = None

        def change(ledger: Ledger) -> Ledger:
            nonlocal pinned
            if holder in ledger.runs:
                pinned = ledger.runs[holder]
                return ledger
            pinned = ledger.current_generation
            return replace(ledger, runs={**ledger.runs, holder: pinned})

        self.transaction(change)
        return pinned

    def resolved_snapshot(self, holder: str, resolve: Callable[[], str]) -> str:
        """The snapshot ``snapshot="latest"`` means for run ``holder``: ``resolve()`` when the run first asks,
        the same ever after (a retry never starts from a snapshot that appeared in between)."""
        resolved = ""

        def change(ledger: Ledger) -> Ledger:
            nonlocal resolved
            if holder in ledger.resolved_snapshots:
                resolved = ledger.resolved_snapshots[holder]
                return ledger
            resolved = resolve()
            return replace(ledger, resolved_snapshots={**ledger.resolved_snapshots, holder: resolved})

        self.transaction(change)
        return resolved

    def set_current(self, generation: int, *, by: str, event: str, **details: Any) -> Ledger:
        def change(ledger: Ledger) -> Ledger:
            entry = {"at": time.time(), "event": event, "generation": generation, "by": by, **details}
            return replace(ledger, current_generation=generation, history=(*ledger.history, entry))

        return self.transaction(change)

    # --- the warm standby's handoff (runtime/standby.py): both under the ledger's mutex --------------------

    def promote(
        self, generation: int, *, previous: int, snapshot: str, by: str, undiscard: bool = False
    ) -> bool:
        """Make standby ``generation`` the job's current one, starting from ``snapshot``, if the current one
        is still ``previous`` (compare and set). True when ``generation`` is current afterwards (this call or
        an earlier one promoted it). A discarded standby is never promoted, unless ``undiscard`` (the start
        task, which launches the generation itself when its standby is gone)."""

        def change(ledger: Ledger) -> Ledger:
            if ledger.current_generation == generation or ledger.current_generation != previous:
                return ledger
            record = self.root.read_generation_record(generation) or {}
            if record.get("discarded_at") and not undiscard:
                return ledger
            self.root.update_generation_record(
                generation, snapshot=snapshot, promoted_at=time.time(), promoted_by=by, discarded_at=None
            )
            entry = {
                "at": time.time(),
                "event": "generation_created",
                "generation": generation,
                "by": by,
                "snapshot": snapshot,
                "previous": previous,
                "standby": True,
            }
            return replace(ledger, current_generation=generation, history=(*ledger.history, entry))

        return self.transaction(change).current_generation == generation

    def discard_standby(self, generation: int, *, by: str, reason: str) -> bool:
        """Mark standby ``generation`` discarded (its driver exits; it is never promoted) unless it has
        already become current. True when it is discarded afterwards."""
        discarded = False

        def change(ledger: Ledger) -> Ledger:
            nonlocal discarded
            if ledger.current_generation == generation:
                return ledger
            record = self.root.read_generation_record(generation) or {}
            discarded = True
            if record.get("discarded_at"):
                return ledger
            self.root.update_generation_record(generation, discarded_at=time.time(), discard_reason=reason)
            entry = {"at": time.time(), "event": "standby_discarded", "generation": generation, "by": by}
            return replace(ledger, history=(*ledger.history, {**entry, "reason": reason}))

        self.transaction(change)
        return discarded

    def record(self, event: str, *, by: str, **details: Any) -> Ledger:
        def change(ledger: Ledger) -> Ledger:
            entry = {"at": time.time(), "event": event, "by": by, **details}
            return replace(ledger, history=(*ledger.history, entry))

        return self.transaction(change)
