"""The snapshot exporter: a Spark batch job that writes the state of one committed batch as Parquet +
manifest.

Run it where the job's cluster is::

    spark-submit airflow_checkpoint_provider/runtime/export.py --job-root <root> --generation <g> \\
        [--batch N] [--snapshot-id ID] [--code-version LABEL] [--deep]

or in-process with :func:`export_snapshot` (tests and notebooks share one session). For batch N (default: the
last committed one) it lists every stateful operator and state variable with ``state-metadata``, reads each
with the ``statestore`` reader at N, flattens key and value structs to top-level columns (renaming Spark's
repeated internal aggregate field names, e.g. ``sum, count, sum`` -> ``sum, count, sum_2``), writes Parquet,
checksums the files, and publishes ``manifest.json`` last. The source end offsets come from ``offsets/N`` of
the same checkpoint, so state and position always belong to the same batch. On failure the partial folder is
removed.

Exporting the same (generation, batch) again returns the existing snapshot (promise 6 in docs/design.md: a
rerun never repeats the work wrongly). Works on a running query (N must still be retained) and on a stopped
one.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any

from airflow_checkpoint_provider.checkpoint.inspector import CheckpointReader, inspect_checkpoint
from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot
from airflow_checkpoint_provider.checkpoint.snapshots import (
    MANIFEST,
    PARTS,
    Manifest,
    Part,
    PartFile,
    SnapshotCatalogue,
    Verification,
    data_file,
    file_facts,
    file_sha256,
    new_snapshot_id,
    read_manifest,
    record_deep_verification,
    verify_snapshot,
)
from airflow_checkpoint_provider.checkpoint.storage import Location
from airflow_checkpoint_provider.exceptions import (
    BatchNotRetainedError,
    CheckpointProviderError,
    EmptyCheckpointError,
    ExportFailedError,
    ForeignSnapshotError,
    SnapshotCorruptError,
)

log = logging.getLogger("airflow_checkpoint_provider.export")

#: Session confs the reader must share with the checkpoint's writer (pinned in ``offsets/N``'s conf map).
PINNED_CONFS = (
    "spark.sql.streaming.stateStore.providerClass",
    "spark.sql.streaming.stateStore.encodingFormat",
    "spark.sql.streaming.stateStore.rocksdb.formatVersion",
    "spark.sql.streaming.stateStore.compression.codec",
)
CHECKPOINT_FORMAT_CONF = "spark.sql.streaming.stateStore.checkpointFormatVersion"
KEY_STRUCTS = ("key",)
#: Up to this many state rows (when the count is known: a driver's last progress, or RocksDB's metadata in the
#: checkpoint) a part is collected to the driver as Arrow and written by pyarrow: no write job, no output
#: committer, and the digest comes from the bytes in memory instead of a second read. Above it, or without a
#: count, Spark writes it.
ARROW_MAX_ROWS = 1_000_000
#: ... and up to this many bytes of state (RocksDB's SST files, or the memory a state store reports), so that
#: wide rows do not go through the driver either.
ARROW_MAX_BYTES = 256 << 20
TRACK_ROWS_CONF = "spark.sql.streaming.stateStore.rocksdb.trackTotalNumberOfRows"


def state_rows_of(progress: Any, batch: int, track_rows: str | None = "true") -> int | None:
    """The state rows in a query progress (a dict, as ``StreamingQuery.lastProgress``), as a size hint for
    the export of ``batch``: ``None`` unless the progress is of that batch (or of an idle trigger after it),
    Spark counted the rows (RocksDB with ``trackTotalNumberOfRows=false`` reports 0) and the state is at most
    :data:`ARROW_MAX_BYTES`."""
    if not isinstance(progress, dict) or str(track_rows).lower() == "false":
        return None
    if progress.get("batchId") not in (batch, batch + 1):
        return None
    operators = progress.get("stateOperators")
    if not isinstance(operators, list) or not operators:
        return None
    try:
        total = sum(int(op["numRowsTotal"]) for op in operators)
        size = 0
        for op in operators:
            custom = op.get("customMetrics") or {}
            size += int(
                custom["rocksdbSstFileSize"] if "rocksdbSstFileSize" in custom else op["memoryUsedBytes"]
            )
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return total if 0 <= total and size <= ARROW_MAX_BYTES else None


#: At most this many RocksDB version files are read to size a state from its checkpoint (one small read each;
#: a query with Spark's default 200 shuffle partitions, or more, is left to Spark's write).
MAX_SIZE_PROBES = 64
_SIZE_FILE_LIMIT = 4 << 20


def checkpoint_state_rows(checkpoint: Location, batch: int) -> int | None:
    """The state rows after ``batch``, from RocksDB's own metadata in the checkpoint, as the size hint a
    stopping driver takes from its last progress (:func:`state_rows_of`): what lets an export from outside
    the job (the snapshot operator's application, the exporter run by hand) take the Arrow path too.

    Every store of every partition must have ``state/<op>/<partition>[/<store>]/<batch + 1>.zip``, RocksDB's
    snapshot of that version, whose ``metadata`` counts its keys (``numKeys``) and lists its SST files. Any
    other layout — Spark's in-memory store, changelog checkpointing between snapshots, the v2 checkpoint
    format's ``<version>_<id>.zip``, row counting turned off (``-1``), more than :data:`MAX_SIZE_PROBES`
    stores, a file this does not read — answers ``None``: Spark writes the snapshot, as before. Only a hint:
    the snapshot's rows are counted from what is written."""
    import io
    import zipfile

    version = f"{int(batch) + 1}.zip"
    state = checkpoint.child("state")
    rows = size = probes = 0
    try:
        for operator in state.list_or_empty():
            if not (operator.is_dir and operator.name.isdigit()):
                continue
            for partition in state.child(operator.name).list():
                if not (partition.is_dir and partition.name.isdigit()):
                    continue
                folder = state.child(operator.name, partition.name)
                entries = folder.list()
                if any(e.name == version and not e.is_dir for e in entries):
                    stores = [folder]
                else:  # a join's stores, one folder each
                    stores = [
                        folder.child(e.name)
                        for e in entries
                        if e.is_dir and e.name not in ("_metadata", "SSTs") and not e.name.startswith(".")
                    ]
                if not stores:
                    return None
                for store in stores:
                    probes += 1
                    if probes > MAX_SIZE_PROBES:
                        return None
                    data = store.child(version).read_bytes(limit=_SIZE_FILE_LIMIT)
                    with zipfile.ZipFile(io.BytesIO(data)) as archive:
                        text = archive.read("metadata").decode("utf-8")
                    head, _, body = text.partition("\n")
                    if head.strip() != "v1":
                        return None
                    meta = json.loads(body)
                    keys, internal = int(meta["numKeys"]), int(meta.get("numInternalKeys") or 0)
                    if keys < 0 or internal < 0:  # trackTotalNumberOfRows=false
                        return None
                    rows += keys + internal
                    size += sum(int(f["sizeBytes"]) for f in meta["sstFiles"])
    # only a hint: anything unexpected leaves the write to Spark
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, CheckpointProviderError):
        return None
    if not probes or size > ARROW_MAX_BYTES:
        return None
    return rows


