"""What notebooks 4-8 measure, asserted from their run against the real offline server
(tests/test_notebooks.py checks that every notebook runs clean and leaves nothing behind)."""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import uuid

import nbformat

from helpers.ray_processes import looks_like_ray

from notebook_runner import (
    assert_nothing_left_behind,
    execute,
    number,
    processes_with_marker,
    run_notebook,
)
from support import REPO

ADVANCED = ["04_streams_as_generators", "07_serving_streams", "06_async_and_concurrency",
            "05_structured_streaming", "08_batching_in_a_service"]


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


CHILD = "print('ready', flush=True); import time; time.sleep(60)"


def test_marker_scan_finds_a_child_process_and_looks_like_ray_knows_ray():
    marker = f"kit-scan-{uuid.uuid4().hex}"
    # The child says "ready" once it runs its own code: by then its exec is over, and
    # /proc/<pid>/environ shows the environment it was given (mid-exec it may show none).
    child = subprocess.Popen([sys.executable, "-c", CHILD], env=dict(os.environ, KIT_RUN_MARKER=marker),
                             stdout=subprocess.PIPE, text=True)
    try:
        said, _, _ = select.select([child.stdout], [], [], 60)
        assert said and child.stdout.readline() == "ready\n", "the child did not start within 60 s"
        assert [pid for pid, _ in processes_with_marker(marker)] == [child.pid]
    finally:
        child.kill()
        child.wait(timeout=30)
        child.stdout.close()
    assert processes_with_marker(marker) == []  # reaped by wait(): gone from /proc
    assert looks_like_ray(["/x/ray/core/src/ray/gcs/gcs_server", "--node-ip-address=127.0.0.1"])


def test_generators_notebook_pipes_the_stream(offline_server, capsys):
    executed, _ = run("solutions", ADVANCED[0], capsys)
    piped = tagged_text(executed, "stream-pipeline")
    body = piped.split("──", 2)[-1].split("[first token")[0].strip()
    assert len(body) > 20 and "[first token" in piped, "the piped stream's text is saved"


def test_structured_streaming_notebook_shows_each_card_before_the_answer_ends(offline_server, capsys):
    executed, _ = run("solutions", ADVANCED[3], capsys)
    whole = tagged_text(executed, "structured-whole")
    assert "✔ the answer follows the schema: 3 recommendations" in whole, whole
    assert "cache" not in whole, "prefix caching is notebook 9's lesson, not this one's"
    cards = tagged_text(executed, "structured-live")
    rendered = int(re.search(r"recommendations rendered: (\d+)", cards).group(1))
    assert rendered >= 2, cards
    assert cards.count("shown after") == rendered and "**#1 · " in cards
    streamed_all = number(r"streamed ranking, all cards: (\d+\.\d+) s", cards)
    side = tagged_text(executed, "structured-side-by-side")
    first = number(r"first card on screen after (\d+\.\d+) s streamed", side)
    not_streamed = number(r"(\d+\.\d+) s without", side)
    # the same request: its first card came long before its last (side by side, one run)
    assert first < 0.8 * streamed_all, side
    assert first < not_streamed, f"the first card should come before the whole non-streamed answer:\n{side}"
    print(f"\nfirst card {first:.2f} s, all cards {streamed_all:.2f} s, not streamed {not_streamed:.2f} s")
    picks = tagged_text(executed, "structured-top-picks")
    assert picks.count("shown after") == 2 and "cards on the page: 2;" in picks, picks
    counts = re.search(r"tokens read: (\d+) of the ranking's (\d+)", picks)
    read, whole_tokens = int(counts.group(1)), int(counts.group(2))
    left = whole_tokens - read
    assert left >= 5, "the third item was still to come when the page was full: there was work to cancel"
    assert (f"top_picks closed the stream while the answer was still coming: about {left} of the "
            f"ranking's {whole_tokens} tokens were never read") in picks, picks
    assert "tokens generated" not in picks, "what the server did after a close is notebook 4's watch"


