"""Promise 8 (docs/design.md): nothing outside runtime/, and no DAG file, imports pyspark (checked in fresh
interpreters)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.processes import ROOT

PACKAGE = ROOT / "airflow_checkpoint_provider"


def non_runtime_modules() -> list[str]:
    modules = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        if "runtime" in rel.parts:
            continue
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules.append(".".join(parts))
    return modules


def dag_files() -> list[Path]:
    return sorted([*(ROOT / "dags").glob("*.py"), *(ROOT / "tests" / "dags").glob("*.py")])


PROBE = """
import importlib, importlib.util, json, sys
sys.path.insert(0, "dags")  # Airflow puts the DAGs folder on sys.path
loaded = {}
for name in json.loads(sys.argv[1]):
    importlib.import_module(name)
for i, path in enumerate(json.loads(sys.argv[2])):
    spec = importlib.util.spec_from_file_location(f"_dag_{i}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("pyspark", "py4j"))))
"""


def test_no_pyspark_outside_runtime() -> None:
    modules = non_runtime_modules()
    assert "airflow_checkpoint_provider.cli" in modules
    out = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(modules), json.dumps([str(p) for p in dag_files()])],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_runtime_eventlog_imports_without_pyspark() -> None:
    # The producer side of the shipped source (writer, index) must not need a JVM either.
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, airflow_checkpoint_provider.runtime.eventlog as e;"
            "print(any(m.startswith('pyspark') for m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert out.stdout.strip() == "False", out.stderr
