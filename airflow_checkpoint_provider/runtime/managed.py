"""A managed stateful streaming query: decides how it starts, reports, stops at a batch boundary, and fences.

A user's application::

    from airflow_checkpoint_provider.runtime import managed

    def build(ctx: managed.ManagedContext):
        events = ctx.read_eventlog("/data/events")              # starting offsets + stop fence applied
        counts = events.groupBy("key").transformWithState(
            Counter(), schema, "Update", "None", initialState=ctx.initial_state("counts", "key"))
        return counts.writeStream.outputMode("update").foreachBatch(ctx.gated(write_batch))

    if __name__ == "__main__":
        raise SystemExit(managed.run(build, app_name="counter"))

``run`` parses the launch contract from ``sys.argv``, refuses to run on a superseded generation or beside
another live driver, decides resume vs fresh from the checkpoint (at every start: a restarted driver with the
same arguments resumes and never loads the snapshot again), starts the query on
``generations/<g>/checkpoint``, keeps ``status.json`` current, and serves stop requests. Exit code 0 when
stopped (on request or superseded), 1 on error (with the error in ``status.json``).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, cast

from airflow_checkpoint_provider.checkpoint.inspector import inspect_checkpoint
from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot
from airflow_checkpoint_provider.checkpoint.processes import process_gone
from airflow_checkpoint_provider.checkpoint.snapshots import Manifest, read_manifest, verify_snapshot
from airflow_checkpoint_provider.exceptions import (
    CheckpointProviderError,
    ControlFileError,
    FencedError,
    ForeignSnapshotError,
    InvalidLaunchError,
    OffsetsMismatchError,
    SnapshotSchemaMismatchError,
)
from airflow_checkpoint_provider.model.decisions import StartDecision, StartMode, decide_start
from airflow_checkpoint_provider.model.launch import LaunchSpec, parse_launch_args
from airflow_checkpoint_provider.model.offsets import starting_offset_options
from airflow_checkpoint_provider.model.records import (
    DriverState,
    DriverStatus,
    OnStopTimeout,
    StopAck,
    StopMethod,
    StopOutcome,
    StopRequest,
)
from airflow_checkpoint_provider.runtime import eventlog
from airflow_checkpoint_provider.runtime.fence import read_fences

log = logging.getLogger("airflow_checkpoint_provider.runtime")

ROCKSDB = "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"
#: What transformWithState needs; set by the runtime so the user's code stays a plain StatefulProcessor.
SESSION_CONF = {"spark.sql.streaming.stateStore.providerClass": ROCKSDB}


class GateClosed(RuntimeError):
    """Raised by a gated sink to refuse a batch before touching it (stop requested, or generation
    superseded)."""


class StatusWriter:
    """Owns ``status.json`` for this driver: one writer, atomic replacements, thread-safe."""

    def __init__(self, root: JobRoot, status: DriverStatus) -> None:
        self.root = root
        self._status = status
        self._lock = threading.Lock()
        self.root.write_status(status)

    @property
    def current(self) -> DriverStatus:
        return self._status

    def update(self, **changes: Any) -> DriverStatus:
        with self._lock:
            self._status = replace(self._status, heartbeat_at=time.time(), **changes)
            try:
                self.root.write_status(self._status)
            except CheckpointProviderError as exc:  # best-effort reporting must not kill the query
                log.warning("could not write status: %s", exc)
            return self._status


class DriverLock:
    """``generations/<g>/driver.lock``: at most one live driver per generation (promise 5 in docs/design.md).

    Created exclusively; refreshed on every heartbeat; a lock whose heartbeat is older than the lease belongs
    to a dead driver and is taken over.
    """

    def __init__(self, root: JobRoot, generation: int, driver_id: str, lease_s: float) -> None:
        self.root, self.generation, self.driver_id, self.lease_s = root, generation, driver_id, lease_s
        self.file = root.driver_lock_file(generation)

    def _payload(self) -> bytes:
        import json

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
                f"{holder.get('pid')}, "
                f"heartbeat {age:.1f}s ago) holds this generation; refusing to start a second one",
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

    def refresh(self) -> None:
        self.file.write_bytes(self._payload())

    def release(self) -> None:
        holder = self.root.read_json(self.file, what="driver lock") or {}
        if holder.get("driver_id") == self.driver_id:
            self.file.remove()


class ManagedContext:
    """What ``build`` gets: the session, the decision, and helpers that apply it to sources, state and
    sinks."""

    def __init__(
        self,
        spark: Any,
        spec: LaunchSpec,
        root: JobRoot,
        decision: StartDecision,
        starting_offsets: Sequence[Any] | None,
        manifest: Manifest | None,
    ) -> None:
        self.spark = spark
        self.spec = spec
        self.root = root
        self.decision = decision
        self.starting_offsets = list(starting_offsets) if starting_offsets is not None else None
        self.manifest = manifest
        self.checkpoint_location = root.checkpoint(spec.generation).uri
        self.control_location = root.control_dir(spec.generation).uri
        self.fenced_sources: list[str] = []
        self.initial_state_parts: list[str] = []
        self.gated_sinks = 0
        self._sources = 0
        self._gate_reason: str | None = None

    @property
    def generation(self) -> int:
        return self.spec.generation

    def starting_offset(self, source_index: int) -> Any | None:
        """The recorded end offset this source starts from on the fresh path (None on resume or if not
        given)."""
        if self.decision.mode is StartMode.RESUME or self.starting_offsets is None:
            return None
        if source_index >= len(self.starting_offsets):
            raise OffsetsMismatchError(
                f"the query reads source #{source_index} but only {len(self.starting_offsets)} starting "
                "offsets "
                "were given",
                path=self.root.location.uri,
                job=self.root.job,
                generation=self.generation,
            )
        return self.starting_offsets[source_index]

    def read_eventlog(self, path: str, **options: Any) -> Any:
        """Read the shipped event log with this start's offsets and the stop fence applied."""
        index = self._sources
        self._sources += 1
        reader = self.spark.readStream.format(eventlog.SOURCE_NAME).option("path", path)
        reader = reader.option("stopFenceControlPath", self.control_location)
        for key, value in starting_offset_options("eventlog", self.starting_offset(index)).items():
            reader = reader.option(key, value)
        for key, value in options.items():
            reader = reader.option(key, value)
        self.fenced_sources.append(path)
        return reader.load()

    def source_options(self, source_format: str, source_index: int | None = None) -> dict[str, str]:
        """Starting-offset options for another source (e.g. Kafka); call once per source, in plan order."""
        index = self._sources if source_index is None else source_index
        self._sources = max(self._sources, index + 1)
        return starting_offset_options(source_format, self.starting_offset(index))

    def initial_state(
        self,
        part: str | None,
        key: str | Sequence[str] | None = None,
        *,
        expect: Any = None,
        migrate: Callable[[Any], Any] | None = None,
    ) -> Any:
        """The snapshot's state part ``part`` (None: its only part) grouped by its key, for ``initialState=``
        — or None unless this start loads a snapshot (never on resume: promise 2 in docs/design.md).

        :param key: key column(s); default the part's key columns as exported.
        :param expect: the state schema the new code declares for this part (a ``StructType`` or DDL string of
            the value columns). When given, the (migrated) snapshot must match it by name and type, else
            :class:`SnapshotSchemaMismatchError` — before anything runs.
        :param migrate: old state DataFrame -> new state DataFrame, applied on load (e.g. add a column).
        """
        if not self.decision.load_initial_state or self.manifest is None:
            return None
        folder = self.root.snapshot_dir(str(self.spec.snapshot))
        part, spec = self._part(self.manifest, part)
        df = self.spark.read.parquet(folder.child(spec.path).uri)
        keys = list(spec.key_columns) if key is None else ([key] if isinstance(key, str) else list(key))
        if migrate is not None:
            df = migrate(df)
        if expect is not None:
            check_state_schema(
                df,
                keys,
                expect,
                part=part,
                migrated=migrate is not None,
                where=folder.uri,
                job=self.root.job,
                generation=self.generation,
            )
        self.initial_state_parts.append(part)
        return df.groupBy(*keys)

    def seed_stream(
        self, schema: Any, part: str | None = None, *, migrate: Callable[[Any], Any] | None = None
    ) -> Any:
        """The snapshot's state as *input*: a streaming DataFrame that yields the rows of state part ``part``
        once, in this generation's first batch, and nothing ever after — for state that is a mergeable
        aggregate (count, sum, min, max, ...): union it with the events and let Spark's own aggregation fold
        both, so the state loads at the speed of a Parquet scan instead of one Python call per key.

        Exactly once comes from Spark's checkpoint: it is a file stream source over the snapshot's (immutable)
        Parquet files, and the source's own log in the checkpoint records them as read with batch 0. A restart
        after a commit reads nothing (promise 2 in docs/design.md); a re-run batch 0 reads the same files
        again. A generation that did not start from a snapshot gets an empty folder: the query has the same
        shape either way.

        :param schema: the seed's schema after ``migrate`` (a ``StructType`` or DDL string); the empty
            stream of a generation without a snapshot has it.
        :param part: the snapshot's state part; default its only part.
        :param migrate: old state rows -> seed rows (rename, add or drop columns); applied on read.
        """
        record = self.root.read_generation_record(self.generation) or {}
        snapshot = record.get("snapshot") or (
            self.spec.snapshot if self.decision.load_initial_state else None
        )
        if not snapshot:  # this generation started without a snapshot: an empty folder, same plan shape
            empty = self.root.generation_dir(self.generation).child("no-seed")
            empty.makedirs()
            return self.spark.readStream.schema(schema).parquet(empty.uri)
        manifest = (
            self.manifest
            if self.manifest is not None
            else read_manifest(self.root, str(snapshot), generation=self.generation)
        )
        name, spec = self._part(manifest, part)
        from pyspark.sql.types import StructType

        df = self.spark.readStream.schema(StructType.fromJson(json.loads(spec.spark_schema))).parquet(
            self.root.snapshot_dir(str(snapshot)).child(spec.path).uri
        )
        if migrate is not None:
            df = migrate(df)
        self.initial_state_parts.append(name)
        return df

    def _part(self, manifest: Manifest, part: str | None) -> tuple[str, Any]:
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

    def gated(self, fn: Callable[[Any, int], Any]) -> Callable[[Any, int], Any]:
        """Wrap a ``foreachBatch`` function: it refuses a batch, before touching it, once this driver must
        stop (a stop request served by the gate, or a superseded generation). A refused batch is not
        committed."""
        self.gated_sinks += 1

        def gate(df: Any, batch_id: int) -> Any:
            reason = self._gate_reason or self.superseded()
            if reason:
                self._gate_reason = reason
                raise GateClosed(f"batch {batch_id} refused: {reason}")
            return fn(df, batch_id)

        return gate

    def close_gate(self, reason: str) -> None:
        self._gate_reason = reason

    def reopen_gate(self) -> None:
        self._gate_reason = None

    def superseded(self) -> str | None:
        current = self.root.current_generation()
        if current is not None and current != self.generation:
            return f"generation {self.generation} is superseded by generation {current}"
        return None

    @property
    def stop_method(self) -> StopMethod:
        if self.fenced_sources:
            return StopMethod.FENCE
        if self.gated_sinks:
            return StopMethod.GATE
        return StopMethod.IDLE


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
        hint="Pass migrate= to ctx.initial_state(...) to turn the old state into the new shape"
        if not migrated
        else "Fix the migration so it returns exactly the declared columns",
    )


