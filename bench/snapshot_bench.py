"""Snapshot benchmark: export time vs a plain Parquet write of the same rows, and initial-state load time.

    bash ./scripts/bench.sh snapshot                 # 100k and 1M keys
    bash ./scripts/bench.sh snapshot --keys 5000000  # by hand: 5M keys (about 10 minutes of loading)

For each key count K it builds a real state of K keys (a streaming aggregation, RocksDB, in one local[2]
session), then measures, in the same run:

- ``export``: :func:`export_snapshot` end to end (state-metadata, statestore read, Parquet write, SHA-256 of
every
  file, manifest);
- ``plain_write``: ``spark.range(K)`` shaped like the state, written as Parquet — the floor for the export;
- ``seed_load``: the v3 counter's query shape (Spark's streaming aggregation over the events unioned with the
  snapshot read as a file stream, ``ManagedContext.seed_stream``): time from start to its first committed
  batch, and the marginal rate (keys over the time beyond the same query's start with an empty seed); the
  same on Spark's in-memory state store (``HDFSBackedStateStoreProvider``, which a launch may choose instead
  of the runtime's RocksDB), up to ``--in-memory-max-keys``;
- ``tws_load``: a Python transformWithState query (the v1 counter) started with the snapshot as
``initialState``
  (up to ``--tws-max-keys``: it loads a few thousand keys per second).

Prints a table and writes ``bench/results/snapshot_bench.json``. Ratios, not absolute numbers, are the point:
the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from airflow_checkpoint_provider.checkpoint.inspector import PROVIDER_CONF as PROVIDER  # noqa: E402
from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot  # noqa: E402
from airflow_checkpoint_provider.runtime import eventlog  # noqa: E402
from airflow_checkpoint_provider.runtime.eventlog import EventLogWriter  # noqa: E402
from airflow_checkpoint_provider.runtime.export import (  # noqa: E402
    ARROW_MAX_ROWS,
    checkpoint_state_rows,
    export_snapshot,
    state_rows_of,
)
from airflow_checkpoint_provider.runtime.managed import ROCKSDB  # noqa: E402

#: Spark's own state store, which keeps the state in the executors' memory (its default without this runtime).
IN_MEMORY = "org.apache.spark.sql.execution.streaming.state.HDFSBackedStateStoreProvider"


def session(local_dir: Path, app_name: str = "snapshot-bench") -> Any:
    """The benchmarks' local[2] session: RocksDB state, 4 shuffle partitions, 4 GiB driver, quiet."""
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[2]")
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.local.dir", str(local_dir))
        .config("spark.driver.memory", "4g")
        .config("spark.sql.streaming.stateStore.providerClass", ROCKSDB)
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    eventlog.register(spark)
    return spark


def build_state(spark: Any, work: Path, keys: int) -> tuple[Path, float]:
    """A streaming aggregation over K distinct keys: its checkpoint holds K state rows after one batch.
    ``STATE_ROWS[-1]``: the rows its last progress counted (what a stopping driver passes the export)."""
    from pyspark.sql import functions as F

    src = work / "src"
    (
        spark.range(keys)
        .select(F.format_string("k%09d", "id").alias("key"), (F.col("id") % 97).alias("value"))
        .write.mode("overwrite")
        .parquet(str(src))
    )
    job = work / "job"
    started = time.perf_counter()
    stream = spark.readStream.schema("key string, value bigint").parquet(str(src))
    q = (
        stream.groupBy("key")
        .agg(F.count("*").alias("n"), F.sum("value").alias("total"))
        .writeStream.outputMode("update")
        .format("noop")
        .option("checkpointLocation", JobRoot(job).checkpoint(1).uri)
        .start()
    )
    q.processAllAvailable()
    q.stop()
    STATE_ROWS.append(state_rows_of(q.lastProgress, 0))
    return job, time.perf_counter() - started


STATE_ROWS: list[int | None] = []


def plain_write(spark: Any, work: Path, keys: int) -> float:
    from pyspark.sql import functions as F

    df = spark.range(keys).select(
        F.format_string("k%09d", "id").alias("key"),
        F.col("id").alias("count"),
        (F.col("id") * 3).alias("sum"),
    )
    started = time.perf_counter()
    df.write.mode("overwrite").parquet(str(work / "plain"))
    return time.perf_counter() - started


