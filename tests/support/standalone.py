"""A Spark standalone master and one worker on loopback, started from pyspark's own jars (``spark-class``) by
the tests themselves and killed afterwards."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.processes import spark_env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spark_class() -> str:
    import pyspark

    return str(Path(pyspark.__file__).parent / "bin" / "spark-class")


@dataclass(frozen=True)
class Cluster:
    """A running standalone master (its URL for spark-submit, its web UI for its own record of apps)."""

    master: str
    web: str

    def applications(self) -> list[dict[str, Any]]:
        """The master's own record of every application it ran or runs (``/json/``: active and completed)."""
        with urllib.request.urlopen(f"{self.web}/json/", timeout=10) as answer:
            state = json.load(answer)
        return [
            {**app, "active": key == "activeapps"}
            for key in ("activeapps", "completedapps")
            for app in state.get(key, [])
        ]


@contextmanager
def standalone_cluster(run_dir: Path, cores: int = 2, memory: str = "2g") -> Iterator[Cluster]:
    """Yield a running master + worker; both are killed on exit."""
    folder = run_dir / "standalone"
    folder.mkdir(parents=True, exist_ok=True)
    env = spark_env(run_dir)
    env["SPARK_HOME"] = str(Path(spark_class()).parents[1])
    env["SPARK_LOG_DIR"] = str(folder)
    env["SPARK_WORKER_DIR"] = str(folder / "work")
    port, web_port = free_port(), free_port()
    master_url = f"spark://127.0.0.1:{port}"
    procs: list[subprocess.Popen[bytes]] = []
    master_log, worker_log = folder / "master.log", folder / "worker.log"
    try:
        procs.append(
            subprocess.Popen(
                [
                    spark_class(),
                    "org.apache.spark.deploy.master.Master",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--webui-port",
                    str(web_port),
                ],
                env=env,
                stdout=open(master_log, "wb"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        _wait_log(master_log, "I have been elected leader", procs[0])
        procs.append(
            subprocess.Popen(
                [
                    spark_class(),
                    "org.apache.spark.deploy.worker.Worker",
                    "--host",
                    "127.0.0.1",
                    "--cores",
                    str(cores),
                    "--memory",
                    memory,
                    "--webui-port",
                    str(free_port()),
                    "--work-dir",
                    str(folder / "work"),
                    master_url,
                ],
                env=env,
                stdout=open(worker_log, "wb"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        _wait_log(worker_log, "Successfully registered with master", procs[1])
        yield Cluster(master_url, f"http://127.0.0.1:{web_port}")
    finally:
        for proc in reversed(procs):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=30)


def _wait_log(log: Path, text: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and text in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.3)
    raise AssertionError(
        f"{text!r} not seen in {log}:\n{log.read_text(errors='replace')[-3000:] if log.exists() else ''}"
        f" (python {sys.executable})"
    )
