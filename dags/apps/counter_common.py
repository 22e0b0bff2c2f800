"""Shared parts of the event counter examples: arguments and the idempotent per-batch sink.

The sink writes each batch's output to ``<output>/g=<generation>/batch=<id>/`` with Spark's Parquet commit
protocol (``overwrite``): a replayed batch replaces its own folder, and a batch folder without ``_SUCCESS`` is
a partial write that never committed. Batch ids restart at 0 in every generation, so the generation is part of
the key — a sink keyed on batch id alone would drop the new generation's first batches as duplicates.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any


def app_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", required=True, help="event log folder")
    parser.add_argument("--output", required=True, help="sink folder")
    parser.add_argument("--max-records-per-batch", type=int, default=0)
    parser.add_argument("--trigger-seconds", type=float, default=1.0)
    parser.add_argument(
        "--stop-method",
        choices=("fence", "gate"),
        default="fence",
        help="fence: the shipped source stops admitting data; gate: read the log as any other "
        "source would be read, and let the foreachBatch gate refuse the next batch",
    )
    parser.add_argument(
        "--slow-batch-seconds", type=float, default=0.0, help="testing: sleep inside each batch"
    )
    parser.add_argument(
        "--hold-while",
        default="",
        help="testing: each batch waits (up to 5 minutes) while this file exists, before its sink writes",
    )
    parser.add_argument(
        "--migration",
        default="auto",
        help="how to turn a snapshot's state into this code's state: auto (the app's default), none, "
        "or a named migration the app offers (v2: v1_to_v2; v1: v2_to_v1)",
    )
    return parser.parse_args(list(argv))


def _args_and_migration(
    argv: Sequence[str], code_version: str, migrations: dict[str, Callable[[Any], Any] | None] | None
) -> tuple[argparse.Namespace, Callable[[Any], Any] | None]:
    """The application's own arguments (after the launch contract) and the snapshot migration they name."""
    from airflow_checkpoint_provider.model.launch import parse_launch_args

    _, rest = parse_launch_args(argv)
    args = app_args(rest)
    offered = {"auto": None, "none": None, **(migrations or {})}
    if args.migration not in offered:
        raise SystemExit(
            f"{code_version}: unknown migration {args.migration!r} (offered: {', '.join(sorted(offered))})"
        )
    return args, offered[args.migration]


def run_counter(
    argv: Sequence[str],
    *,
    processor: Callable[[], Any],
    state: Any,
    output: Any,
    code_version: str,
    migrations: dict[str, Callable[[Any], Any] | None] | None = None,
    wrap_sink: Callable[[Callable[[Any, int], None]], Callable[[Any, int], None]] | None = None,
) -> int:
    """The managed query both counters share: event log -> transformWithState(key) -> idempotent sink.

    :param migrations: the snapshot migrations this code offers, by name (``auto`` is the default one).
    :param wrap_sink: testing: wraps the per-batch sink function (the tests' bad releases use it).
    """
    from airflow_checkpoint_provider.runtime import managed

    args, migrate = _args_and_migration(argv, code_version, migrations)

    def build(ctx: managed.ManagedContext) -> Any:
        options = {"maxRecordsPerBatch": args.max_records_per_batch} if args.max_records_per_batch else {}
        if args.stop_method == "fence":
            events = ctx.read_eventlog(args.events, **options)
        else:  # how any other source (Kafka, files, ...) is read: starting offsets only, no fence
            events = (
                ctx.spark.readStream.format("eventlog")
                .option("path", args.events)
                .options(**ctx.source_options("eventlog"))
                .options(**options)
                .load()
            )
        counts = events.groupBy("key").transformWithState(
            statefulProcessor=processor(),
            outputStructType=output,
            outputMode="Update",
            timeMode="None",
            initialState=ctx.initial_state(None, "key", expect=state, migrate=migrate),
        )
        sink = idempotent_sink(
            ctx.output(args.output), ctx.generation, args.slow_batch_seconds, args.hold_while
        )
        if wrap_sink is not None:
            sink = wrap_sink(sink)
        return (
            counts.writeStream.outputMode("update")
            .foreachBatch(ctx.gated(sink))
            .trigger(processingTime=f"{args.trigger_seconds} seconds")
        )

    return managed.run(build, argv=argv, app_name=code_version)