def _offsets_for_fresh_start(
    spec: LaunchSpec, root: JobRoot, decision: StartDecision
) -> tuple[list[Any] | None, Manifest | None]:
    if decision.mode is StartMode.RESUME:
        return None, None
    if decision.mode is StartMode.FIRST:
        return (list(spec.starting_offsets) if spec.starting_offsets is not None else None), None
    manifest = read_manifest(root, str(spec.snapshot), generation=spec.generation)
    verify_snapshot(
        root, manifest.snapshot_id, record=False, generation=spec.generation
    )  # files present and intact before loading
    recorded = list(manifest.end_offsets)
    if spec.starting_offsets is not None and list(spec.starting_offsets) != recorded:
        raise OffsetsMismatchError(
            f"starting offsets {list(spec.starting_offsets)} do not match snapshot {spec.snapshot!r}'s "
            "end offsets "
            f"{recorded} (batch {manifest.batch}): starting elsewhere would lose or double-count events",
            path=root.snapshot_dir(str(spec.snapshot)).uri,
            job=root.job,
            generation=spec.generation,
        )
    return recorded, manifest


def prepare(spec: LaunchSpec) -> tuple[JobRoot, StartDecision, list[Any] | None, Manifest | None]:
    """Everything decided before any Spark work: fencing, the start decision, validated offsets and
    snapshot."""
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
    info = inspect_checkpoint(root.checkpoint(spec.generation), allow_empty=True)
    decision = decide_start(
        generation=spec.generation,
        last_committed_batch=info.last_committed_batch,
        in_flight_batch=info.in_flight_batch,
        snapshot=spec.snapshot,
    )
    offsets, manifest = _offsets_for_fresh_start(spec, root, decision)
    return root, decision, offsets, manifest


