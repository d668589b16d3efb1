"""MkDocs hooks: pages generated from the code, so that they cannot go stale.

``<!-- segbench:schema -->`` in a page becomes the table of every results column, from
:data:`segbench.results.schema.COLUMNS` (the one definition the code conforms tables to).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def schema_table() -> str:
    from segbench.results import schema as results

    lines = [
        f"Schema version {results.SCHEMA_VERSION}. Key columns (one cell): "
        + ", ".join(f"`{c}`" for c in results.KEY_COLUMNS)
        + ".",
        "",
        "| column | type | unit | meaning |",
        "| --- | --- | --- | --- |",
    ]
    for name, column in results.COLUMNS.items():
        meaning = column.meaning.replace("|", "\\|")
        lines.append(f"| `{name}` | {column.dtype} | {column.unit or ''} | {meaning} |")
    return "\n".join(lines)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if "<!-- segbench:schema -->" in markdown:
        markdown = markdown.replace("<!-- segbench:schema -->", schema_table())
    return markdown
