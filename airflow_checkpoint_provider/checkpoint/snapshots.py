"""Snapshots under ``<job root>/snapshots/<id>/``: manifest, verification and the catalogue. Pure Python.

A snapshot is the state of one committed batch N of one generation, as Parquet, plus the source end offsets of
that same batch N (from ``offsets/N`` of the same checkpoint). Layout::

    snapshots/<id>/
      parts/<part>/part-*.parquet   one folder per state part (a state variable, or an operator's store)
      manifest.json                 written last: a folder without it is not a snapshot
      verified.json                 written by verification (which checks, when, of which manifest)

The exporter that writes them is a Spark job (``runtime/export.py``); everything here reads them with fsspec
and pyarrow, so the Airflow side can list, verify and delete snapshots without a JVM.
"""

from __future__ import annotations

import builtins
import hashlib
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot
from airflow_checkpoint_provider.checkpoint.storage import Location
from airflow_checkpoint_provider.exceptions import (
    ForeignSnapshotError,
    SnapshotCorruptError,
    SnapshotNotFoundError,
    SnapshotProtectedError,
)

MANIFEST = "manifest.json"
VERIFIED = "verified.json"
PARTS = "parts"
FORMAT_VERSION = 1
#: An export folder without a manifest younger than this may still be being written; retention leaves it
#: alone.
INCOMPLETE_GRACE = timedelta(hours=6)


def new_snapshot_id(generation: int, batch: int, now: Any = None) -> str:
    """``<UTC time>-g<generation>-b<batch>``: sorts by time, and says where it came from."""
    import pendulum

    at = pendulum.now("UTC") if now is None else now
    return f"{at.strftime('%Y%m%dT%H%M%S')}Z-g{int(generation)}-b{int(batch)}"


def data_file(relative: str) -> bool:
    """Whether a file inside a part folder is data (Spark also writes ``_SUCCESS`` and hidden ``.crc``
    files)."""
    name = relative.rsplit("/", 1)[-1]
    return not name.startswith(("_", "."))


@dataclass(frozen=True, slots=True)
class PartFile:
    name: str
    size: int
    sha256: str
    rows: int


@dataclass(frozen=True, slots=True)
class Part:
    """One state part: what it was read from, its flattened columns, and its files."""

    name: str
    path: str  # relative to the snapshot folder
    operator_id: int
    operator_name: str
    store_name: str
    state_var: str | None
    state_var_type: str | None
    key_columns: list[str]
    value_columns: list[str]
    #: per column: name, Spark type, and the field of the state reader's output it came from (e.g.
    #: "value.sum#2")
    columns: list[dict[str, str]]
    spark_schema: str
    rows: int
    files: list[PartFile]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Part:
        values = dict(data)
        values["files"] = [PartFile(**f) for f in data.get("files", [])]
        return cls(**{k: values[k] for k in cls.__slots__ if k in values})


@dataclass(frozen=True, slots=True)
class Manifest:
    snapshot_id: str
    job: str
    generation: int
    query_id: str
    batch: int
    end_offsets: list[Any]
    checkpoint: str
    checkpoint_format_version: int
    parts: dict[str, Part]
    spark_version: str
    code_version: str
    created_at: str
    export_seconds: float = 0.0
    source_confs: dict[str, str] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        values = dict(data)
        values["parts"] = {name: Part.from_json(p) for name, p in (data.get("parts") or {}).items()}
        return cls(**{k: values[k] for k in cls.__slots__ if k in values})

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.parts.values())


