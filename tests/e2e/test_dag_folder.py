"""A real dag-processor pointed at this project's ``dags/`` folder, as a new user would point theirs: no
import errors, exactly the example DAG ids, and the example Spark applications in ``dags/apps/`` not parsed as
DAG files. It runs as its own process with its own Airflow home and database, and with ``PYTHONPATH`` unset (a
deployment has only the installed provider and the DAGs folder on its path)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import ROOT

pytestmark = [pytest.mark.airflow]

EXAMPLE_DAGS = {
    "example_checkpoint_rotation",
    "example_periodic_snapshot",
    "example_redeploy",
    "example_safe_redeploy",
    "example_scheduled_redeploy",
    "example_snapshot_audit",
    "example_start_job",
    "example_stop_job",
    "example_watchdog",
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
    found = {str(d["dag_id"]) for d in json_line(airflow(home, "dags", "list", "-o", "json"))}
    assert found == EXAMPLE_DAGS
