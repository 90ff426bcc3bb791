"""How fast does a class's FAQ exercise (notebook 02) autograde, concurrently vs one at a time?

    python bench/grading.py [--submissions 30] [--serial 5] [--jobs 4] [--exercise-only]

Builds --submissions student copies of notebook 02, whole (a learner submits the whole notebook)
unless --exercise-only, with three kinds of answer in turn (one batch call: 10 points; a loop of
invoke: 7; plain strings: 8). Grades them all the way `llm-kit grade autograde` does, --jobs at a
time, against a fresh offline server; then grades the first --serial of them one at a time in a
fresh course (the serial figure comes from that sample) and compares their scores.

Last line: submissions=<n> seconds_per_submission=<s> serial_seconds_per_submission=<s>
identical_scores=<bool>
  seconds_per_submission        = concurrent wall time / submissions (lower is better)
  serial_seconds_per_submission = serial wall time / the serial sample's size
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

AID = "02_streaming_and_batching"
ANSWERS = [
    "faq_answers = llm.batch(faq_questions)",
    "faq_answers = [llm.invoke(q) for q in faq_questions]",
    "faq_answers = [m.content for m in llm.batch(faq_questions)]",
]


def submission(student_copy: Path, answer: str, exercise_only: bool) -> nbformat.NotebookNode:
    notebook = nbformat.read(student_copy, as_version=4)
    cell = next(c for c in notebook.cells
                if c.metadata.get("nbgrader", {}).get("grade_id") == "faq_answers")
    cell.source = answer
    if exercise_only:
        cells = notebook.cells
        setup = next(i for i, c in enumerate(cells) if "ChatNVIDIA(" in c.source)
        exercise = next(i for i, c in enumerate(cells) if c.source.startswith("---\n## Exercise"))
        notebook.cells = cells[: setup + 1] + cells[exercise:]
    return notebook


def grade(submissions, env: dict, jobs: int, root: Path) -> tuple[dict[str, float | None], float]:
    from llm_kit.grading import course
    from llm_kit.grading.autograde import grade_all

    course.generate([AID], course=root)
    started = time.perf_counter()
    results = grade_all(submissions, env, jobs, course=root, out=lambda line: print(" ", line,
                                                                                   flush=True))
    return {r.student: r.score for r in results}, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=30)
    parser.add_argument("--serial", type=int, default=5, help="how many to grade one at a time")
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("KIT_GRADING_JOBS", "4")))
    parser.add_argument("--exercise-only", action="store_true",
                        help="submit only the setup and exercise cells, not the lessons")
    args = parser.parse_args()

    from helpers.ports import free_port
    from helpers.settings import OFFLINE_MODEL_ID
    from llm_kit.grading import course
    from llm_kit.grading.collect import collect
    from llm_kit.offline import start_server, stop_server

    port = free_port()
    start_server(port=port, quiet=True)
    try:
        with tempfile.TemporaryDirectory(prefix="kit-bench-grading-") as tmp:
            tmp = Path(tmp)
            for i in range(args.submissions):
                folder = tmp / "downloads" / f"student{i:02d}"
                folder.mkdir(parents=True)
                nbformat.write(submission(course.NOTEBOOKS / f"{AID}.ipynb", ANSWERS[i % len(ANSWERS)],
                                          args.exercise_only), folder / f"{AID}.ipynb")
            taken = collect(tmp / "downloads", [AID]).taken
            env = course.grading_env(f"http://127.0.0.1:{port}/v1", OFFLINE_MODEL_ID)
            print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
            print(f"{len(taken)} {'exercise-only' if args.exercise_only else 'whole-notebook'} "
                  f"submissions, {args.jobs} at a time:")
            concurrent, concurrent_s = grade(taken, env, args.jobs, tmp / "concurrent")
            sample = taken[: args.serial]
            print(f"the first {len(sample)} again, one at a time:")
            serial, serial_s = grade(sample, env, 1, tmp / "serial")
            print(f"load average after: {os.getloadavg()[0]:.1f}")
    finally:
        stop_server(port, quiet=True)
    identical = all(serial[s.student] == concurrent[s.student] is not None for s in sample)
    print(f"concurrent: {concurrent_s:.0f} s for {len(taken)}; serial: {serial_s:.0f} s for "
          f"{len(sample)} (the serial figure is measured on that sample)")
    print(f"submissions={len(taken)} seconds_per_submission={concurrent_s / len(taken):.1f} "
          f"serial_seconds_per_submission={serial_s / len(sample):.1f} identical_scores={identical}")


if __name__ == "__main__":
    main()