def _manifest_digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def read_manifest(root: JobRoot, snapshot_id: str, *, generation: int | None = None) -> Manifest:
    """The manifest of a snapshot of this job; typed errors for a missing, unreadable or foreign one."""
    folder = root.snapshot_dir(snapshot_id)
    data = root.read_json(folder.child(MANIFEST), what="snapshot manifest", error=SnapshotCorruptError)
    if data is None:
        raise SnapshotNotFoundError(
            f"snapshot {snapshot_id!r} does not exist or has no manifest (an unfinished export is not a "
            "snapshot)",
            path=folder.uri,
            job=root.job,
            generation=generation,
            hint="List snapshots with 'airflow-checkpoint snapshots <job root>'",
        )
    if data.get("job") != root.job:
        raise ForeignSnapshotError(
            f"snapshot {snapshot_id!r} belongs to job {data.get('job')!r}, not {root.job!r}",
            path=folder.uri,
            job=root.job,
            generation=generation,
        )
    try:
        manifest = Manifest.from_json(data)
    except (TypeError, KeyError, ValueError) as exc:
        raise SnapshotCorruptError(
            f"snapshot manifest is malformed: {exc}",
            path=folder.child(MANIFEST).uri,
            job=root.job,
            generation=generation,
        ) from exc
    if manifest.snapshot_id != snapshot_id:
        raise ForeignSnapshotError(
            f"folder {snapshot_id!r} holds the manifest of snapshot {manifest.snapshot_id!r} (copied or "
            "renamed?)",
            path=folder.uri,
            job=root.job,
            generation=generation,
        )
    return manifest


# --- verification ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verification:
    snapshot_id: str
    ok: bool
    rows: int
    files: int
    bytes: int
    problems: list[str]
    deep: bool = False
    verified_at: str = ""
    manifest_sha256: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def file_sha256(location: Location) -> tuple[str, int]:
    """(SHA-256 hex digest, size in bytes) of one file, streamed."""
    digest = hashlib.sha256()
    size = 0
    with location.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def file_facts(location: Location) -> tuple[int, list[str]]:
    """(rows, top-level column names) from a Parquet footer; raises if it is not readable Parquet."""
    import pyarrow.parquet as pq

    with location.open("rb") as handle:
        parquet = pq.ParquetFile(handle)
        return int(parquet.metadata.num_rows), list(parquet.schema_arrow.names)


def verify_snapshot(
    root: JobRoot, snapshot_id: str, *, record: bool = True, generation: int | None = None
) -> Verification:
    """Re-read every part's files against the manifest: present, no extras, sizes, SHA-256, Parquet footers,
    row counts and column names. Raises :class:`SnapshotCorruptError` listing every problem; on success writes
    ``verified.json`` (when ``record``). ``generation``: the generation the caller acts for (named in errors;
    default the snapshot's own). The deep check against the checkpoint is in ``runtime/export.py``."""
    import pendulum

    folder = root.snapshot_dir(snapshot_id)
    raw = _read_raw_manifest(root, snapshot_id)
    manifest = read_manifest(root, snapshot_id, generation=generation)
    problems: list[str] = []
    rows = files = size = 0
    for part in manifest.parts.values():
        part_dir = folder.child(part.path)
        present = {rel: sz for rel, sz in part_dir.walk_files() if data_file(rel)}
        listed = {f.name: f for f in part.files}
        for extra in sorted(set(present) - set(listed)):
            problems.append(f"part {part.name}: file {extra} is not in the manifest")
        part_rows = 0
        for name, expected in sorted(listed.items()):
            loc = part_dir.child(name)
            if name not in present:
                problems.append(f"part {part.name}: file {name} is missing")
                continue
            if present[name] != expected.size:
                problems.append(
                    f"part {part.name}: file {name} has {present[name]} bytes, manifest says "
                    f"{expected.size} (truncated or rewritten)"
                )
                continue
            if file_sha256(loc)[0] != expected.sha256:
                problems.append(f"part {part.name}: file {name} fails its SHA-256 checksum")
                continue
            try:
                n, names = file_facts(loc)
            # pyarrow raises several types for a bad footer
            except Exception as exc:  # noqa: BLE001
                problems.append(f"part {part.name}: file {name} is not readable Parquet ({exc})")
                continue
            if n != expected.rows:
                problems.append(f"part {part.name}: file {name} has {n} rows, manifest says {expected.rows}")
            wanted = [c["name"] for c in part.columns]
            if names != wanted:
                problems.append(f"part {part.name}: file {name} has columns {names}, manifest says {wanted}")
            part_rows += n
            files += 1
            size += expected.size
        if part_rows != part.rows and not any(p.startswith(f"part {part.name}:") for p in problems):
            problems.append(f"part {part.name}: {part_rows} rows in files, manifest says {part.rows}")
        rows += part_rows
    if problems:
        folder.child(VERIFIED).remove()  # an earlier verification no longer holds
        raise SnapshotCorruptError(
            f"snapshot {snapshot_id!r} (of generation {manifest.generation}, batch {manifest.batch}) does "
            "not match "
            "its manifest: " + "; ".join(problems),
            path=folder.uri,
            job=root.job,
            generation=manifest.generation if generation is None else generation,
            batch=manifest.batch,
            hint="Neither load it nor clean up on its strength; take a new snapshot",
        )
    result = Verification(
        snapshot_id=snapshot_id,
        ok=True,
        rows=rows,
        files=files,
        bytes=size,
        problems=[],
        verified_at=pendulum.now("UTC").to_iso8601_string(),
        manifest_sha256=_manifest_digest(raw),
    )
    if record:
        root.write_json(folder.child(VERIFIED), result.to_json())
    return result


