"""A bad release whose migration forgets a column: v2's state ``(n, total, max)`` from a v1 snapshot
``(n, total)`` without adding ``max``. Its contract says so, and the plan refuses it before anything runs (at
run time the state load would refuse it too: ``SnapshotSchemaMismatchError``)."""

from __future__ import annotations

import sys

from airflow_checkpoint_provider.model.contract import column_migration
from dags.apps.counter_common import run_counter
from dags.apps.event_counter_v2 import OUTPUT, STATE, CounterV2

ACP_CONTRACT = {
    "code_version": "event-counter-v2-bad-schema",
    "sources": 1,
    "state": {"counts": "key STRING, n BIGINT, total BIGINT, max BIGINT"},
    "migrations": {"auto": {"counts": {"rename": {"sum": "n", "sum_2": "total"}}}},
}


def main(argv: list[str]) -> int:
    return run_counter(
        argv,
        processor=CounterV2,
        state=STATE,
        output=OUTPUT,
        code_version="event-counter-v2-bad-schema",
        migrations={"auto": column_migration(ACP_CONTRACT, "auto", "counts")},
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
