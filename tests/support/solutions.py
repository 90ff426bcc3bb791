"""A notebook's own answer, for tests of what the lesson builds on it: the code of a solution
cell (by its nbgrader grade_id) run in a fresh namespace, so a test exercises the very function
the notebook teaches rather than a copy of it."""

from __future__ import annotations

import re

import nbformat

from . import REPO


def solution_namespace(notebook: str, grade_id: str, **names) -> dict:
    """Run the cell `grade_id` of solutions/<notebook>.ipynb with `names` predefined (the
    imports the notebook's setup made) and return what it defined."""
    source = nbformat.read(REPO / "solutions" / f"{notebook}.ipynb", as_version=4)
    cell = next(c for c in source.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    namespace = dict(names)
    exec(compile(cell.source, f"{notebook}:{grade_id}", "exec"), namespace)  # noqa: S102 - our own file
    return namespace


def notebook_bridge():
    """Notebook 10's `in_thread`: a blocking iterable read as an async generator from a thread."""
    import asyncio
    import threading

    return solution_namespace("10_streams_to_the_browser", "in_thread",
                              asyncio=asyncio, threading=threading)["in_thread"]


def solution_function(notebook: str, name: str, **names):
    """The function or class `name` as a solution notebook writes it (with the module-level
    constants of its cell), for the lessons whose definition sits in a cell with other work: only
    the definition and the cell's UPPER_CASE assignments run."""
    import ast

    source = nbformat.read(REPO / "solutions" / f"{notebook}.ipynb", as_version=4)
    for cell in source.cells:
        if cell.cell_type != "code" or not re.search(rf"^(async def|def|class) {name}\b", cell.source, re.M):
            continue
        tree = ast.parse(cell.source)
        definitions = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
        kept = [node for node in tree.body
                if isinstance(node, definitions) and node.name == name
                or isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) and t.id.isupper()
                                                        for t in node.targets)]
        namespace = dict(names)
        exec(compile(ast.Module(body=kept, type_ignores=[]), f"{notebook}:{name}", "exec"),  # noqa: S102
             namespace)
        return namespace[name]
    raise LookupError(f"solutions/{notebook}.ipynb defines no function {name}")
