"""Shared parts of the event counter examples: arguments and the idempotent per-batch sink.

The sink writes each batch's output to ``<output>/g=<generation>/batch=<id>/`` with Spark's Parquet commit
protocol (``overwrite``): a replayed batch replaces its own folder, and a batch folder without ``_SUCCESS`` is a
partial write that never committed. Batch ids restart at 0 in every generation, so the generation is part of the
key — a sink keyed on batch id alone would drop the new generation's first batches as duplicates.
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
    parser.add_argument("--slow-batch-seconds", type=float, default=0.0, help="testing: sleep inside each batch")
    return parser.parse_args(list(argv))


def idempotent_sink(output: str, generation: int, slow_s: float = 0.0) -> Callable[[Any, int], None]:
    def write(df: Any, batch_id: int) -> None:
        if slow_s:
            import time

            time.sleep(slow_s)
        df.write.mode("overwrite").parquet(f"{output}/g={generation}/batch={batch_id}")

    return write
