"""A managed DStream job — Spark Streaming's ``updateStateByKey`` with ``initialRDD`` — under the same driver
protocol as the Structured Streaming runtime.

A user's application::

    from airflow_checkpoint_provider.runtime import dstreams

    def update(values, state):                      # plain updateStateByKey function
        n, total = state or (0, 0)
        return (n + len(values), total + sum(values))

    def build(ctx: dstreams.DStreamContext) -> None:
        events = ctx.read_eventlog("/data/events")   # dicts: offset, key, value, ts
        pairs = events.map(lambda e: (e["key"], e["value"]))
        counts = ctx.update_state_by_key(pairs, update, part="counts", schema="n BIGINT, total BIGINT")
        counts.foreachRDD(ctx.gated(write))          # write(time, rdd): idempotent per batch time

    if __name__ == "__main__":
        raise SystemExit(dstreams.run(build, batch_seconds=1))

What the runtime does that plain ``StreamingContext.getOrCreate`` does not:

- **The start rule** (:func:`~airflow_checkpoint_provider.model.decisions.decide_dstream_start`): resume
  through ``getOrCreate`` only when a batch *completed*; the snapshot is the ``initialRDD`` only of a
  generation with no completed batch. A first batch that crashed is set aside (``generations/<g>/discarded``)
  and re-run, and a context Spark cannot restore without its ``initialRDD`` (no state checkpoint yet) is
  re-run from the generation's own snapshot and starting position: the same events folded once.
- **The code check**: ``getOrCreate`` restores the old graph, Python functions included, and runs it
  silently. A resume whose application files digest differently is refused (``CodeChangedError``).
- **A replayable source**: the shipped event log is *published* from the generation's starting offset into
  ``generations/<g>/input/`` as immutable segment files that appear atomically (hidden name, then rename),
  which ``textFileStream`` reads. Spark records each batch's files in its checkpoint, so a re-run batch reads
  the same records; the runtime records each completed batch's source position (``acp-batches/``).
- **Stop at a boundary**: on a stop request the publisher stops (the fence); once every published record is
  in a completed batch, the context stops gracefully and the driver acknowledges the last completed batch
  and its position, exporting the state of that batch when asked.
- **Snapshots** of the state at a completed batch, with that batch's position, in the same verified Parquet
  format as Structured Streaming's (so a DStream snapshot can seed a Structured Streaming job and back):
  on stop, and on request while running (``control/snapshot-request.json``).

Batch ids of DStream jobs are batch times in epoch milliseconds.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, cast

from airflow_checkpoint_provider.checkpoint import dstream as records
from airflow_checkpoint_provider.checkpoint.inspector import inspect_checkpoint
from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot
from airflow_checkpoint_provider.checkpoint.snapshots import (
    MANIFEST,
    Manifest,
    SnapshotCatalogue,
    new_snapshot_id,
    read_manifest,
)
from airflow_checkpoint_provider.checkpoint.storage import Location
from airflow_checkpoint_provider.exceptions import (
    CheckpointProviderError,
    CorruptCheckpointError,
    ExportFailedError,
    InvalidLaunchError,
)
from airflow_checkpoint_provider.model.constants import CONTROL_POLL_S
from airflow_checkpoint_provider.model.decisions import StartDecision, StartMode, decide_dstream_start
from airflow_checkpoint_provider.model.launch import LaunchSpec
from airflow_checkpoint_provider.model.records import StopMethod, StopRequest
from airflow_checkpoint_provider.runtime import eventlog
from airflow_checkpoint_provider.runtime.driver import (
    DriverContext,
    Position,
    StatusWriter,
    answer_snapshot_request,
    open_snapshot_request,
    run_driver,
    set_aside,
)

__all__ = ["DStreamContext", "Publisher", "decide", "run"]

log = logging.getLogger("airflow_checkpoint_provider.runtime.dstreams")

#: Published segment files: ``<first offset>-<end offset>.jsonl``, 20 digits each.
SEGMENT_SUFFIX = ".jsonl"
ENGINE = "dstream"


def segment_name(first: int, end: int) -> str:
    return f"{first:020d}-{end:020d}{SEGMENT_SUFFIX}"


def parse_segment_name(name: str) -> tuple[int, int] | None:
    stem = name[: -len(SEGMENT_SUFFIX)] if name.endswith(SEGMENT_SUFFIX) else ""
    first, dash, end = stem.partition("-")
    if dash and len(first) == 20 and len(end) == 20 and first.isdigit() and end.isdigit():
        return int(first), int(end)
    return None


class Publisher:
    """Copies the event log, from an offset on, into a generation's input folder as immutable segment files.

    A file is written under a hidden name (``textFileStream`` skips names starting with ``.``), its
    modification time set to now, then renamed into place: it appears whole, and after every file published
    before it. Segments are contiguous, so the largest offset a batch read tells where the source stands.
    """

    def __init__(
        self, log_path: str, folder: Location, start: int, max_records: int = 5000, period_s: float = 0.2
    ) -> None:
        self.log_path = log_path
        self.folder = folder
        self.index = eventlog.EventLogIndex(log_path)
        self.max_records = max_records
        self.period_s = period_s
        self.next = self.resume_point(folder, start)
        self.error: BaseException | None = None
        self._paused = threading.Event()
        self._stopped = threading.Event()
        self._publishing = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="acp-dstream-publisher", daemon=True)

    @staticmethod
    def resume_point(folder: Location, start: int) -> int:
        """Where publishing continues: after the last published segment, else at ``start``. Hidden
        leftovers of a publisher that died mid-write are removed (they were never visible)."""
        end = start
        for entry in folder.list_or_empty():
            if entry.name.startswith(".") and entry.name.endswith(".tmp"):
                folder.child(entry.name).remove()
                continue
            span = parse_segment_name(entry.name)
            if span is not None:
                end = max(end, span[1])
        return end

    def publish_once(self) -> int:
        """Publish what the log holds beyond ``next`` (at most ``max_records``); return how many."""
        end = min(self.index.end(), self.next + self.max_records)
        if end <= self.next:
            return 0
        lines = [
            json.dumps(r, separators=(",", ":"))
            for r in eventlog.read_records(self.log_path, self.next, end, self.index.segments())
        ]
        data = ("\n".join(lines) + "\n").encode()
        name = segment_name(self.next, end)
        hidden, final = self.folder.child(f".{name}.tmp"), self.folder.child(name)
        if self.folder.is_local:
            os.makedirs(self.folder.path, exist_ok=True)
            with open(hidden.path, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.utime(hidden.path)  # modification time = now: the file is new to textFileStream
        else:
            with hidden.fs.open(hidden.path, "wb") as handle:
                handle.write(data)
        hidden.rename(final)
        count = end - self.next
        self.next = end
        return count

    def _loop(self) -> None:
        while not self._stopped.is_set():
            with self._publishing:
                if not self._paused.is_set():
                    try:
                        self.publish_once()
                    # reported through .error; the supervisor fails the driver with it
                    except Exception as exc:  # noqa: BLE001
                        self.error = exc
                        return
            self._stopped.wait(self.period_s)

    def start(self) -> None:
        self._thread.start()

    def pause(self) -> None:
        """Publish nothing more; returns once a segment being written is in place (``next`` is final)."""
        with self._publishing:
            self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=30)


class DStreamContext(DriverContext):
    """What ``build`` gets: the streaming context, the decision, and helpers that apply it."""

    def __init__(
        self,
        ssc: Any,
        spec: LaunchSpec,
        root: JobRoot,
        decision: StartDecision,
        starting_offsets: Sequence[Any] | None,
        manifest: Manifest | None,
    ) -> None:
        super().__init__(spec, root, decision, starting_offsets, manifest)
        self.ssc = ssc
        self.events_path: str | None = None
        self.events: Any = None

    @property
    def spark(self) -> Any:
        from pyspark.sql import SparkSession

        return SparkSession.builder.getOrCreate()

    def read_eventlog(self, path: str) -> Any:
        """The shipped event log as a DStream of dicts (``offset``, ``key``, ``value``, ``ts``), starting
        right after this start's offset (the snapshot's position on a redeploy). One source per job."""
        if self.events_path is not None:
            raise InvalidLaunchError(
                "a managed DStream job reads one event log (read_eventlog was called twice)",
                path=path,
                job=self.root.job,
                generation=self.generation,
            )
        self.events_path = path
        stream = self.ssc.textFileStream(self.root.input_dir(self.generation).uri).map(json.loads)
        stream.cache()
        self.events = stream
        return stream

    def initial_rdd(
        self,
        part: str | None,
        schema: Any,
        *,
        key: str = "key",
        migrate: Callable[[Any], Any] | None = None,
    ) -> Any:
        """The snapshot's state part as an RDD of ``(key, tuple of values)`` for ``initialRDD=`` — or None
        unless this start loads a snapshot (never on resume: promise 2 in docs/design.md).

        :param schema: the state's value columns as the code declares them (DDL or ``StructType``); the
            (migrated) snapshot must match, else ``SnapshotSchemaMismatchError`` before anything runs.
        :param migrate: old state DataFrame -> new state DataFrame, applied on load.
        """
        loaded = self.load_state_part(self.spark, part, [key], expect=schema, migrate=migrate)
        if loaded is None:
            return None
        _, df = loaded
        values = [c for c in df.columns if c != key]
        rows = df.select(key, *values).collect()
        # A plain parallelized RDD: it is pickled into the DStream graph, which a DataFrame's lineage is not
        return _jvm_only(self.ssc.sparkContext, [(r[0], tuple(r[1:])) for r in rows])

    def update_state_by_key(
        self,
        pairs: Any,
        update: Callable[[list[Any], Any], Any],
        *,
        part: str,
        schema: Any,
        key_type: str = "STRING",
        migrate: Callable[[Any], Any] | None = None,
        snapshot_part: str | None = None,
        num_partitions: int | None = None,
    ) -> Any:
        """``pairs.updateStateByKey(update, initialRDD=<the snapshot's state>)``, registered as state part
        ``part`` so snapshots export it.

        :param schema: the state value's columns (DDL or ``StructType``); a state value is a tuple (or a
            ``Row``, or one scalar for one column) in this order. Exported as ``key`` + these columns.
        :param key_type: the key's Spark SQL type.
        :param snapshot_part: the snapshot part to load (default: ``part``, or the snapshot's only part).
        """
        initial = self.initial_rdd(
            snapshot_part if snapshot_part is not None else _only_or(self.manifest, part),
            schema,
            migrate=migrate,
        )
        state = pairs.updateStateByKey(update, numPartitions=num_partitions, initialRDD=initial)
        ddl = (
            schema
            if isinstance(schema, str)
            else ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in schema.fields)
        )
        state.foreachRDD(_remember(self.root.location.uri, self.generation, part, str(ddl), key_type))
        return state


def _jvm_only(sc: Any, pairs: list[tuple[Any, Any]]) -> Any:
    """``sc.parallelize(pairs)`` read with the context's default serializer, the one a DStream's ``map`` uses.

    ``updateStateByKey`` keeps its ``initialRDD`` in the checkpointed graph, and re-serializes it with a
    Python ``map`` when its serializer differs from the stream's. That map holds the context's Python
    accumulator, which Spark cannot checkpoint twice: the second resume of a generation failed in
    ``ssc.start()`` ("serverHost" is null in ``PythonAccumulatorV2.copyAndReset``). A parallelized RDD is
    a JVM collection of pickled batches, which the default serializer reads as is, so no map is added.
    """
    from pyspark import RDD

    rdd = sc.parallelize(pairs)
    return RDD(rdd._jrdd, sc, sc.serializer)


def _only_or(manifest: Manifest | None, part: str) -> str | None:
    """The part to load: ``part`` when the snapshot has it, else the snapshot's only part (a snapshot from
    a Structured Streaming job names its parts after its state variables)."""
    if manifest is None or part in manifest.parts or len(manifest.parts) != 1:
        return part
    return None


def _remember(job_root: str, generation: int, part: str, ddl: str, key_type: str) -> Callable[..., None]:
    """An output operation that hands each batch's state RDD to the live engine (carries plain data only: a
    restored graph calls the engine of the driver that restored it)."""

    def remember(time: Any, rdd: Any) -> None:
        _engine(job_root, generation).remember(part, ddl, key_type, time, rdd)

    return remember


def _commit(job_root: str, generation: int) -> Callable[..., None]:
    """The last output operation of every batch: records the batch as completed, with its position."""

    def commit(time: Any, rdd: Any) -> None:
        _engine(job_root, generation).commit(time, rdd)

    return commit


_ENGINES: dict[tuple[str, int], DStreamEngine] = {}


def _engine(job_root: str, generation: int) -> DStreamEngine:
    engine = _ENGINES.get((job_root, generation))
    if engine is None:
        raise RuntimeError(f"no managed DStream engine for {job_root} generation {generation}")
    return engine


def batch_ms(time_value: Any) -> int:
    """A batch time as PySpark passes it to ``foreachRDD`` (a naive local ``datetime``) -> epoch ms."""
    if isinstance(time_value, datetime):
        return int(round(time_value.timestamp() * 1000))
    return int(time_value)


def _count_and_max(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    return a[0] + b[0], max(a[1], b[1])


class DStreamEngine:
    """The DStream engine of the shared driver protocol."""

    def __init__(self, ctx: DStreamContext, publisher: Publisher, status: StatusWriter, start: int) -> None:
        self.ctx = ctx
        self.publisher = publisher
        self.status = status
        self.start_offset = start
        self.checkpoint = ctx.root.checkpoint(ctx.generation)
        #: per state part: batch time -> (state RDD, value DDL, key type), the last few batches
        self.states: dict[str, dict[int, tuple[Any, str, str]]] = {}
        self.positions: dict[int, int] = {}
        for t in records.batch_times(self.checkpoint):
            self.positions[t] = int(records.read_batch(self.checkpoint, t).end_offsets[0]["offset"])
        self.error: str | None = None
        self.total = 0
        self._stopped = False
        #: held while a batch is recorded; once halted, no batch is recorded any more, so the acknowledged
        #: final batch stays the last one (a callback still running after ``ssc.stop`` records nothing)
        self._recording = threading.Lock()
        self._halted = False
        self.recorded_here = False
        _ENGINES[(ctx.root.location.uri, ctx.generation)] = self

    # --- called from the batches (output operations) ----------------------------------------------------

    def remember(self, part: str, ddl: str, key_type: str, time_value: Any, rdd: Any) -> None:
        """Hold the state RDD of a batch: the last few, and always the last recorded batch's (what a stop
        exports; batches queued behind a stop keep running until the context has stopped)."""
        if self._halted:
            return
        held = self.states.setdefault(part, {})
        held[batch_ms(time_value)] = (rdd, ddl, key_type)
        last = max(self.positions) if self.positions else None
        for old in sorted(held)[:-4]:
            if old != last:
                del held[old]

    def commit(self, time_value: Any, rdd: Any) -> None:
        with self._recording:
            if not self._halted:
                self._commit(batch_ms(time_value), rdd)

    def _commit(self, t: int, rdd: Any) -> None:
        count, top = rdd.map(lambda e: (1, int(e["offset"]))).fold((0, -1), _count_and_max)
        before = max((p for b, p in self.positions.items() if b < t), default=self.start_offset)
        position = max(before, top + 1)
        self.positions[t] = position
        for old in sorted(self.positions)[: -records.KEEP_RECORDS]:
            del self.positions[old]
        records.write_batch(
            self.checkpoint, records.BatchRecord(batch=t, end_offsets=[{"offset": position}], records=count)
        )
        self.recorded_here = True
        self.total += count
        self.status.update(
            last_committed_batch=t,
            last_batch_input_rows=count,
            total_input_rows=self.total,
            last_batch_end_offsets=[{"offset": position}],
            source_lag=[max(0, self.publisher.index.end() - position)],
            last_batch_at=time.time(),
        )
        self._serve_snapshot_request(t)

    def _serve_snapshot_request(self, t: int) -> None:
        root, g = self.ctx.root, self.ctx.generation
        request = open_snapshot_request(root, g)
        if request is not None:
            answer_snapshot_request(root, g, request, t, self.export)

    # --- the Engine protocol ------------------------------------------------------------------------------

    @property
    def stop_method(self) -> StopMethod:
        return StopMethod.FENCE

    @property
    def stop_poll_s(self) -> float:
        # the boundary comes with a completed batch (seconds apart): the supervisor's usual pace
        return CONTROL_POLL_S

    def running(self) -> bool:
        if self.publisher.error is not None:
            self.error = f"the input publisher failed: {self.publisher.error}"
            return False
        return not self._stopped and str(self.ctx.ssc._jssc.getState()) == "ACTIVE"

    def wait(self, seconds: float) -> bool:
        try:
            return not self.ctx.ssc.awaitTerminationOrTimeout(seconds)
        # the context's own failure; failure() classifies it
        except Exception as exc:  # noqa: BLE001
            self.error = str(exc)
            return False

    def begin_stop(self, request: StopRequest) -> None:
        self.publisher.pause()

    def cancel_stop(self) -> None:
        self.publisher.resume()

    def at_boundary(self, request: StopRequest) -> bool:
        """Every published record is in a completed batch (the publisher is paused, so batches still queued
        are empty: stopping them loses nothing, and Spark re-runs them on a resume), and this driver has
        recorded a batch itself, so it holds the state of the last one (a resumed driver that finds the stop
        already asked for waits for one batch: the state of batches an earlier driver ran is not in it)."""
        if not self.recorded_here:
            return False
        done = self.positions[max(self.positions)] if self.positions else self.start_offset
        return done >= self.publisher.next

    def halt(self, *, graceful: bool) -> None:
        """Stop the context without waiting for queued (empty) batches: a graceful DStream stop runs every
        generated batch first, which on a busy machine is a backlog of empty ones."""
        self.publisher.stop()
        with self._recording:
            self._halted = True
        if not self._stopped:
            self._stopped = True
            self.ctx.ssc.stop(stopSparkContext=False, stopGraceFully=False)

    def position(self) -> Position:
        info = inspect_checkpoint(self.checkpoint, allow_empty=True)
        return Position(
            info.last_committed_batch,
            info.committed.end_offsets_json() if info.committed else None,
            info.in_flight_batch,
        )

    def export(self, batch: int) -> Manifest:
        """Write the state of completed batch ``batch`` (held by this driver) as a verified-format snapshot
        with that batch's source position; an existing snapshot of the same batch is returned."""
        root, g = self.ctx.root, self.ctx.generation
        found = SnapshotCatalogue(root).find(generation=g, batch=batch)
        if found is not None:
            return read_manifest(root, found.snapshot_id, generation=g)
        if not self.states:
            raise ExportFailedError(
                "the job registered no state (use ctx.update_state_by_key)", job=root.job, generation=g
            )
        missing = sorted(part for part, held in self.states.items() if batch not in held)
        if missing:
            have = sorted({t for held in self.states.values() for t in held})
            raise ExportFailedError(
                f"this driver no longer holds the state of batch {batch} (held: {have}; parts {missing})",
                path=self.checkpoint.uri,
                job=root.job,
                generation=g,
                batch=batch,
            )
        states = {part: held[batch] for part, held in self.states.items()}
        return _write_snapshot(self.ctx, batch, [{"offset": self.positions[batch]}], states)

    def failure(self) -> str | None:
        if self.error is None or "GateClosed" in self.error:
            return None
        return self.error

    def tick(self) -> None:
        return None

    def close(self) -> None:
        self.publisher.stop()
        if not self._stopped:
            self._stopped = True
            try:
                self.ctx.ssc.stop(stopSparkContext=False, stopGraceFully=False)
            # stopping an already failed context may raise; the SparkContext is stopped below either way
            except Exception:  # noqa: BLE001
                log.warning("stopping the streaming context raised", exc_info=True)
        self.ctx.ssc.sparkContext.stop()
        _ENGINES.pop((self.ctx.root.location.uri, self.ctx.generation), None)


