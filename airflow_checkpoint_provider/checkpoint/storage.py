"""A folder on any fsspec filesystem: the one way this package touches storage.

Accepts a plain path, a URI (``file://``, ``s3://``, ``gs://``, ``hdfs://`` where the filesystem package is
installed), or an Airflow ``ObjectStoragePath`` (duck-typed: anything with ``fs`` and ``path``), so this
module works inside a Spark driver that has no Airflow installed.
"""

from __future__ import annotations

import builtins
import os
import posixpath
import uuid
from dataclasses import dataclass
from typing import Any

from airflow_checkpoint_provider.exceptions import (
    FileTooLargeError,
    FolderNotFileError,
    InvalidLocationError,
    StorageUnavailableError,
)
from airflow_checkpoint_provider.model.constants import MAX_READ_BYTES


@dataclass(frozen=True)
class Entry:
    """One listed child of a folder."""

    name: str
    is_dir: bool
    size: int | None


def _below(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


class Location:
    """A path on one fsspec filesystem; cheap to create, does no I/O until asked."""

    __slots__ = ("fs", "path", "_protocol")

    def __init__(self, fs: Any, path: str) -> None:
        self.fs = fs
        self.path = path.rstrip("/") or "/"
        protocol = fs.protocol
        self._protocol = protocol[0] if isinstance(protocol, tuple | list) else protocol

    @classmethod
    def of(cls, location: str | os.PathLike[str] | Location | Any) -> Location:
        """Resolve a path, URI, ``ObjectStoragePath`` or ``Location`` to a ``Location``."""
        if isinstance(location, Location):
            return location
        if not isinstance(location, str):
            fs = getattr(location, "fs", None)
            path = getattr(location, "path", None)
            if fs is not None and isinstance(path, str):  # ObjectStoragePath / UPath
                return cls(fs, path)
        text = os.fspath(location) if isinstance(location, os.PathLike) else location
        if not isinstance(text, str) or not text.strip():
            raise InvalidLocationError(f"expected a path or URI, got {location!r}", path=str(location))
        import fsspec.core  # local import keeps module import cheap

        try:
            fs, path = fsspec.core.url_to_fs(text)
        except (ImportError, ValueError) as exc:
            raise InvalidLocationError(
                f"cannot open {text!r}: {exc}",
                path=text,
                hint="Install the fsspec filesystem package for this scheme (s3fs, gcsfs, ...)",
            ) from exc
        if cls._is_local(fs):
            path = os.path.abspath(path)
        return cls(fs, path)

    @staticmethod
    def _is_local(fs: Any) -> bool:
        protocol = fs.protocol
        names = protocol if isinstance(protocol, tuple | list) else (protocol,)
        return "file" in names or "local" in names

    # --- naming ---------------------------------------------------------------------------------------

    @property
    def is_local(self) -> bool:
        return self._is_local(self.fs)

    @property
    def uri(self) -> str:
        """The location as a user would type it: a plain path for local files, else ``scheme://path``."""
        if self.is_local:
            return self.path
        return f"{self._protocol}://{self.path}"

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    def child(self, *parts: str | int) -> Location:
        """The location below this one; a part that is absolute or holds a ``..`` segment is refused, so no
        name read from storage (a snapshot id, a manifest's part path) can lead out of this folder."""
        names = [str(p) for p in parts]
        for name in names:
            if not name or name.startswith("/") or ".." in name.split("/") or "\x00" in name:
                raise InvalidLocationError(
                    f"refusing a path element that leads out of its folder: {name!r}", path=self.uri
                )
        return Location(self.fs, posixpath.join(self.path, *names))

    @property
    def parent(self) -> Location:
        return Location(self.fs, posixpath.dirname(self.path))

    def is_within(self, other: Location) -> bool:
        """Whether this location is ``other`` or lies below it: same filesystem, normalised paths, and on a
        local filesystem also after resolving symbolic links (a link inside ``other`` that points out of it
        is not within it). Object stores have no links."""
        if self._protocol != other._protocol:
            return False
        if not _below(posixpath.normpath(self.path), posixpath.normpath(other.path)):
            return False
        if self.is_local:
            return _below(os.path.realpath(self.path), os.path.realpath(other.path))
        return True

    def __str__(self) -> str:
        return self.uri

    def __repr__(self) -> str:
        return f"Location({self.uri!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Location) and self.uri == other.uri

    def __hash__(self) -> int:
        return hash(self.uri)

    # --- reading --------------------------------------------------------------------------------------

    def list(self) -> builtins.list[Entry]:
        """List the folder's children once; raise ``FileNotFoundError`` if it does not exist."""
        try:
            raw = self.fs.ls(self.path, detail=True)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise StorageUnavailableError(f"cannot list {self.uri}: {exc}", path=self.uri) from exc
        entries = []
        for item in raw:
            name = posixpath.basename(str(item["name"]).rstrip("/"))
            if not name or name in (".", ".."):
                continue
            entries.append(Entry(name=name, is_dir=item.get("type") == "directory", size=item.get("size")))
        return entries

    def list_or_empty(self) -> builtins.list[Entry]:
        try:
            return self.list()
        except FileNotFoundError:
            return []

    def exists(self) -> bool:
        try:
            return bool(self.fs.exists(self.path))
        except OSError as exc:
            raise StorageUnavailableError(f"cannot stat {self.uri}: {exc}", path=self.uri) from exc

    def modified_at(self) -> float | None:
        """The file's modification time (seconds since the epoch), or None if it does not exist or the
        filesystem does not say."""
        try:
            info = self.fs.info(self.path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageUnavailableError(f"cannot stat {self.uri}: {exc}", path=self.uri) from exc
        value = info.get("mtime") or info.get("LastModified") or info.get("created")
        if isinstance(value, int | float):
            return float(value)
        timestamp = getattr(value, "timestamp", None)
        return float(timestamp()) if callable(timestamp) else None

    def is_dir(self) -> bool:
        try:
            return bool(self.fs.isdir(self.path))
        except OSError as exc:
            raise StorageUnavailableError(f"cannot stat {self.uri}: {exc}", path=self.uri) from exc

    def read_bytes(self, limit: int = MAX_READ_BYTES) -> bytes:
        """The whole file, which may be at most ``limit`` bytes: records, control files and checkpoint logs
        are small, and a file that is not stays unread (``FileTooLargeError``) instead of filling memory."""
        try:
            if self.is_local and os.stat(self.path).st_size > limit:  # refuse unread where a stat is cheap
                raise FileTooLargeError(
                    f"file is larger than {limit} bytes: not a record this package writes or reads",
                    path=self.uri,
                )
            with self.fs.open(self.path, "rb") as handle:
                data = bytes(handle.read(limit + 1))
            if len(data) > limit:
                raise FileTooLargeError(
                    f"file is larger than {limit} bytes: not a record this package writes or reads",
                    path=self.uri,
                )
            return data
        except FileNotFoundError:
            raise
        except IsADirectoryError as exc:
            raise FolderNotFileError("a folder stands where a file belongs", path=self.uri) from exc
        except OSError as exc:
            raise StorageUnavailableError(f"cannot read {self.uri}: {exc}", path=self.uri) from exc

    def read_text(self) -> str:
        return self.read_bytes().decode("utf-8")

    def open(self, mode: str = "rb") -> Any:
        """A file handle from the filesystem (for streaming reads of large files)."""
        try:
            return self.fs.open(self.path, mode)
        except FileNotFoundError:
            raise
        except IsADirectoryError as exc:
            raise FolderNotFileError("a folder stands where a file belongs", path=self.uri) from exc
        except OSError as exc:
            raise StorageUnavailableError(f"cannot open {self.uri}: {exc}", path=self.uri) from exc

    def walk_files(self) -> builtins.list[tuple[str, int]]:
        """Every file below this folder as (path relative to it, size), sorted; empty if it does not exist."""
        try:
            found = self.fs.find(self.path, detail=True)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StorageUnavailableError(f"cannot list {self.uri}: {exc}", path=self.uri) from exc
        prefix = self.path.rstrip("/") + "/"
        out = []
        for name, item in found.items():
            name = str(name)
            if item.get("type") == "directory" or not name.startswith(prefix):
                continue
            out.append((name[len(prefix) :], int(item.get("size") or 0)))
        return sorted(out)

    # --- writing --------------------------------------------------------------------------------------

    def makedirs(self) -> None:
        try:
            self.fs.makedirs(self.path, exist_ok=True)
        except OSError as exc:
            raise StorageUnavailableError(f"cannot create {self.uri}: {exc}", path=self.uri) from exc

    def write_bytes(self, data: bytes) -> None:
        """Write the whole file so a reader sees either the old or the new content, never a torn one.

        Local files are written to a temporary sibling and renamed (atomic on POSIX). Object stores publish a
        whole object on close, so a direct write has the same property there.
        """
        try:
            if self.is_local:
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
                tmp = f"{self.path}.{uuid.uuid4().hex}.tmp"
                with open(tmp, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, self.path)
            else:
                with self.fs.open(self.path, "wb") as handle:
                    handle.write(data)
        except OSError as exc:
            raise StorageUnavailableError(f"cannot write {self.uri}: {exc}", path=self.uri) from exc

    def write_text(self, text: str) -> None:
        self.write_bytes(text.encode("utf-8"))

    def create_exclusive(self, data: bytes) -> bool:
        """Create the file only if it does not exist; return whether this call created it.

        Atomic on local filesystems (``O_EXCL``); on object stores this is check-then-write, which is the
        best those offer without conditional writes.
        """
        try:
            if self.is_local:
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
                try:
                    fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                except FileExistsError:
                    return False
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                return True
            if self.fs.exists(self.path):
                return False
            with self.fs.open(self.path, "wb") as handle:
                handle.write(data)
            return True
        except OSError as exc:
            raise StorageUnavailableError(f"cannot create {self.uri}: {exc}", path=self.uri) from exc

    def rename(self, target: Location) -> None:
        """Move this file or folder to ``target`` on the same filesystem (atomic for local paths)."""
        try:
            if self.is_local:
                os.makedirs(os.path.dirname(target.path), exist_ok=True)
                os.replace(self.path, target.path)
            else:
                self.fs.mv(self.path, target.path, recursive=True)
        except OSError as exc:
            raise StorageUnavailableError(
                f"cannot move {self.uri} to {target.uri}: {exc}", path=self.uri
            ) from exc

    def remove(self, recursive: bool = False) -> None:
        try:
            self.fs.rm(self.path, recursive=recursive)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StorageUnavailableError(f"cannot remove {self.uri}: {exc}", path=self.uri) from exc
