"""A DStream checkpoint, read without a JVM: what Spark writes, and the batch records the runtime adds.

Spark Streaming's checkpoint folder holds ``checkpoint-<batch time ms>`` files (the Java-serialized,
compressed DStream graph, written when a batch is *generated* and again when it completes; the previous copy
becomes ``checkpoint-<ms>.bk``), ``receivedBlockMetadata/``, and one ``<uuid>/rdd-<n>/`` folder per
checkpointed RDD (the state, pickled). None of it says which batch *completed*, or where the source stood;
and the graph cannot be read outside a JVM.

So the managed DStream runtime writes one record per completed batch into ``acp-batches/<batch time ms>.json``
inside the same folder (Spark ignores names it does not know): the batch time (our batch id for DStream
jobs), the source position after that batch, and the records it read. The last record is the checkpoint's
last committed batch; a ``checkpoint-<ms>`` newer than it is a batch generated but not completed.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from airflow_checkpoint_provider.checkpoint.storage import Entry, Location
from airflow_checkpoint_provider.exceptions import (
    CheckpointProviderError,
    CorruptCheckpointError,
    FolderNotFileError,
)

#: Spark's graph checkpoint files: ``checkpoint-<batch time ms>`` and their ``.bk`` twins.
GRAPH_FILE = re.compile(r"^checkpoint-(\d+)(\.bk)?$")
#: Spark's checkpoint writer writes the graph to ``temp`` first, then renames it.
GRAPH_TEMP = "temp"
#: The runtime's per-batch records, inside the checkpoint folder.
BATCHES = "acp-batches"
#: Spark's folder of write-ahead-log metadata for receivers.
RECEIVED = "receivedBlockMetadata"
RDD_FOLDER = re.compile(r"^rdd-(\d+)$")
#: ``SparkContext.setCheckpointDir`` makes one ``<uuid>`` folder per context, before any graph file.
UUID_FOLDER = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
#: Completed-batch records kept (the newest ones; older records are pruned as batches complete).
KEEP_RECORDS = 200


def is_dstream_checkpoint(names: set[str]) -> bool:
    """Whether a folder's entry names are a DStream checkpoint's: graph files, the runtime's records, or
    only the RDD checkpoint folder(s) a streaming context creates before its first batch."""
    return (
        BATCHES in names
        or any(GRAPH_FILE.match(n) for n in names)
        or (bool(names) and all(UUID_FOLDER.match(n) or n in (RECEIVED, GRAPH_TEMP) for n in names))
    )


@dataclass(frozen=True, slots=True)
class BatchRecord:
    """``acp-batches/<ms>.json``: one completed DStream batch."""

    batch: int  # the batch time in epoch milliseconds: a DStream job's batch id
    end_offsets: list[Any]  # the source position after this batch, per source (``{"offset": n}``)
    records: int = 0
    completed_at: float = field(default_factory=time.time)
    processing_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any, where: str) -> BatchRecord:
        if not isinstance(data, dict) or not isinstance(data.get("batch"), int):
            raise CorruptCheckpointError("a DStream batch record without a whole-number batch", path=where)
        offsets = data.get("end_offsets")
        if not isinstance(offsets, list):
            raise CorruptCheckpointError("a DStream batch record without a list of end offsets", path=where)
        records = data.get("records", 0)
        return cls(
            batch=int(data["batch"]),
            end_offsets=offsets,
            records=int(records) if isinstance(records, int) else 0,
            completed_at=float(data.get("completed_at") or 0.0),
            processing_s=data.get("processing_s") if isinstance(data.get("processing_s"), float) else None,
        )


@dataclass(frozen=True)
class DStreamFacts:
    """What a DStream checkpoint folder shows without a JVM."""

    graph_times: tuple[int, ...]  # batch times with a ``checkpoint-<ms>`` file (retained graph checkpoints)
    backup_times: tuple[int, ...]  # ... with a ``.bk`` twin (the graph was written again on completion)
    rdd_folders: tuple[str, ...]  # ``<uuid>/rdd-<n>`` checkpointed RDDs (the state, pickled)
    completed: tuple[int, ...]  # batch times with a runtime record (retained records)
    last: BatchRecord | None  # the last completed batch's record
    has_received_metadata: bool

    @property
    def latest_graph_time(self) -> int | None:
        return self.graph_times[-1] if self.graph_times else None

    @property
    def in_flight(self) -> int | None:
        """A batch generated after the last completed one (None when there is none)."""
        latest = self.latest_graph_time
        if latest is None:
            return None
        if self.last is None or latest > self.last.batch:
            return latest
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "graph_checkpoint_times": list(self.graph_times),
            "backup_times": list(self.backup_times),
            "rdd_checkpoint_folders": list(self.rdd_folders),
            "completed_batches_retained": list(self.completed),
            "received_block_metadata": self.has_received_metadata,
            "not_readable_without_a_jvm": [
                "the DStream graph (checkpoint-<ms>: Java-serialized and compressed)",
                "the state RDDs (<uuid>/rdd-<n>: pickled Python objects in Spark's checkpoint format)",
                "which state RDD belongs to which batch time",
            ],
        }


def read_facts(location: Location, entries: dict[str, Entry]) -> DStreamFacts:
    """Read a DStream checkpoint folder whose top-level entries are ``entries``."""
    graph: list[int] = []
    backups: list[int] = []
    for name, entry in entries.items():
        match = GRAPH_FILE.match(name)
        if not match:
            continue
        if entry.is_dir:
            raise CorruptCheckpointError(
                "a folder stands where a DStream graph checkpoint file belongs", path=location.child(name).uri
            )
        (backups if match.group(2) else graph).append(int(match.group(1)))
    rdds: list[str] = []
    for name, entry in sorted(entries.items()):
        if entry.is_dir and name not in (BATCHES, RECEIVED):
            rdds += [
                f"{name}/{e.name}"
                for e in location.child(name).list_or_empty()
                if e.is_dir and RDD_FOLDER.match(e.name)
            ]
    completed = batch_times(location) if BATCHES in entries else []
    last = read_batch(location, completed[-1]) if completed else None
    return DStreamFacts(
        graph_times=tuple(sorted(graph)),
        backup_times=tuple(sorted(backups)),
        rdd_folders=tuple(rdds),
        completed=tuple(completed),
        last=last,
        has_received_metadata=RECEIVED in entries,
    )


def batch_times(checkpoint: Location) -> list[int]:
    """Batch times with a completed-batch record, oldest first."""
    folder = checkpoint.child(BATCHES)
    times = []
    for entry in folder.list_or_empty():
        stem, dot, ext = entry.name.partition(".")
        if dot and ext == "json" and stem.isdigit():
            if entry.is_dir:
                raise CorruptCheckpointError(
                    "a folder stands where a DStream batch record belongs",
                    path=folder.child(entry.name).uri,
                    batch=int(stem),
                )
            times.append(int(stem))
    return sorted(times)


def read_batch(checkpoint: Location, batch: int) -> BatchRecord:
    location = checkpoint.child(BATCHES, f"{int(batch)}.json")
    try:
        text = location.read_text()
    except FileNotFoundError as exc:
        raise CorruptCheckpointError(
            f"the record of DStream batch {batch} vanished while reading", path=location.uri, batch=batch
        ) from exc
    except (FolderNotFileError, IsADirectoryError) as exc:
        raise CorruptCheckpointError(
            "a folder stands where a DStream batch record belongs", path=location.uri, batch=batch
        ) from exc
    except UnicodeDecodeError as exc:
        raise CorruptCheckpointError(
            f"a DStream batch record is not UTF-8 text: {exc}", path=location.uri, batch=batch
        ) from exc
    except CheckpointProviderError:
        raise
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise CorruptCheckpointError(
            f"a DStream batch record is not JSON: {exc}", path=location.uri, batch=batch
        ) from exc
    return BatchRecord.from_json(data, location.uri)


def write_batch(checkpoint: Location, record: BatchRecord, keep: int = KEEP_RECORDS) -> None:
    """Record a completed batch (atomically), then prune all but the newest ``keep`` records."""
    folder = checkpoint.child(BATCHES)
    folder.child(f"{record.batch}.json").write_text(json.dumps(record.to_json()))
    times = batch_times(checkpoint)
    for old in times[:-keep] if len(times) > keep else []:
        folder.child(f"{old}.json").remove()
