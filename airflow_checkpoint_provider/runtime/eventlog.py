"""An append-only event log on local or fsspec storage, and a Spark streaming source over it.

The log is a folder of segment files ``<n>.jsonl`` (``n`` zero-padded), each a sequence of JSON lines. A
record's offset is its position in the whole log (0-based); a source offset ``{"offset": n}`` means "the first
``n`` records", i.e. the next record to read, exactly like a Kafka partition's offset. Only complete lines
(ending in ``\\n``) are visible, so a writer that crashed mid-line hides its torn tail.

The writer and the line counting are pure Python; the Spark parts import pyspark lazily so a producer process
(or the demo's event generator) does not need a JVM.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

SEGMENT_SUFFIX = ".jsonl"
SOURCE_NAME = "eventlog"
DEFAULT_SCHEMA = "offset BIGINT, key STRING, value BIGINT, ts DOUBLE"


def _segment_name(number: int) -> str:
    return f"{number:010d}{SEGMENT_SUFFIX}"


def _fs_and_path(location: str) -> tuple[Any, str]:
    from airflow_checkpoint_provider.checkpoint.storage import Location

    loc = Location.of(location)
    return loc.fs, loc.path


def list_segments(fs: Any, path: str) -> list[str]:
    """Segment file names in log order."""
    try:
        names = [posixpath.basename(p.rstrip("/")) for p in fs.ls(path, detail=False)]
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n.endswith(SEGMENT_SUFFIX) and n[: -len(SEGMENT_SUFFIX)].isdigit())


def count_complete_lines(fs: Any, file_path: str) -> int:
    """Number of newline-terminated lines in a file (a torn last line does not count)."""
    count = 0
    with fs.open(file_path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            count += chunk.count(b"\n")
    return count


@dataclass(frozen=True)
class Segment:
    name: str
    first: int  # offset of its first record
    count: int  # complete records in it


class EventLogIndex:
    """Maps record offsets to segments. Sealed segments (all but the last) are counted once and cached."""

    def __init__(self, location: str) -> None:
        self.location = location
        self.fs, self.path = _fs_and_path(location)
        self._sealed: dict[str, int] = {}

    def segments(self) -> list[Segment]:
        names = list_segments(self.fs, self.path)
        result: list[Segment] = []
        first = 0
        for i, name in enumerate(names):
            is_last = i == len(names) - 1
            count = self._sealed.get(name)
            if count is None:
                count = count_complete_lines(self.fs, posixpath.join(self.path, name))
                if not is_last:
                    self._sealed[name] = count
            result.append(Segment(name, first, count))
            first += count
        return result

    def end(self) -> int:
        """Offset one past the last complete record."""
        segments = self.segments()
        return segments[-1].first + segments[-1].count if segments else 0


def read_records(
    location: str, start: int, end: int, segments: Sequence[Segment] | None = None
) -> Iterator[dict[str, Any]]:
    """Yield the records with offsets in ``[start, end)`` as dicts, each with its ``offset``."""
    fs, path = _fs_and_path(location)
    if segments is None:
        segments = EventLogIndex(location).segments()
    for seg in segments:
        seg_end = seg.first + seg.count
        if seg_end <= start or seg.first >= end:
            continue
        offset = seg.first
        with fs.open(posixpath.join(path, seg.name), "rb") as handle:
            for raw in handle:
                if offset >= end or not raw.endswith(b"\n"):
                    break
                if offset >= start:
                    record = json.loads(raw)
                    record["offset"] = offset
                    yield record
                offset += 1


class EventLogWriter:
    """Appends JSON records to the log, rolling to a new segment every ``segment_records`` records.

    One writer per log. Each ``append`` writes whole lines and flushes, so readers never see a torn record
    except the tail of a crashed write, which stays invisible until completed (it never is: the next writer
    starts a new segment).
    """

    def __init__(self, location: str, segment_records: int = 10_000) -> None:
        self.fs, self.path = _fs_and_path(location)
        self.fs.makedirs(self.path, exist_ok=True)
        self.segment_records = segment_records
        segments = EventLogIndex(location).segments()
        self._next_offset = segments[-1].first + segments[-1].count if segments else 0
        # Always start a fresh segment: a previous writer may have left a torn line at the end of the last
        # one.
        self._segment_number = len(segments)
        self._in_segment = 0
        self._handle: Any = None

    @property
    def next_offset(self) -> int:
        return self._next_offset

    def append(self, records: Iterable[dict[str, Any]]) -> int:
        """Append records; return the offset after the last one written."""
        lines: list[bytes] = []
        for record in records:
            record = {k: v for k, v in record.items() if k != "offset"}
            lines.append(json.dumps(record, separators=(",", ":")).encode() + b"\n")
        for line in lines:
            if self._handle is None or self._in_segment >= self.segment_records:
                self._roll()
            self._handle.write(line)
            self._in_segment += 1
            self._next_offset += 1
        if self._handle is not None:
            self._handle.flush()
        return self._next_offset

    def _roll(self) -> None:
        if self._handle is not None:
            self._handle.close()
        name = posixpath.join(self.path, _segment_name(self._segment_number))
        self._segment_number += 1
        self._in_segment = 0
        self._handle = self.fs.open(name, "ab")

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> EventLogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- Spark source -------------------------------------------------------------------------------------------


def register(spark: Any) -> None:
    """Register the ``eventlog`` streaming source with a SparkSession."""
    spark.dataSource.register(_make_source_class())


_SOURCE_CLASS: Any = None


def _make_source_class() -> Any:
    """Build the DataSource classes on first use, so importing this module does not import pyspark."""
    global _SOURCE_CLASS
    if _SOURCE_CLASS is not None:
        return _SOURCE_CLASS
    from pyspark.sql.datasource import DataSource, DataSourceStreamReader, InputPartition
    from pyspark.sql.streaming.datasource import ReadAllAvailable, ReadMaxRows

    class EventLogPartition(InputPartition):
        def __init__(self, start: int, end: int, segments: list[Segment]) -> None:
            super().__init__((start, end))
            self.start = start
            self.end = end
            self.segments = segments

    class EventLogStreamReader(DataSourceStreamReader):
        def __init__(self, options: dict[str, str], schema: Any) -> None:
            """:param options: the source options, names lower-cased."""
            if "path" not in options:
                raise ValueError("the eventlog source needs a path: .option('path', <log folder>)")
            self.location = options["path"]
            self.starting = int(options.get("startingoffset", "0"))
            if self.starting < 0:
                raise ValueError(f"startingOffset must be >= 0, got {self.starting}")
            self.max_rows = int(options["maxrecordsperbatch"]) if "maxrecordsperbatch" in options else None
            self.per_partition = int(options.get("recordsperpartition", "50000"))
            self.fence = _fence_from_options(options)
            self.index = EventLogIndex(self.location)
            self.field_names = [f.name for f in schema.fields]

        def initialOffset(self) -> dict[str, int]:
            return {"offset": self.starting}

        def getDefaultReadLimit(self) -> Any:
            return ReadMaxRows(self.max_rows) if self.max_rows else ReadAllAvailable()

        def latestOffset(self, start: dict[str, int], limit: Any) -> dict[str, int]:
            begin = int(start["offset"])
            end = self.index.end()
            if isinstance(limit, ReadMaxRows):
                end = min(end, begin + limit.max_rows)
            end = max(begin, end)
            if self.fence is not None:
                end = self.fence.admit(begin, end)
            return {"offset": end}

        def reportLatestOffset(self) -> dict[str, int]:
            return {"offset": self.index.end()}

        def partitions(self, start: dict[str, int], end: dict[str, int]) -> list[Any]:
            begin, finish = int(start["offset"]), int(end["offset"])
            if finish <= begin:
                return []
            segments = [s for s in self.index.segments() if s.first + s.count > begin and s.first < finish]
            parts = []
            for lo in range(begin, finish, self.per_partition):
                hi = min(finish, lo + self.per_partition)
                parts.append(
                    EventLogPartition(
                        lo, hi, [s for s in segments if s.first + s.count > lo and s.first < hi]
                    )
                )
            return parts

        def read(self, partition: Any) -> Iterator[tuple[Any, ...]]:
            names = self.field_names
            for record in read_records(self.location, partition.start, partition.end, partition.segments):
                yield tuple(record.get(n) for n in names)

        def commit(self, end: dict[str, int]) -> None:
            return None

    class EventLogDataSource(DataSource):
        @classmethod
        def name(cls) -> str:
            return SOURCE_NAME

        def schema(self) -> str:
            return DEFAULT_SCHEMA

        def streamReader(self, schema: Any) -> Any:
            # Spark lower-cases option names: normalise them once here.
            return EventLogStreamReader({k.lower(): v for k, v in self.options.items()}, schema)

    _SOURCE_CLASS = EventLogDataSource
    return _SOURCE_CLASS


def _fence_from_options(options: dict[str, str]) -> Any:
    """The stop fence, when the managed runtime passed the generation's control folder (see runtime.fence)."""
    control = options.get("stopfencecontrolpath")
    if not control:
        return None
    from airflow_checkpoint_provider.runtime.fence import SourceFence

    return SourceFence(control, options["path"])
