"""Make real Spark checkpoints for the tests, and record what Spark itself reported while making them.

Used by the integration tests with the shared SparkSession, and runnable as a script to look at the files:
``python -m tests.support.spark_checkpoints <out dir>``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from airflow_checkpoint_provider.runtime import eventlog

ROCKSDB = "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"


@dataclass
class Made:
    """A checkpoint and what Spark reported for each batch it ran."""

    checkpoint: str
    progress: list[dict[str, Any]] = field(default_factory=list)

    @property
    def last_batch(self) -> int:
        return int(self.progress[-1]["batchId"])

    def end_offsets(self, batch: int) -> list[Any]:
        for p in self.progress:
            if int(p["batchId"]) == batch:
                return [s["endOffset"] for s in p["sources"]]
        raise KeyError(batch)


def write_events(log: str, n: int, keys: int = 5, start: int = 0) -> None:
    with eventlog.EventLogWriter(log, segment_records=max(1, n // 3 or 1)) as w:
        w.append({"key": f"k{(start + i) % keys}", "value": start + i, "ts": 0.0} for i in range(n))


def _run_until_caught_up(query_builder: Any, checkpoint: str) -> Made:
    query = query_builder.option("checkpointLocation", checkpoint).start()
    try:
        query.processAllAvailable()
    finally:
        query.stop()
    progress = [json.loads(p.json) for p in query.recentProgress if p.numInputRows or p.batchId is not None]
    # recentProgress may contain idle reports with the same batch id; keep the last one per batch.
    by_batch: dict[int, dict[str, Any]] = {}
    for p in progress:
        by_batch[int(p["batchId"])] = p
    return Made(checkpoint=checkpoint, progress=[by_batch[b] for b in sorted(by_batch)])


def make_aggregation(spark: Any, root: str, events: int = 30, per_batch: int = 10) -> Made:
    """A streaming aggregation (count, sum per key) over the event log: offset log v1, HDFS state store."""
    from pyspark.sql import functions as F

    log = os.path.join(root, "agg-log")
    write_events(log, events)
    eventlog.register(spark)
    df = (
        spark.readStream.format(eventlog.SOURCE_NAME)
        .option("path", log)
        .option("maxRecordsPerBatch", per_batch)
        .load()
    )
    agg = df.groupBy("key").agg(F.count("*").alias("n"), F.sum("value").alias("total"))
    builder = agg.writeStream.outputMode("update").format("noop")
    return _run_until_caught_up(builder, os.path.join(root, "agg-checkpoint"))


def make_transform_with_state(spark: Any, root: str, events: int = 30, per_batch: int = 10) -> Made:
    """A transformWithState query over two event logs: offset log v2, RocksDB, checkpoint format v2."""
    from pyspark.sql.streaming.stateful_processor import StatefulProcessor
    from pyspark.sql.types import LongType, StringType, StructField, StructType

    state_schema = StructType([StructField("n", LongType()), StructField("total", LongType())])
    out_schema = StructType(
        [StructField("key", StringType()), StructField("n", LongType()), StructField("total", LongType())]
    )

    class Counter(StatefulProcessor):  # type: ignore[misc]
        def init(self, handle: Any) -> None:
            self.state = handle.getValueState("counts", state_schema)

        def handleInputRows(self, key: Any, rows: Iterator[Any], timerValues: Any) -> Iterator[Any]:
            from pyspark.sql import Row

            n, total = self.state.get() or (0, 0)
            for row in rows:
                n += 1
                total += row.value
            self.state.update((n, total))
            yield Row(key=key[0], n=n, total=total)

        def close(self) -> None:
            pass

    log_a = os.path.join(root, "tws-log-a")
    log_b = os.path.join(root, "tws-log-b")
    write_events(log_a, events)
    write_events(log_b, events // 2, start=1000)
    eventlog.register(spark)

    def read(log: str) -> Any:
        return (
            spark.readStream.format(eventlog.SOURCE_NAME)
            .option("path", log)
            .option("maxRecordsPerBatch", per_batch)
            .load()
        )

    saved = {k: spark.conf.get(k, None) for k in _V2_CONF}
    for k, v in _V2_CONF.items():
        spark.conf.set(k, v)
    try:
        df = read(log_a).unionByName(read(log_b))
        out = df.groupBy("key").transformWithState(
            statefulProcessor=Counter(), outputStructType=out_schema, outputMode="Update", timeMode="None"
        )
        builder = out.writeStream.outputMode("update").format("noop")
        return _run_until_caught_up(builder, os.path.join(root, "tws-checkpoint"))
    finally:
        for k, v in saved.items():
            if v is None:
                spark.conf.unset(k)
            else:
                spark.conf.set(k, v)


_V2_CONF = {
    "spark.sql.streaming.stateStore.providerClass": ROCKSDB,
    "spark.sql.streaming.offsetLog.formatVersion": "2",
    "spark.sql.streaming.stateStore.checkpointFormatVersion": "2",
}


if __name__ == "__main__":
    from pyspark.sql import SparkSession

    out = os.path.abspath(sys.argv[1])
    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "3")
        .getOrCreate()
    )
    for made in (make_aggregation(spark, out), make_transform_with_state(spark, out)):
        print(made.checkpoint, made.last_batch, [made.end_offsets(b) for b in range(made.last_batch + 1)])