def load(spark: Any, work: Path, job: Path, snapshot_id: str) -> float:
    """Start the v1 counter with the snapshot as initial state; time to its first committed batch."""
    from pyspark.sql import functions as F

    from dags.apps.event_counter_v1 import OUTPUT, CounterV1

    part = job / "snapshots" / snapshot_id / "parts" / "op0"
    initial = (
        spark.read.parquet(str(part))
        .select("key", F.col("count").alias("n"), F.col("sum").alias("total"))
        .groupBy("key")
    )
    one = work / "one-event"
    spark.createDataFrame([("k000000000", 1)], "key string, value bigint").write.mode("overwrite").parquet(
        str(one)
    )
    events = spark.readStream.schema("key string, value bigint").parquet(str(one))
    out = events.groupBy("key").transformWithState(
        CounterV1(), OUTPUT, "Update", "None", initialState=initial
    )
    started = time.perf_counter()
    q = (
        out.writeStream.outputMode("update")
        .format("noop")
        .option("checkpointLocation", str(work / "v1-checkpoint"))
        .start()
    )
    q.processAllAvailable()
    q.stop()
    return time.perf_counter() - started


def load_seeded(
    spark: Any,
    work: Path,
    job: Path,
    snapshot_id: str,
    part_dir: Path | None = None,
    *,
    prestart: bool = False,
    events_source: str = "parquet",
    provider: str | None = None,
) -> float:
    """Start the v3 counter's query shape: Spark's streaming aggregation over the events unioned with the
    snapshot read as a file stream (``ManagedContext.seed_stream``); time to its first committed batch.

    ``prestart``: a prototype of a standby that starts its query before the go. The query starts over two
    empty folders (the seed's and the events'), so it can read nothing, load nothing and commit nothing; the
    go hard-links the snapshot's files and the event file into them. Timed from the go; the time the query
    took to start and reach its first idle poll is in ``LAST_PRESTART``.

    ``events_source="eventlog"``: the events come through the shipped Python streaming source (what
    ``ctx.read_eventlog`` reads), whose runner is a Python process of its own per query; pre-started, its log
    folder is empty until the go appends the event.

    ``provider``: the state store for this query's new checkpoint (default: the session's, RocksDB)."""
    from pyspark.sql import functions as F

    from dags.apps.event_counter_v3 import SEED, seed_rows

    part = part_dir or job / "snapshots" / snapshot_id / "parts" / "op0"
    schema = spark.read.parquet(str(part)).schema
    one = work / "one-event-v3"
    spark.createDataFrame([("k000000000", 1)], "key string, value bigint").write.mode("overwrite").parquet(
        str(one)
    )
    seed_dir, events_dir = part, one
    log_dir = work / "eventlog"
    if prestart:
        seed_dir, events_dir = work / "seed-at-go", work / "events-at-go"
        seed_dir.mkdir()
        events_dir.mkdir()
        log_dir.mkdir()
    elif events_source == "eventlog":
        with EventLogWriter(str(log_dir)) as writer:
            writer.append([{"key": "k000000000", "value": 1, "ts": 0.0}])
    seed = seed_rows(
        spark.readStream.schema(schema)
        .parquet(str(seed_dir))
        .select("key", F.col("count").alias("n"), F.col("sum").alias("total"))
    )
    if events_source == "eventlog":
        reader = spark.readStream.format(eventlog.SOURCE_NAME).option("path", str(log_dir)).load()
    else:
        reader = spark.readStream.schema("key string, value bigint").parquet(str(events_dir))
    events = reader.select(
        "key",
        F.lit(1).cast("bigint").alias("n"),
        F.col("value").alias("total"),
        F.col("value").alias("max"),
        F.lit(1).alias("touched"),
    )
    assert seed.schema.simpleString() == spark.createDataFrame([], SEED).schema.simpleString()
    counts = (
        events.unionByName(seed)
        .groupBy("key")
        .agg(
            F.sum("n").alias("n"),
            F.sum("total").alias("total"),
            F.max("max").alias("max"),
            F.max("touched").alias("touched"),
        )
    )
    started = time.perf_counter()
    checkpoint = work / "v3-checkpoint"
    spark.conf.set(PROVIDER, provider or ROCKSDB)
    try:
        q = (
            counts.writeStream.outputMode("update")
            .foreachBatch(lambda df, _: df.where("touched = 1").write.mode("overwrite").format("noop").save())
            .option("checkpointLocation", str(checkpoint))
            .start()
        )
    finally:
        spark.conf.set(PROVIDER, ROCKSDB)
    if prestart:
        # Started and polling. Over file sources with nothing to read, Spark plans no batch. A Python data
        # source (the shipped event log) always has an offset, and a query with no committed offsets takes
        # that as new data: it plans and commits an empty batch 0 before the go (MicroBatchExecution's
        # isNewDataAvailable), so the pre-start is ruled out for it; measured anyway, and counted.
        while q.status["isTriggerActive"] or q.status["message"] != "Waiting for data to arrive":
            time.sleep(0.005)
        committed = [f for f in (checkpoint / "commits").glob("*") if f.name[0].isdigit()]
        LAST_PRESTART_BATCHES.append(len(committed))
        if events_source == "parquet":  # the log folders exist from the start (Spark creates them)
            for name in ("offsets", "commits"):
                assert not [f for f in (checkpoint / name).glob("*") if f.name[0].isdigit()], name
            assert q.lastProgress is None or q.lastProgress["numInputRows"] == 0
        LAST_PRESTART.append(time.perf_counter() - started)
        started = time.perf_counter()  # the go
        for f in part.iterdir():
            if f.name.endswith(".parquet"):
                os.link(f, seed_dir / f.name)
        if events_source == "eventlog":
            with EventLogWriter(str(log_dir)) as writer:
                writer.append([{"key": "k000000000", "value": 1, "ts": 0.0}])
        else:
            for f in one.iterdir():
                if f.name.endswith(".parquet"):
                    os.link(f, events_dir / f.name)
    q.processAllAvailable()
    q.stop()
    return time.perf_counter() - started