def test_structured_streaming_notebook_says_when_the_answer_ends_before_the_close(offline_server):
    """As on a GPU, where a short answer can be over before `top_picks` closes it: with a cap of
    30 tokens (through the settings, as autograding caps answers) the ranking ends inside its
    second item. The notebook must say the answer broke the schema because of the cap, show the
    one card that was complete, and say there was nothing to cancel instead of claiming a stop."""
    marker = f"kit-run-{uuid.uuid4().hex}"
    executed = execute(REPO / "solutions" / "05_structured_streaming.ipynb", timeout_s=300,
                       workdir=REPO / "solutions",
                       env={"KIT_ANSWER_CAP": "30", "KIT_DISPLAY": "plain", "KIT_RUN_MARKER": marker})
    assert executed.error is None, executed.error
    whole = executed.tagged_text("structured-whole")
    assert "✗ The answer does not follow the schema" in whole, whole
    assert "it reached its cap of 30 tokens before the JSON was complete" in whole, whole
    cards = executed.tagged_text("structured-live")
    rendered = int(re.search(r"recommendations rendered: (\d+)", cards).group(1))
    assert 0 < rendered < 3 and cards.count("shown after") == rendered, cards
    picks = executed.tagged_text("structured-top-picks")
    assert "nothing was left to cancel" in picks, picks
    assert "closed the stream while the answer was still coming" not in picks, picks
    assert_nothing_left_behind(marker)


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
    # Stop from another thread: the flag is set, the reading thread leaves and closes the stream
    flagged = tagged_text(executed, "stop-from-a-thread")
    assert re.search(r"^Stop: the reading thread left after \d+ chunks and closed the stream$", flagged,
                     re.M), flagged
    after, running_after, verdict_after = watches(flagged)["after Stop, closed by the reading thread"]
    assert verdict_after == "idle" and running_after == 0, flagged
    assert after <= max(3, tokens / 4), f"{after} tokens after Stop, the open stream made {tokens}"


def test_serving_notebook_streams_chats_and_shuts_down(offline_server, capsys):
    from helpers.ports import port_open

    executed, _ = run("solutions", ADVANCED[1], capsys)
    sse = tagged_text(executed, "sse-client")
    # the endpoint's send times and the client's arrivals, on one clock: as many pieces, each passed on
    seen = re.search(r"^pieces sent by the endpoint: (\d+), over \d+\.\d+ s; received here: (\d+), ",
                     sse, re.M)
    assert seen and int(seen.group(1)) == int(seen.group(2)) >= 2, sse
    median = number(r"(?m)^added by the hop, per piece \(arrival − send\): median (\d+\.\d) ms, "
                    r"max \d+\.\d ms$", sse)
    sse_verdict = re.search(r"^→ the endpoint passes each piece on as it gets it: half arrived within "
                            r"(\d+\.\d) ms of being sent, the slowest after \d+ ms$", sse, re.M)
    assert sse_verdict and float(sse_verdict.group(1)) == median < 20, sse
    assert re.search(r"^  the model's own pieces: at most \d+ of \d+ sent within any 20 ms, ", sse, re.M), sse
    # the `error` event, from a model server that cannot be reached: the whole response is that event
    wire = tagged_text(executed, "sse-wire")
    assert re.search(r"^'event: error'\n'data: \{\"error\": \".+\"\}'\n''\n"
                     r"→ the endpoint's record: error, 0 pieces sent; the response's last event was 'error', "
                     r"and the endpoint closed the response after it$", wire, re.M), wire
    hang_up_text = tagged_text(executed, "sse-hang-up")
    # the endpoint's own record: cancelled mid-answer, soon after the client left
    sent = int(number(r"(?m)^the endpoint's record: client left, (\d+) pieces sent$", hang_up_text))
    assert 1 <= sent < 40, hang_up_text
    noticed = re.search(r"^→ The endpoint noticed the hang-up (\d+) ms after it, having sent (\d+) pieces "
                        r"of an answer of up to (\d+) tokens \(its generator ended with "
                        r"(CancelledError|GeneratorExit)\)\. Whether the model's work stopped too",
                        hang_up_text, re.M)
    assert noticed and int(noticed.group(2)) == sent, hang_up_text
    assert int(noticed.group(1)) < 2000 and sent < int(noticed.group(3)), hang_up_text
    # the model server's own counters just after: its work for the hung-up client stopped
    after = watches(hang_up_text)["the model server after the hang-up"]
    assert after[1:] == (0, "idle"), hang_up_text
    # the exercise's client against the endpoint, set against two direct runs: a verdict from the numbers
    ttft = tagged_text(executed, "ttft-compare")
    compared = re.search(r"^first token after (\d+\.\d+) s, \d+ chunks: .+\n"
                         r"straight from the model: (\d+\.\d+) s before, (\d+\.\d+) s after\n"
                         r"→ the hop through your service added ([+-]\d+) ms to the time to first "
                         r"token: (.+)$",
                         ttft, re.M)
    assert compared, ttft
    added, spread = int(compared[4]), abs(float(compared[3]) - float(compared[2])) * 1000
    said = compared[5]  # (the figures are printed rounded: 10 ms of slack)
    if said.startswith("within"):
        assert abs(added) <= spread + 10, ttft
    else:
        assert said.startswith("more than" if added > 0 else "faster than"), ttft
        assert abs(added) >= spread - 10, ttft
    chat = tagged_text(executed, "ws-chat")
    assert chat.count("[end of answer") == 3
    assert "5 messages in this connection's history" in chat  # the second turn saw the first
    assert "server thread alive: False" in tagged_text(executed, "server-stop")
    every_output = "\n".join(executed.text_of(c) for c in executed.notebook.cells if c.cell_type == "code")
    port = int(re.search(r"serving at http://127\.0\.0\.1:(\d+)", every_output).group(1))
    assert not port_open(port), "the clean-up freed the endpoint's port"


