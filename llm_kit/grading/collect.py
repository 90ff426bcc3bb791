"""Find the submissions in a folder or an LMS download (zip): who submitted which assignment.

Accepted, in this order (the LMS patterns follow the names nbgrader's `zip_collect` documents):

- Blackboard: `<anything>_<student>_attempt_<YYYY-MM-DD-HH-MM-SS>_<file>.ipynb`
- Canvas: `<name>[_LATE]_<user id>_<submission id>_<file>.ipynb` (student: `<name>_<user id>`)
- Moodle: `<Full Name>_<id>_assignsubmission_file_[/]<file>.ipynb` (student: `Full-Name_<id>`)
- a folder per student: `<student>/<file>.ipynb`, `<student>/<assignment>/<file>.ipynb`
- a student id in front of the name: `<student>_<file>.ipynb`, `<student>-<file>.ipynb`

where `<file>` is the assignment id, as downloads and copies rename it: `02_x.ipynb`,
`02_x (1).ipynb`, `02_x-2.ipynb`, `02_x-Copy1.ipynb`, `02_x copy.ipynb`.

Zips are opened wherever they are. One inside a zip or inside a student's folder reads as a folder
of its name (`alice/work.zip` → `alice/work/`). One at the top of a submissions folder (the LMS
download dropped next to other submissions) reads like an LMS zip given directly: its student
folders or LMS names name the students, and when its files name none, the zip's name does
(`alice.zip` → `alice/`).

When a student has several files for one assignment, the newest is taken (the LMS timestamp,
else the file's own time). Every file that is not taken is reported with the reason.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath

import nbformat

COPY_MARK = re.compile(r"(?:\s*\(\d+\)|[-_ ]\d+|[-_ ]?copy\d*|\s+-\s+copy)*", re.IGNORECASE)
LMS_PATTERNS = [  # (name, regex on the path's first part or the file name); see the docstring
    ("blackboard", re.compile(r".*_(?P<student>[^_]+)_attempt_(?P<time>\d{4}(?:-\d\d){5})_(?P<rest>.+)")),
    ("canvas", re.compile(r"(?P<name>[a-z]+)_(?:LATE_)?(?P<uid>\d+)_\d+_(?P<rest>.+)")),
    ("moodle", re.compile(r"(?P<name>[^_/]+)_(?P<uid>\d+)_assignsubmission_[a-z]+_(?P<rest>.*)")),
]
SEPARATORS = " _-."
Unpacked = list[tuple[Path, PurePosixPath, str]]  # (the file, its path inside the zip, its name to show)


@dataclass(frozen=True)
class Submission:
    student: str
    assignment: str
    path: Path  # where the notebook is now (extracted from the zip when it came in one)
    shown: str  # its name in what the instructor gave (zip path or folder path)
    time: datetime


@dataclass(frozen=True)
class Skipped:
    shown: str
    reason: str


@dataclass
class Collected:
    taken: list[Submission]
    skipped: list[Skipped]
    workdir: tempfile.TemporaryDirectory | None = None  # holds what was extracted from zips

    def report(self) -> str:
        return "\n".join(f"  not taken: {s.shown}: {s.reason}" for s in self.skipped)


def collect(source: Path, assignments: list[str]) -> Collected:
    """Every notebook under SOURCE (a folder or a .zip) that names a student and an assignment."""
    if source.is_file() and zipfile.is_zipfile(source):
        workdir = tempfile.TemporaryDirectory(prefix="kit-submissions-")
        files, skipped = _opened(source, Path(workdir.name), source.name)
        found = [(path, name, shown, None) for path, name, shown in files]
    elif source.is_dir():
        found, skipped, workdir = _in_folder(source)
    else:
        raise FileNotFoundError(f"No submissions folder or zip at {source}")
    candidates: dict[tuple[str, str], list[Submission]] = {}
    for path, name, shown, or_else in found:
        identified = identify(name, assignments)
        if isinstance(identified, str) and or_else is not None:
            second = identify(or_else, assignments)
            identified = second if not isinstance(second, str) else identified
        if isinstance(identified, str):
            skipped.append(Skipped(shown, identified))
            continue
        student, assignment, lms_time = identified
        problem = unreadable(path)
        if problem:
            skipped.append(Skipped(shown, f"unreadable notebook ({problem}); not graded"))
            continue
        when = lms_time or datetime.fromtimestamp(path.stat().st_mtime)
        candidates.setdefault((student, assignment), []).append(
            Submission(student, assignment, path, shown, when))
    taken = []
    for (student, assignment), files in sorted(candidates.items()):
        newest = max(files, key=lambda s: (s.time, s.shown))
        taken.append(newest)
        for other in files:
            if other is not newest:
                skipped.append(Skipped(other.shown, f"{student} has a newer file for {assignment}: "
                                                     f"{newest.shown}"))
    return Collected(taken, skipped, workdir)


def _in_folder(source: Path) -> tuple[list, list[Skipped], tempfile.TemporaryDirectory | None]:
    """The files of a submissions folder, each zip in it unpacked (into a temporary folder, which
    is returned): (file, its path to identify, its name to show, another path to try or None)."""
    found, skipped, workdir, number = [], [], None, itertools.count()
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        relative = PurePosixPath(path.relative_to(source).as_posix())
        shown = f"{source}/{relative}"
        if path.suffix.lower() != ".zip" or _metadata(relative):
            found.append((path, relative, shown, None))
            continue
        workdir = workdir or tempfile.TemporaryDirectory(prefix="kit-submissions-")
        files, problems = _opened(path, Path(workdir.name) / str(next(number)), shown)
        skipped += problems
        as_folder = relative.parent / relative.stem  # alice/work.zip → alice/work/
        for inside, name, shown_inside in files:
            if len(relative.parts) == 1:  # at the top: read like an LMS zip given directly
                found.append((inside, name, shown_inside, as_folder / name))
            else:
                found.append((inside, as_folder / name, shown_inside, None))
    return found, skipped, workdir


def _opened(archive: Path, into: Path, shown: str) -> tuple[Unpacked, list[Skipped]]:
    """Unpack a zip into INTO: its files, and what could not be unpacked."""
    into.mkdir(parents=True, exist_ok=True)
    skipped = _extract(archive, into, shown)
    files = []
    for path in sorted(p for p in into.rglob("*") if p.is_file()):
        inside = PurePosixPath(path.relative_to(into).as_posix())
        files.append((path, inside, f"{shown}/{inside}"))
    return files, skipped


def identify(relative: PurePosixPath, assignments: list[str]) -> tuple[str, str, datetime | None] | str:
    """(student, assignment, LMS time) for a file, or why it is not a submission."""
    parts = relative.parts
    name = parts[-1]
    if _metadata(relative):
        return "a checkpoint or macOS metadata file, not a submission"
    if not name.lower().endswith(".ipynb"):
        return "not a notebook (.ipynb)"
    stem = name[: -len(".ipynb")]
    student, lms_time, stem = _lms_name(stem, parts[:-1])
    assignment, prefix = _assignment_in(stem, assignments)
    if assignment is None:
        return (f"no assignment id in the name (expected one of {', '.join(assignments)}, "
                "optionally with a copy number)")
    student = student or (parts[0] if len(parts) > 1 else prefix)
    if not student:
        return "no student: put the file in a folder named after the student, or prefix its name"
    return _safe(student), assignment, lms_time


def _metadata(relative: PurePosixPath) -> bool:
    """A notebook checkpoint or the metadata macOS adds to zips, never a submission."""
    return (any(p in ("__MACOSX", ".ipynb_checkpoints") for p in relative.parts)
            or relative.name.startswith("._"))


def _lms_name(stem: str, folders: tuple[str, ...]) -> tuple[str | None, datetime | None, str]:
    """(student, time, the rest of the file name) by an LMS's naming, from the file or a folder."""
    for kind, pattern in LMS_PATTERNS:
        match = pattern.fullmatch(stem)
        if match:
            return (*_lms_student(kind, match), match.group("rest"))
    for folder in reversed(folders):
        for kind, pattern in LMS_PATTERNS:
            match = pattern.fullmatch(folder)
            if match:
                return (*_lms_student(kind, match), stem)
    return None, None, stem


