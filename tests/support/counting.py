"""Ground truth for the counter examples: fold the event log; read the idempotent sink's latest totals."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from airflow_checkpoint_provider.runtime import eventlog


def fold_log(log: Path, end: int | None = None) -> dict[str, tuple[int, int]]:
    totals: dict[str, tuple[int, int]] = {}
    index = eventlog.EventLogIndex(str(log))
    for record in eventlog.read_records(str(log), 0, index.end() if end is None else end):
        n, t = totals.get(record["key"], (0, 0))
        totals[record["key"]] = (n + 1, t + record["value"])
    return totals


def max_since(log: Path, start: int, end: int) -> dict[str, int]:
    """Per key, the largest value among records [start, end) — what v2's ``max`` means after a migration."""
    most: dict[str, int] = {}
    for record in eventlog.read_records(str(log), start, end):
        most[record["key"]] = max(most.get(record["key"], record["value"]), record["value"])
    return most


def sink_rows(
    output: Path, generation: int | None = None, skip: Collection[int] = ()
) -> dict[str, dict[str, Any]]:
    """Latest output row per key over committed batch folders, ordered by (generation, batch); generations
    in ``skip`` (rolled back: ``checkpoint.upgrade.rolled_back_generations``) are left out, as a consumer
    leaves them out."""
    batches = []
    for folder in output.glob("g=*/batch=*"):
        if not (folder / "_SUCCESS").exists():
            continue
        g = int(folder.parent.name.split("=")[1])
        if generation is not None and g != generation or g in skip:
            continue
        batches.append(((g, int(folder.name.split("=")[1])), folder))
    latest: dict[str, dict[str, Any]] = {}
    for _, folder in sorted(batches):
        for row in pq.read_table(folder).to_pylist():
            latest[row["key"]] = row
    return latest


def sink_totals(output: Path, skip: Collection[int] = ()) -> dict[str, tuple[int, int]]:
    return {k: (r["n"], r["total"]) for k, r in sink_rows(output, skip=skip).items()}


def partial_batches(output: Path) -> list[str]:
    return [str(f) for f in output.glob("g=*/batch=*") if not (f / "_SUCCESS").exists()]
