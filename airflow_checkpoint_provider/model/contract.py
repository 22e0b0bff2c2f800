"""An application's contract: the state it declares, the sources it reads, the migrations it offers.

The plan step (:mod:`~airflow_checkpoint_provider.model.plan`) checks a redeploy against it *before* anything
runs, so the contract is data, not code: a module-level literal ``ACP_CONTRACT`` in the application file,
read with :mod:`ast` (the file is never imported or executed by the plan)::

    ACP_CONTRACT = {
        "code_version": "event-counter-v2",
        "sources": 1,
        "state": {"counts": "key STRING, n BIGINT, total BIGINT, max BIGINT"},
        "migrations": {
            "auto": {"counts": {"rename": {"sum": "n", "sum_2": "total"}, "drop": ["max_2"],
                                "add": {"max": "BIGINT"}}},
            "none": {},
        },
    }

A migration is, per state part, either a **column migration** (``rename``, then ``drop``, then ``add``; each
applies only where it can: a rename of an absent column, a drop of an absent column and an add of a present
column are no-ops, so one migration reads every older shape) or the string ``"code"``: a Python function the
plan cannot read, checked by the dry run instead. The runtime applies a column migration with
:func:`column_migration` — the same definition the plan checked, so the two cannot drift apart.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_checkpoint_provider.exceptions import InvalidLaunchError

#: (column name, Spark type), both lower-case: what the plan compares.
Column = tuple[str, str]

_TYPE_ALIASES = {
    "long": "bigint",
    "integer": "int",
    "short": "smallint",
    "byte": "tinyint",
    "bool": "boolean",
    "real": "float",
}


def _norm_type(text: str) -> str:
    t = re.sub(r"\s+", "", text.strip().lower())
    return _TYPE_ALIASES.get(t, t)


def parse_ddl(ddl: str) -> list[Column]:
    """``"key STRING, n BIGINT"`` -> ``[("key", "string"), ("n", "bigint")]`` (commas inside ``<>`` or ``()``
    belong to the type)."""
    columns: list[Column] = []
    depth, start = 0, 0
    pieces: list[str] = []
    for i, ch in enumerate(ddl):
        if ch in "<(":
            depth += 1
        elif ch in ">)":
            depth -= 1
        elif ch == "," and depth == 0:
            pieces.append(ddl[start:i])
            start = i + 1
    pieces.append(ddl[start:])
    for piece in (p.strip() for p in pieces):
        if not piece:
            continue
        name, _, kind = piece.partition(" ")
        if not kind.strip():
            raise ValueError(f"column {name!r} has no type in {ddl!r}")
        columns.append((name.strip("`").lower(), _norm_type(kind.lstrip(":"))))
    return columns


def fmt(columns: Sequence[Column]) -> str:
    return "(" + ", ".join(f"{n} {t}" for n, t in columns) + ")"


@dataclass(frozen=True, slots=True)
class ColumnMigration:
    """Rename, then drop, then add (NULL-filled) columns of one state part; each only where it applies."""

    rename: dict[str, str] = field(default_factory=dict)
    drop: tuple[str, ...] = ()
    add: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> ColumnMigration:
        unknown = set(data) - {"rename", "drop", "add"}
        if unknown:
            raise ValueError(f"unknown column migration step(s) {sorted(unknown)} (rename, drop, add)")
        return cls(
            rename={str(k).lower(): str(v).lower() for k, v in dict(data.get("rename") or {}).items()},
            drop=tuple(str(c).lower() for c in data.get("drop") or ()),
            add={str(k).lower(): _norm_type(str(v)) for k, v in dict(data.get("add") or {}).items()},
        )

    def schema(self, columns: Sequence[Column]) -> list[Column]:
        """What this migration makes of a part with ``columns``."""
        present = {n for n, _ in columns}
        out = [
            (self.rename[n] if n in self.rename and self.rename[n] not in present else n, t)
            for n, t in columns
        ]
        out = [(n, t) for n, t in out if n not in self.drop]
        names = {n for n, _ in out}
        return out + [(n, t) for n, t in self.add.items() if n not in names]

    def apply(self, df: Any) -> Any:
        """The same on a Spark DataFrame (pyspark imported here, never by the plan)."""
        from pyspark.sql import functions as F

        for old, new in self.rename.items():
            if old in df.columns and new not in df.columns:
                df = df.withColumnRenamed(old, new)
        df = df.drop(*[c for c in self.drop if c in df.columns])
        for name, kind in self.add.items():
            if name not in df.columns:
                df = df.withColumn(name, F.lit(None).cast(kind))
        return df


#: A part's migration: a column migration, or "code" (a function only the dry run can check).
PartMigration = ColumnMigration | str


@dataclass(frozen=True, slots=True)
class AppContract:
    """What an application declares about itself (see the module docstring)."""

    code_version: str = ""
    sources: int | None = None
    state: dict[str, list[Column]] = field(default_factory=dict)
    migrations: dict[str, dict[str, PartMigration]] = field(default_factory=dict)
    path: str = ""

    @classmethod
    def parse(cls, data: Mapping[str, Any], path: str = "") -> AppContract:
        try:
            unknown = set(data) - {"code_version", "sources", "state", "migrations"}
            if unknown:
                raise ValueError(f"unknown key(s) {sorted(unknown)}")
            migrations: dict[str, dict[str, PartMigration]] = {}
            for name, parts in dict(data.get("migrations") or {}).items():
                migrations[str(name)] = {
                    str(part): ("code" if spec == "code" else ColumnMigration.parse(spec))
                    for part, spec in dict(parts or {}).items()
                }
            sources = data.get("sources")
            return cls(
                code_version=str(data.get("code_version") or ""),
                sources=None if sources is None else int(sources),
                state={str(p): parse_ddl(str(ddl)) for p, ddl in dict(data.get("state") or {}).items()},
                migrations=migrations,
                path=path,
            )
        except (TypeError, ValueError, AttributeError) as exc:
            raise InvalidLaunchError(
                f"the application's ACP_CONTRACT is not valid: {exc}",
                path=path or None,
                hint="See docs/upgrades.md for the contract's shape",
            ) from exc

    def offers(self, migration: str) -> bool:
        return migration == "none" or migration in self.migrations

    def migrated(self, migration: str, part: str, columns: Sequence[Column]) -> list[Column] | None:
        """The part's columns after ``migration`` (unchanged when it names no step for the part); None when
        the step is code (the plan cannot tell)."""
        step = self.migrations.get(migration, {}).get(part)
        if step is None:
            return list(columns)
        if isinstance(step, str):
            return None
        return step.schema(columns)


def read_contract(application: str) -> AppContract | None:
    """The ``ACP_CONTRACT`` literal of a local application file, read with :mod:`ast` (never imported); None
    when the file declares none or is not a local Python file."""
    path = Path(application.removeprefix("file://"))
    if path.suffix != ".py" or not path.is_file():
        return None
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError) as exc:
        raise InvalidLaunchError(f"the application file does not parse: {exc}", path=str(path)) from exc
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id == "ACP_CONTRACT":
            try:
                data = ast.literal_eval(value)
            except ValueError as exc:
                raise InvalidLaunchError(
                    f"ACP_CONTRACT must be a literal (no names or calls): {exc}",
                    path=str(path),
                    hint="Write the contract as a plain dict of strings, numbers, lists and dicts",
                ) from exc
            if not isinstance(data, dict):
                raise InvalidLaunchError("ACP_CONTRACT must be a dict", path=str(path))
            return AppContract.parse(data, str(path))
    return None


def column_migration(contract: Mapping[str, Any], name: str, part: str) -> Callable[[Any], Any] | None:
    """The runtime side of a declared column migration: ``df -> df`` for ``initial_state(migrate=...)``
    (None when ``name`` declares no step for the part)."""
    parsed = AppContract.parse(contract)
    step = parsed.migrations.get(name, {}).get(part)
    if step is None:
        return None
    if isinstance(step, str):
        raise InvalidLaunchError(
            f"migration {name!r} of part {part!r} is declared as code: pass the function itself"
        )
    return step.apply
