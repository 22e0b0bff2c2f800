"""The package as a user gets it: ``uv build`` makes an sdist and a wheel; the wheel installs into a fresh
virtualenv (outside the repository, ``PYTHONPATH`` unset) with the command the README gives for uv, Airflow
lists the provider, the imported package is the installed one, and pyspark is complete (its jars present)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import ROOT

pytestmark = [pytest.mark.airflow]


def run(cmd: list[str], cwd: Path, timeout: float = 900) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["AIRFLOW_HOME"] = str(cwd / "airflow-home")
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, (
        f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    )
    return done.stdout


def test_the_wheel_installs_and_registers_the_provider(tmp_path: Path) -> None:
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    dist = tmp_path / "dist"
    run([uv, "build", "--out-dir", str(dist), str(ROOT)], tmp_path)
    wheels = sorted(dist.glob("airflow_checkpoint_provider-*.whl"))
    assert len(wheels) == 1 and len(list(dist.glob("airflow_checkpoint_provider-*.tar.gz"))) == 1

    venv = tmp_path / "venv"
    run([uv, "venv", "--python", sys.executable, str(venv)], tmp_path)
    python = venv / "bin" / "python"
    (tmp_path / "excludes.txt").write_text("pyspark-client\n")  # what the README's uv command says
    run(
        [uv, "pip", "install", "--python", str(python), "--excludes", "excludes.txt", f"{wheels[0]}[spark]"],
        tmp_path,
    )
    where = run(
        [
            str(python),
            "-c",
            "import airflow_checkpoint_provider as p, pyspark, pathlib, sys;"
            "print(p.__file__); print(pyspark.__version__);"
            "print((pathlib.Path(pyspark.__file__).parent / 'jars').is_dir())",
        ],
        tmp_path,
    ).split()
    assert where[0].startswith(str(venv)), where  # the installed package, not the repository
    assert where[1:] == ["4.3.0", "True"], where  # a complete pyspark
    listed = run([str(venv / "bin" / "airflow"), "providers", "list", "-o", "json"], tmp_path)
    assert '"package_name": "airflow-checkpoint-provider"' in listed.replace("'", '"'), listed[-2000:]
    assert run([str(venv / "bin" / "airflow-checkpoint"), "--help"], tmp_path).startswith("usage:")
