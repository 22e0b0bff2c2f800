"""DStream event counter v2: per-key count, sum and **maximum** — a change v1's checkpoint cannot take.

State part ``counts``: ``(key STRING, n BIGINT, total BIGINT, max BIGINT)``.

Why a redeploy, not a restart: ``StreamingContext.getOrCreate`` on v1's checkpoint would restore v1's graph,
its Python functions included, and silently keep running v1. The managed runtime refuses that resume (the
code's digest differs), so v1 -> v2 goes through a snapshot: stop v1 at a batch boundary, export its state,
start v2 on a fresh checkpoint with :func:`migrate_v1_to_v2` applied to the snapshot, as ``initialRDD``.
``max`` starts NULL (v1 never kept the events), and is the maximum over the events since the migration.
"""

from __future__ import annotations

import sys
from typing import Any

from dags.apps.counter_common import counter_state, run_dstream_counter

STATE = "n BIGINT, total BIGINT, max BIGINT"
CODE_VERSION = "dstream-counter-v2"


def update(values: list[int], state: Any) -> tuple[int, int, int | None]:
    n, total, most = state or (0, 0, None)
    for value in values:
        most = value if most is None else max(most, value)
    return n + len(values), total + sum(values), most


def migrate_v1_to_v2(df: Any) -> Any:
    """v1 state rows -> v2 state rows (a v2 snapshot passes through unchanged)."""
    from pyspark.sql import functions as F

    df = counter_state(df)
    if "max" in df.columns:
        return df
    return df.withColumn("max", F.lit(None).cast("bigint"))


def main(argv: list[str]) -> int:
    return run_dstream_counter(
        argv,
        update=update,
        state=STATE,
        code_version=CODE_VERSION,
        migrations={"auto": migrate_v1_to_v2, "v1_to_v2": migrate_v1_to_v2},
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
