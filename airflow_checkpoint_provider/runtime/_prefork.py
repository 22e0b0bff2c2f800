"""Pre-forked Python for the driver's own runners: what a new query's first batch waits for, started early.

A Spark driver starts fresh Python processes of its own for every new query: the runner of a Python data
source (``pyspark.sql.streaming.python_streaming_source_runner``, for the shipped event log source) when the
query starts, and the pre-init runner of a Python ``transformWithState``
(``pyspark.sql.streaming.transform_with_state_driver_worker``) while its first batch is planned. Each imports
pyspark (and pyarrow) before it does anything: 0.44 s each on this project's 2-core machine, alone, and both
are on the critical path of a standby's go -> first commit. The executors' workers do not pay it: Spark forks
them from its daemon.

:func:`start` runs a small fork server beside the driver: it imports those modules once and listens on a Unix
socket in a private folder (mode 0700). The session's Python executable (``PYSPARK_PYTHON``) becomes a
launcher script. For exactly ``-m <one of the runners>``, the launcher hands its standard streams
(``SCM_RIGHTS``), its arguments, environment and working directory to the server, which forks a child that
becomes the runner, as ``python -m`` would run it, without the imports. The launcher forwards
SIGTERM/SIGINT/SIGHUP to the child and exits with its status; a child whose launcher is gone (``kill -9``)
exits too. Anything else (the executors' daemon, any other module), and a launcher that finds no server,
execs the real Python, unchanged.

The folder goes when the driver exits, or when the server sees its driver gone (its stdin closes). A driver
killed together with its server (``kill -9`` of the process group) leaves it behind: the next :func:`start`
on the host removes the folders of this user whose driver has provably ended.

The launcher's path is the Python executable of every Python function of the session, executors included: on
a cluster it must exist on the executors' hosts too (where it finds no server and execs the real Python). So
:func:`start` runs it on ``local`` masters only unless asked (``spark.acp.preforkPython=true``).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import runpy
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("airflow_checkpoint_provider.runtime")

#: The modules Spark runs as fresh driver-side processes per new query (pyspark 4.x).
RUNNERS = (
    "pyspark.sql.streaming.python_streaming_source_runner",
    "pyspark.sql.streaming.transform_with_state_driver_worker",
)
#: What the server imports before it forks: the runners' own imports, and the shipped source's.
PRELOAD = (*RUNNERS, "pyspark.worker", "airflow_checkpoint_provider.runtime.eventlog")
CONF = "spark.acp.preforkPython"
_SERVERS: list[subprocess.Popen[bytes]] = []  # kept: a server ends when its stdin pipe closes
SOCKET = "server.sock"
LAUNCHER = "python"
OWNER = "driver"  # "<pid> <time after its start>" of the driver whose folder this is
PREFIX = "acp-prefork-"

_LAUNCHER = """#!{python} -IS
# airflow-checkpoint-provider: hands `-m <runner>` to a pre-forked Python; anything else runs {python}.
import json, os, signal, socket, sys

SOCKET, PYTHON, RUNNERS = {socket!r}, {python!r}, {runners!r}


def run_real():
    os.execv(PYTHON, [PYTHON] + sys.argv[1:])


args = sys.argv[1:]
if len(args) != 2 or args[0] != "-m" or args[1] not in RUNNERS:
    run_real()
try:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.connect(SOCKET)
    body = json.dumps({{"argv": args, "env": dict(os.environ), "cwd": os.getcwd()}}).encode()
    socket.send_fds(server, [len(body).to_bytes(4, "big") + body], [0, 1, 2])
    replies = server.makefile("rb")
    line = replies.readline()
except OSError:
    run_real()
if not line.startswith(b"pid "):
    run_real()
child = int(line[4:])


def forward(signum, frame):
    try:
        os.kill(child, signum)
    except OSError:
        pass


for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(signum, forward)
line = replies.readline()
code = int(line[5:]) if line.startswith(b"exit ") else 1
if code < 0:  # killed by a signal: end the same way, as the runner itself would have
    signal.signal(-code, signal.SIG_DFL)
    os.kill(os.getpid(), -code)
