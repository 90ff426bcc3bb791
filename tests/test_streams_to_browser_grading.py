"""nbgrader grades notebook 10's exercise exactly: a right `in_thread`, two wrong ones and a broken one,
put into the released student copy and autograded against the real offline server."""

from __future__ import annotations

import pytest

from support import autograde_answers, failing_cells

pytestmark = [pytest.mark.server, pytest.mark.timeout(1200)]

AID = "10_streams_to_the_browser"
FULL_MARKS = 6

RIGHT = """
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
"""
# a thread and a queue, but nothing stops the thread or closes the producer when the consumer leaves
WRONG = RIGHT.replace("""                if leave.is_set():
                    return
""", "").replace("""        finally:
            close = getattr(blocking, "close", None)
            if close is not None:
                close()
""", "")
assert WRONG != RIGHT and "close()" not in WRONG

ANSWERS = {
    # student: (body of in_thread, expected score, graded cells expected to fail)
    "right": (RIGHT, 6, []),
    "wrong": (WRONG, 4, ["test_in_thread_closes"]),
    # iterates the producer in the event loop itself: the items arrive, the loop is blocked
    "in_the_loop": ("for item in blocking:\n    yield item", 2,
                    ["test_in_thread_loop_free", "test_in_thread_closes"]),
    "broken": ("for item in blokcing:\n    yield item", 0,
               ["test_in_thread_items", "test_in_thread_loop_free", "test_in_thread_closes"]),
}


@pytest.fixture(scope="module")
def graded(offline_server, tmp_path_factory):
    """Release notebook 10 into a fresh course, autograde the submissions, export the grades."""
    answers = {student: code for student, (code, _, _) in ANSWERS.items()}
    return autograde_answers(AID, "in_thread", answers, offline_server.base_url,
                             tmp_path_factory.mktemp("streams-to-browser-grading"))


@pytest.mark.parametrize("student", list(ANSWERS))
def test_exact_score(graded, student):
    _, scores = graded
    assert student in scores, f"{student} was not graded"
    assert float(scores[student]["max_score"]) == FULL_MARKS
    assert float(scores[student]["score"]) == ANSWERS[student][1]


@pytest.mark.parametrize("student", list(ANSWERS))
def test_failing_cells_are_the_behaviour_missed(graded, student):
    root, _ = graded
    failed = failing_cells(root, AID, student)
    assert sorted(failed) == sorted(ANSWERS[student][2])
    if student == "wrong":  # the visible test says what went wrong
        assert "not closed within 3 s" in failed["test_in_thread_closes"]
    if student == "in_the_loop":
        assert "new thread, not in the loop" in failed["test_in_thread_loop_free"]
    if student == "broken":
        assert "blokcing" in failed["test_in_thread_items"]
