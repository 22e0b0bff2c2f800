"""Write checkpoint files in the exact shapes Spark 4.3 writes them (see tests/support/spark_checkpoints.py
for the real thing), for JVM-free unit tests of parsing, errors and cost."""

from __future__ import annotations

import json
from pathlib import Path

HDFS_PROVIDER = "org.apache.spark.sql.execution.streaming.state.HDFSBackedStateStoreProvider"
CONF = {
    "spark.sql.streaming.stateStore.providerClass": HDFS_PROVIDER,
    "spark.sql.shuffle.partitions": "3",
}


def offsets_text(
    ends: list[int | None], *, version: int = 1, ts: int = 1_700_000_000_000, wm: int = 0
) -> str:
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


def make_snapshot(
    job_root: Path,
    snapshot_id: str,
    *,
    job: str | None = None,
    generation: int = 1,
    batch: int = 4,
    rows: dict[str, tuple[int, int]] | None = None,
    created_at: str = "2026-11-01T00:00:00Z",
    end_offsets: list[object] | None = None,
    files: int = 2,
    verify: bool = True,
) -> Path:
    """A snapshot folder as the exporter writes it (Parquet parts + manifest), written with pyarrow alone."""
    import hashlib

    import pyarrow as pa
    import pyarrow.parquet as pq

    from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot
    from airflow_checkpoint_provider.checkpoint.snapshots import verify_snapshot

    rows = rows if rows is not None else {"k0": (2, 10), "k1": (3, 7), "k2": (1, 1)}
    folder = job_root / "snapshots" / snapshot_id
    part_dir = folder / "parts" / "counts"
    part_dir.mkdir(parents=True, exist_ok=True)
    keys = sorted(rows)
    chunks = [keys[i::files] for i in range(files)]
    listed = []
    for i, chunk in enumerate(chunks):
        table = pa.table(
            {"key": chunk, "n": [rows[k][0] for k in chunk], "total": [rows[k][1] for k in chunk]},
            schema=pa.schema([("key", pa.string()), ("n", pa.int64()), ("total", pa.int64())]),
        )
        name = f"part-{i:05d}-crafted.snappy.parquet"
        pq.write_table(table, part_dir / name)
        data = (part_dir / name).read_bytes()
        listed.append(
            {"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "rows": len(chunk)}
        )
    (part_dir / "_SUCCESS").write_bytes(b"")
    columns = [
        {"name": "key", "type": "string", "from": "key.key#0"},
        {"name": "n", "type": "bigint", "from": "value.n#0"},
        {"name": "total", "type": "bigint", "from": "value.total#1"},
    ]
    manifest = {
        "snapshot_id": snapshot_id,
        "job": job or job_root.name,
        "generation": generation,
        "query_id": "11111111-2222-3333-4444-555555555555",
        "batch": batch,
        "end_offsets": end_offsets if end_offsets is not None else [{"offset": (batch + 1) * 10}],
        "checkpoint": str(job_root / "generations" / str(generation) / "checkpoint"),
        "checkpoint_format_version": 1,
        "parts": {
            "counts": {
                "name": "counts",
                "path": "parts/counts",
                "operator_id": 0,
                "operator_name": "transformWithStateInPySparkExec",
                "store_name": "default",
                "state_var": "counts",
                "state_var_type": "ValueState",
                "key_columns": ["key"],
                "value_columns": ["n", "total"],
                "columns": columns,
                "spark_schema": "{}",
                "rows": len(keys),
                "files": listed,
            }
        },
        "spark_version": "4.3.0",
        "code_version": "crafted",
        "created_at": created_at,
        "export_seconds": 0.1,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    if verify:
        verify_snapshot(JobRoot(job_root, job=job), snapshot_id)
    return folder