os._exit(code & 0xFF)
"""


def wanted(master: str | None, conf: str | None) -> bool:
    """Whether to pre-fork: asked for (``true``/``false``), or by default on a ``local`` master only."""
    if conf is not None and conf.strip().lower() in ("true", "false"):
        return conf.strip().lower() == "true"
    return (master or "").startswith("local")


def start(
    python: str | None = None,
    *,
    folder: str | None = None,
    runners: Sequence[str] = RUNNERS,
    preload: Sequence[str] = PRELOAD,
) -> str | None:
    """Start the fork server and write its launcher; return the launcher's path (for ``PYSPARK_PYTHON``), or
    ``None`` when this Python cannot (no ``socket.send_fds``, no real Python found). The server does its
    imports in the background; until it listens, the launcher runs the real Python."""
    real = shutil.which(python or os.environ.get("PYSPARK_PYTHON") or "python3") or sys.executable
    if not hasattr(socket, "send_fds") or not real:
        return None
    home = Path(tempfile.mkdtemp(prefix=PREFIX, dir=folder))
    if len(str(home / SOCKET)) > 100:  # a Unix socket's path has room for 107 bytes
        shutil.rmtree(home, ignore_errors=True)
        home = Path(tempfile.mkdtemp(prefix=PREFIX, dir="/tmp"))
    os.chmod(home, stat.S_IRWXU)
    atexit.register(shutil.rmtree, home, True)
    (home / OWNER).write_text(_owner())
    sweep(home.parent, keep=home)
    sock = str(home / SOCKET)
    launcher = home / LAUNCHER
    launcher.write_text(_LAUNCHER.format(python=real, socket=sock, runners=tuple(runners)))
    launcher.chmod(stat.S_IRWXU)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    server = subprocess.Popen(
        [real, "-u", "-m", __name__, sock, ",".join(runners), ",".join(preload)],
        stdin=subprocess.PIPE,  # the server ends when this driver does (its stdin closes)
        env=env,
        close_fds=True,
    )
    _SERVERS.append(server)
    log.info("pre-forked Python for the driver's runners: %s (server %s)", launcher, sock)
    return str(launcher)


def _owner() -> str:
    """What a folder records of its driver: this process's pid, and a time after it started (pid reuse)."""
    return f"{os.getpid()} {time.time()}"


def _gone(owner: str) -> bool:
    """Whether the driver that wrote ``owner`` has provably ended, by the project's one liveness rule
    (:func:`~airflow_checkpoint_provider.checkpoint.processes.process_gone`: a zombie, or a pid now held by a
    younger process, is gone; without ``psutil``, or an unreadable owner, nothing is)."""
    from airflow_checkpoint_provider.checkpoint.processes import process_gone

    try:
        pid, started_at = owner.split()
        return process_gone(int(pid), socket.gethostname(), started_at=float(started_at))
    except ValueError:
        return False


def sweep(parent: Path, keep: Path | None = None) -> list[Path]:
    """Remove this user's pre-fork folders in ``parent`` whose driver has ended: a driver and its server
    killed together (``kill -9`` of the process group) leave theirs behind, as no exit handler runs. A folder
    without a readable owner, someone else's, or a live driver's is left alone. Returns what it removed."""
    removed: list[Path] = []
    try:
        entries = list(parent.glob(PREFIX + "*"))
    except OSError:
        return removed
    for entry in entries:
        try:
            if entry == keep or entry.is_symlink() or entry.stat().st_uid != os.getuid():
                continue
            if _gone((entry / OWNER).read_text()):
                shutil.rmtree(entry)
                removed.append(entry)
        except OSError:
            continue
    return removed


