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
    """Grading always runs against the offline server; start one if none is running."""
    from ..offline import server_status, start_server, stop_server

    started = False
    if not server_status(port).running:
        start_server(port=port, quiet=True)
        started = True
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        if started:
            stop_server(port, quiet=True)


def _release(args) -> int:
    for path in course.release():
        print(f"released {path.relative_to(course.REPO_ROOT)}")
    return 0


def _autograde(args) -> int:
    found = course.collect_submissions(Path(args.submissions).resolve())
    course.release()  # the gradebook must know every assignment and its tests
    with offline_backend(args.server_port) as base_url:
        env = course.grading_env(base_url, OFFLINE_MODEL_ID)
        for aid, students in sorted(found.items()):
            print(f"autograding {aid}: {', '.join(students)}", flush=True)
            done = course.nbgrader(["autograde", aid, "--create", "--force"], env=env, check=False)
            if done.returncode != 0:
                print(done.stdout[-1500:] + done.stderr[-1500:])
                print(f"⚠ nbgrader reported problems for {aid} (see above); other assignments go on.")
    print(f"autograded notebooks: {course.COURSE / 'autograded'}")
    return 0


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
    from ..workshop import configured_backend

    offline = args.offline or configured_backend() is None  # no NIM or key: use the offline model
    with offline_backend(args.server_port) if offline else contextlib.nullcontext() as url:
        env = course.grading_env(url, OFFLINE_MODEL_ID) if url else dict(os.environ)
        return validate_notebook(Path(args.notebook), env=env)


def add_grading_commands(commands) -> None:
    grade = commands.add_parser("grade", help="nbgrader: release, autograde, feedback, grades")
    actions = grade.add_subparsers(dest="action", required=True)
    port = int(os.environ.get("KIT_GRADING_PORT", "8010"))

    actions.add_parser("release", help="regenerate notebooks/ from solutions/").set_defaults(
        run=_release)
    auto = actions.add_parser("autograde", help="grade SUBMISSIONS/<student>/<notebook>.ipynb")
    auto.add_argument("--submissions", default="submitted")
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
