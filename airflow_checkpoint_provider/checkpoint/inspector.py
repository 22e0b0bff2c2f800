"""Where a Spark Structured Streaming (or DStream) checkpoint stands, read without a JVM.

Cheap on long-running checkpoints: the root, ``offsets/``, ``commits/`` and ``state/`` folders are each listed
once, and only the files that carry the answer are read (the query metadata, the last committed batch's
offsets and commit, the in-flight batch's offsets, and one metadata file per stateful operator). Offsets of
any other retained batch are read on request with :meth:`CheckpointReader.offsets`.

A DStream checkpoint (``checkpoint-<ms>`` graph files) is recognised too: its batches are batch times in
milliseconds, and its last committed batch and source position come from the records the managed DStream
runtime writes (see :mod:`airflow_checkpoint_provider.checkpoint.dstream`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from airflow_checkpoint_provider.checkpoint import dstream as _dstream
from airflow_checkpoint_provider.checkpoint.logs import (
    BatchCommit,
    BatchOffsets,
    OperatorMetadata,
    parse_commit,
    parse_offsets,
    parse_operator_metadata,
    parse_query_metadata,
)
from airflow_checkpoint_provider.checkpoint.storage import Entry, Location
from airflow_checkpoint_provider.exceptions import (
    CheckpointNotFoundError,
    CorruptCheckpointError,
    EmptyCheckpointError,
    JobRootNotCheckpointError,
    NotACheckpointError,
    SnapshotNotCheckpointError,
)

CHECKPOINT_FORMAT_CONF = "spark.sql.streaming.stateStore.checkpointFormatVersion"
PROVIDER_CONF = "spark.sql.streaming.stateStore.providerClass"
SHUFFLE_PARTITIONS_CONF = "spark.sql.shuffle.partitions"
JOB_ROOT_MARKERS = ("job.json", "generations")
SNAPSHOT_MARKERS = ("manifest.json",)


@dataclass(frozen=True)
class StatefulOperator:
    """One stateful operator of the query, as its state folder and metadata describe it."""

    operator_id: int
    name: str | None
    partitions: int | None
    stores: tuple[str, ...]
    state_variables: tuple[str, ...]
    metadata_version: int | None


@dataclass(frozen=True)
class CheckpointInfo:
    """The answer of :func:`inspect_checkpoint`: a checkpoint's position, read at one moment."""

    location: str
    query_id: str | None
    last_committed_batch: int | None
    in_flight_batch: int | None
    committed: BatchOffsets | None
    in_flight: BatchOffsets | None
    commit: BatchCommit | None
    retained_batches: tuple[int, int] | None
    offset_batches: tuple[int, ...]
    commit_batches: tuple[int, ...]
    operators: tuple[StatefulOperator, ...]
    #: ``structured`` (offsets/commits logs) or ``dstream`` (``checkpoint-<ms>`` graph files).
    engine: str = "structured"
    dstream: _dstream.DStreamFacts | None = None

    @property
    def offset_log_version(self) -> int | None:
        entry = self.committed or self.in_flight
        return entry.log_version if entry else None

    @property
    def commit_log_version(self) -> int | None:
        return self.commit.log_version if self.commit else None

    @property
    def checkpoint_format_version(self) -> int | None:
        entry = self.committed or self.in_flight
        if entry is None:
            return None
        pinned = entry.conf.get(CHECKPOINT_FORMAT_CONF)
        if pinned and pinned.isdigit():
            return int(pinned)
        return 2 if self.commit is not None and self.commit.has_state_unique_ids else 1

    @property
    def state_store_provider(self) -> str | None:
        entry = self.committed or self.in_flight
        return entry.conf.get(PROVIDER_CONF) if entry else None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; the keys are the CLI's ``--json`` contract (additions only, never renames)."""
        committed = self.committed
        latest = committed or self.in_flight
        return {
            "location": self.location,
            "engine": self.engine,
            **({"dstream": self.dstream.to_json()} if self.dstream is not None else {}),
            "query_id": self.query_id,
            "last_committed_batch": self.last_committed_batch,
            "in_flight_batch": self.in_flight_batch,
            "committed_end_offsets": committed.end_offsets_json() if committed else [],
            "in_flight_end_offsets": self.in_flight.end_offsets_json() if self.in_flight else None,
            "source_ids": list(committed.source_ids) if committed else [],
            "batch_timestamp_ms": committed.batch_timestamp_ms if committed else None,
            "watermark_ms": committed.watermark_ms if committed else None,
            "next_watermark_ms": self.commit.next_watermark_ms if self.commit else None,
            "retained_batches": list(self.retained_batches) if self.retained_batches else None,
            "offset_log_version": self.offset_log_version,
            "commit_log_version": self.commit_log_version,
            "checkpoint_format_version": self.checkpoint_format_version,
            "state_store_provider": self.state_store_provider,
            "shuffle_partitions": _opt_int(latest.conf.get(SHUFFLE_PARTITIONS_CONF)) if latest else None,
            "operators": [
                {
                    "id": op.operator_id,
                    "name": op.name,
                    "partitions": op.partitions,
                    "stores": list(op.stores),
                    "state_variables": list(op.state_variables),
                    "metadata_version": op.metadata_version,
                }
                for op in self.operators
            ],
        }


