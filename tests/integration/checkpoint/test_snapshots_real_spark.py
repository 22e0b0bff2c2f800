"""The exporter against real Spark state (shared session): running and stopped queries, transformWithState and
streaming aggregations, v1 -> v2 migration on load, and the refusals."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot
from airflow_checkpoint_provider.checkpoint.snapshots import SnapshotCatalogue, read_manifest, verify_snapshot
from airflow_checkpoint_provider.checkpoint.storage import Location
from airflow_checkpoint_provider.exceptions import (
    BatchNotRetainedError,
    ExportFailedError,
    SnapshotCorruptError,
    SnapshotSchemaMismatchError,
)
from airflow_checkpoint_provider.model.decisions import decide_start
from airflow_checkpoint_provider.model.launch import LaunchSpec
from airflow_checkpoint_provider.runtime import eventlog
from airflow_checkpoint_provider.runtime.export import (
    checkpoint_state_rows,
    deep_verify,
    export_snapshot,
    operator_rows,
)
from airflow_checkpoint_provider.runtime.managed import ROCKSDB, ManagedContext
from tests.support.counting import fold_log
from tests.support.spark_checkpoints import write_events

pytestmark = pytest.mark.spark

TRACK = "spark__sql__streaming__stateStore__rocksdb__trackTotalNumberOfRows"


class Conf:
    def __init__(self, spark: Any, **values: str) -> None:
        self.spark, self.values, self.saved = spark, values, {}

    def __enter__(self) -> None:
        for k, v in self.values.items():
            key = k.replace("__", ".")
            self.saved[key] = self.spark.conf.get(key, None)
            self.spark.conf.set(key, v)

    def __exit__(self, *exc: object) -> None:
        for k, v in self.saved.items():
            self.spark.conf.unset(k) if v is None else self.spark.conf.set(k, v)


def rocksdb(spark: Any) -> Conf:
    return Conf(spark, spark__sql__streaming__stateStore__providerClass=ROCKSDB)


def run_to_the_end(agg: Any, job: Path) -> Any:
    """Run a streaming aggregation as generation 1 of ``job`` (a ``noop`` sink) until its input is used up,
    stop it, and return the stopped query."""
    q = (
        agg.writeStream.outputMode("update")
        .format("noop")
        .option("checkpointLocation", JobRoot(job).checkpoint(1).uri)
        .start()
    )
    q.processAllAvailable()
    q.stop()
    return q


def rows_by_key(rows: list[Any], *cols: str) -> dict[str, tuple[Any, ...]]:
    return {r["key"]: tuple(r[c] for c in cols) for r in rows}


@pytest.fixture(scope="module")
def running_v1(spark: Any, run_dir: Path) -> Iterator[dict[str, Any]]:
    """A v1 counter (transformWithState) left running in the shared session, with its per-batch output."""
    from dags.apps.event_counter_v1 import OUTPUT, CounterV1

    work = run_dir / "snap-running"
    job = work / "counter"
    JobRoot(job).write_json(JobRoot(job).location.child("job.json"), {"current_generation": 1})
    log = work / "events"
    write_events(str(log), 40, keys=6)
    outputs: dict[int, list[Any]] = {}
    eventlog.register(spark)
    with rocksdb(spark):
        events = (
            spark.readStream.format("eventlog")
            .option("path", str(log))
            .option("maxRecordsPerBatch", 10)
            .load()
        )
        counts = events.groupBy("key").transformWithState(CounterV1(), OUTPUT, "Update", "None")
        query = (
            counts.writeStream.outputMode("update")
            .foreachBatch(lambda df, b: outputs.__setitem__(b, df.collect()))
            .option("checkpointLocation", str(JobRoot(job).checkpoint(1).uri))
            .start()
        )
        query.processAllAvailable()
    try:
        yield {"job": job, "log": log, "outputs": outputs, "query": query}
    finally:
        query.stop()


def state_at(outputs: dict[int, list[Any]], batch: int) -> dict[str, tuple[int, int]]:
    """The query's own view of its state after ``batch``: latest output row per key up to it."""
    state: dict[str, tuple[int, int]] = {}
    for b in sorted(outputs):
        if b <= batch:
            state.update(rows_by_key(outputs[b], "n", "total"))
    return state


