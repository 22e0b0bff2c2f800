"""The README's code snippets are the example DAGs' real code (between ``# [START x]`` / ``# [END x]``
markers)."""

from __future__ import annotations

import re
import textwrap

from tests.support.processes import ROOT

SNIPPET = re.compile(
    r"<!-- snippet: (\S+) (\S+) -->\n\s*```python\n(.*?)\n\s*```\n\s*<!-- /snippet -->", re.S
)


def marked(path: str, name: str) -> str:
    source = (ROOT / path).read_text()
    found = re.search(rf"# \[START {name}\]\n(.*?)\n\s*# \[END {name}\]", source, re.S)
    assert found, f"{path} has no [START {name}] / [END {name}] markers"
    return textwrap.dedent(found.group(1)).strip()


def test_readme_snippets_match_the_example_dags() -> None:
    readme = (ROOT / "README.md").read_text()
    snippets = SNIPPET.findall(readme)
    assert len(snippets) >= 2
    for path, name, body in snippets:
        assert textwrap.dedent(body).strip() == marked(path, name), f"README snippet {name} is out of date"