def flatten(df: Any) -> tuple[Any, list[str], list[str], list[dict[str, str]]]:
    """Top-level columns from the state reader's structs (``partition_id`` dropped), with unique names.

    Struct fields are renamed positionally by a cast — the only way to address Spark's repeated internal
    aggregate field names. Returns (flat DataFrame, key column names, value column names, column records).
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import StructField, StructType

    used: set[str] = set()
    columns: list[Any] = []
    keys: list[str] = []
    values: list[str] = []
    records: list[dict[str, str]] = []

    def unique(name: str) -> str:
        candidate, i = name, 1
        while candidate.lower() in used:
            i += 1
            candidate = f"{name}_{i}"
        used.add(candidate.lower())
        return candidate

    for top in df.schema.fields:
        if top.name == "partition_id":
            continue
        into = keys if top.name in KEY_STRUCTS else values
        if isinstance(top.dataType, StructType):
            fields = top.dataType.fields
            names = [unique(f.name) for f in fields]
            renamed = F.col(f"`{top.name}`").cast(
                StructType(
                    [StructField(n, f.dataType, f.nullable) for n, f in zip(names, fields, strict=True)]
                )
            )
            for position, (n, f) in enumerate(zip(names, fields, strict=True)):
                columns.append(renamed.getField(n).alias(n))
                into.append(n)
                records.append(
                    {"name": n, "type": f.dataType.simpleString(), "from": f"{top.name}.{f.name}#{position}"}
                )
        else:
            n = unique(top.name)
            columns.append(F.col(f"`{top.name}`").alias(n))
            into.append(n)
            records.append({"name": n, "type": top.dataType.simpleString(), "from": top.name})
    return df.select(*columns), keys, values, records


def state_parts(spark: Any, checkpoint: str, batch: int | None = None) -> list[dict[str, Any]]:
    """One entry per thing to read: (operator, store) for plain operators, (operator, state variable) for
    transformWithState. Part names are the state variable names (prefixed ``op<id>.`` when two operators share
    one), and ``op<id>`` / ``op<id>.<store>`` otherwise.

    Read from the operators' metadata files (``state/<op>/_metadata``: the newest version at or before
    ``batch`` for v2) when every operator has one, the same files Spark's ``state-metadata`` source reads,
    without its Spark job (0.07-0.11 s of an export on stop); otherwise from that source."""
    rows = operator_rows(checkpoint, batch)
    if rows is None:
        rows = [
            (int(r.operatorId), r.operatorName, r.stateStoreName, r.operatorProperties)
            for r in spark.read.format("state-metadata").load(checkpoint).collect()
        ]
    parts: list[dict[str, Any]] = []
    for operator_id, operator_name, store_name, properties in rows:
        props = json.loads(properties) if properties else {}
        variables = props.get("stateVariables") if isinstance(props, dict) else None
        if variables:
            for v in variables:
                parts.append(
                    {
                        "operator_id": operator_id,
                        "operator_name": operator_name,
                        "store_name": store_name,
                        "state_var": v["stateName"],
                        "state_var_type": v.get("stateVariableType"),
                        "name": v["stateName"],
                    }
                )
        else:
            suffix = "" if store_name == "default" else f".{store_name}"
            parts.append(
                {
                    "operator_id": operator_id,
                    "operator_name": operator_name,
                    "store_name": store_name,
                    "state_var": None,
                    "state_var_type": None,
                    "name": f"op{operator_id}{suffix}",
                }
            )
    names = [p["name"] for p in parts]
    for p in parts:
        if p["state_var"] and names.count(p["name"]) > 1:
            p["name"] = f"op{p['operator_id']}.{p['name']}"
    return parts


def operator_rows(checkpoint: str, batch: int | None = None) -> list[tuple[int, str, str, str]] | None:
    """``(operator id, operator name, store name, operator properties JSON)`` per store, as Spark's
    ``state-metadata`` source returns them, read from the metadata files; None when an operator folder has
    no metadata file this reads (an older Spark's checkpoint), one does not parse, or there is no operator:
    Spark decides then."""
    state = Location.of(checkpoint).child("state")
    rows: list[tuple[int, str, str, str]] = []
    for entry in sorted(state.list_or_empty(), key=lambda e: int(e.name) if e.name.isdigit() else -1):
        if not (entry.is_dir and entry.name.isdigit()):
            continue
        meta = state.child(entry.name, "_metadata")
        names = {e.name for e in meta.list_or_empty()}
        try:
            if "v2" in names:
                versions = sorted(
                    int(e.name) for e in meta.child("v2").list_or_empty() if e.name.isdigit() and not e.is_dir
                )
                usable = [v for v in versions if batch is None or v <= batch]
                if not usable:
                    return None
                text = meta.child("v2", usable[-1]).read_text()
            elif "metadata" in names:
                text = meta.child("metadata").read_text()
            else:
                return None
            lines = text.split("\n")
            if lines[0].strip() not in ("v1", "v2") or len(lines) < 2:
                return None
            data = json.loads(lines[1])
            info = data["operatorInfo"]
            properties = data.get("operatorPropertiesJson") or ""
            for store in data["stateStoreInfo"]:
                rows.append(
                    (int(info["operatorId"]), str(info["operatorName"]), str(store["storeName"]), properties)
                )
        # a file this does not read as expected is Spark's to read (the fallback), never a guess
        except (OSError, ValueError, KeyError, TypeError):
            return None
    return rows or None


def read_part(spark: Any, checkpoint: str, batch: int, part: dict[str, Any]) -> Any:
    reader = (
        spark.read.format("statestore")
        .option("batchId", int(batch))
        .option("operatorId", part["operator_id"])
        .option("storeName", part["store_name"])
    )
    if part["state_var"]:
        reader = reader.option("stateVarName", part["state_var"])
    return reader.load(checkpoint)


class _PinnedConf:
    """Set the checkpoint's pinned confs on the session for the duration of a read; restore afterwards."""

    def __init__(self, spark: Any, values: dict[str, str]) -> None:
        self.spark, self.values = spark, values
        self.saved: dict[str, str | None] = {}

    def __enter__(self) -> None:
        for k, v in self.values.items():
            self.saved[k] = self.spark.conf.get(k, None)
            self.spark.conf.set(k, v)

    def __exit__(self, *exc: object) -> None:
        for k, v in self.saved.items():
            if v is None:
                self.spark.conf.unset(k)
            else:
                self.spark.conf.set(k, v)


def _reader_confs(offsets_conf: dict[str, str], checkpoint_format_version: int) -> dict[str, str]:
    confs = {k: str(v) for k, v in offsets_conf.items() if k in PINNED_CONFS}
    confs[CHECKPOINT_FORMAT_CONF] = str(checkpoint_format_version)
    return confs


def export_snapshot(
    spark: Any,
    job_root: Any,
    generation: int,
    *,
    batch: int | None = None,
    snapshot_id: str | None = None,
    code_version: str = "",
    job_name: str | None = None,
    reuse: bool = True,
    deep: bool = False,
    state_rows: int | None = None,
) -> Manifest:
    """Export batch ``batch`` (default: last committed) of generation ``generation``; return the manifest.

    ``state_rows`` is the number of state rows when the caller knows it (a driver, from its last progress);
    without it, RocksDB's metadata in the checkpoint tells it where it can (:func:`checkpoint_state_rows`).
    Up to :data:`ARROW_MAX_ROWS` the parts go through the driver as Arrow instead of a Spark write job.

    A new snapshot is not verified again here (the digests were just computed from the written files): whoever
    uses it verifies it — the snapshot operator, the driver that loads it, ``airflow-checkpoint snapshots
    --verify``. ``deep`` compares it with the checkpoint row for row now. An existing snapshot is verified."""
    root = JobRoot(job_root, job=job_name)
    checkpoint = root.checkpoint(generation)
    info = inspect_checkpoint(checkpoint)
    if info.last_committed_batch is None:
        raise EmptyCheckpointError(
            "the checkpoint has no committed batch: there is no state to snapshot",
            path=checkpoint.uri,
            job=root.job,
            generation=generation,
        )
    n = info.last_committed_batch if batch is None else int(batch)
    reader = CheckpointReader(checkpoint)
    if n > info.last_committed_batch or n < 0:
        raise BatchNotRetainedError(
            f"batch {n} is not committed (last committed: {info.last_committed_batch})",
            path=checkpoint.uri,
            job=root.job,
            generation=generation,
            batch=n,
        )
    if not (checkpoint.child("offsets", n).exists() and checkpoint.child("commits", n).exists()):
        raise BatchNotRetainedError(
            f"batch {n} is no longer retained in the checkpoint (its offset or commit log was purged; "
            "retained: "
            f"{info.retained_batches})",
            path=checkpoint.uri,
            job=root.job,
            generation=generation,
            batch=n,
            hint="Snapshot the last committed batch, or raise spark.sql.streaming.minBatchesToRetain",
        )
    offsets = reader.offsets(n)

    catalogue = SnapshotCatalogue(root)
    if snapshot_id is not None and root.snapshot_dir(snapshot_id).child(MANIFEST).exists():
        existing = read_manifest(root, snapshot_id, generation=generation)
        if (existing.generation, existing.batch, existing.query_id) != (generation, n, info.query_id):
            raise ForeignSnapshotError(
                f"snapshot {snapshot_id!r} already exists for generation {existing.generation} batch "
                f"{existing.batch}, not generation {generation} batch {n}",
                path=root.snapshot_dir(snapshot_id).uri,
                job=root.job,
                generation=generation,
                batch=n,
            )
        log.info(
            "snapshot %s of generation %s batch %s already exists: verifying it", snapshot_id, generation, n
        )
        _verify(spark, root, existing, deep)
        return existing
    if reuse and snapshot_id is None:
        found = catalogue.find(generation=generation, batch=n, query_id=info.query_id)
        if found is not None:
            log.info("reusing snapshot %s of generation %s batch %s", found.snapshot_id, generation, n)
            existing = read_manifest(root, found.snapshot_id, generation=generation)
            _verify(spark, root, existing, deep)
            return existing

    if state_rows is None:
        state_rows = checkpoint_state_rows(checkpoint, n)
    sid = snapshot_id or free_id(root, new_snapshot_id(generation, n))
    folder = root.require_inside(root.snapshot_dir(sid))
    if folder.exists():  # an unfinished export of the same id: start over
        folder.remove(recursive=True)
    started = time.monotonic()
    try:
        manifest = _write(spark, root, generation, n, sid, info, offsets, code_version, state_rows)
        manifest = Manifest.from_json(
            {**manifest.to_json(), "export_seconds": round(time.monotonic() - started, 3)}
        )
        root.write_json(folder.child(MANIFEST), manifest.to_json())  # published last
    except CheckpointProviderError:
        folder.remove(recursive=True)
        raise
    # Spark, Py4J and pyarrow raise many types; re-raised typed
    except Exception as exc:  # noqa: BLE001
        folder.remove(recursive=True)
        raise ExportFailedError(
            f"exporting batch {n} failed and the partial snapshot folder was removed: {str(exc)[:1500]}",
            path=checkpoint.uri,
            job=root.job,
            generation=generation,
            batch=n,
        ) from exc
    log.info(
        "snapshot %s of job %s: generation %s batch %s, %s rows in %s parts, %.2fs",
        sid,
        root.job,
        generation,
        n,
        manifest.rows,
        len(manifest.parts),
        manifest.export_seconds,
    )
    if deep:  # the shallow check (files, sizes, digests) is the reader's: the operator and the loading driver
        _verify(spark, root, manifest, deep)
    return manifest


def free_id(root: JobRoot, sid: str) -> str:
    candidate, i = sid, 1
    while root.snapshot_dir(candidate).child(MANIFEST).exists():
        i += 1
        candidate = f"{sid}-{i}"
    return candidate


def _write(
    spark: Any,
    root: JobRoot,
    generation: int,
    n: int,
    sid: str,
    info: Any,
    offsets: Any,
    code_version: str,
    state_rows: int | None = None,
) -> Manifest:
    import pendulum
    import pyspark

    checkpoint = root.checkpoint(generation)
    confs = _reader_confs(offsets.conf or {}, info.checkpoint_format_version or 1)
    folder = root.snapshot_dir(sid)
    parts: dict[str, Part] = {}
    with _PinnedConf(spark, confs):
        for p in state_parts(spark, checkpoint.uri, n):
            flat, keys, values, records = flatten(read_part(spark, checkpoint.uri, n, p))
            parts[p["name"]] = write_part(
                folder,
                p["name"],
                flat,
                operator_id=p["operator_id"],
                operator_name=p["operator_name"],
                store_name=p["store_name"],
                state_var=p["state_var"],
                state_var_type=p["state_var_type"],
                key_columns=keys,
                value_columns=values,
                columns=records,
                arrow=state_rows is not None and 0 <= state_rows <= ARROW_MAX_ROWS,
            )
    return Manifest(
        snapshot_id=sid,
        job=root.job,
        generation=int(generation),
        query_id=str(info.query_id),
        batch=n,
        end_offsets=offsets.end_offsets_json(),
        checkpoint=checkpoint.uri,
        checkpoint_format_version=int(info.checkpoint_format_version or 1),
        parts=parts,
        spark_version=pyspark.__version__,
        code_version=code_version,
        created_at=pendulum.now("UTC").to_iso8601_string(),
        source_confs=confs,
    )


def write_part(
    folder: Any,
    name: str,
    df: Any,
    *,
    operator_id: int,
    operator_name: str,
    store_name: str,
    state_var: str | None,
    state_var_type: str | None,
    key_columns: list[str],
    value_columns: list[str],
    columns: list[dict[str, str]],
    arrow: bool = False,
) -> Part:
    """Write one state part's rows as Parquet under ``<snapshot>/parts/<name>`` and describe its files
    (size, sha256, rows): what both engines' snapshots are made of.

    ``arrow``: the caller knows the part is small (at most :data:`ARROW_MAX_ROWS` rows); it is collected to
    the driver as Arrow and written as one file by pyarrow. A type Spark cannot hand over as Arrow falls back
    to the Spark write."""
    rel = f"{PARTS}/{name}"
    target = folder.child(rel)
    files = _write_arrow(df, target) if arrow else None
    if files is None:
        df.write.mode("errorifexists").parquet(target.uri)
        files = []
        for file_name, _size in target.walk_files():
            if not data_file(file_name):
                continue
            digest, size = file_sha256(target.child(file_name))
            rows, _ = file_facts(target.child(file_name))
            files.append(PartFile(name=file_name, size=size, sha256=digest, rows=rows))
    return Part(
        name=name,
        path=rel,
        operator_id=operator_id,
        operator_name=operator_name,
        store_name=store_name,
        state_var=state_var,
        state_var_type=state_var_type,
        key_columns=key_columns,
        value_columns=value_columns,
        columns=columns,
        spark_schema=df.schema.json(),
        rows=sum(f.rows for f in files),
        files=files,
    )


def _write_arrow(df: Any, target: Location) -> list[PartFile] | None:
    """``df`` as one Parquet file written by pyarrow from the driver; ``None`` when its schema has a type
    Spark does not hand over as Arrow (the caller then lets Spark write it). Spark's own writer runs a job
    with an output committer, and the files are read again for their digests; for a small state that fixed
    part is most of an export (2,000 rows: a write job 0.45-0.58 s, the Arrow collect and the pyarrow write
    0.24-0.37 s, 2026-12-01)."""
    import hashlib

    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        from pyspark.sql.pandas.types import to_arrow_schema

        to_arrow_schema(df.schema, error_on_duplicated_field_names_in_struct=True, timezone="UTC")
    # an internal pyspark helper: its errors (and its signature) vary by version
    except Exception as exc:  # noqa: BLE001
        log.info("part %s: Spark writes it (no Arrow conversion: %s)", target.name, str(exc)[:300])
        return None
    try:
        table = df.toArrow()
    # e.g. spark.driver.maxResultSize; a failure to read the state fails the Spark write again, typed
    except Exception as exc:  # noqa: BLE001
        log.info("part %s: Spark writes it (the Arrow collect failed: %s)", target.name, str(exc)[:300])
        return None
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="snappy")
    data = sink.getvalue().to_pybytes()
    name = "part-00000.snappy.parquet"
    target.makedirs()
    target.child(name).write_bytes(data)
    return [PartFile(name=name, size=len(data), sha256=hashlib.sha256(data).hexdigest(), rows=table.num_rows)]


