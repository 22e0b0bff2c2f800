"""A real local Airflow deployment, as a team runs one: api-server, scheduler, dag-processor and triggerer as
separate processes, LocalExecutor, SQLite, every task a process of its own talking to the api-server's
execution API; DAG runs are triggered and watched through the public REST API with a login.

Used by the demo (``scripts/demo.py``), the real-deployment tests and the benchmarks::

    with AirflowDeployment(home, dags_folder) as airflow:
        run_id = airflow.trigger("example_start_job", conf)
        state = airflow.wait(run_id)

Every process runs in its own session and is stopped (SIGTERM, then SIGKILL) when the block ends. Logs go to
``<home>/logs/<component>.log``. Only loopback addresses are used.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
FINISHED = {"success", "failed"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DeploymentError(RuntimeError):
    """The deployment did not come up, or a request to it failed."""


class AirflowDeployment:
    """A local Airflow deployment under ``home``, serving the DAGs in ``dags``.

    :param home: the Airflow home (its SQLite database, config, logs); created if absent.
    :param dags: the DAGs folder the dag-processor parses.
    :param port: the api-server's port (default: a free one).
    :param deferrable: ``[operators] default_deferrable`` (waits run in the triggerer).
    :param env: extra environment for every component (and so for every task).
    """

    def __init__(
        self,
        home: Path,
        dags: Path,
        *,
        port: int | None = None,
        deferrable: bool = True,
        env: Mapping[str, str] | None = None,
        username: str = "admin",
        password: str | None = None,
    ) -> None:
        self.home = Path(home)
        self.dags = Path(dags)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.username = username
        self.password = password or secrets.token_urlsafe(12)
        self.logs = self.home / "logs"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._token: str | None = None
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        bin_dir = str(Path(sys.executable).parent)
        self.env.update(
            {
                "PATH": bin_dir + os.pathsep + self.env.get("PATH", ""),
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{self.username}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "passwords.json"),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
                "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
                "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": str(deferrable),
                # Small deployments react fast: the scheduler looks often, the dag-processor finds a new
                # DAG file within 5 s (and an edited one at its next look: it parses by modification time).
                # It reparses an unchanged file every 2 minutes, not every 10 s: with this folder's ten
                # files, a parse a second took a third of a core of the 2 (20 CPU-s a minute), beside the
                # Spark drivers the deployment runs.
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "120",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
                "SPARK_LOCAL_IP": "127.0.0.1",
                **dict(env or {}),
            }
        )

    # --- lifecycle ------------------------------------------------------------------------------------

    def __enter__(self) -> AirflowDeployment:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def airflow(self, *args: str, timeout: float = 600) -> str:
        """Run an ``airflow`` CLI command against this deployment; its output (raises on failure)."""
        done = subprocess.run(
            [str(Path(sys.executable).parent / "airflow"), *args],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise DeploymentError(f"airflow {' '.join(args)} exited {done.returncode}: {done.stderr[-2000:]}")
        return done.stdout

    def start(self, timeout: float = 240) -> None:
        """Migrate the database, start the four components, wait until the api-server answers."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        (self.home / "passwords.json").write_text(json.dumps({self.username: self.password}))
        self.airflow("db", "migrate")
        for component in COMPONENTS:
            log = open(self.logs / f"{component}.log", "ab")
            self.procs[component] = subprocess.Popen(
                [str(Path(sys.executable).parent / "airflow"), component],
                env=self.env,
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            try:
                health = self.request("GET", "/api/v2/monitor/health", auth=False)
                if health.get("metadatabase", {}).get("status") == "healthy":
                    return
            except (DeploymentError, OSError):
                pass
            if time.monotonic() > deadline:
                raise DeploymentError(f"the api-server did not answer at {self.url} within {timeout:.0f}s")
            time.sleep(1)

    def check_alive(self) -> None:
        """Raise if a component has exited (its log says why)."""
        for component, proc in self.procs.items():
            if proc.poll() is not None:
                tail = (self.logs / f"{component}.log").read_text(errors="replace")[-3000:]
                raise DeploymentError(f"airflow {component} exited {proc.returncode}:\n{tail}")

    def stop(self, grace_s: float = 20) -> None:
        """Stop every component: SIGTERM to its process group, SIGKILL after ``grace_s``."""
        for proc in self.procs.values():
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(proc, signal.SIGKILL)  # and whatever the component left in its group
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self.procs.clear()

    # --- the REST API ---------------------------------------------------------------------------------

    def token(self) -> str:
        if self._token is None:
            answer = self.request(
                "POST", "/auth/token", {"username": self.username, "password": self.password}, auth=False
            )
            self._token = str(answer["access_token"])
        return self._token

    def request(self, method: str, path: str, body: Any = None, *, auth: bool = True) -> Any:
        """One JSON request to the api-server; the decoded answer (DeploymentError on an HTTP error)."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token()}"
        req = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as answer:
                text = answer.read().decode()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:2000]
            raise DeploymentError(f"{method} {path}: HTTP {exc.code}: {detail}") from exc
        return json.loads(text) if text else None

    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> None:
        """Wait until the dag-processor has parsed ``dag_id``."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            try:
                self.request("GET", f"/api/v2/dags/{dag_id}")
                return
            except DeploymentError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(1)

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None) -> str:
        """Unpause ``dag_id`` if needed and trigger a run with ``conf``; return its run id."""
        self.wait_for_dag(dag_id)
        self.request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
        run = self.request(
            "POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": dict(conf or {})}
        )
        return str(run["dag_run_id"])

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"])

    def wait(self, dag_id: str, run_id: str, timeout: float = 900) -> str:
        """Wait for a run to finish; its state (``success`` or ``failed``)."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            state = self.run_state(dag_id, run_id)
            if state in FINISHED:
                return state
            if time.monotonic() > deadline:
                raise DeploymentError(f"{dag_id} run {run_id} still {state} after {timeout:.0f}s")
            time.sleep(1)

    def run(
        self, dag_id: str, conf: Mapping[str, Any] | None = None, timeout: float = 900
    ) -> tuple[str, str]:
        """Trigger and wait: (run id, final state)."""
        run_id = self.trigger(dag_id, conf)
        return run_id, self.wait(dag_id, run_id, timeout)

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        return {task_id: state for task_id, (state, _) in self.task_instances(dag_id, run_id).items()}

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, tuple[str, float | None]]:
        """Each task's state and how long it ran (seconds; None for a task that did not run)."""
        answer = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        return {str(ti["task_id"]): (str(ti["state"]), ti.get("duration")) for ti in answer["task_instances"]}

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        run = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}"
        return self.request("GET", f"{run}/taskInstances/{task_id}/xcomEntries/{key}?deserialize=true")[
            "value"
        ]


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
