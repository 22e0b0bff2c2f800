"""Event counter v1: per-key count and sum with transformWithState, run by the managed runtime.

State part ``counts``: one row per key ``(key STRING, n BIGINT, total BIGINT)``.

A rollback from v2 goes through a snapshot too (v2's checkpoint pins a state schema v1 cannot read): v1's
migration :func:`migrate_v2_to_v1` drops v2's ``max`` column and keeps ``n`` and ``total`` exactly.

    spark-submit dags/apps/event_counter_v1.py --acp-job-root <root> --acp-generation <g> [--acp-snapshot
    <id>] \\
        -- --events <event log> --output <sink folder>
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

from pyspark.sql import Row
from pyspark.sql.streaming.stateful_processor import StatefulProcessor
from pyspark.sql.types import LongType, StringType, StructField, StructType

from airflow_checkpoint_provider.model.contract import column_migration
from dags.apps.counter_common import run_counter

STATE = StructType([StructField("n", LongType()), StructField("total", LongType())])
OUTPUT = StructType(
    [StructField("key", StringType()), StructField("n", LongType()), StructField("total", LongType())]
)
CODE_VERSION = "event-counter-v1"


#: What the plan step checks before a redeploy (read with ``ast``, never imported; docs/upgrades.md).
ACP_CONTRACT = {
    "code_version": "event-counter-v1",
    "sources": 1,
    "state": {"counts": "key STRING, n BIGINT, total BIGINT"},
    "migrations": {
        "auto": {"counts": {"rename": {"sum": "n", "sum_2": "total"}, "drop": ["max", "max_2"]}},
        "v2_to_v1": {"counts": {"drop": ["max"]}},
    },
}

#: v2 or v3 state rows -> v1 state rows: drop ``max`` (a v1 snapshot passes through unchanged).
migrate_v2_to_v1 = column_migration(ACP_CONTRACT, "auto", "counts")


class CounterV1(StatefulProcessor):  # type: ignore[misc]
    def init(self, handle: Any) -> None:
        self.counts = handle.getValueState("counts", STATE)

    def handleInputRows(self, key: Any, rows: Iterator[Any], timerValues: Any) -> Iterator[Any]:
        n, total = self.counts.get() or (0, 0)
        for row in rows:
            n += 1
            total += row.value
        self.counts.update((n, total))
        yield Row(key=key[0], n=n, total=total)

    def handleInitialState(self, key: Any, initialState: Any, timerValues: Any) -> None:
        self.counts.update((initialState.n, initialState.total))

    def close(self) -> None:
        pass


def main(argv: list[str]) -> int:
    return run_counter(
        argv,
        processor=CounterV1,
        state=STATE,
        output=OUTPUT,
        code_version=CODE_VERSION,
        migrations={
            "auto": migrate_v2_to_v1,
            "v2_to_v1": column_migration(ACP_CONTRACT, "v2_to_v1", "counts"),
        },
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