def _verify(spark: Any, root: JobRoot, manifest: Manifest, deep: bool) -> Verification:
    # deep_verify runs the shallow checks itself first
    return (
        deep_verify(spark, root, manifest.snapshot_id)
        if deep
        else verify_snapshot(root, manifest.snapshot_id)
    )


def deep_verify(spark: Any, root: JobRoot, snapshot_id: str) -> Verification:
    """Shallow verification, then compare every part row for row with the checkpoint's state at the manifest's
    batch (which must still be retained). Records ``deep: true`` in ``verified.json``."""
    shallow = verify_snapshot(root, snapshot_id, record=False)
    manifest = read_manifest(root, snapshot_id)
    checkpoint = manifest.checkpoint
    problems = []
    with _PinnedConf(spark, manifest.source_confs):
        for part in manifest.parts.values():
            spec = {
                "operator_id": part.operator_id,
                "store_name": part.store_name,
                "state_var": part.state_var,
            }
            try:
                live, _, _, _ = flatten(read_part(spark, checkpoint, manifest.batch, spec))
            # Spark, Py4J and pyarrow raise many types; re-raised typed
            except Exception as exc:  # noqa: BLE001
                raise BatchNotRetainedError(
                    f"cannot re-read batch {manifest.batch} for a deep check: {str(exc)[:500]}",
                    path=checkpoint,
                    job=root.job,
                    generation=manifest.generation,
                    batch=manifest.batch,
                ) from exc
            saved = spark.read.parquet(root.snapshot_dir(snapshot_id).child(part.path).uri)
            missing = live.exceptAll(saved).count()
            extra = saved.exceptAll(live).count()
            if missing or extra:
                problems.append(
                    f"part {part.name}: {missing} rows of the checkpoint missing, {extra} rows extra"
                )
    if problems:
        raise SnapshotCorruptError(
            f"snapshot {snapshot_id!r} differs from the checkpoint at batch {manifest.batch}: "
            + "; ".join(problems),
            path=root.snapshot_dir(snapshot_id).uri,
            job=root.job,
            generation=manifest.generation,
            batch=manifest.batch,
        )
    import dataclasses

    result = dataclasses.replace(shallow, deep=True)
    record_deep_verification(root, result)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="airflow-checkpoint-export")
    parser.add_argument("--job-root", required=True)
    parser.add_argument("--generation", required=True, type=int)
    parser.add_argument("--job-name")
    parser.add_argument("--batch", type=int)
    parser.add_argument("--snapshot-id")
    parser.add_argument("--code-version", default="")
    parser.add_argument("--deep", action="store_true", help="also compare with the checkpoint row for row")
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName(
        f"snapshot-{args.job_name or 'job'}-g{args.generation}"
    ).getOrCreate()
    try:
        manifest = export_snapshot(
            spark,
            args.job_root,
            args.generation,
            batch=args.batch,
            snapshot_id=args.snapshot_id,
            code_version=args.code_version,
            job_name=args.job_name,
            deep=args.deep,
        )
    except CheckpointProviderError as exc:
        print(f"airflow-checkpoint-provider: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        spark.stop()
    # The last stdout line is the result, for whoever submitted this job.
    print(
        json.dumps(
            {
                "snapshot_id": manifest.snapshot_id,
                "generation": manifest.generation,
                "batch": manifest.batch,
                "rows": manifest.rows,
                "end_offsets": manifest.end_offsets,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
