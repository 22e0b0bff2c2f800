"""Redeploy downtime against its floor, side by side in one run, through Airflow's example DAGs on local
Spark, in a real Airflow deployment (api-server, scheduler, dag-processor, triggerer, LocalExecutor).

    bash ./scripts/bench.sh redeploy [--rounds 3]

First the floors, each alone on the machine: the cold start of each application on an empty checkpoint
(``example_start_job`` on a fresh job root), from the driver's submission to its first committed batch
(median of ``--rounds``). Then, for each round, redeploys of one running job (to v2, back to v1) with each
flow:

- ``warm standby``: ``example_redeploy`` as it ships: the new code is launched and warmed before the stop and
  takes over by itself when the old driver's snapshot is verified;
- ``export on stop``: the same DAG with ``standby=false``: the new code is submitted after the stop;
- ``exporter application``: ``bench/dags``' variant (no standby, the snapshot exported by its own Spark
  application): the flow of round one.

Two more, by hand (``--flows``), time the safe redeploy (plan, baseline snapshot, dry run, standby, stop,
start, readiness window of 10 s) as a whole DAG run beside its downtime:

- ``safe adopted``: ``example_safe_redeploy`` as it ships: the dry run's driver becomes the standby;
- ``safe two drivers``: ``bench/dags``' variant in which the dry run's driver exits and the standby
  task launches a second one (before the adoption).

``downtime``: from the stop request to the first committed batch of the new generation. For the standby also
its phases: the warm-up (before the stop; off the critical path), stop request -> go (stop, export, verify,
promote), and go -> first commit (the new query's start, the state load, batch 0). Targets: downtime with the
standby <= 0.25 x the cold start (aim 0.15); without it, <= 1.3 x. Events arrive continuously (200/s, 13 keys)
the whole time. Prints a table and writes ``bench/results/redeploy_bench.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from cpu_sampler import CpuSampler, classify  # noqa: E402
from demo import Demo  # noqa: E402
from deployment import AirflowDeployment  # noqa: E402

from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot  # noqa: E402

TARGET = 1.3
#: Downtime with the warm standby, as a share of a cold start (and the aim).
STANDBY_TARGET, STANDBY_AIM = 0.25, 0.15
#: The module in the DAG folders that defines each DAG the benchmark runs (for ``--runner dag.test``).
MODULES = {
    "example_start_job": "example_job_control",
    "example_stop_job": "example_job_control",
    "example_redeploy": "example_redeploy",
    "bench_redeploy_exporter": "bench_redeploy_dags",
    "example_safe_redeploy": "example_safe_redeploy",
    "bench_safe_redeploy_two_drivers": "bench_redeploy_dags",
}
#: Each flow: (DAG id, whether the redeploy launches a warm standby).
FLOWS = {
    "warm standby": ("example_redeploy", True),
    "export on stop": ("example_redeploy", False),
    "exporter application": ("bench_redeploy_exporter", False),
    "safe adopted": ("example_safe_redeploy", True),
    "safe two drivers": ("bench_safe_redeploy_two_drivers", True),
}
#: The flows measured by default (the safe redeploy's two are by hand: they take minutes each here).
DEFAULT_FLOWS = ("warm standby", "export on stop", "exporter application")
#: What the safe redeploy's runs get beside the redeploy's params.
SAFE = {"dry_run": True, "intent": "upgrade", "readiness_window_s": 10}


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
        bundles = [
            {
                "name": name,
                "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                "kwargs": {"path": str(path)},
            }
            for name, path in (("examples", ROOT / "dags"), ("bench", ROOT / "bench" / "dags"))
        ]
        path = [str(ROOT / "bench" / "dags"), str(ROOT / "dags"), str(ROOT)]
        self.airflow = AirflowDeployment(
            out / "airflow-home",
            ROOT / "dags",
            deferrable=True,
            env={
                "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
                "PYTHONPATH": os.pathsep.join([*path, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            },
        )

    #: ``deployment`` (default): every DAG run through the deployment's scheduler and executor;
    #: ``dag.test``: through ``dag.test()`` in a fresh process (no scheduler), on the same database.
    runner = "deployment"
    #: ``--cpu``: sample every process's CPU during each standby redeploy (who competes with batch 0).
    cpu = False

    def prepare_runner(self) -> None:
        """Start the deployment; for ``dag.test`` only until it has parsed (serialized) the DAGs."""
        self.start_airflow()
        if self.runner == "dag.test":
            for dag_id in MODULES:
                self.airflow.wait_for_dag(dag_id)
            self.airflow.stop()

    def dag(self, dag_id: str, conf: dict[str, Any]) -> dict[str, Any]:
        if self.runner == "deployment":
            return super().dag(dag_id, conf)
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "run_dag.py"), MODULES[dag_id], dag_id, json.dumps(conf)],
            env=self.airflow.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        with open(self.out / "dag-test.log", "a") as log:
            log.write(done.stdout + done.stderr)
        outcome = json.loads(done.stdout.strip().splitlines()[-1])
        state = str(outcome["state"]).split(".")[-1].lower()
        print(f"  {dag_id} (dag.test): {state} in {time.monotonic() - started:.0f}s", flush=True)
        return {"state": state, "tasks": outcome["tasks"]}

    def params_for(self, job: Path, app: str, **extra: Any) -> dict[str, Any]:
        return {**self.params(app, **extra), "job_root": str(job)}

    def floor(self, app: str, index: int) -> float:
        """Cold start of ``app`` on a fresh job root: submission -> first committed batch."""
        job = self.out / "jobs" / f"floor-{app}-{index}"
        outcome = self.dag("example_start_job", self.params_for(job, app))
        if outcome["state"].split(".")[-1] != "success":
            raise SystemExit(f"bench: the cold start of {app} failed (see {self.out}/airflow-home/logs)")
        root = JobRoot(job)
        submitted = float((root.read_generation_record(1) or {})["launches"][-1]["submitted_at"])
        seconds = first_commit_at(root, 1) - submitted
        self.dag("example_stop_job", self.params_for(job, app))
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
        dag_id, standby = FLOWS[flow]
        sampler = CpuSampler() if self.cpu and standby else None
        params = self.params(app, migration=migration, standby=standby, **(SAFE if "safe" in flow else {}))
        began = time.time()
        if sampler is not None:
            with sampler:
                outcome = self.dag(dag_id, params)
        else:
            outcome = self.dag(dag_id, params)
        ran_s = time.time() - began
        if outcome["state"].split(".")[-1] != "success":
            raise SystemExit(f"bench: the redeploy to {app} failed (see {self.out}/airflow-home/logs)")
        request = self.root.read_stop_request(old)
        assert request is not None
        stop = outcome["tasks"]["stop"]["result"]
        assert bool(stop.get("snapshot_id")) == (flow != "exporter application"), stop
        first_commit = first_commit_at(self.root, old + 1)
        row = {
            "flow": flow,
            "downtime_s": first_commit - request.requested_at,
            "stop_latency_s": stop.get("stop_latency_s"),
            "export_on_stop_s": stop.get("snapshot_s"),
            "dag_run_s": round(ran_s, 1),
            # each task's own run time (seconds; what the scheduler adds between them is the rest)
            "task_s": {
                t: round(float(v["duration_s"]), 1)
                for t, v in outcome["tasks"].items()
                if isinstance(v.get("duration_s"), (int, float)) and "success" in str(v.get("state"))
            },
        }
        if "safe" in flow:
            row["adopted"] = bool((outcome["tasks"].get("standby", {}).get("result") or {}).get("adopted"))
        status = self.root.read_status(old + 1)
        if standby:
            took_over = outcome["tasks"]["start"]["result"]
            if status is None or status.go_at is None or not took_over.get("reconnected"):
                raise SystemExit(f"bench: the standby did not take over: {status}, {took_over}")
            row |= {
                "warm_s": status.warm_s,
                "to_go_s": status.go_at - request.requested_at,
                "go_to_commit_s": first_commit - status.go_at,
                # where go -> first commit goes: building and starting the query, then Spark's own phases
                # of batch 0 (its durationMs, in ms)
                "go_to_query_start_s": (status.query_started_at or status.go_at) - status.go_at,
                "first_batch_ms": status.first_batch_ms,
            }
            if sampler is not None:
                row["cpu_s"] = self.cpu_use(sampler, old, request.requested_at, status.go_at, first_commit)
        return row

    def cpu_use(
        self, sampler: CpuSampler, old: int, requested: float, go: float, committed: float
    ) -> dict[str, dict[str, float]]:
        """CPU seconds per kind of process, stop request -> go and go -> first commit."""
        groups = {}
        for generation, label in ((old, "old driver"), (old + 1, "new driver")):
            for launch in (self.root.read_generation_record(generation) or {}).get("launches", []):
                groups[int(launch["pid"])] = label

        def name(pid: int, cmdline: str) -> str:
            group = sampler.group_of(pid)
            if group in groups:  # the driver's JVM, its Python driver, and the Python processes Spark starts
                if "java" in cmdline.split(" ", 1)[0]:
                    return f"{groups[group]} (JVM)"
                return f"{groups[group]} (Python)"
            if pid == os.getpid():
                return "benchmark (event producer)"
            if "airflow" in cmdline or "run_dag.py" in cmdline:
                return "airflow"
            return f"other ({Path(cmdline.split(' ', 1)[0]).name or '?'})"

        return {
            "to_go": classify(sampler, sampler.window(requested, go), name),
            "go_to_commit": classify(sampler, sampler.window(go, committed), name),
        }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument(
        "--flows",
        nargs="+",
        choices=list(FLOWS),
        default=list(DEFAULT_FLOWS),
        help=f"which redeploy flows to measure (default: {', '.join(DEFAULT_FLOWS)})",
    )
    parser.add_argument(
        "--json", default="", help="the results file in bench/results (default: redeploy_bench.json)"
    )
    parser.add_argument(
        "--runner",
        choices=("deployment", "dag.test"),
        default="deployment",
        help="run the DAGs through the deployment's scheduler (default) or with dag.test()",
    )
    parser.add_argument(
        "--cpu", action="store_true", help="sample which processes use the CPU during each standby handoff"
    )
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="redeploy-bench-"))
    bench = Bench(out, args.rate)
    bench.runner = args.runner
    bench.cpu = args.cpu
    rows: list[dict[str, Any]] = []
    try:
        bench.prepare_runner()
        bench.producer.thread.start()
        floors: dict[str, list[float]] = {"v1": [], "v2": []}
        for r in range(args.rounds):  # each cold start alone on the machine, as the redeploy's new driver is
            for app in ("v2", "v1"):
                floors[app].append(bench.floor(app, r))
                print(f"  cold start of {app} (round {r + 1}): {floors[app][-1]:.1f}s", flush=True)
        started = bench.dag("example_start_job", bench.params("v1"))
        if started["state"].split(".")[-1] != "success":
            raise SystemExit("bench: v1 did not start")
        for r in range(args.rounds):
            for flow in args.flows:
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
    medians = {flow: statistics.median(r["ratio"] for r in rows if r["flow"] == flow) for flow in args.flows}
    spreads = {
        flow: (
            min(r["ratio"] for r in rows if r["flow"] == flow),
            max(r["ratio"] for r in rows if r["flow"] == flow),
        )
        for flow in args.flows
    }
    print(
        f"\n{'round':>5} {'app':>4} {'flow':>21} {'floor (s)':>10} {'downtime (s)':>13} {'ratio':>6} "
        f"{'stop (s)':>9} {'export (s)':>11} {'warm (s)':>9} {'to go (s)':>10} {'go->commit (s)':>15}"
    )
    for row in rows:
        print(
            f"{row['round']:>5} {row['app']:>4} {row['flow']:>21} {row['floor_s']:>10.1f} "
            f"{row['downtime_s']:>13.1f} {row['ratio']:>6.2f} {row['stop_latency_s'] or 0:>9.2f} "
            f"{row['export_on_stop_s'] or 0:>11.2f} {row.get('warm_s') or 0:>9.1f} "
            f"{row.get('to_go_s') or 0:>10.2f} {row.get('go_to_commit_s') or 0:>15.2f}"
        )
    phases = [row for row in rows if row.get("first_batch_ms")]
    if phases:
        print("\nwarm standby, go -> first commit: the query's build and start, then batch 0's phases (s)")
        names = (
            "latestOffset",
            "queryPlanning",
            "addBatch",
            "walCommit",
            "commitOffsets",
            "triggerExecution",
        )
        print(f"{'round':>5} {'app':>4} {'start':>6} " + " ".join(f"{n:>16}" for n in names))
        for row in phases:
            ms = row["first_batch_ms"]
            print(
                f"{row['round']:>5} {row['app']:>4} {row['go_to_query_start_s']:>6.2f} "
                + " ".join(f"{ms.get(n, 0) / 1000:>16.2f}" for n in names)
            )
    sampled = [row for row in rows if row.get("cpu_s")]
    if sampled:
        print("\nwarm standby: CPU seconds by kind of process (2 cores): stop request -> go; go -> commit")
        for row in sampled:
            for window in ("to_go", "go_to_commit"):
                used = ", ".join(f"{k} {v:.2f}" for k, v in row["cpu_s"][window].items() if v >= 0.05)
                print(f"{row['round']:>5} {row['app']:>4} {window:>12}: {used}")
    for flow in [f for f in args.flows if "safe" in f]:
        runs = [r for r in rows if r["flow"] == flow]
        adopted = sum(1 for r in runs if r.get("adopted"))
        print(
            f"safe redeploy, {flow}: the DAG run {statistics.median(r['dag_run_s'] for r in runs):.1f}s "
            f"(spread {min(r['dag_run_s'] for r in runs):.1f}-{max(r['dag_run_s'] for r in runs):.1f}s), "
            f"downtime {statistics.median(r['downtime_s'] for r in runs):.1f}s, go -> first commit "
            f"{statistics.median(r.get('go_to_commit_s') or 0 for r in runs):.2f}s; "
            f"adopted {adopted} of {len(runs)}"
        )
        timed = [r["task_s"] for r in runs if r.get("task_s")]
        if timed:
            tasks = [t for t in timed[0] if all(t in x for x in timed)]
            listed = ", ".join(f"{t} {statistics.median(x[t] for x in timed):.1f}" for t in tasks)
            print(f"safe redeploy, {flow}: each task's run, median (s): {listed}")
    for flow, ratio in medians.items():
        target = (
            f"target <= {STANDBY_TARGET}, aim {STANDBY_AIM}"
            if flow == "warm standby" or "safe" in flow
            else f"target <= {TARGET}"
        )
        low, high = spreads[flow]
        print(f"median downtime / floor, {flow}: {ratio:.2f} (spread {low:.2f}-{high:.2f}; {target})")
    result = {
        "benchmark": "redeploy",
        "runner": args.runner,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "target_ratio": TARGET,
        "standby_target_ratio": STANDBY_TARGET,
        "median_ratio": medians.get("export on stop"),
        "standby_median_ratio": medians.get("warm standby"),
        "median_ratio_by_flow": medians,
        "spread_by_flow": spreads,
        "rows": rows,
    }
    name = args.json or (
        "redeploy_bench.json" if args.runner == "deployment" else "redeploy_bench_dag_test.json"
    )
    path = ROOT / "bench" / "results" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
