"""The export's size hint (no JVM): when a driver's last query progress tells its state rows."""

from __future__ import annotations

from airflow_checkpoint_provider.runtime.export import ARROW_MAX_BYTES, state_rows_of


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