def _opt_int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def _batch_ids(entries: list[Entry]) -> list[int]:
    """Batch ids among a log folder's entries; ``.crc`` twins and ``.tmp`` files are not batches."""
    return sorted(int(e.name) for e in entries if e.name.isdigit() and not e.is_dir)


class CheckpointReader:
    """Reads one checkpoint folder. Construct it, then call :meth:`inspect` (or :meth:`offsets` for a
    batch)."""

    def __init__(self, location: str | os.PathLike[str] | Location | Any) -> None:
        self.location = Location.of(location)

    @staticmethod
    def _read(loc: Location, missing: str, batch: int | None = None) -> str:
        """Read one checkpoint file as text; a missing or non-text file is a typed error naming it."""
        try:
            return loc.read_text()
        except FileNotFoundError as exc:
            raise CorruptCheckpointError(missing, path=loc.uri, batch=batch) from exc
        except UnicodeDecodeError as exc:
            raise CorruptCheckpointError(f"checkpoint file is not UTF-8 text: {exc}", path=loc.uri) from exc
        except IsADirectoryError as exc:
            raise CorruptCheckpointError(
                "a folder stands where a checkpoint file belongs", path=loc.uri
            ) from exc

    def _file(self, *parts: str | int) -> tuple[Location, str]:
        loc = self.location.child(*parts)
        return loc, self._read(loc, "checkpoint file vanished while reading (purged by a running query?)")

    def offsets(self, batch_id: int) -> BatchOffsets:
        """The end offsets Spark planned for ``batch_id`` (raises if that batch is no longer retained)."""
        loc = self.location.child("offsets", batch_id)
        text = self._read(loc, f"batch {batch_id} is not retained in the offset log", batch_id)
        return parse_offsets(text, batch_id, loc.uri)

    def commit(self, batch_id: int) -> BatchCommit:
        loc, text = self._file("commits", batch_id)
        return parse_commit(text, batch_id, loc.uri)

    def _classify_root(self, allow_empty: bool) -> dict[str, Entry] | None:
        uri = self.location.uri
        try:
            entries = {e.name: e for e in self.location.list()}
        except FileNotFoundError as exc:
            if allow_empty:
                return None
            raise CheckpointNotFoundError(
                "no checkpoint here: the path does not exist", path=uri, hint="Check the path or URI"
            ) from exc
        except NotADirectoryError as exc:
            raise NotACheckpointError("expected a checkpoint folder, found a file", path=uri) from exc
        if not self.location.is_dir():
            raise NotACheckpointError("expected a checkpoint folder, found a file", path=uri)
        visible = {n: e for n, e in entries.items() if not n.startswith(".")}
        if not visible:
            if allow_empty:
                return None
            raise EmptyCheckpointError("the checkpoint folder is empty: no query has started on it", path=uri)
        if any(m in visible for m in JOB_ROOT_MARKERS):
            raise JobRootNotCheckpointError(
                "this folder is a job root, not a checkpoint",
                path=uri,
                hint="Checkpoints live at <job root>/generations/<g>/checkpoint; "
                "use 'airflow-checkpoint status' for a job root",
            )
        if any(m in visible for m in SNAPSHOT_MARKERS):
            raise SnapshotNotCheckpointError(
                "this folder is a snapshot, not a checkpoint",
                path=uri,
                hint="Use 'airflow-checkpoint snapshots <job root>' to list snapshots",
            )
        if "metadata" not in visible and _dstream.is_dstream_checkpoint(set(visible)):
            return visible
        if "metadata" not in visible:
            logs = [self.location.child(d).list_or_empty() for d in ("offsets", "commits") if d in visible]
            if logs and not any(_batch_ids(entries) for entries in logs):
                # Spark creates the log folders before the metadata file: a driver that died in between left a
                # checkpoint with no batch at all, which Spark itself starts over on. So do we.
                if allow_empty:
                    return None
                raise EmptyCheckpointError(
                    "the checkpoint was created but no batch was ever planned in it", path=uri
                )
            if logs:
                raise CorruptCheckpointError(
                    "checkpoint has an offset or commit log but no 'metadata' file",
                    path=self.location.child("metadata").uri,
                )
            raise NotACheckpointError(
                "not a Spark streaming checkpoint: expected a 'metadata' file and 'offsets'/'commits' "
                "folders, "
                f"found {', '.join(sorted(visible)[:6])}",
                path=uri,
            )
        return visible

    def inspect(self, *, allow_empty: bool = False) -> CheckpointInfo:
        """Read where the checkpoint stands.

        :param allow_empty: treat a missing or empty folder as a checkpoint with no batch (how a
            generation looks before its first start) instead of raising.
        """
        root = self._classify_root(allow_empty)
        if root is None:
            return CheckpointInfo(self.location.uri, None, None, None, None, None, None, None, (), (), ())
        if "metadata" not in root:
            return self._inspect_dstream(root)
        meta_loc, meta_text = self._file("metadata")
        query_id = parse_query_metadata(meta_text, meta_loc.uri)

        offset_ids = _batch_ids(self.location.child("offsets").list_or_empty()) if "offsets" in root else []
        commit_ids = _batch_ids(self.location.child("commits").list_or_empty()) if "commits" in root else []

        last_committed = commit_ids[-1] if commit_ids else None
        in_flight = (
            offset_ids[-1]
            if offset_ids and (last_committed is None or offset_ids[-1] > last_committed)
            else None
        )

        committed_offsets = commit = None
        if last_committed is not None:
            if last_committed not in offset_ids:
                raise CorruptCheckpointError(
                    f"batch {last_committed} is committed but its offset log entry is missing",
                    path=self.location.child("offsets", last_committed).uri,
                    batch=last_committed,
                )
            committed_offsets = self.offsets(last_committed)
            commit = self.commit(last_committed)
        in_flight_offsets = self.offsets(in_flight) if in_flight is not None else None

        retained = None
        if last_committed is not None:
            first = max(offset_ids[0], commit_ids[0])
            retained = (first, last_committed)

        operators = self._operators() if "state" in root else ()
        return CheckpointInfo(
            location=self.location.uri,
            query_id=query_id,
            last_committed_batch=last_committed,
            in_flight_batch=in_flight,
            committed=committed_offsets,
            in_flight=in_flight_offsets,
            commit=commit,
            retained_batches=retained,
            offset_batches=tuple(offset_ids),
            commit_batches=tuple(commit_ids),
            operators=operators,
        )

    def _inspect_dstream(self, root: dict[str, Entry]) -> CheckpointInfo:
        facts = _dstream.read_facts(self.location, root)
        last = facts.last
        if last is not None and not facts.graph_times:
            raise CorruptCheckpointError(
                f"DStream batch {last.batch} completed but no checkpoint-<time> graph file is left: Spark "
                "cannot restore this context",
                path=self.location.uri,
                batch=last.batch,
                hint="Start a new generation from the job's latest snapshot",
            )
        committed = None
        if last is not None:
            committed = BatchOffsets(
                batch_id=last.batch,
                log_version=1,
                batch_timestamp_ms=last.batch,
                watermark_ms=None,
                conf={},
                end_offsets=tuple(json.dumps(o) if o is not None else None for o in last.end_offsets),
                source_ids=tuple(str(i) for i in range(len(last.end_offsets))),
            )
        return CheckpointInfo(
            location=self.location.uri,
            query_id=None,
            last_committed_batch=last.batch if last else None,
            in_flight_batch=facts.in_flight,
            committed=committed,
            in_flight=None,
            commit=None,
            retained_batches=(facts.completed[0], facts.completed[-1]) if facts.completed else None,
            offset_batches=facts.graph_times,
            commit_batches=facts.completed,
            operators=(),
            engine="dstream",
            dstream=facts,
        )

    def _operators(self) -> tuple[StatefulOperator, ...]:
        state = self.location.child("state")
        result: list[StatefulOperator] = []
        for entry in sorted(state.list_or_empty(), key=lambda e: e.name):
            if not (entry.is_dir and entry.name.isdigit()):
                continue
            op_loc = state.child(entry.name)
            children = op_loc.list_or_empty()
            partitions = sum(1 for c in children if c.is_dir and c.name.isdigit())
            meta = self._operator_metadata(op_loc) if any(c.name == "_metadata" for c in children) else None
            result.append(
                StatefulOperator(
                    operator_id=int(entry.name),
                    name=meta.name if meta else None,
                    partitions=(meta.num_partitions if meta and meta.num_partitions else None)
                    or partitions
                    or None,
                    stores=meta.stores if meta else (),
                    state_variables=meta.state_variables if meta else (),
                    metadata_version=meta.version if meta else None,
                )
            )
        return tuple(result)

    def _operator_metadata(self, op_loc: Location) -> OperatorMetadata | None:
        meta_dir = op_loc.child("_metadata")
        names = {e.name: e for e in meta_dir.list_or_empty()}
        if "v2" in names:
            versions = _batch_ids(meta_dir.child("v2").list_or_empty())
            if versions:
                loc = meta_dir.child("v2", versions[-1])
                return parse_operator_metadata(self._read(loc, "operator metadata vanished"), loc.uri)
        if "metadata" in names:
            loc = meta_dir.child("metadata")
            return parse_operator_metadata(self._read(loc, "operator metadata vanished"), loc.uri)
        return None


def inspect_checkpoint(
    location: str | os.PathLike[str] | Location | Any, *, allow_empty: bool = False
) -> CheckpointInfo:
    """Read where the checkpoint at ``location`` stands (see :class:`CheckpointReader`)."""
    return CheckpointReader(location).inspect(allow_empty=allow_empty)
