"""The fault matrix: every way a learner's call can go wrong, and what the learner then reads.
Shared by the fault tests of the unit, integration and server tiers.

One row per fault. Each row provokes the fault for real (a real llama-server where one is
involved; a stand-in HTTP stub only for the "still loading" 503), asserts that nothing hangs,
and asserts the message: one short paragraph, no traceback, saying what to do. Rows that a
notebook shows also run in a real kernel after `enable_friendly_errors()`, where the cell
must show that paragraph as its error output (so nbclient and nbgrader still see a failure).
"""

from __future__ import annotations

import http.server
import json
import os
import re
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import nbformat
import pytest
from nbclient import NotebookClient

from helpers import StreamResult, explain, stream_print
from helpers.fault_injection import RateLimitingProxy
from helpers.friendly_errors import BackendNotReady
from helpers.ports import free_port
from helpers.readiness import check_ready, wait_until_ready
from helpers.settings import HOSTED_BASE_URL, OFFLINE_MODEL_ID, WORKSHOP_MODEL, load_settings
from llm_kit.offline import server_status, start_server, stop_server

from support import assert_none_left, offline_server_pids

ANSI = re.compile(r"\x1b\[[0-9;]*m")
TIMEOUT_S = 50  # every HTTP call a row makes gives up after this (2 shared cores: be patient)


def chat(base_url: str, model: str = OFFLINE_MODEL_ID, **kwargs):
    from langchain_nvidia_ai_endpoints import ChatNVIDIA

    return ChatNVIDIA(base_url=base_url, model=model, temperature=0, timeout=TIMEOUT_S, **kwargs)


def assert_learner_message(message: str, *must_say: str) -> None:
    """A short paragraph (≤ 3 lines, no traceback text) that says what to do."""
    assert message, "no message at all"
    assert message.count("\n") <= 2, message
    assert len(message) <= 450, message
    for leak in ("Traceback", 'File "', "site-packages", "{'error'", "[400]", "[404]", "[503]"):
        assert leak not in message, message
    for words in must_say:
        assert words in message, f"{words!r} not in: {message}"


@dataclass
class Kernel:
    """A notebook cell to run after `enable_friendly_errors()`, and what it must show."""

    code: str
    must_say: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    drop_env: tuple[str, ...] = ()
    paragraph: bool = True  # False: Python's own error is the clear one (ename, evalue)


@dataclass
class Seen:
    """What a row showed: the learner's message and, optionally, a cell to run in a kernel."""

    message: str | None
    must_say: tuple[str, ...] = ()
    kernel: Kernel | None = None


def run_in_kernel(cell: Kernel, workdir) -> nbformat.NotebookNode:
    """Execute enable_friendly_errors() then `cell.code` in a fresh kernel; the second cell."""
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("from helpers import enable_friendly_errors\n"
                                  "enable_friendly_errors()"),
        nbformat.v4.new_code_cell(cell.code)])
    env = {k: v for k, v in os.environ.items() if k not in cell.drop_env}
    env.update(cell.env)
    client = NotebookClient(notebook, timeout=60, startup_timeout=90, kernel_name="python3",
                            allow_errors=True, resources={"metadata": {"path": str(workdir)}})
    client.execute(env=env)
    return notebook.cells[1]


def assert_cell_failed_with(cell: nbformat.NotebookNode, expected: Kernel) -> None:
    errors = [o for o in cell.outputs if o.output_type == "error"]
    assert len(errors) == 1, f"the cell must fail (one error output): {cell.outputs}"
    error = errors[0]
    if not expected.paragraph:
        assert all(words in error.evalue for words in expected.must_say), error.evalue
        return
    shown = ANSI.sub("", "\n".join(error.traceback))
    assert shown.startswith("⚠ "), shown[:2000]
    assert_learner_message(shown.removeprefix("⚠ "), *expected.must_say)
    streams = "".join(o.text for o in cell.outputs if o.output_type == "stream")
    assert "Traceback" not in streams


