"""Modules imported at first use, so that importing an operator, sensor or callback (what a DAG file does)
stays cheap: promise 8 in docs/design.md. The machinery the operators run (job root, ledger, hook, triggers,
snapshots) loads when a task executes, not when the DAG processor parses a file."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    """Stands for a module; the first attribute access imports it (through the normal, thread-safe import)."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        module: ModuleType = importlib.import_module(self._name)
        return getattr(module, attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name}>"


def lazy(name: str) -> Any:
    """A module imported at first attribute access (``Any``: type checkers see through to the attributes)."""
    return LazyModule(name)
