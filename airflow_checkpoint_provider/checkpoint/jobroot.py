"""The job root: one folder per streaming job, holding every generation's checkpoint, status and control
files, and the snapshots. Nothing under it is ever moved (a transformWithState checkpoint holds absolute
paths).

::

    <job root>/
      job.json                      ledger: current generation, history, lease
      generations/<g>/checkpoint/   Spark's checkpoint of generation g
      generations/<g>/generation.json  how g started (snapshot, offsets, code version), retired/deleted marks
      generations/<g>/status.json   written by the driver
      generations/<g>/control/      stop.json (request), stop-ack.json (answer), fence-<source>.json
      snapshots/<id>/               state as Parquet + manifest.json (published last)
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from typing import Any, TypeVar

from airflow_checkpoint_provider.checkpoint.storage import Location
from airflow_checkpoint_provider.exceptions import (
    CheckpointProviderError,
    ControlFileError,
    CorruptCheckpointError,
    InvalidLocationError,
    JobRootNotFoundError,
    NotAJobRootError,
)
from airflow_checkpoint_provider.model.records import DriverStatus, StopAck, StopRequest

_Record = TypeVar("_Record")

JOB_FILE = "job.json"
#: Control files under ``generations/<g>/control/`` (the source fence reads them from the driver's source).
STOP_REQUEST_FILE = "stop.json"
STOP_ACK_FILE = "stop-ack.json"
#: A request to a running DStream driver to snapshot its state at its next completed batch, and the answer.
SNAPSHOT_REQUEST_FILE = "snapshot-request.json"
SNAPSHOT_ACK_FILE = "snapshot-ack.json"
FENCE_PREFIX = "fence-"


def fence_file_name(source_path: str) -> str:
    """The control file in which the fence of the source reading ``source_path`` records its offset."""
    return FENCE_PREFIX + hashlib.sha1(source_path.encode()).hexdigest()[:12] + ".json"


def control_file_is_for(
    job_root: str | None, generation: int | None, location: Location, expected_generation: int
) -> bool:
    """Whether a control file that names ``job_root`` and ``generation`` (None: written before control files
    named them) belongs to the job at ``location`` and ``expected_generation``."""
    if generation is not None and generation != int(expected_generation):
        return False
    try:
        return job_root is None or Location.of(job_root) == location
    except CheckpointProviderError:
        return False


class JobRoot:
    """Paths and small JSON records under one job root."""

    def __init__(self, location: str | os.PathLike[str] | Location | Any, job: str | None = None) -> None:
        self.location = Location.of(location)
        self.job = job or self.location.name

    def __repr__(self) -> str:
        return f"JobRoot({self.location.uri!r})"

    # --- paths ----------------------------------------------------------------------------------------

    def contain(self, location: Location) -> Location:
        """Refuse a location outside this job root, lexically or through a symbolic link (promise 4 in
        docs/design.md); every path the job root hands out, reads or deletes goes through here."""
        if not location.is_within(self.location):
            raise InvalidLocationError(
                "refusing a path that leads out of the job root (a '..' or a symbolic link)",
                path=location.uri,
                job=self.job,
                hint=f"Everything a job owns lives below {self.location.uri}",
            )
        return location

    def generation_dir(self, generation: int) -> Location:
        return self.contain(self.location.child("generations", int(generation)))

    def checkpoint(self, generation: int) -> Location:
        return self.generation_dir(generation).child("checkpoint")

    def status_file(self, generation: int) -> Location:
        return self.generation_dir(generation).child("status.json")

    def control_dir(self, generation: int) -> Location:
        return self.generation_dir(generation).child("control")

    def stop_request_file(self, generation: int) -> Location:
        return self.control_dir(generation).child(STOP_REQUEST_FILE)

    def stop_ack_file(self, generation: int) -> Location:
        return self.control_dir(generation).child(STOP_ACK_FILE)

    def snapshot_request_file(self, generation: int) -> Location:
        return self.control_dir(generation).child(SNAPSHOT_REQUEST_FILE)

    def snapshot_ack_file(self, generation: int) -> Location:
        return self.control_dir(generation).child(SNAPSHOT_ACK_FILE)

    def input_dir(self, generation: int) -> Location:
        """``generations/<g>/input``: a DStream generation's published input segments."""
        return self.generation_dir(generation).child("input")

    def discarded_dir(self, generation: int) -> Location:
        """``generations/<g>/discarded``: DStream attempts set aside (never deleted by the runtime)."""
        return self.generation_dir(generation).child("discarded")

    def generation_record_file(self, generation: int) -> Location:
        return self.generation_dir(generation).child("generation.json")

    def driver_lock_file(self, generation: int) -> Location:
        return self.generation_dir(generation).child("driver.lock")

    def snapshots_dir(self) -> Location:
        return self.contain(self.location.child("snapshots"))

    def snapshot_dir(self, snapshot_id: str) -> Location:
        if not snapshot_id or "/" in snapshot_id or snapshot_id in (".", ".."):
            raise InvalidLocationError(
                f"bad snapshot id {snapshot_id!r}", path=self.location.uri, job=self.job
            )
        return self.contain(self.snapshots_dir().child(snapshot_id))

    def require_inside(self, location: Location) -> Location:
        """Refuse any path outside this job root, or the job root itself (what may be deleted)."""
        if location == self.location:
            raise InvalidLocationError(
                "refusing to touch the job root itself", path=location.uri, job=self.job
            )
        return self.contain(location)

    def require_job(self) -> JobRoot:
        """Refuse a job root that does not exist, or a folder that is not one (no ``job.json``,
        ``generations/`` or ``snapshots/``), so that no command, sensor or operator answers "empty" for a
        mistyped path. Only a job's first start creates its root, and it does not call this.

        :raises JobRootNotFoundError: nothing exists there.
        :raises NotAJobRootError: something exists there, but not a job root.
        """
        if not self.location.exists():
            raise JobRootNotFoundError(
                "the job root does not exist",
                path=self.location.uri,
                job=self.job,
                hint="Check the path; a job root is created by the job's first start",
            )
        if not self.location.child(JOB_FILE).exists() and not any(
            self.location.child(folder).is_dir() for folder in ("generations", "snapshots")
        ):
            raise NotAJobRootError(
                f"not a job root: it holds no {JOB_FILE}, no generations/ and no snapshots/ folder",
                path=self.location.uri,
                job=self.job,
                hint="Point at the folder the job's first start created (it holds job.json)",
            )
        return self

    # --- JSON records ---------------------------------------------------------------------------------

    def read_json(
        self,
        location: Location,
        *,
        what: str,
        error: type[CheckpointProviderError] = CorruptCheckpointError,
        generation: int | None = None,
    ) -> dict[str, Any] | None:
        """Read a JSON object; None if the file does not exist; a typed error naming the file if
        unreadable."""
        self.contain(location)
        try:
            text = location.read_text()
        except FileNotFoundError:
            return None
        except IsADirectoryError as exc:
            raise error(
                f"{what} is a folder, not a file", path=location.uri, job=self.job, generation=generation
            ) from exc
        except UnicodeDecodeError as exc:
            raise error(
                f"{what} is not UTF-8 text", path=location.uri, job=self.job, generation=generation
            ) from exc
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise error(
                f"{what} holds invalid JSON: {exc}", path=location.uri, job=self.job, generation=generation
            ) from exc
        if not isinstance(data, dict):
            raise error(
                f"{what} should hold a JSON object", path=location.uri, job=self.job, generation=generation
            )
        return data

    @staticmethod
    def write_json(location: Location, data: dict[str, Any]) -> None:
        location.write_text(json.dumps(data, indent=1, sort_keys=True))

    def read_job_record(self) -> dict[str, Any] | None:
        return self.read_json(self.location.child(JOB_FILE), what="job ledger")

    def current_generation(self) -> int | None:
        record = self.read_job_record()
        value = None if record is None else record.get("current_generation")
        if value is None:
            return None
        try:
            return int(value)  # as the ledger reads it (checkpoint/ledger.py)
        except (TypeError, ValueError) as exc:
            raise CorruptCheckpointError(
                f"job ledger names current generation {value!r:.40}, not a whole number",
                path=self.location.child(JOB_FILE).uri,
                job=self.job,
            ) from exc

    def _read_record(
        self,
        location: Location,
        parse: Callable[[dict[str, Any]], _Record],
        *,
        what: str,
        generation: int,
        error: type[CheckpointProviderError] = CorruptCheckpointError,
    ) -> _Record | None:
        """Read and parse one JSON record; None if absent; ``error`` naming the file if it does not parse."""
        data = self.read_json(location, what=what, error=error, generation=generation)
        if data is None:
            return None
        try:
            return parse(data)
        except (TypeError, ValueError) as exc:
            raise error(
                f"{what} is malformed: {exc}", path=location.uri, job=self.job, generation=generation
            ) from exc

    def read_status(self, generation: int) -> DriverStatus | None:
        return self._read_record(
            self.status_file(generation), DriverStatus.from_json, what="driver status", generation=generation
        )

    def write_status(self, status: DriverStatus) -> None:
        self.write_json(self.status_file(status.generation), status.to_json())

    def read_stop_request(self, generation: int) -> StopRequest | None:
        loc = self.stop_request_file(generation)
        request = self._read_record(
            loc, StopRequest.from_json, what="stop request", generation=generation, error=ControlFileError
        )
        if request is not None and not control_file_is_for(
            request.job_root, request.generation, self.location, generation
        ):
            raise ControlFileError(
                f"stop request {request.request_id} is for job root {request.job_root}, generation "
                f"{request.generation}: not this one (copied from elsewhere?)",
                path=loc.uri,
                job=self.job,
                generation=generation,
                hint="Remove the file; a stop is requested with StopStreamingJobOperator",
            )
        return request

    def write_stop_request(self, generation: int, request: StopRequest) -> None:
        self.write_json(self.stop_request_file(generation), request.to_json())

    def read_stop_ack(self, generation: int) -> StopAck | None:
        return self._read_record(
            self.stop_ack_file(generation),
            StopAck.from_json,
            what="stop acknowledgement",
            generation=generation,
            error=ControlFileError,
        )

    def write_stop_ack(self, generation: int, ack: StopAck) -> None:
        self.write_json(self.stop_ack_file(generation), ack.to_json())

    def generations(self) -> list[int]:
        """Generation numbers that have a folder, ascending."""
        found = []
        for entry in self.location.child("generations").list_or_empty():
            if entry.is_dir and entry.name.isdigit():
                found.append(int(entry.name))
        return sorted(found)

    def read_generation_record(self, generation: int) -> dict[str, Any] | None:
        return self.read_json(self.generation_record_file(generation), what="generation record")

    def update_generation_record(self, generation: int, **changes: Any) -> dict[str, Any]:
        """Merge ``changes`` into ``generations/<g>/generation.json`` (created if absent); returns the
        record."""
        record = self.read_generation_record(generation) or {"generation": int(generation)}
        record.update(changes)
        self.write_json(self.generation_record_file(generation), record)
        return record

    def generation_records(self) -> dict[int, dict[str, Any]]:
        return {g: self.read_generation_record(g) or {"generation": g} for g in self.generations()}
