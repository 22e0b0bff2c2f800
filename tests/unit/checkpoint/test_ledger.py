"""The job ledger's lease: one lifecycle operation per job; renewals, expiry, and a race between two
takers."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot
from airflow_checkpoint_provider.checkpoint.ledger import JobLedger
from airflow_checkpoint_provider.exceptions import LeaseHeldError


def test_lease_is_exclusive_renewable_and_expires(tmp_path: Path) -> None:
    ledger = JobLedger(JobRoot(tmp_path / "counter"))
    first = ledger.acquire("redeploy/run-1", "stop", ttl_s=60)
    assert (
        ledger.acquire("redeploy/run-1", "snapshot", ttl_s=60).acquired_at == first.acquired_at
    )  # same holder
    with pytest.raises(LeaseHeldError) as caught:
        ledger.acquire("redeploy/run-2", "stop", ttl_s=60)
    message = str(caught.value)
    assert "'redeploy/run-1'" in message and "job=counter" in message and "job.json" in message
    assert not ledger.release("redeploy/run-2") and ledger.release("redeploy/run-1")
    ledger.acquire("redeploy/run-2", "stop", ttl_s=0.2)
    time.sleep(0.3)
    assert (
        ledger.acquire("redeploy/run-3", "stop", ttl_s=60).holder == "redeploy/run-3"
    )  # a stale lease expired


def test_two_racing_takers_one_wins(tmp_path: Path) -> None:
    root = JobRoot(tmp_path / "counter")
    outcomes: list[str] = []
    gate = threading.Barrier(8)

    def take(i: int) -> None:
        gate.wait()
        try:
            JobLedger(root).acquire(f"run-{i}", "stop", ttl_s=60)
            outcomes.append("won")
        except LeaseHeldError:
            outcomes.append("lost")

    threads = [threading.Thread(target=take, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["lost"] * 7 + ["won"]


def test_generation_changes_are_recorded(tmp_path: Path) -> None:
    root = JobRoot(tmp_path / "counter")
    ledger = JobLedger(root)
    ledger.set_current(1, by="a/1", event="generation_created")
    ledger.set_current(2, by="b/1", event="generation_created", snapshot="s1")
    state = ledger.read()
    assert state.current_generation == 2 == root.current_generation()
    assert [h["generation"] for h in state.history] == [1, 2] and state.history[1]["snapshot"] == "s1"


def test_a_crashed_writers_mutex_is_broken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import airflow_checkpoint_provider.checkpoint.ledger as module

    ledger = JobLedger(JobRoot(tmp_path / "counter"))
    ledger.mutex.write_text('{"token": "dead", "at": 0}')  # left behind by a writer that died
    monkeypatch.setattr(module, "MUTEX_WAIT_S", 2.0)
    assert ledger.acquire("run-1", "stop", ttl_s=60).holder == "run-1"
    assert not ledger.mutex.exists()


def test_a_malformed_ledger_is_a_typed_error(tmp_path: Path) -> None:
    """Found by the long fuzz run (seed 20261130, input ~6,400): a lease without a holder raised KeyError."""
    from airflow_checkpoint_provider.exceptions import CorruptCheckpointError

    root = JobRoot(tmp_path / "job")
    for damaged in ({"lease": {}}, {"current_generation": "two"}, {"runs": {"a": "x"}}, {"runs": "abc"}):
        (tmp_path / "job").mkdir(exist_ok=True)
        (tmp_path / "job" / "job.json").write_text(json.dumps(damaged))
        with pytest.raises(CorruptCheckpointError, match="job ledger is malformed"):
            JobLedger(root).read()


def test_latest_snapshot_is_resolved_once_per_run(tmp_path: Path) -> None:
    ledger = JobLedger(JobRoot(tmp_path / "job"))
    newest = ["s1"]
    assert ledger.resolved_snapshot("redeploy/run-1", lambda: newest[0]) == "s1"
    newest[0] = "s2"  # a newer snapshot appears (a periodic snapshot of the new generation)
    assert ledger.resolved_snapshot("redeploy/run-1", lambda: newest[0]) == "s1"  # the retry: the same one
    assert ledger.resolved_snapshot("redeploy/run-2", lambda: newest[0]) == "s2"  # another run: the newest