def outcome(text: str) -> str:
    """The hang-up's one-sentence outcome, as the notebook prints it (after an arrow)."""
    found = re.search(r"^→ (.+)$", text, re.M)
    assert found, f"no outcome line in:\n{text}"
    return found.group(1)


def test_serving_notebook_says_so_when_the_answer_ends_before_the_hang_up(offline_server):
    """As on a GPU, where an answer can be over before the client hangs up: a cap of 2 tokens
    (through the settings, as autograding caps answers) ends the answer before the client has
    read its six lines, so there is nothing to cancel, and the notebook must say so instead of
    claiming a cancellation. Runs the notebook up to the hang-up, then its clean-up."""
    text = run_until_hang_up("07_serving_streams", "sse-hang-up", cap=2).tagged_text("sse-hang-up")
    assert re.search(r"asking for up to \d+ tokens, capped at 2$", text, re.M), text
    assert outcome(text).startswith("Nothing to cancel: the answer was complete before the client"), text
    assert re.search(r"^the endpoint's record: done, \d+ pieces sent$", text, re.M), text
    assert "noticed the hang-up" not in text, "the endpoint ran to its end: no hang-up to notice"
    assert "tokens generated" not in text, "nothing was cancelled, so there is nothing to watch"


def run_until_hang_up(name: str, hang_up_tag: str, cap: int):
    """solutions/<name> up to the cell tagged `hang_up_tag`, then its clean-up (tag server-stop),
    in a fresh kernel whose answer cap (KIT_ANSWER_CAP) is `cap`; nothing may fail or stay behind."""
    notebook = nbformat.read(REPO / "solutions" / f"{name}.ipynb", as_version=4)
    cells = notebook.cells
    last = next(i for i, c in enumerate(cells) if hang_up_tag in c.metadata.get("tags", []))
    notebook.cells = cells[: last + 1] + [c for c in cells if "server-stop" in c.metadata.get("tags", [])]
    marker = f"kit-run-{uuid.uuid4().hex}"
    executed = execute(notebook, timeout_s=300, workdir=REPO / "solutions",
                       env={"KIT_ANSWER_CAP": str(cap), "KIT_DISPLAY": "plain", "KIT_RUN_MARKER": marker})
    assert executed.error is None, executed.error
    assert "server thread alive: False" in executed.tagged_text("server-stop")
    assert_nothing_left_behind(marker)
    return executed


