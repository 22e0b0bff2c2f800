"""Import-time benchmark: what each operator, sensor, trigger, hook, callback and example DAG module adds over
``airflow.sdk`` (the target: at most 50 ms each), measured in fresh interpreters.

    bash ./scripts/bench.sh imports [--repeat 7]

For each module: the median over ``--repeat`` fresh interpreters of (import airflow.sdk, then the module)
minus the median of importing airflow.sdk alone, measured inside the interpreter with ``perf_counter``. Prints
a table and writes ``bench/results/imports_bench.json``. Also records whether pyspark was imported (it must
not be).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
from pathlib import Path

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


def measure(module: str | None, repeat: int) -> dict[str, float | bool]:
    code = PROBE.format(
        root=str(ROOT),
        dags=str(ROOT / "dags"),
        bench_dags=str(ROOT / "bench" / "dags"),
        imp=f"import {module}" if module else "pass",
    )
    runs = []
    for _ in range(repeat):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {
        "sdk_ms": statistics.median(r["sdk"] for r in runs) * 1000,
        "added_ms": statistics.median(r["module"] for r in runs) * 1000,
        "pyspark": any(r["pyspark"] for r in runs),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    results = {m: measure(m, args.repeat) for m in MODULES}
    print(f"{'module':<52} {'adds (ms)':>10} {'airflow.sdk (ms)':>17} {'pyspark?':>9}")
    for module, r in results.items():
        print(f"{module:<52} {r['added_ms']:>10.1f} {r['sdk_ms']:>17.0f} {str(r['pyspark']):>9}")
    out = ROOT / "bench" / "results" / "imports_bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "machine": {
                    "python": platform.python_version(),
                    "cpus": __import__("os").cpu_count(),
                    "platform": platform.platform(),
                },
                "repeat": args.repeat,
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
