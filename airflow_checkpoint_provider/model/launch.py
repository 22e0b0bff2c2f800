"""The launch contract: what the lifecycle operators pass to a managed streaming application.

One place parses and validates it. It travels as command-line arguments so that a cluster manager that
restarts a driver with its original arguments restarts it with the same contract (and the driver then decides,
from the checkpoint, whether to resume). A user can launch by hand with the same flags::

    spark-submit app.py --acp-job-root /data/jobs/counter --acp-generation 2 \\
        --acp-snapshot 20261122T101500Z-g1-b41 --acp-starting-offsets '[{"offset": 4200}]' \\
        -- <the application's own arguments>

Control and status locations are derived from the job root and generation (``generations/<g>/control/`` and
``generations/<g>/status.json``), so they cannot disagree with what the operators read.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from airflow_checkpoint_provider.exceptions import InvalidLaunchError
from airflow_checkpoint_provider.model.constants import (
    DEFAULT_HEARTBEAT_S,
    DEFAULT_LEASE_S,
    DEFAULT_STANDBY_TIMEOUT_S,
)

PREFIX = "--acp-"


@dataclass(frozen=True, slots=True)
class LaunchSpec:
    """The arguments of one managed driver start.

    :param job_root: the job's root folder (path or URI); everything the job owns lives below it.
    :param generation: the generation this driver runs (>= 1); its checkpoint is
        ``generations/<g>/checkpoint``.
    :param job_name: a display name; defaults to the job root's last path element.
    :param snapshot: id of the snapshot to load as initial state on the fresh path (None: no initial state).
    :param starting_offsets: per source, the offset JSON to start from on the fresh path; None means "the
        snapshot's end offsets" when a snapshot is given, else the source's own initial offset.
    :param code_version: a label for the application's code (recorded in status and snapshots).
    :param heartbeat_s: how often the driver refreshes its status file and checks control requests.
    :param lease_s: a driver whose heartbeat is older than this is considered dead.
    :param launch_id: who launched this driver (an operator's submission); echoed in ``status.json`` so the
        launcher can tell its driver's reports from an earlier driver's. Kept by a cluster-manager restart.
    :param standby_for: launch as a warm standby for this (older) generation: start Spark and wait, touching
        neither a checkpoint nor a sink, until this generation becomes the job's current one (see
        :mod:`~airflow_checkpoint_provider.runtime.standby`). Ignored once it is current.
    :param standby_timeout_s: a standby that gets no go within this many seconds exits (discarded).
    :param dry_run_output: this driver is a **dry run** (``docs/upgrades.md``): it runs on a scratch copy of
        the job, and the application writes its sink output below this folder instead of its real sink
        (``ctx.output(path)`` maps a sink path there). None: a real run.
    :param stay_as_standby_s: a dry run's driver that stopped gracefully stays up this many seconds, offering
        itself as the redeploy's warm standby (:mod:`~airflow_checkpoint_provider.runtime.adoption`); 0
        (default): it exits after its stop. Only with ``dry_run_output``.
    """

    job_root: str
    generation: int
    job_name: str = ""
    snapshot: str | None = None
    starting_offsets: tuple[Any, ...] | None = None
    code_version: str = ""
    heartbeat_s: float = DEFAULT_HEARTBEAT_S
    lease_s: float = DEFAULT_LEASE_S
    launch_id: str = ""
    standby_for: int | None = None
    standby_timeout_s: float = DEFAULT_STANDBY_TIMEOUT_S
    dry_run_output: str | None = None
    stay_as_standby_s: float = 0.0
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.job_root or not str(self.job_root).strip():
            raise InvalidLaunchError("the launch contract needs a job root (--acp-job-root)")
        if not isinstance(self.generation, int) or isinstance(self.generation, bool) or self.generation < 1:
            raise InvalidLaunchError(
                f"generation must be a whole number >= 1, got {self.generation!r}", path=self.job_root
            )
        if self.heartbeat_s <= 0 or self.lease_s <= self.heartbeat_s:
            raise InvalidLaunchError(
                f"need 0 < heartbeat ({self.heartbeat_s}s) < lease ({self.lease_s}s)", path=self.job_root
            )
        if self.standby_for is not None and not 1 <= self.standby_for < self.generation:
            raise InvalidLaunchError(
                f"a standby for generation {self.standby_for} cannot be generation {self.generation} (it "
                "must be newer)",
                path=self.job_root,
                generation=self.generation,
            )
        if self.stay_as_standby_s < 0 or (self.stay_as_standby_s and not self.dry_run_output):
            raise InvalidLaunchError(
                f"--acp-stay-as-standby-s {self.stay_as_standby_s}: needs a dry run (--acp-dry-run-output) "
                "and a number of seconds >= 0",
                path=self.job_root,
                generation=self.generation,
            )
        if not self.job_name:
            object.__setattr__(self, "job_name", str(self.job_root).rstrip("/").rsplit("/", 1)[-1])

    def to_args(self) -> list[str]:
        """The flags that reproduce this spec (argument list, never a shell string)."""
        args = [f"{PREFIX}job-root", self.job_root, f"{PREFIX}generation", str(self.generation)]
        args += [f"{PREFIX}job-name", self.job_name]
        if self.snapshot:
            args += [f"{PREFIX}snapshot", self.snapshot]
        if self.starting_offsets is not None:
            args += [
                f"{PREFIX}starting-offsets",
                json.dumps(list(self.starting_offsets), separators=(",", ":")),
            ]
        if self.code_version:
            args += [f"{PREFIX}code-version", self.code_version]
        args += [f"{PREFIX}heartbeat-s", str(self.heartbeat_s), f"{PREFIX}lease-s", str(self.lease_s)]
        if self.launch_id:
            args += [f"{PREFIX}launch-id", self.launch_id]
        if self.standby_for is not None:
            args += [f"{PREFIX}standby-for", str(self.standby_for)]
            args += [f"{PREFIX}standby-timeout-s", str(self.standby_timeout_s)]
        if self.dry_run_output:
            args += [f"{PREFIX}dry-run-output", self.dry_run_output]
        if self.stay_as_standby_s:
            args += [f"{PREFIX}stay-as-standby-s", str(self.stay_as_standby_s)]
        return args


class _LaunchArgumentParser(argparse.ArgumentParser):
    """argparse that raises the launch contract's typed error instead of printing and exiting."""

    def error(self, message: str) -> NoReturn:
        raise InvalidLaunchError(f"bad launch flags: {message}")


