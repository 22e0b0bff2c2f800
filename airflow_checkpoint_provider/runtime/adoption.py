"""A dry run's driver that stays up as the redeploy's warm standby.

A safe redeploy starts the new code twice before its go: the dry run (a JVM on a scratch copy of the job: two
batches, a graceful stop) and the warm standby (another JVM, warmed on made-up rows). On a small machine the
two starts are most of what the redeploy costs before its stop, and they compete with the live job for the
CPU. With ``--acp-stay-as-standby-s N`` (``DryRunStreamingJobOperator(stay_as_standby=...)``) the dry run's
driver does not exit after its graceful stop:

1. It offers itself: ``control/adoptable.json`` in its scratch job (its launch id, pid, host, until when).
2. It waits up to N seconds for ``control/adopt.json``, which :class:`LaunchStandbyOperator` writes once the
   dry run passed: the launch flags of the redeploy's standby generation, with the dry run's launch id (the
   backend knows the process by it).
3. It checks them (:func:`adoption_problem`: a standby launch of the same generation, name and launch id, for
   the job root its scratch folder is in), removes its scratch folder, and runs on as that standby: its
   driver lock, ``STANDBY``, the wait for its go (:mod:`~airflow_checkpoint_provider.runtime.standby`). The
   warm-up on made-up rows is skipped: the dry run ran the new code's own query in this JVM.

A release (``{"release": true}``: the dry run's check failed, or the standby task adopts nothing), a bad
adoption, or the end of the wait: the driver removes its scratch folder and exits, as a dry run always did.
Structured Streaming drivers only: a DStream dry run exits after its stop, and the standby task launches a
standby of its own. This module never imports pyspark.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

from airflow_checkpoint_provider.checkpoint.jobroot import JobRoot
from airflow_checkpoint_provider.checkpoint.storage import Location
from airflow_checkpoint_provider.checkpoint.upgrade import SCRATCH
from airflow_checkpoint_provider.exceptions import CheckpointProviderError, InvalidLaunchError
from airflow_checkpoint_provider.model.constants import ADOPT_POLL_S
from airflow_checkpoint_provider.model.launch import LaunchSpec, parse_launch_args

log = logging.getLogger("airflow_checkpoint_provider.runtime")

ADOPTABLE_FILE = "adoptable.json"
ADOPT_FILE = "adopt.json"


def adoptable_file(job: JobRoot, generation: int) -> Location:
    return job.control_dir(generation).child(ADOPTABLE_FILE)


def adopt_file(job: JobRoot, generation: int) -> Location:
    return job.control_dir(generation).child(ADOPT_FILE)


def offer(spec: LaunchSpec, driver_id: str) -> None:
    """Say, in the scratch job, that this dry run's driver waits to be adopted (and until when)."""
    job = JobRoot(spec.job_root, job=spec.job_name)
    now = time.time()
    job.write_json(
        adoptable_file(job, spec.generation),
        {
            "launch_id": spec.launch_id,
            "driver_id": driver_id,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "offered_at": now,
            "until": now + spec.stay_as_standby_s,
        },
    )
    log.info(
        "dry run passed its stop: staying up %.0fs for the redeploy's standby task to adopt this driver",
        spec.stay_as_standby_s,
    )


def read_offer(job: JobRoot, generation: int, launch_id: str) -> dict[str, Any] | None:
    """The offer of the dry run ``launch_id`` in scratch job ``job``, while it lasts; else None."""
    try:
        offered = job.read_json(
            adoptable_file(job, generation), what="an adoption offer", generation=generation
        )
    except CheckpointProviderError:
        return None
    if not offered or offered.get("launch_id") != launch_id:
        return None
    try:
        until = float(offered.get("until") or 0)
    except (TypeError, ValueError):  # a damaged offer is no offer
        return None
    return offered if until > time.time() else None


def adopt(job: JobRoot, generation: int, spec: LaunchSpec) -> None:
    """Ask the dry run's driver waiting in scratch job ``job`` to run on as ``spec`` (a standby launch)."""
    job.write_json(adopt_file(job, generation), {"argv": spec.to_args(), "at": time.time()})


def release(job: JobRoot, generation: int, reason: str) -> None:
    """Tell the dry run's driver waiting in scratch job ``job`` to exit."""
    job.write_json(adopt_file(job, generation), {"release": True, "reason": reason, "at": time.time()})


