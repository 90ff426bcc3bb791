"""nbgrader grades every exercise exactly, against the real offline server: right, wrong, broken
and tampering submissions, one table of cases.

Each submission is a released student copy with the case's answer, trimmed to its exercise
(support/grading.py says what is kept), saved under the names LMS and JupyterHub downloads give
them, collected and autograded in one concurrent call the way `llm-kit grade autograde` does.
Scores come from nbgrader's CSV export of the course gradebook; failing cells from the
autograded copies. Whole notebooks are graded in test_grading_cli.py and bench/grading.py.
"""

from __future__ import annotations

import csv
import shutil
import textwrap
import time
from typing import NamedTuple

import nbformat
import pytest
from nbgrader.api import Gradebook

from helpers.settings import OFFLINE_MODEL_ID
from llm_kit.grading import course
from llm_kit.grading.autograde import db_url, grade_all
from llm_kit.grading.collect import collect

from support.grading import FAQ_BY_BATCH, FAQ_BY_LOOP, exercise_only, failing_cells

pytestmark = pytest.mark.timeout(1800)

JOBS = 4
CELL_TIMEOUT_S = 90  # the infinite loop's cell is stopped after this


def code(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


class Case(NamedTuple):
    aid: str  # the assignment
    answer_id: str  # grade_id of its answer cell
    student: str
    answer: str  # what replaces the stub: a function's body, or the whole answer cell
    score: float
    failing: dict[str, str]  # graded cells expected to fail: grade_id -> a fragment of the error ("": any)
    after: str = ""  # code at the end of the answer cell, outside the function


FAQ, A04, A05, A06, A07, A08, A09, A10 = (
    "02_streaming_and_batching", "04_streams_as_generators", "05_structured_streaming",
    "06_async_and_concurrency", "07_serving_streams", "08_batching_in_a_service",
    "09_latency_and_throughput", "10_streams_to_the_browser")
FULL_MARKS = {FAQ: 10, A04: 4, A05: 4, A06: 4, A07: 4, A08: 4, A09: 4, A10: 6}

# ── 02: an FAQ with one batch call ────────────────────────────────────────────────────────

LOOP = FAQ_BY_LOOP
OWN_MODEL = ("ChatNVIDIA(base_url=settings.base_url, model=settings.model, temperature=0, "
             "max_completion_tokens=settings.max_answer_tokens)")
FAQ_ALL = {"test_faq_answers": "", "test_faq_answer_type": "", "test_faq_document": "",
           "test_faq_used_batch": ""}
# the names LMS and JupyterHub downloads give a notebook (the rest are saved as <aid>.ipynb)
DOWNLOADED_AS = {(FAQ, "own_model"): f"{FAQ} (1).ipynb", (FAQ, "chain"): f"{FAQ}-2.ipynb",
                 (FAQ, "wrapped"): f"{FAQ}-Copy1.ipynb"}

# ── 07 and 08: a right answer, and the same with its key lines changed ──────────────────────

SSE_RIGHT = code("""
    start, pieces, ttft, name = clock(), [], None, ""
    for line in lines:
        if not line and name in ("done", "error"):
            break
        if not line:
            name = ""
        elif line.startswith("event:"):
            name = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and not name:
            delta = json.loads(line[5:]).get("delta", "")
            if delta:
                ttft = clock() - start if ttft is None else ttft
                pieces.append(delta)
    return {"text": "".join(pieces), "chunks": len(pieces), "ttft_s": ttft}
""")
SSE_STOP = SSE_RIGHT.splitlines(keepends=True)[2:4]  # the lines that stop at the end of `done` or `error`
assert "done" in SSE_STOP[0] and "error" in SSE_STOP[0] and "break" in SSE_STOP[1]
# stops at `done` only: reads on after `error` (the answer's other last event)
SSE_DONE_ONLY = SSE_RIGHT.replace('name in ("done", "error")', 'name == "done"')
assert SSE_DONE_ONLY != SSE_RIGHT

PLAN_RIGHT = code("""
    groups, opened_at = [], None
    for i, arrived in enumerate(arrivals_s):
        if groups and len(groups[-1]) < max_batch_size and arrived - opened_at < wait_s:
            groups[-1].append(i)
        else:
            groups.append([i])
            opened_at = arrived
    return groups
""")
PLAN_OPENS = "        opened_at = arrived"  # in the else: a new group opens the window
assert PLAN_RIGHT.count(PLAN_OPENS + "\n") == 1

# ── 09: latency statistics ──────────────────────────────────────────────────────────────────

LATENCY_RIGHT = code("""
    firsts, gaps = [], []
    for stream in streams:
        texted = [t for t, piece in zip(stream.arrivals_s, stream.chunk_texts) if piece]
        if texted:
            firsts.append(texted[0])
            gaps.extend(np.diff(texted))
    return {"ttft_p50_s": np.percentile(firsts, 50), "ttft_p95_s": np.percentile(firsts, 95),
            "itl_mean_s": float(np.mean(gaps)) if gaps else None}
""")
# right TTFTs, but ITL over every chunk: the role and finish chunks count as tokens
LATENCY_WRONG = LATENCY_RIGHT.replace("np.diff(texted)", "np.diff(stream.arrivals_s)")
assert LATENCY_WRONG != LATENCY_RIGHT
# a `recorded` of the answer's own that drops the empty chunks, so that the wrong ITL would equal
# the right one if the tests built their streams with it
OWN_RECORDED = code("""
    def recorded(*chunks):
        kept = [(t, text) for t, text in chunks if text]
        return StreamResult(arrivals_s=[t for t, _ in kept], chunk_texts=[text for _, text in kept])
""")

# ── 10: the bridge ──────────────────────────────────────────────────────────────────────────

BRIDGE_RIGHT = code("""
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()
    leave = threading.Event()
    done = object()

    def pump():
        try:
            for item in blocking:
                if leave.is_set():
                    return
                loop.call_soon_threadsafe(queue.put_nowait, item)
            loop.call_soon_threadsafe(queue.put_nowait, done)
        except Exception as exc:
            loop.call_soon_threadsafe(queue.put_nowait, exc)
        finally:
            close = getattr(blocking, "close", None)
            if close is not None:
                close()

    threading.Thread(target=pump, daemon=True).start()
    try:
        while (item := await queue.get()) is not done:
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        leave.set()
""")
# a thread and a queue, but nothing stops the thread or closes the producer when the consumer leaves
BRIDGE_WRONG = BRIDGE_RIGHT.replace("""            if leave.is_set():
                return
""", "").replace("""    finally:
        close = getattr(blocking, "close", None)
        if close is not None:
            close()
""", "")
assert BRIDGE_WRONG != BRIDGE_RIGHT and "close()" not in BRIDGE_WRONG

CASES = [
    # 02: every way of sending the ten questions through a chat model with batch scores full marks
    Case(FAQ, "faq_answers", "correct", FAQ_BY_BATCH, 10, {}),
    Case(FAQ, "faq_answers", "own_model", f"llm = {OWN_MODEL}\nfaq_answers = llm.batch(faq_questions)", 10,
         {}),
    Case(FAQ, "faq_answers", "chain", code(f"""
        from langchain_core.prompts import ChatPromptTemplate

        prompt = ChatPromptTemplate.from_messages([("system", "Answer briefly."), ("human", "{{q}}")])
        chain = prompt | {OWN_MODEL}.with_config(run_name="faq")
        faq_answers = chain.batch([{{"q": q}} for q in faq_questions])"""), 10, {}),
    Case(FAQ, "faq_answers", "wrapped", code("""
        from langchain_core.runnables import RunnableLambda

        faq_answers = await RunnableLambda(lambda q: llm.invoke(q)).abatch(faq_questions)"""), 10, {}),
    Case(FAQ, "faq_answers", "invoke_loop", LOOP, 7, {"test_faq_used_batch": ""}),
    # a loop that rebinds what the visible test imports: the hidden tests are not fooled
    Case(FAQ, "faq_answers", "loop_rebinds_helper", LOOP + "\n" + code("""
        import helpers.grading.call_log as grading_helpers

        grading_helpers.max_overlap = lambda calls: 10"""), 7, {"test_faq_used_batch": ""}),
    # ... nor by editing the grader's own copy it can ask for
    Case(FAQ, "faq_answers", "loop_edits_grader", LOOP + "\n" + code("""
        import sys

        found = []
        sys.audit("llm_kit.grading", found)
        shared = found[0].max_overlap
        found[0].max_overlap = lambda calls: 10
        shared.__code__ = (lambda calls: 10).__code__  # refused: PermissionError"""), 7,
         {"test_faq_used_batch": ""}),
    Case(FAQ, "faq_answers", "plain_strings", "faq_answers = [m.content for m in llm.batch(faq_questions)]",
         8, {"test_faq_answer_type": ""}),
    Case(FAQ, "faq_answers", "raises", "faq_answers = llm.batch(faq_question)  # typo: NameError", 0,
         FAQ_ALL),
    Case(FAQ, "faq_answers", "infinite_loop", "while True:\n    pass", 0, FAQ_ALL),
    # the answer kills the kernel: still graded, every test after it fails as not run
    Case(FAQ, "faq_answers", "kills_kernel", "import os\n\nos._exit(1)", 0,
         dict.fromkeys(FAQ_ALL, "the kernel died")),
    Case(FAQ, "faq_answers", "redefines_document", "faq_answers = llm.batch(faq_questions)\n\n"
         "def create_faq_document(questions, answers):\n    return 'FAQ'", 8, {"test_faq_document": ""}),
    Case(FAQ, "faq_answers", "deletes_questions",
         "faq_answers = llm.batch(faq_questions)\ndel faq_questions", 8, {"test_faq_document": ""}),
    # 04
    Case(A04, "lines_with", "right", code("""
        wanted = keyword.lower()
        pending = ""
        for chunk in chunks:
            pending += chunk_text(chunk)
            *complete, pending = pending.split("\\n")
            yield from (line for line in complete if wanted in line.lower())
        if wanted in pending.lower():
            yield pending
    """), 4, {}),
    # right lines, but reads the whole stream before the first one: not lazy
    Case(A04, "lines_with", "wrong", code("""
        text = "".join(chunk_text(chunk) for chunk in chunks)
        return [line for line in text.split("\\n") if keyword.lower() in line.lower()]
    """), 2, {"test_lines_with_is_lazy": ""}),
    Case(A04, "lines_with", "broken", 'raise RuntimeError("I will finish this later")', 0,
         {"test_lines_with_content": "", "test_lines_with_is_lazy": ""}),
    # 05
    Case(A05, "top_picks", "right", code("""
        shown = set()
        with closing(stream_items(chunks, model, key=key, on_skip=None)) as items:
            for item in items:
                if item.product_id not in shown:
                    shown.add(item.product_id)
                    yield item
                    if len(shown) == n:
                        return
    """), 4, {}),
    # right cards, but waits for the whole answer before the first one, and never closes it
    Case(A05, "top_picks", "wrong", code("""
        shown, cards = set(), []
        for item in stream_items(chunks, model, key=key, on_skip=None):
            if item.product_id not in shown and len(cards) < n:
                shown.add(item.product_id)
                cards.append(item)
        return cards
    """), 2, {"test_top_picks_stops": ""}),
    Case(A05, "top_picks", "broken", 'return json.loads("".join(chunks))[key][:n]', 0,
         {"test_top_picks_content": "", "test_top_picks_stops": ""}),
    # 07
    Case(A07, "measure_sse", "right", SSE_RIGHT, 4, {}),
    # right numbers, but never stops at the done event: hangs on an open connection
    Case(A07, "measure_sse", "wrong", SSE_RIGHT.replace("".join(SSE_STOP), ""), 2,
         {"test_measure_sse_stops_at_done": ""}),
    Case(A07, "measure_sse", "done_only", SSE_DONE_ONLY, 2,
         {"test_measure_sse_stops_at_done": "after the `error` event"}),
    Case(A07, "measure_sse", "broken", 'return {"text": lines.decode()}', 0,
         {"test_measure_sse_text_and_ttft": "", "test_measure_sse_stops_at_done": ""}),
    # 08
    Case(A08, "plan_batches", "right", PLAN_RIGHT, 4, {}),
    # right sizes, but the window slides: it restarts at every arrival, not at the group's first
    Case(A08, "plan_batches", "wrong", PLAN_RIGHT.replace(PLAN_OPENS, PLAN_OPENS[4:]), 2,
         {"test_plan_batches_window": ""}),
    # groups of arrival times, not of request indices, and no window at all
    Case(A08, "plan_batches", "broken",
         "return [arrivals_s[i:i + max_batch_size] for i in range(0, len(arrivals_s), max_batch_size)]", 0,
         {"test_plan_batches_window": "", "test_plan_batches_full": ""}),
    # 06
    Case(A06, "answer_all", "right", code("""
        limit_gate = asyncio.Semaphore(limit)

        async def ask(prompt):
            async with limit_gate:
                return (await llm.ainvoke(prompt)).content

        return await asyncio.gather(*map(ask, prompts), return_exceptions=True)
    """), 4, {}),
    # keeps every answer, in order, but one request at a time
    Case(A06, "answer_all", "wrong", code("""
        results = []
        for prompt in prompts:
            try:
                results.append((await llm.ainvoke(prompt)).content)
            except Exception as exc:
                results.append(exc)
        return results
    """), 2, {"test_answer_all_concurrency_limit": ""}),
    # groups of `limit`, each awaited whole: a free place waits for the slowest of its group
    Case(A06, "answer_all", "chunks", code("""
        results = []
        for start in range(0, len(prompts), limit):
            group = [llm.ainvoke(prompt) for prompt in prompts[start:start + limit]]
            for reply in await asyncio.gather(*group, return_exceptions=True):
                results.append(reply if isinstance(reply, Exception) else reply.content)
        return results
    """), 2, {"test_answer_all_concurrency_limit": "a semaphore frees a place"}),
    Case(A06, "answer_all", "broken", 'raise NotImplementedError("no time left")', 0,
         {"test_answer_all_order_and_failures": "", "test_answer_all_concurrency_limit": ""}),
    # 09 (the visible test says what went wrong)
    Case(A09, "latency_stats", "right", LATENCY_RIGHT, 4, {}),
    Case(A09, "latency_stats", "wrong", LATENCY_WRONG, 2,
         {"test_latency_stats_itl": "role chunk"}),
    # the tests' tools are defined after the answer cell: rebinding them changes nothing
    Case(A09, "latency_stats", "tampering", LATENCY_WRONG, 2,
         {"test_latency_stats_itl": ""}, after=OWN_RECORDED),
    Case(A09, "latency_stats", "broken", 'return {"ttft_p50_s": streams[0].first_token}',
         0, {"test_latency_stats_ttft": "", "test_latency_stats_itl": ""}),
    # 10
    Case(A10, "in_thread", "right", BRIDGE_RIGHT, 6, {}),
    Case(A10, "in_thread", "wrong", BRIDGE_WRONG, 4,
         {"test_in_thread_closes": "not closed within 3 s"}),
    # iterates the producer in the event loop itself: the items arrive, the loop is blocked
    Case(A10, "in_thread", "in_the_loop", "for item in blocking:\n    yield item", 2,
         {"test_in_thread_loop_free": "new thread, not in the loop", "test_in_thread_closes": ""}),
    Case(A10, "in_thread", "broken", "for item in blokcing:\n    yield item", 0,
         {"test_in_thread_items": "blokcing", "test_in_thread_loop_free": "", "test_in_thread_closes": ""}),
]
IDS = [f"{case.aid[:2]}-{case.student}" for case in CASES]
ASSIGNMENTS = sorted({case.aid for case in CASES})


@pytest.fixture(scope="module")
def graded(offline_server, tmp_path_factory):
    """Release the assignments into a fresh course, build every case's submission from the
    released student copy, autograde them all in one concurrent call, write the FAQ's feedback
    and export the grades: (course root, the submissions' CSV rows, progress lines)."""
    tmp = tmp_path_factory.mktemp("exercise-grading")
    solutions, root, released, downloads = (tmp / name for name in
                                            ("solutions", "course", "released", "downloads"))
    solutions.mkdir()
    for aid in ASSIGNMENTS:
        shutil.copy2(course.SOLUTIONS / f"{aid}.ipynb", solutions)
    course.release(course=root, solutions=solutions, notebooks=released)
    for case in CASES:
        folder = downloads / case.student
        folder.mkdir(parents=True, exist_ok=True)
        name = DOWNLOADED_AS.get((case.aid, case.student), f"{case.aid}.ipynb")
        nbformat.write(exercise_only(released / f"{case.aid}.ipynb", case.answer_id, case.answer, case.after),
                       folder / name)
    found = collect(downloads, ASSIGNMENTS)
    assert len(found.taken) == len(CASES) and not found.skipped, found.report()
    env = course.grading_env(offline_server.base_url, OFFLINE_MODEL_ID)
    env["KIT_CELL_TIMEOUT_S"] = str(CELL_TIMEOUT_S)
    lines: list[str] = []
    started = time.perf_counter()
    results = grade_all(found.taken, env, jobs=JOBS, course=root, out=lines.append)
    print("\n".join(lines))
    print(f"autograded {len(results)} submissions in {time.perf_counter() - started:.0f} s, {JOBS} at a time")
    course.nbgrader(["generate_feedback", FAQ, "--force"], course=root)
    grades_csv = root / "grades.csv"
    course.nbgrader(["export", f"--CsvExportPlugin.to={grades_csv}"], course=root)
    with Gradebook(db_url(root), course.COURSE_ID) as gradebook:
        submitted = {(s.assignment.name, s.student.id) for a in gradebook.assignments for s in a.submissions}
    with grades_csv.open() as handle:  # a row per student and assignment, submitted or not
        rows = [row for row in csv.DictReader(handle) if (row["assignment"], row["student_id"]) in submitted]
    return root, rows, lines


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_exact_score(graded, case):
    _, rows, _ = graded
    mine = [row for row in rows if (row["assignment"], row["student_id"]) == (case.aid, case.student)]
    assert len(mine) == 1, f"{case.student} was not graded for {case.aid} (the others must still be)"
    assert float(mine[0]["max_score"]) == FULL_MARKS[case.aid]
    assert float(mine[0]["score"]) == case.score


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_failing_cells_are_the_behaviour_missed(graded, case):
    root, _, _ = graded
    failed = failing_cells(root / "autograded" / case.student / case.aid / f"{case.aid}.ipynb")
    assert sorted(failed) == sorted(case.failing), failed
    for cell, fragment in case.failing.items():
        assert fragment in failed[cell], failed[cell]


def test_gradebook_holds_every_submission_once_with_a_progress_line_each(graded):
    _, rows, lines = graded
    assert sorted((row["assignment"], row["student_id"]) for row in rows) == sorted(
        (case.aid, case.student) for case in CASES)
    assert len(lines) == len(CASES)
    for case in CASES:
        line = next(line for line in lines if f"] {case.student} · {case.aid} · " in line)
        assert f" · {case.aid} · {case.score:g}/{FULL_MARKS[case.aid]} · " in line, line
    assert "ETA" in lines[0] and "all done" in lines[-1]


def test_a_dead_kernel_reads_as_one_sentence_in_the_progress_line(graded):
    _, _, lines = graded
    line = next(line for line in lines if "] kills_kernel · " in line)
    assert f" · {FAQ} · 0/10 · the kernel died in code cell " in line, line
    assert "(faq_answers), likely crashed or out of memory (e.g. os._exit" in line, line
    assert "Traceback" not in line and "DeadKernelError" not in line and " / " not in line, line


def test_feedback_names_what_the_tampering_changed(graded):
    root, _, _ = graded
    html = (root / "feedback" / "loop_rebinds_helper" / FAQ / f"{FAQ}.html").read_text()
    assert "helpers.grading.call_log.max_overlap" in html
    assert "use one batch call, not a loop of invoke" in html


def test_feedback_is_readable_for_a_raising_answer(graded):
    root, _, _ = graded
    html = (root / "feedback" / "raises" / FAQ / f"{FAQ}.html").read_text()
    assert "NameError" in html and "faq_question" in html


def test_timed_out_cell_is_reported(graded):
    root, _, _ = graded
    notebook = nbformat.read(root / "autograded" / "infinite_loop" / FAQ / f"{FAQ}.ipynb", 4)
    errors = [o for c in notebook.cells if c.cell_type == "code"
              for o in c.get("outputs", []) if o.output_type == "error"]
    assert any("Timeout" in o.ename or "Interrupt" in o.ename for o in errors), [o.ename for o in errors]
