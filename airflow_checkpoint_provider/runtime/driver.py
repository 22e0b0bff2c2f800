"""The driver protocol both engines share: launch contract, start decision, lock, status, stop, fencing.

A managed driver — a Structured Streaming query (:mod:`~airflow_checkpoint_provider.runtime.managed`) or a
DStream context (:mod:`~airflow_checkpoint_provider.runtime.dstreams`) — runs the same protocol:

1. parse the launch contract; refuse a superseded or retired generation (:func:`prepare`);
2. decide resume vs fresh from the checkpoint (the engine's rule), and refuse a resume whose application
   files digest differently from the code that wrote the checkpoint (:func:`check_code`, promise 3);
3. take ``driver.lock`` (one live driver per generation), keep ``status.json`` current;
4. serve stop requests at a batch boundary, acknowledge with the last committed batch and its source
   position, export the final snapshot on request; stop without committing once superseded;
5. export a committed batch on a snapshot request while running (:func:`open_snapshot_request`,
   :func:`answer_snapshot_request`): no second Spark application reads the checkpoint.

The engine supplies what differs (:class:`Engine`): how it starts, where its boundary is, how it halts and
exports. This module never imports pyspark.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import sys
import sysconfig
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, cast

from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot, control_file_is_for
from airflow_checkpoint_provider.checkpoint.ledger import JobLedger
from airflow_checkpoint_provider.checkpoint.processes import process_gone
from airflow_checkpoint_provider.checkpoint.snapshots import Manifest, read_manifest, verify_snapshot
from airflow_checkpoint_provider.exceptions import (
    CheckpointProviderError,
    CodeChangedError,
    ControlFileError,
    FencedError,
    ForeignSnapshotError,
    OffsetsMismatchError,
    SnapshotSchemaMismatchError,
)
from airflow_checkpoint_provider.model.constants import CONTROL_POLL_S
from airflow_checkpoint_provider.model.decisions import StartDecision, StartMode
from airflow_checkpoint_provider.model.launch import LaunchSpec, parse_launch_args
from airflow_checkpoint_provider.model.records import (
    DriverState,
    DriverStatus,
    OnStopTimeout,
    StopAck,
    StopMethod,
    StopOutcome,
    StopRequest,
)
from airflow_checkpoint_provider.runtime.standby import await_go, await_successor

log = logging.getLogger("airflow_checkpoint_provider.runtime")

#: A driver's exit code when another driver took its generation's lock over (it stopped itself).
LOCK_LOST_EXIT = 3


class GateClosed(RuntimeError):
    """Raised by a gated sink to refuse a batch before touching it (stop requested, or generation
    superseded)."""


class StatusWriter:
    """Owns ``status.json`` for this driver: one writer, atomic replacements, thread-safe."""

    def __init__(self, root: JobRoot, status: DriverStatus) -> None:
        self.root = root
        self._status = status
        self._lock = threading.Lock()
        self._detached = False
        self.root.write_status(status)

    @property
    def current(self) -> DriverStatus:
        return self._status

    def detach(self) -> None:
        """Write nothing more: the file belongs to another driver now (this one lost its lock)."""
        with self._lock:
            self._detached = True

    def update(self, **changes: Any) -> DriverStatus:
        with self._lock:
            self._status = replace(self._status, heartbeat_at=time.time(), **changes)
            if self._detached:
                return self._status
            try:
                self.root.write_status(self._status)
            except CheckpointProviderError as exc:  # best-effort reporting must not kill the job
                log.warning("could not write status: %s", exc)
            return self._status

    def reset(self, status: DriverStatus) -> None:
        """Replace the whole status, keeping this writer: a standby's go (what reports through the writer,
        such as the query listener its session registered, keeps reporting to the one file)."""
        with self._lock:
            self._status = status
            self.root.write_status(status)


class DriverLock:
    """``generations/<g>/driver.lock``: at most one live driver per generation (promise 5 in docs/design.md).

    Created exclusively; refreshed on every heartbeat; a lock whose heartbeat is older than the lease belongs
    to a dead driver and is taken over. A driver that outlived its lease (paused, hung, cut off) and finds its
    lock taken over stops itself at its next heartbeat, writing nothing more (:func:`lock_lost`).
    """

    def __init__(self, root: JobRoot, generation: int, driver_id: str, lease_s: float) -> None:
        self.root, self.generation, self.driver_id, self.lease_s = root, generation, driver_id, lease_s
        self.file = root.driver_lock_file(generation)

    def _payload(self) -> bytes:
        return json.dumps(
            {
                "driver_id": self.driver_id,
                "heartbeat_at": time.time(),
                "host": socket.gethostname(),
                "pid": os.getpid(),
            }
        ).encode()

    def acquire(self) -> None:
        if self.file.create_exclusive(self._payload()):
            return
        holder = self.root.read_json(self.file, what="driver lock") or {}
        age = time.time() - float(holder.get("heartbeat_at", 0))
        dead_here = process_gone(holder.get("pid"), holder.get("host"))
        if holder.get("driver_id") != self.driver_id and age < self.lease_s and not dead_here:
            raise FencedError(
                f"another live driver ({holder.get('driver_id')} on {holder.get('host')} pid "
                f"{holder.get('pid')}, heartbeat {age:.1f}s ago) holds this generation; refusing to start a "
                "second one",
                path=self.file.uri,
                job=self.root.job,
                generation=self.generation,
                hint=f"Stop it first, or wait {self.lease_s:.0f}s if it is dead",
            )
        log.info(
            "taking over the driver lock of a dead driver (heartbeat %.1fs ago, lease %.0fs, process %s)",
            age,
            self.lease_s,
            "gone" if dead_here else "unknown",
        )
        self.file.write_bytes(self._payload())

    def held(self) -> bool:
        """Whether no other driver holds the lock now. False when this driver's lease ran out (it was paused,
        hung or cut off) and a new driver took the generation over: this one must stop without committing
        more (promise 5)."""
        try:
            holder = self.root.read_json(self.file, what="driver lock") or {}
        except CheckpointProviderError:  # a damaged lock is rewritten by its holder, as before
            return True
        return holder.get("driver_id") in (None, self.driver_id)

    def refresh(self) -> bool:
        """Write a fresh heartbeat into the lock; False, and nothing written, when it is not :meth:`held`."""
        if not self.held():
            return False
        self.file.write_bytes(self._payload())
        return True

    def release(self) -> None:
        holder = self.root.read_json(self.file, what="driver lock") or {}
        if holder.get("driver_id") == self.driver_id:
            self.file.remove()


# --- the code that runs ----------------------------------------------------------------------------------


def application_files(main_file: str | None = None, modules: Iterable[Any] | None = None) -> list[Path]:
    """The files whose code this driver runs: the main script and every loaded module that lives beside it
    (its folder or below), never installed packages. ``[]`` when there is no main script (an interactive or
    in-process run)."""
    main = main_file or getattr(sys.modules.get("__main__"), "__file__", None)
    if not main:
        return []
    main_path = Path(main).resolve()
    installed = {Path(p).resolve() for p in {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}}
    if any(parent in installed for parent in main_path.parents):
        return []
    folder = main_path.parent
    found = {main_path}
    for module in list(sys.modules.values()) if modules is None else modules:
        file = getattr(module, "__file__", None)
        if not file or not file.endswith(".py"):
            continue
        path = Path(file).resolve()
        if folder in path.parents and not any(parent in installed for parent in path.parents):
            found.add(path)
    return sorted(found)


def code_digest(files: Sequence[Path]) -> str | None:
    """sha256 over the files' names (relative to the first one's folder) and bytes; None for no files."""
    if not files:
        return None
    base = files[0].parent
    digest = hashlib.sha256()
    for path in sorted(files):
        name = os.path.relpath(path, base)
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return "sha256:" + digest.hexdigest()


def check_code(
    root: JobRoot, spec: LaunchSpec, decision: StartDecision, record: dict[str, Any], digest: str | None
) -> None:
    """Promise 3: a resume runs only the code that wrote the checkpoint. The digest recorded at the
    generation's first start must match this driver's; a label alone is not trusted (it may not change when
    a function does)."""
    recorded = record.get("code_digest")
    if decision.mode is not StartMode.RESUME or not recorded or not digest or recorded == digest:
        return
    was, now = record.get("code_version") or "unlabelled", spec.code_version or "unlabelled"
    raise CodeChangedError(
        f"refusing to resume: this driver's code ({now}, {digest[:19]}) is not the code that wrote the "
        f"checkpoint ({was}, {recorded[:19]}); resuming would run new code on old state"
        + (" (the label is unchanged, the files are not)" if was == now else ""),
        path=root.checkpoint(spec.generation).uri,
        job=root.job,
        generation=spec.generation,
        hint="Redeploy through a snapshot (stop, snapshot, start a new generation), or relaunch the "
        "original code",
    )


# --- the context both engines hand to the application --------------------------------------------------


class DriverContext:
    """The parts of an application's context that do not depend on the engine."""

    def __init__(
        self,
        spec: LaunchSpec,
        root: JobRoot,
        decision: StartDecision,
        starting_offsets: Sequence[Any] | None,
        manifest: Manifest | None,
    ) -> None:
        self.spec = spec
        self.root = root
        self.decision = decision
        self.starting_offsets = list(starting_offsets) if starting_offsets is not None else None
        self.manifest = manifest
        self.checkpoint_location = root.checkpoint(spec.generation).uri
        self.control_location = root.control_dir(spec.generation).uri
        self.initial_state_parts: list[str] = []
        self.gated_sinks = 0
        self._gate_reason: str | None = None
        _CONTEXTS[(root.location.uri, spec.generation)] = self

    @property
    def generation(self) -> int:
        return self.spec.generation

    @property
    def dry_run(self) -> bool:
        """Whether this driver is a dry run on a scratch copy of the job (see ``docs/upgrades.md``)."""
        return bool(self.spec.dry_run_output)

    def output(self, path: str) -> str:
        """Where a sink that would write to ``path`` writes: ``path`` itself, or in a dry run a folder of the
        same name below the dry run's scratch output (the real sink is never touched). Route every sink
        path of the application through this."""
        if not self.spec.dry_run_output:
            return path
        name = str(path).rstrip("/").rsplit("/", 1)[-1] or "output"
        return f"{self.spec.dry_run_output.rstrip('/')}/{name}"

    def starting_offset(self, source_index: int) -> Any | None:
        """The recorded end offset this source starts from on the fresh path (None on resume or if not
        given)."""
        if self.decision.mode is StartMode.RESUME or self.starting_offsets is None:
            return None
        if source_index >= len(self.starting_offsets):
            raise OffsetsMismatchError(
                f"the job reads source #{source_index} but only {len(self.starting_offsets)} starting "
                "offsets were given",
                path=self.root.location.uri,
                job=self.root.job,
                generation=self.generation,
            )
        return self.starting_offsets[source_index]

    def snapshot_part(self, manifest: Manifest, part: str | None) -> tuple[str, Any]:
        """The snapshot's state part by name (None: its only one), or ForeignSnapshotError naming what it
        has."""
        folder = self.root.snapshot_dir(manifest.snapshot_id)
        has = ", ".join(sorted(manifest.parts)) or "none"
        if part is None:
            if len(manifest.parts) != 1:
                raise ForeignSnapshotError(
                    f"snapshot {manifest.snapshot_id!r} has {len(manifest.parts)} state parts ({has}): "
                    "name one",
                    path=folder.uri,
                    job=self.root.job,
                    generation=self.generation,
                )
            part = next(iter(manifest.parts))
        if part not in manifest.parts:
            raise ForeignSnapshotError(
                f"snapshot {manifest.snapshot_id!r} has no state part {part!r} (it has: {has})",
                path=folder.uri,
                job=self.root.job,
                generation=self.generation,
            )
        return part, manifest.parts[part]

    def load_state_part(
        self,
        spark: Any,
        part: str | None,
        keys: Sequence[str] | None,
        *,
        expect: Any = None,
        migrate: Callable[[Any], Any] | None = None,
    ) -> tuple[list[str], Any] | None:
        """The snapshot's state part (None: its only part) as a DataFrame, migrated and checked against the
        declared schema ``expect`` (``SnapshotSchemaMismatchError`` before anything runs), with its key
        columns (``keys``, default the part's as exported) — or None unless this start loads a snapshot
        (never on resume: promise 2 in docs/design.md). What both engines' initial state is made of."""
        if not self.decision.load_initial_state or self.manifest is None:
            return None
        folder = self.root.snapshot_dir(self.manifest.snapshot_id)
        name, spec = self.snapshot_part(self.manifest, part)
        reader = spark.read
        if spec.spark_schema:  # the schema the export wrote: no Spark job to infer it from the files
            from pyspark.sql.types import StructType

            reader = reader.schema(StructType.fromJson(json.loads(spec.spark_schema)))
        df = reader.parquet(folder.child(spec.path).uri)
        key_columns = list(spec.key_columns) if keys is None else list(keys)
        if migrate is not None:
            df = migrate(df)
        if expect is not None:
            check_state_schema(
                df,
                key_columns,
                expect,
                part=name,
                migrated=migrate is not None,
                where=folder.uri,
                job=self.root.job,
                generation=self.generation,
            )
        self.initial_state_parts.append(name)
        return key_columns, df

    def gated(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap a sink function (``foreachBatch``'s ``(df, batch_id)`` or ``foreachRDD``'s ``(time, rdd)``):
        it refuses a batch, before touching it, once this driver must stop (a stop request served by the
        gate, or a superseded generation). A refused batch is not committed."""
        self.gated_sinks += 1
        return _gated(fn, self.root.location.uri, self.generation)

    def gate_reason(self) -> str | None:
        return self._gate_reason or self.superseded()

    def close_gate(self, reason: str) -> None:
        self._gate_reason = reason

    def reopen_gate(self) -> None:
        self._gate_reason = None

    def superseded(self) -> str | None:
        current = self.root.current_generation()
        if current is not None and current != self.generation:
            return f"generation {self.generation} is superseded by generation {current}"
        return None


def _gated(fn: Callable[..., Any], job_root: str, generation: int) -> Callable[..., Any]:
    """A plain function (``foreachRDD`` reads ``__code__``) that carries only the job root and generation:
    a DStream graph restored from its checkpoint (which pickles the sink) consults the live driver's
    context, never a stale copy."""

    def gate(first: Any, second: Any) -> Any:
        check_gate(job_root, generation, second if isinstance(second, int) else first)
        return fn(first, second)

    return gate


def check_gate(job_root: str, generation: int, batch: Any) -> None:
    ctx = _CONTEXTS.get((job_root, generation))
    reason = ctx.gate_reason() if ctx is not None else None
    if reason and ctx is not None:
        ctx.close_gate(reason)
        raise GateClosed(f"batch {batch} refused: {reason}")


#: The live driver's context per (job root, generation): what restored closures consult.
_CONTEXTS: dict[tuple[str, int], DriverContext] = {}


def check_state_schema(
    df: Any,
    keys: Sequence[str],
    expect: Any,
    *,
    part: str,
    migrated: bool,
    where: str,
    job: str,
    generation: int,
) -> None:
    """The value columns of ``df`` (all but ``keys``) must equal ``expect`` by name, order and type."""
    from pyspark.sql.types import StructType

    # fromDDL returns a StructType for a column list (its annotation says DataType)
    wanted = expect if isinstance(expect, StructType) else cast(StructType, StructType.fromDDL(str(expect)))
    have = [(f.name, f.dataType.simpleString()) for f in df.schema.fields if f.name not in keys]
    want = [(f.name, f.dataType.simpleString()) for f in wanted.fields]
    missing_keys = [k for k in keys if k not in df.columns]
    if have == want and not missing_keys:
        return

    def fmt(cols: list[tuple[str, str]]) -> str:
        return ", ".join(f"{n} {t}" for n, t in cols) or "nothing"

    detail = f"snapshot state part {part!r} has ({fmt(have)}) but the code declares ({fmt(want)})"
    if missing_keys:
        detail += f"; key column(s) {missing_keys} are missing"
    raise SnapshotSchemaMismatchError(
        detail + (" after the migration" if migrated else ""),
        path=where,
        job=job,
        generation=generation,
        hint="Pass migrate= to turn the old state into the new shape"
        if not migrated
        else "Fix the migration so it returns exactly the declared columns",
    )


# --- before any Spark work -------------------------------------------------------------------------------


def _offsets_for_fresh_start(
    spec: LaunchSpec, root: JobRoot, decision: StartDecision, verified: str | None = None
) -> tuple[list[Any] | None, Manifest | None]:
    if decision.mode is StartMode.RESUME:
        return None, None
    if decision.mode is StartMode.FIRST:
        return (list(spec.starting_offsets) if spec.starting_offsets is not None else None), None
    manifest = read_manifest(root, str(spec.snapshot), generation=spec.generation)
    if manifest.snapshot_id != verified:  # files present and intact before loading (a standby just checked)
        verify_snapshot(root, manifest.snapshot_id, record=False, generation=spec.generation)
    recorded = list(manifest.end_offsets)
    if spec.starting_offsets is not None and list(spec.starting_offsets) != recorded:
        raise OffsetsMismatchError(
            f"starting offsets {list(spec.starting_offsets)} do not match snapshot {spec.snapshot!r}'s "
            f"end offsets {recorded} (batch {manifest.batch}): starting elsewhere would lose or "
            "double-count events",
            path=root.snapshot_dir(str(spec.snapshot)).uri,
            job=root.job,
            generation=spec.generation,
        )
    return recorded, manifest


#: An engine's start rule: (job root, launch contract) -> the decision, from the checkpoint alone.
Decide = Callable[[JobRoot, LaunchSpec], StartDecision]


def prepare(
    spec: LaunchSpec, decide: Decide, digest: str | None = None, verified: str | None = None
) -> tuple[JobRoot, StartDecision, list[Any] | None, Manifest | None]:
    """Everything decided before any Spark work: fencing, the start decision, the code check, validated
    offsets and snapshot (``verified``: a snapshot id this driver has just verified, not read twice)."""
    root = JobRoot(spec.job_root, job=spec.job_name)
    current = root.current_generation()
    if current is not None and current != spec.generation:
        raise FencedError(
            f"generation {spec.generation} is not the job's current generation ({current}); refusing to "
            "start",
            path=root.location.uri,
            job=root.job,
            generation=spec.generation,
        )
    record = root.read_generation_record(spec.generation) or {}
    if record.get("retired_at") or record.get("deleted_at"):
        raise FencedError(
            f"generation {spec.generation} was retired after its final snapshot; refusing to start it again",
            path=root.generation_dir(spec.generation).uri,
            job=root.job,
            generation=spec.generation,
            hint="Start a new generation from its snapshot instead",
        )
    # A stop request that was never acknowledged is honoured after start; an unreadable one is an error now.
    root.read_stop_request(spec.generation)
    decision = decide(root, spec)
    check_code(root, spec, decision, record, digest)
    offsets, manifest = _offsets_for_fresh_start(spec, root, decision, verified)
    return root, decision, offsets, manifest


def set_aside(root: JobRoot, generation: int, reason: str) -> str | None:
    """Move an attempt that committed nothing — the generation's checkpoint and (DStream) input folder — to
    ``generations/<g>/discarded/<ms>/`` (inside the generation; nothing is deleted) and record it in the
    ledger, so that the generation starts again on an empty checkpoint with the same snapshot and offsets.
    Returns the folder, or None when there was nothing."""
    checkpoint, inputs = root.checkpoint(generation), root.input_dir(generation)
    if not checkpoint.list_or_empty() and not inputs.exists():
        return None
    target = root.require_inside(root.discarded_dir(generation).child(str(int(time.time() * 1000))))
    target.makedirs()
    for folder in (checkpoint, inputs):
        if folder.exists():
            root.require_inside(folder).rename(target.child(folder.name))
    JobLedger(root).record(
        "attempt_set_aside", by="driver", generation=generation, folder=target.uri, reason=reason
    )
    log.warning("set aside %s: %s", target.uri, reason)
    return target.uri


# --- the engine interface and the supervisor ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Position:
    """Where the job's checkpoint stands: its last committed batch, that batch's source end offsets, and a
    batch planned but not committed."""

    last_committed_batch: int | None
    end_offsets: list[Any] | None
    in_flight_batch: int | None = None


class Engine(Protocol):
    """What an engine plugs into the shared supervisor."""

    @property
    def ctx(self) -> DriverContext: ...

    @property
    def stop_method(self) -> StopMethod: ...

    @property
    def stop_poll_s(self) -> float:
        """How often the supervisor looks for the batch boundary while a stop is under way."""
        ...

    def running(self) -> bool: ...

    def wait(self, seconds: float) -> bool:
        """Wait up to ``seconds``; False when the job has ended (or raised)."""
        ...

    def begin_stop(self, request: StopRequest) -> None: ...

    def cancel_stop(self) -> None: ...

    def at_boundary(self, request: StopRequest) -> bool: ...

    def halt(self, *, graceful: bool) -> None: ...

    def position(self) -> Position: ...

    def export(self, batch: int) -> Manifest: ...

    def failure(self) -> str | None:
        """After the job ended: its error, or None when it ended cleanly (a refused batch included)."""
        ...

    def tick(self) -> None:
        """Engine work on every supervisor pass (e.g. serving snapshot requests)."""
        ...

    def close(self) -> None: ...


#: A standby's warm-up before its go: (launch contract, job root, status) -> None. It must not read a source,
#: load state, write a checkpoint or touch a sink.
Warm = Callable[[LaunchSpec, JobRoot, StatusWriter], None]

#: Starts the engine for a prepared driver: (context pieces, status) -> a running engine.
StartEngine = Callable[
    [LaunchSpec, JobRoot, StartDecision, "list[Any] | None", "Manifest | None", StatusWriter], Engine
]


def run_driver(
    start: StartEngine,
    decide: Decide,
    *,
    engine: str,
    argv: Sequence[str] | None = None,
    code_files: Sequence[Path] | None = None,
    warm: Warm | None = None,
) -> int:
    """Run a managed driver until it is stopped; return the process exit code (0 stopped, 1 failed).

    :param warm: what a warm standby starts before its go (the JVM, the session, Python workers); ``start``
        then finds it running. See :mod:`~airflow_checkpoint_provider.runtime.standby`.

    A dry run launched with ``--acp-stay-as-standby-s`` that stopped gracefully keeps its engine's session and
    waits to be adopted as the redeploy's standby; adopted, it runs again with the standby's launch
    (:mod:`~airflow_checkpoint_provider.runtime.adoption`; Structured Streaming only).
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)  # one INFO line per callback otherwise
    warn_without_bytecode()
    spec, _app_args = parse_launch_args(sys.argv[1:] if argv is None else argv)
    driver_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    stays = engine == "structured" and spec.stay_as_standby_s > 0
    while True:
        code, kept = _run_once(start, decide, spec, driver_id, engine, code_files, warm, stay=stays)
        if kept is None:
            return code
        from airflow_checkpoint_provider.runtime import adoption

        try:
            adoption.offer(spec, driver_id)
            adopted = adoption.await_adoption(spec)
        except (CheckpointProviderError, OSError) as exc:  # its scratch job is gone: exit as a dry run
            log.error("not adopted: %s", exc)
            adopted = None
        if adopted is None:
            kept.close()
            return code
        spec, stays = adopted, False