class LoadingStub:
    """Stands in for a server still loading its model: llama.cpp's 503 on every path."""

    BODY = json.dumps({"error": {"code": 503, "message": "Loading model",
                                 "type": "unavailable_error"}}).encode()

    def __init__(self):
        body = self.BODY

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                self.send_response(503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# ── the rows ───────────────────────────────────────────────────────────────────────────


def no_server(request) -> Seen:
    base_url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens here
    with pytest.raises(Exception) as info:
        chat(base_url).invoke("Hello?")
    message = explain(info.value, base_url=base_url)
    with pytest.raises(BackendNotReady) as waited:  # fails after a short grace, never 120 s
        wait_until_ready(load_settings(env={"NIM_BASE_URL": base_url,
                                            "NIM_MODEL": OFFLINE_MODEL_ID}), quiet=True)
    assert_learner_message(str(waited.value), "make server", "NIM_BASE_URL")
    return Seen(message, ("No model server answered", "make server"), Kernel(
        f"from langchain_nvidia_ai_endpoints import ChatNVIDIA\n"
        f"ChatNVIDIA(base_url={base_url!r}, model={OFFLINE_MODEL_ID!r}).invoke('Hello?')",
        ("No model server answered", "make server")))


def server_still_loading(request) -> Seen:
    stub = LoadingStub()
    request.addfinalizer(stub.close)
    settings = load_settings(env={"NIM_BASE_URL": stub.base_url, "NIM_MODEL": OFFLINE_MODEL_ID})
    assert check_ready(settings).state == "loading"
    with pytest.raises(BackendNotReady) as waited:
        wait_until_ready(settings, timeout_s=1.5, poll_s=0.2, quiet=True)
    assert_learner_message(str(waited.value), "still loading", "run this cell again")
    with pytest.raises(Exception) as info:
        chat(stub.base_url).invoke("Hello?")
    message = explain(info.value, base_url=stub.base_url)
    return Seen(message, ("still loading", "503", "re-run the cell"), Kernel(
        "from helpers import check_backend\ncheck_backend(timeout_s=2)",
        ("still loading", "run this cell again"),
        env={"NIM_BASE_URL": stub.base_url, "NIM_MODEL": OFFLINE_MODEL_ID}))


def wrong_url(request) -> Seen:
    server = request.getfixturevalue("offline_server")
    # llama.cpp serves both /v1/... and /...; a wrong path prefix is what really 404s.
    base_url = server.base_url.removesuffix("/v1") + "/api/v1"
    with pytest.raises(Exception) as info:
        chat(base_url).invoke("Hello?")
    message = explain(info.value, base_url=base_url)
    settings = load_settings(env={"NIM_BASE_URL": base_url, "NIM_MODEL": OFFLINE_MODEL_ID})
    assert check_ready(settings).state == "wrong-url"
    with pytest.raises(BackendNotReady) as waited:
        wait_until_ready(settings, quiet=True, sleep=lambda _: pytest.fail("waited on a 404"))
    assert_learner_message(str(waited.value), "NIM_BASE_URL", "/v1")
    return Seen(message, ("HTTP 404", "NIM_BASE_URL", "/v1"), Kernel(
        "from helpers import check_backend\ncheck_backend(timeout_s=10)",
        ("NIM_BASE_URL", "/v1"), env={"NIM_BASE_URL": base_url, "NIM_MODEL": OFFLINE_MODEL_ID}))


def wrong_model_name(request) -> Seen:
    server = request.getfixturevalue("offline_server")
    wrong = WORKSHOP_MODEL  # a real model id, just not the one this server serves
    # llama.cpp ignores the request's model field and answers with its own model …
    reply = chat(server.base_url, model=wrong, max_completion_tokens=1).invoke("Say hi.")
    assert reply.response_metadata.get("model_name") in (OFFLINE_MODEL_ID, wrong)
    # … so the kit's readiness check compares NIM_MODEL with the server's /v1/models.
    settings = load_settings(env={"NIM_BASE_URL": server.base_url, "NIM_MODEL": wrong})
    readiness = check_ready(settings)
    assert readiness.state == "wrong-model" and OFFLINE_MODEL_ID in readiness.detail
    with pytest.raises(BackendNotReady) as waited:
        wait_until_ready(settings, quiet=True, sleep=lambda _: pytest.fail("waited on a wrong model"))
    return Seen(str(waited.value), ("NIM_MODEL", wrong, OFFLINE_MODEL_ID), Kernel(
        "from helpers import check_backend\ncheck_backend(timeout_s=10)",
        ("NIM_MODEL", OFFLINE_MODEL_ID), env={"NIM_BASE_URL": server.base_url, "NIM_MODEL": wrong}))


def hosted_without_key(request) -> Seen:
    import httpx

    monkeypatch = request.getfixturevalue("monkeypatch")
    sent = []

    def no_network(self, request, *args, **kwargs):
        sent.append(str(request.url))
        raise httpx.ConnectError("this test allows no network call")

    monkeypatch.setattr(httpx.Client, "send", no_network)
    empty_dotenv = request.getfixturevalue("tmp_path") / "no.env"
    settings = load_settings(env={"NIM_BASE_URL": HOSTED_BASE_URL, "NIM_MODEL": WORKSHOP_MODEL},
                             dotenv=empty_dotenv)
    assert settings.backend == "hosted" and settings.api_key is None
    assert check_ready(settings).state == "no-key"
    polls = []
    with pytest.raises(BackendNotReady) as waited:
        wait_until_ready(settings, timeout_s=120, quiet=True, sleep=polls.append)
    assert polls == [] and sent == []  # failed at once, without a single request
    return Seen(str(waited.value), ("NVIDIA_API_KEY", ".env"), Kernel(
        "from helpers import check_backend\ncheck_backend()", ("NVIDIA_API_KEY",),
        env={"NIM_BASE_URL": HOSTED_BASE_URL, "NIM_MODEL": WORKSHOP_MODEL},
        drop_env=("NVIDIA_API_KEY",)))


def server_killed_mid_stream(request) -> Seen:
    capsys = request.getfixturevalue("capsys")
    port = free_port()
    request.addfinalizer(lambda: stop_server(port, quiet=True))
    status = start_server(port=port, quiet=True, ready_timeout_s=90)
    pid = status.pid

    def kill_after_first_words(stream, words=3):
        seen = 0
        for chunk in stream:
            yield chunk
            seen += bool(chunk.content)
            if seen == words:
                os.killpg(pid, signal.SIGKILL)

    llm = chat(status.base_url)
    outcome: list[StreamResult] = []
    prompt = "Write a long story about a lighthouse keeper and a storm, in ten paragraphs."
    worker = threading.Thread(daemon=True, target=lambda: outcome.append(stream_print(
        kill_after_first_words(llm.stream(prompt)), display="plain")))
    worker.start()
    worker.join(timeout=45)
    assert not worker.is_alive(), "stream_print hung after the server died"
    result = outcome[0]
    assert result.text.strip(), "the partial answer was lost"
    assert result.error is not None and not result.completed
    assert_none_left(lambda: offline_server_pids(port), "server processes left after the kill", timeout_s=10)
    try:
        os.waitpid(pid, os.WNOHANG)  # reap our killed child
    except ChildProcessError:
        pass
    assert not server_status(port).running
    shown = capsys.readouterr().out
    assert "Stream interrupted" in shown and result.error_message in shown
    return Seen(result.error_message, ("closed the connection", "llm-kit server status",
                                       "make server"))


def prompt_longer_than_context(request) -> Seen:
    server = request.getfixturevalue("offline_server")
    prompt = " ".join(["word"] * 3000)  # ~3000 tokens; each slot holds 2048
    with pytest.raises(Exception) as info:
        chat(server.base_url).invoke(prompt)
    message = explain(info.value, base_url=server.base_url)
    streamed = stream_print(chat(server.base_url).stream(prompt), display="none")
    assert streamed.error is not None and "context window" in streamed.error_message
    return Seen(message, ("context window", "Shorten"), Kernel(
        "from langchain_nvidia_ai_endpoints import ChatNVIDIA\n"
        f"llm = ChatNVIDIA(base_url={server.base_url!r}, model={OFFLINE_MODEL_ID!r})\n"
        "llm.invoke(' '.join(['word'] * 3000))", ("context window", "Shorten")))


def rate_limited(request) -> Seen:
    server = request.getfixturevalue("offline_server")
    limiter = RateLimitingProxy(server.base_url, reject=1).start()  # a real HTTP 429
    request.addfinalizer(limiter.stop)
    with pytest.raises(Exception) as info:
        chat(limiter.base_url).invoke("Hello?")
    message = explain(info.value, base_url=limiter.base_url)
    assert "[429]" in str(info.value), "ChatNVIDIA's error begins with the status (notebook 6 reads it)"
    reply = chat(limiter.base_url, max_completion_tokens=4).invoke("Say hi.")  # the limit passed
    assert reply.content and (limiter.rejected, limiter.forwarded) == (1, 1)
    limiter.reject_next(1)  # for the same call in a kernel
    return Seen(message, ("rate-limiting", "HTTP 429", "wait", "max_concurrency", "with_retry"), Kernel(
        "from langchain_nvidia_ai_endpoints import ChatNVIDIA\n"
        f"ChatNVIDIA(base_url={limiter.base_url!r}, model={OFFLINE_MODEL_ID!r}).invoke('Hello?')",
        ("rate-limiting", "HTTP 429")))


def empty_batch(request) -> Seen:
    server = request.getfixturevalue("offline_server")
    assert chat(server.base_url).batch([]) == []  # nothing to do, nothing sent, no wait
    return Seen(None)


def non_string_prompt(request) -> Seen:
    server = request.getfixturevalue("offline_server")
    llm = chat(server.base_url)
    for prompt in (42, None):
        with pytest.raises(ValueError) as info:
            llm.invoke(prompt)
        # LangChain's own error is already clear: it names the type and the accepted ones.
        assert type(prompt).__name__ in str(info.value)
    message = str(info.value)
    assert explain(info.value) == f"ValueError: {message}"  # passed through, not reworded
    return Seen(message, ("Invalid input type", "str", "list of BaseMessages"), Kernel(
        "from langchain_nvidia_ai_endpoints import ChatNVIDIA\n"
        f"ChatNVIDIA(base_url={server.base_url!r}, model={OFFLINE_MODEL_ID!r}).invoke(42)",
        ("Invalid input type", "str"), paragraph=False))


# The rows by what they need: nothing but stand-ins, or the real offline server (a test of the
# server tier). A row in a kernel needs the same.
NO_SERVER_ROWS: list[Callable] = [no_server, server_still_loading, hosted_without_key]
SERVER_ROWS: list[Callable] = [wrong_url, wrong_model_name, server_killed_mid_stream,
                               prompt_longer_than_context, rate_limited, empty_batch, non_string_prompt]
NOT_IN_A_KERNEL = (server_killed_mid_stream, empty_batch)  # nothing a notebook shows
GENERATES = (wrong_model_name, server_killed_mid_stream)  # wait for real tokens on 2 busy cores


def row_id(row: Callable) -> str:
    return row.__name__.replace("_", "-")


def row_params(rows: list[Callable]) -> list:
    """One pytest.param per row, with a timeout for what the row waits on."""
    return [pytest.param(row, id=row_id(row), marks=pytest.mark.timeout(
        180 if row in GENERATES else 60, func_only=True)) for row in rows]


def kernel_rows(rows: list[Callable]) -> list:
    """The rows a notebook shows, as pytest.params: each runs again in a real kernel."""
    return [pytest.param(row, id=row_id(row)) for row in rows if row not in NOT_IN_A_KERNEL]


def check_row(row: Callable, request) -> None:
    """Provoke the fault; the learner's message is a short paragraph that says what to do."""
    seen = row(request)
    if seen.message is not None:
        assert_learner_message(seen.message, *seen.must_say)


def check_row_in_a_kernel(row: Callable, request, workdir) -> None:
    """The row again, then its cell in a fresh kernel: the cell fails with the paragraph."""
    seen = row(request)
    assert seen.kernel is not None
    cell = run_in_kernel(seen.kernel, workdir)
    assert_cell_failed_with(cell, seen.kernel)
