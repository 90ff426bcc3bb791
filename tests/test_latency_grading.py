"""nbgrader grades notebook 9's exercise exactly: a right, a wrong and a broken `latency_stats`,
put into the released student copy and autograded against the real offline server."""

from __future__ import annotations

import pytest

from support import autograde_answers, failing_cells

pytestmark = [pytest.mark.server, pytest.mark.timeout(1200)]

AID = "09_latency_and_throughput"
FULL_MARKS = 4

RIGHT = """
    firsts, gaps = [], []
    for stream in streams:
        texted = [t for t, piece in zip(stream.arrivals_s, stream.chunk_texts) if piece]
        if texted:
            firsts.append(texted[0])
            gaps.extend(np.diff(texted))
    return {"ttft_p50_s": np.percentile(firsts, 50), "ttft_p95_s": np.percentile(firsts, 95),
            "itl_mean_s": float(np.mean(gaps)) if gaps else None}
"""
# right TTFTs, but ITL over every chunk: the role and finish chunks count as tokens
WRONG = RIGHT.replace("np.diff(texted)", "np.diff(stream.arrivals_s)")
assert WRONG != RIGHT

# the wrong answer, and a `recorded` of its own that drops the empty chunks, so that the wrong
# ITL would equal the right one if the tests built their streams with it
TAMPERING = (WRONG, """
    def recorded(*chunks):
        kept = [(t, text) for t, text in chunks if text]
        return StreamResult(arrivals_s=[t for t, _ in kept], chunk_texts=[text for _, text in kept])
""")

ANSWERS = {
    # student: (body of latency_stats, expected score, graded cells expected to fail)
    "right": (RIGHT, 4, []),
    "wrong": (WRONG, 2, ["test_latency_stats_itl"]),
    # the tests' tools are defined after the answer cell: rebinding them changes nothing
    "tampering": (TAMPERING, 2, ["test_latency_stats_itl"]),
    "broken": ('return {"ttft_p50_s": streams[0].first_token}', 0,
               ["test_latency_stats_ttft", "test_latency_stats_itl"]),
}


@pytest.fixture(scope="module")
def graded(offline_server, tmp_path_factory):
    """Release notebook 9 into a fresh course, autograde the submissions, export the grades."""
    answers = {student: code for student, (code, _, _) in ANSWERS.items()}
    return autograde_answers(AID, "latency_stats", answers, offline_server.base_url,
                             tmp_path_factory.mktemp("latency-grading"))


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
        assert "role chunk" in failed["test_latency_stats_itl"]
