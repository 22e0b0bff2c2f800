"""The hook: submits, watches and kills managed streaming drivers on local, standalone, YARN and Kubernetes.

Configured by the Spark provider's ``spark`` connection (master in host/port, extras ``deploy-mode``,
``spark-binary``, ``queue``, ``namespace``, ``python``, ``python-path``, ``yarn-binary``, ``kubectl-binary``;
read key by key, nothing else). No connection means the embedded default: ``local[2]`` on this machine, the
driver a detached process that outlives the Airflow task.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow.sdk import BaseHook

from airflow_checkpoint_provider.checkpoint.inspector import inspect_checkpoint
from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot
from airflow_checkpoint_provider.checkpoint.processes import (
    driver_reported_alive,
    local_liveness,
    process_gone,
)
from airflow_checkpoint_provider.checkpoint.snapshots import SnapshotCatalogue
from airflow_checkpoint_provider.exceptions import (
    ExportFailedError,
    InvalidLaunchError,
    LaunchTargetError,
    SubmitError,
)
from airflow_checkpoint_provider.model.backends import (
    Backend,
    DriverHandle,
    LaunchTarget,
    Liveness,
    SubmitTarget,
    driver_pod_name,
    kill_command,
    parse_k8s_pod_status,
    parse_k8s_submission,
    parse_yarn_status,
    parse_yarn_submission,
    relaunch_target,
    status_command,
    submit_command,
)
from airflow_checkpoint_provider.model.constants import (
    DEFAULT_EXPORT_TIMEOUT_S,
    DEFAULT_HEARTBEAT_S,
    DEFAULT_LEASE_S,
    DEFAULT_STANDBY_TIMEOUT_S,
    KILL_COMMAND_TIMEOUT_S,
    LAUNCHES_KEPT,
    STATUS_QUERY_TIMEOUT_S,
    SUBMIT_TIMEOUT_S,
    UNREPORTED_SUBMIT_LEASES,
)
from airflow_checkpoint_provider.model.decisions import StartDecision, decide_start
from airflow_checkpoint_provider.model.launch import LaunchSpec
from airflow_checkpoint_provider.model.records import DriverStatus

EXTRAS = (
    "deploy-mode",
    "spark-binary",
    "queue",
    "namespace",
    "python",
    "python-path",
    "yarn-binary",
    "kubectl-binary",
)
PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])


@dataclass(frozen=True, slots=True)
class DriverView:
    """What can be known about a generation's driver right now: ALIVE, GONE (provably stopped) or UNKNOWN
    (not alive as far as anyone can tell, but not provably stopped either: e.g. submitted, not reported)."""

    liveness: Liveness
    reason: str
    status: DriverStatus | None
    handle: DriverHandle | None

    @property
    def alive(self) -> bool:
        return self.liveness is Liveness.ALIVE

    @property
    def provably_stopped(self) -> bool:
        return self.liveness is Liveness.GONE


class StreamingJobHook(BaseHook):
    """Submit managed drivers, export snapshots, and tell whether a driver is alive — on one Spark target.

    :param conn_id: a ``spark`` connection; None for the embedded local default.
    :param master: override the connection's master (e.g. ``local[2]``).
    :param python_path: folders the driver's and executors' Python must import from (the application's
        package; this provider's own folder is always added).
    :param env: extra environment for local and standalone drivers.
    """

    conn_name_attr = "conn_id"
    default_conn_name = "spark_default"
    conn_type = "spark"
    hook_name = "Spark (checkpointed streaming)"

    def __init__(
        self,
        conn_id: str | None = None,
        *,
        master: str | None = None,
        python_path: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.conn_id = conn_id
        self._master = master
        self._python_path = list(python_path)
        self._env = dict(env or {})
        self._target: SubmitTarget | None = None

    # --- configuration --------------------------------------------------------------------------------

    @property
    def target(self) -> SubmitTarget:
        if self._target is None:
            self._target = self._resolve_target()
        return self._target

    def _resolve_target(self) -> SubmitTarget:
        if self.conn_id is None:
            return SubmitTarget(
                master=self._master or "local[2]", spark_binary=self._default_binary("spark-submit")
            )
        conn = self.get_connection(self.conn_id)
        if conn.conn_type == "spark" and conn.host and ("://" in conn.host or not conn.port):
            master = conn.host
        else:
            master = f"{conn.conn_type}://{conn.host or ''}"
        if conn.port:
            master = f"{master}:{conn.port}"
        extra = conn.extra_dejson
        picked = {key: extra[key] for key in EXTRAS if extra.get(key) not in (None, "")}
        if picked.get("python-path"):
            self._python_path += [p for p in str(picked["python-path"]).split(":") if p]
        return SubmitTarget(
            master=self._master or master,
            deploy_mode=picked.get("deploy-mode"),
            spark_binary=self._default_binary(str(picked.get("spark-binary", "spark-submit"))),
            queue=picked.get("queue"),
            namespace=picked.get("namespace"),
            python=picked.get("python"),
            yarn_binary=str(picked.get("yarn-binary", "yarn")),
            kubectl_binary=str(picked.get("kubectl-binary", "kubectl")),
        )

    @staticmethod
    def _default_binary(name: str) -> str:
        if os.sep in name or shutil.which(name):
            return name
        beside = Path(sys.executable).parent / name  # the virtualenv's own pyspark
        return str(beside) if beside.exists() else name

    def launch_target(self) -> LaunchTarget:
        """This hook's target as recorded with a generation (what a relaunch needs to come back here)."""
        target = self.target
        return LaunchTarget(
            conn_id=self.conn_id or None,
            master_override=self._master or None,
            master=target.master,
            deploy_mode=target.deploy_mode,
        )

    def for_generation(self, root: JobRoot, generation: int) -> StreamingJobHook:
        """The hook that reaches where ``generation`` ran: this one for its first launch, else one built from
        its recorded target (never a default engine; see ``model.backends.relaunch_target``).

        :raises LaunchTargetError: the caller named another target, or the recorded one cannot be reached.
        """
        record = root.read_generation_record(generation) or {}
        where = root.generation_record_file(generation).uri
        recorded, reason = relaunch_target(
            record, conn_id=self.conn_id, master=self._master, job=root.job, generation=generation, path=where
        )
        if recorded is None:
            return self
        self.log.info("job %s generation %s: %s", root.job, generation, reason)
        hook = StreamingJobHook(
            recorded.conn_id, master=recorded.master_override, python_path=self._python_path, env=self._env
        )
        try:
            resolved = hook.target
        # the connection is gone or no longer parses: say where the job ran
        except Exception as exc:  # noqa: BLE001
            raise LaunchTargetError(
                f"cannot reach where the generation ran ({recorded.describe()}): {exc}",
                path=where,
                job=root.job,
                generation=generation,
                hint="Restore the connection, or redeploy the job through a snapshot",
            ) from exc
        if resolved.backend is not recorded.backend:
            raise LaunchTargetError(
                f"the generation ran on {recorded.describe()}, but that target now resolves to "
                f"{resolved.backend.value} {resolved.master}",
                path=where,
                job=root.job,
                generation=generation,
                hint="Restore the connection, or redeploy the job through a snapshot",
            )
        return hook

    def python_path(self) -> list[str]:
        return list(dict.fromkeys([*self._python_path, PACKAGE_PARENT]))

    def _process_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self._env)
        bin_dir = str(Path(sys.executable).parent)
        if bin_dir not in env.get("PATH", "").split(os.pathsep):
            env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
        env["PYTHONPATH"] = os.pathsep.join([*self.python_path(), *filter(None, [env.get("PYTHONPATH")])])
        python = self.target.python or sys.executable
        env.setdefault("PYSPARK_PYTHON", python)
        env.setdefault("PYSPARK_DRIVER_PYTHON", python)
        return env

    @staticmethod
    def log_dir(root: JobRoot, generation: int | None = None) -> Path:
        """Where driver and exporter output goes: under the job root when it is local, else a temp folder."""
        if root.location.is_local:
            base = Path(root.location.path) / (
                "logs" if generation is None else f"generations/{generation}/logs"
            )
        else:
            base = (
                Path(tempfile.gettempdir())
                / "airflow-checkpoint"
                / root.job
                / ("logs" if generation is None else f"g{generation}")
            )
        base.mkdir(parents=True, exist_ok=True)
        return base

    # --- drivers --------------------------------------------------------------------------------------

    def submit_driver(
        self,
        root: JobRoot,
        spec: LaunchSpec,
        *,
        application: str,
        application_args: Sequence[str] = (),
        conf: Mapping[str, str] | None = None,
    ) -> DriverHandle:
        """Submit a managed driver detached from this process (a local or standalone driver outlives the task;
        a YARN or Kubernetes driver runs in cluster mode); return how to find it again.

        :param root: the job root.
        :param spec: the launch contract (job root, generation, snapshot, launch id, ...).
        :param application: the application file for spark-submit.
        :param application_args: the application's own arguments (after the contract's ``--``).
        :param conf: extra ``--conf`` settings.
        :raises SubmitError: spark-submit failed, or printed no application id on YARN.
        """
        target = self.target
        backend = target.backend
        launch_id = spec.launch_id
        if not launch_id:
            raise InvalidLaunchError(
                "submit_driver needs a launch id in the spec",
                path=root.location.uri,
                job=root.job,
                generation=spec.generation,
            )
        pod = driver_pod_name(root.job, spec.generation, launch_id) if backend is Backend.KUBERNETES else None
        cmd = submit_command(
            target,
            app=application,
            app_args=[*spec.to_args(), "--", *application_args],
            name=f"{root.job}-g{spec.generation}",
            conf=dict(conf or {}),
            python_path=self.python_path(),
            detached=True,
            pod_name=pod,
        )
        log_path = self.log_dir(root, spec.generation) / f"driver-{launch_id[:12]}.log"
        handle = DriverHandle(
            backend=backend,
            launch_id=launch_id,
            master=target.master,
            submitted_at=time.time(),
            generation=spec.generation,
            host=socket.gethostname(),
            log_path=str(log_path),
            namespace=target.namespace if pod else None,
            pod=pod,
        )
        self.log.info("submitting %s: %s", handle.describe(), " ".join(cmd))
        if backend in (Backend.LOCAL, Backend.STANDALONE):
            with open(log_path, "ab") as out:
                proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=self._process_env(),
                    start_new_session=True,
                    close_fds=True,
                )
            return DriverHandle(**{**handle.to_json(), "pid": proc.pid})
        output = self._run(cmd, log_path, timeout=SUBMIT_TIMEOUT_S)
        if backend is Backend.YARN:
            app_id = parse_yarn_submission(output)
            if app_id is None:
                raise SubmitError(
                    f"spark-submit printed no YARN application id; output ends:\n{output[-2000:]}",
                    path=root.location.uri,
                    job=root.job,
                    generation=spec.generation,
                )
            return DriverHandle(**{**handle.to_json(), "app_id": app_id})
        submission = parse_k8s_submission(output)
        if submission and ":" in submission:
            namespace, pod = submission.split(":", 1)
            return DriverHandle(**{**handle.to_json(), "namespace": namespace, "pod": pod})
        return handle

    def _run(self, cmd: list[str], log_path: Path, timeout: float) -> str:
        """Run a command to completion, append its output to ``log_path``; SubmitError on failure."""
        try:
            done = subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                env=self._process_env(),
                timeout=timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SubmitError(f"{cmd[0]} could not run: {exc}", path=str(log_path)) from exc
        output = (done.stdout or "") + (done.stderr or "")
        with open(log_path, "a") as handle:
            handle.write(output)
        if done.returncode != 0:
            raise SubmitError(
                f"{' '.join(cmd[:3])} ... exited {done.returncode}; output ends:\n{output[-2000:]}",
                path=str(log_path),
            )
        return output

    def liveness(self, handle: DriverHandle) -> Liveness:
        """Ask the backend whether the driver still runs."""
        if handle.backend in (Backend.LOCAL, Backend.STANDALONE):
            return local_liveness(handle.pid, handle.host, handle.launch_id)
        cmd = status_command(self.target, handle)
        if cmd is None:
            return Liveness.UNKNOWN
        try:
            done = subprocess.run(
                cmd, capture_output=True, text=True, timeout=STATUS_QUERY_TIMEOUT_S, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            self.log.warning("could not ask the cluster about %s: %s", handle.describe(), exc)
            return Liveness.UNKNOWN
        output = (done.stdout or "") + (done.stderr or "")
        if handle.backend is Backend.YARN:
            return parse_yarn_status(output, done.returncode)
        return parse_k8s_pod_status(output, done.returncode)

    def kill(self, handle: DriverHandle) -> None:
        """Hard-kill a driver (the batch in progress is abandoned and re-run by whoever resumes the
        checkpoint)."""
        self.log.warning("hard-killing %s", handle.describe())
        if handle.backend in (Backend.LOCAL, Backend.STANDALONE):
            if local_liveness(handle.pid, handle.host, handle.launch_id) is not Liveness.ALIVE:
                return
            assert handle.pid is not None
            try:
                os.killpg(handle.pid, signal.SIGKILL)  # its own session: the JVM and its Python workers
            except ProcessLookupError:
                pass
            return
        cmd = kill_command(self.target, handle)
        if cmd is not None:
            log_path = (
                Path(handle.log_path) if handle.log_path else Path(tempfile.gettempdir()) / "acp-kill.log"
            )
            self._run(cmd, log_path, timeout=KILL_COMMAND_TIMEOUT_S)

    def observe(self, root: JobRoot, generation: int) -> DriverView:
        """Combine the driver's own reports (status, lock) with the backend's answer about its latest launch.

        A report counts as alive while its heartbeat is within the lease — unless its process is on this host
        and provably gone (a kill -9'd local driver is known dead at once, not after the lease)."""
        status = root.read_status(generation)
        handle = latest_handle(root, generation)
        lease = status.lease_s if status else DEFAULT_LEASE_S
        lock = root.read_json(root.driver_lock_file(generation), what="driver lock", generation=generation)
        lock_age = time.time() - float(lock.get("heartbeat_at", 0)) if lock else None
        backend = self.liveness(handle) if handle else Liveness.UNKNOWN

        if driver_reported_alive(status):
            return DriverView(
                Liveness.ALIVE,
                f"driver {status.driver_id} is {status.state}, heartbeat {status.heartbeat_age():.1f}s ago",
                status,
                handle,
            )
        if (
            lock is not None
            and lock_age is not None
            and lock_age < lease
            and not process_gone(lock.get("pid"), lock.get("host"))
        ):
            return DriverView(
                Liveness.ALIVE, f"the driver lock was refreshed {lock_age:.1f}s ago", status, handle
            )
        if backend is Liveness.ALIVE:
            return DriverView(
                Liveness.ALIVE,
                f"{handle.describe() if handle else 'driver'} is still running",
                status,
                handle,
            )
        if (
            backend is Liveness.UNKNOWN
            and handle is not None
            and time.time() - handle.submitted_at < lease * UNREPORTED_SUBMIT_LEASES
            and (status is None or status.launch_id != handle.launch_id)
        ):
            return DriverView(
                Liveness.UNKNOWN,
                f"{handle.describe()} was submitted {time.time() - handle.submitted_at:.0f}s "
                "ago and has not reported yet",
                status,
                handle,
            )
        state = status.state if status else "no status"
        return DriverView(
            Liveness.GONE,
            f"no live driver: status {state}, lock "
            f"{'absent' if lock_age is None else f'{lock_age:.0f}s old'}, backend {backend.value}",
            status,
            handle,
        )

    # --- generations ----------------------------------------------------------------------------------

    def launch_generation(
        self, root: JobRoot, generation: int, *, launch_id: str | None = None, by: str = ""
    ) -> tuple[DriverHandle, StartDecision]:
        """(Re)start a generation from its recorded launch: resume if its checkpoint has a committed batch (no
        snapshot is passed), else the fresh path with its snapshot. A relaunch goes where the generation ran
        (:meth:`for_generation`); the first launch records this hook's target. Records the handle next to the
        checkpoint.

        :param root: the job root.
        :param generation: the generation to launch.
        :param launch_id: the launch's id (default: a new one).
        :param by: who launches it (a DAG run, or ``restart:<run>`` for the callback), recorded with it.
        :raises LaunchTargetError: the generation's recorded target cannot be reached or differs.
        """
        hook = self.for_generation(root, generation)
        spec, decision, record = hook.launch_spec(root, generation, launch_id=launch_id)
        self.log.info("%s", _spec_reason(spec, decision))
        if not isinstance(record.get("target"), Mapping):
            root.update_generation_record(generation, target=hook.launch_target().to_json())
        handle = hook.submit_driver(
            root,
            spec,
            application=str(record["application"]),
            application_args=[str(a) for a in record.get("application_args", [])],
            conf=record.get("conf") or {},
        )
        record_launch(root, generation, handle, by=by, mode=decision.mode.value)
        return handle, decision

    def launch_spec(
        self, root: JobRoot, generation: int, *, launch_id: str | None = None
    ) -> tuple[LaunchSpec, StartDecision, dict[str, Any]]:
        """The launch contract a (re)start of ``generation`` from its recorded launch gives its driver, the
        start decision behind it, and the generation record (what :meth:`launch_generation` submits)."""
        record = root.read_generation_record(generation) or {}
        application = record.get("application")
        if not application:
            raise InvalidLaunchError(
                "the generation has no recorded application to launch",
                path=root.generation_record_file(generation).uri,
                job=root.job,
                generation=generation,
                hint="Start it with StartStreamingJobOperator, which records the launch",
            )
        info = inspect_checkpoint(root.checkpoint(generation), allow_empty=True)
        decision = decide_start(
            generation=generation,
            last_committed_batch=info.last_committed_batch,
            in_flight_batch=info.in_flight_batch,
            snapshot=record.get("snapshot"),
        )
        spec = LaunchSpec(
            job_root=root.location.uri,
            generation=generation,
            job_name=root.job,
            snapshot=record.get("snapshot") if decision.load_initial_state else None,
            code_version=str(record.get("code_version") or ""),
            heartbeat_s=float(record.get("heartbeat_s", DEFAULT_HEARTBEAT_S)),
            lease_s=float(record.get("lease_s", DEFAULT_LEASE_S)),
            launch_id=launch_id or uuid.uuid4().hex,
            **_standby_args(root, generation, record),
        )
        return spec, decision, record

    # --- snapshots ------------------------------------------------------------------------------------

    def export_snapshot(
        self,
        root: JobRoot,
        generation: int,
        *,
        batch: int | None = None,
        snapshot_id: str | None = None,
        code_version: str = "",
        deep: bool = False,
        conf: Mapping[str, str] | None = None,
        exporter: str | None = None,
        timeout: float = DEFAULT_EXPORT_TIMEOUT_S,
    ) -> str:
        """Run the exporter as a Spark application on this hook's target, wait for it, and return the id of
        the snapshot it published (a (generation, batch) that already has one returns it).

        :param root: the job root.
        :param generation: the generation whose checkpoint to export.
        :param batch: the committed batch to export (default: the last committed one).
        :param snapshot_id: the id to publish under (default: ``<UTC time>-g<generation>-b<batch>``).
        :param code_version: the code label recorded in the manifest.
        :param deep: also compare every exported row with the checkpoint's state.
        :param conf: extra ``--conf`` settings for the exporter application.
        :param exporter: the exporter application (default: ``runtime/export.py`` of this package).
        :param timeout: how long the exporter may run, in seconds.
        :raises ExportFailedError: the exporter failed or published nothing (retrying may help).
        """
        target = self.target
        app = exporter or _exporter_path()
        args = ["--job-root", root.location.uri, "--generation", str(generation), "--job-name", root.job]
        if batch is not None:
            args += ["--batch", str(batch)]
        if snapshot_id:
            args += ["--snapshot-id", snapshot_id]
        if code_version:
            args += ["--code-version", code_version]
        if deep:
            args += ["--deep"]
        cmd = submit_command(
            target,
            app=app,
            app_args=args,
            name=f"{root.job}-g{generation}-export",
            conf=dict(conf or {}),
            python_path=self.python_path(),
            detached=False,
            pod_name=driver_pod_name(root.job, generation, uuid.uuid4().hex) + "-x"
            if target.backend is Backend.KUBERNETES
            else None,
        )
        log_path = self.log_dir(root, generation) / f"export-{uuid.uuid4().hex[:8]}.log"
        self.log.info("exporting generation %s of %s: %s", generation, root.job, " ".join(cmd))
        try:
            output = self._run(cmd, log_path, timeout=timeout)
        except SubmitError as exc:
            raise ExportFailedError(
                f"the exporter failed: {exc}",
                path=root.location.uri,
                job=root.job,
                generation=generation,
                batch=batch,
            ) from exc
        for line in reversed(output.splitlines()):
            if line.startswith('{"snapshot_id"'):
                return str(json.loads(line)["snapshot_id"])
        # Cluster mode: the result line is in the driver's log, not here; the catalogue has the answer.
        found = [
            e
            for e in SnapshotCatalogue(root).list()
            if e.complete and e.generation == generation and (batch is None or e.batch == batch)
        ]
        if not found:
            raise ExportFailedError(
                "the exporter finished but published no snapshot",
                path=str(log_path),
                job=root.job,
                generation=generation,
                batch=batch,
            )
        return found[0].snapshot_id


def record_launch(
    root: JobRoot, generation: int, handle: DriverHandle, *, by: str, mode: str, **extra: Any
) -> None:
    """Append a launch to the generation record (the newest :data:`LAUNCHES_KEPT`)."""
    launches = list((root.read_generation_record(generation) or {}).get("launches", []))
    launches.append({**handle.to_json(), "by": by, "mode": mode, **extra})
    root.update_generation_record(generation, launches=launches[-LAUNCHES_KEPT:])


def _standby_args(root: JobRoot, generation: int, record: Mapping[str, Any]) -> dict[str, Any]:
    """A generation recorded as a standby launches as one until it is the job's current generation; one
    recorded as a dry run (in its scratch job) launches as one."""
    if record.get("dry_run_output"):
        return {
            "dry_run_output": str(record["dry_run_output"]),
            "stay_as_standby_s": float(record.get("stay_as_standby_s") or 0.0),
        }
    old = record.get("standby_for")
    if old is None or root.current_generation() == generation:
        return {}
    return {
        "standby_for": int(old),
        "standby_timeout_s": float(record.get("standby_timeout_s", DEFAULT_STANDBY_TIMEOUT_S)),
    }


def _spec_reason(spec: LaunchSpec, decision: StartDecision) -> str:
    if spec.standby_for is not None:
        return f"warm standby for generation {spec.standby_for}: it starts Spark and waits for its go"
    return decision.reason


def _exporter_path() -> str:
    spec = importlib.util.find_spec("airflow_checkpoint_provider.runtime")
    assert spec is not None and spec.submodule_search_locations
    return str(Path(next(iter(spec.submodule_search_locations))) / "export.py")


def latest_handle(root: JobRoot, generation: int) -> DriverHandle | None:
    launches = (root.read_generation_record(generation) or {}).get("launches") or []
    return DriverHandle.from_json(launches[-1]) if launches else None
