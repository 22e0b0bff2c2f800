"""Hostile input for every reader: damaged copies of real Spark checkpoints and of a job root's own files
(records, control files, a snapshot), run through every reader the provider has. The only error a reader may
raise is one of ours (``CheckpointProviderError``), naming a path; anything else is a finding.

Shared by the seeded property test (``tests/unit/checkpoint/test_fuzz_readers.py``, hypothesis) and the long
run by hand (``python -m tests.support.fuzzing --inputs 100000``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_checkpoint_provider.exceptions import CheckpointProviderError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "checkpoints"

MUTATIONS = (
    "truncate",
    "bitflip",
    "garbage",
    "non_utf8",
    "json_type",
    "json_line",
    "delete",
    "folder",
    "symlink_out",
    "odd_name",
    "huge",
    "empty",
)
#: JSON values that confuse types where a reader expects another.
CONFUSERS: tuple[Any, ...] = (
    None,
    True,
    -1,
    2**70,
    1.5e308,
    "x",
    "",
    [],
    {},
    [1, "a", None],
    {"offset": "ten"},
    {"offset": -5},
    {"a": {"b": {"c": []}}},
)
ODD_NAMES = ("-1", "abc", "00", "1e3", "99999999999999999999", " 3", "3 ", "٣", ".7", "7.tmp", "..", "a/b")


def seed_trees(into: Path) -> dict[str, Path]:
    """Fresh seed trees: the real Spark checkpoints in the fixtures, and a crafted job root with every record
    the provider writes (ledger, generation record, status, stop request and acknowledgement, driver lock,
    a verified snapshot)."""
    from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot
    from airflow_checkpoint_provider.checkpoint.ledger import JobLedger
    from airflow_checkpoint_provider.model.records import DriverStatus, StopAck, StopRequest
    from tests.support.crafted import make_snapshot

    trees: dict[str, Path] = {}
    for name in ("aggregation", "transform_with_state", "dstream"):
        target = into / name
        shutil.copytree(FIXTURES / name, target)
        trees[name] = target
    job = into / "job"
    root = JobRoot(job)
    JobLedger(root).set_current(1, by="seed", event="generation_created")
    JobLedger(root).acquire("redeploy/run-1", "redeploy", 600)
    shutil.copytree(FIXTURES / "aggregation", job / "generations" / "1" / "checkpoint")
    root.update_generation_record(
        1,
        application="app.py",
        application_args=["--x", "1"],
        conf={"spark.sql.shuffle.partitions": "3"},
        snapshot=None,
        launches=[
            {"backend": "local", "launch_id": "L", "master": "local[2]", "submitted_at": 0, "generation": 1}
        ],
        target={"conn_id": None, "master": "local[2]", "deploy_mode": "client"},
    )
    root.write_status(DriverStatus(job="job", generation=1, state="RUNNING", driver_id="d", host="h", pid=1))
    root.write_stop_request(1, StopRequest("r1", 0.0, job_root=root.location.uri, generation=1))
    root.write_json(
        root.stop_ack_file(1),
        StopAck("r1", "stopped", "fence", 4, [{"offset": 50}], None, 0.0, 0.1).to_json(),
    )
    root.write_json(root.driver_lock_file(1), {"driver_id": "d", "pid": 1, "host": "h", "heartbeat_at": 0})
    make_snapshot(job, "20261101T000000Z-g1-b4", generation=1, batch=4)
    trees["job"] = job
    return trees


def files_of(tree: Path) -> list[Path]:
    return sorted(p for p in tree.rglob("*") if p.is_file() and not p.is_symlink())


@dataclass
class Mutation:
    kind: str
    target: str  # relative to the tree
    detail: str = ""


def mutate(tree: Path, rng: random.Random, outside: Path) -> Mutation:
    """Damage one file of ``tree`` in place, chosen and shaped by ``rng``; return what was done."""
    files = files_of(tree)
    path = rng.choice(files)
    rel = str(path.relative_to(tree))
    kind = rng.choice(MUTATIONS)
    data = path.read_bytes()
    path.unlink()  # the copy is a hard link to the seed: write a file of its own, never the seed
    path.write_bytes(data)
    if kind == "truncate":
        cut = rng.randrange(0, max(1, len(data)))
        path.write_bytes(data[:cut])
        return Mutation(kind, rel, f"at {cut}")
    if kind == "bitflip":
        if not data:
            return Mutation("noop", rel)
        raw = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(raw))
            raw[i] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(raw))
        return Mutation(kind, rel)
    if kind == "garbage":
        path.write_bytes(bytes(rng.randrange(256) for _ in range(rng.randint(0, 200))))
        return Mutation(kind, rel)
    if kind == "non_utf8":
        path.write_bytes(data[: rng.randrange(0, len(data) + 1)] + b"\xff\xfe\xc3\x28")
        return Mutation(kind, rel)
    if kind == "json_type":
        path.write_text(json.dumps(rng.choice(CONFUSERS)))
        return Mutation(kind, rel)
    if kind == "json_line":  # one line of a line-oriented file (offset and commit logs) replaced by confusion
        lines = data.decode("utf-8", errors="replace").split("\n")
        i = rng.randrange(len(lines))
        lines[i] = rng.choice(
            ["-", "v9", "v1", json.dumps(rng.choice(CONFUSERS)), "0:" + json.dumps(rng.choice(CONFUSERS))]
        )
        path.write_text("\n".join(lines))
        return Mutation(kind, rel, f"line {i}")
    if kind == "delete":
        path.unlink()
        return Mutation(kind, rel)
    if kind == "folder":
        path.unlink()
        path.mkdir()
        return Mutation(kind, rel)
    if kind == "symlink_out":
        path.unlink()
        os.symlink(outside, path)
        return Mutation(kind, rel)
    if kind == "odd_name":
        name = rng.choice(ODD_NAMES)
        if "/" in name or name == ".." or name == path.name:
            return Mutation("noop", rel)
        shutil.copyfile(path, path.parent / name)
        return Mutation(kind, rel, name)
    if kind == "huge":
        with open(path, "ab") as handle:
            handle.truncate(len(data) + rng.choice([1 << 20, 80 << 20]))  # sparse: cheap on disk
        return Mutation(kind, rel)
    path.write_bytes(b"")
    return Mutation("empty", rel)


def readers(tree: str, path: Path) -> list[tuple[str, Callable[[], Any]]]:
    """Every reader of one (damaged) seed tree, as a user or an operator would call it."""
    from airflow_checkpoint_provider.checkpoint.inspector import CheckpointReader, inspect_checkpoint
    from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot
    from airflow_checkpoint_provider.checkpoint.ledger import JobLedger
    from airflow_checkpoint_provider.checkpoint.report import job_status
    from airflow_checkpoint_provider.checkpoint.snapshots import (
        SnapshotCatalogue,
        read_manifest,
        verify_snapshot,
    )

    def inspect_all(checkpoint: Path) -> None:
        info = inspect_checkpoint(checkpoint, allow_empty=True)
        info.to_json()
        if info.committed is not None:
            info.committed.end_offsets_json()
        if info.dstream is not None:  # DStream batch ids are batch times: read each retained record
            from airflow_checkpoint_provider.checkpoint.dstream import read_batch
            from airflow_checkpoint_provider.checkpoint.storage import Location

            for batch in info.dstream.completed:
                read_batch(Location.of(checkpoint), batch)
        elif info.retained_batches:
            reader = CheckpointReader(checkpoint)
            for batch in range(info.retained_batches[0], info.retained_batches[1] + 1):
                reader.offsets(batch).end_offsets_json()

    if tree != "job":
        return [(f"inspect {tree}", lambda: inspect_all(path))]
    job = JobRoot(path)

    def job_records() -> None:
        JobLedger(job).read()
        job.read_generation_record(1)
        job.read_status(1)
        job.read_stop_request(1)
        job.read_stop_ack(1)
        job.read_json(job.driver_lock_file(1), what="driver lock")
        job.generation_records()

    def snapshots() -> None:
        for entry in SnapshotCatalogue(job).list():
            if entry.complete:
                read_manifest(job, entry.snapshot_id)
                verify_snapshot(job, entry.snapshot_id)

    return [
        ("inspect the job's checkpoint", lambda: inspect_all(path / "generations" / "1" / "checkpoint")),
        ("job records", job_records),
        ("snapshots", snapshots),
        ("status", lambda: job_status(str(path))),
    ]


@dataclass
class Finding:
    reader: str
    mutation: Mutation
    error: str


def run_one(workdir: Path, seeds: dict[str, Path], rng: random.Random, mutations: int = 1) -> list[Finding]:
    """Copy one seed tree, damage it ``mutations`` times, run every reader of it; the untyped errors found."""
    case = Path(tempfile.mkdtemp(dir=workdir))
    try:
        outside = case / "outside"
        outside.mkdir()
        (outside / "precious").write_text("must not be touched")
        name = rng.choice(sorted(seeds))
        tree = case / name
        shutil.copytree(seeds[name], tree, symlinks=True, copy_function=os.link)  # cheap: hard links
        done = [mutate(tree, rng, outside) for _ in range(mutations)]
        findings = []
        for reader, read in readers(name, tree):
            try:
                read()
            except CheckpointProviderError as exc:
                if not str(exc):
                    findings.append(Finding(reader, done[-1], f"typed error without a message: {exc!r}"))
            except Exception:  # the finding: anything outside our vocabulary
                findings.append(Finding(reader, done[-1], traceback.format_exc(limit=6)))
        if (outside / "precious").read_text() != "must not be touched" or len(list(outside.iterdir())) != 1:
            findings.append(Finding("containment", done[-1], "something outside the job root changed"))
        return findings
    finally:
        shutil.rmtree(case, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fuzz every reader with damaged checkpoints and job roots.")
    parser.add_argument("--inputs", type=int, default=1000, help="how many damaged inputs to run")
    parser.add_argument("--seed", type=int, default=20261130)
    parser.add_argument("--mutations", type=int, default=2, help="at most this many mutations per input")
    parser.add_argument("--start", type=int, default=0, help="skip this many inputs (replay a part of a run)")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="acp-fuzz-"))
    started = time.monotonic()
    try:
        seeds = seed_trees(work / "seeds")
        findings: list[Finding] = []
        kinds: dict[str, int] = {}
        for i in range(args.inputs):
            case_seed, mutations = rng.getrandbits(64), rng.randint(1, args.mutations)
            if i < args.start:
                continue
            found = run_one(work, seeds, random.Random(case_seed), mutations)
            findings += found
            if (i + 1) % 1000 == 0:
                print(
                    f"{i + 1} inputs, {len(findings)} findings, {time.monotonic() - started:.0f}s", flush=True
                )
            for f in found:
                kinds[f.error.strip().splitlines()[-1][:120]] = (
                    kinds.get(f.error.strip().splitlines()[-1][:120], 0) + 1
                )
        print(
            json.dumps(
                {
                    "inputs": args.inputs,
                    "seed": args.seed,
                    "seconds": round(time.monotonic() - started),
                    "findings": len(findings),
                    "kinds": kinds,
                }
            )
        )
        for f in findings[:5]:
            print(f"--- {f.reader} after {f.mutation}\n{f.error}")
        return 1 if findings else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
