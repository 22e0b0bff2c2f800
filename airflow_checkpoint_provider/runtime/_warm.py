"""Warm-ups for Structured Streaming drivers (imported by a driver only; it imports pyspark).

A new query's first batch pays for what no earlier job in the JVM did: code generation, shuffle machinery,
the state store provider (RocksDB's native library), the streaming engine's classes, and Python workers that
import pandas and pyarrow for ``transformWithState``. :func:`warm_up` pays for them in advance on made-up
rows: a batch job, Python tasks, and one short streaming query with ``transformWithState`` over a scratch
event log (the shipped Python streaming source: its runner and its readers' imports), with its own scratch
checkpoint and a ``foreachBatch`` sink that writes Parquet into the scratch folder (the first call back into
the driver's Python, the first Parquet write). None of it reads a source of the job, loads its
state, writes its checkpoint or touches its sink; the scratch folder is removed afterwards.

:func:`warm_export` does the same for the export on stop: a tiny state exported in scratch, so the state
reader's first use in the JVM is not the redeploy's. A standby runs it before it reports ``STANDBY``; any
other driver in the background once its query has committed a batch.

Both write in a scratch folder of their own under the job root, ``<job root>/scratch/warm-*``
(:func:`~airflow_checkpoint_provider.runtime.standby.scratch`): the executors see it wherever they see the
job's checkpoints (a cluster's executors do not see the driver's local folders), and nothing outside the job
root is touched. It is removed afterwards; one a killed driver left behind is removed by the job's next
warm-up once it is an hour old. A warm-up that fails is logged, and the first batch or the export on stop
pays for what it would have warmed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from pyspark.sql import functions as F
from pyspark.sql.streaming.stateful_processor import StatefulProcessor, StatefulProcessorHandle

from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot
from airflow_checkpoint_provider.runtime.eventlog import SOURCE_NAME, EventLogWriter
from airflow_checkpoint_provider.runtime.standby import WARM_EXPORT_QUERY, WARM_UP_QUERY, scratch

log = logging.getLogger("airflow_checkpoint_provider.runtime")


class _Count(StatefulProcessor):
    """Counts rows per key in a value state, with an initial state: the smallest processor that exercises
    the state store and both of ``transformWithState``'s Python paths."""

    def init(self, handle: StatefulProcessorHandle) -> None:
        self.count = handle.getValueState("count", "n LONG")

    def handleInputRows(self, key: Any, rows: Iterator[Any], timerValues: Any) -> Iterator[Any]:
        from pyspark.sql import Row

        n = (self.count.get() or (0,))[0] + sum(1 for _ in rows)
        self.count.update((n,))
        yield Row(key=key[0], n=n)

    def handleInitialState(self, key: Any, initialState: Any, timerValues: Any) -> None:
        self.count.update((initialState.n,))

    def close(self) -> None:
        pass


