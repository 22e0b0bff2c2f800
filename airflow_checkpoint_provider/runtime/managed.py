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
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from airflow_checkpoint_provider.checkpoint.inspector import inspect_checkpoint
from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot
from airflow_checkpoint_provider.checkpoint.snapshots import Manifest, read_manifest
from airflow_checkpoint_provider.exceptions import InvalidLaunchError
from airflow_checkpoint_provider.model.constants import STOPPING_POLL_S
from airflow_checkpoint_provider.model.decisions import StartDecision, StartMode, decide_start
from airflow_checkpoint_provider.model.launch import LaunchSpec
from airflow_checkpoint_provider.model.offsets import starting_offset_options
from airflow_checkpoint_provider.model.records import DriverState, StopMethod, StopRequest
from airflow_checkpoint_provider.runtime import eventlog
from airflow_checkpoint_provider.runtime.driver import (
    DriverContext,
    DriverLock,
    GateClosed,
    Position,
    StatusWriter,
    answer_snapshot_request,
    check_state_schema,
    open_snapshot_request,
    run_driver,
    set_aside,
)
from airflow_checkpoint_provider.runtime.fence import fence_for_source, read_fences
from airflow_checkpoint_provider.runtime.standby import WARM_UP_QUERIES

__all__ = [
    "ROCKSDB",
    "SESSION_CONF",
    "DriverLock",
    "GateClosed",
    "ManagedContext",
    "StatusWriter",
    "check_state_schema",
    "decide",
    "run",
    "source_lag",
]

log = logging.getLogger("airflow_checkpoint_provider.runtime")

#: How often a running driver looks for a snapshot request (one small read of the control folder).
SNAPSHOT_REQUEST_POLL_S = 1.0

ROCKSDB = "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"
#: The runtime's defaults: what transformWithState needs, so the user's code stays a plain StatefulProcessor.
#: A default only: a launch's ``--conf`` (the DAG's ``spark_conf``) or the application's own ``spark_conf``
#: wins, e.g. Spark's in-memory ``HDFSBackedStateStoreProvider`` for an aggregation's small state
#: (docs/applications.md). A checkpoint pins its provider: a resume keeps the one that wrote it.
SESSION_CONF = {"spark.sql.streaming.stateStore.providerClass": ROCKSDB}
#: A dry run reads the event log in batches of at most this many records (unless the application caps lower).
DRY_RUN_BATCH_RECORDS = 500


class ManagedContext(DriverContext):
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
        super().__init__(spec, root, decision, starting_offsets, manifest)
        self.spark = spark
        self.fenced_sources: list[str] = []
        self._sources = 0

    def read_eventlog(self, path: str, **options: Any) -> Any:
        """Read the shipped event log with this start's offsets and the stop fence applied."""
        index = self._sources
        self._sources += 1
        reader = self.spark.readStream.format(eventlog.SOURCE_NAME).option("path", path)
        reader = reader.option("stopFenceControlPath", self.control_location)
        for key, value in starting_offset_options("eventlog", self.starting_offset(index)).items():
            reader = reader.option(key, value)
        if self.dry_run and not options.get("maxRecordsPerBatch"):
            options = {**options, "maxRecordsPerBatch": DRY_RUN_BATCH_RECORDS}  # a bounded slice
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
        keys = None if key is None else ([key] if isinstance(key, str) else list(key))
        loaded = self.load_state_part(self.spark, part, keys, expect=expect, migrate=migrate)
        if loaded is None:
            return None
        key_columns, df = loaded
        return df.groupBy(*key_columns)

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
        name, spec = self.snapshot_part(manifest, part)
        from pyspark.sql.types import StructType

        df = self.spark.readStream.schema(StructType.fromJson(json.loads(spec.spark_schema))).parquet(
            self.root.snapshot_dir(str(snapshot)).child(spec.path).uri
        )
        if migrate is not None:
            df = migrate(df)
        self.initial_state_parts.append(name)
        return df

    @property
    def stop_method(self) -> StopMethod:
        if self.fenced_sources:
            return StopMethod.FENCE
        if self.gated_sinks:
            return StopMethod.GATE
        return StopMethod.IDLE


def decide(root: JobRoot, spec: LaunchSpec) -> StartDecision:
    """Structured Streaming's start rule: resume when the checkpoint has a committed batch (see
    :func:`~airflow_checkpoint_provider.model.decisions.decide_start`)."""
    info = inspect_checkpoint(root.checkpoint(spec.generation), allow_empty=True)
    return decide_start(
        generation=spec.generation,
        last_committed_batch=info.last_committed_batch,
        in_flight_batch=info.in_flight_batch,
        snapshot=spec.snapshot,
    )


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


