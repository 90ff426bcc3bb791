"""The learners' bundle (`llm-kit grade release --bundle`): the student notebooks and what `make
workshop` needs, as a zip and as a folder, without solutions, hidden tests, tests or secrets; and
the kit runs from the bundle's own folder. Built from the committed student copies, which
test_release_sync.py checks are what the release writes."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from helpers.friendly_errors import KitError
from llm_kit.grading.bundle import FILES, write_bundle

from support import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
NEVER = ("solutions", "tests", "bench", ".env", ".venv", "course", "submitted", "artifacts", ".git",
         "docs/authoring.md")
HIDDEN = re.compile(r"### BEGIN (SOLUTION|HIDDEN TESTS)\n(.*?)### END \1", re.S)


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> tuple[Path, Path]:
    """(the zip, the folder)"""
    root = tmp_path_factory.mktemp("bundle")
    return write_bundle(root / "learners.zip", NOTEBOOKS), write_bundle(root / "learners", NOTEBOOKS)


def test_the_zip_and_the_folder_hold_the_same_files(bundle):
    zipped, folder = bundle
    with zipfile.ZipFile(zipped) as archive:
        names = archive.namelist()
        assert archive.read("learners/README.md") == (folder / "README.md").read_bytes()
    assert all(name.startswith("learners/") for name in names)  # one folder when unzipped
    assert {name.removeprefix("learners/") for name in names} == _files(folder)


def test_it_holds_the_student_notebooks_and_what_make_workshop_needs(bundle):
    _, folder = bundle
    files = _files(folder)
    assert {p.name for p in (folder / "notebooks").iterdir()} == {p.name for p in NOTEBOOKS}
    assert set(FILES) <= files and {"helpers/__init__.py", "helpers/grading/call_log.py",
                                    "llm_kit/cli.py", "llm_kit/offline/engine.py"} <= files
    assert {f"helpers/data/{p.name}" for p in (REPO / "helpers" / "data").iterdir()} <= files
    assert {f"docs/{p.name}" for p in (REPO / "docs").glob("*.md")} - files == {"docs/authoring.md"}
    readme = re.search(r'^readme = "(.+)"$', (folder / "pyproject.toml").read_text(), re.M)
    assert readme and readme[1] in files  # `pip install -e .` (make setup) reads it
    assert (folder / "README.md").read_text().startswith("> **The learners' copy of the kit**")
    assert (folder / ".env.example").read_text() == (REPO / ".env.example").read_text()


def test_it_holds_no_solution_hidden_test_or_secret(bundle):
    _, folder = bundle
    files = _files(folder)
    for never in NEVER:
        assert not any(f == never or f.startswith(never + "/") for f in files), never
    assert not [f for f in files if "__pycache__" in f or f.endswith(".pyc") or "checkpoint" in f]
    for name in files:  # nbgrader's markers; the notebooks not even the words
        text = (folder / name).read_text(errors="replace")
        assert "### BEGIN HIDDEN TESTS" not in text and "### BEGIN SOLUTION" not in text, name
        if name.endswith(".ipynb"):
            assert "HIDDEN TESTS" not in text and "BEGIN SOLUTION" not in text, name
    hidden = [block.strip() for path in sorted((REPO / "solutions").glob("*.ipynb"))
              for cell in json.loads(path.read_text())["cells"]
              for _, block in HIDDEN.findall("".join(cell["source"]))]
    assert len(hidden) >= 10, "every exercise has a solution and hidden tests"
    sources = "\n".join("".join(cell["source"]) for path in (folder / "notebooks").glob("*.ipynb")
                        for cell in json.loads(path.read_text())["cells"])
    assert [block for block in hidden if block and block in sources] == []


def test_the_kit_runs_from_the_bundles_own_folder(bundle):
    _, folder = bundle
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NIM_", "NVIDIA_", "KIT_"))}
    env["PYTHONPATH"] = str(folder)
    done = subprocess.run([sys.executable, "-c", "import helpers, llm_kit.workshop as w; "
                           "print(helpers.__file__); print(w.NOTEBOOKS)"],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(folder / "helpers" / "__init__.py"), str(folder / "notebooks")]
    done = subprocess.run([sys.executable, "-m", "llm_kit", "workshop", "--dry-run", "--server-port", "9"],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"--ServerApp.root_dir={folder / 'notebooks'}" in done.stdout
    if shutil.which("make"):  # what `make workshop` would run, in order, from the bundle
        done = subprocess.run(["make", "-n", "workshop", "VENV=.venv-learner"], cwd=folder, env=env,
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        assert "pip install" in done.stdout and "llm-kit workshop" in done.stdout


def test_a_folder_is_updated_in_place_and_other_folders_are_refused(tmp_path):
    learners = tmp_path / "learners"
    (learners / ".git").mkdir(parents=True)  # a learners' git repository, empty so far
    write_bundle(learners, NOTEBOOKS[:1])
    (learners / "LICENSE").write_text("theirs")
    write_bundle(learners, NOTEBOOKS[1:3])  # the next release: replaced, the repository kept
    assert {p.name for p in (learners / "notebooks").iterdir()} == {p.name for p in NOTEBOOKS[1:3]}
    assert (learners / ".git").is_dir() and (learners / "LICENSE").read_text() == "theirs"

    other = tmp_path / "project"
    (other / "docs").mkdir(parents=True)
    with pytest.raises(KitError, match="not empty and holds no learners' bundle"):
        write_bundle(other, NOTEBOOKS)
    assert (other / "docs").is_dir()
    with pytest.raises(KitError, match="holds the kit itself"):
        write_bundle(REPO, NOTEBOOKS)

    instructor_copy = tmp_path / "02_streaming_and_batching.ipynb"
    instructor_copy.write_text((REPO / "solutions" / instructor_copy.name).read_text())
    with pytest.raises(KitError, match="not a student copy"):
        write_bundle(tmp_path / "leaky.zip", [instructor_copy])
    assert not (tmp_path / "leaky.zip").exists()


def test_release_writes_the_bundle_after_the_student_copies(tmp_path, monkeypatch, capsys):
    from llm_kit.cli import main
    from llm_kit.grading import course

    monkeypatch.setattr(course, "release", lambda: NOTEBOOKS)  # what it wrote (tested in test_release_sync)
    assert main(["grade", "release", "--bundle", str(tmp_path / "learners.zip")]) == 0
    out = capsys.readouterr().out
    assert f"released notebooks/{NOTEBOOKS[0].name}" in out
    assert f"learners' bundle: {tmp_path / 'learners.zip'} ({len(NOTEBOOKS)} student notebooks" in out
    with zipfile.ZipFile(tmp_path / "learners.zip") as archive:
        assert f"learners/notebooks/{NOTEBOOKS[-1].name}" in archive.namelist()
