"""Ground truth for the counter examples: fold the event log; read the idempotent sink's latest totals."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from airflow_checkpoint_provider.runtime import eventlog


def fold_log(log: Path, end: int | None = None) -> dict[str, tuple[int, int]]:
    totals: dict[str, tuple[int, int]] = {}
    index = eventlog.EventLogIndex(str(log))
    for record in eventlog.read_records(str(log), 0, index.end() if end is None else end):
        n, t = totals.get(record["key"], (0, 0))
        totals[record["key"]] = (n + 1, t + record["value"])
    return totals


def sink_totals(output: Path) -> dict[str, tuple[int, int]]:
    """Latest (n, total) per key over committed batch folders, ordered by (generation, batch)."""
    batches = []
    for folder in output.glob("g=*/batch=*"):
        if not (folder / "_SUCCESS").exists():
            continue
        g = int(folder.parent.name.split("=")[1])
        b = int(folder.name.split("=")[1])
        batches.append(((g, b), folder))
    latest: dict[str, tuple[int, int]] = {}
    for _, folder in sorted(batches):
        table = pq.read_table(folder)
        for key, n, total in zip(*(table.column(c).to_pylist() for c in ("key", "n", "total")), strict=True):
            latest[key] = (n, total)
    return latest


def partial_batches(output: Path) -> list[str]:
    return [str(f) for f in output.glob("g=*/batch=*") if not (f / "_SUCCESS").exists()]