def _submitted_conf() -> Any:
    """What spark-submit's ``--conf`` set, before the session exists (a ``SparkConf``)."""
    from pyspark import SparkConf, SparkContext

    SparkContext._ensure_initialized()  # the gateway, so that SparkConf() reads spark-submit's confs
    return SparkConf()


def _session_defaults() -> dict[str, str]:
    """:data:`SESSION_CONF` less what the launch set itself: a default never overrides a setting the user
    gave."""
    given = _submitted_conf()
    return {key: value for key, value in SESSION_CONF.items() if not given.contains(key)}


def _prefork_python(spark_conf: dict[str, str]) -> None:
    """A standby's session gets pre-forked Python for the driver's own runners (:mod:`._prefork`): on a local
    master, or where ``spark.acp.preforkPython=true`` says the launcher exists on the executors too."""
    import os

    from airflow_checkpoint_provider.runtime import _prefork

    conf = _submitted_conf()
    master = spark_conf.get("spark.master") or conf.get("spark.master", None)
    asked = spark_conf.get(_prefork.CONF) or conf.get(_prefork.CONF, None)
    if not _prefork.wanted(master, asked):
        return
    try:
        launcher = _prefork.start(os.environ.get("PYSPARK_PYTHON"))
    # an optimisation: without it the runners start as they always do
    except Exception as exc:  # noqa: BLE001
        log.warning("no pre-forked Python for the driver's runners: %s", exc)
        return
    if launcher:
        os.environ["PYSPARK_PYTHON"] = launcher


