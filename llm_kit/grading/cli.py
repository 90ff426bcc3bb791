"""`llm-kit grade ...`: instructor and student commands around nbgrader."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from helpers.friendly_errors import KitError
from helpers.settings import OFFLINE_MODEL_ID

from . import course


@contextlib.contextmanager
def offline_backend(port: int):
    """Grading always runs against the offline server: the one on `port`, or one started for
    the grading (and stopped afterwards). Yields its base URL."""
    from ..backend import pick_backend

    with pick_backend(port, say=None) as backend:
        yield backend.settings.base_url


def _release(args) -> int:
    released = course.release()
    for path in released:
        print(f"released {path.relative_to(course.REPO_ROOT)}")
    if args.bundle:
        from .bundle import write_bundle

        target = write_bundle(Path(args.bundle).resolve(), released)
        print(f"learners' bundle: {target} ({len(released)} student notebooks, helpers/, llm_kit/ and "
              "the setup files; no solutions/, hidden tests, tests/ or .env)")
    return 0


def _autograde(args) -> int:
    from .collect import collect

    source = Path(args.submissions).resolve()
    try:
        found = collect(source, course.assignments())
    except FileNotFoundError as exc:
        raise KitError(f"{exc}: expected a folder <student>/<notebook>.ipynb or an LMS zip.") from None
    try:
        return _grade_collected(found, source, args)
    finally:
        if found.workdir is not None:
            found.workdir.cleanup()


def _grade_collected(found, source: Path, args) -> int:
    from .autograde import grade_all

    for skipped in found.skipped:
        print(f"not taken: {skipped.shown}: {skipped.reason}")
    if not found.taken:
        raise KitError(f"No submissions found in {source} (see above why each file was not taken).")
    assignments = sorted({s.assignment for s in found.taken})
    course.generate(assignments)  # the gradebook must know each assignment and its tests
    with offline_backend(args.server_port) as base_url:
        env = course.grading_env(base_url, OFFLINE_MODEL_ID)
        counts = ", ".join(f"{aid}: {sum(s.assignment == aid for s in found.taken)}"
                           for aid in assignments)
        print(f"autograding {len(found.taken)} submissions ({counts}), {args.jobs} at a time",
              flush=True)
        results = grade_all(found.taken, env, args.jobs, out=lambda line: print(line, flush=True))
    failed = [f"{r.student} · {r.assignment}: {r.problem}" for r in results if r.score is None]
    unreadable = [f"{s.shown}: {s.reason}" for s in found.skipped if s.reason.startswith("unreadable")]
    print(f"graded {len(results) - len(failed)} of {len(results)} submissions; "
          f"autograded notebooks: {course.COURSE / 'autograded'}")
    for problem in failed + unreadable:
        print(f"⚠ not graded: {problem}")
    for result in results:
        if result.note:
            print(f"⚠ graded, check: {result.student} · {result.assignment}: {result.note}")
    return 1 if failed or unreadable else 0


def _feedback(args) -> int:
    for aid in course.assignments():
        if any((course.COURSE / "autograded").glob(f"*/{aid}")):
            course.nbgrader(["generate_feedback", aid, "--force"])
    print(f"feedback HTML: {course.COURSE / 'feedback'}/<student>/<assignment>/")
    return 0


def _export(args) -> int:
    target = Path(args.to).resolve()
    course.nbgrader(["export", f"--CsvExportPlugin.to={target}"])
    print(f"grades written to {target}")
    return 0


def _validate(args) -> int:
    from .validate import validate_notebook

    if not args.notebook:
        raise KitError("Name the notebook to check: `make validate NB=notebooks/02_….ipynb`.")
    from ..backend import configured_backend, pick_backend

    configured = None if args.offline else configured_backend()  # no NIM or key: offline
    with pick_backend(args.server_port, configured) as backend:
        env = (dict(os.environ) if backend.configured
               else course.grading_env(backend.settings.base_url, OFFLINE_MODEL_ID))
        return validate_notebook(Path(args.notebook), env=env)


def add_grading_commands(commands) -> None:
    grade = commands.add_parser("grade", help="nbgrader: release, autograde, feedback, grades")
    actions = grade.add_subparsers(dest="action", required=True)
    port = int(os.environ.get("KIT_GRADING_PORT", "8010"))

    release = actions.add_parser("release", help="regenerate notebooks/ from solutions/")
    release.add_argument("--bundle", metavar="ZIP_OR_DIR",
                         help="also write the learners' bundle (student notebooks and setup, no "
                              "solutions): a .zip for an LMS, or a folder such as a git repository")
    release.set_defaults(run=_release)
    auto = actions.add_parser("autograde", help="grade a folder or zip of submissions")
    auto.add_argument("--submissions", default="submitted",
                      help="a folder (<student>/<notebook>.ipynb, LMS names) or an LMS zip")
    auto.add_argument("--jobs", type=int, default=int(os.environ.get("KIT_GRADING_JOBS", "4")),
                      help="submissions graded at the same time (default 4)")
    auto.add_argument("--server-port", type=int, default=port)
    auto.set_defaults(run=_autograde)
    actions.add_parser("feedback", help="HTML feedback per student").set_defaults(run=_feedback)
    export = actions.add_parser("export", help="grades as CSV")
    export.add_argument("--to", default="grades.csv")
    export.set_defaults(run=_export)
    validate = actions.add_parser("validate", help="run a notebook's visible tests; exit 1 on failure")
    validate.add_argument("notebook", nargs="?")
    validate.add_argument("--offline", action="store_true",
                          help="use (or start) the offline server even when a NIM or key is set")
    validate.add_argument("--server-port", type=int, default=port)
    validate.set_defaults(run=_validate)
