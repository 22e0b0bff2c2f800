"""The source fence: after a stop request, the shipped event-log source admits no new data.

It runs in Spark's Python process for the source on the driver. When ``stop.json`` appears in the generation's
control folder, the next ``latestOffset`` call freezes the source at the end of what is already planned and
records that offset in ``fence-<source>.json``; every later call returns the same offset, so Spark plans no new
batch. The driver then stops once every fenced offset is committed: a stop at a batch boundary, with nothing in
flight.
"""

from __future__ import annotations

import hashlib
import json
import time

from airflow_checkpoint_provider.checkpoint.storage import Location

FENCE_PREFIX = "fence-"


def fence_name(source_path: str) -> str:
    return FENCE_PREFIX + hashlib.sha1(source_path.encode()).hexdigest()[:12] + ".json"


class SourceFence:
    def __init__(self, control_dir: str, source_path: str) -> None:
        self.control = Location.of(control_dir)
        self.file = self.control.child(fence_name(source_path))
        self.source_path = source_path
        self._fenced_at: int | None = None

    def admit(self, begin: int, end: int) -> int:
        """The end offset Spark may plan: ``end`` normally; ``begin`` (frozen) once a stop was requested."""
        if self._fenced_at is None:
            if not self.control.child("stop.json").exists():
                return end
            try:
                self._fenced_at = int(json.loads(self.file.read_text())["offset"])
            except FileNotFoundError:
                self._fenced_at = begin
                self.file.write_text(
                    json.dumps({"source": self.source_path, "offset": begin, "fenced_at": time.time()})
                )
        return max(begin, self._fenced_at)


def read_fences(control_dir: Location) -> dict[str, int]:
    """Fenced offsets recorded by the sources: source path -> offset."""
    result = {}
    for entry in control_dir.list_or_empty():
        if entry.name.startswith(FENCE_PREFIX) and entry.name.endswith(".json"):
            data = json.loads(control_dir.child(entry.name).read_text())
            result[str(data["source"])] = int(data["offset"])
    return result
