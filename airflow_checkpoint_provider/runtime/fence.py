"""The source fence: after a stop request, the shipped event-log source admits no new data.

It runs in Spark's Python process for the source on the driver (a separate process from the driver's own
Python, so it talks to the supervisor through the control folder). While a stop request is open (``stop.json``
holds a request id that ``stop-ack.json`` has not answered), ``latestOffset`` freezes the source at the end of
what is already planned and records that offset, with the request id, in ``fence-<source>.json``; every later
call returns the same offset, so Spark plans no new batch. The driver stops once every fenced offset is
committed: a stop at a batch boundary, with nothing in flight. An answered request (stopped, or timed out with
the driver kept running) fences nothing, so a restarted driver of the same generation runs normally.
"""

from __future__ import annotations

import json
import time
from typing import Any

from airflow_checkpoint_provider.checkpoint.jobroot import (
    FENCE_PREFIX,
    STOP_ACK_FILE,
    STOP_REQUEST_FILE,
    control_file_is_for,
    fence_file_name,
)
from airflow_checkpoint_provider.checkpoint.storage import Location


def _read(location: Location) -> dict[str, Any] | None:
    try:
        data = json.loads(location.read_text())
    except (OSError, ValueError):  # absent, a folder, too large, not UTF-8 or not JSON (typed errors too)
        return None  # the driver's supervisor reports a bad control file; the source is not fenced by it
    return data if isinstance(data, dict) else None


def open_request(control: Location) -> str | None:
    """The id of the stop request that is still open: requested, and not yet acknowledged (a request that was
    answered — stopped, or timed out with the driver kept running — no longer fences anything)."""
    request = _read(control.child(STOP_REQUEST_FILE))
    if not request or not request.get("request_id"):
        return None
    generation_dir = control.parent  # <job root>/generations/<g>/control
    generation, job_root = request.get("generation"), request.get("job_root")
    if generation_dir.name.isdigit() and not control_file_is_for(
        job_root if isinstance(job_root, str) else None,
        generation if isinstance(generation, int) else None,
        generation_dir.parent.parent,
        int(generation_dir.name),
    ):
        return None  # another job's or generation's request: the driver's supervisor reports it
    ack = _read(control.child(STOP_ACK_FILE))
    if ack and ack.get("request_id") == request["request_id"]:
        return None
    return str(request["request_id"])


class SourceFence:
    def __init__(self, control_dir: str, source_path: str) -> None:
        self.control = Location.of(control_dir)
        self.file = self.control.child(fence_file_name(source_path))
        self.source_path = source_path
        self._fenced: tuple[str, int] | None = None  # (request id, offset)

    def admit(self, begin: int, end: int) -> int:
        """The end offset Spark may plan: ``end`` normally; ``begin`` (frozen) while a stop request is
        open."""
        request_id = open_request(self.control)
        if request_id is None:
            self._fenced = None
            return end
        if self._fenced is None or self._fenced[0] != request_id:
            recorded = _read(self.file)
            if recorded and recorded.get("request_id") == request_id:
                self._fenced = (request_id, int(recorded["offset"]))
            else:
                self._fenced = (request_id, begin)
                _write_fence(self.file, self.source_path, request_id, begin, by="source")
        return max(begin, self._fenced[1])


def _write_fence(target: Location, source_path: str, request_id: str, offset: int, *, by: str) -> None:
    """The fence file: where ``source_path`` stays frozen for stop request ``request_id``, and who said so."""
    target.write_text(
        json.dumps(
            {
                "source": source_path,
                "offset": int(offset),
                "request_id": request_id,
                "fenced_at": time.time(),
                "by": by,
            }
        )
    )


def fence_for_source(control_dir: Location, source_path: str, request_id: str, offset: int) -> bool:
    """Record the fence of ``source_path`` for ``request_id`` at ``offset`` on the source's behalf; return
    whether this call wrote it (False: the source, or an earlier call, already had).

    The driver calls this only while its query is between triggers with nothing in flight, and ``offset`` is
    then exactly where the source would freeze itself (the end of the last committed batch, or where the
    source started): the source reads the same fence at its next trigger and admits nothing past it. So the
    stop need not wait for the next trigger of a query whose trigger interval is long. The driver looks at
    the query again after writing (a trigger that began before the write is still active then)."""
    target = control_dir.child(fence_file_name(source_path))
    recorded = _read(target)
    if recorded and recorded.get("request_id") == request_id:
        return False
    _write_fence(target, source_path, request_id, offset, by="driver")
    return True


def read_fences(control_dir: Location, request_id: str) -> dict[str, int]:
    """Fenced offsets the sources recorded for this stop request: source path -> offset."""
    result = {}
    for entry in control_dir.list_or_empty():
        if entry.name.startswith(FENCE_PREFIX) and entry.name.endswith(".json"):
            data = _read(control_dir.child(entry.name))
            if data and data.get("request_id") == request_id:
                result[str(data["source"])] = int(data["offset"])
    return result