def _write_snapshot(
    ctx: DStreamContext, batch: int, end_offsets: list[Any], states: dict[str, tuple[Any, str, str]]
) -> Manifest:
    import pendulum
    import pyspark
    from pyspark.sql.types import StructField, StructType

    from airflow_checkpoint_provider.runtime.export import free_id, write_part

    root, g = ctx.root, ctx.generation
    sid = free_id(root, new_snapshot_id(g, batch))
    folder = root.require_inside(root.snapshot_dir(sid))
    started = time.monotonic()
    try:
        parts = {}
        for i, (part, (rdd, ddl, key_type)) in enumerate(sorted(states.items())):
            values = cast(StructType, StructType.fromDDL(ddl))
            schema = StructType(
                [StructField("key", cast(Any, StructType.fromDDL(f"k {key_type}")).fields[0].dataType)]
                + list(values.fields)
            )
            df = ctx.spark.createDataFrame(rdd.map(_state_row), schema)
            parts[part] = write_part(
                folder,
                part,
                df,
                operator_id=i,
                operator_name="updateStateByKey",
                store_name="default",
                state_var=part,
                state_var_type="dstream",
                key_columns=["key"],
                value_columns=[f.name for f in values.fields],
                columns=[
                    {"name": f.name, "type": f.dataType.simpleString(), "source": f"dstream.{part}"}
                    for f in schema.fields
                ],
            )
        manifest = Manifest(
            snapshot_id=sid,
            job=root.job,
            generation=g,
            query_id=ENGINE,
            batch=batch,
            end_offsets=end_offsets,
            checkpoint=root.checkpoint(g).uri,
            checkpoint_format_version=1,
            parts=parts,
            spark_version=pyspark.__version__,
            code_version=ctx.spec.code_version,
            created_at=pendulum.now("UTC").to_iso8601_string(),
            export_seconds=round(time.monotonic() - started, 3),
        )
        root.write_json(folder.child(MANIFEST), manifest.to_json())  # published last
    except CheckpointProviderError:
        folder.remove(recursive=True)
        raise
    # Spark, Py4J and pyarrow raise many types; re-raised typed
    except Exception as exc:  # noqa: BLE001
        folder.remove(recursive=True)
        raise ExportFailedError(
            f"exporting DStream batch {batch} failed and the partial snapshot was removed: {str(exc)[:1500]}",
            path=root.checkpoint(g).uri,
            job=root.job,
            generation=g,
            batch=batch,
        ) from exc
    log.info("snapshot %s: DStream batch %s, %s rows", sid, batch, manifest.rows)
    return manifest