def _assignment_in(stem: str, assignments: list[str]) -> tuple[str | None, str]:
    """The assignment the stem names, and what stands before it (a student id, or nothing)."""
    lowered = stem.lower()
    for assignment in sorted(assignments, key=len, reverse=True):
        at = lowered.rfind(assignment.lower())
        if at < 0 or not COPY_MARK.fullmatch(stem[at + len(assignment):]):
            continue
        prefix = stem[:at]
        if prefix and prefix[-1] not in SEPARATORS:
            continue
        return assignment, prefix.strip(SEPARATORS)
    return None, ""


def _lms_student(kind: str, match: re.Match) -> tuple[str, datetime | None]:
    if kind == "blackboard":
        return match.group("student"), datetime.strptime(match.group("time"), "%Y-%m-%d-%H-%M-%S")
    return f"{match.group('name')}_{match.group('uid')}", None


def _safe(student: str) -> str:
    """A student id that is a plain folder name (nbgrader keeps one folder per student)."""
    return re.sub(r"[^A-Za-z0-9_.@-]+", "-", student.strip()).strip("-.") or "unknown"


def unreadable(path: Path) -> str | None:
    """Why a file is not a notebook nbgrader can read, or None."""
    try:
        nbformat.read(path, as_version=4)
    except Exception as exc:  # a broken download, a renamed PDF, a truncated file
        detail = str(exc).splitlines()[0][:120] if str(exc) else ""
        return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return None


def _extract(archive: Path, into: Path, shown: str | None = None) -> list[Skipped]:
    """Unpack a zip (and the zips in it) safely; an unsafe or broken member is reported."""
    skipped = []
    pending = [(archive, into, shown or archive.name)]
    while pending:
        zip_path, target, shown = pending.pop()
        try:
            with zipfile.ZipFile(zip_path) as bundle:
                for member in bundle.infolist():
                    if member.is_dir():
                        continue
                    name = PurePosixPath(member.filename)
                    if name.is_absolute() or ".." in name.parts:
                        skipped.append(Skipped(f"{shown}/{member.filename}", "unsafe path in the zip"))
                        continue
                    destination = target / name
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    with bundle.open(member) as src, destination.open("wb") as dst:
                        shutil.copyfileobj(src, dst)
                    stamp = datetime(*member.date_time).timestamp()
                    os.utime(destination, (stamp, stamp))
                    if destination.suffix.lower() == ".zip":
                        inner = destination.with_suffix("")
                        pending.append((destination, inner, f"{shown}/{member.filename}"))
        except zipfile.BadZipFile as exc:
            skipped.append(Skipped(shown, f"not a readable zip ({exc})"))
        if zip_path != archive:
            zip_path.unlink()
    _unwrap(into)
    return skipped


def _unwrap(root: Path) -> None:
    """A zip whose one folder holds the students' folders ("submissions/<student>/...") is read
    from inside that folder (the __MACOSX folder macOS adds beside it does not count)."""
    entries = [entry for entry in root.iterdir() if entry.name != "__MACOSX"]
    if len(entries) == 1 and entries[0].is_dir():
        inner = list(entries[0].iterdir())
        if len(inner) > 1 and all(child.is_dir() for child in inner):
            for child in inner:
                child.rename(root / child.name)
            entries[0].rmdir()
