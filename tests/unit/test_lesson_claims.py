"""Sentences of notebook 1 that must hold on every backend, checked without a model: it names the
same default backend as the README."""

from __future__ import annotations

import json

from support import REPO


def cells(name: str) -> list[dict]:
    return json.loads((REPO / "solutions" / f"{name}.ipynb").read_text())["cells"]


def default_rows(markdown: str) -> list[str]:
    """The rows of the markdown tables in `markdown` that call their backend the default."""
    return [row for row in markdown.splitlines() if row.startswith("|") and "default" in row]


def test_notebook_1_and_the_readme_name_the_offline_server_the_default():
    table = next("".join(c["source"]) for c in cells("01_setup_and_first_call")
                 if "| backend |" in "".join(c["source"]))
    readme = (REPO / "README.md").read_text().split("## Three backends", 1)[1].split("\n## ", 1)[0]
    for where, text in (("notebook 1", table), ("README", readme)):
        rows = default_rows(text)
        assert len(rows) == 1 and "offline" in rows[0].lower(), f"{where}: {rows}"
    assert "(the default)" not in table.split("**NIM**", 1)[1].split("\n", 1)[0]
