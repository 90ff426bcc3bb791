"""What notebooks 4-8 measure, asserted from their run against the real offline server
(tests/test_notebooks.py checks that every notebook runs clean and leaves nothing behind)."""

from __future__ import annotations

import re
import uuid

import pytest

from helpers.ray_processes import looks_like_ray

from notebook_runner import assert_plateau_at_the_slots, number, processes_with_marker, run_notebook

pytestmark = pytest.mark.server

ADVANCED = ["04_streams_as_generators", "06_serving_streams", "08_async_and_concurrency",
            "05_structured_streaming", "07_batching_in_a_service"]


def _source(cell) -> str:
    return cell.source if isinstance(cell.source, str) else "".join(cell.source)


def run(folder: str, name: str, capsys):
    """The session's one run of notebooks/<name> or solutions/<name>, and its process marker."""
    with capsys.disabled():
        executed = run_notebook(folder, name)
    return executed, executed.marker


def tagged_text(executed, tag: str) -> str:
    return executed.tagged_text(tag)


WATCH = re.compile(r"^(?P<label>.+?): (?P<tokens>\d+) tokens generated in \d+\.\d s, "
                   r"(?P<running>\d+) request\(s\) running at the end → (?P<verdict>still generating|idle)$",
                   re.M)


def watches(text: str) -> dict[str, tuple[int, int, str]]:
    """{label: (tokens generated, requests running at the end, verdict)} from watch_server lines."""
    return {m["label"]: (int(m["tokens"]), int(m["running"]), m["verdict"]) for m in WATCH.finditer(text)}


def test_marker_scan_finds_a_child_process_and_looks_like_ray_knows_ray():
    import os
    import subprocess

    marker = f"kit-scan-{uuid.uuid4().hex}"
    child = subprocess.Popen(["sleep", "30"], env=dict(os.environ, KIT_RUN_MARKER=marker))
    try:
        assert [pid for pid, _ in processes_with_marker(marker)] == [child.pid]
    finally:
        child.kill()
        child.wait()
    assert processes_with_marker(marker) == []
    assert looks_like_ray(["/x/ray/core/src/ray/gcs/gcs_server", "--node-ip-address=127.0.0.1"])


def test_generators_notebook_pipes_the_stream_and_stops_early(offline_server, capsys):
    executed, _ = run("solutions", ADVANCED[0], capsys)
    piped = tagged_text(executed, "stream-pipeline")
    body = piped.split("──", 2)[-1].split("[first token")[0].strip()
    assert len(body) > 20 and "[first token" in piped, "the piped stream's text is saved"
    stopped = tagged_text(executed, "stream-pipeline-stop")
    read = number(r"chunks read from the server: (\d+)", stopped)
    assert 1 <= read <= 40, f"islice took 12 words and read {read} chunks: the stages pulled on"
    assert watches(stopped)["after islice, pipeline dropped"][2] == "idle"


def test_structured_streaming_notebook_shows_each_card_before_the_answer_ends(offline_server, capsys):
    executed, _ = run("solutions", ADVANCED[3], capsys)
    cards = tagged_text(executed, "structured-live")
    rendered = int(re.search(r"recommendations rendered: (\d+)", cards).group(1))
    assert rendered >= 2, cards
    assert cards.count("shown after") == rendered and "**#1 · " in cards
    side = tagged_text(executed, "structured-side-by-side")
    first = number(r"first card on screen after (\d+\.\d+) s streamed", side)
    streamed_all = number(r"all cards after (\d+\.\d+) s", side)
    whole = number(r"(\d+\.\d+) s without", side)
    # the same request: its first card came long before its last (side by side, one run)
    assert first < 0.8 * streamed_all, side
    assert first < whole, f"the first card should come before the whole non-streamed answer:\n{side}"
    print(f"\nfirst card {first:.2f} s, all cards {streamed_all:.2f} s, not streamed {whole:.2f} s")
    picks = tagged_text(executed, "structured-top-picks")
    assert picks.count("shown after") == 2 and "cards on the page: 2;" in picks, picks
    tokens, running, verdict = watches(picks)["after the second card"]
    assert verdict == "idle" and running == 0 and tokens <= 5, (
        f"top_picks closed the stream, yet the server made {tokens} tokens more")


def test_generators_notebook_shows_break_keeps_the_server_busy_and_close_stops_it(offline_server, capsys):
    executed, _ = run("solutions", ADVANCED[0], capsys)
    tokens, running, verdict = watches(tagged_text(executed, "stream-break"))[
        "after break, stream still referenced"]
    assert verdict == "still generating" and running >= 1 and tokens >= 5
    stopped = watches(tagged_text(executed, "stream-closed"))
    assert set(stopped) == {"after stream.close()", "after a `with closing(...)` block",
                            "after a stream that ran to its end"}
    for label, (after, running_after, verdict_after) in stopped.items():
        assert verdict_after == "idle" and running_after == 0, label
        assert after <= max(3, tokens / 4), f"{label}: {after} tokens, the open stream made {tokens}"