def test_batching_notebook_sends_a_group_as_one_call_and_serves_it_on_ray(offline_server, capsys):
    executed, _ = run("solutions", "08_batching_in_a_service", capsys)
    probe = tagged_text(executed, "completions-probe")
    assert probe.strip() == "✔ /v1/completions serves this model: a group of prompts can go as one call", \
        probe
    one_call = tagged_text(executed, "one-call")
    rows = re.findall(r"^(4 calls of 1 prompt|1 call of 4 prompts) +first texts after "
                      r"(\d+\.\d+)–(\d+\.\d+) s, last after (\d+\.\d+) s · "
                      r"requests running at once in the server: (\d+)$",
                      one_call, re.M)
    each, group = "4 calls of 1 prompt", "1 call of 4 prompts"
    assert [label for label, *_ in rows] == [each, group, group, each], one_call  # the other way round
    # the server's own report: the one call became (at least) one request per prompt, as separate
    # calls do (other users of the offline server can add theirs)
    assert all(int(peak) >= 4 for label, *_, peak in rows if label == group), one_call
    lasts = {label: min(float(last) for lbl, _, _, last, _ in rows if lbl == label) for label, *_ in rows}
    ratio = number(r"→ one call of 4 took (\d+\.\d+)× the time of 4 calls", one_call)
    assert abs(ratio - lasts["1 call of 4 prompts"] / lasts["4 calls of 1 prompt"]) < 0.05
    verdict = ("about the same" if 0.8 <= ratio <= 1.25 else
               "the one call was faster" if ratio < 0.8 else "the one call was slower")
    assert one_call.rstrip().endswith(verdict), one_call
    # what the lesson claims: one call buys little from a server that batches in flight (on a busy
    # machine it can even come out slower; the notebook prints whichever it was)
    assert ratio > 0.6, f"one call of a group should not be much faster than separate calls:\n{one_call}"
    batched = tagged_text(executed, "micro-batcher")
    arrived = re.search(r"5 requests arrived at \[([\d., ]+)\] s → groups sent to the model: \[2, 3\]$",
                        batched, re.M)
    assert arrived, f"two clients together, three more 0.15 s later, at most three per group:\n{batched}"
    times = [float(t) for t in arrived[1].split(", ")]
    assert times[2] - times[0] >= 0.15 and times[4] - times[2] < 0.1, batched  # the schedule as it ran
    answers = re.findall(r"^The capital of \w+ is +group (\d): first text after (\d+\.\d+) s → \S.+$",
                         batched, re.M)
    assert [int(g) for g, _ in answers] == [1, 1, 2, 2, 2], batched
    waits = re.findall(r"^→ group (\d), (\d) request\(s\): its call was sent (\d+\.\d+) s after its first "
                       r"request arrived \((.+)\)$", batched, re.M)
    assert [(g, n) for g, n, *_ in waits] == [("1", "2"), ("2", "3")], batched
    (*_, waited, why), (*_, at_once, full) = waits
    # the group that was not full waited out its 0.1 s window (the batcher's own clock); the full one did not
    assert float(waited) >= 0.1 and why == "not full: it waited out its 0.1 s window", batched
    assert float(at_once) < 0.1 and full == "full, sent at once", batched
    assert min(float(t) for g, t in answers if g == "1") >= 0.1, "group 1's first texts include its window"
    # where grouping pays: a proxy passing on 2 model calls per 30 s window, the same five clients
    limited = tagged_text(executed, "per-call-limit")
    alone, grouped = limited.split("── micro-batcher ──")
    assert alone.startswith("── one call each ──"), limited
    counts = (r"(\d+) model calls{}; the proxy passed on (\d+) and answered (\d+) with 429 → (\d+) of 5 "
              r"clients answered$")
    without = re.search("^one call each: " + counts.format(""), alone, re.M)
    assert without and [int(n) for n in without.groups()] == [5, 2, 3, 2], limited
    answered = re.findall(r"^The capital of \w+ is +→ (['\"])\S.*\1$", alone, re.M)
    refused = re.findall(r"^The capital of \w+ is +✗ HTTP 429, Retry-After: (\d+) s$", alone, re.M)
    assert len(answered) == 2 and len(refused) == 3, limited  # the answers match the proxy's counts
    assert all(28 <= int(w) <= 30 for w in refused), limited  # the seconds left of 30
    with_batcher = re.search("^micro-batcher: " + counts.format(r" \(groups \[2, 3\]\)"), grouped, re.M)
    assert with_batcher and [int(n) for n in with_batcher.groups()] == [2, 2, 0, 5], limited
    assert len(re.findall(r"^The capital of \w+ is +→ (['\"])\S.*\1$", grouped, re.M)) == 5, limited
    assert limited.rstrip().endswith("→ grouping saved 3 of 5 model calls: 5 of 5 clients answered, "
                                     "against 2 alone"), limited
    ray_start = tagged_text(executed, "ray-start")
    assert re.search(r"^Ray Serve answered \d+ s after its start: '\S.*'$", ray_start, re.M), ray_start
    # what @serve.batch costs in front of a server that batches in flight: the same four prompts sent
    # with send_group both ways (only Ray differs), two rounds, the second the other way round
    ray_answers = tagged_text(executed, "ray-clients")
    rows = re.findall(r"^round (\d), (through Ray Serve|straight to the server) +first texts after "
                      r"([\d., ]+) s$", ray_answers, re.M)
    ray, straight = "through Ray Serve", "straight to the server"
    assert [(int(r), way) for r, way, _ in rows] == [(1, ray), (1, straight), (2, straight), (2, ray)], \
        ray_answers
    firsts = [(way, [float(t) for t in times.split(", ")]) for _, way, times in rows]
    assert all(len(times) == 4 for _, times in firsts), ray_answers
    # only the rounds' groups: the warm-up question's group of one is left out
    sizes = [int(n) for n in re.search(r"^group sizes the replica formed in these rounds: \[([\d, ]+)\]$",
                                       ray_answers, re.M).group(1).split(", ")]
    assert sum(sizes) == 8 and max(sizes) <= 4, "Ray grouped the four clients of each of its two rounds"
    medians = {way: [sum(sorted(times)[1:3]) / 2 for w, times in firsts if w == way]
               for way in (ray, straight)}
    cost = number(r"→ first text through Ray Serve minus straight to the server: ([+-]\d+\.\d+) s",
                  ray_answers)
    spread = number(r"each way's rounds differed by up to (\d+\.\d+) s: ", ray_answers)
    assert abs(cost - (sum(medians[ray]) - sum(medians[straight])) / 2) < 0.02, ray_answers  # rounded times
    assert abs(spread - max(abs(a - b) for a, b in medians.values())) < 0.02, ray_answers
    # a difference is called a cost only beyond the spread between each way's two rounds
    verdict = ("no clear difference, within this backend's run-to-run spread" if abs(cost) <= spread else
               "Ray's batch wait (up to 0.1 s) and its extra hop cost that much" if cost > 0 else
               "through Ray Serve was faster, by more than this backend's run-to-run spread")
    arrow = re.search(r"^→ first text through Ray Serve.*$", ray_answers, re.M).group(0)
    assert arrow.endswith(verdict) or abs(abs(cost) - spread) < 0.02, ray_answers  # near the edge: rounding
    assert "Ray processes left: 0" in tagged_text(executed, "ray-stop")
    planned = tagged_text(executed, "plan-vs-batcher")
    # the window closed the first group and the size limit the second: the rule names both
    both = r"\[\[0, 1\], \[2, 3, 4\]\]"
    assert re.search(rf"your rule's groups {both}; the batcher's {both}$", planned, re.M), planned
    assert "→ your rule names the groups the batcher sent" in planned, planned
    calls = [int(n) for n in re.findall(r"window +\d+ ms: +(\d+) calls", planned)]
    assert calls == [20, 10, 3], "a longer window, fewer calls to the model"