def _parse_offset(offset: Any) -> Any:
    import json

    if not isinstance(offset, str):
        return offset
    try:
        return json.loads(offset)
    except ValueError:
        return offset


def source_lag(end: Any, latest: Any) -> int | None:
    """How many records the source has that the batch did not read: ``{"offset": n}`` (the shipped log) or
    Kafka's ``{topic: {partition: n}}``, summed over partitions; None when the offsets are not numeric."""

    def numbers(offset: Any) -> dict[tuple[str, ...], int] | None:
        if isinstance(offset, bool):
            return None
        if isinstance(offset, int):
            return {(): offset}
        if isinstance(offset, dict):
            found: dict[tuple[str, ...], int] = {}
            for key, value in offset.items():
                inner = numbers(value)
                if inner is None:
                    return None
                found.update({(str(key), *k): v for k, v in inner.items()})
            return found
        return None

    ends, latests = numbers(end), numbers(latest)
    if ends is None or latests is None or not latests:
        return None
    return sum(max(0, value - ends.get(key, 0)) for key, value in latests.items())


class _Listener:
    """StreamingQueryListener that reports each committed batch to status.json."""

    @staticmethod
    def make(status: StatusWriter) -> Any:
        from pyspark.sql.streaming.listener import StreamingQueryListener

        class Listener(StreamingQueryListener):
            def onQueryStarted(self, event: Any) -> None:
                status.update(query_id=str(event.id), run_id=str(event.runId))

            def onQueryProgress(self, event: Any) -> None:

                p = event.progress
                ends, lags = [], []
                for s in p.sources:
                    end = _parse_offset(s.endOffset)
                    ends.append(end)
                    lags.append(source_lag(end, _parse_offset(getattr(s, "latestOffset", None))))
                status.update(
                    state=DriverState.RUNNING
                    if status.current.state is DriverState.STARTING
                    else status.current.state,
                    last_committed_batch=int(p.batchId),
                    last_batch_input_rows=int(p.numInputRows),
                    total_input_rows=status.current.total_input_rows + int(p.numInputRows),
                    last_batch_end_offsets=ends,
                    source_lag=lags,
                    last_batch_at=time.time(),
                )

            def onQueryIdle(self, event: Any) -> None:
                pass

            def onQueryTerminated(self, event: Any) -> None:
                pass

        return Listener()