class _ScratchParquet:
    """The warm-up query's sink: each batch as Parquet in the scratch folder, through ``foreachBatch``. A new
    query's first batch otherwise pays for the first call back into the driver's Python and the first
    Parquet write of the JVM: batch 0 of a counter after the warm-up took 3.1-4.1 s with a ``noop`` sink
    here, 1.7-2.4 s with this one (its ``addBatch``; 2026-12-01)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self, df: Any, batch_id: int) -> None:
        df.write.mode("overwrite").parquet(f"{self.path}/batch={batch_id}")


def warm_up(spark: Any, root: JobRoot) -> None:
    partitions = int(spark.conf.get("spark.sql.shuffle.partitions", "2") or 2)
    rows = spark.range(0, 10_000, numPartitions=2)
    rows = rows.select((F.col("id") % 97).alias("key"), F.lit(1).alias("n"))
    rows.groupBy("key").agg(F.sum("n")).collect()
    parallel = max(2, int(spark.sparkContext.defaultParallelism))
    spark.sparkContext.parallelize(range(parallel), parallel).map(lambda x: x * 2).collect()
    try:
        with scratch(root, "query") as folder:
            # The shipped event log source over a scratch log: a new query's first batch otherwise pays for
            # the Python streaming source's runner and its readers' imports (2.6 s of 5.2 s on this machine).
            with EventLogWriter(folder.child("in").uri) as writer:
                writer.append({"offset": i, "key": f"k{i % 13}", "value": i, "ts": 0.0} for i in range(200))
            source = spark.readStream.format(SOURCE_NAME).option("path", folder.child("in").uri).load()
            initial = spark.createDataFrame([(f"k{i}", 1) for i in range(0, 26, 2)], "key STRING, n LONG")
            query = (
                source.groupBy("key")
                .transformWithState(
                    _Count(), "key STRING, n LONG", "Update", "None", initialState=initial.groupBy("key")
                )
                .writeStream.outputMode("update")
                .foreachBatch(_ScratchParquet(folder.child("out").uri))
                .queryName(WARM_UP_QUERY)
                .option("checkpointLocation", folder.child("checkpoint").uri)
                .trigger(availableNow=True)
                .start()
            )
            query.awaitTermination(120)
            if query.isActive:
                query.stop()
        log.info("warm-up query ran (%s partitions)", partitions)
    # the warm-up is an optimisation: a failure costs its time, never the standby
    except Exception:  # noqa: BLE001
        log.warning("the standby's warm-up query failed; the first batch will pay for it", exc_info=True)


#: Set once :func:`warm_export` has run in this driver: its export on stop runs warm.
EXPORT_WARMED = threading.Event()
_EXPORT_LOCK = threading.Lock()


def warm_export(spark: Any, root: JobRoot) -> float | None:
    """Pay for the export path's first use in this JVM in advance: a tiny state (a streaming aggregation
    over 16 made-up rows, one partition, the session's state store) built and exported in a scratch folder
    of ``root`` (:func:`scratch`), in a session of its own (its confs, its query manager). A driver's export
    on stop is otherwise the first use of Spark's state reader in its JVM: 1.5-1.7 s for 2,000 keys, against
    0.3 s once any state was read (2026-12-02); that second is on the redeploy's critical path (stop request
    → go). Nothing of the job is read or written; the scratch folder is removed. The seconds it took, or None
    (already warm, or it failed: an optimisation, never a failure of the driver)."""
    from airflow_checkpoint_provider.checkpoint.inspector import PROVIDER_CONF
    from airflow_checkpoint_provider.runtime.export import export_snapshot

    with _EXPORT_LOCK:
        if EXPORT_WARMED.is_set():
            return None
        started = time.monotonic()
        try:
            with scratch(root, "export") as folder:
                own = spark.newSession()
                own.conf.set("spark.sql.shuffle.partitions", "1")
                provider = spark.conf.get(PROVIDER_CONF, None)
                if provider:
                    own.conf.set(PROVIDER_CONF, provider)
                own.range(16).select(
                    (F.col("id") % 8).cast("string").alias("key"), F.col("id").alias("value")
                ).write.parquet(folder.child("in").uri)
                job = JobRoot(folder.child("job"), job="warm-up")
                query = (
                    own.readStream.schema("key STRING, value BIGINT")
                    .parquet(folder.child("in").uri)
                    .groupBy("key")
                    .agg(F.count("*").alias("n"), F.sum("value").alias("total"))
                    .writeStream.outputMode("update")
                    .format("noop")
                    .queryName(WARM_EXPORT_QUERY)
                    .option("checkpointLocation", job.checkpoint(1).uri)
                    .trigger(availableNow=True)
                    .start()
                )
                query.awaitTermination(120)
                if query.isActive:
                    query.stop()
                export_snapshot(
                    own, job.location.uri, 1, code_version="warm-up", job_name="warm-up", state_rows=8
                )
            EXPORT_WARMED.set()
            seconds = time.monotonic() - started
            log.info("export path warmed in %.1fs (a tiny state exported in %s)", seconds, folder.uri)
            return seconds
        # an optimisation: a failure costs its time (and a cold export on stop), never the driver
        except Exception:  # noqa: BLE001
            log.info("warming the export path failed; the export on stop will pay for it", exc_info=True)
            return None