def test_snapshot_of_a_running_query_equals_its_state_at_n(spark: Any, running_v1: dict[str, Any]) -> None:
    job, log, outputs, query = (
        running_v1["job"],
        running_v1["log"],
        running_v1["outputs"],
        running_v1["query"],
    )
    assert query.isActive and max(outputs) == 3
    for batch in (1, 3):  # an earlier retained batch and the last committed one, while the query runs
        m = export_snapshot(spark, job, 1, batch=batch, code_version="event-counter-v1")
        assert m.batch == batch and m.end_offsets == [{"offset": (batch + 1) * 10}]
        part = m.parts["counts"]
        assert (
            part.key_columns == ["key"]
            and part.value_columns == ["n", "total"]
            and part.state_var == "counts"
        )
        got = spark.read.parquet(str(job / "snapshots" / m.snapshot_id / part.path)).collect()
        assert rows_by_key(got, "n", "total") == state_at(outputs, batch)
        assert rows_by_key(got, "n", "total") == fold_log(log, m.end_offsets[0]["offset"])
        assert part.rows == len(got)
    # exporting the same batch again is a no-op that returns the same snapshot (promise 6 in docs/design.md)
    again = export_snapshot(spark, job, 1, batch=3)
    assert again.snapshot_id == m.snapshot_id
    assert len(SnapshotCatalogue(JobRoot(job)).list()) == 2
    # and it keeps running: more input, more batches (one or more: the 10 events land as 4 segment files, and
    # the running query may see them in two batches), with every new event counted once
    write_events(str(log), 10, keys=6, start=40)
    query.processAllAvailable()
    assert max(outputs) >= 4 and state_at(outputs, max(outputs)) == fold_log(log, 50)


def test_deep_verification_compares_with_the_checkpoint(spark: Any, running_v1: dict[str, Any]) -> None:
    job = running_v1["job"]
    root = JobRoot(job)
    m = export_snapshot(spark, job, 1, batch=2, snapshot_id="deep-b2", deep=True)
    assert SnapshotCatalogue(root).entry(m.snapshot_id).deep_verified
    # a manifest that claims another batch passes the file checks but not the deep check
    shutil.copytree(job / "snapshots" / "deep-b2", job / "snapshots" / "claims-b3")
    manifest = job / "snapshots" / "claims-b3" / "manifest.json"
    manifest.write_text(
        manifest.read_text().replace('"batch": 2', '"batch": 3').replace("deep-b2", "claims-b3")
    )
    verify_snapshot(root, "claims-b3")
    with pytest.raises(SnapshotCorruptError, match="differs from the checkpoint at batch 3"):
        deep_verify(spark, root, "claims-b3")


def test_refusals_for_batches_not_committed_or_purged(
    spark: Any, running_v1: dict[str, Any], run_dir: Path
) -> None:
    with pytest.raises(BatchNotRetainedError, match="batch 99 is not committed") as err:
        export_snapshot(spark, running_v1["job"], 1, batch=99)
    assert "generation=1" in str(err.value) and "job=counter" in str(err.value)
    # a real purge: minBatchesToRetain=2 leaves only the newest batches' logs
    from pyspark.sql import functions as F

    work = run_dir / "snap-purged"
    job = work / "purged"
    log = work / "events"
    write_events(str(log), 60)
    with Conf(spark, spark__sql__streaming__minBatchesToRetain="2"):
        df = (
            spark.readStream.format("eventlog")
            .option("path", str(log))
            .option("maxRecordsPerBatch", 10)
            .load()
        )
        q = (
            df.groupBy("key")
            .agg(F.count("*").alias("n"))
            .writeStream.outputMode("update")
            .format("noop")
            .option("checkpointLocation", JobRoot(job).checkpoint(1).uri)
            .start()
        )
        q.processAllAvailable()
        q.stop()
    assert not (JobRoot(job).checkpoint(1).child("offsets", 0).exists())
    with pytest.raises(BatchNotRetainedError, match="no longer retained"):
        export_snapshot(spark, job, 1, batch=0)
    assert export_snapshot(spark, job, 1).batch == 5  # the last committed one is always there