def run(
    build: Callable[[ManagedContext], Any],
    *,
    argv: Sequence[str] | None = None,
    app_name: str | None = None,
    spark_conf: dict[str, str] | None = None,
) -> int:
    """Run a managed streaming query until it is stopped; return the process exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    spec, _app_args = parse_launch_args(sys.argv[1:] if argv is None else argv)
    driver_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    root = JobRoot(spec.job_root, job=spec.job_name)
    status: StatusWriter | None = None
    lock: DriverLock | None = None
    try:
        root, decision, offsets, manifest = prepare(spec)
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
                first_started_at=time.time(),
            )
        status = StatusWriter(
            root,
            DriverStatus(
                job=root.job,
                generation=spec.generation,
                state=DriverState.STARTING,
                driver_id=driver_id,
                host=socket.gethostname(),
                pid=os.getpid(),
                code_version=spec.code_version,
                start_mode=decision.mode.value,
                start_reason=decision.reason,
                snapshot=spec.snapshot if decision.load_initial_state else None,
                starting_offsets=offsets,
                last_committed_batch=decision.last_committed_batch,
                launch_id=spec.launch_id,
                heartbeat_s=spec.heartbeat_s,
                lease_s=spec.lease_s,
            ),
        )
        return _run_query(build, spec, root, decision, offsets, manifest, status, lock, app_name, spark_conf)
    # any failure of the driver is reported in status.json, then the driver exits 1
    except Exception as exc:  # noqa: BLE001
        log.error("%s: %s", type(exc).__name__, exc, exc_info=not isinstance(exc, CheckpointProviderError))
        _report_failure(root, spec, driver_id, status, exc)
        print(f"airflow-checkpoint-provider: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        if lock is not None:
            try:
                lock.release()
            except CheckpointProviderError:
                pass


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
            root.write_status(
                DriverStatus(
                    job=root.job,
                    generation=spec.generation,
                    state=DriverState.FAILED,
                    driver_id=driver_id,
                    host=socket.gethostname(),
                    pid=os.getpid(),
                    code_version=spec.code_version,
                    error=error,
                    launch_id=spec.launch_id,
                    heartbeat_s=spec.heartbeat_s,
                    lease_s=spec.lease_s,
                )
            )
    except CheckpointProviderError as report_error:
        log.warning("could not report the failure in status.json: %s", report_error)


def _live_status(root: JobRoot, spec: LaunchSpec) -> bool:
    try:
        current = root.read_status(spec.generation)
    except CheckpointProviderError:
        return False
    return current is not None and current.is_live(spec.lease_s)


def _run_query(
    build: Callable[[ManagedContext], Any],
    spec: LaunchSpec,
    root: JobRoot,
    decision: StartDecision,
    offsets: list[Any] | None,
    manifest: Manifest | None,
    status: StatusWriter,
    lock: DriverLock,
    app_name: str | None,
    spark_conf: dict[str, str] | None,
) -> int:
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name or f"{root.job}-g{spec.generation}")
    for key, value in {**SESSION_CONF, **(spark_conf or {})}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    eventlog.register(spark)
    status.update(app_id=spark.sparkContext.applicationId, ui_url=spark.sparkContext.uiWebUrl)
    spark.streams.addListener(_Listener.make(status))

    ctx = ManagedContext(spark, spec, root, decision, offsets, manifest)
    writer = build(ctx)
    if manifest is not None:
        unused = sorted(set(manifest.parts) - set(ctx.initial_state_parts))
        if len(unused) == len(manifest.parts):
            raise InvalidLaunchError(
                f"this start must load snapshot {spec.snapshot!r} as initial state, but the application "
                "called "
                "ctx.initial_state(...) for none of its parts: starting would silently drop the state",
                path=root.snapshot_dir(str(spec.snapshot)).uri,
                job=root.job,
                generation=spec.generation,
                hint="Pass initialState=ctx.initial_state('<part>') to transformWithState",
            )
        if unused:
            log.warning(
                "snapshot %s parts not loaded by this application (their state is dropped): %s",
                spec.snapshot,
                ", ".join(unused),
            )
    query = writer.option("checkpointLocation", ctx.checkpoint_location).start()
    log.info("query %s started on %s (stop method: %s)", query.id, ctx.checkpoint_location, ctx.stop_method)
    # The query is active: RUNNING now (a resumed job with no new input commits nothing for a while).
    status.update(query_id=str(query.id), run_id=str(query.runId), state=DriverState.RUNNING)
    outcome = _supervise(ctx, query, status, lock)
    spark.stop()
    return outcome


def _supervise(ctx: ManagedContext, query: Any, status: StatusWriter, lock: DriverLock) -> int:
    """Heartbeat, fencing and stop requests until the query ends."""
    spec, root = ctx.spec, ctx.root
    handled: set[str] = set()
    ignored_requests: set[str] = set()
    previous_ack = root.read_stop_ack(spec.generation)
    if previous_ack is not None:
        handled.add(previous_ack.request_id)
    stopping: tuple[StopRequest, float] | None = None
    while True:
        if not query.isActive:
            break
        lock.refresh()
        status.update()
        superseded = ctx.superseded()
        if superseded:
            log.warning("%s: stopping without committing further batches", superseded)
            ctx.close_gate(superseded)
            query.stop()
            status.update(state=DriverState.STOPPED, error=f"superseded: {superseded}")
            return 0
        if stopping is None:
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
                    ctx.stop_method,
                    request.timeout_s,
                    request.on_timeout,
                )
                status.update(state=DriverState.STOPPING)
                if ctx.stop_method is StopMethod.GATE:
                    ctx.close_gate(f"stop request {request.request_id}")
                stopping = (request, time.monotonic())
        if stopping is not None:
            request, since = stopping
            if _at_boundary(ctx, query, request):
                query.stop()
                return _acknowledge(ctx, request, StopOutcome.STOPPED, since, status)
            if time.monotonic() - since > request.timeout_s:
                if request.on_timeout is OnStopTimeout.FORCE_STOP:
                    log.warning("stop request %s timed out: forcing the query to stop", request.request_id)
                    query.stop()
                    return _acknowledge(ctx, request, StopOutcome.FORCED, since, status)
                log.warning("stop request %s timed out: keeping the driver running", request.request_id)
                _acknowledge(ctx, request, StopOutcome.TIMED_OUT, since, status)
                handled.add(request.request_id)
                ctx.reopen_gate()
                status.update(state=DriverState.RUNNING)
                stopping = None
        try:
            query.awaitTermination(min(spec.heartbeat_s, 0.5) if stopping else spec.heartbeat_s)
        # awaitTermination raises the query's own failure; it is classified below
        except Exception:  # noqa: BLE001
            break
    # The query ended by itself: a gate refusal is a clean stop; anything else is a failure.
    error = query.exception()
    refused = error is None or "GateClosed" in str(error)
    if stopping is not None and refused:
        return _acknowledge(ctx, stopping[0], StopOutcome.STOPPED, stopping[1], status)
    superseded = ctx.superseded()
    if superseded and refused:  # the gate saw the supersession before this loop did: the same clean stop
        log.warning("%s: stopped without committing further batches", superseded)
        status.update(state=DriverState.STOPPED, error=f"superseded: {superseded}")
        return 0
    message = str(error) if error is not None else "the query terminated without a stop request"
    status.update(state=DriverState.FAILED, error=message[:4000])
    log.error("query ended: %s", message[:2000])
    return 1


def _at_boundary(ctx: ManagedContext, query: Any, request: StopRequest) -> bool:
    """Whether stopping now leaves no batch in flight and, with the fence, everything admitted is
    committed."""
    info = inspect_checkpoint(ctx.checkpoint_location, allow_empty=True)
    if info.in_flight_batch is not None or query.status.get("isTriggerActive"):
        return False
    if ctx.stop_method is StopMethod.FENCE:
        fences = read_fences(ctx.root.control_dir(ctx.generation), request.request_id)
        if len(fences) < len(set(ctx.fenced_sources)):
            return False  # not every source has seen the request yet
        committed = info.committed.end_offsets_json() if info.committed else []
        for i, path in enumerate(ctx.fenced_sources):
            # What is committed for this source; before any commit, where it started.
            position = committed[i] if i < len(committed) and committed[i] else ctx.starting_offset(i)
            done = int(position["offset"]) if position else 0
            if path not in fences or done < fences[path]:
                return False
    return True


def _acknowledge(
    ctx: ManagedContext, request: StopRequest, outcome: StopOutcome, since: float, status: StatusWriter
) -> int:
    info = inspect_checkpoint(ctx.checkpoint_location, allow_empty=True)
    latency = round(time.monotonic() - since, 3)
    exported: dict[str, Any] = {}
    if request.snapshot and outcome is not StopOutcome.TIMED_OUT and info.last_committed_batch is not None:
        exported = _export_on_stop(ctx, info.last_committed_batch)
    ack = StopAck(
        request_id=request.request_id,
        outcome=outcome,
        method=ctx.stop_method,
        final_committed_batch=info.last_committed_batch,
        end_offsets=info.committed.end_offsets_json() if info.committed else None,
        in_flight_batch=info.in_flight_batch,
        acknowledged_at=time.time(),
        stop_latency_s=latency,
        **exported,
    )
    ctx.root.write_json(ctx.root.stop_ack_file(ctx.generation), ack.to_json())
    log.info(
        "stop request %s: %s at batch %s (in flight: %s) after %.2fs",
        request.request_id,
        outcome,
        ack.final_committed_batch,
        ack.in_flight_batch,
        ack.stop_latency_s,
    )
    if outcome is not StopOutcome.TIMED_OUT:
        status.update(state=DriverState.STOPPED, last_committed_batch=info.last_committed_batch)
    return 0


def _export_on_stop(ctx: ManagedContext, batch: int) -> dict[str, Any]:
    """Export the final committed batch with this driver's own session (the query has stopped): no second JVM
    to start. A failure is reported, not raised: the stop stands, and a separate export can still run."""
    from airflow_checkpoint_provider.runtime.export import export_snapshot

    started = time.monotonic()
    try:
        manifest = export_snapshot(
            ctx.spark,
            ctx.root.location.uri,
            ctx.generation,
            batch=batch,
            code_version=ctx.spec.code_version,
            job_name=ctx.root.job,
        )
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
