"""Import-time benchmark: what each operator, sensor, trigger, hook, callback and example DAG module adds over
``airflow.sdk`` (the target: at most 50 ms each), measured in fresh interpreters.

    bash ./scripts/bench.sh imports [--repeat 7]

For each module: the median over ``--repeat`` fresh interpreters of (import airflow.sdk, then the module)
minus the median of importing airflow.sdk alone, measured inside the interpreter with ``perf_counter``. Prints
a table and writes ``bench/results/imports_bench.json``. Also records whether pyspark was imported (it must
not be).

A DAG module is also compared with plain Airflow DAGs of its own shape (``same_shape_ms``): every DAG its
import builds (a factory's import included), with its params, schedule and tags, and as many plain
``BaseOperator`` tasks with the same dependencies. That is what Airflow itself costs for such a file:
``over_same_shape_ms`` is the provider's share. ``bench_reference_dag`` is the fixed reference of earlier
tables (one DAG of 5 tasks and 1 param), kept for comparison; a module that builds three DAGs of 12 tasks and
11 params each cannot be compared with it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODULES = [
    "airflow_checkpoint_provider.operators.checkpoint",
    "airflow_checkpoint_provider.sensors.checkpoint",
    "airflow_checkpoint_provider.triggers.checkpoint",
    "airflow_checkpoint_provider.hooks.checkpoint",
    "airflow_checkpoint_provider.callbacks.checkpoint",
    "airflow_checkpoint_provider.operators.upgrade",
    "example_redeploy",
    "example_job_control",
    "example_watchdog",
    "example_periodic_snapshot",
    "example_safe_redeploy",
    "example_scheduled_redeploy",
    "bench_reference_dag",  # a DAG of the same shape with no provider operator: Airflow's own cost
]
PROBE = """
import sys, time, json
sys.path[:0] = [{root!r}, {dags!r}, {bench_dags!r}]
t0 = time.perf_counter()
import airflow.sdk
t1 = time.perf_counter()
{imp}
t2 = time.perf_counter()
print(json.dumps({{"sdk": t1 - t0, "module": t2 - t1,
                   "pyspark": any(m.split(".")[0] in ("pyspark", "py4j") for m in sys.modules)}}))
"""


#: What a DAG module's import builds: each DAG created in a module of the DAG folders, as plain data.
SHAPE = """
import datetime as dt, json, sys
sys.path[:0] = [{root!r}, {dags!r}, {bench_dags!r}]
import airflow.sdk
from airflow.sdk import DAG
import {module}
seen, shape = set(), []
for mod in list(sys.modules.values()):
    if not str(getattr(mod, "__file__", "") or "").startswith(({dags!r}, {bench_dags!r})):
        continue
    for dag in vars(mod).values():
        if not isinstance(dag, DAG) or id(dag) in seen:
            continue
        seen.add(id(dag))
        schedule = dag.schedule
        if isinstance(schedule, dt.timedelta):
            schedule = {{"every_s": schedule.total_seconds()}}
        elif schedule is not None and not isinstance(schedule, str):
            schedule = {{"aliases": [a.name for a in schedule]}}
        shape.append({{
            "dag_id": dag.dag_id, "schedule": schedule, "params": dag.params.dump(), "tags": sorted(dag.tags),
            "tasks": [t.task_id for t in dag.tasks],
            "edges": [[t.task_id, d] for t in dag.tasks for d in sorted(t.downstream_task_ids)],
        }})
print(json.dumps(shape))
"""
#: Plain Airflow DAGs of a given shape, timed like a module (the shape is read before the clock starts).
SAME_SHAPE = """
import datetime as dt, json, sys, time
shape = json.loads({shape!r})
t0 = time.perf_counter()
import airflow.sdk
t1 = time.perf_counter()
from airflow.sdk import DAG, AssetAlias, BaseOperator
dags = []
for d in shape:
    schedule = d["schedule"]
    if isinstance(schedule, dict):
        schedule = (dt.timedelta(seconds=schedule["every_s"]) if "every_s" in schedule
                    else [AssetAlias(name) for name in schedule["aliases"]])
    with DAG(d["dag_id"], schedule=schedule, start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), catchup=False,
             params=d["params"], tags=d["tags"], render_template_as_native_obj=True) as dag:
        tasks = {{task_id: BaseOperator(task_id=task_id) for task_id in d["tasks"]}}
        for up, down in d["edges"]:
            tasks[up] >> tasks[down]
    dags.append(dag)