def test_stopped_aggregation_with_repeated_internal_names(spark: Any, run_dir: Path) -> None:
    from pyspark.sql import functions as F

    work = run_dir / "snap-agg"
    job = work / "agg"
    log = work / "events"
    write_events(str(log), 30, keys=4)
    df = spark.readStream.format("eventlog").option("path", str(log)).option("maxRecordsPerBatch", 10).load()
    agg = df.groupBy("key").agg(
        F.avg("value").alias("mean"), F.sum("value").alias("s"), F.count("*").alias("c")
    )
    run_to_the_end(agg, job)
    m = export_snapshot(spark, job, 1)
    part = m.parts["op0"]
    # Spark's internal buffer names repeat (avg keeps sum, count; then sum; then count): renamed positionally
    assert part.value_columns == ["sum", "count", "sum_2", "count_2"]
    assert [c["from"] for c in part.columns[1:]] == [
        "value.sum#0",
        "value.count#1",
        "value.sum#2",
        "value.count#3",
    ]
    truth = fold_log(log)
    got = spark.read.parquet(str(job / "snapshots" / m.snapshot_id / part.path)).collect()
    assert {r["key"]: (r["count"], int(r["sum"]), r["count_2"], r["sum_2"]) for r in got} == {
        k: (n, t, n, t) for k, (n, t) in truth.items()
    }


def test_failed_export_leaves_nothing_that_looks_like_a_snapshot(spark: Any, run_dir: Path) -> None:
    from pyspark.sql import functions as F

    work = run_dir / "snap-broken"
    job = work / "broken"
    log = work / "events"
    write_events(str(log), 20)
    df = spark.readStream.format("eventlog").option("path", str(log)).option("maxRecordsPerBatch", 10).load()
    q = (
        df.groupBy("key")
        .agg(F.count("*").alias("n"))
        .writeStream.outputMode("update")
        .format("noop")
        .option("checkpointLocation", JobRoot(job).checkpoint(1).uri)
        .start()
    )
    q.processAllAvailable()
    q.stop()
    state = Path(JobRoot(job).checkpoint(1).uri) / "state" / "0"
    lost = [f for f in state.glob("*/2.*") if f.suffix in (".delta", ".zip")]  # the last batch's state files
    assert lost
    for f in lost:
        f.unlink()
    with pytest.raises(ExportFailedError, match="partial snapshot folder was removed") as err:
        export_snapshot(spark, job, 1, snapshot_id="will-fail")
    assert "batch=1" in str(err.value)
    assert not (job / "snapshots" / "will-fail").exists()
    assert SnapshotCatalogue(JobRoot(job)).list() == []


def fresh_from_snapshot(spark: Any, job: Path, *, generation: int, batch: int) -> tuple[ManagedContext, Any]:
    """Export generation 1 at ``batch`` and build the context a driver of ``generation`` gets on the fresh
    path."""
    root = JobRoot(job)
    m = export_snapshot(spark, job, 1, batch=batch)
    spec = LaunchSpec(job_root=str(job), generation=generation, snapshot=m.snapshot_id)
    decision = decide_start(
        generation=generation, last_committed_batch=None, in_flight_batch=None, snapshot=m.snapshot_id
    )
    return ManagedContext(spark, spec, root, decision, m.end_offsets, read_manifest(root, m.snapshot_id)), m


