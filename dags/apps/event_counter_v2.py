"""Event counter v2: per-key count, sum and **maximum** — a state shape v1's checkpoint cannot carry.

State part ``counts``: ``(key STRING, n BIGINT, total BIGINT, max BIGINT)``.

Why a redeploy, not a restart: v1's checkpoint pins the value schema ``(n, total)`` of state variable
``counts``; v2 declares ``(n, total, max)``, which Spark refuses on v1's checkpoint (the state schema check
fails at the first batch). So v1 -> v2 goes through a snapshot: stop v1 at a batch boundary, export its state,
start v2 on a fresh checkpoint with :func:`migrate_v1_to_v2` applied to the snapshot on load.

The migration: ``n`` and ``total`` carry over unchanged; ``max`` is NULL, because v1 never kept the events it
counted and a maximum cannot be derived from a count and a sum. The first event v2 sees for a key sets it, so
``max`` is the maximum over the events since the migration (it says so: a NULL max means "no event since v2
started"). A v2 -> v2 redeploy keeps ``max`` as it is: the migration only adds the column when it is absent.
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

STATE = StructType(
    [StructField("n", LongType()), StructField("total", LongType()), StructField("max", LongType())]
)
OUTPUT = StructType(
    [
        StructField("key", StringType()),
        StructField("n", LongType()),
        StructField("total", LongType()),
        StructField("max", LongType()),
    ]
)
CODE_VERSION = "event-counter-v2"

#: What the plan step checks before a redeploy (read with ``ast``, never imported; docs/upgrades.md). The
#: migration reads a v1 ``(n, total)``, a v3 ``(sum, sum_2, max, max_2)`` or a v2 snapshot.
ACP_CONTRACT = {
    "code_version": "event-counter-v2",
    "sources": 1,
    "state": {"counts": "key STRING, n BIGINT, total BIGINT, max BIGINT"},
    "migrations": {
        "auto": {
            "counts": {"rename": {"sum": "n", "sum_2": "total"}, "drop": ["max_2"], "add": {"max": "BIGINT"}}
        },
        "v1_to_v2": {"counts": {"add": {"max": "BIGINT"}}},
    },
}

#: v1 (or v3) state rows -> v2 state rows (a v2 snapshot passes through unchanged): the contract's own.
migrate_v1_to_v2 = column_migration(ACP_CONTRACT, "auto", "counts")


class CounterV2(StatefulProcessor):  # type: ignore[misc]
    def init(self, handle: Any) -> None:
        self.counts = handle.getValueState("counts", STATE)

    def handleInputRows(self, key: Any, rows: Iterator[Any], timerValues: Any) -> Iterator[Any]:
        n, total, most = self.counts.get() or (0, 0, None)
        for row in rows:
            n += 1
            total += row.value
            most = row.value if most is None else max(most, row.value)
        self.counts.update((n, total, most))
        yield Row(key=key[0], n=n, total=total, max=most)

    def handleInitialState(self, key: Any, initialState: Any, timerValues: Any) -> None:
        self.counts.update((initialState.n, initialState.total, initialState.max))

    def close(self) -> None:
        pass


def main(argv: list[str]) -> int:
    return run_counter(
        argv,
        processor=CounterV2,
        state=STATE,
        output=OUTPUT,
        code_version=CODE_VERSION,
        migrations={
            "auto": migrate_v1_to_v2,
            "v1_to_v2": column_migration(ACP_CONTRACT, "v1_to_v2", "counts"),
        },
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