def record_deep_verification(root: JobRoot, result: Verification) -> None:
    root.write_json(root.snapshot_dir(result.snapshot_id).child(VERIFIED), result.to_json())


def _read_raw_manifest(root: JobRoot, snapshot_id: str) -> bytes:
    try:
        return root.snapshot_dir(snapshot_id).child(MANIFEST).read_bytes()
    except FileNotFoundError:
        return b""


# --- the catalogue -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SnapshotEntry:
    """One folder under ``snapshots/``, as the catalogue sees it."""

    snapshot_id: str
    complete: bool
    verified: bool = False
    deep_verified: bool = False
    generation: int | None = None
    batch: int | None = None
    query_id: str | None = None
    created_at: str | None = None
    rows: int | None = None
    code_version: str | None = None
    end_offsets: list[Any] | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RetentionPlan:
    keep: list[str]
    delete: list[str]
    reasons: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class SnapshotCatalogue:
    """A job's snapshots: list newest first, find, latest verified, retention, delete — inside the job
    root."""

    def __init__(self, root: JobRoot) -> None:
        self.root = root

    def entry(self, snapshot_id: str) -> SnapshotEntry:
        folder = self.root.snapshot_dir(snapshot_id)
        raw = _read_raw_manifest(self.root, snapshot_id)
        if not raw:
            created = _folder_time(folder)
            return SnapshotEntry(snapshot_id=snapshot_id, complete=False, created_at=created)
        try:
            m = read_manifest(self.root, snapshot_id)
        except (SnapshotCorruptError, ForeignSnapshotError) as exc:
            return SnapshotEntry(snapshot_id=snapshot_id, complete=False, error=str(exc))
        marker = self.root.read_json(
            folder.child(VERIFIED), what="verification record", error=SnapshotCorruptError
        )
        verified = bool(
            marker and marker.get("ok") and marker.get("manifest_sha256") == _manifest_digest(raw)
        )
        return SnapshotEntry(
            snapshot_id=snapshot_id,
            complete=True,
            verified=verified,
            deep_verified=verified and bool(marker and marker.get("deep")),
            generation=m.generation,
            batch=m.batch,
            query_id=m.query_id,
            created_at=m.created_at,
            rows=m.rows,
            code_version=m.code_version,
            end_offsets=m.end_offsets,
        )

    def list(self) -> builtins.list[SnapshotEntry]:
        """Every snapshot folder, newest first (complete ones by creation time; unfinished ones flagged)."""
        entries = [self.entry(e.name) for e in self.root.snapshots_dir().list_or_empty() if e.is_dir]
        return sorted(entries, key=lambda e: (e.created_at or "", e.snapshot_id), reverse=True)

    def find(self, *, generation: int, batch: int, query_id: str | None = None) -> SnapshotEntry | None:
        """The newest complete snapshot of (generation, batch) — used to make a repeated export a no-op."""
        for e in self.list():
            if (
                e.complete
                and e.generation == generation
                and e.batch == batch
                and (query_id is None or e.query_id == query_id)
            ):
                return e
        return None

    def latest_verified(
        self, generation: int | None = None, batch: int | None = None
    ) -> SnapshotEntry | None:
        for e in self.list():
            if (
                e.verified
                and (generation is None or e.generation == generation)
                and (batch is None or e.batch == batch)
            ):
                return e
        return None

    def protected(self, entries: builtins.list[SnapshotEntry] | None = None) -> dict[str, str]:
        """Snapshot ids that retention and delete must keep, with the reason (``entries``: an existing
        listing)."""
        reasons: dict[str, str] = {}
        newest = next((e for e in (self.list() if entries is None else entries) if e.verified), None)
        if newest is not None:
            reasons[newest.snapshot_id] = "the newest verified snapshot"
        for g, record in self.root.generation_records().items():
            if record.get("snapshot") and not record.get("deleted_at"):
                reasons.setdefault(str(record["snapshot"]), f"generation {g} started from it and is kept")
        return reasons

    def plan_retention(
        self, *, keep_last: int | None = None, max_age: timedelta | None = None, now: Any = None
    ) -> RetentionPlan:
        """Which snapshots to delete: beyond the newest ``keep_last`` complete ones or older than ``max_age``,
        never a protected one; unfinished export folders older than a grace period go too."""
        import pendulum

        now = pendulum.now("UTC") if now is None else now
        entries = self.list()
        protected = self.protected(entries)
        keep: builtins.list[str] = []
        delete: builtins.list[str] = []
        reasons: dict[str, str] = {}
        complete_seen = 0
        for e in entries:
            if not e.complete:
                age = _age(e.created_at, now)
                if age is not None and age > INCOMPLETE_GRACE:
                    delete.append(e.snapshot_id)
                    reasons[e.snapshot_id] = f"unfinished export, {_fmt(age)} old"
                else:
                    keep.append(e.snapshot_id)
                    reasons[e.snapshot_id] = "unfinished export, may still be running"
                continue
            complete_seen += 1
            if e.snapshot_id in protected:
                keep.append(e.snapshot_id)
                reasons[e.snapshot_id] = f"protected: {protected[e.snapshot_id]}"
                continue
            age = _age(e.created_at, now)
            if keep_last is not None and complete_seen > keep_last:
                delete.append(e.snapshot_id)
                reasons[e.snapshot_id] = f"beyond the newest {keep_last}"
            elif max_age is not None and age is not None and age > max_age:
                delete.append(e.snapshot_id)
                reasons[e.snapshot_id] = f"{_fmt(age)} old, older than {_fmt(max_age)}"
            else:
                keep.append(e.snapshot_id)
                reasons[e.snapshot_id] = "within retention"
        return RetentionPlan(keep=keep, delete=delete, reasons=reasons)

    def apply_retention(self, **kwargs: Any) -> RetentionPlan:
        plan = self.plan_retention(**kwargs)
        for snapshot_id in plan.delete:
            self._remove(snapshot_id)
        return plan

    def delete(self, snapshot_id: str, *, force: bool = False) -> None:
        """Delete one snapshot folder (never a protected one unless ``force``); a missing one is a no-op."""
        reason = self.protected().get(snapshot_id)
        if reason and not force:
            raise SnapshotProtectedError(
                f"refusing to delete snapshot {snapshot_id!r}: {reason}",
                path=self.root.snapshot_dir(snapshot_id).uri,
                job=self.root.job,
            )
        self._remove(snapshot_id)

    def _remove(self, snapshot_id: str) -> None:
        folder = self.root.require_inside(self.root.snapshot_dir(snapshot_id))
        # The manifest goes first so that a half-deleted folder is never mistaken for a snapshot.
        folder.child(VERIFIED).remove()
        folder.child(MANIFEST).remove()
        folder.remove(recursive=True)


def _folder_time(folder: Location) -> str | None:
    import pendulum

    try:
        info = folder.fs.info(folder.path)
    except (FileNotFoundError, OSError):
        return None
    mtime = info.get("mtime") or info.get("LastModified") or info.get("created")
    if mtime is None:
        return None
    if isinstance(mtime, int | float):
        return pendulum.from_timestamp(float(mtime), tz="UTC").to_iso8601_string()
    return str(pendulum.instance(mtime).in_tz("UTC").to_iso8601_string())


def _age(created_at: str | None, now: Any) -> timedelta | None:
    import pendulum

    if not created_at:
        return None
    try:
        parsed = pendulum.parse(created_at)
    except (ValueError, TypeError):
        return None
    if not isinstance(parsed, pendulum.DateTime):
        return None
    age: timedelta = now - parsed
    return age


def _fmt(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds >= 86400:
        return f"{seconds / 86400:.1f}d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds}s"