def test_v1_snapshot_loads_into_v2_with_the_migration(
    spark: Any, running_v1: dict[str, Any], run_dir: Path
) -> None:
    from dags.apps import event_counter_v2 as v2

    log = running_v1["log"]
    ctx, m = fresh_from_snapshot(spark, running_v1["job"], generation=2, batch=3)
    root = ctx.root
    with pytest.raises(SnapshotSchemaMismatchError) as err:
        ctx.initial_state("counts", expect=v2.STATE)
    text = str(err.value)
    assert "(n bigint, total bigint)" in text and "(n bigint, total bigint, max bigint)" in text
    assert "migrate=" in text and m.snapshot_id in text and "generation=2" in text
    grouped = ctx.initial_state("counts", expect=v2.STATE, migrate=v2.migrate_v1_to_v2)
    # run v2 for real from that initial state and the snapshot's offsets, over the events after batch 3
    start = m.end_offsets[0]["offset"]
    outputs: dict[int, list[Any]] = {}
    with rocksdb(spark):
        events = ctx.read_eventlog(str(log), maxRecordsPerBatch=100)
        counts = events.groupBy("key").transformWithState(
            v2.CounterV2(), v2.OUTPUT, "Update", "None", initialState=grouped
        )
        q = (
            counts.writeStream.outputMode("update")
            .foreachBatch(lambda df, b: outputs.__setitem__(b, df.collect()))
            .option("checkpointLocation", root.checkpoint(2).uri)
            .start()
        )
        q.processAllAvailable()
        q.stop()
    end = eventlog.EventLogIndex(str(log)).end()
    assert end > start
    got = {}
    for b in sorted(outputs):
        got.update(rows_by_key(outputs[b], "n", "total", "max"))
    truth = fold_log(log, end)
    after = {}
    for r in eventlog.read_records(str(log), start, end):
        after[r["key"]] = max(after.get(r["key"], r["value"]), r["value"])
    assert got == {k: (*truth[k], after[k]) for k in after}  # every key with new events: exact n, total, max


def test_pandas_flavour_loads_the_same_snapshot(spark: Any, running_v1: dict[str, Any]) -> None:
    """transformWithStateInPandas takes the same ``ctx.initial_state(...)`` (one row per key, as a
    DataFrame)."""
    import pandas as pd
    from pyspark.sql.streaming.stateful_processor import StatefulProcessor

    from dags.apps.event_counter_v1 import OUTPUT, STATE

    class PandasCounter(StatefulProcessor):  # type: ignore[misc]
        def init(self, handle: Any) -> None:
            self.counts = handle.getValueState("counts", STATE)

        def handleInputRows(self, key: Any, rows: Any, timerValues: Any) -> Any:
            n, total = self.counts.get() or (0, 0)
            for frame in rows:
                n += len(frame)
                total += int(frame["value"].sum())
            self.counts.update((n, total))
            yield pd.DataFrame({"key": [key[0]], "n": [n], "total": [total]})

        def handleInitialState(self, key: Any, initialState: Any, timerValues: Any) -> None:
            self.counts.update((int(initialState["n"].iloc[0]), int(initialState["total"].iloc[0])))

        def close(self) -> None:
            pass

    log = running_v1["log"]
    ctx, m = fresh_from_snapshot(spark, running_v1["job"], generation=3, batch=2)
    root = ctx.root
    outputs: dict[int, list[Any]] = {}
    with rocksdb(spark):
        events = ctx.read_eventlog(str(log), maxRecordsPerBatch=1000)
        counts = events.groupBy("key").transformWithStateInPandas(
            PandasCounter(), OUTPUT, "Update", "None", initialState=ctx.initial_state("counts", expect=STATE)
        )
        q = (
            counts.writeStream.outputMode("update")
            .foreachBatch(lambda df, b: outputs.__setitem__(b, df.collect()))
            .option("checkpointLocation", root.checkpoint(3).uri)
            .start()
        )
        q.processAllAvailable()
        q.stop()
    got: dict[str, tuple[Any, ...]] = {}
    for b in sorted(outputs):
        got.update(rows_by_key(outputs[b], "n", "total"))
    truth = fold_log(log, eventlog.EventLogIndex(str(log)).end())
    assert got and got == {k: truth[k] for k in got}


