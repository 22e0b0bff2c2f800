"""Real processes for tests: spark-submit with the project importable, and waiting on files."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def spark_env(run_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    # Spark's Python runner (driver and workers) must import the project: PYTHONPATH works, --py-files does
    # not.
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYSPARK_PYTHON"] = sys.executable
    env["PYSPARK_DRIVER_PYTHON"] = sys.executable
    env["SPARK_LOCAL_IP"] = "127.0.0.1"
    return env


def spark_submit(
    app: Path | str, *args: str, run_dir: Path, log: Path, conf: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``spark-submit`` on local[2] in its own process group; output goes to ``log``."""
    local_dir = run_dir / "spark-local"
    local_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(Path(sys.executable).parent / "spark-submit"),
        "--master",
        "local[2]",
        "--conf",
        "spark.ui.enabled=false",
        "--conf",
        f"spark.local.dir={local_dir}",
        "--conf",
        "spark.sql.shuffle.partitions=3",
        "--conf",
        "spark.driver.bindAddress=127.0.0.1",
    ]
    for key, value in (conf or {}).items():
        cmd += ["--conf", f"{key}={value}"]
    cmd += [str(app), *args]
    handle = open(log, "ab")
    return subprocess.Popen(
        cmd, env=spark_env(run_dir), stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
    )


def wait_for(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    proc: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if proc is not None and proc.poll() is not None:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            raise AssertionError(f"process exited ({proc.returncode}) while waiting for {what}:\n{tail}")
        time.sleep(0.2)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}:\n{tail}")


def kill_group(proc: subprocess.Popen[bytes], sig: int = 9) -> None:
    """kill -9 the process and everything it started (the JVM and its Python workers)."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)
