"""What raises the load rate of a snapshot as a Python transformWithState ``initialState``?

    bash ./scripts/bench.sh tws_load                      # 100k keys, 3 rounds
    bash ./scripts/bench.sh tws_load --keys 200000 --rounds 5

State that is not a mergeable aggregate cannot be seeded through the input (``ctx.seed_stream``): it loads as
the ``initialState`` of a Python ``transformWithState``, which calls ``handleInitialState`` once per key. This
compares, in one local[2] session and interleaved round by round (ratios, not absolute numbers, are the point
on a shared machine), the v1 counter's query started with K keys as initial state and one event:

- ``row P=4``: the Row flavour (``transformWithState``) with 4 shuffle partitions — what the counters run;
- ``row P=2`` / ``row P=8``: as many partitions as cores, and twice as many as now;
- ``pandas P=4`` / ``pandas P=2``: the pandas flavour (``transformWithStateInPandas``), Arrow batches;
- ``pandas P=4 arrow 50k``: the same with ``spark.sql.execution.arrow.maxRecordsPerBatch`` = 50,000 (10,000 by
  default);

Time is counted from the query's start to its first committed batch; keys/s = K / that time. Prints a table
and writes ``bench/results/tws_load_bench.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from snapshot_bench import session  # noqa: E402

VARIANTS: list[tuple[str, str, int, dict[str, str]]] = [
    ("row P=4", "row", 4, {}),
    ("row P=2", "row", 2, {}),
    ("row P=8", "row", 8, {}),
    ("pandas P=4", "pandas", 4, {}),
    ("pandas P=2", "pandas", 2, {}),
    ("pandas P=4 arrow 50k", "pandas", 4, {"spark.sql.execution.arrow.maxRecordsPerBatch": "50000"}),
]


def pandas_counter() -> Any:
    """The v1 counter in the pandas flavour: the same state, one call per key with a pandas frame."""
    import pandas as pd
    from pyspark.sql.streaming.stateful_processor import StatefulProcessor
    from pyspark.sql.types import LongType, StructField, StructType

    state = StructType([StructField("n", LongType()), StructField("total", LongType())])

    class CounterPandas(StatefulProcessor):  # type: ignore[misc]
        def init(self, handle: Any) -> None:
            self.counts = handle.getValueState("counts", state)

        def handleInputRows(self, key: Any, rows: Iterator[Any], timerValues: Any) -> Iterator[Any]:
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

    return CounterPandas()


def load(
    spark: Any, work: Path, initial_path: Path, flavour: str, partitions: int, conf: dict[str, str]
) -> float:
    from dags.apps.event_counter_v1 import OUTPUT, CounterV1

    spark.conf.set("spark.sql.shuffle.partitions", str(partitions))
    for key, value in conf.items():
        spark.conf.set(key, value)
    try:
        initial = spark.read.parquet(str(initial_path)).groupBy("key")
        one = work / "one-event"
        events = spark.readStream.schema("key string, value bigint").parquet(str(one))
        grouped = events.groupBy("key")
        if flavour == "row":
            out = grouped.transformWithState(CounterV1(), OUTPUT, "Update", "None", initialState=initial)
        else:
            out = grouped.transformWithStateInPandas(
                pandas_counter(), OUTPUT, "Update", "None", initialState=initial
            )
        checkpoint = Path(tempfile.mkdtemp(dir=work, prefix="cp-"))
        started = time.perf_counter()
        q = (
            out.writeStream.outputMode("update")
            .format("noop")
            .option("checkpointLocation", str(checkpoint))
            .start()
        )
        q.processAllAvailable()
        q.stop()
        return time.perf_counter() - started
    finally:
        for key in conf:
            spark.conf.unset(key)


def run(keys: int, rounds: int, out: Path) -> dict[str, Any]:
    from pyspark.sql import functions as F

    work = Path(tempfile.mkdtemp(prefix="tws-load-"))
    spark = session(work / "local", "tws-load-bench")
    initial_path = work / "initial"
    spark.range(keys).select(
        F.format_string("k%09d", "id").alias("key"), F.col("id").alias("n"), (F.col("id") * 3).alias("total")
    ).write.parquet(str(initial_path))
    spark.createDataFrame([("k000000000", 1)], "key string, value bigint").write.parquet(
        str(work / "one-event")
    )
    load(spark, work, initial_path, "row", 2, {})  # warm-up: JVM code paths and Python workers, not measured
    load(spark, work, initial_path, "pandas", 2, {})
    times: dict[str, list[float]] = {name: [] for name, *_ in VARIANTS}
    for r in range(rounds):
        for name, flavour, partitions, conf in VARIANTS:
            seconds = load(spark, work, initial_path, flavour, partitions, conf)
            times[name].append(seconds)
            print(
                f"round {r + 1}/{rounds} {name:<22} {seconds:6.1f}s {keys / seconds:9,.0f} keys/s", flush=True
            )
    spark.stop()
    base = statistics.median(times[VARIANTS[0][0]])
    rows = [
        {
            "variant": name,
            "seconds": [round(t, 2) for t in times[name]],
            "keys_per_s_median": round(keys / statistics.median(times[name])),
            "keys_per_s_range": [round(keys / max(times[name])), round(keys / min(times[name]))],
            "vs_row_p4": round(base / statistics.median(times[name]), 2),
        }
        for name, *_ in VARIANTS
    ]
    result = {
        "keys": keys,
        "rounds": rounds,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "rows": rows,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"\n{keys:,} keys as initialState, {rounds} rounds (median, range; x = speed vs row P=4)")
    for row in rows:
        low, high = row["keys_per_s_range"]
        rate = row["keys_per_s_median"]
        print(f"  {row['variant']:<22} {rate:>8,} keys/s  ({low:,}-{high:,})  {row['vs_row_p4']}x")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "tws_load_bench.json")
    args = parser.parse_args(argv)
    run(args.keys, args.rounds, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