def test_operator_rows_read_from_files_equal_sparks_state_metadata(
    spark: Any, run_dir: Path, running_v1: dict[str, Any]
) -> None:
    """The export reads the operators' metadata files itself (no Spark job): for an aggregation (v1), a
    stream-stream join (four stores), transformWithState (v2) and the shipped fixtures, it finds what Spark's
    ``state-metadata`` source finds."""
    from pyspark.sql import functions as F

    work = run_dir / "op-rows"
    log = work / "events"
    write_events(str(log), 20, keys=3)

    def side(n: int) -> Any:
        events = spark.readStream.format("eventlog").option("path", str(log)).load()
        return events.select(F.col("key").alias(f"k{n}"), F.col("value").alias(f"v{n}"))

    join = work / "join"
    query = (
        side(1)
        .join(side(2), F.expr("k1 = k2"))
        .writeStream.format("noop")
        .option("checkpointLocation", str(join))
        .start()
    )
    query.processAllAvailable()
    query.stop()
    fixtures = Path(__file__).resolve().parents[2] / "fixtures" / "checkpoints"
    checkpoints = [
        str(join),
        str(fixtures / "aggregation"),
        str(fixtures / "transform_with_state"),
        JobRoot(running_v1["job"]).checkpoint(1).uri,
    ]
    for checkpoint in checkpoints:
        truth = sorted(
            (int(r.operatorId), r.operatorName, r.stateStoreName, r.operatorProperties or "")
            for r in spark.read.format("state-metadata").load(checkpoint).collect()
        )
        assert sorted(operator_rows(checkpoint) or []) == truth, checkpoint
    assert len(operator_rows(str(join)) or []) == 4
    assert operator_rows(str(work / "no-such-checkpoint")) is None


def test_the_arrow_path_writes_the_snapshot_a_spark_write_does(spark: Any, run_dir: Path) -> None:
    """A driver that knows its state rows exports through Arrow (one file, written by pyarrow): the same
    rows, columns and Spark schema as the Spark write, verified by the same checks, and loaded by the same
    reader. A schema Arrow cannot carry falls back to the Spark write."""
    import json

    from pyspark.sql import functions as F
    from pyspark.sql.types import StructType

    from airflow_checkpoint_provider.runtime.export import state_rows_of

    work = run_dir / "snap-arrow"
    job = work / "agg"
    log = work / "events"
    write_events(str(log), 40, keys=5)
    df = spark.readStream.format("eventlog").option("path", str(log)).option("maxRecordsPerBatch", 20).load()
    agg = df.groupBy("key").agg(
        F.avg("value").alias("mean"),
        F.count("*").alias("c"),
        F.collect_list("value").alias("values"),
        F.max(F.timestamp_seconds(F.col("value"))).alias("latest"),
    )
    q = run_to_the_end(agg, job)
    rows = state_rows_of(q.lastProgress, 1)
    assert rows == 5, q.lastProgress  # the progress of batch 1 counts the state's rows
    assert state_rows_of(q.lastProgress, 3) is None and state_rows_of(q.lastProgress, 1, "false") is None
    by_spark = export_snapshot(spark, job, 1, snapshot_id="by-spark")
    by_arrow = export_snapshot(spark, job, 1, snapshot_id="by-arrow", state_rows=rows)
    a, s = by_arrow.parts["op0"], by_spark.parts["op0"]
    assert [f.name for f in a.files] == ["part-00000.snappy.parquet"] and len(s.files) >= 1
    assert (a.rows, a.spark_schema, a.columns, a.key_columns) == (
        s.rows,
        s.spark_schema,
        s.columns,
        s.key_columns,
    )
    root = JobRoot(job)
    verify_snapshot(root, "by-arrow")
    deep_verify(spark, root, "by-arrow")  # row for row against the checkpoint

    def read(m: Any) -> list[tuple[Any, ...]]:
        schema = StructType.fromJson(json.loads(m.parts["op0"].spark_schema))
        path = str(job / "snapshots" / m.snapshot_id / m.parts["op0"].path)
        return sorted(tuple(r) for r in spark.read.schema(schema).parquet(path).collect())

    assert read(by_arrow) == read(by_spark)
    # a schema pyspark cannot turn into Arrow: the Spark write, and the same snapshot
    import pyspark.sql.pandas.types as arrow_types

    original = arrow_types.to_arrow_schema

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise TypeError("unsupported type")

    arrow_types.to_arrow_schema = refuse
    try:
        fell_back = export_snapshot(spark, job, 1, snapshot_id="fell-back", state_rows=rows)
    finally:
        arrow_types.to_arrow_schema = original
    assert "part-00000.snappy.parquet" not in [f.name for f in fell_back.parts["op0"].files]
    assert read(fell_back) == read(by_spark)


