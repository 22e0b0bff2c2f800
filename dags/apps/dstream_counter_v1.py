"""DStream event counter v1: the seed's own job — per-key count and sum with ``updateStateByKey``, the
snapshot's state as ``initialRDD`` — run by the managed DStream runtime.

State part ``counts``: ``(key STRING, n BIGINT, total BIGINT)``, the same shape as the Structured Streaming
counter v1's, so a snapshot of either seeds the other (the way off DStreams).

    spark-submit dags/apps/dstream_counter_v1.py --acp-job-root <root> --acp-generation <g> \\
        [--acp-snapshot <id>] -- --events <event log> --output <sink folder> [--trigger-seconds 1]
"""

from __future__ import annotations

import sys
from typing import Any

from dags.apps.counter_common import counter_state, run_dstream_counter

STATE = "n BIGINT, total BIGINT"
CODE_VERSION = "dstream-counter-v1"


def update(values: list[int], state: Any) -> tuple[int, int]:
    n, total = state or (0, 0)
    return n + len(values), total + sum(values)


def migrate_to_v1(df: Any) -> Any:
    """Any counter's state rows -> v1's: drop ``max`` (a v1 snapshot passes through unchanged)."""
    df = counter_state(df)
    return df.drop("max") if "max" in df.columns else df


def main(argv: list[str]) -> int:
    return run_dstream_counter(
        argv,
        update=update,
        state=STATE,
        code_version=CODE_VERSION,
        migrations={"auto": migrate_to_v1, "v2_to_v1": migrate_to_v1},
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
