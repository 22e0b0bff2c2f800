"""Where a driver runs, as pure data: the submission target, the handle of a submitted driver, the commands
that submit, query and kill it on each backend, and the parsing of what those commands print.

Commands are argument lists, never shell strings. The hook (``hooks/checkpoint.py``) runs them.

===========  ========================  ==========================================  ===========================
backend      master                    the driver                                  status / kill
===========  ========================  ==========================================  ===========================
local        ``local[...]``            a detached spark-submit process here        pid / process group
standalone   ``spark://host:port``     a detached client-mode process here         pid / process group
yarn         ``yarn``                  cluster mode, ``waitAppCompletion=false``   ``yarn application``
kubernetes   ``k8s://https://...``     cluster mode, driver pod named by us        ``kubectl get pod`` /
                                                                                   ``spark-submit --kill``
===========  ========================  ==========================================  ===========================
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import Any

from airflow_checkpoint_provider.exceptions import InvalidLaunchError, LaunchTargetError


class Backend(StrEnum):
    LOCAL = "local"
    STANDALONE = "standalone"
    YARN = "yarn"
    KUBERNETES = "kubernetes"


class Liveness(StrEnum):
    ALIVE = "alive"
    GONE = "gone"
    UNKNOWN = "unknown"


def backend_of(master: str) -> Backend:
    if master.startswith("local"):
        return Backend.LOCAL
    if master.startswith("spark://"):
        return Backend.STANDALONE
    if master == "yarn" or master.startswith("yarn"):
        return Backend.YARN
    if master.startswith("k8s://"):
        return Backend.KUBERNETES
    raise InvalidLaunchError(
        f"unsupported Spark master {master!r}: use local[...], spark://host:port, yarn or k8s://https://host:port"
    )


@dataclass(frozen=True, slots=True)
class SubmitTarget:
    """The connection's view of where drivers go (read from the Spark provider's ``spark`` connection)."""

    master: str = "local[2]"
    deploy_mode: str | None = None
    spark_binary: str = "spark-submit"
    queue: str | None = None
    namespace: str | None = None
    #: The Python the driver and executors run (``spark.pyspark.python``); None: the cluster's default.
    python: str | None = None
    yarn_binary: str = "yarn"
    kubectl_binary: str = "kubectl"

    def __post_init__(self) -> None:
        backend = backend_of(self.master)
        mode = self.deploy_mode or ("cluster" if backend in (Backend.YARN, Backend.KUBERNETES) else "client")
        object.__setattr__(self, "deploy_mode", mode)
        if backend in (Backend.LOCAL, Backend.STANDALONE) and mode != "client":
            raise InvalidLaunchError(
                f"{backend.value} drivers run in client mode here (detached processes), not {mode!r}",
                hint="Drop deploy-mode from the connection, or set it to client",
            )
        if backend in (Backend.YARN, Backend.KUBERNETES) and mode != "cluster":
            raise InvalidLaunchError(
                f"{backend.value} drivers must run in cluster mode (a client-mode driver would die with "
                "the Airflow "
                "worker), got deploy mode {mode!r}",
                hint="Set deploy-mode to cluster in the connection's extras",
            )
        if backend is Backend.KUBERNETES and not self.namespace:
            object.__setattr__(self, "namespace", "default")

    @property
    def backend(self) -> Backend:
        return backend_of(self.master)


@dataclass(frozen=True, slots=True)
class DriverHandle:
    """How to find a submitted driver again (kept in ``task_state_store`` and in the generation's record)."""

    backend: Backend
    launch_id: str
    master: str
    submitted_at: float
    generation: int
    pid: int | None = None
    host: str = ""
    app_id: str | None = None
    namespace: str | None = None
    pod: str | None = None
    log_path: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "backend", Backend(self.backend))

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "backend": self.backend.value}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DriverHandle:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def describe(self) -> str:
        where = {
            Backend.LOCAL: f"pid {self.pid} on {self.host}",
            Backend.STANDALONE: f"pid {self.pid} on {self.host}",
            Backend.YARN: f"YARN application {self.app_id}",
            Backend.KUBERNETES: f"driver pod {self.namespace}/{self.pod}",
        }.get(self.backend, "?")
        return f"{self.backend} driver ({where}, launch {self.launch_id})"