def test_serving_notebook_streams_chats_and_shuts_down(offline_server, capsys):
    executed, _ = run("solutions", ADVANCED[1], capsys)
    sse = tagged_text(executed, "sse-client")
    seen = re.search(r"SSE chunks received: (\d+), at (\d+) distinct times", sse)
    chunks, distinct = int(seen.group(1)), int(seen.group(2))
    assert chunks >= 2 and distinct >= 2, "the client saw the answer arrive in pieces, at different times"
    hang_up = watches(tagged_text(executed, "sse-hang-up"))
    tokens, running, verdict = hang_up["client connected, not reading"]
    assert verdict == "still generating" and running >= 1 and tokens >= 5
    after, running_after, verdict_after = hang_up["after the client hung up"]
    assert verdict_after == "idle" and running_after == 0 and after <= max(3, tokens / 4)
    noticed = re.search(r"hang-ups the endpoint noticed, each cancelling its astream: (\[.*\])",
                        tagged_text(executed, "sse-hang-up"))
    assert noticed and noticed.group(1).endswith("'Write a long essay about the history of bread.']")
    chat = tagged_text(executed, "ws-chat")
    assert chat.count("[end of answer") == 3
    assert "5 messages in this connection's history" in chat  # the second turn saw the first
    assert re.search(r"server thread alive: False; port \d+ open: False",
                     tagged_text(executed, "server-stop"))


def first_tokens(text: str, label: str) -> list[float]:
    """The seconds after which each client's first token came, as the batching notebook prints them."""
    found = re.search(rf"{label}\s+first tokens after ([\d., ]+) s", text)
    assert found, f"{label!r} not in:\n{text}"
    return [float(s) for s in found.group(1).split(", ")]


def test_batching_notebook_groups_requests_and_serves_them_on_ray(offline_server, capsys):
    executed, _ = run("solutions", "07_batching_in_a_service", capsys)
    clients = tagged_text(executed, "many-clients")
    in_turn, together = (first_tokens(clients, label) for label in
                         ("3 clients, one after another", "3 clients at once"))
    assert in_turn == sorted(in_turn) and len(together) == 3
    assert max(together) < in_turn[2] - in_turn[0], (
        "at once, the last first token came before the third client's turn would even start:\n" + clients)
    batched = tagged_text(executed, "micro-batcher")
    groups = [int(n) for n in re.search(r"groups sent to the model: \[([\d, ]+)\]", batched)
              .group(1).split(", ")]
    assert sum(groups) == 5 and max(groups) <= 3 and len(groups) >= 2, batched
    assert len(re.findall(r"^What is the capital of \w+\? +[1-9]\d* chunks", batched, re.M)) == 5
    assert re.search(r"first answer from Ray Serve ──\n\s*\S", tagged_text(executed, "ray-start"))
    ray_answers = tagged_text(executed, "ray-clients")
    assert len(re.findall(r"^What is the capital of \w+\? +[1-9]\d* chunks", ray_answers, re.M)) == 4
    seen = re.search(r"batch sizes the replica saw: \[([\d, ]+)\]", tagged_text(executed, "ray-handle"))
    sizes = [int(n) for n in seen.group(1).split(", ")]
    assert sum(sizes) == 5 and max(sizes) <= 4, "Ray batched the first answer and the four clients"
    assert re.search(r"Ray processes left: 0; port \d+ open: False", tagged_text(executed, "ray-stop"))
    planned = tagged_text(executed, "plan-vs-batcher")
    assert f"group sizes by your rule: {groups}; sent by the batcher: {groups}" in planned
    calls = [int(n) for n in re.findall(r"window +\d+ ms: +(\d+) calls", planned)]
    assert calls == [20, 10, 3], "a longer window, fewer calls to the model"
    assert re.search(r"server thread alive: False; port \d+ open: False; Ray processes left: 0",
                     tagged_text(executed, "server-stop"))


def test_async_notebook_gathers_sweeps_and_survives_failures(offline_server, capsys):
    executed, _ = run("solutions", ADVANCED[2], capsys)
    streamed = tagged_text(executed, "astream")
    assert streamed.count("|") >= 3 and len(streamed.replace("|", "").strip()) > 3
    board = tagged_text(executed, "gather-board")
    for state in ("California", "Texas", "New York"):
        assert f"── What is the capital of {state}? ──\n" in board
    assert board.count("[first token") == 3
    assert_plateau_at_the_slots(tagged_text(executed, "sweep"))
    outcomes = tagged_text(executed, "return-exceptions")
    assert "✗ server down" in outcomes and "✗ too long" in outcomes  # offline: 2,048-token window
    assert outcomes.count("✔ ") == 2, "the answers that worked are kept"
    retried = tagged_text(executed, "retry")
    assert "[429 answers: 2, calls passed on: 1]" in retried  # two real 429s, then the answer
    assert "✗ gave up after 3 attempts: The server" in retried and "HTTP 429" in retried
    assert "✗ not retried, it would fail again: The prompt is longer" in retried
    assert number(r"⏱ a prompt that is too long: (\d+\.\d+) s", retried) < number(
        r"⏱ two 429s, then an answer: (\d+\.\d+) s", retried), "no backoff for a permanent error"
    assert "calls that reached the server: 2, answered 429 by the proxy: 5" in retried