t2 = time.perf_counter()
print(json.dumps({{"sdk": t1 - t0, "module": t2 - t1, "pyspark": False}}))
"""


def _paths() -> dict[str, str]:
    return {"root": str(ROOT), "dags": str(ROOT / "dags"), "bench_dags": str(ROOT / "bench" / "dags")}


def shape_of(module: str) -> list[dict[str, Any]]:
    """Every DAG ``module``'s import builds, as plain data (:data:`SHAPE`)."""
    out = subprocess.run(
        [sys.executable, "-c", SHAPE.format(module=module, **_paths())],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=_env(),
    )
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


#: Where the probes' bytecode is cached (:func:`_env`).
PYCACHE = Path(tempfile.gettempdir()) / "acp-imports-bench-pycache"


def _env() -> dict[str, str]:
    """The probes' environment: Python may cache bytecode, under :data:`PYCACHE` (not in the checkout). A
    deployment imports the provider from bytecode (an installed wheel's, compiled by pip), and a DAG file from
    its ``__pycache__``; a machine with ``PYTHONDONTWRITEBYTECODE`` set (as this project's are) would
    otherwise compile every module of the checkout from source in every probe: 23 -> 10 ms for
    ``operators.checkpoint`` alone."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    return env


def _probe(code: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT, env=_env()
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def measure(module: str, repeat: int) -> dict[str, Any]:
    """The medians over ``repeat`` fresh interpreters, after one that is not counted (it writes the
    bytecode). A DAG module's runs alternate with its same-shape plain DAGs' (:data:`SAME_SHAPE`), and its
    share is the median of the pairs' differences: the host's noise moves both alike."""
    code = PROBE.format(imp=f"import {module}", **_paths())
    shape = shape_of(module) if module.startswith("example_") else None
    plain = SAME_SHAPE.format(shape=json.dumps(shape)) if shape is not None else None
    runs, same = [], []
    for i in range(repeat + 1):
        run = _probe(code)
        other = _probe(plain) if plain is not None else None
        if i:
            runs.append(run)
            if other is not None:
                same.append(other)
    result: dict[str, Any] = {
        "sdk_ms": statistics.median(r["sdk"] for r in runs) * 1000,
        "added_ms": statistics.median(r["module"] for r in runs) * 1000,
        "pyspark": any(r["pyspark"] for r in runs),
    }
    if shape is not None:
        result.update(
            dags=len(shape),
            tasks=sum(len(d["tasks"]) for d in shape),
            same_shape_ms=statistics.median(r["module"] for r in same) * 1000,
            over_same_shape_ms=statistics.median(
                a["module"] - b["module"] for a, b in zip(runs, same, strict=True)
            )
            * 1000,
        )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--modules", nargs="+", default=MODULES, help="only these (default: all)")
    args = parser.parse_args()
    results: dict[str, dict[str, Any]] = {}
    for module in args.modules:
        results[module] = measure(module, args.repeat)
    print(
        f"{'module':<52} {'adds (ms)':>10} {'same shape, plain (ms; ours)':>30} {'airflow.sdk (ms)':>17} "
        f"{'pyspark?':>9}"
    )
    for module, r in results.items():
        same_shape = (
            f"{r['same_shape_ms']:.1f} ({r['dags']} DAGs; +{r['over_same_shape_ms']:.1f})"
            if "same_shape_ms" in r
            else ""
        )
        print(
            f"{module:<52} {r['added_ms']:>10.1f} {same_shape:>30} {r['sdk_ms']:>17.0f} "
            f"{str(r['pyspark']):>9}"
        )
    if args.modules != MODULES:
        return 0  # a partial run leaves the table's results as they were
    out = ROOT / "bench" / "results" / "imports_bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "machine": {
                    "python": platform.python_version(),
                    "cpus": os.cpu_count(),
                    "platform": platform.platform(),
                },
                "repeat": args.repeat,
                "bytecode": "cached, as a deployment has it",
                "target_ms": 50,
                "modules": results,
            },
            indent=1,
        )
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