@dataclass(frozen=True, slots=True)
class LaunchTarget:
    """Where a generation's drivers run: recorded with the generation's first launch and used by every
    relaunch of it (callback, start retry, watchdog), so a resume runs on the engine that wrote the
    checkpoint.

    :param conn_id: the ``spark`` connection the launch used (None: the embedded local default).
    :param master_override: the master the caller named over the connection's (None: the connection's).
    :param master: the master the driver was submitted to (resolved).
    :param deploy_mode: ``client`` or ``cluster`` (resolved).
    """

    conn_id: str | None
    master_override: str | None
    master: str
    deploy_mode: str | None

    @property
    def backend(self) -> Backend:
        return backend_of(self.master)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "backend": self.backend.value}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LaunchTarget:
        return cls(
            conn_id=data.get("conn_id") or None,
            master_override=data.get("master_override") or None,
            master=str(data["master"]),
            deploy_mode=data.get("deploy_mode") or None,
        )

    def describe(self) -> str:
        via = f"connection {self.conn_id!r}" if self.conn_id else "no connection"
        return f"{self.backend.value} {self.master} ({via})"


def relaunch_target(
    record: Mapping[str, Any],
    *,
    conn_id: str | None,
    master: str | None,
    job: str | None = None,
    generation: int | None = None,
    path: str | None = None,
) -> tuple[LaunchTarget | None, str]:
    """Decide where a launch of a generation goes, from its record and what the caller asked for.

    - The generation was never launched: the caller's target (None here: "as requested"), recorded then.
    - It was launched: its recorded ``target``, or for a generation recorded before targets were, the master
      of its latest launch. A caller that names nothing gets that target; a caller that names the same
      connection or master gets it too; a caller that names another target is refused, because a resume
      must run where the checkpoint's driver ran (move a job by redeploying it through a snapshot).

    :returns: the target to use (None: as requested) and the reason, for the log.
    :raises LaunchTargetError: the caller named another target, or the record does not say where it ran.
    """
    launches = record.get("launches") or []
    if isinstance(record.get("target"), Mapping):
        recorded = LaunchTarget.from_json(record["target"])
    elif launches:
        last = launches[-1] if isinstance(launches[-1], Mapping) else {}
        if not last.get("master"):
            raise LaunchTargetError(
                "the generation was launched before, but its record does not say on which Spark master",
                path=path,
                job=job,
                generation=generation,
                hint="Pass conn_id= or master= explicitly to the start operator or restart_from_checkpoint",
            )
        recorded = LaunchTarget(
            conn_id=None, master_override=str(last["master"]), master=str(last["master"]), deploy_mode=None
        )
    else:
        return None, "first launch of the generation: the target as requested"
    asked_conn, asked_master = conn_id or None, master or None
    if asked_conn is None and asked_master is None:
        return recorded, f"relaunching where the generation ran: {recorded.describe()}"
    same_conn = asked_conn is None or asked_conn == recorded.conn_id
    same_master = asked_master is None or asked_master in (recorded.master, recorded.master_override)
    if same_conn and same_master:
        return recorded, f"relaunching where the generation ran: {recorded.describe()}"
    asked = ", ".join(
        f"{name} {value!r}" for name, value in (("connection", asked_conn), ("master", asked_master)) if value
    )
    raise LaunchTargetError(
        f"the generation ran on {recorded.describe()}, but this relaunch asks for {asked}: a resume runs "
        "where the checkpoint's driver ran",
        path=path,
        job=job,
        generation=generation,
        hint="Drop conn_id/master from the restart, or move the job by redeploying it through a snapshot",
    )


def driver_pod_name(job: str, generation: int, launch_id: str) -> str:
    """A DNS-1123 pod name we choose, so the driver can be found without parsing spark-submit's output."""
    base = re.sub(r"[^a-z0-9-]+", "-", job.lower()).strip("-") or "job"
    return f"{base[:40]}-g{generation}-{launch_id[:8]}-driver".strip("-")


