"""The pre-forked Python for a driver's runners, with real processes (no JVM): the launcher hands ``-m
<runner>`` to the fork server, whose child sees the launcher's environment, working directory and streams,
and ends as the launcher is told or killed; anything else runs the real Python."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_checkpoint_provider.runtime import _prefork

ROOT = Path(__file__).resolve().parents[3]
PROBE = "tests.support.prefork_probe"
PRELOADED = "tests.support.prefork_preload"


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.fixture
def launcher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    path = _prefork.start(sys.executable, folder=str(tmp_path), runners=[PROBE], preload=[PRELOADED])
    assert path is not None
    socket = Path(path).parent / _prefork.SOCKET
    deadline = time.monotonic() + 30
    while not socket.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert socket.exists()
    yield path
    server = _prefork._SERVERS.pop()
    if server.poll() is None:
        server.kill()
        server.wait()


def run(launcher: str, *args: str, **env: str) -> tuple[int, dict[str, object]]:
    done = subprocess.run(
        [launcher, *args], env={**os.environ, **env}, capture_output=True, text=True, cwd="/", timeout=60
    )
    return done.returncode, json.loads(done.stdout.splitlines()[0]) if done.stdout else {}


def test_a_runner_is_forked_from_the_server_with_the_launchers_environment(launcher: str) -> None:
    code, seen = run(launcher, "-m", PROBE, ACP_PROBE="x", ACP_PROBE_EXIT="3")
    assert code == 3
    assert seen["preloaded"] is True  # the server's import, not the child's
    assert seen["probe"] == "x" and seen["cwd"] == "/" and str(seen["argv0"]).endswith("prefork_probe.py")
    assert seen["ppid"] != os.getpid()  # the server's child, not the launcher's process


def test_anything_else_runs_the_real_python(launcher: str) -> None:
    done = subprocess.run(
        [launcher, "-c", "import os, sys; print(os.getppid()); sys.exit(4)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 4 and int(done.stdout) == os.getpid()  # exec'd in place of the launcher
    # the probe itself, not as `-m` exactly, is not a runner either
    code, seen = run(launcher, "-u", "-m", PROBE)
    assert code == 0 and seen["preloaded"] is False


def test_without_a_server_the_launcher_runs_the_real_python(launcher: str) -> None:
    (Path(launcher).parent / _prefork.SOCKET).unlink()
    code, seen = run(launcher, "-m", PROBE, ACP_PROBE_EXIT="5")
    assert code == 5 and seen["preloaded"] is False


def test_the_child_ends_with_its_launcher(launcher: str) -> None:
    env = {**os.environ, "ACP_PROBE_SLEEP": "60"}
    # SIGTERM (what the JVM's Process.destroy sends) is forwarded, and the launcher ends as the child did
    proc = subprocess.Popen([launcher, "-m", PROBE], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    child = int(json.loads(proc.stdout.readline())["pid"])
    proc.terminate()
    assert proc.wait(30) == -signal.SIGTERM
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child)
    # kill -9 of the launcher (destroyForcibly): the child notices its launcher is gone
    proc = subprocess.Popen([launcher, "-m", PROBE], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    child = int(json.loads(proc.stdout.readline())["pid"])
    proc.kill()
    proc.wait(30)
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child)


def test_where_it_runs_by_default() -> None:
    assert _prefork.wanted("local[2]", None) and _prefork.wanted("local", "")
    assert not _prefork.wanted("spark://127.0.0.1:7077", None) and not _prefork.wanted(None, None)
    assert _prefork.wanted("yarn", "true") and not _prefork.wanted("local[2]", "False")


def test_the_server_ends_with_its_driver_and_removes_its_folder(launcher: str) -> None:
    server = _prefork._SERVERS[-1]
    assert server.stdin is not None
    server.stdin.close()  # the driver is gone
    assert server.wait(30) == 0
    assert not Path(launcher).parent.exists()


def test_a_new_server_sweeps_the_folders_of_drivers_killed_with_their_server(tmp_path: Path) -> None:
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    folders = {}
    for name, owner in [
        ("dead", f"{int(ended.stdout)} 1"),  # the driver is gone (kill -9 of its process group)
        ("reused", f"{os.getpid()} 1"),  # its pid now names a process younger than the driver
        ("alive", _prefork._owner()),
        ("unknown", None),
    ]:
        folders[name] = tmp_path / f"{_prefork.PREFIX}{name}"
        folders[name].mkdir()
        (folders[name] / _prefork.LAUNCHER).write_text("")
        if owner is not None:
            (folders[name] / _prefork.OWNER).write_text(owner)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / f"{_prefork.PREFIX}link").symlink_to(tmp_path / "elsewhere")

    removed = _prefork.sweep(tmp_path)

    assert sorted(p.name for p in removed) == [f"{_prefork.PREFIX}dead", f"{_prefork.PREFIX}reused"]
    assert folders["alive"].exists() and folders["unknown"].exists() and (tmp_path / "elsewhere").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"{_prefork.PREFIX}alive",
        f"{_prefork.PREFIX}link",
        f"{_prefork.PREFIX}unknown",
        "elsewhere",
    ]
