"""A real dag-processor pointed at this project's ``dags/`` folder, as a new user would point theirs: no
import errors, exactly the example DAG ids, each from the file that defines it, and the example Spark
applications in ``dags/apps/`` not parsed as DAG files. It runs as its own process with its own Airflow home
and database, and with ``PYTHONPATH`` unset (a deployment has only the installed provider and the DAGs folder
on its path).

And a ``DagBag`` over each folder of DAGs this project ships (the check a user's CI runs over a DAGs folder):
a DAG file that imports another for its DAG factory must not register the other's DAG as its own as well
(Airflow registers every DAG a ``with`` block closes during a file's import as that file's); the
dag-processor, which parses one file at a time, reports no error for it, but the DAG's file flips between
the two."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import ROOT

pytestmark = [pytest.mark.airflow]

#: Every example DAG id and the file that defines it.
EXAMPLE_DAGS = {
    "example_checkpoint_rotation": "example_scheduled_redeploy.py",
    "example_periodic_snapshot": "example_periodic_snapshot.py",
    "example_redeploy": "example_redeploy.py",
    "example_safe_redeploy": "example_safe_redeploy.py",
    "example_scheduled_redeploy": "example_scheduled_redeploy.py",
    "example_snapshot_audit": "example_snapshot_audit.py",
    "example_start_job": "example_job_control.py",
    "example_stop_job": "example_job_control.py",
    "example_watchdog": "example_watchdog.py",
}
#: The benchmark's DAGs, deployed beside ``dags/`` as a second bundle (bench/redeploy_bench.py).
BENCH_DAGS = {
    "bench_redeploy_exporter": "bench_redeploy_dags.py",
    "bench_safe_redeploy_two_drivers": "bench_redeploy_dags.py",
    "bench_reference": "bench_reference_dag.py",
}


def airflow(home: Path, *args: str, timeout: float = 300) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and k != "PYTHONPATH"}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="false",
        AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL="0",
    )
    done = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), *args],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"airflow {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def json_line(output: str) -> list[dict[str, object]]:
    """The JSON a ``-o json`` command prints (after any warnings)."""
    line = next(line for line in reversed(output.splitlines()) if line.startswith("["))
    return list(json.loads(line))


def test_a_real_dag_processor_parses_the_dags_folder_cleanly(run_dir: Path) -> None:
    home = run_dir / "dag-processor-home"
    home.mkdir(parents=True, exist_ok=True)
    airflow(home, "db", "migrate", timeout=600)
    log = airflow(home, "dag-processor", "--num-runs", "1")
    top_level = sorted(p.name for p in (ROOT / "dags").glob("*.py"))
    assert f"Found {len(top_level)} files for bundle" in log, log[-3000:]  # dags/apps/ is ignored
    assert json_line(airflow(home, "dags", "list-import-errors", "-o", "json")) == []
    found = {
        str(d["dag_id"]): Path(str(d["fileloc"])).name
        for d in json_line(airflow(home, "dags", "list", "-o", "json"))
    }
    assert found == EXAMPLE_DAGS


@pytest.mark.parametrize(("folder", "expected"), [("dags", EXAMPLE_DAGS), ("bench/dags", BENCH_DAGS)])
def test_a_dagbag_over_the_folder_finds_each_dag_once_in_its_own_file(
    folder: str, expected: dict[str, str]
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / folder))
    assert bag.import_errors == {}
    assert {dag_id: Path(dag.fileloc).name for dag_id, dag in bag.dags.items()} == expected
