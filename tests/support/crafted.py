"""Write checkpoint files in the exact shapes Spark 4.3 writes them (see tests/support/spark_checkpoints.py
for the real thing), for JVM-free unit tests of parsing, errors and cost."""

from __future__ import annotations

import json
from pathlib import Path

CONF = {
    "spark.sql.streaming.stateStore.providerClass": "org.apache.spark.sql.execution.streaming.state.HDFSBackedStateStoreProvider",
    "spark.sql.shuffle.partitions": "3",
}


def offsets_text(ends: list[int | None], *, version: int = 1, ts: int = 1_700_000_000_000, wm: int = 0) -> str:
    meta = {"batchWatermarkMs": wm, "batchTimestampMs": ts, "conf": CONF}
    if version == 2:
        meta["sourceMetadataInfo"] = {}
    lines = [f"v{version}", json.dumps(meta, separators=(",", ":"))]
    for i, end in enumerate(ends):
        raw = "-" if end is None else json.dumps({"offset": end})
        lines.append(raw if version == 1 else f"{i}:{raw}")
    return "\n".join(lines)


def commit_text(version: int = 1) -> str:
    body: dict[str, object] = {"nextBatchWatermarkMs": 0}
    if version == 2:
        body["stateUniqueIds"] = {"0": [["a"], ["b"], ["c"]]}
    return f"v{version}\n" + json.dumps(body, separators=(",", ":"))


def make_checkpoint(
    root: Path,
    *,
    committed: int | None,
    in_flight: bool = False,
    first_retained: int = 0,
    sources: int = 1,
    per_batch: int = 10,
    version: int = 1,
    query_id: str = "11111111-2222-3333-4444-555555555555",
    crc: bool = True,
) -> Path:
    """A checkpoint whose batches ``first_retained..committed`` are committed, plus one in flight if asked."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "metadata").write_text(json.dumps({"id": query_id}))
    (root / "offsets").mkdir(exist_ok=True)
    (root / "commits").mkdir(exist_ok=True)
    last = -1 if committed is None else committed
    top = last + 1 if in_flight else last
    for batch in range(first_retained, top + 1):
        (root / "offsets" / str(batch)).write_text(
            offsets_text([(batch + 1) * per_batch] * sources, version=version)
        )
        if crc:
            (root / "offsets" / f".{batch}.crc").write_bytes(b"crc")
        if batch <= last:
            (root / "commits" / str(batch)).write_text(commit_text(version))
            if crc:
                (root / "commits" / f".{batch}.crc").write_bytes(b"crc")
    return root