#: Each pre-started query's time from ``start()`` to its first idle poll (off a standby's critical path).
LAST_PRESTART: list[float] = []
#: How many batches each pre-started query committed before its go (0 over file sources; 1 with the
#: event log).
LAST_PRESTART_BATCHES: list[int] = []


def spread(values: list[float], digits: int = 2) -> dict[str, float]:
    """Median, lowest and highest of repeated measurements."""
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
    }


def run(
    keys_list: list[int],
    out: Path,
    tws_max_keys: int = 1_000_000,
    repeat: int = 1,
    in_memory_max_keys: int = 1_000_000,
) -> dict[str, Any]:
    base = Path(tempfile.mkdtemp(prefix="acp-bench-"))
    spark = session(base / "spark-local")
    rows = []
    try:
        spark.range(1000).write.mode("overwrite").parquet(str(base / "warmup"))  # JVM warm-up, not measured
        warm, _ = build_state(spark, base / "warmup-state", 1000)
        warm_id = export_snapshot(
            spark, warm, 1, code_version="bench"
        ).snapshot_id  # the state reader's classes too
        empty = (
            base / "empty-seed"
        )  # the same query over a seed with no rows: what a start costs without state
        spark.read.parquet(str(warm / "snapshots" / warm_id / "parts" / "op0")).limit(0).write.parquet(
            str(empty)
        )
        load_seeded(spark, base / "warmup-load", warm, warm_id)
        load_seeded(spark, base / "warmup-load-mem", warm, warm_id, provider=IN_MEMORY)
        (base / "warmup-load-el").mkdir()
        load_seeded(spark, base / "warmup-load-el", warm, warm_id, events_source="eventlog")
        fixed_s = statistics.median(
            load_seeded(spark, base / f"empty-{i}", warm, warm_id, empty) for i in range(3)
        )
        print(
            f"seeded start with an empty seed (fixed cost, subtracted for the marginal rate): {fixed_s:.2f}s"
        )
        for keys in keys_list:
            work = base / f"k{keys}"
            job, build_s = build_state(spark, work, keys)
            # each measurement ``repeat`` times, interleaved (the state is built once): the median is
            # reported, the spread beside it
            trials: list[dict[str, Any]] = []
            for i in range(repeat):
                trial = work / f"trial-{i}"
                trial.mkdir()
                plain_s = plain_write(spark, trial, keys)
                started = time.perf_counter()
                manifest = export_snapshot(spark, job, 1, code_version="bench", reuse=False)
                export_s = time.perf_counter() - started
                assert manifest.rows == keys, (manifest.rows, keys)
                # as a stopping driver exports (it knows its state rows from its last progress: the Arrow
                # path up to ARROW_MAX_ROWS); the plain write measured again beside it
                plain_driver_s = plain_write(spark, trial / "again", keys)
                started = time.perf_counter()
                on_stop = export_snapshot(
                    spark, job, 1, code_version="bench", reuse=False, state_rows=STATE_ROWS[-1]
                )
                export_driver_s = time.perf_counter() - started
                assert on_stop.rows == keys, (on_stop.rows, keys)
                seeded_s = load_seeded(spark, trial, job, manifest.snapshot_id)
                (trial / "mem").mkdir()
                in_memory_s = (
                    load_seeded(spark, trial / "mem", job, manifest.snapshot_id, provider=IN_MEMORY)
                    if keys <= in_memory_max_keys
                    else None
                )
                (trial / "pre").mkdir()
                prestarted_s = load_seeded(spark, trial / "pre", job, manifest.snapshot_id, prestart=True)
                prestart_s = LAST_PRESTART[-1]
                # the same two with the events through the shipped Python source (ctx.read_eventlog)
                for sub in ("el", "el-pre"):
                    (trial / sub).mkdir()
                seeded_el_s = load_seeded(
                    spark, trial / "el", job, manifest.snapshot_id, events_source="eventlog"
                )
                prestarted_el_s = load_seeded(
                    spark,
                    trial / "el-pre",
                    job,
                    manifest.snapshot_id,
                    prestart=True,
                    events_source="eventlog",
                )
                load_s = (
                    load(spark, trial, job, manifest.snapshot_id)
                    if keys <= tws_max_keys and i == 0  # minutes at 1M keys: once (tws_load_bench repeats it)
                    else None
                )
                trials.append(
                    {
                        "plain_s": plain_s,
                        "export_s": export_s,
                        "ratio": plain_s / export_s,
                        "export_driver_s": export_driver_s,
                        "ratio_driver": plain_driver_s / export_driver_s,
                        "seeded_s": seeded_s,
                        "in_memory_s": in_memory_s,
                        "prestarted_s": prestarted_s,
                        "prestart_s": prestart_s,
                        "seeded_el_s": seeded_el_s,
                        "prestarted_el_s": prestarted_el_s,
                        "prestart_el_s": LAST_PRESTART[-1],
                        "prestart_el_batches": LAST_PRESTART_BATCHES[-1],
                        "load_s": load_s,
                        "manifest": manifest,
                    }
                )
            manifest = trials[0]["manifest"]
            plain_s = statistics.median(t["plain_s"] for t in trials)
            export_s = statistics.median(t["export_s"] for t in trials)
            seeded_s = statistics.median(t["seeded_s"] for t in trials)
            load_s = trials[0]["load_s"]
            size = sum(f.size for p in manifest.parts.values() for f in p.files)
            rows.append(
                {
                    "keys": keys,
                    "repeat": repeat,
                    "build_state_s": round(build_s, 2),
                    "plain_write_s": round(plain_s, 2),
                    "export_s": round(export_s, 2),
                    "export_write_s": manifest.export_seconds,
                    "export_rate_vs_plain": round(statistics.median(t["ratio"] for t in trials), 2),
                    "export_rate_vs_plain_spread": spread([t["ratio"] for t in trials]),
                    # the export as the stopping driver runs it (knowing its state rows)
                    # the export from outside (no driver's hint) sizes the state from RocksDB's metadata
                    "export_checkpoint_rows": checkpoint_state_rows(JobRoot(job).checkpoint(1), 0),
                    "export_on_stop_s": round(statistics.median(t["export_driver_s"] for t in trials), 2),
                    "export_on_stop_arrow": STATE_ROWS[-1] is not None and STATE_ROWS[-1] <= ARROW_MAX_ROWS,
                    "export_on_stop_rate_vs_plain": round(
                        statistics.median(t["ratio_driver"] for t in trials), 2
                    ),
                    "export_on_stop_rate_vs_plain_spread": spread([t["ratio_driver"] for t in trials]),
                    "snapshot_mb": round(size / 1e6, 1),
                    "seed_load_s": round(seeded_s, 2),
                    "seed_keys_per_s": int(keys / seeded_s),
                    "seed_keys_per_s_spread": spread([keys / t["seeded_s"] for t in trials], 0),
                    "seed_fixed_s": round(fixed_s, 2),
                    "seed_marginal_keys_per_s": int(keys / max(seeded_s - fixed_s, 1e-3)),
                    # the same on Spark's in-memory state store (a launch's choice; RocksDB is the default)
                    **(
                        {
                            "seed_in_memory_s": round(statistics.median(t["in_memory_s"] for t in trials), 2),
                            "seed_in_memory_keys_per_s": int(
                                keys / statistics.median(t["in_memory_s"] for t in trials)
                            ),
                            "seed_in_memory_keys_per_s_spread": spread(
                                [keys / t["in_memory_s"] for t in trials], 0
                            ),
                        }
                        if trials[0]["in_memory_s"] is not None
                        else {"seed_in_memory_s": None, "seed_in_memory_keys_per_s": None}
                    ),
                    # the prototype: the query started before the go (bench only; the runtime does not yet)
                    "seed_prestarted_s": round(statistics.median(t["prestarted_s"] for t in trials), 2),
                    "seed_prestarted_keys_per_s": int(
                        keys / statistics.median(t["prestarted_s"] for t in trials)
                    ),
                    "seed_prestarted_keys_per_s_spread": spread(
                        [keys / t["prestarted_s"] for t in trials], 0
                    ),
                    "prestart_s": round(statistics.median(t["prestart_s"] for t in trials), 2),
                    # events through the Python source: started at the go (as today) and before it
                    "seed_eventlog_s_spread": spread([t["seeded_el_s"] for t in trials]),
                    "seed_eventlog_keys_per_s": int(
                        keys / statistics.median(t["seeded_el_s"] for t in trials)
                    ),
                    "seed_eventlog_prestarted_s_spread": spread([t["prestarted_el_s"] for t in trials]),
                    "seed_eventlog_prestarted_keys_per_s": int(
                        keys / statistics.median(t["prestarted_el_s"] for t in trials)
                    ),
                    "seed_eventlog_prestarted_keys_per_s_spread": spread(
                        [keys / t["prestarted_el_s"] for t in trials], 0
                    ),
                    "prestart_eventlog_s": round(statistics.median(t["prestart_el_s"] for t in trials), 2),
                    "prestart_eventlog_batches_before_go": max(t["prestart_el_batches"] for t in trials),
                    "tws_load_s": round(load_s, 2) if load_s else None,
                    "tws_keys_per_s": int(keys / load_s) if load_s else None,
                }
            )
            print_row(rows[-1])
            shutil.rmtree(work, ignore_errors=True)
    finally:
        spark.stop()
        shutil.rmtree(base, ignore_errors=True)
    result = {
        "benchmark": "snapshot",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "rows": rows,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    return result


HEADER = (
    "keys",
    "plain_write_s",
    "export_s",
    "export_rate_vs_plain",
    "export_on_stop_rate_vs_plain",
    "snapshot_mb",
    "seed_load_s",
    "seed_keys_per_s",
    "seed_marginal_keys_per_s",
    "seed_in_memory_keys_per_s",
    "tws_load_s",
    "tws_keys_per_s",
)


def print_row(row: dict[str, Any]) -> None:
    if not getattr(print_row, "started", False):
        print(" | ".join(f"{h:>15}" for h in HEADER))
        print_row.started = True  # type: ignore[attr-defined]
    print(" | ".join(f"{'-' if row[h] is None else row[h]:>15}" for h in HEADER), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument(
        "--tws-max-keys",
        type=int,
        default=1_000_000,
        help="load through Python transformWithState only up to this many keys (5M takes ~10 min)",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="measure export, plain write and seeded load this many times"
    )
    parser.add_argument(
        "--in-memory-max-keys",
        type=int,
        default=1_000_000,
        help="seed Spark's in-memory state store only up to this many keys (it holds them in the heap)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "snapshot_bench.json")
    args = parser.parse_args(argv)
    result = run(args.keys, args.out, args.tws_max_keys, args.repeat, args.in_memory_max_keys)
    print(f"wrote {args.out} ({len(result['rows'])} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
