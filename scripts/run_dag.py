"""Run one DAG with ``dag.test()`` in this process and print, as the last line, its state, each task's state
and return value (JSON). Used by the demo so Airflow's own logging goes to a log file, not the console.

    python scripts/run_dag.py <module in the DAGs folder> <dag id> '<run_conf JSON>'
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any


def main(argv: list[str]) -> int:
    module, dag_id, conf = argv[0], argv[1], json.loads(argv[2])
    loaded = importlib.import_module(module)
    dag = next(d for d in vars(loaded).values() if getattr(d, "dag_id", None) == dag_id)
    dag_run = dag.test(run_conf=conf)
    tasks: dict[str, Any] = {}
    for ti in dag_run.get_task_instances():
        try:
            value = ti.xcom_pull(task_ids=ti.task_id)
        except Exception:  # best effort: a task that failed has no return value
            value = None
        tasks[ti.task_id] = {
            "state": str(ti.state),
            "try_number": ti.try_number,
            "result": value,
            "duration_s": ti.duration,
        }
    print(json.dumps({"state": str(dag_run.state), "tasks": tasks}, default=str))
    return 0 if str(dag_run.state) == "success" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
