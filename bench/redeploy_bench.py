"""Redeploy downtime against its floor, side by side in one run, through Airflow's example DAGs on local
Spark.

    bash ./scripts/bench.sh redeploy [--rounds 2]

First the floors, each alone on the machine: the cold start of each application on an empty checkpoint
(``example_start_job`` on a fresh job root), from the driver's submission to its first committed batch (median
of ``--rounds``). Then, for each round, four redeploys of one running job (to v2, back to v1; with each flow):

- ``downtime``: a redeploy of the running job to that application (``example_redeploy``): from the stop
request to
  the first committed batch of the new generation (stop, snapshot, verification, retire, submit, load, batch
  0), with the stopping driver exporting the snapshot (``example_redeploy``, now) and with the exporter as its
  own Spark application (``bench/dags``' variant: the flow before).

The target is downtime <= 1.3 x floor. Events arrive continuously (200/s, 13 keys) the whole time. Prints a
table and writes ``bench/results/redeploy_bench.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from demo import Demo  # noqa: E402

from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot  # noqa: E402

TARGET = 1.3
#: The redeploy as it is (the stopping driver exports the snapshot) and as it was (an exporter application).
FLOWS = {
    "export on stop": ("example_redeploy", "example_redeploy"),
    "exporter application": ("bench_redeploy_dags", "bench_redeploy_exporter"),
}


def first_commit_at(root: JobRoot, generation: int, timeout: float = 300) -> float:
    commit = Path(root.checkpoint(generation).path) / "commits" / "0"
    deadline = time.monotonic() + timeout
    while not commit.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: no first commit in {commit}")
        time.sleep(0.2)
    return commit.stat().st_mtime


class Bench(Demo):
    def __init__(self, out: Path, rate: int) -> None:
        super().__init__(out, rate)
        self.env["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"] = json.dumps(
            [
                {
                    "name": name,
                    "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                    "kwargs": {"path": str(path)},
                }
                for name, path in (("examples", ROOT / "dags"), ("bench", ROOT / "bench" / "dags"))
            ]
        )
        self.env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "bench" / "dags"), self.env["PYTHONPATH"]])

    def params_for(self, job: Path, app: str, **extra: Any) -> dict[str, Any]:
        return {**self.params(app, **extra), "job_root": str(job)}

    def floor(self, app: str, index: int) -> float:
        """Cold start of ``app`` on a fresh job root: submission -> first committed batch."""
        job = self.out / "jobs" / f"floor-{app}-{index}"
        outcome = self.dag("example_job_control", "example_start_job", self.params_for(job, app))
        if outcome["state"].split(".")[-1] != "success":
            raise SystemExit(f"bench: the cold start of {app} failed (see {self.out}/airflow.log)")
        root = JobRoot(job)
        submitted = float((root.read_generation_record(1) or {})["launches"][-1]["submitted_at"])
        seconds = first_commit_at(root, 1) - submitted
        self.dag("example_job_control", "example_stop_job", self.params_for(job, app))
        return seconds

    def cleanup(self) -> None:
        super().cleanup()
        for job in (self.out / "jobs").glob("floor-*"):  # the cold-start jobs' drivers too
            for record in JobRoot(job).generation_records().values():
                for launch in record.get("launches", []):
                    try:
                        os.killpg(int(launch["pid"]), signal.SIGKILL)
                    except (ProcessLookupError, PermissionError, KeyError, TypeError, ValueError):
                        pass

    def redeploy(self, app: str, migration: str, flow: str) -> dict[str, Any]:
        old = max(self.root.generations())
        module, dag_id = FLOWS[flow]
        outcome = self.dag(module, dag_id, self.params(app, migration=migration))
        if outcome["state"].split(".")[-1] != "success":
            raise SystemExit(f"bench: the redeploy to {app} failed (see {self.out}/airflow.log)")
        request = self.root.read_stop_request(old)
        assert request is not None
        stop = outcome["tasks"]["stop"]["result"]
        assert bool(stop.get("snapshot_id")) == (flow == "export on stop"), stop
        return {
            "flow": flow,
            "downtime_s": first_commit_at(self.root, old + 1) - request.requested_at,
            "stop_latency_s": stop.get("stop_latency_s"),
            "export_on_stop_s": stop.get("snapshot_s"),
        }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rate", type=int, default=200)
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="redeploy-bench-"))
    bench = Bench(out, args.rate)
    rows: list[dict[str, Any]] = []
    try:
        bench.airflow_db()
        bench.producer.thread.start()
        floors: dict[str, list[float]] = {"v1": [], "v2": []}
        for r in range(args.rounds):  # each cold start alone on the machine, as the redeploy's new driver is
            for app in ("v2", "v1"):
                floors[app].append(bench.floor(app, r))
                print(f"  cold start of {app} (round {r + 1}): {floors[app][-1]:.1f}s", flush=True)
        started = bench.dag("example_job_control", "example_start_job", bench.params("v1"))
        if started["state"].split(".")[-1] != "success":
            raise SystemExit("bench: v1 did not start")
        for r in range(args.rounds):
            for flow in FLOWS:
                for app, migration in (("v2", "v1_to_v2"), ("v1", "v2_to_v1")):
                    bench.wait(
                        lambda: bench.committed(max(bench.root.generations())) >= 2, "two committed batches"
                    )
                    floor = statistics.median(floors[app])
                    result = bench.redeploy(app, migration, flow)
                    rows.append(
                        {
                            "round": r + 1,
                            "app": app,
                            "floor_s": round(floor, 2),
                            **result,
                            "ratio": round(result["downtime_s"] / floor, 2),
                        }
                    )
                    print(
                        f"  round {r + 1} -> {app} ({flow}): floor {floor:.1f}s, downtime "
                        f"{result['downtime_s']:.1f}s ({result['downtime_s'] / floor:.2f}x)",
                        flush=True,
                    )
    finally:
        bench.cleanup()
    medians = {flow: statistics.median(r["ratio"] for r in rows if r["flow"] == flow) for flow in FLOWS}
    print(
        f"\n{'round':>5} {'app':>4} {'flow':>21} {'floor (s)':>10} {'downtime (s)':>13} {'ratio':>6} "
        f"{'stop (s)':>9} {'export on stop (s)':>19}"
    )
    for row in rows:
        print(
            f"{row['round']:>5} {row['app']:>4} {row['flow']:>21} {row['floor_s']:>10.1f} "
            f"{row['downtime_s']:>13.1f} "
            f"{row['ratio']:>6.2f} {row['stop_latency_s'] or 0:>9.2f} {row['export_on_stop_s'] or 0:>19.2f}"
        )
    for flow, ratio in medians.items():
        print(f"median downtime / floor, {flow}: {ratio:.2f} (target <= {TARGET})")
    result = {
        "benchmark": "redeploy",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "target_ratio": TARGET,
        "median_ratio": medians["export on stop"],
        "median_ratio_by_flow": medians,
        "rows": rows,
    }
    path = ROOT / "bench" / "results" / "redeploy_bench.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