def test_async_notebook_gathers_and_survives_failures(offline_server, capsys):
    executed, _ = run("solutions", ADVANCED[2], capsys)
    streamed = tagged_text(executed, "astream")  # through an async generator of the notebook's own
    assert streamed.count("|") >= 3 and len(streamed.replace("|", "").strip()) > 3
    assert re.search(r"^\d+ pieces of text, each printed as it arrived$", streamed, re.M), streamed
    board = tagged_text(executed, "gather-board")  # two boards: one after another, then gathered
    for state in ("California", "Texas", "New York"):
        assert board.count(f"── What is the capital of {state}? ──\n") == 2, board
    assert board.count("[first token") == 6 and "⚠" not in board, board
    # the sequential baseline and the gathered run on the same clock; the ratio is theirs
    timed = re.search(r"^gathered: (\d+\.\d\d) s, one after another: (\d+\.\d\d) s \(ratio "
                      r"(\d+\.\d\d)\)$", board, re.M)
    assert timed, board
    together, in_turn, ratio = (float(n) for n in timed.groups())
    assert abs(ratio - together / in_turn) < 0.02, timed[0]
    assert number(r"⏱ one after another: (\d+\.\d+) s", board) > 0 and number(
        r"⏱ gathered: (\d+\.\d+) s", board) > 0
    # the offline server has parallel slots: the three gathered streams overlapped
    assert re.search(r"^→ all three gathered streams were streaming at once from \d+\.\d\d s$", board,
                     re.M), board
    # a task cancelled after five chunks; the model server's own counters, just after: its work stopped
    cancelled = tagged_text(executed, "cancel")
    assert "task cancelled: True, after 5 chunks; then the model server's own counters:" in cancelled
    assert watches(cancelled)["the model server after the cancel"][1:] == (0, "idle"), cancelled
    # a refused stream is marked on its row; the other two stream to the end
    refused = tagged_text(executed, "stream-fails")
    assert refused.count("⚠ The server is rate-limiting you (HTTP 429") == 1, refused
    assert re.search(r"^1 of 3 streams failed \(1 answered 429 by the proxy\); the others ran to "
                     r"the end: \d+ chunks, \d+ chunks$", refused, re.M), refused
    spared = tagged_text(executed, "batch-exceptions")
    assert spared.startswith("without return_exceptions, the batch raised and kept no answer:"), spared
    assert "2 of 6 failed (2 answered 429 by the proxy)" in spared
    # what the plain batch threw away, from the proxy's counts: calls answered there, none kept
    counts = re.search(r"^  the proxy's counts: (\d) calls answered 429, (\d) passed on to the server "
                       r"and (\d) answered there(?:, (\d) never sent \(cancelled by the batch as it "
                       r"raised\))?; none of those answers was kept$", spared, re.M)
    assert counts, spared
    refused, passed_on, answered, unsent = (int(n or 0) for n in counts.groups())
    assert 1 <= refused <= 2 and answered == passed_on and refused + passed_on + unsent == 6, spared
    assert spared.count("✗ failed") == 2 and spared.count("✔ ") == 4, "the answers that worked are kept"
    assert "rate-limiting you (HTTP 429" in spared
    retried = tagged_text(executed, "retry")
    assert "[429 answers: 2, calls passed on: 1]" in retried  # two real 429s, then the answer
    assert "✗ gave up after 3 attempts: The server" in retried and "HTTP 429" in retried
    # with_retry's backoff, not the 429s' Retry-After (5 s each), set the waits
    assert number(r"each 429 asked for 5 s \(Retry-After\); with_retry's own backoff made its two "
                  r"retries within (\d+\.\d) s", retried) < 2 * 5, retried
    # the proxy's 400, on any backend: the notebook's is_transient says no, and it is sent once
    assert "✗ is_transient: False, so not retried: 1 call answered [400] Bad Request" in retried, retried
    assert number(r"⏱ a request the server refuses \(HTTP 400\): (\d+\.\d+) s", retried) < number(
        r"⏱ two 429s, then an answer: (\d+\.\d+) s", retried), "no backoff for a permanent error"
    assert ("calls that reached the server: 1, answered 429 by the proxy: 5, answered 400 by the "
            "proxy: 1") in retried
    fanned = tagged_text(executed, "fan-out")  # the exercise's fan-out on the real model
    assert fanned.count("✔ ") == 3, fanned
    # the limit at work, counted around the real model: all four at once, then one at a time
    peaks = re.findall(r"^⏱ answer_all, limit=(\d): \d+\.\d+ s\n  at most (\d) calls? in flight at once$",
                       fanned, re.M)
    assert peaks == [("4", "4"), ("1", "1")], fanned
    ratio = number(r"(?m)^→ the limit held: 4 in flight with limit=4, 1 with limit=1; one at a time took "
                   r"(\d+\.\d)× as long$", fanned)
    wide, narrow = (number(rf"⏱ answer_all, limit={n}: (\d+\.\d+) s", fanned) for n in (4, 1))
    assert abs(ratio - narrow / wide) < 0.1, fanned
    assert ("What is the capital of Atlantis?     ✗ Exception: [400] Bad Request: the request "
            "contains 'Atlantis'") in fanned, "the proxy's 400, kept as a failure in its place"
