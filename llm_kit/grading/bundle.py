"""The learners' bundle: a graded course without a hub.

`llm-kit grade release --bundle learners.zip` (a zip to upload to an LMS) or `--bundle DIR` (a
folder, e.g. a git repository of the learners' own) writes what a learner needs to run `make
workshop`: the student copies nbgrader just generated, `helpers/` and `llm_kit/` (the Makefile's
commands run the kit), the setup files (Makefile, pyproject.toml, environment.yml, the Docker
files, .env.example, the nbgrader settings the Validate button reads) and the README with the
docs it links to. Never `solutions/`, hidden tests, `tests/`, `.env` or the authoring notes.
"""

from __future__ import annotations

import shutil
import time
import zipfile
from pathlib import Path, PurePosixPath

from helpers.friendly_errors import KitError

from .course import REPO_ROOT

FILES = (".dockerignore", ".env.example", ".gitignore", "Dockerfile", "Makefile", "README.md",
         "docker-compose.yml", "environment.yml", "nbgrader_config.py", "pyproject.toml")
PACKAGES = ("helpers", "llm_kit")
DOCS_LEFT_OUT = ("authoring.md",)  # changing the kit: its tests, solutions and hidden-test markers
SKIPPED_NAMES = ("__pycache__", ".ipynb_checkpoints", ".DS_Store")
# what nbgrader's student copy never holds: a solution or hidden tests left in means a wrong release
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
BANNER = ("> **The learners' copy of the kit**, written by `llm-kit grade release --bundle`: the "
          "student notebooks\n> in `notebooks/`, without the instructors' `solutions/`, the hidden "
          "tests, the kit's `tests/`\n> or its authoring notes (links to those do not resolve "
          "here). Start with `make workshop`.\n\n")
TOP_LEVEL = {*FILES, *PACKAGES, "docs", "notebooks"}


def contents(notebooks: list[Path], repo: Path = REPO_ROOT) -> dict[PurePosixPath, bytes]:
    """Every file of the bundle, by its path in the bundle."""
    files: dict[PurePosixPath, bytes] = {}
    for path in notebooks:
        text = path.read_text()
        leaked = [marker for marker in MARKERS if marker in text]
        if leaked:
            raise KitError(f"{path} still holds {', '.join(leaked)}: it is not a student copy; "
                           "run `make release` and hand out what it writes.")
        files[PurePosixPath("notebooks", path.name)] = text.encode()
    for name in FILES:
        files[PurePosixPath(name)] = (repo / name).read_bytes()
    files[PurePosixPath("README.md")] = BANNER.encode() + files[PurePosixPath("README.md")]
    for package in PACKAGES:
        for path in sorted((repo / package).rglob("*")):
            relative = path.relative_to(repo)
            if path.is_file() and not (set(relative.parts) & set(SKIPPED_NAMES)) and path.suffix != ".pyc":
                files[PurePosixPath(relative.as_posix())] = path.read_bytes()
    for path in sorted((repo / "docs").glob("*.md")):
        if path.name not in DOCS_LEFT_OUT:
            files[PurePosixPath("docs", path.name)] = path.read_bytes()
    return files


def write_bundle(target: Path, notebooks: list[Path], repo: Path = REPO_ROOT) -> Path:
    """Write the bundle to TARGET: a .zip (one top folder, named after the zip) or a folder (new,
    empty, or a bundle written before, whose files are replaced; other files in it are kept)."""
    files = contents(notebooks, repo)
    if target.suffix.lower() == ".zip":
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as bundle:
            now = time.localtime()[:6]
            for name, data in sorted(files.items()):
                entry = zipfile.ZipInfo(str(PurePosixPath(target.stem) / name), date_time=now)
                entry.external_attr = 0o644 << 16  # rw-r--r-- when unzipped
                bundle.writestr(entry, data, zipfile.ZIP_DEFLATED)
        partial.replace(target)
        return target
    _may_write_into(target, repo)
    for name in sorted(TOP_LEVEL):
        old = target / name
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old)
        elif old.exists() or old.is_symlink():
            old.unlink()
    for name, data in files.items():
        path = target.joinpath(*name.parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return target


def _may_write_into(target: Path, repo: Path) -> None:
    if target.exists() and not target.is_dir():
        raise KitError(f"{target} is a file: name a folder, or a .zip to write one.")
    if target == repo or repo.is_relative_to(target):
        raise KitError(f"{target} holds the kit itself: name a new folder for the learners' bundle.")
    if not target.exists() or all(entry.name == ".git" for entry in target.iterdir()):
        return
    readme = target / "README.md"
    if not (readme.is_file() and readme.read_bytes().startswith(BANNER.encode()[:40])):
        raise KitError(f"{target} is not empty and holds no learners' bundle written before: name a "
                       "new folder (or a previous bundle, to update it).")