def _parser() -> argparse.ArgumentParser:
    p = _LaunchArgumentParser(
        prog="managed streaming application", add_help=False, allow_abbrev=False, exit_on_error=False
    )
    p.add_argument(f"{PREFIX}job-root", dest="job_root")
    p.add_argument(f"{PREFIX}generation", dest="generation")
    p.add_argument(f"{PREFIX}job-name", dest="job_name", default="")
    p.add_argument(f"{PREFIX}snapshot", dest="snapshot")
    p.add_argument(f"{PREFIX}starting-offsets", dest="starting_offsets")
    p.add_argument(f"{PREFIX}code-version", dest="code_version", default="")
    p.add_argument(f"{PREFIX}heartbeat-s", dest="heartbeat_s", default=str(DEFAULT_HEARTBEAT_S))
    p.add_argument(f"{PREFIX}lease-s", dest="lease_s", default=str(DEFAULT_LEASE_S))
    p.add_argument(f"{PREFIX}launch-id", dest="launch_id", default="")
    p.add_argument(f"{PREFIX}standby-for", dest="standby_for")
    p.add_argument(
        f"{PREFIX}standby-timeout-s", dest="standby_timeout_s", default=str(DEFAULT_STANDBY_TIMEOUT_S)
    )
    p.add_argument(f"{PREFIX}dry-run-output", dest="dry_run_output")
    p.add_argument(f"{PREFIX}stay-as-standby-s", dest="stay_as_standby_s", default="0")
    return p


def parse_launch_args(argv: Sequence[str]) -> tuple[LaunchSpec, list[str]]:
    """Split ``argv`` into the launch contract and the application's own arguments (after ``--`` or
    unknown)."""
    argv = list(argv)
    app_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, app_args = argv[:cut], argv[cut + 1 :]
    try:
        ns, rest = _parser().parse_known_args(argv)
    except argparse.ArgumentError as exc:
        raise InvalidLaunchError(f"bad launch flags: {exc}") from exc
    unknown_acp = [a for a in rest if a.startswith(PREFIX)]
    if unknown_acp:
        raise InvalidLaunchError(f"unknown launch flag(s): {', '.join(unknown_acp)}")
    if ns.job_root is None or ns.generation is None:
        raise InvalidLaunchError("the launch contract needs --acp-job-root and --acp-generation")
    try:
        generation = int(ns.generation)
        heartbeat, lease = float(ns.heartbeat_s), float(ns.lease_s)
        standby_for = int(ns.standby_for) if ns.standby_for is not None else None
        standby_timeout = float(ns.standby_timeout_s)
        stay = float(ns.stay_as_standby_s)
    except ValueError as exc:
        raise InvalidLaunchError(f"bad number in launch flags: {exc}", path=ns.job_root) from exc
    offsets = None
    if ns.starting_offsets is not None:
        try:
            parsed = json.loads(ns.starting_offsets)
        except ValueError as exc:
            raise InvalidLaunchError(
                f"--acp-starting-offsets is not JSON: {exc}", path=ns.job_root, generation=generation
            ) from exc
        if not isinstance(parsed, list):
            raise InvalidLaunchError(
                "--acp-starting-offsets must be a JSON list, one offset per source",
                path=ns.job_root,
                generation=generation,
            )
        offsets = tuple(parsed)
    spec = LaunchSpec(
        job_root=ns.job_root,
        generation=generation,
        job_name=ns.job_name,
        snapshot=ns.snapshot or None,
        starting_offsets=offsets,
        code_version=ns.code_version,
        heartbeat_s=heartbeat,
        lease_s=lease,
        launch_id=ns.launch_id,
        standby_for=standby_for,
        standby_timeout_s=standby_timeout,
        dry_run_output=ns.dry_run_output or None,
        stay_as_standby_s=stay,
    )
    return spec, rest + app_args
