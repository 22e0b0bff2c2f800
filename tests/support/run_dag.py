"""Run one DAG of tests/dags with ``dag.test()`` in its own process (for concurrent runs); print its state.

    python -m tests.support.run_dag <dag_id> '<run_conf JSON>'
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    from tests.dags import acp_lifecycle_test_dags as dags

    dag = next(d for d in vars(dags).values() if getattr(d, "dag_id", None) == argv[0])
    dag_run = dag.test(run_conf=json.loads(argv[1]))
    states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
    print(json.dumps({"state": str(dag_run.state), "tasks": states}))
    return 0 if str(dag_run.state) == "success" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
