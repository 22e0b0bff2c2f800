"""The plan step's rule: what a redeploy will do, decided and explained before anything runs (no I/O here).

* ``none`` — nothing changes (same code, same settings, no rotation asked): a scheduled redeploy does nothing.
* ``resume`` — only settings the checkpoint does not pin change (e.g. executor memory, the application's own
  arguments): the generation can be restarted in place on its own checkpoint.
* ``redeploy`` — the code, or a setting the checkpoint pins (``spark.sql.shuffle.partitions``, the state
  store's confs), changes, or a rotation was asked: stop, snapshot, migrate, start a fresh generation.
* ``refuse`` — the redeploy cannot work, and is refused before the old job is touched: the migration named is
  not one the new code offers, the new code's declared state does not match the snapshot after its
  migration, or it reads a different number of sources than the snapshot has offsets for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from airflow_checkpoint_provider.model.contract import AppContract, Column, fmt

#: Confs a Structured Streaming checkpoint pins: a resume with other values fails or silently misbehaves.
PINNED_PREFIXES = ("spark.sql.streaming.stateStore.", "spark.sql.streaming.statefulOperator.")
PINNED_KEYS = frozenset({"spark.sql.shuffle.partitions"})


def pinned(key: str) -> bool:
    return key in PINNED_KEYS or key.startswith(PINNED_PREFIXES)


class PlanAction(StrEnum):
    NONE = "none"
    RESUME = "resume"
    REDEPLOY = "redeploy"
    REFUSE = "refuse"


class Intent(StrEnum):
    UPGRADE = "upgrade"  #: deploy the given code and settings (what changes decides the action)
    ROTATE = "rotate"  #: a fresh generation from a snapshot even when nothing changes


@dataclass(frozen=True, slots=True)
class Deployment:
    """One side of the comparison: how a generation runs (recorded) or is to run (proposed)."""

    application: str
    code_version: str = ""
    application_sha256: str | None = None
    application_args: tuple[str, ...] = ()
    conf: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SnapshotShape:
    """What the plan knows of the state the new code will load: a snapshot's parts and offsets."""

    snapshot_id: str
    generation: int
    parts: Mapping[str, Sequence[Column]]
    sources: int


@dataclass(frozen=True, slots=True)
class Plan:
    action: PlanAction
    reason: str
    generation: int | None
    changes: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    snapshot: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "action": self.action.value}


def _changes(current: Deployment, proposed: Deployment) -> tuple[list[str], list[str]]:
    """(changes the checkpoint pins, changes it does not)."""
    hard: list[str] = []
    soft: list[str] = []
    if current.code_version != proposed.code_version:
        hard.append(f"code version {current.code_version or '?'} -> {proposed.code_version or '?'}")
    if current.application != proposed.application:
        hard.append(f"application {current.application} -> {proposed.application}")
    elif (
        current.application_sha256
        and proposed.application_sha256
        and current.application_sha256 != proposed.application_sha256
    ):
        hard.append(
            f"application file content {current.application_sha256[:12]} -> "
            f"{proposed.application_sha256[:12]}"
        )
    for key in sorted(set(current.conf) | set(proposed.conf)):
        old, new = current.conf.get(key), proposed.conf.get(key)
        if old != new:
            (hard if pinned(key) else soft).append(f"{key} {old} -> {new}")
    if list(current.application_args) != list(proposed.application_args):
        soft.append("application arguments")
    return hard, soft


def plan_redeploy(
    *,
    job: str,
    generation: int | None,
    current: Deployment | None,
    proposed: Deployment,
    intent: Intent = Intent.UPGRADE,
    migration: str = "auto",
    contract: AppContract | None = None,
    shape: SnapshotShape | None = None,
) -> Plan:
    """Decide and explain (see the module docstring).

    :param generation: the job's current generation (None: the job has none yet).
    :param current: how the current generation runs (None with ``generation`` None).
    :param contract: the new code's declared contract (None: it declares none; the dry run checks instead).
    :param shape: the state the new code will load (the current generation's latest verified snapshot), if
        one exists yet.
    """
    if generation is None or current is None:
        return Plan(PlanAction.REDEPLOY, f"job {job} has no generation yet: a first start", generation)
    hard, soft = _changes(current, proposed)
    rotate = intent is Intent.ROTATE
    if not hard and not rotate:
        if soft:
            return Plan(
                PlanAction.RESUME,
                f"only settings the checkpoint does not pin change ({'; '.join(soft)}): generation "
                f"{generation} can restart in place on its own checkpoint",
                generation,
                changes=soft,
            )
        return Plan(
            PlanAction.NONE, f"nothing changes for generation {generation}: nothing to do", generation
        )

    checks: list[str] = []
    refusals: list[str] = []
    if contract is None:
        checks.append("the new code declares no ACP_CONTRACT: its state shape is checked by the dry run")
    elif not contract.offers(migration):
        offered = ", ".join(sorted({*contract.migrations, "none"}))
        refusals.append(f"migration {migration!r} is not one the new code offers ({offered})")
    if shape is None:
        checks.append(f"generation {generation} has no verified snapshot yet: the dry run checks the state")
    elif contract is not None:
        if contract.sources is not None and contract.sources != shape.sources:
            refusals.append(
                f"the new code reads {contract.sources} source(s); snapshot {shape.snapshot_id} has offsets "
                f"for {shape.sources}"
            )
        else:
            checks.append(f"sources: {shape.sources}, as the snapshot's offsets")
        if contract.offers(migration):
            for part, declared in sorted(contract.state.items()):
                if part not in shape.parts:
                    refusals.append(
                        f"the new code declares state part {part!r}; snapshot {shape.snapshot_id} has "
                        f"{', '.join(sorted(shape.parts)) or 'none'}"
                    )
                    continue
                after = contract.migrated(migration, part, list(shape.parts[part]))
                if after is None:
                    checks.append(f"part {part!r}: migration {migration!r} is code, checked by the dry run")
                elif sorted(after) != sorted(declared):
                    refusals.append(
                        f"part {part!r} after migration {migration!r} is {fmt(after)}, but the new code "
                        f"declares {fmt(declared)}"
                    )
                else:
                    checks.append(f"part {part!r} after migration {migration!r} matches {fmt(declared)}")
    why = "; ".join(hard) if hard else "a checkpoint rotation was asked"
    if refusals:
        return Plan(
            PlanAction.REFUSE,
            f"refused: {refusals[0]}" + (f" (and {len(refusals) - 1} more)" if len(refusals) > 1 else ""),
            generation,
            changes=hard + soft,
            checks=checks,
            refusals=refusals,
            snapshot=shape.snapshot_id if shape else None,
        )
    return Plan(
        PlanAction.REDEPLOY,
        f"redeploy generation {generation} through a snapshot to a fresh generation: {why}",
        generation,
        changes=hard + soft,
        checks=checks,
        snapshot=shape.snapshot_id if shape else None,
    )