def release_waiting(scratch: Path, job_name: str | None, reason: str) -> list[Path]:
    """Release every dry run's driver that waits to be adopted in ``scratch`` (a job root's
    ``scratch/`` folder): a new dry run of the job makes their offers stale (a retried or cleared dry run
    task), and each holds a JVM for up to its ``stay_as_standby_s``. Only ``dry-run-*`` folders, never
    symlinked ones, and only offers still open and not yet answered. The folders released."""
    released: list[Path] = []
    if scratch.is_symlink() or not scratch.is_dir():
        return released
    now = time.time()
    for folder in sorted(scratch.iterdir()):
        if scratch_folder(str(folder / "job")) != folder:
            continue
        job = JobRoot(str(folder / "job"), job=job_name)
        try:
            generations = job.generations()
        except (CheckpointProviderError, OSError):
            continue
        for generation in generations:
            try:
                offered = job.read_json(adoptable_file(job, generation), what="an adoption offer")
                if not offered or float(offered.get("until") or 0) <= now:
                    continue
                if adopt_file(job, generation).exists():  # answered already (adopted or released)
                    continue
                release(job, generation, reason)
            except (CheckpointProviderError, OSError, TypeError, ValueError) as exc:
                log.info("could not release the dry run waiting in %s: %s", folder, exc)
                continue
            released.append(folder)
    return released


def adoption_problem(dry_run: LaunchSpec, standby: LaunchSpec) -> str | None:
    """Why the dry run's driver must not run on as ``standby``, or None."""
    if standby.standby_for is None:
        return "the adoption's flags are not a standby launch (no --acp-standby-for)"
    if standby.dry_run_output:
        return "the adoption's flags are a dry run's"
    if standby.generation != dry_run.generation:
        return f"the adoption is for generation {standby.generation}; this dry run ran {dry_run.generation}"
    if standby.launch_id != dry_run.launch_id:
        return f"the adoption names launch {standby.launch_id!r}, not this driver's {dry_run.launch_id!r}"
    if standby.job_name != dry_run.job_name:
        return f"the adoption is for job {standby.job_name!r}; this dry run ran {dry_run.job_name!r}"
    if Path(standby.job_root) == Path(dry_run.job_root):
        return "the adoption names the scratch job itself"
    folder = scratch_folder(dry_run.job_root)
    target = Location.of(standby.job_root)
    if folder is None or not target.is_local or Path(target.path) != folder.parent.parent:
        # a dry run's scratch folder is <job root>/scratch/dry-run-*: it stands by only for that job
        return f"the adoption is for job root {standby.job_root}, not the one this dry run's scratch is in"
    return None


def await_adoption(spec: LaunchSpec) -> LaunchSpec | None:
    """Wait (up to ``spec.stay_as_standby_s``) to be adopted; the standby's launch spec, or None to exit.
    The scratch folder is removed either way."""
    job = JobRoot(spec.job_root, job=spec.job_name)
    where = adopt_file(job, spec.generation)
    deadline = time.monotonic() + spec.stay_as_standby_s
    try:
        while time.monotonic() < deadline:
            try:
                data = job.read_json(where, what="an adoption request", generation=spec.generation)
            except CheckpointProviderError as exc:
                log.error("not adopted: %s", exc)
                return None
            if data is not None:
                return _adopted(spec, data)
            time.sleep(ADOPT_POLL_S)
        log.info("no adoption within %.0fs: exiting", spec.stay_as_standby_s)
        return None
    finally:
        remove_scratch(spec)


def _adopted(spec: LaunchSpec, data: dict[str, Any]) -> LaunchSpec | None:
    if data.get("release"):
        log.info("released by the redeploy: %s", data.get("reason") or "no reason given")
        return None
    argv = data.get("argv")
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        log.error("not adopted: the adoption request holds no list of launch flags")
        return None
    try:
        standby, _ = parse_launch_args(argv)
    except InvalidLaunchError as exc:
        log.error("not adopted: %s", exc)
        return None
    problem = adoption_problem(spec, standby)
    if problem:
        log.error("not adopted: %s", problem)
        return None
    log.info(
        "adopted: running on as the warm standby generation %s of %s (for generation %s)",
        standby.generation,
        standby.job_root,
        standby.standby_for,
    )
    return standby


def scratch_of(spec: LaunchSpec) -> Path | None:
    """The dry run's scratch folder (``<job root>/scratch/dry-run-*``) from its launch; None unless the
    layout is exactly that (nothing else is ever removed)."""
    if not spec.dry_run_output:
        return None
    folder = scratch_folder(spec.job_root)
    return folder if folder is not None and Path(spec.dry_run_output).parent == folder else None


def scratch_folder(scratch_job: str) -> Path | None:
    """``<job root>/scratch/dry-run-*`` for the scratch job ``<that>/job``; None for any other path, and for
    a symlinked one."""
    job = Path(scratch_job)
    folder = job.parent
    if job.name != "job" or not folder.name.startswith("dry-run-") or folder.parent.name != SCRATCH:
        return None
    return None if folder.is_symlink() else folder


def remove_scratch(spec: LaunchSpec) -> None:
    remove_scratch_folder(scratch_of(spec))


def remove_scratch_folder(folder: Path | None) -> None:
    """Remove a dry run's scratch folder (:func:`scratch_folder`), and ``scratch/`` when it was the last."""
    if folder is None:
        return
    shutil.rmtree(folder, ignore_errors=True)
    try:
        folder.parent.rmdir()  # the scratch folder, when this was its last dry run
    except OSError:
        pass
