"""State seeded through the input (``ManagedContext.seed_stream``, the v3 counter) in real spark-submit
drivers under continuous input: v2 stops and exports its final batch itself; v3 starts from that snapshot, is
killed -9 and restarted with its original arguments (the seed is not read again); v3 stops and exports its own
state (Spark's aggregation buffers); v2 starts from that. Per-key totals equal the event log throughout.

v3 runs on Spark's in-memory state store, chosen by its launch (``--conf``): the runtime's RocksDB is a
default that a launch's setting wins over; its checkpoint records it, its restart keeps it, and its snapshot
loads into v2's RocksDB state."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from airflow_checkpoint_provider.checkpoint.inspector import PROVIDER_CONF, inspect_checkpoint
from airflow_checkpoint_provider.checkpoint.snapshots import read_manifest
from airflow_checkpoint_provider.runtime.managed import ROCKSDB
from tests.support.counting import fold_log, sink_totals
from tests.support.crafted import HDFS_PROVIDER
from tests.support.drivers import Job, Producer
from tests.support.processes import kill_group, wait_for

pytestmark = pytest.mark.spark
LEASE_EXPIRY_S = 6
IN_MEMORY = {PROVIDER_CONF: HDFS_PROVIDER}  # Spark's in-memory state store, chosen by the launch


def stop_with_snapshot(job: Job, generation: int, proc, log) -> str:  # type: ignore[no-untyped-def]
    """Stop gracefully, the driver exporting its final batch; return the snapshot id."""
    job.request_stop(generation, snapshot=True)
    assert proc.wait(timeout=180) == 0, log.read_text()[-3000:]
    ack = job.root.read_stop_ack(generation)
    assert ack is not None and ack.outcome == "stopped" and ack.snapshot_error is None, ack
    assert ack.snapshot_id is not None
    manifest = read_manifest(job.root, ack.snapshot_id)
    assert (manifest.generation, manifest.batch) == (generation, ack.final_committed_batch)
    return ack.snapshot_id


def test_seeded_through_input_exactly_once_across_kill_and_redeploys(run_dir: Path) -> None:
    job = Job(run_dir / "seed-stream", run_dir)
    with Producer(job.events):
        job.set_current(1)
        proc, log = job.launch("v2", job.spec(1, code_version="v2"))
        try:
            job.wait_committed(1, 2, proc, log)
            from_v2 = stop_with_snapshot(job, 1, proc, log)
        finally:
            kill_group(proc) if proc.poll() is None else None

        job.set_current(2)
        spec = job.spec(2, code_version="v3", snapshot=from_v2)
        proc, log = job.launch("v3", spec, conf=IN_MEMORY)
        try:
            job.wait_committed(2, 1, proc, log)
            status = job.status(2)
            assert status is not None and status.start_mode == "fresh_from_snapshot"
            assert inspect_checkpoint(job.root.checkpoint(2)).state_store_provider == HDFS_PROVIDER
        finally:
            kill_group(proc)  # kill -9 after the seeded batch 0 committed
        time.sleep(LEASE_EXPIRY_S)
        # the original arguments, snapshot and confs included (a cluster restart)
        proc, log = job.launch("v3", spec, conf=IN_MEMORY)
        try:
            wait_for(
                lambda: (
                    (s := job.status(2)) is not None and s.start_mode == "resume" and s.state == "RUNNING"
                ),
                240,
                "v3 to resume",
                proc,
                log,
            )
            before = job.committed(2)
            job.wait_committed(2, before + 2, proc, log)
            seed_log = Path(job.root.checkpoint(2).path) / "sources" / "1"
            assert sorted(p.name for p in seed_log.iterdir() if not p.name.startswith(".")) == [
                "0"
            ]  # read once
            from_v3 = stop_with_snapshot(job, 2, proc, log)
        finally:
            kill_group(proc) if proc.poll() is None else None
        v3_state = read_manifest(job.root, from_v3)
        assert list(v3_state.parts) == ["op0"] and v3_state.parts["op0"].value_columns[:2] == ["sum", "sum_2"]

        job.set_current(3)
        proc, log = job.launch("v2", job.spec(3, code_version="v2", snapshot=from_v3))
        try:
            job.wait_committed(3, 1, proc, log)
            assert inspect_checkpoint(job.root.checkpoint(3)).state_store_provider == ROCKSDB  # the default
            job.request_stop(3)
            assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
        finally:
            kill_group(proc) if proc.poll() is None else None
    ack = job.root.read_stop_ack(3)
    assert ack is not None and ack.end_offsets is not None
    assert sink_totals(job.output) == fold_log(job.events, int(ack.end_offsets[0]["offset"]))