def serve(sock_path: str, runners: Sequence[str], preload: Sequence[str] = PRELOAD) -> None:
    """The fork server's loop (a process of its own; see the module's docstring)."""
    import importlib

    started = time.monotonic()
    for module in preload:
        try:
            importlib.import_module(module)
        # a module this Python cannot import is imported by the child, as without the server
        except Exception:  # noqa: BLE001
            print(f"acp prefork: cannot preload {module}", file=sys.stderr)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(sock_path + ".new")
    os.rename(sock_path + ".new", sock_path)  # the launcher connects only once it listens
    listener.listen(64)
    print(f"acp prefork: serving after {time.monotonic() - started:.2f}s of imports", file=sys.stderr)
    children: dict[int, socket.socket] = {}
    driver_gone = False
    try:
        while True:
            try:
                ready, _, _ = select.select([listener, wake_r, sys.stdin], [], [], 5.0)
            except InterruptedError:
                ready = []
            if sys.stdin in ready and not os.read(sys.stdin.fileno(), 4096):
                driver_gone = True
                return
            if wake_r in ready:
                os.read(wake_r, 4096)
            _reap(children)
            if listener in ready:
                conn, _ = listener.accept()
                pid = _accept(conn, runners, listener, children, (wake_r, wake_w))
                if pid is not None:
                    children[pid] = conn
                    print(f"acp prefork: forked {pid}", file=sys.stderr)
    finally:
        listener.close()
        with contextlib.suppress(OSError):
            os.unlink(sock_path)
        if driver_gone:  # no launcher runs any more; the driver's own exit handler may not have run
            shutil.rmtree(os.path.dirname(sock_path), ignore_errors=True)


def _reap(children: dict[int, socket.socket]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = children.pop(pid, None)
        if conn is not None:
            try:
                conn.sendall(f"exit {os.waitstatus_to_exitcode(status)}\n".encode())
            except OSError:
                pass
            conn.close()


def _accept(
    conn: socket.socket,
    runners: Sequence[str],
    listener: socket.socket,
    children: dict[int, socket.socket],
    wake: tuple[int, int],
) -> int | None:
    """Read one request; fork its child and tell the launcher its pid, or tell it to run the real Python."""
    fds: list[int] = []
    try:
        conn.settimeout(10)
        data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
        while len(data) < 4 or len(data) < 4 + int.from_bytes(data[:4], "big"):
            more = conn.recv(1 << 16)
            if not more:
                raise OSError("the launcher went away")
            data += more
        request = json.loads(data[4 : 4 + int.from_bytes(data[:4], "big")])
        argv = request["argv"]
        if len(fds) != 3 or len(argv) != 2 or argv[0] != "-m" or argv[1] not in runners:
            raise ValueError("not a runner")
        conn.settimeout(None)
    # a request this does not understand: the launcher runs the real Python
    except (OSError, ValueError, KeyError, TypeError):
        for fd in fds:
            os.close(fd)
        try:
            conn.sendall(b"exec\n")
        except OSError:
            pass
        conn.close()
        return None
    pid = os.fork()
    if pid == 0:  # the child: never returns
        _become(conn, fds, request, listener, children, wake)
    for fd in fds:
        os.close(fd)
    try:
        conn.sendall(f"pid {pid}\n".encode())
    except OSError:
        pass
    return pid


def _become(
    conn: socket.socket,
    fds: list[int],
    request: dict[str, Any],
    listener: socket.socket,
    children: dict[int, socket.socket],
    wake: tuple[int, int],
) -> None:
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
        listener.close()
        for other in children.values():
            other.close()
        for fd in wake:
            os.close(fd)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        for entry in reversed([p for p in request["env"].get("PYTHONPATH", "").split(os.pathsep) if p]):
            if entry not in sys.path:
                sys.path.insert(0, entry)
        _watch(conn)
        try:
            runpy.run_module(request["argv"][1], run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - the child reports everything and exits, never returns to the loop
        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001, S110 - exiting anyway
                pass
        os._exit(code)


def _watch(conn: socket.socket) -> None:
    """End this child when its launcher ends: the launcher never writes, so a read returns at its exit."""
    import threading

    def wait() -> None:
        try:
            conn.recv(1)
        except OSError:
            pass
        os._exit(1)

    threading.Thread(target=wait, name="acp-prefork-launcher", daemon=True).start()


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2].split(","), [m for m in sys.argv[3].split(",") if m])
