"""Rewrite the code between ``<!-- snippet: <file> <name> -->`` markers in README.md and docs/*.md from the
marked regions of the DAG files (``# [START name]`` / ``# [END name]``); tests check they agree."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNIPPET = re.compile(
    r"(<!-- snippet: (\S+) (\S+) -->\n(\s*)```python\n)(.*?)(\n\s*```\n\s*<!-- /snippet -->)", re.S
)


def marked(path: str, name: str) -> str:
    """The dedented code between the ``[START name]`` and ``[END name]`` markers of ``path``."""
    source = (ROOT / path).read_text()
    found = re.search(rf"# \[START {name}\]\n(.*?)\n\s*# \[END {name}\]", source, re.S)
    if not found:
        raise SystemExit(f"{path} has no [START {name}] / [END {name}] markers")
    return textwrap.dedent(found.group(1)).strip()


def documents() -> list[Path]:
    """Every Markdown file that may hold snippets."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]


def sync(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        head, path, name, indent, _body, tail = match.groups()
        indent = indent.split("\n")[-1]
        body = textwrap.indent(marked(path, name), indent)
        return f"{head}{body}{tail}"

    return SNIPPET.sub(replace, text)


def main() -> None:
    for doc in documents():
        if doc.exists():
            text = doc.read_text()
            new = sync(text)
            if new != text:
                doc.write_text(new)
                print(f"updated {doc.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
