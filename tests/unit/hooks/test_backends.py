"""YARN and Kubernetes backends: command construction and status parsing against recorded-format CLI outputs
(tests/fixtures/cluster/README.md says what they are), through the real hook with small fake binaries in place
of spark-submit, yarn and kubectl. Local and standalone run for real in tests/integration/airflow."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot
from airflow_checkpoint_provider.exceptions import InvalidLaunchError, LaunchTargetError
from airflow_checkpoint_provider.model.backends import (
    Backend,
    DriverHandle,
    Liveness,
    SubmitTarget,
    backend_of,
    kill_command,
    parse_k8s_pod_status,
    parse_k8s_submission,
    parse_yarn_status,
    parse_yarn_submission,
    relaunch_target,
    status_command,
    submit_command,
)
from airflow_checkpoint_provider.model.launch import LaunchSpec

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "cluster"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


@pytest.mark.parametrize(
    ("master", "backend"),
    [
        ("local[2]", Backend.LOCAL),
        ("local[*]", Backend.LOCAL),
        ("spark://10.0.0.1:7077", Backend.STANDALONE),
        ("yarn", Backend.YARN),
        ("k8s://https://10.0.0.2:6443", Backend.KUBERNETES),
    ],
)
def test_backend_of_master(master: str, backend: Backend) -> None:
    assert backend_of(master) is backend


def test_bad_master_and_deploy_modes_are_refused() -> None:
    with pytest.raises(InvalidLaunchError, match="unsupported Spark master"):
        backend_of("mesos://x:5050")
    with pytest.raises(InvalidLaunchError, match="cluster mode"):
        SubmitTarget(master="yarn", deploy_mode="client")
    with pytest.raises(InvalidLaunchError, match="client mode"):
        SubmitTarget(master="spark://h:7077", deploy_mode="cluster")


def test_yarn_cluster_command_is_an_argument_list() -> None:
    target = SubmitTarget(master="yarn", queue="streaming", python="/opt/py/bin/python")
    cmd = submit_command(
        target,
        app="hdfs:///apps/counter.py",
        app_args=["--acp-job-root", "hdfs:///jobs/c", "--", "--events", "a b; rm -rf /"],
        name="c-g2",
        conf={"spark.executor.memory": "2g"},
        python_path=["/opt/app"],
    )
    assert cmd[:8] == [
        "spark-submit",
        "--master",
        "yarn",
        "--name",
        "c-g2",
        "--deploy-mode",
        "cluster",
        "--queue",
    ]
    confs = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--conf"]
    assert (
        "spark.yarn.submit.waitAppCompletion=false" in confs
    )  # detached: spark-submit returns once accepted
    assert (
        "spark.yarn.appMasterEnv.PYTHONPATH=/opt/app" in confs
        and "spark.executorEnv.PYTHONPATH=/opt/app" in confs
    )
    assert "spark.pyspark.python=/opt/py/bin/python" in confs and "spark.executor.memory=2g" in confs
    assert cmd[-1] == "a b; rm -rf /"  # one argument, never parsed by a shell


def test_kubernetes_command_names_the_driver_pod() -> None:
    target = SubmitTarget(master="k8s://https://10.0.0.2:6443", namespace="streaming")
    cmd = submit_command(
        target,
        app="local:///opt/app/counter.py",
        app_args=[],
        name="c-g2",
        conf={},
        python_path=["/opt/app"],
        pod_name="c-g2-abc-driver",
    )
    confs = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--conf"]
    assert "spark.kubernetes.driver.pod.name=c-g2-abc-driver" in confs
    assert "spark.kubernetes.submission.waitAppCompletion=false" in confs
    assert "spark.kubernetes.namespace=streaming" in confs
    assert "spark.kubernetes.driverEnv.PYTHONPATH=/opt/app" in confs
    handle = DriverHandle(
        backend="kubernetes",
        launch_id="abc",
        master=target.master,
        submitted_at=0,
        generation=2,
        namespace="streaming",
        pod="c-g2-abc-driver",
    )
    assert status_command(target, handle) == [
        "kubectl",
        "get",
        "pod",
        "c-g2-abc-driver",
        "-n",
        "streaming",
        "-o",
        "json",
    ]
    assert kill_command(target, handle) == [
        "spark-submit",
        "--master",
        target.master,
        "--kill",
        "streaming:c-g2-abc-driver",
    ]


def test_parse_recorded_yarn_outputs() -> None:
    assert parse_yarn_submission(fixture("yarn_submit_cluster.txt")) == "application_1763630000000_0042"
    assert parse_yarn_status(fixture("yarn_status_running.txt")) is Liveness.ALIVE
    assert parse_yarn_status(fixture("yarn_status_accepted.txt")) is Liveness.ALIVE
    assert parse_yarn_status(fixture("yarn_status_finished.txt")) is Liveness.GONE
    assert parse_yarn_status(fixture("yarn_status_missing.txt"), 255) is Liveness.GONE
    assert parse_yarn_status("Connection refused", 1) is Liveness.UNKNOWN


def test_parse_recorded_kubernetes_outputs() -> None:
    assert parse_k8s_submission(fixture("k8s_submit_cluster.txt")) == "streaming:counter-g2-5f0c1e2a-driver"
    assert parse_k8s_pod_status(fixture("k8s_pod_running.json")) is Liveness.ALIVE
    assert parse_k8s_pod_status(fixture("k8s_pod_succeeded.json")) is Liveness.GONE
    assert parse_k8s_pod_status(fixture("k8s_pod_failed.json")) is Liveness.GONE
    assert parse_k8s_pod_status(fixture("k8s_pod_notfound.txt"), 1) is Liveness.GONE
    assert parse_k8s_pod_status("Unable to connect to the server", 1) is Liveness.UNKNOWN


def fake(folder: Path, name: str, output_file: str | None, calls: Path, rc: int = 0) -> str:
    """A stand-in binary: records its arguments, prints a recorded output, exits ``rc``."""
    script = folder / name
    out = f'cat "{FIXTURES / output_file}"' if output_file else "true"
    script.write_text(f'#!/bin/sh\necho "{name} $*" >> "{calls}"\n{out}\nexit {rc}\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def test_hook_submits_watches_and_kills_on_yarn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_checkpoint_provider.hooks.checkpoint import StreamingJobHook

    calls = tmp_path / "calls.txt"
    extra = {
        "deploy-mode": "cluster",
        "queue": "streaming",
        "not-allowed": "ignored",
        "spark-binary": fake(tmp_path, "spark-submit", "yarn_submit_cluster.txt", calls),
        "yarn-binary": fake(tmp_path, "yarn", "yarn_status_running.txt", calls),
    }
    monkeypatch.setenv(
        "AIRFLOW_CONN_ACP_YARN", json.dumps({"conn_type": "spark", "host": "yarn", "extra": extra})
    )
    hook = StreamingJobHook("acp_yarn", python_path=["/opt/app"])
    assert hook.target.backend is Backend.YARN and hook.target.queue == "streaming"
    root = JobRoot(tmp_path / "job")
    spec = LaunchSpec(job_root=str(tmp_path / "job"), generation=2, launch_id="l1")
    handle = hook.submit_driver(
        root, spec, application="hdfs:///apps/counter.py", application_args=["--x", "1"]
    )
    assert handle.app_id == "application_1763630000000_0042" and handle.backend == "yarn"
    assert hook.liveness(handle) is Liveness.ALIVE
    hook.kill(handle)
    lines = calls.read_text().splitlines()
    assert "--acp-launch-id l1" in lines[0] and "not-allowed" not in lines[0]
    assert lines[1] == "yarn application -status application_1763630000000_0042"
    assert lines[2] == "yarn application -kill application_1763630000000_0042"


def test_hook_on_kubernetes_finds_its_pod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_checkpoint_provider.hooks.checkpoint import StreamingJobHook

    calls = tmp_path / "calls.txt"
    extra = {
        "namespace": "streaming",
        "spark-binary": fake(tmp_path, "spark-submit", "k8s_submit_cluster.txt", calls),
        "kubectl-binary": fake(tmp_path, "kubectl", "k8s_pod_notfound.txt", calls, rc=1),
    }
    monkeypatch.setenv(
        "AIRFLOW_CONN_ACP_K8S",
        json.dumps({"conn_type": "spark", "host": "k8s://https://10.0.0.2", "port": 6443, "extra": extra}),
    )
    hook = StreamingJobHook("acp_k8s")
    assert hook.target.master == "k8s://https://10.0.0.2:6443"
    handle = hook.submit_driver(
        JobRoot(tmp_path / "job"),
        LaunchSpec(job_root=str(tmp_path / "job"), generation=2, launch_id="5f0c1e2a99"),
        application="local:///opt/app/counter.py",
    )
    assert (handle.namespace, handle.pod) == ("streaming", "counter-g2-5f0c1e2a-driver")
    assert hook.liveness(handle) is Liveness.GONE  # kubectl: NotFound
    assert os.path.exists(calls)


RECORDED = {"conn_id": "spark_cluster", "master_override": None, "master": "spark://h:7077"}
LEGACY = {"launches": [{"backend": "standalone", "master": "spark://h:7077", "launch_id": "a"}]}


@pytest.mark.parametrize(
    ("record", "conn_id", "master", "expect"),
    [
        ({}, None, None, None),  # first launch: as requested
        ({}, "other", "local[2]", None),
        ({"target": RECORDED, "launches": [{}]}, None, None, "spark://h:7077"),
        ({"target": RECORDED}, "spark_cluster", None, "spark://h:7077"),
        ({"target": RECORDED}, None, "spark://h:7077", "spark://h:7077"),
        ({"target": RECORDED}, "", "", "spark://h:7077"),  # empty template renders = not given
        (LEGACY, None, None, "spark://h:7077"),  # recorded before targets were: its latest launch
        ({"target": RECORDED}, None, "local[2]", LaunchTargetError),
        ({"target": RECORDED}, "spark_default", None, LaunchTargetError),
        (LEGACY, None, "local[2]", LaunchTargetError),
        ({"launches": [{"backend": "local"}]}, None, None, LaunchTargetError),  # no master recorded
    ],
)
def test_relaunch_target_decision_table(
    record: dict[str, object], conn_id: str | None, master: str | None, expect: object
) -> None:
    if expect is LaunchTargetError:
        with pytest.raises(LaunchTargetError) as caught:
            relaunch_target(record, conn_id=conn_id, master=master, job="counter", generation=2, path="/j")
        assert "generation=2" in str(caught.value) and "job=counter" in str(caught.value)
        return
    target, reason = relaunch_target(record, conn_id=conn_id, master=master)
    assert (target.master if target else None) == expect, reason


def test_a_relaunch_goes_where_the_generation_ran(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bug: a callback given no connection relaunched a cluster job on local[2]. Now the first launch
    records its target and every later launch, from a hook configured for anything or nothing, goes there."""
    from airflow_checkpoint_provider.hooks.checkpoint import StreamingJobHook

    calls = tmp_path / "calls.txt"
    extra = {
        "spark-binary": fake(tmp_path, "spark-submit", "yarn_submit_cluster.txt", calls),
        "yarn-binary": fake(tmp_path, "yarn", "yarn_status_running.txt", calls),
    }
    monkeypatch.setenv(
        "AIRFLOW_CONN_ACP_YARN", json.dumps({"conn_type": "spark", "host": "yarn", "extra": extra})
    )
    root = JobRoot(tmp_path / "job")
    root.update_generation_record(2, application="hdfs:///apps/counter.py", application_args=[])
    first, _ = StreamingJobHook("acp_yarn").launch_generation(root, 2)
    assert first.backend == "yarn"
    record = root.read_generation_record(2) or {}
    assert record["target"] == {
        "conn_id": "acp_yarn",
        "master_override": None,
        "master": "yarn",
        "deploy_mode": "cluster",
        "backend": "yarn",
    }
    again, _ = StreamingJobHook(None).launch_generation(root, 2)  # the callback's hook: no connection
    assert again.backend == "yarn" and again.app_id == first.app_id
    assert StreamingJobHook(None).for_generation(root, 2).target.backend is Backend.YARN
    with pytest.raises(LaunchTargetError, match="local\\[2\\]"):
        StreamingJobHook(None, master="local[2]").launch_generation(root, 2)
    monkeypatch.delenv("AIRFLOW_CONN_ACP_YARN")
    with pytest.raises(LaunchTargetError, match="cannot reach where the generation ran"):
        StreamingJobHook(None).launch_generation(root, 2)
    submits = [line for line in calls.read_text().splitlines() if line.startswith("spark-submit")]
    assert len(submits) == 2 and all("--master yarn" in line for line in submits)


def test_a_driver_in_the_middle_of_exec_is_not_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    """spark-submit execs spark-class, which execs java: for a moment the process has no command line. That is
    the driver starting, not gone (a dry run once took it for an exit after 0 batches)."""
    import socket
    import subprocess
    import sys

    import psutil

    from airflow_checkpoint_provider.checkpoint.processes import local_liveness
    from airflow_checkpoint_provider.model.backends import Liveness

    launch = "launch-3f1c"
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", launch])
    try:
        host = socket.gethostname()
        assert local_liveness(proc.pid, host, launch) is Liveness.ALIVE
        assert local_liveness(proc.pid, host, "another-launch") is Liveness.GONE  # a reused pid
        monkeypatch.setattr(psutil.Process, "cmdline", lambda self: [])  # read while it execs
        assert local_liveness(proc.pid, host, launch) is Liveness.ALIVE
    finally:
        proc.kill()
        proc.wait()
    assert local_liveness(proc.pid, socket.gethostname(), launch) is Liveness.GONE
