"""The code snippets in README.md and docs/ are the example DAGs' real code (between ``# [START x]`` /
``# [END x]`` markers); ``python scripts/sync_snippets.py`` rewrites them after a change."""

from __future__ import annotations

import importlib.util
import textwrap
from types import ModuleType

from tests.support.processes import ROOT


def sync_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sync_snippets", ROOT / "scripts" / "sync_snippets.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_doc_snippets_match_the_example_dags() -> None:
    sync = sync_module()
    found = 0
    for doc in sync.documents():
        text = doc.read_text()
        for _head, path, name, _indent, body, _tail in sync.SNIPPET.findall(text):
            found += 1
            assert textwrap.dedent(body).strip() == sync.marked(path, name), (
                f"{doc.name}: snippet {name} is out of date (run python scripts/sync_snippets.py)"
            )
    assert found >= 2
