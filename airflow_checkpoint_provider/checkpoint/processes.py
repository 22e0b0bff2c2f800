"""Is a driver process on this host still alive? (Linux ``/proc``; elsewhere ``kill -0``.) No Airflow, no
pyspark."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from airflow_checkpoint_provider.model.backends import Liveness


def local_liveness(pid: int | None, host: str, launch_id: str) -> Liveness:
    """Whether the local driver process ``pid`` (started for ``launch_id``) still runs on this host."""
    if not pid or host != socket.gethostname():
        return Liveness.UNKNOWN
    try:  # reap it if it is our own exited child, so a zombie does not look alive
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    except OSError:
        pass
    proc = Path(f"/proc/{pid}")
    if proc.exists():
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
        except (OSError, IndexError):
            return Liveness.GONE
        if state in ("Z", "X"):
            return Liveness.GONE
        return Liveness.ALIVE if (not launch_id or launch_id in cmdline) else Liveness.GONE
    if Path("/proc/self").exists():
        return Liveness.GONE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return Liveness.GONE
    except PermissionError:
        return Liveness.ALIVE
    return Liveness.ALIVE


def process_gone(pid: int | None, host: str | None) -> bool:
    """True only when the process is provably gone: on this host and not running (False when unknown)."""
    return local_liveness(int(pid or 0), str(host or ""), "") is Liveness.GONE