def run_dstream_counter(
    argv: Sequence[str],
    *,
    update: Callable[[list[Any], Any], Any],
    state: str,
    code_version: str,
    migrations: dict[str, Callable[[Any], Any] | None] | None = None,
) -> int:
    """The managed DStream job both DStream counters share: event log -> updateStateByKey(key) with the
    snapshot as initialRDD -> idempotent sink of the keys each batch touched.

    :param update: the ``updateStateByKey`` function: (new values, old state or None) -> new state tuple.
    :param state: the state tuple's columns as DDL (what snapshots export after ``key``).
    """
    from airflow_checkpoint_provider.runtime import dstreams

    args, migrate = _args_and_migration(argv, code_version, migrations)
    schema = f"key STRING, {state}"
    slow_s, hold_while = args.slow_batch_seconds, args.hold_while

    def build(ctx: dstreams.DStreamContext) -> None:
        generation = ctx.generation
        output = ctx.output(args.output)  # a dry run's scratch output, else the sink itself
        events = ctx.read_eventlog(args.events)
        pairs = events.map(lambda e: (e["key"], e["value"]))
        counts = ctx.update_state_by_key(pairs, update, part="counts", schema=state, migrate=migrate)
        # Only the keys this batch touched are written (the state stream holds every key, every batch).
        touched = counts.transformWith(
            lambda s, b: s.join(b.keys().distinct().map(lambda k: (k, 1))).mapValues(lambda v: v[0]), pairs
        )

        def write(time: Any, rdd: Any) -> None:
            from pyspark.sql import SparkSession

            from airflow_checkpoint_provider.runtime.dstreams import batch_ms

            slow_down(slow_s, hold_while)
            rows = [(k, *v) for k, v in rdd.collect()]  # the keys this batch touched: few, one job
            if not rows:
                return
            spark = SparkSession.builder.getOrCreate()
            folder = f"{output}/g={generation}/batch={batch_ms(time)}"
            spark.createDataFrame(rows, schema).write.mode("overwrite").parquet(folder)

        touched.foreachRDD(ctx.gated(write))

    return dstreams.run(
        build,
        argv=argv,
        app_name=code_version,
        batch_seconds=args.trigger_seconds,
        max_records_per_file=args.max_records_per_batch or 5000,
    )


def idempotent_sink(
    output: str, generation: int, slow_s: float = 0.0, hold_while: str = ""
) -> Callable[[Any, int], None]:
    def write(df: Any, batch_id: int) -> None:
        slow_down(slow_s, hold_while)
        df.write.mode("overwrite").parquet(f"{output}/g={generation}/batch={batch_id}")

    return write


def slow_down(slow_s: float, hold_while: str) -> None:
    """Testing: sleep ``slow_s`` seconds, then wait while file ``hold_while`` exists (5 minutes at most)."""
    import os
    import time

    if slow_s:
        time.sleep(slow_s)
    deadline = time.monotonic() + 300
    while hold_while and os.path.exists(hold_while) and time.monotonic() < deadline:
        time.sleep(0.2)


def counter_state(df: Any) -> Any:
    """Any counter's exported state -> ``(key, n, total[, max])``: v1 and v2 export their state variable
    ``counts`` with these names; v3 (Spark's aggregation) exports its buffers ``(sum, sum_2, max, max_2)`` =
    count, sum, maximum and "touched", in the order its query declares them."""
    from pyspark.sql import functions as F

    if "sum" in df.columns and "n" not in df.columns:
        return df.select(
            "key", F.col("sum").alias("n"), F.col("sum_2").alias("total"), F.col("max").alias("max")
        )
    return df