def _run_once(
    start: StartEngine,
    decide: Decide,
    spec: LaunchSpec,
    driver_id: str,
    engine: str,
    code_files: Sequence[Path] | None,
    warm: Warm | None,
    *,
    stay: bool,
) -> tuple[int, Engine | None]:
    """One run of ``spec``: its exit code, and its engine when it is kept (not closed) for an adoption: with
    ``stay``, a dry run that stopped gracefully on its stop request."""
    root = JobRoot(spec.job_root, job=spec.job_name)
    status: StatusWriter | None = None
    lock: DriverLock | None = None
    try:
        digest = code_digest(list(code_files) if code_files is not None else application_files())
        standby: dict[str, Any] = {}
        if spec.standby_for is not None and root.current_generation() != spec.generation:
            lock = DriverLock(root, spec.generation, driver_id, spec.lease_s)
            lock.acquire()
            status = StatusWriter(
                root,
                _driver_status(
                    root,
                    spec,
                    driver_id,
                    DriverState.STANDBY,
                    engine=engine,
                    start_reason=f"warm standby for generation {spec.standby_for}",
                    standby_for=spec.standby_for,
                ),
            )
            warm_started = time.monotonic()
            if warm is not None:
                warm(spec, root, status)
            standby = {"standby_for": spec.standby_for, "warm_s": round(time.monotonic() - warm_started, 3)}
            status.update(**standby)
            log.info("warm standby for generation %s ready in %.2fs", spec.standby_for, standby["warm_s"])
            go = await_go(root, spec, status, lock, driver_id)
            if go is None:
                return 0, None
            spec = go
            standby["go_at"] = status.current.go_at
        verified = spec.snapshot if standby.get("go_at") else None
        root, decision, offsets, manifest = prepare(spec, decide, digest, verified)
        if lock is None:
            lock = DriverLock(root, spec.generation, driver_id, spec.lease_s)
            lock.acquire()
        log.info("%s", decision.reason)
        if decision.mode is not StartMode.RESUME and "first_started_at" not in (
            root.read_generation_record(spec.generation) or {}
        ):
            root.update_generation_record(
                spec.generation,
                snapshot=spec.snapshot if decision.load_initial_state else None,
                starting_offsets=offsets,
                code_version=spec.code_version,
                code_digest=digest,
                engine=engine,
                first_started_at=time.time(),
            )
        starting = _driver_status(
            root,
            spec,
            driver_id,
            DriverState.STARTING,
            engine=engine,
            start_mode=decision.mode.value,
            start_reason=decision.reason,
            snapshot=spec.snapshot if decision.load_initial_state else None,
            starting_offsets=offsets,
            last_committed_batch=decision.last_committed_batch,
            **standby,
        )
        if status is None:
            status = StatusWriter(root, starting)
        else:  # a standby's writer: its session's query listener reports through it (one writer, one view)
            current = status.current
            status.reset(replace(starting, app_id=current.app_id, ui_url=current.ui_url))
        running = start(spec, root, decision, offsets, manifest, status)
        status.update(state=DriverState.RUNNING)
        started = time.time()
        kept: Engine | None = None
        try:
            code = supervise(running, status, lock)
            if code == 0:  # a standby taking over from this stop: tear down after its first batch
                reason = await_successor(root, spec.generation, lock, spec.heartbeat_s, since=started)
                log.info("handoff: %s", reason)
            if stay and code == 0 and _stopped_on_request(root, spec.generation, started):
                kept = running
            return code, kept
        finally:
            if kept is None:
                running.close()
    # any failure of the driver is reported in status.json, then the driver exits 1
    except Exception as exc:  # noqa: BLE001
        log.error("%s: %s", type(exc).__name__, exc, exc_info=not isinstance(exc, CheckpointProviderError))
        _report_failure(root, spec, driver_id, status, exc)
        print(f"airflow-checkpoint-provider: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1, None
    finally:
        if lock is not None:
            try:
                lock.release()
            except CheckpointProviderError:
                pass


def _stopped_on_request(root: JobRoot, generation: int, since: float) -> bool:
    """Whether this run ended in a graceful stop on a request made while it ran (as a passed dry run)."""
    ack = root.read_stop_ack(generation)
    return ack is not None and ack.acknowledged_at >= since and ack.outcome is StopOutcome.STOPPED


def warn_without_bytecode(module: str = "pyspark") -> bool:
    """Warn (and return True) when ``module`` has no cached bytecode: every Python process Spark starts (the
    worker daemon, each streaming query's Python source runner and ``transformWithState`` planner) then
    compiles pyspark from source — 0.8 s more per process on this project's machine (docs/deployment.md)."""
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return False
    try:
        cached = importlib.util.cache_from_source(spec.origin)
    except NotImplementedError:  # sys.implementation.cache_tag is None: no bytecode at all
        cached = ""
    if cached and os.path.exists(cached):
        return False
    if ".zip" + os.sep in spec.origin:  # spark-submit's pyspark.zip: Python caches no bytecode for a zip
        log.warning(
            "%s is imported from a zip without bytecode (%s): every Python process Spark starts compiles it "
            "again. Put bytecode in the zip once (scripts/zip_bytecode.py, docs/deployment.md)",
            module,
            spec.origin,
        )
        return True
    log.warning(
        "%s has no compiled bytecode (%s)%s: every Python process Spark starts compiles it again. Compile "
        "the environment once (python -m compileall <site-packages>)",
        module,
        cached or "bytecode caching is off",
        " and PYTHONDONTWRITEBYTECODE is set" if sys.flags.dont_write_bytecode else "",
    )
    return True


def _driver_status(
    root: JobRoot, spec: LaunchSpec, driver_id: str, state: DriverState, **fields: Any
) -> DriverStatus:
    """This driver's status: who it is (host, pid, launch) and what it was launched with, plus ``fields``."""
    return DriverStatus(
        job=root.job,
        generation=spec.generation,
        state=state,
        driver_id=driver_id,
        host=socket.gethostname(),
        pid=os.getpid(),
        code_version=spec.code_version,
        launch_id=spec.launch_id,
        heartbeat_s=spec.heartbeat_s,
        lease_s=spec.lease_s,
        **fields,
    )


def _report_failure(
    root: JobRoot, spec: LaunchSpec, driver_id: str, status: StatusWriter | None, exc: Exception
) -> None:
    """Put the error where the operators look (status.json) — unless this driver was fenced, in which case the
    status file belongs to the live driver (or to nobody) and is left alone."""
    error = f"{type(exc).__name__}: {exc}"[:4000]
    try:
        if status is not None:
            status.update(state=DriverState.FAILED, error=error)
        elif not isinstance(exc, FencedError) and not _live_status(root, spec):
            root.write_status(_driver_status(root, spec, driver_id, DriverState.FAILED, error=error))
    except CheckpointProviderError as report_error:
        log.warning("could not report the failure in status.json: %s", report_error)


def _live_status(root: JobRoot, spec: LaunchSpec) -> bool:
    try:
        current = root.read_status(spec.generation)
    except CheckpointProviderError:
        return False
    return current is not None and current.is_live(spec.lease_s)


def lock_lost(engine: Engine, lock: DriverLock) -> int:
    """Another driver took this generation's lock over (this one outlived its lease): close the gate, stop the
    query at once and exit without writing status.json or answering anything — both belong to the new
    driver now. Exit code 3."""
    taken = "the driver lock is held by another driver"
    try:
        holder = lock.root.read_json(lock.file, what="driver lock") or {}
        who = f"driver {holder.get('driver_id')} (pid {holder.get('pid')} on {holder.get('host')})"
        taken = f"{who} took over"
    except CheckpointProviderError:
        pass
    log.error(
        "generation %s: %s after this driver's lease ran out; stopping without committing further batches",
        lock.generation,
        taken,
    )
    engine.ctx.close_gate(f"lock lost: {taken}")
    engine.halt(graceful=False)
    return LOCK_LOST_EXIT


def supervise(engine: Engine, status: StatusWriter, lock: DriverLock) -> int:
    """Heartbeat, fencing and stop requests until the job ends."""
    ctx = engine.ctx
    spec, root = ctx.spec, ctx.root
    handled: set[str] = set()
    ignored_requests: set[str] = set()
    previous_ack = root.read_stop_ack(spec.generation)
    if previous_ack is not None:
        handled.add(previous_ack.request_id)
    stopping: tuple[StopRequest, float] | None = None
    next_beat = 0.0
    while True:
        if not engine.running():
            break
        if time.monotonic() >= next_beat:  # the heartbeat's writes at its own pace; requests more often
            if not lock.refresh():
                status.detach()
                return lock_lost(engine, lock)
            status.update()
            next_beat = time.monotonic() + spec.heartbeat_s
        superseded = ctx.superseded()
        if superseded:
            log.warning("%s: stopping without committing further batches", superseded)
            ctx.close_gate(superseded)
            engine.halt(graceful=False)
            status.update(state=DriverState.STOPPED, error=f"superseded: {superseded}")
            return 0
        if stopping is None:
            engine.tick()
            try:
                request = root.read_stop_request(spec.generation)
            except ControlFileError as exc:  # a damaged or foreign request is not obeyed; the job runs on
                if str(exc) not in ignored_requests:
                    log.error("ignoring a stop request: %s", exc)
                    ignored_requests.add(str(exc))
                request = None
            if request is not None and request.request_id not in handled:
                log.info(
                    "stop request %s received (method: %s, timeout %.0fs, on timeout: %s)",
                    request.request_id,
                    engine.stop_method,
                    request.timeout_s,
                    request.on_timeout,
                )
                status.update(state=DriverState.STOPPING)
                engine.begin_stop(request)
                stopping = (request, time.monotonic())
        if stopping is not None:
            request, since = stopping
            if engine.at_boundary(request):
                engine.halt(graceful=True)
                return acknowledge(engine, request, StopOutcome.STOPPED, since, status)
            if time.monotonic() - since > request.timeout_s:
                if request.on_timeout is OnStopTimeout.FORCE_STOP:
                    log.warning("stop request %s timed out: forcing the job to stop", request.request_id)
                    engine.halt(graceful=False)
                    return acknowledge(engine, request, StopOutcome.FORCED, since, status)
                log.warning("stop request %s timed out: keeping the driver running", request.request_id)
                acknowledge(engine, request, StopOutcome.TIMED_OUT, since, status)
                handled.add(request.request_id)
                engine.cancel_stop()
                status.update(state=DriverState.RUNNING)
                stopping = None
        if not engine.wait(min(spec.heartbeat_s, CONTROL_POLL_S if stopping is None else engine.stop_poll_s)):
            break
    if not lock.held():  # it failed on what the driver that took over wrote (Spark's logs refuse a second)
        status.detach()
        return lock_lost(engine, lock)
    # The job ended by itself: a gate refusal is a clean stop; anything else is a failure.
    error = engine.failure()
    if stopping is not None and error is None:
        return acknowledge(engine, stopping[0], StopOutcome.STOPPED, stopping[1], status)
    superseded = ctx.superseded()
    if superseded and error is None:  # the gate saw the supersession before this loop did: the same stop
        log.warning("%s: stopped without committing further batches", superseded)
        status.update(state=DriverState.STOPPED, error=f"superseded: {superseded}")
        return 0
    message = error or "the job terminated without a stop request"
    status.update(state=DriverState.FAILED, error=message[:4000])
    log.error("job ended: %s", message[:2000])
    return 1


def acknowledge(
    engine: Engine, request: StopRequest, outcome: StopOutcome, since: float, status: StatusWriter
) -> int:
    ctx = engine.ctx
    position = engine.position()
    latency = round(time.monotonic() - since, 3)
    exported: dict[str, Any] = {}
    if (
        request.snapshot
        and outcome is not StopOutcome.TIMED_OUT
        and position.last_committed_batch is not None
    ):
        exported = _export_on_stop(engine, position.last_committed_batch)
    ack = StopAck(
        request_id=request.request_id,
        outcome=outcome,
        method=engine.stop_method,
        final_committed_batch=position.last_committed_batch,
        end_offsets=position.end_offsets,
        in_flight_batch=position.in_flight_batch,
        acknowledged_at=time.time(),
        stop_latency_s=latency,
        launch_id=ctx.spec.launch_id or None,
        **exported,
    )
    ctx.root.write_stop_ack(ctx.generation, ack)
    log.info(
        "stop request %s: %s at batch %s (in flight: %s) after %.2fs",
        request.request_id,
        outcome,
        ack.final_committed_batch,
        ack.in_flight_batch,
        ack.stop_latency_s,
    )
    if outcome is not StopOutcome.TIMED_OUT:
        status.update(state=DriverState.STOPPED, last_committed_batch=position.last_committed_batch)
    return 0


def open_snapshot_request(root: JobRoot, generation: int) -> dict[str, Any] | None:
    """The snapshot request (``control/snapshot-request.json``) this generation's driver has not answered yet
    (``control/snapshot-ack.json`` holds another request id); None when there is none. A damaged request, or
    one for another job or generation, is logged and not served."""
    try:
        request = root.read_json(root.snapshot_request_file(generation), what="snapshot request")
        if not request or not request.get("request_id"):
            return None
        answered = root.read_json(root.snapshot_ack_file(generation), what="snapshot acknowledgement")
    except CheckpointProviderError as exc:
        log.error("ignoring a snapshot request: %s", exc)
        return None
    if answered and answered.get("request_id") == request["request_id"]:
        return None
    named_root, named_generation = request.get("job_root"), request.get("generation")
    if not control_file_is_for(
        named_root if isinstance(named_root, str) else None,
        named_generation if isinstance(named_generation, int) else None,
        root.location,
        generation,
    ):
        log.error("ignoring a snapshot request for another job or generation: %s", request)
        return None
    return request


def answer_snapshot_request(
    root: JobRoot, generation: int, request: dict[str, Any], batch: int, export: Callable[[int], Manifest]
) -> None:
    """Export ``batch`` and answer ``request`` with the snapshot's id, or with the error (the operator
    raises it typed, or lets the exporter application try)."""
    answer: dict[str, Any] = {"request_id": request["request_id"], "batch": batch, "at": time.time()}
    try:
        answer["snapshot_id"] = export(batch).snapshot_id
    # answered in the acknowledgement
    except Exception as exc:  # noqa: BLE001
        log.exception("snapshot request %s failed", request["request_id"])
        answer["error"] = f"{type(exc).__name__}: {str(exc)[:2000]}"
    root.write_json(root.snapshot_ack_file(generation), answer)
    log.info("snapshot request %s answered: %s", request["request_id"], answer)


def _export_on_stop(engine: Engine, batch: int) -> dict[str, Any]:
    """Export the final committed batch with this driver's own session (the job has stopped): no second JVM
    to start. A failure is reported, not raised: the stop stands, and a separate export can still run."""
    started = time.monotonic()
    try:
        manifest = engine.export(batch)
    # reported in the acknowledgement; the operator falls back to its own export
    except Exception as exc:  # noqa: BLE001
        log.exception("exporting batch %s on stop failed", batch)
        return {
            "snapshot_error": f"{type(exc).__name__}: {str(exc)[:2000]}",
            "snapshot_s": round(time.monotonic() - started, 3),
        }
    log.info(
        "exported snapshot %s of batch %s on stop in %.2fs",
        manifest.snapshot_id,
        batch,
        time.monotonic() - started,
    )
    return {"snapshot_id": manifest.snapshot_id, "snapshot_s": round(time.monotonic() - started, 3)}