def _state_row(kv: Any) -> tuple[Any, ...]:
    key, value = kv
    if isinstance(value, tuple | list):
        return (key, *value)
    return (key, value)


def decide(root: JobRoot, spec: LaunchSpec) -> StartDecision:
    """The DStream start rule, from the checkpoint alone (see ``decide_dstream_start``)."""
    info = inspect_checkpoint(root.checkpoint(spec.generation), allow_empty=True)
    if info.engine != ENGINE and info.last_committed_batch is not None:
        raise InvalidLaunchError(
            "this generation's checkpoint was written by a Structured Streaming query, not a DStream job",
            path=root.checkpoint(spec.generation).uri,
            job=root.job,
            generation=spec.generation,
            hint="Redeploy through a snapshot: a snapshot from either engine seeds the other",
        )
    facts = info.dstream
    return decide_dstream_start(
        generation=spec.generation,
        last_completed_batch=info.last_committed_batch,
        latest_graph_checkpoint=facts.latest_graph_time if facts is not None else None,
        snapshot=spec.snapshot,
    )


class _Listener:
    @staticmethod
    def make(engine: DStreamEngine) -> Any:
        from pyspark.streaming.listener import StreamingListener

        class Listener(StreamingListener):
            def onBatchCompleted(self, completed: Any) -> None:
                info = completed.batchInfo()
                delay = info.processingDelay()  # milliseconds; -1 when unknown
                if isinstance(delay, int) and delay >= 0:
                    engine.status.update(processing_delay_s=delay / 1000.0)

        return Listener()