def submit_command(
    target: SubmitTarget,
    *,
    app: str,
    app_args: Sequence[str],
    name: str,
    conf: Mapping[str, str],
    python_path: Sequence[str] = (),
    detached: bool = True,
    pod_name: str | None = None,
    py_files: Sequence[str] = (),
) -> list[str]:
    """The spark-submit argument list for ``app`` on ``target``.

    ``python_path`` must reach the driver's and the executors' Python (the shipped source is loaded by Spark's
    Python runner, which needs it on ``PYTHONPATH``; ``--py-files`` is not enough for a Python data source).
    For local and standalone drivers the hook also puts it in the process environment.
    """
    backend = target.backend
    cmd = [target.spark_binary, "--master", target.master, "--name", name]
    if backend in (Backend.YARN, Backend.KUBERNETES):
        cmd += ["--deploy-mode", "cluster"]
    merged: dict[str, str] = {}
    joined = ":".join(python_path)
    if target.python:
        merged["spark.pyspark.python"] = target.python
    if joined:
        merged["spark.executorEnv.PYTHONPATH"] = joined
    if backend is Backend.YARN:
        if target.queue:
            cmd += ["--queue", target.queue]
        merged["spark.yarn.submit.waitAppCompletion"] = "false" if detached else "true"
        if joined:
            merged["spark.yarn.appMasterEnv.PYTHONPATH"] = joined
    if backend is Backend.KUBERNETES:
        merged["spark.kubernetes.namespace"] = str(target.namespace)
        merged["spark.kubernetes.submission.waitAppCompletion"] = "false" if detached else "true"
        if pod_name:
            merged["spark.kubernetes.driver.pod.name"] = pod_name
        if joined:
            merged["spark.kubernetes.driverEnv.PYTHONPATH"] = joined
    merged.update({str(k): str(v) for k, v in conf.items()})
    for key in sorted(merged):
        cmd += ["--conf", f"{key}={merged[key]}"]
    if py_files:
        cmd += ["--py-files", ",".join(py_files)]
    return [*cmd, app, *app_args]


def status_command(target: SubmitTarget, handle: DriverHandle) -> list[str] | None:
    """The command that reports a cluster driver's state (None for local and standalone: the hook checks the
    pid)."""
    if handle.backend is Backend.YARN and handle.app_id:
        return [target.yarn_binary, "application", "-status", handle.app_id]
    if handle.backend is Backend.KUBERNETES and handle.pod:
        return [target.kubectl_binary, "get", "pod", handle.pod, "-n", str(handle.namespace), "-o", "json"]
    return None


def kill_command(target: SubmitTarget, handle: DriverHandle) -> list[str] | None:
    """The command that hard-kills a cluster driver (None for local and standalone: the hook signals the
    group)."""
    if handle.backend is Backend.YARN and handle.app_id:
        return [target.yarn_binary, "application", "-kill", handle.app_id]
    if handle.backend is Backend.KUBERNETES and handle.pod:
        return [target.spark_binary, "--master", handle.master, "--kill", f"{handle.namespace}:{handle.pod}"]
    return None


_YARN_APP = re.compile(r"\b(application_\d+_\d+)\b")
_YARN_STATE = re.compile(r"^\s*State\s*:\s*(\w+)", re.MULTILINE)
_YARN_ALIVE = {"NEW", "NEW_SAVING", "SUBMITTED", "ACCEPTED", "RUNNING"}
_YARN_GONE = {"FINISHED", "FAILED", "KILLED"}


def parse_yarn_submission(output: str) -> str | None:
    """The application id spark-submit printed (``Submitted application application_..._0001``)."""
    submitted = re.search(r"Submitted application (application_\d+_\d+)", output)
    if submitted:
        return submitted.group(1)
    found = _YARN_APP.search(output)
    return found.group(1) if found else None


def parse_yarn_status(output: str, returncode: int = 0) -> Liveness:
    """``yarn application -status <id>``: the ``State :`` line of its application report."""
    if "doesn't exist in RM" in output or "could not be found" in output.lower():
        return Liveness.GONE
    found = _YARN_STATE.search(output)
    if returncode != 0 or not found:
        return Liveness.UNKNOWN
    state = found.group(1).upper()
    if state in _YARN_ALIVE:
        return Liveness.ALIVE
    if state in _YARN_GONE:
        return Liveness.GONE
    return Liveness.UNKNOWN


def parse_k8s_submission(output: str) -> str | None:
    """The ``namespace:pod`` submission id spark-submit printed for a Kubernetes cluster-mode driver."""
    found = re.search(r"submission ID (\S+?:\S+?)(?:\s|$)", output)
    return found.group(1) if found else None


def parse_k8s_pod_status(output: str, returncode: int = 0) -> Liveness:
    """``kubectl get pod <driver> -o json``: ``status.phase`` (Pending/Running alive; Succeeded/Failed
    gone)."""
    if returncode != 0:
        return Liveness.GONE if "NotFound" in output or "not found" in output else Liveness.UNKNOWN
    try:
        phase = json.loads(output).get("status", {}).get("phase", "")
    except (ValueError, AttributeError):
        return Liveness.UNKNOWN
    if phase in ("Pending", "Running"):
        return Liveness.ALIVE
    if phase in ("Succeeded", "Failed"):
        return Liveness.GONE
    return Liveness.UNKNOWN
