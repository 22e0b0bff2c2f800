"""Who used the CPU during a time window: a sampler of ``/proc`` for the redeploy benchmark's ``--cpu``.

Every ``interval`` seconds it reads each process's cumulative CPU time (``utime + stime``) and its process
group. :meth:`CpuSampler.window` then sums, per process, what it used between two wall-clock times, and
:func:`classify` puts each process in a class (the old driver, the new one, Airflow, the benchmark, other).
A process that exits inside the window counts up to its last sample (at most one interval lost).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _read() -> dict[int, tuple[int, int]]:
    """pid -> (CPU ticks so far, process group)."""
    found: dict[int, tuple[int, int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        # the command may hold spaces and parentheses: the fields start after the last ')'
        fields = raw[raw.rfind(")") + 2 :].split()
        found[int(entry.name)] = (int(fields[11]) + int(fields[12]), int(fields[2]))
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class CpuSampler:
    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.samples: list[tuple[float, dict[int, tuple[int, int]]]] = []
        self.cmdlines: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.time()
            sample = _read()
            for pid in sample.keys() - self.cmdlines.keys():
                self.cmdlines[pid] = _cmdline(pid)
            self.samples.append((now, sample))
            self._stop.wait(self.interval)

    def window(self, start: float, end: float) -> dict[int, float]:
        """pid -> CPU seconds used between ``start`` and ``end`` (wall clock)."""
        before = [s for t, s in self.samples if t <= start]
        base = before[-1] if before else {}
        used: dict[int, float] = {}
        last: dict[int, int] = {}
        for t, sample in self.samples:
            if t <= start:
                continue
            for pid, (ticks, _group) in sample.items():
                last[pid] = ticks
            if t >= end:
                break
        for pid, ticks in last.items():
            previous = base.get(pid, (0, 0))[0]  # a process started inside the window counts from 0
            if ticks > previous:
                used[pid] = (ticks - previous) / TICK
        return used

    def group_of(self, pid: int) -> int | None:
        for _t, sample in reversed(self.samples):
            if pid in sample:
                return sample[pid][1]
        return None


def classify(
    sampler: CpuSampler, used: dict[int, float], name: Callable[[int, str], str]
) -> dict[str, float]:
    """Class -> CPU seconds, with ``name(pid, cmdline)`` choosing each process's class."""
    out: dict[str, float] = {}
    for pid, seconds in used.items():
        key = name(pid, sampler.cmdlines.get(pid, ""))
        out[key] = round(out.get(key, 0.0) + seconds, 2)
    return dict(sorted(out.items(), key=lambda item: -item[1]))