def run(
    build: Callable[[DStreamContext], Any],
    *,
    batch_seconds: float = 1.0,
    argv: Sequence[str] | None = None,
    app_name: str | None = None,
    spark_conf: dict[str, str] | None = None,
    max_records_per_file: int = 5000,
    publish_every_s: float | None = None,
) -> int:
    """Run a managed DStream job until it is stopped; return the process exit code.

    :param batch_seconds: the batch interval.
    :param max_records_per_file: the most records one published input segment holds (bounds a batch).
    :param publish_every_s: how often new events are published (default: once per batch interval, so a
        batch reads about one file: every file is a partition, and every partition a task).
    """

    def context(spec: LaunchSpec, root: JobRoot, status: StatusWriter) -> Any:
        from pyspark import SparkConf, SparkContext

        conf = SparkConf().setAppName(app_name or f"{root.job}-g{spec.generation}")
        for key, value in (spark_conf or {}).items():
            conf = conf.set(key, value)
        sc = SparkContext.getOrCreate(conf)
        sc.setLogLevel("WARN")
        status.update(app_id=sc.applicationId, ui_url=sc.uiWebUrl)
        return sc

    def warm(spec: LaunchSpec, root: JobRoot, status: StatusWriter) -> None:
        """A standby's warm-up: the SparkContext and Python workers, on made-up rows; no job data."""
        sc = context(spec, root, status)
        parallel = max(2, int(sc.defaultParallelism))
        rows = sc.parallelize(range(10_000), parallel).map(lambda x: (x % 97, 1))
        rows.reduceByKey(lambda a, b: a + b, parallel).collect()

    def start(
        spec: LaunchSpec,
        root: JobRoot,
        decision: StartDecision,
        offsets: list[Any] | None,
        manifest: Manifest | None,
        status: StatusWriter,
    ) -> DStreamEngine:
        from pyspark.streaming import StreamingContext

        sc = context(spec, root, status)
        g = spec.generation
        checkpoint = root.checkpoint(g)

        def create(decision: StartDecision, offsets: list[Any] | None, manifest: Manifest | None) -> Any:
            ssc = StreamingContext(sc, cast(Any, batch_seconds))  # seconds; fractions work
            ssc.checkpoint(checkpoint.uri)
            ctx = DStreamContext(ssc, spec, root, decision, offsets, manifest)
            build(ctx)
            if ctx.events is None:
                raise InvalidLaunchError(
                    "a managed DStream job must read its input with ctx.read_eventlog(...)",
                    job=root.job,
                    generation=g,
                )
            if manifest is not None and not ctx.initial_state_parts:
                raise InvalidLaunchError(
                    f"this start must load snapshot {spec.snapshot!r} as initial state, but the application "
                    "registered no state with ctx.update_state_by_key(...): starting would drop the state",
                    path=root.snapshot_dir(str(spec.snapshot)).uri,
                    job=root.job,
                    generation=g,
                )
            ctx.events.foreachRDD(_commit(root.location.uri, g))  # registered last: runs last in a batch
            root.update_generation_record(g, events_path=ctx.events_path)
            return ctx

        def begin(ctx: DStreamContext, start_offset: int) -> DStreamEngine:
            publisher = Publisher(
                ctx.events_path or "",
                root.input_dir(g),
                start_offset,
                max_records_per_file,
                publish_every_s or batch_seconds,
            )
            engine = DStreamEngine(ctx, publisher, status, start_offset)
            request, answered = root.read_stop_request(g), root.read_stop_ack(g)
            if request is not None and (answered is None or answered.request_id != request.request_id):
                publisher.pause()  # a stop is already asked for: read nothing new, finish what was published
            ctx.ssc.addStreamingListener(_Listener.make(engine))
            ctx.ssc.start()
            publisher.start()
            return engine

        def first_offset(offsets: list[Any] | None) -> int:
            first = offsets[0] if offsets else None
            return int(first["offset"]) if isinstance(first, dict) and "offset" in first else 0

        if decision.mode is not StartMode.RESUME:
            # An unfinished attempt (graph files, or segments published before the first batch) is set aside:
            # a new context ignores files that predate it, so publishing must start over at the offset.
            facts = inspect_checkpoint(checkpoint, allow_empty=True).dstream
            if (facts is not None and (facts.graph_times or facts.rdd_folders)) or root.input_dir(
                g
            ).list_or_empty():
                set_aside(root, g, decision.reason)
            return begin(create(decision, offsets, manifest), first_offset(offsets))

        record = root.read_generation_record(g) or {}
        restored = StreamingContext.getOrCreate(checkpoint.uri, cast(Any, lambda: None))
        if restored is None:
            raise CorruptCheckpointError(
                "the DStream checkpoint has completed batches but Spark found nothing to restore",
                path=checkpoint.uri,
                job=root.job,
                generation=g,
            )
        ctx = DStreamContext(restored, spec, root, decision, None, None)
        ctx.events_path = _events_path(root, g, record)
        start_offset = first_offset(record.get("starting_offsets"))
        try:
            return begin(ctx, start_offset)
        # Spark cannot restore a context that still needs its initialRDD; anything else is re-raised
        except Exception as exc:  # noqa: BLE001
            if "lacks a SparkContext" not in str(exc):
                raise
            _ENGINES.pop((root.location.uri, g), None)
            try:
                restored.stop(stopSparkContext=False, stopGraceFully=False)
            # the context failed to start; stopping it is best effort
            except Exception:  # noqa: BLE001
                log.warning("stopping the unrestorable context raised", exc_info=True)
        snapshot = record.get("snapshot")
        replay = StartDecision(
            StartMode.FRESH_FROM_SNAPSHOT if snapshot else StartMode.FIRST,
            f"replaying generation {g} from "
            + (f"snapshot {snapshot}" if snapshot else "empty state")
            + f" and offset {start_offset}: Spark cannot restore its checkpoint without the initialRDD (no "
            "state checkpoint yet); the same events are folded once into a fresh context",
            load_initial_state=bool(snapshot),
            last_committed_batch=None,
            in_flight_batch=decision.last_committed_batch,
        )
        set_aside(root, g, replay.reason)
        status.update(start_mode=replay.mode.value, start_reason=replay.reason, last_committed_batch=None)
        log.warning("%s", replay.reason)
        manifest = read_manifest(root, str(snapshot), generation=g) if snapshot else None
        offsets = record.get("starting_offsets")
        return begin(create(replay, offsets, manifest), start_offset)

    return run_driver(start, decide, engine=ENGINE, argv=argv, warm=warm)


def _events_path(root: JobRoot, generation: int, record: dict[str, Any]) -> str:
    path = record.get("events_path")
    if not isinstance(path, str) or not path:
        raise CorruptCheckpointError(
            "the generation record does not say which event log this DStream job reads",
            path=root.generation_record_file(generation).uri,
            job=root.job,
            generation=generation,
        )
    return path
