"""Event counter v3: the same per-key count, sum and maximum as v2, kept by Spark's own streaming aggregation
instead of a Python ``transformWithState`` — and its state loads at disk speed.

Why: loading a snapshot as ``initialState`` of a Python ``transformWithState`` costs a few Python calls per
key (thousands of keys per second). Count, sum and max are *mergeable*: the state of a key is the aggregate of
its events, and aggregating the old state together with new events gives the same result. So v3 takes the
snapshot as *input* (:meth:`ManagedContext.seed_stream`): in the generation's first batch the snapshot's rows
are unioned with the events and Spark's aggregation folds both, at the speed of a Parquet scan. Spark's
checkpoint makes the seed exactly-once (a restart after a commit reads nothing).

State part (as exported): the aggregation's buffers ``op0``: ``(key, sum, sum_2, max, max_2)`` = count, sum,
maximum and "touched by an event". Its migration ``auto`` reads a v1 or v2 snapshot (``counts``) or a v3 one.

Seed rows carry ``touched = 0``: a key that only the seed touched is not written to the sink again (its output
has not changed since the old generation wrote it).
"""

from __future__ import annotations

import sys
from typing import Any

from dags.apps.counter_common import app_args, counter_state, idempotent_sink

CODE_VERSION = "event-counter-v3"
SEED = "key STRING, n BIGINT, total BIGINT, max BIGINT, touched INT"


def seed_rows(df: Any) -> Any:
    """Any counter snapshot -> seed rows ``(key, n, total, max, touched=0)``."""
    from pyspark.sql import functions as F

    df = counter_state(df)
    if "max" not in df.columns:  # v1: no maximum was kept (see v2's migration)
        df = df.withColumn("max", F.lit(None).cast("bigint"))
    return df.select("key", "n", "total", "max", F.lit(0).alias("touched"))


def main(argv: list[str]) -> int:
    from pyspark.sql import functions as F

    from airflow_checkpoint_provider.model.launch import parse_launch_args
    from airflow_checkpoint_provider.runtime import managed

    _, rest = parse_launch_args(argv)
    args = app_args(rest)
    if args.migration not in ("auto", "none"):
        raise SystemExit(f"{CODE_VERSION}: unknown migration {args.migration!r} (offered: auto, none)")

    def build(ctx: managed.ManagedContext) -> Any:
        events = ctx.read_eventlog(args.events).select(
            "key",
            F.lit(1).cast("bigint").alias("n"),
            F.col("value").cast("bigint").alias("total"),
            F.col("value").cast("bigint").alias("max"),
            F.lit(1).alias("touched"),
        )
        seed = ctx.seed_stream(SEED, migrate=seed_rows)
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
        sink = idempotent_sink(
            ctx.output(args.output), ctx.generation, args.slow_batch_seconds, args.hold_while
        )

        def write(df: Any, batch_id: int) -> None:
            sink(df.where("touched = 1").drop("touched"), batch_id)

        return (
            counts.writeStream.outputMode("update")
            .foreachBatch(ctx.gated(write))
            .trigger(processingTime=f"{args.trigger_seconds} seconds")
        )

    return managed.run(build, argv=argv, app_name=CODE_VERSION)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
