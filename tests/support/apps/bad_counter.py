"""A bad release of the event counter (v2's code and contract) for the safe-upgrade tests.

``--bad crash-batch-1``: the query fails in its second batch (batch 1), as a release that cannot handle real
data would. ``--bad zero-counts``: it runs, but writes ``n = 0`` for every key (wrong output a user's check
catches). Anything else: plain v2.
"""

from __future__ import annotations

import sys
from typing import Any

from dags.apps.counter_common import run_counter
from dags.apps.event_counter_v2 import OUTPUT, STATE, CounterV2, migrate_v1_to_v2

ACP_CONTRACT = {
    "code_version": "event-counter-v2-bad",
    "sources": 1,
    "state": {"counts": "key STRING, n BIGINT, total BIGINT, max BIGINT"},
    "migrations": {
        "auto": {
            "counts": {"rename": {"sum": "n", "sum_2": "total"}, "drop": ["max_2"], "add": {"max": "BIGINT"}}
        },
    },
}


def main(argv: list[str]) -> int:
    argv = list(argv)
    bad = ""
    if "--bad" in argv:
        at = argv.index("--bad")
        bad = argv[at + 1]
        del argv[at : at + 2]

    def wrap(sink: Any) -> Any:
        def write(df: Any, batch_id: int) -> None:
            from pyspark.sql import functions as F

            if bad == "crash-batch-1" and batch_id >= 1:
                raise RuntimeError(f"bad release: batch {batch_id} fails")
            if bad == "zero-counts":
                df = df.withColumn("n", F.lit(0).cast("bigint"))
            sink(df, batch_id)

        return write

    return run_counter(
        argv,
        processor=CounterV2,
        state=STATE,
        output=OUTPUT,
        code_version="event-counter-v2-bad",
        migrations={"auto": migrate_v1_to_v2},
        wrap_sink=wrap,
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
