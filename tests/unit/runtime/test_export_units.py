"""The export's size hint (no JVM): when a driver's last query progress tells its state rows, and when a
checkpoint's RocksDB metadata does."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

from airflow_checkpoint_provider.checkpoint.storage import Location
from airflow_checkpoint_provider.runtime.export import (
    ARROW_MAX_BYTES,
    MAX_SIZE_PROBES,
    checkpoint_state_rows,
    state_rows_of,
)


def progress(batch: int, *rows: int, sst: int = 1000) -> dict[str, object]:
    return {
        "batchId": batch,
        "stateOperators": [
            {"numRowsTotal": n, "memoryUsedBytes": 10**9, "customMetrics": {"rocksdbSstFileSize": sst}}
            for n in rows
        ],
    }


def test_the_rows_of_the_exported_batch_or_an_idle_trigger_after_it() -> None:
    assert state_rows_of(progress(7, 10, 5), 7) == 15
    assert state_rows_of(progress(8, 10), 7) == 10  # an idle trigger after batch 7 reports batch 8


def test_no_hint_where_the_progress_cannot_tell() -> None:
    assert state_rows_of(None, 7) is None
    assert state_rows_of(progress(5, 10), 7) is None  # another batch
    assert state_rows_of(progress(7), 7) is None  # no state operator
    assert state_rows_of(progress(7, 10), 7, "false") is None  # RocksDB not counting its rows reports 0
    assert state_rows_of({"batchId": 7, "stateOperators": [{"numRowsTotal": "x"}]}, 7) is None
    assert state_rows_of({"batchId": 7, "stateOperators": [{}]}, 7) is None
    # a state too big to go through the driver, by RocksDB's files or by a store's memory
    assert state_rows_of(progress(7, 10, sst=ARROW_MAX_BYTES + 1), 7) is None
    hdfs = {"batchId": 7, "stateOperators": [{"numRowsTotal": 3, "memoryUsedBytes": ARROW_MAX_BYTES + 1}]}
    assert state_rows_of(hdfs, 7) is None
    assert state_rows_of({**hdfs, "stateOperators": [{"numRowsTotal": 3, "memoryUsedBytes": 100}]}, 7) == 3


def rocksdb_version(folder: Path, version: str, keys: int, sst: int = 1000, head: str = "v1") -> None:
    """``<version>.zip`` as RocksDB's state store writes it: ``metadata`` counts the keys, lists the SSTs."""
    folder.mkdir(parents=True, exist_ok=True)
    meta = {
        "sstFiles": [{"dfsSstFileName": "1.sst", "sizeBytes": sst}],
        "numKeys": keys,
        "numInternalKeys": 0,
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("metadata", f"{head}\n{json.dumps(meta)}")
        archive.writestr("CURRENT", "MANIFEST-000005\n")
    (folder / version).write_bytes(buffer.getvalue())


def test_a_checkpoints_rocksdb_metadata_sizes_the_state(tmp_path: Path) -> None:
    state = tmp_path / "state"
    for partition, keys in enumerate((3, 4)):
        rocksdb_version(state / "0" / str(partition), "8.zip", keys)  # batch 7 is version 8
        rocksdb_version(state / "0" / str(partition), "7.zip", 100)
    (state / "0" / "_metadata").mkdir()
    for store in ("left-keyToNumValues", "left-keyWithIndexToValue"):  # a join: a folder per store
        rocksdb_version(state / "1" / "0" / store, "8.zip", 5)
    checkpoint = Location.of(str(tmp_path))
    assert checkpoint_state_rows(checkpoint, 7) == 3 + 4 + 5 + 5
    assert checkpoint_state_rows(checkpoint, 6) is None  # partition 1 of the join has no version 7
    assert checkpoint_state_rows(Location.of(str(tmp_path / "absent")), 7) is None


def test_no_size_where_the_checkpoint_cannot_tell(tmp_path: Path) -> None:
    def case(name: str, *versions: tuple[str, int, int, str]) -> Location:
        for i, (version, keys, sst, head) in enumerate(versions):
            rocksdb_version(tmp_path / name / "state" / "0" / str(i), version, keys, sst, head)
        return Location.of(str(tmp_path / name))

    assert checkpoint_state_rows(case("uncounted", ("8.zip", -1, 10, "v1")), 7) is None
    assert checkpoint_state_rows(case("v2-format", ("8_0f3a.zip", 3, 10, "v1")), 7) is None
    assert checkpoint_state_rows(case("unknown-format", ("8.zip", 3, 10, "v9")), 7) is None
    assert checkpoint_state_rows(case("too-big", ("8.zip", 3, ARROW_MAX_BYTES + 1, "v1")), 7) is None
    many = [("8.zip", 1, 10, "v1")] * (MAX_SIZE_PROBES + 1)
    assert checkpoint_state_rows(case("many", *many), 7) is None
    assert checkpoint_state_rows(case("enough", *many[:MAX_SIZE_PROBES]), 7) == MAX_SIZE_PROBES
    broken = case("broken", ("8.zip", 3, 10, "v1"))
    (tmp_path / "broken" / "state" / "0" / "0" / "8.zip").write_bytes(b"not a zip")
    assert checkpoint_state_rows(broken, 7) is None
    hdfs = tmp_path / "hdfs" / "state" / "0" / "0"  # Spark's in-memory store: deltas, no count
    hdfs.mkdir(parents=True)
    (hdfs / "8.delta").write_bytes(b"")
    assert checkpoint_state_rows(Location.of(str(tmp_path / "hdfs")), 7) is None