def test_an_export_from_outside_sizes_the_state_from_rocksdbs_own_metadata(spark: Any, run_dir: Path) -> None:
    """Without a driver's hint (the snapshot operator's application), the export reads the state's
    size from RocksDB's metadata in the checkpoint (the keys it counted, its SST files' bytes) and takes the
    Arrow path; where the checkpoint cannot tell, Spark writes the snapshot as before."""
    from pyspark.sql import functions as F

    work = run_dir / "snap-size"
    log = work / "events"
    write_events(str(log), 40, keys=5)

    def events() -> Any:
        return (
            spark.readStream.format("eventlog")
            .option("path", str(log))
            .option("maxRecordsPerBatch", 20)
            .load()
        )

    def run(name: str, **conf: str) -> Any:
        with Conf(spark, spark__sql__streaming__stateStore__providerClass=ROCKSDB, **conf):
            run_to_the_end(events().groupBy("key").count(), work / name)
        return JobRoot(work / name).checkpoint(1)

    counted = run("counted")
    assert checkpoint_state_rows(counted, 1) == 5
    assert checkpoint_state_rows(counted, 2) is None  # not committed: no version 3
    manifest = export_snapshot(spark, work / "counted", 1)
    part = manifest.parts["op0"]
    assert [f.name for f in part.files] == [
        "part-00000.snappy.parquet"
    ] and part.rows == 5  # pyarrow wrote it
    verify_snapshot(JobRoot(work / "counted"), manifest.snapshot_id)
    # RocksDB not counting its rows writes -1; the v2 checkpoint format names versions <v>_<id>.zip
    assert checkpoint_state_rows(run("uncounted", **{TRACK: "false"}), 1) is None
    v2 = run(
        "v2",
        spark__sql__streaming__offsetLog__formatVersion="2",
        spark__sql__streaming__stateStore__checkpointFormatVersion="2",
    )
    assert checkpoint_state_rows(v2, 1) is None
    # Spark's in-memory store keeps no count in its files
    run_to_the_end(events().groupBy("key").count(), work / "in-memory")
    assert checkpoint_state_rows(JobRoot(work / "in-memory").checkpoint(1), 1) is None
    # a stream-stream join: four stores in every partition, each a folder of its own
    join = work / "join"
    with Conf(spark, spark__sql__streaming__stateStore__providerClass=ROCKSDB):
        left = events().select(F.col("key").alias("k1"), F.col("value").alias("v1"))
        right = events().select(F.col("key").alias("k2"), F.col("value").alias("v2"))
        q = (
            left.join(right, F.expr("k1 = k2"))
            .writeStream.format("noop")
            .option("checkpointLocation", str(join))
        )
        query = q.start()
        query.processAllAvailable()
        query.stop()
    last = max(int(p.name) for p in (join / "commits").iterdir() if p.name.isdigit())
    stores = {p.name for p in (join / "state" / "0" / "0").iterdir() if p.is_dir() and p.name != "_metadata"}
    assert len(stores) == 4, stores
    assert (checkpoint_state_rows(Location.of(str(join)), last) or 0) > 0
