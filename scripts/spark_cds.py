"""Make a class-data archive (AppCDS) of a Spark driver JVM, for the tests' spark-submit processes.

A Spark driver loads and verifies some 15,000 classes from its jars at every start. A dynamic archive, dumped
by a JVM that ran the example counter to its second batch and stopped gracefully, holds them ready to map: a
cold start of the counter on a slow 2-core machine took 23 s and 29 CPU-s, and 14-18 s and 18-23 CPU-s with
the archive (2026-12-01, docs/performance.md). A JVM whose flags or classpath do not match the archive says so
in its log and starts without it, so a stale archive costs time, never a failure.

Usage: ``python scripts/spark_cds.py ARCHIVE WORK_DIR``. ``SPARK_SUBMIT_OPTS`` must hold the JVM flags the
tests use (the archive records them). Writes ARCHIVE only when the dump succeeded; exits 0 either way.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.drivers import Job, Producer  # noqa: E402


def dump(archive: Path, work: Path, timeout_s: float = 300) -> bool:
    """Run the v2 counter with ``-XX:ArchiveClassesAtExit`` to its batch 1, stop it gracefully (the JVM
    writes the archive as it exits) and move the archive into place. False when no archive came out."""
    partial = archive.with_name(f".{archive.name}.{os.getpid()}")
    opts = os.environ.get("SPARK_SUBMIT_OPTS", "")
    os.environ["SPARK_SUBMIT_OPTS"] = f"{opts} -XX:ArchiveClassesAtExit={partial}".strip()
    job = Job(work / "cds-dump", work)
    try:
        with Producer(job.events):
            job.set_current(1)
            proc, log = job.launch("v2", job.spec(1))
            deadline = time.monotonic() + timeout_s
            while job.committed(1) < 1:
                if proc.poll() is not None or time.monotonic() > deadline:
                    print(f"spark_cds: the dump driver did not reach batch 1 (see {log})", file=sys.stderr)
                    if proc.poll() is None:
                        os.killpg(proc.pid, signal.SIGKILL)
                    return False
                time.sleep(0.5)
            job.request_stop(1)
            rc = proc.wait(timeout=timeout_s)
        if rc != 0 or not partial.is_file():
            print(f"spark_cds: no archive (driver exit {rc}; see {log})", file=sys.stderr)
            return False
        partial.replace(archive)
        return True
    finally:
        os.environ["SPARK_SUBMIT_OPTS"] = opts
        partial.unlink(missing_ok=True)


def main(argv: list[str]) -> int:
    archive, work = Path(argv[0]), Path(argv[1])
    started = time.monotonic()
    made = dump(archive, work)
    size = f"{archive.stat().st_size / 2**20:.0f} MiB" if made else "none"
    print(f"spark_cds: archive {archive.name}: {size}, in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