class _Listener:
    """StreamingQueryListener that reports each committed batch to status.json."""

    @staticmethod
    def make(status: StatusWriter) -> Any:
        from pyspark.sql.streaming.listener import StreamingQueryListener

        class Listener(StreamingQueryListener):
            def onQueryStarted(self, event: Any) -> None:
                if event.name not in WARM_UP_QUERIES:
                    status.update(query_id=str(event.id), run_id=str(event.runId))

            def onQueryProgress(self, event: Any) -> None:
                p = event.progress
                if p.name in WARM_UP_QUERIES:  # a warm-up on made-up rows is not the job's progress
                    return
                ends, lags = [], []
                for s in p.sources:
                    end = _parse_offset(s.endOffset)
                    ends.append(end)
                    lags.append(source_lag(end, _parse_offset(getattr(s, "latestOffset", None))))
                first = status.current.first_batch_ms
                status.update(
                    first_batch_ms=first
                    if first is not None
                    else {k: int(v) for k, v in p.durationMs.items()},
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


class QueryEngine:
    """The Structured Streaming engine of the shared driver protocol: one streaming query."""

    def __init__(self, ctx: ManagedContext, query: Any) -> None:
        self.ctx = ctx
        self.query = query
        self._export_warm: threading.Thread | bool | None = None
        self._snapshot: threading.Thread | None = None  # serving a snapshot request
        # one export at a time: the export on stop waits for a request's export of the same batch, then
        # finds its snapshot (two at once would pick the same free snapshot id)
        self._exporting = threading.Lock()
        self._next_request_check = 0.0

    @property
    def stop_method(self) -> StopMethod:
        return self.ctx.stop_method

    @property
    def stop_poll_s(self) -> float:
        return STOPPING_POLL_S  # a batch boundary is a file in the checkpoint: look often while stopping

    def running(self) -> bool:
        return bool(self.query.isActive)

    def wait(self, seconds: float) -> bool:
        try:
            self.query.awaitTermination(seconds)
        # awaitTermination raises the query's own failure; failure() classifies it
        except Exception:  # noqa: BLE001
            return False
        return True

    def begin_stop(self, request: StopRequest) -> None:
        if self.ctx.stop_method is StopMethod.GATE:
            self.ctx.close_gate(f"stop request {request.request_id}")

    def cancel_stop(self) -> None:
        self.ctx.reopen_gate()

    def at_boundary(self, request: StopRequest) -> bool:
        """Whether stopping now leaves no batch in flight and, with the fence, everything admitted is
        committed."""
        ctx = self.ctx
        info = inspect_checkpoint(ctx.checkpoint_location, allow_empty=True)
        if info.in_flight_batch is not None or self.query.status.get("isTriggerActive"):
            return False
        if ctx.stop_method is StopMethod.FENCE:
            control = ctx.root.control_dir(ctx.generation)
            fences = read_fences(control, request.request_id)
            if len(fences) < len(set(ctx.fenced_sources)):
                # Between triggers, nothing in flight: fence the sources that have not seen the request
                # where they stand (a query with a long trigger interval would otherwise hold the stop
                # until its next trigger), then look at the query again.
                if len(set(ctx.fenced_sources)) < len(ctx.fenced_sources):
                    return False  # one path read twice: its sources fence themselves
                committed = info.committed.end_offsets_json() if info.committed else []
                for i, path in enumerate(ctx.fenced_sources):
                    if path not in fences:
                        fence_for_source(control, path, request.request_id, self._done(committed, i))
                info = inspect_checkpoint(ctx.checkpoint_location, allow_empty=True)
                if info.in_flight_batch is not None or self.query.status.get("isTriggerActive"):
                    return False
                fences = read_fences(control, request.request_id)
                if len(fences) < len(set(ctx.fenced_sources)):
                    return False
            committed = info.committed.end_offsets_json() if info.committed else []
            for i, path in enumerate(ctx.fenced_sources):
                if path not in fences or self._done(committed, i) < fences[path]:
                    return False
        return True

    def _done(self, committed: list[Any], i: int) -> int:
        """Source ``i``'s committed end offset; before any commit, where it started."""
        position = committed[i] if i < len(committed) and committed[i] else self.ctx.starting_offset(i)
        return int(position["offset"]) if position else 0

    def halt(self, *, graceful: bool) -> None:
        self.query.stop()

    def position(self) -> Position:
        info = inspect_checkpoint(self.ctx.checkpoint_location, allow_empty=True)
        return Position(
            info.last_committed_batch,
            info.committed.end_offsets_json() if info.committed else None,
            info.in_flight_batch,
        )

    def export(self, batch: int) -> Manifest:
        from airflow_checkpoint_provider.runtime.export import export_snapshot

        ctx = self.ctx
        with self._exporting:
            return export_snapshot(
                ctx.spark,
                ctx.root.location.uri,
                ctx.generation,
                batch=batch,
                code_version=ctx.spec.code_version,
                job_name=ctx.root.job,
                state_rows=self.state_rows(batch),
            )

    def state_rows(self, batch: int) -> int | None:
        """How many state rows the query held after ``batch``, from its last progress (the export's size
        hint for its Arrow path; :func:`~airflow_checkpoint_provider.runtime.export.state_rows_of`)."""
        from airflow_checkpoint_provider.runtime.export import TRACK_ROWS_CONF, state_rows_of

        try:
            progress, track = self.query.lastProgress, self.ctx.spark.conf.get(TRACK_ROWS_CONF, "true")
        # only a hint: without it, Spark writes the snapshot
        except Exception:  # noqa: BLE001
            return None
        return state_rows_of(progress, batch, track)

    def failure(self) -> str | None:
        error = self.query.exception()
        if error is None or "GateClosed" in str(error):
            return None
        return str(error)

    def tick(self) -> None:
        """Serve a snapshot request, and once the query has committed a batch, warm the export path in the
        background (a driver that did not warm it as a standby): its export on stop then runs warm."""
        if self.ctx.dry_run:
            return
        self._serve_snapshot_request()
        if self._export_warm is not None or self.query.lastProgress is None:
            return
        from airflow_checkpoint_provider.runtime import _warm

        if _warm.EXPORT_WARMED.is_set():
            self._export_warm = False
            return
        self._export_warm = threading.Thread(
            target=_warm.warm_export,
            args=(self.ctx.spark, self.ctx.root),
            name="acp-export-warm-up",
            daemon=True,
        )
        self._export_warm.start()

    def _serve_snapshot_request(self) -> None:
        """A snapshot request (the snapshot operator's, on a running job): export the batch it names (the
        checkpoint's last committed one by default) in the background, with the query running on, and answer
        it. Looked for once a second; one at a time."""
        now = time.monotonic()
        if now < self._next_request_check or (self._snapshot is not None and self._snapshot.is_alive()):
            return
        self._next_request_check = now + SNAPSHOT_REQUEST_POLL_S
        root, g = self.ctx.root, self.ctx.generation
        request = open_snapshot_request(root, g)
        if request is None:
            return
        named = request.get("batch")
        batch = (
            named
            if isinstance(named, int) and not isinstance(named, bool)
            else self.position().last_committed_batch
        )
        if batch is None:
            answer = {
                "request_id": request["request_id"],
                "error": "no committed batch yet",
                "at": time.time(),
            }
            root.write_json(root.snapshot_ack_file(g), answer)
            return
        log.info("snapshot request %s: exporting batch %s while the query runs", request["request_id"], batch)
        self._snapshot = threading.Thread(
            target=answer_snapshot_request,
            args=(root, g, request, batch, self.export),
            name="acp-snapshot-request",
            daemon=True,
        )
        self._snapshot.start()

    def close(self) -> None:
        self.ctx.spark.stop()


def run(
    build: Callable[[ManagedContext], Any],
    *,
    argv: Sequence[str] | None = None,
    app_name: str | None = None,
    spark_conf: dict[str, str] | None = None,
) -> int:
    """Run a managed streaming query until it is stopped; return the process exit code."""
    sessions: list[Any] = []
    listeners: list[tuple[StatusWriter, Any]] = []

    def session(spec: LaunchSpec, root: JobRoot, status: StatusWriter) -> Any:
        if sessions:
            spark = sessions[0]
            if listeners and listeners[-1][0] is not status:  # an adopted dry run: report to its new status
                spark.streams.removeListener(listeners[-1][1])
                listeners.append((status, _Listener.make(status)))
                spark.streams.addListener(listeners[-1][1])
                status.update(app_id=spark.sparkContext.applicationId, ui_url=spark.sparkContext.uiWebUrl)
            return spark
        from pyspark.sql import SparkSession

        if spec.standby_for is not None or spec.stay_as_standby_s:  # a standby, or a dry run that may be one
            _prefork_python(spark_conf or {})
        builder = SparkSession.builder.appName(app_name or f"{root.job}-g{spec.generation}")
        for key, value in {**_session_defaults(), **(spark_conf or {})}.items():
            builder = builder.config(key, value)
        spark = builder.getOrCreate()
        eventlog.register(spark)
        status.update(app_id=spark.sparkContext.applicationId, ui_url=spark.sparkContext.uiWebUrl)
        listeners.append((status, _Listener.make(status)))
        spark.streams.addListener(listeners[-1][1])
        sessions.append(spark)
        return spark

    def warm(spec: LaunchSpec, root: JobRoot, status: StatusWriter) -> None:
        """A standby's warm-up: the session, then what a first batch pays for, on made-up rows (no job
        data, no checkpoint of the job, no sink), and the export path it will run on its own stop. An
        adopted dry run's session ran the new code's own query already: only the export path is warmed."""
        from airflow_checkpoint_provider.runtime._warm import warm_export, warm_up

        adopted = bool(sessions)
        spark = session(spec, root, status)
        if adopted:
            log.info("the dry run warmed this driver: no warm-up query")
        else:
            warm_up(spark, root)
        warm_export(spark, root)  # it will export its state on its own stop one day

    def start(
        spec: LaunchSpec,
        root: JobRoot,
        decision: StartDecision,
        offsets: list[Any] | None,
        manifest: Manifest | None,
        status: StatusWriter,
    ) -> QueryEngine:
        spark = session(spec, root, status)
        if decision.mode is not StartMode.RESUME and set_aside(
            root,
            spec.generation,
            f"{decision.reason}: an earlier attempt planned batch 0 and committed nothing; batch 0 runs "
            "again on an empty checkpoint (Spark refuses to re-run batch 0 of transformWithState with an "
            "initial state where it was planned)",
        ):
            status.update(start_reason=f"{decision.reason}; the earlier attempt's checkpoint was set aside")

        ctx = ManagedContext(spark, spec, root, decision, offsets, manifest)
        writer = build(ctx)
        if manifest is not None:
            unused = sorted(set(manifest.parts) - set(ctx.initial_state_parts))
            if len(unused) == len(manifest.parts):
                raise InvalidLaunchError(
                    f"this start must load snapshot {spec.snapshot!r} as initial state, but the application "
                    "called ctx.initial_state(...) for none of its parts: starting would silently drop the "
                    "state",
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
        log.info(
            "query %s started on %s (stop method: %s)", query.id, ctx.checkpoint_location, ctx.stop_method
        )
        status.update(
            query_id=str(query.id),
            run_id=str(query.runId),
            query_started_at=time.time(),
            serves_snapshot_requests=not ctx.dry_run,
        )
        return QueryEngine(ctx, query)

    return run_driver(start, decide, engine="structured", argv=argv, warm=warm)
