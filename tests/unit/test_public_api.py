"""The helper package's public API: what `__all__` lists is what the contributors' guide
(docs/authoring.md, "The helper package") lists, it all imports, and notebooks import their
helpers from `helpers` itself, not from its submodules."""

from __future__ import annotations

import json
import re

import helpers

from support import REPO

SUBMODULE_IMPORT = re.compile(r"^\s*from helpers\.(?!grading\b)([\w.]+) import", re.M)
GUIDE = REPO / "docs" / "authoring.md"  # its "The helper package" section lists the public API


def listed_helper_names() -> set[str]:
    """Names in backticks in the guide's helper section (`name`, `name()`, `name(args)`)."""
    guide = GUIDE.read_text()
    assert "\n## The helper package\n" in guide, f"{GUIDE} has no 'The helper package' section"
    section = guide.split("\n## The helper package\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"`([A-Za-z_]\w*)(?:\([^`]*\))?`", section))


def test_every_public_name_imports():
    missing = [name for name in helpers.__all__ if not hasattr(helpers, name)]
    assert not missing
    assert len(set(helpers.__all__)) == len(helpers.__all__), "a name is listed twice"


def test_the_guide_lists_exactly_the_public_api():
    listed = listed_helper_names()
    assert set(helpers.__all__) - listed == set(), "in __all__ but not in docs/authoring.md"
    named_helpers = {name for name in listed if hasattr(helpers, name)}
    assert named_helpers - set(helpers.__all__) - {"__all__"} == set(), \
        "in docs/authoring.md but not in __all__"


def test_notebooks_import_helpers_from_the_package():
    offenders = []
    for path in sorted((REPO / "solutions").glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code":
                source = "".join(cell["source"])
                offenders += [f"{path.name}: helpers.{m}" for m in SUBMODULE_IMPORT.findall(source)]
    assert offenders == [], "import these from `helpers` (and export them there)"


def notebook_imports() -> set[str]:
    """Every name the solution notebooks import from `helpers`."""
    import ast

    names = set()
    for path in sorted((REPO / "solutions").glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] != "code":
                continue
            source = re.sub(r"^\s*[%!].*$", "", "".join(cell["source"]), flags=re.M)
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, ast.ImportFrom) and node.module == "helpers":
                    names |= {alias.name for alias in node.names}
    return names


def test_every_public_name_is_used_by_a_notebook():
    """The public API is the notebooks' instruments: nothing exported that no lesson uses."""
    assert set(helpers.__all__) - notebook_imports() == set(), "exported, but no notebook imports it"
